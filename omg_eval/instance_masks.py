"""Areas and IoUs of COCO run-length encodings (the conversion from every COCO segmentation form is
:func:`omg_data.rle.segmentation_to_rle`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools import mask as coco_mask

from omg_data.rle import Rle

# pycocotools' ``area`` sizes a scratch array as ``np.array((n,), dtype=np.uint8)``; under NumPy 2 that raises
# OverflowError for n >= 256 RLEs in one call (pycocotools 2.0.11), so areas are taken in calls of at most 255.
_AREA_CALL_LIMIT = 255


def mask_areas(rles: Sequence[Rle]) -> np.ndarray:
    """(N,) int64 pixel counts of compressed RLEs, any N (every area the evaluators take goes through here)."""
    rles = list(rles)
    areas = np.zeros(len(rles), dtype=np.int64)
    for start in range(0, len(rles), _AREA_CALL_LIMIT):
        chunk = rles[start : start + _AREA_CALL_LIMIT]
        areas[start : start + len(chunk)] = np.asarray(coco_mask.area(chunk), dtype=np.int64).reshape(-1)
    return areas


def mask_ious(det_rles: Sequence[Rle], gt_rles: Sequence[Rle], gt_crowd: np.ndarray) -> np.ndarray:
    """(D, G) IoUs; for a crowd ground truth the denominator is the detection's area (COCO convention)."""
    if not det_rles or not gt_rles:
        return np.zeros((len(det_rles), len(gt_rles)))
    return np.asarray(coco_mask.iou(list(det_rles), list(gt_rles), [int(c) for c in gt_crowd]), dtype=np.float64)
