"""The standard click simulation of interactive segmentation evaluation (RITM / SAM protocol).

The next click goes to the error region (missed object pixels, or wrongly added pixels) with the largest connected
component, at the point of that component farthest from its boundary (the image border counts as boundary): positive
when the point belongs to the object, negative otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def next_click(gt_mask: torch.Tensor, pred_mask: torch.Tensor) -> Click | None:
    """Where the simulated user clicks next.

    Arguments:
      gt_mask: (H, W) bool object mask.
      pred_mask: (H, W) bool current prediction (all False before the first click).

    Returns:
      The click, or None when the prediction has no error left.
    """
    if gt_mask.shape != pred_mask.shape or gt_mask.dim() != 2:
        raise ValueError(f"gt_mask {tuple(gt_mask.shape)} and pred_mask {tuple(pred_mask.shape)} must be one (H, W)")
    ndimage = _scipy_ndimage()
    gt = gt_mask.to(device="cpu", dtype=torch.bool).numpy()
    pred = pred_mask.to(device="cpu", dtype=torch.bool).numpy()
    error = gt ^ pred
    rows_with_error, cols_with_error = np.flatnonzero(error.any(axis=1)), np.flatnonzero(error.any(axis=0))
    if len(rows_with_error) == 0:
        return None
    # Everything below runs on the bounding box of the errors: regions lie inside it, connected-component numbering
    # follows the same raster order, and the distance-transform argument below holds for any box that holds the region.
    top, left = int(rows_with_error[0]), int(cols_with_error[0])
    window = (slice(top, int(rows_with_error[-1]) + 1), slice(left, int(cols_with_error[-1]) + 1))
    gt, error = gt[window], error[window]
    # missed and extra pixels are separate regions even where they touch: they ask for clicks of opposite sign
    components, count = ndimage.label(error & gt)
    extra_components, extra_count = ndimage.label(error & ~gt)
    components = np.where(extra_components > 0, extra_components + count, components)
    sizes = np.bincount(components.ravel(), minlength=count + extra_count + 1)
    sizes[0] = 0
    label = int(np.argmax(sizes))
    # The distance transform runs on the region's bounding box only: every pixel of the box border padding is
    # outside the region, and clamping a farther zero pixel onto that border only brings it closer, so distances
    # inside the box equal the whole image's; row-major order inside the box is the image's, so ties resolve alike.
    rows, cols = ndimage.find_objects(components, max_label=label)[label - 1]
    largest = components[rows, cols] == label
    # zero padding makes the image border a boundary, so clicks keep away from the frame as from the region's edge
    distance = ndimage.distance_transform_edt(np.pad(largest, 1))[1:-1, 1:-1]
    box_y, box_x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    y, x = rows.start + int(box_y), cols.start + int(box_x)
    return Click(y=top + y, x=left + x, positive=bool(gt[y, x]))


def mask_iou(pred_mask: torch.Tensor, gt_mask: torch.Tensor) -> float:
    """IoU of two (H, W) bool masks (1.0 when both are empty)."""
    if pred_mask.device.type == "cpu" and gt_mask.device.type == "cpu":
        # called once per click: NumPy's single-threaded count beats waking torch's thread pool for one image
        pred, gt = pred_mask.to(torch.bool).numpy(), gt_mask.to(torch.bool).numpy()
        union = int(np.count_nonzero(pred | gt))
        return int(np.count_nonzero(pred & gt)) / union if union else 1.0
    union = int((pred_mask | gt_mask).sum())
    return int((pred_mask & gt_mask).sum()) / union if union else 1.0
