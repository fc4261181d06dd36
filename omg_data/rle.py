"""COCO run-length encoding through pycocotools (masks are Fortran-ordered H x W uint8 for it)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils


def encode_mask(mask: torch.Tensor | np.ndarray) -> dict[str, Any]:
    """Encodes one H x W bool mask as compressed RLE with a JSON-ready string `counts`."""
    array = np.asfortranarray(np.asarray(mask, dtype=np.uint8))
    rle = mask_utils.encode(array)
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Decodes any COCO segmentation: polygon list, uncompressed RLE (list counts) or compressed RLE.

    Arguments:
      segmentation: the `segmentation` value of a COCO / YouTube-VIS record (raw or validated).
      height, width: the image size (needed for polygons and uncompressed RLE).
    Returns:
      H x W bool array. Raises ValueError on a malformed value (callers add file and record).
    """
    if hasattr(segmentation, "model_dump"):  # a validated schema object (omg_data.schemas.RleMask)
        segmentation = segmentation.model_dump()
    if isinstance(segmentation, list):
        if not segmentation:
            return np.zeros((height, width), dtype=bool)
        polygons = [list(map(float, polygon)) for polygon in segmentation]
        if any(len(polygon) < 6 or len(polygon) % 2 for polygon in polygons):
            raise ValueError("a polygon needs an even number of coordinates and at least 3 points")
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        size = [int(v) for v in segmentation["size"]]
        if size != [height, width]:
            raise ValueError(f"RLE size {size} does not match the image size {[height, width]}")
        if isinstance(segmentation["counts"], list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
            if sum(segmentation["counts"]) != height * width:
                raise ValueError("uncompressed RLE counts do not sum to height * width")
        else:
            counts = segmentation["counts"]
            rle = {"size": size, "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    else:
        raise ValueError("segmentation must be a polygon list or an RLE dict with 'size' and 'counts'")
    with warnings.catch_warnings():
        # pycocotools' decode trips a NumPy 2 copy-keyword DeprecationWarning on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


def rasterize_polygons(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Rasterises COCO polygons ([x0, y0, x1, y1, ...] lists) exactly as pycocotools does: H x W bool."""
    return decode_segmentation(polygons, height, width)
