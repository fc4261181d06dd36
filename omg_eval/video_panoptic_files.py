"""File entry point for VIPSeg video panoptic evaluation: VPQ and STQ from folders of raw VIPSeg panoptic masks.

Layout (both folders): ``<dir>/<video>/<frame>.png``, one single-channel PNG per annotated frame, in VIPSeg's
``panomasks`` encoding: 0 is VOID, a value v < 125 is the stuff category v - 1, and a value v >= 125 is instance
v % 100 of category v // 100 - 1. VIPSeg has no crowd annotations.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from omg_eval.sharding import items_for_this_rank
from omg_eval.stq import SegmentationTrackingQuality
from omg_eval.video_panoptic_quality import VideoPanopticQuality

VIPSEG_NUM_CLASSES = 124
# Category ids (0-based, as in VIPSeg's panoVIPSeg_categories.json) whose "isthing" flag is 1.
VIPSEG_THING_CLASSES: tuple[int, ...] = (
    2, 4, 8, 10, 41, 43, 44, 46, 47, 48, 49, 50, 51, 52, 54, 55, 56, 60, 61, 62, 63, 64, 65, 72, 74, 76, 77, 78, 79,
    82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 95, 96, 97, 99, 100, 101, 102, 106, 107, 108, 109, 114, 115, 116, 117,
    118, 122, 123,
)
# Internal encoding: category * 1000 + instance. Thing instances move up by one (raw instance 0 is a real object, but
# instance 0 of a thing means crowd in the metrics); raw values below 125 of a thing category, and stuff written
# with an instance (such as the stray value 200 in VIPSeg), keep distinct ids like VIPSeg's own converter gives them.
VIPSEG_LABEL_DIVISOR = 1000
_VOID_LABEL = 255
_STUFF_LIMIT = 125
_THING_LOW_VALUE_INSTANCE = 101


def decode_vipseg_panomask(raw: np.ndarray, num_classes: int, thing_classes: Sequence[int]) -> torch.Tensor:
    """Turn one raw VIPSeg mask (H x W) into panoptic ids ``category * 1000 + instance`` (VOID = 255 * 1000)."""
    values = torch.from_numpy(raw.astype(np.int64))
    low = values < _STUFF_LIMIT
    category = torch.where(low, values - 1, values // 100 - 1)
    is_thing = torch.zeros(max(num_classes, 1), dtype=torch.bool)
    is_thing[list(thing_classes)] = True
    real = values > 0
    bad = category[real & ((category < 0) | (category >= num_classes))]
    if bad.numel():
        raise ValueError(
            f"mask values decode to categories {torch.unique(bad).tolist()[:10]} outside [0, {num_classes}); "
            f"is this a raw VIPSeg panomask (0 = void, stuff = category + 1, things = (category + 1) * 100 + instance)?"
        )
    safe_category = category.clamp(0, num_classes - 1)
    instance = torch.where(
        low, torch.where(is_thing[safe_category], _THING_LOW_VALUE_INSTANCE, 0), values % 100 + 1
    )
    return torch.where(real, category * VIPSEG_LABEL_DIVISOR + instance, _VOID_LABEL * VIPSEG_LABEL_DIVISOR)


def _read_mask(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        array = np.array(image)
    if array.ndim != 2:
        raise ValueError(f"{path} has shape {array.shape}; expected a single-channel VIPSeg panomask, not RGB")
    return array


def list_video_frames(pred_dir: Path, gt_dir: Path, videos: Sequence[str] | None) -> list[tuple[str, list[str]]]:
    """Pair ground-truth and predicted frame files; every ground-truth frame needs a prediction of the same name."""
    if not gt_dir.is_dir():
        raise FileNotFoundError(f"ground-truth folder {gt_dir} does not exist")
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"prediction folder {pred_dir} does not exist")
    if videos is None:
        videos = sorted(p.name for p in gt_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        extra = sorted(p.name for p in pred_dir.iterdir() if p.is_dir() and not (gt_dir / p.name).is_dir())
        if extra:
            raise ValueError(f"prediction videos without ground truth: {extra[:5]}; pass videos= to choose a subset")
    if not videos:
        raise ValueError(f"no videos found under {gt_dir}")
    pairs = []
    for video in videos:
        frames = sorted(p.name for p in (gt_dir / video).glob("*.png"))
        if not frames:
            raise FileNotFoundError(f"no PNG frames under {gt_dir / video}")
        missing = [name for name in frames if not (pred_dir / video / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"video {video!r}: {len(missing)} ground-truth frames have no prediction in {pred_dir / video} "
                f"(first: {missing[0]}); predict every annotated frame"
            )
        pairs.append((video, frames))
    return pairs


CATEGORIES_FILE = "panoVIPSeg_categories.json"


def find_label_space(gt_dir: str | Path) -> tuple[int, tuple[int, ...], str]:
    """The label space of a ground-truth panomasks folder: (num_classes, thing classes, where it came from).

    Read from the ``panoVIPSeg_categories.json`` (a list of ``{"id", "isthing", ...}``, id = raw class - 1) in
    ``gt_dir`` or its parent, where the VIPSeg release and ``omg data synth --format vipseg`` put it; VIPSeg's own 124
    categories when there is none. Thing classes decide which segments STQ tracks and VPQ counts as things, so a
    data set with other categories must not be scored with VIPSeg's list.
    """
    gt_root = Path(gt_dir)
    for path in (gt_root / CATEGORIES_FILE, gt_root.parent / CATEGORIES_FILE):
        if path.is_file():
            return (*_read_label_space(path), str(path))
    return VIPSEG_NUM_CLASSES, VIPSEG_THING_CLASSES, f"VIPSeg's {VIPSEG_NUM_CLASSES} categories (no {CATEGORIES_FILE})"


def _read_label_space(path: Path) -> tuple[int, tuple[int, ...]]:
    from omg_data.vipseg import read_vipseg_categories  # the data set's own reader: schema checks, unique ids

    categories = read_vipseg_categories(path)
    ids = [category.id for category in categories]
    if not ids or min(ids) < 0:
        raise ValueError(f"{path}: category ids must be non-negative (id = raw mask class - 1), and there must be some")
    return max(ids) + 1, tuple(sorted(category.id for category in categories if category.is_thing))


def evaluate_vipseg(
    pred_dir: str | Path,
    gt_dir: str | Path,
    *,
    videos: Sequence[str] | None = None,
    window_sizes: Sequence[int] = (0, 5, 10, 15),
    annotation_stride: int = 5,
    num_classes: int | None = None,
    thing_classes: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """VPQ (VIPSeg evaluator) and STQ (deeplab2) of predicted VIPSeg masks against the ground truth.

    Arguments:
      pred_dir: folder of predicted ``<video>/<frame>.png`` raw masks.
      gt_dir: folder of ground-truth raw masks (VIPSeg ``panomasks``), same names.
      videos: video folder names to evaluate; default every folder of gt_dir.
      window_sizes: VPQ window sizes k in video frames.
      annotation_stride: video frames between annotated frames (5 in VIPSeg).
      num_classes, thing_classes: the label space; by default :func:`find_label_space` of ``gt_dir`` (the data
        set's ``panoVIPSeg_categories.json``, else VIPSeg's 124 categories). Give both or neither.
      device: where the counting runs.

    Returns:
      the keys of :meth:`VideoPanopticQuality.compute` plus "stq", "aq", "sq", "num_videos" and "label_space"
      (where the categories came from).
    """
    if (num_classes is None) != (thing_classes is None):
        raise ValueError("give both num_classes and thing_classes (or neither, to read the data set's categories)")
    if num_classes is None or thing_classes is None:
        num_classes, thing_classes, label_space = find_label_space(gt_dir)
    else:
        label_space = f"{num_classes} categories given by the caller"
    vpq = VideoPanopticQuality(num_classes, thing_classes, VIPSEG_LABEL_DIVISOR, _VOID_LABEL, window_sizes,
                               annotation_stride)
    stq = SegmentationTrackingQuality(num_classes, thing_classes, VIPSEG_LABEL_DIVISOR, _VOID_LABEL)
    for video, frames in items_for_this_rank(list_video_frames(Path(pred_dir), Path(gt_dir), videos)):
        decoded = []
        for folder in (Path(gt_dir), Path(pred_dir)):
            maps = [decode_vipseg_panomask(_read_mask(folder / video / name), num_classes, thing_classes)
                    for name in frames]
            shapes = {tuple(m.shape) for m in maps}
            if len(shapes) != 1:
                raise ValueError(f"video {video!r} in {folder}: frames differ in size {sorted(shapes)}")
            decoded.append(torch.stack(maps).to(device))  # T x H x W
        gt_ids, pred_ids = decoded
        if gt_ids.shape != pred_ids.shape:
            raise ValueError(f"video {video!r}: prediction size {tuple(pred_ids.shape[1:])} differs from the "
                             f"ground truth {tuple(gt_ids.shape[1:])}; predict at annotation resolution")
        vpq.update(pred_ids, gt_ids)
        stq.update(pred_ids, gt_ids)
    vpq.sync()
    stq.sync()
    results = vpq.compute()
    results.update(stq.compute())
    results["num_videos"] = int(vpq.num_videos)
    results["label_space"] = label_space
    return results
