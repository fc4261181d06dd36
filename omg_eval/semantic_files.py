"""mIoU of folders of semantic label PNGs (class index per pixel, 255 = unlabelled in the ground truth)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omg_data.image_io import open_image
from omg_eval.semantic import SemanticSegmentation
from omg_eval.sharding import items_for_this_rank

# labels are 8-bit PNGs: class indices 0..254, 255 unlabelled
_MAX_CLASSES = 255


def _read_labels(path: Path) -> torch.Tensor:
    with open_image(path) as image:
        if image.mode not in ("L", "P", "I", "I;16"):
            raise ValueError(
                f"{path} is a {image.mode} image; semantic label PNGs must be single-channel class indices (mode L/P)"
            )
        return torch.from_numpy(np.array(image).astype(np.int64))


def evaluate_semantic_files(
    pred_dir: str | Path,
    gt_dir: str | Path,
    *,
    num_classes: int | None = None,
    ignore_index: int = 255,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Semantic figures of predicted label PNGs against ground-truth label PNGs of the same names.

    Arguments:
      pred_dir / gt_dir: folders of PNGs (sub-folders allowed); every ground-truth file needs its prediction.
      num_classes: K; default: the largest class index seen (ground truth or prediction, ignore excluded) + 1.
      ignore_index: ground-truth label to skip.
      workers: decoding threads.
      progress: called with the number of images just finished.

    Returns:
      ``SemanticSegmentation.compute()`` plus ``num_images`` and ``num_classes``.
    """
    pred_root, gt_root = Path(pred_dir), Path(gt_dir)
    for root, what in ((pred_root, "prediction"), (gt_root, "ground-truth")):
        if not root.is_dir():
            raise FileNotFoundError(f"{what} folder {root} does not exist")
    names = sorted(p.relative_to(gt_root) for p in gt_root.rglob("*.png"))
    if not names:
        raise ValueError(f"no PNG under {gt_root}; the ground truth must be label PNGs")
    missing = [str(n) for n in names if not (pred_root / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} ground-truth images have no prediction in {pred_root} (first: {missing[0]}); "
            "predict every image, with the same relative file name"
        )
    if ignore_index < _MAX_CLASSES:
        raise ValueError(f"ignore_index must be >= {_MAX_CLASSES} for 8-bit label PNGs, got {ignore_index}")
    # count into the widest matrix once, then cut it to the classes actually present: one pass over the files
    metric = SemanticSegmentation(_MAX_CLASSES, ignore_index=ignore_index)

    def load(name: Path) -> tuple[torch.Tensor, torch.Tensor]:
        pred, gt = _read_labels(pred_root / name), _read_labels(gt_root / name)
        if pred.shape != gt.shape:
            raise ValueError(
                f"{name}: prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in size"
            )
        if bool((pred == ignore_index).any()):
            raise ValueError(
                f"{name}: the prediction holds the ignore label {ignore_index}; predict a class everywhere"
            )
        return pred, gt

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for pred, gt in pool.map(load, items_for_this_rank(names)):
            metric.update(pred, gt)
            if progress is not None:
                progress(1)
    with metric.sync_context():  # the classes seen on any rank; the cut matrix below is this rank's, synced by compute
        seen = torch.nonzero(metric.confusion.sum(0) + metric.confusion.sum(1)).flatten()
    largest = int(seen.max()) + 1 if len(seen) else 1
    if num_classes is not None and largest > num_classes:
        raise ValueError(f"labels go up to {largest - 1} but num_classes is {num_classes}")
    classes = num_classes or largest
    final = SemanticSegmentation(classes, ignore_index=ignore_index)
    final.confusion = metric.confusion[:classes, :classes].clone()
    figures = final.compute()
    figures.update(num_images=len(names), num_classes=classes)
    return figures
