"""COCO run-length encodings of instance masks: conversion from every COCO segmentation form, areas and IoUs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pycocotools import mask as coco_mask

Rle = dict[str, Any]


def to_rles(segmentations: Sequence[Any], height: int, width: int, image_id: int) -> list[Rle]:
    """Compressed COCO RLEs of segmentations given as polygons, (un)compressed RLEs or (H, W) bool tensors/arrays.

    Polygons of one object are merged into one mask, as pycocotools' ``annToRLE`` does.
    """
    rles: list[Rle] = []
    for segmentation in segmentations:
        if isinstance(segmentation, (torch.Tensor, np.ndarray)):
            mask = segmentation.cpu().numpy() if isinstance(segmentation, torch.Tensor) else segmentation
            if mask.shape != (height, width):
                raise ValueError(
                    f"image {image_id}: a mask of shape {tuple(mask.shape)} does not match the image size "
                    f"({height}, {width}); resize masks to the original image first"
                )
            rles.append(coco_mask.encode(np.asfortranarray(mask.astype(np.uint8))))
        elif isinstance(segmentation, list):
            if not segmentation:
                raise ValueError(f"image {image_id}: an empty polygon list; give at least one polygon or an RLE")
            rles.append(coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width)))
        elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
            if list(segmentation["size"]) != [height, width]:
                raise ValueError(
                    f"image {image_id}: an RLE of size {segmentation['size']} does not match the image size "
                    f"[{height}, {width}]"
                )
            if isinstance(segmentation["counts"], list):
                rles.append(coco_mask.frPyObjects(segmentation, height, width))
            else:
                rles.append(segmentation)
        else:
            raise TypeError(
                f"image {image_id}: unsupported segmentation {type(segmentation).__name__}; use a COCO RLE dict, a "
                "polygon list or an (H, W) bool mask"
            )
    return rles


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


def coco_mask_counts(rle: Rle) -> bytes:
    """The compressed ``counts`` string of an RLE whose counts are still a list."""
    height, width = rle["size"]
    return coco_mask.frPyObjects(rle, height, width)["counts"]
