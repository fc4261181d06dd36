"""The standard click simulation of interactive segmentation evaluation: RITM's ``Clicker`` (Sofiiuk et al.,
isegm/inference/clicker.py), which SimpleClick and FocalClick evaluate with too.

The next click goes to the error pixel farthest from the boundary of its error: the distance transforms of the
missed pixels (false negatives) and of the wrongly added ones (false positives) are taken over the whole image, the
image border counting as boundary; the click is positive when the deepest missed pixel lies strictly deeper than the
deepest added one (a tie clicks negative), at the first pixel in raster order of that depth. A pixel clicked before
is never clicked again, and ground-truth pixels marked ignore are neither errors nor counted in the IoU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class Click:
    """One simulated click: pixel (y, x) and whether it marks the object (positive) or the background."""

    y: int
    x: int
    positive: bool


def _scipy_ndimage():
    try:
        from scipy import ndimage
    except ImportError as error:  # scipy is needed only here
        raise ImportError("interactive evaluation needs scipy (pip install scipy) for the click simulation") from error
    return ndimage


def next_click(
    gt_mask: torch.Tensor,
    pred_mask: torch.Tensor,
    clicked: Sequence[Click] = (),
    ignore_mask: torch.Tensor | None = None,
) -> Click | None:
    """Where the simulated user clicks next (RITM's ``Clicker._get_next_click``).

    Arguments:
      gt_mask: (H, W) bool object mask.
      pred_mask: (H, W) bool current prediction (all False before the first click).
      clicked: the clicks made so far (their pixels are not clicked again).
      ignore_mask: (H, W) bool ground-truth pixels to ignore (RITM's label -1), or None.

    Returns:
      The click, or None when the prediction has no error left (RITM would go on clicking a background pixel, which
      cannot change NoC: the threshold was reached).
    """
    if gt_mask.shape != pred_mask.shape or gt_mask.dim() != 2:
        raise ValueError(f"gt_mask {tuple(gt_mask.shape)} and pred_mask {tuple(pred_mask.shape)} must be one (H, W)")
    if ignore_mask is not None and ignore_mask.shape != gt_mask.shape:
        raise ValueError(f"ignore_mask {tuple(ignore_mask.shape)} must be the shape of gt_mask {tuple(gt_mask.shape)}")
    ndimage = _scipy_ndimage()
    gt = gt_mask.to(device="cpu", dtype=torch.bool).numpy()
    pred = pred_mask.to(device="cpu", dtype=torch.bool).numpy()
    error = gt ^ pred
    if ignore_mask is not None:
        error &= ~ignore_mask.to(device="cpu", dtype=torch.bool).numpy()
    rows_with_error, cols_with_error = np.flatnonzero(error.any(axis=1)), np.flatnonzero(error.any(axis=0))
    if len(rows_with_error) == 0:
        return None
    not_clicked = np.ones(gt.shape, dtype=bool)
    for click in clicked:
        not_clicked[click.y, click.x] = False
    # The transforms run on the bounding box of the errors: every pixel just outside it is no error (a zero of both
    # transforms) or lies beyond the image border (the official zero padding), so distances inside the box equal the
    # whole image's, and raster order inside the box is the image's, so the first deepest pixel is the same.
    top, left = int(rows_with_error[0]), int(cols_with_error[0])
    window = (slice(top, int(rows_with_error[-1]) + 1), slice(left, int(cols_with_error[-1]) + 1))
    missed, added = (error & gt)[window], (error & ~gt)[window]
    # float32 as cv2.distanceTransform gives, so depths compare (and tie) as they do officially
    depth_missed = _depth(ndimage, missed) * not_clicked[window]
    depth_added = _depth(ndimage, added) * not_clicked[window]
    deepest_missed, deepest_added = depth_missed.max(), depth_added.max()
    if deepest_missed == 0 and deepest_added == 0:
        # every error pixel was clicked already: officially a negative click on the first pixel of zero depth in
        # the whole image (outside the box every pixel has depth 0)
        y, x = np.unravel_index(int(np.argmax(~(error & ~gt & not_clicked))), gt.shape)
        return Click(y=int(y), x=int(x), positive=False)
    positive = bool(deepest_missed > deepest_added)
    depth, deepest = (depth_missed, deepest_missed) if positive else (depth_added, deepest_added)
    box_y, box_x = np.unravel_index(int(np.argmax(depth == deepest)), depth.shape)
    return Click(y=top + int(box_y), x=left + int(box_x), positive=positive)


def _depth(ndimage: Any, region: np.ndarray) -> np.ndarray:
    """Euclidean distance of each region pixel to the nearest pixel outside it, the image border counting as
    outside (zero padding); 0 outside the region. float32."""
    if not region.any():
        return np.zeros(region.shape, dtype=np.float32)
    return ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1].astype(np.float32)


def mask_iou(pred_mask: torch.Tensor, gt_mask: torch.Tensor, ignore_mask: torch.Tensor | None = None) -> float:
    """IoU of two (H, W) bool masks, leaving out ``ignore_mask`` pixels (RITM's ``get_iou``); 1.0 when both are
    empty."""
    if ignore_mask is not None:
        keep = ~ignore_mask.to(device=pred_mask.device, dtype=torch.bool)
        pred_mask, gt_mask = pred_mask.to(torch.bool) & keep, gt_mask.to(torch.bool) & keep
    if pred_mask.device.type == "cpu" and gt_mask.device.type == "cpu":
        # called once per click: NumPy's single-threaded count beats waking torch's thread pool for one image
        pred, gt = pred_mask.to(torch.bool).numpy(), gt_mask.to(torch.bool).numpy()
        union = int(np.count_nonzero(pred | gt))
        return int(np.count_nonzero(pred & gt)) / union if union else 1.0
    union = int((pred_mask | gt_mask).sum())
    return int((pred_mask & gt_mask).sum()) / union if union else 1.0
