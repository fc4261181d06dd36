"""COCO segmentations as run-length encodings, through pycocotools (masks are Fortran-ordered H x W uint8 for it).

:func:`segmentation_to_rle` is the one conversion of a COCO ``segmentation`` (polygon list, uncompressed RLE,
compressed RLE) to a compressed RLE in the project: the readers here and the evaluators of ``omg_eval`` both use it,
so an input is accepted or refused the same way everywhere. It follows pycocotools' ``COCO.annToRLE``, which is what
``COCOeval`` (and ``ytvoseval``, frame by frame) run on ground truths and detections:

* a polygon list goes through ``frPyObjects`` and its parts are merged into one mask. An empty list makes
  ``frPyObjects`` fail (``IndexError``), so it is an error here too, as is anything else ``frPyObjects`` refuses (a
  first polygon of fewer than 5 numbers, non-numbers); what it accepts (an odd number of coordinates, whose last one it
  ignores; short later parts) is rasterised as it rasterises it.
* an uncompressed RLE (``counts`` a list) is compressed by ``frPyObjects``, which reads the counts as uint32 (a
  negative or too large count fails). It does not check that the runs cover the image: fewer pixels leave the rest of
  a decoded mask uninitialised and more write past it, so counts that do not add up to height x width are refused.
* a compressed RLE (``counts`` a string) is used as given.

pycocotools' ``loadRes`` is narrower for result files: it takes only compressed RLEs (polygons and list counts fail
in its ``area`` call). Both evaluators and readers accept all three forms for detections as well.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils

Rle = dict[str, Any]  # {"size": [height, width], "counts": str | bytes}


def encode_mask(mask: torch.Tensor | np.ndarray) -> dict[str, Any]:
    """Encodes one H x W bool mask as compressed RLE with a JSON-ready string `counts`."""
    array = np.asfortranarray(np.asarray(mask, dtype=np.uint8))
    rle = mask_utils.encode(array)
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def _fail(where: str | None, problem: str) -> ValueError:
    return ValueError(f"{where}: {problem}" if where else problem)


def _check_uncompressed(rle: dict, height: int, width: int, where: str | None) -> None:
    """The checks pycocotools leaves out of ``frPyObjects`` on an uncompressed RLE (see the module docstring)."""
    try:
        counts = np.array(rle["counts"], dtype=np.uint32)  # what frPyObjects does with them
    except (OverflowError, ValueError, TypeError) as error:
        raise _fail(
            where, f"uncompressed RLE counts must be run lengths from 0 to 2^32 - 1 (pycocotools: {error})"
        ) from error
    if counts.ndim != 1:
        raise _fail(where, "uncompressed RLE counts must be a flat list of run lengths")
    covered = int(counts.sum(dtype=np.uint64))
    if covered != height * width:
        raise _fail(
            where,
            f"uncompressed RLE counts cover {covered} pixels, not the {height * width} of a {height} x {width} image "
            "(pycocotools would decode them into uninitialised or overrun memory)",
        )


def segmentation_to_rle(segmentation: Any, height: int, width: int, where: str | None = None) -> Rle:
    """The compressed COCO RLE of one segmentation, as pycocotools' ``COCO.annToRLE`` makes it.

    Arguments:
      segmentation: a polygon list, an RLE dict (``counts`` a list or a string; a validated
        ``omg_data.schemas.RleMask`` too) or an (H, W) bool/0-1 tensor or array.
      height, width: the image size.
      where: names the record in error messages (``"image 3: detection 7"``); without it the message is bare and
        the caller adds file and record.

    Returns:
      ``{"size": [height, width], "counts": str | bytes}``; compressed counts are returned as given, unchecked (the
      fused kernels of ``omg_eval`` decode and check them).

    Raises:
      ValueError: for what pycocotools refuses (an empty polygon list, ...), an RLE whose size is not the image's,
        uncompressed counts that do not cover the image, or any other value.
    """
    if isinstance(segmentation, dict):
        size, counts = segmentation.get("size"), segmentation.get("counts")
        if size is None or counts is None:
            raise _fail(where, "an RLE needs both 'size' and 'counts'")
        try:
            size_ok = len(size) == 2 and int(size[0]) == height and int(size[1]) == width
        except (TypeError, ValueError):
            size_ok = False
        if not size_ok:
            raise _fail(
                where,
                f"RLE size {size!r} does not match the image size [{height}, {width}]; encode masks at the "
                "annotation resolution",
            )
        if isinstance(counts, (str, bytes)):
            return {"size": [height, width], "counts": counts}
        _check_uncompressed(segmentation, height, width, where)
        return mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    if isinstance(segmentation, list):
        if not segmentation:
            raise _fail(
                where,
                "an empty polygon list (pycocotools' annToRLE fails on it with IndexError); give at least one "
                "polygon or an RLE, or leave the object out",
            )
        for part in segmentation:
            if isinstance(part, dict) and "counts" in part and "size" in part and not isinstance(part["counts"], str):
                _check_uncompressed(part, height, width, where)  # frPyObjects also takes a list of uncompressed RLEs
        try:
            return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        except Exception as error:  # pycocotools raises bare Exception, IndexError, TypeError, ValueError ...
            raise _fail(
                where,
                f"pycocotools cannot rasterise this polygon list ({type(error).__name__}: {error}); a polygon is a "
                "flat [x0, y0, x1, y1, ...] list of at least 3 points",
            ) from error
    if isinstance(segmentation, (torch.Tensor, np.ndarray)):
        mask = segmentation.detach().cpu().numpy() if isinstance(segmentation, torch.Tensor) else segmentation
        if mask.shape != (height, width):
            raise _fail(
                where,
                f"a mask of shape {tuple(mask.shape)} does not match the image size ({height}, {width}); resize masks "
                "to the original image first",
            )
        return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    if hasattr(segmentation, "model_dump"):  # a validated schema object (omg_data.schemas.RleMask)
        return segmentation_to_rle(segmentation.model_dump(), height, width, where)
    raise _fail(
        where,
        f"unsupported segmentation {type(segmentation).__name__}; use a COCO RLE dict, a polygon list or an (H, W) "
        "bool mask",
    )


def decode_rle(rle: Rle) -> np.ndarray:
    """H x W bool mask of a compressed RLE (pycocotools' decode)."""
    with warnings.catch_warnings():
        # pycocotools' decode trips a NumPy 2 copy-keyword DeprecationWarning on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Decodes any COCO segmentation (see :func:`segmentation_to_rle`): H x W bool array.

    Raises ValueError on a value pycocotools refuses or would decode into garbage (callers add file and record).
    """
    return decode_rle(segmentation_to_rle(segmentation, height, width))


def rasterize_polygons(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Rasterises COCO polygons ([x0, y0, x1, y1, ...] lists) exactly as pycocotools does: H x W bool."""
    return decode_segmentation(polygons, height, width)
