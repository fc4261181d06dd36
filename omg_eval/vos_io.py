"""File entry point of DAVIS-2017 evaluation: folders of indexed PNG masks -> J&F, as ``davis2017-evaluation``.

Layout (as DAVIS's ``Annotations/480p``): ``gt_dir/<sequence>/<frame>.png`` single-channel (palette) PNGs holding object
ids (0 background, 255 void); ``pred_dir/<sequence>/<frame>.png`` with the same frame names and ids 0..K.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omg_data.image_io import read_png_array
from omg_eval.anomalies import reports_anomalies
from omg_eval.sharding import items_for_this_rank
from omg_eval.vos import DAVISMetric


def _read_id_map(path: Path, role: str) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing; the prediction needs one PNG per annotated frame, named like the annotation"
        )
    if role == "prediction":
        fix = "write the prediction again as a palette or grey PNG of object ids (0 background)"
    else:
        fix = "the annotation file is corrupt; extract the DAVIS Annotations again"
    ids = read_png_array(path, fix)
    if ids.ndim != 2:
        raise ValueError(f"{path} has shape {ids.shape}; save masks as single-channel (palette or grey) id PNGs")
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) > 255):
        raise ValueError(f"{path} holds ids outside 0..255; DAVIS masks are 8-bit object ids (255 = void)")
    return ids.astype(np.uint8, copy=False)


@reports_anomalies
def evaluate_davis(
    pred_dir: str | Path,
    gt_dir: str | Path,
    sequences: Sequence[str] | None = None,
    bound_th: float = 0.008,
    task: str = "semi-supervised",
) -> dict[str, Any]:
    """Evaluate DAVIS-2017 results.

    Arguments:
      pred_dir: folder with one sub-folder of PNG masks per sequence.
      gt_dir: the annotation folder (``DAVIS/Annotations/480p``, or ``Annotations_unsupervised/480p`` for the
        unsupervised task).
      sequences: sequence names to evaluate (default: every sub-folder of ``gt_dir``, sorted).
      bound_th: boundary tolerance of F.
      task: ``"semi-supervised"`` or ``"unsupervised"`` (see :class:`DAVISMetric`).

    Returns:
      The figures of :meth:`DAVISMetric.compute`.
    """
    pred_root, gt_root = Path(pred_dir), Path(gt_dir)
    for what, root in (("prediction folder", pred_root), ("annotation folder", gt_root)):
        if not root.is_dir():
            raise FileNotFoundError(f"{what} {str(root)!r} does not exist")
    names = sorted(p.name for p in gt_root.iterdir() if p.is_dir()) if sequences is None else list(sequences)
    if not names:
        raise ValueError(f"{gt_root} holds no sequence folders")
    metric = DAVISMetric(bound_th=bound_th, task=task)
    for name in items_for_this_rank(names):
        gt_frames = sorted((gt_root / name).glob("*.png"))
        if not gt_frames:
            raise FileNotFoundError(f"no annotation PNGs in {gt_root / name}")
        gt_ids = np.stack([_read_id_map(frame, "annotation") for frame in gt_frames])  # T x H x W
        # Frames that are not scored (semi-supervised: first and last) need no prediction, as officially.
        pred_ids = np.zeros_like(gt_ids)
        first, stop = (1, len(gt_frames) - 1) if metric.skip_first_and_last else (0, len(gt_frames))
        for t, frame in zip(range(first, stop), gt_frames[first:stop]):
            prediction = _read_id_map(pred_root / name / frame.name, "prediction")
            if prediction.shape != gt_ids.shape[1:]:
                raise ValueError(
                    f"{pred_root / name / frame.name} is {prediction.shape[1]}x{prediction.shape[0]} but the annotation "
                    f"is {gt_ids.shape[2]}x{gt_ids.shape[1]}; resize predictions to the annotation resolution"
                )
            pred_ids[t] = prediction
        metric.update(torch.from_numpy(pred_ids), torch.from_numpy(gt_ids), name)  # 8-bit ids stay uint8
    return metric.compute()
