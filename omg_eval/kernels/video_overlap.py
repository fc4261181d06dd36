"""Pixel overlaps of every (predicted track, ground-truth track) pair of a video: the inner loop of YouTube-VIS IoU.

The official ``ytvoseval`` sums, over the frames of a video, the intersection and the union of a predicted and a
ground-truth mask, then divides. Because union = area(pred) + area(gt) - intersection frame by frame, the sums only
need the total intersection of each pair and the total area of each track, which is one pass over the pixels.
"""

from __future__ import annotations

import torch

from omg_eval.kernels.video_extension import video_extension

# Float32 matmuls are exact while every partial sum stays below 2**24; chunks of this many pixels guarantee that.
_EXACT_FLOAT32_PIXELS = 1 << 24


def track_intersections_torch(pred_masks: torch.Tensor, gt_masks: torch.Tensor) -> torch.Tensor:
    """Pure-PyTorch pair intersections (the fallback of :func:`track_intersections`).

    Arguments:
      pred_masks: (D, N) bool, every predicted track flattened over frames and pixels.
      gt_masks: (G, N) bool, ground-truth tracks on the same frames and pixels.

    Returns:
      (D, G) int64, the number of pixels inside both tracks.
    """
    num_pred, num_pixels = pred_masks.shape
    num_gt = gt_masks.shape[0]
    intersections = torch.zeros(num_pred, num_gt, dtype=torch.int64, device=pred_masks.device)
    if num_pred == 0 or num_gt == 0:
        return intersections
    # Bound the float copies to about 256 MB whatever the video size.
    chunk = max(1, min(_EXACT_FLOAT32_PIXELS, (64 << 20) // (num_pred + num_gt)))
    for start in range(0, num_pixels, chunk):
        pred_chunk = pred_masks[:, start : start + chunk].to(torch.float32)  # D x n
        gt_chunk = gt_masks[:, start : start + chunk].to(torch.float32)  # G x n
        intersections += (pred_chunk @ gt_chunk.T).round().to(torch.int64)
    return intersections


def track_intersections(pred_masks: torch.Tensor, gt_masks: torch.Tensor) -> torch.Tensor:
    """Pixels shared by every (predicted track, ground-truth track) pair, summed over all frames.

    Uses the fused C++/CUDA kernel when available (``OMG_EVAL_BACKEND=fused|torch`` overrides) and
    :func:`track_intersections_torch` otherwise; both return the same integers.

    Arguments:
      pred_masks: (D, N) bool; N = frames x height x width (a track's absent frames are all False).
      gt_masks: (G, N) bool on the same device.

    Returns:
      (D, G) int64 intersections.
    """
    if pred_masks.dim() != 2 or gt_masks.dim() != 2:
        raise ValueError(
            f"pred_masks {tuple(pred_masks.shape)} and gt_masks {tuple(gt_masks.shape)} must be 2-D (tracks x pixels); "
            "flatten each track's (T, H, W) masks with .flatten(1)"
        )
    if pred_masks.shape[1] != gt_masks.shape[1]:
        raise ValueError(
            f"pred_masks cover {pred_masks.shape[1]} pixels but gt_masks cover {gt_masks.shape[1]}; both must hold the "
            "same frames at the same resolution"
        )
    pred_masks, gt_masks = pred_masks.to(torch.bool), gt_masks.to(torch.bool)
    extension = video_extension()
    if extension is None:
        return track_intersections_torch(pred_masks, gt_masks)
    return extension.track_intersections(pred_masks.contiguous(), gt_masks.contiguous())


def video_iou(pred_masks: torch.Tensor, gt_masks: torch.Tensor) -> torch.Tensor:
    """YouTube-VIS track IoU: intersections summed over frames over unions summed over frames (0 when both empty).

    Arguments:
      pred_masks: (D, T, H, W) bool predicted tracks.
      gt_masks: (G, T, H, W) bool ground-truth tracks.

    Returns:
      (D, G) float64 IoU.
    """
    intersections = track_intersections(pred_masks.flatten(1), gt_masks.flatten(1)).cpu()
    pred_areas = pred_masks.flatten(1).sum(1, dtype=torch.int64).cpu()
    gt_areas = gt_masks.flatten(1).sum(1, dtype=torch.int64).cpu()
    return iou_from_counts(intersections, pred_areas, gt_areas)


def iou_from_counts(intersections: torch.Tensor, pred_areas: torch.Tensor, gt_areas: torch.Tensor) -> torch.Tensor:
    """(D, G) float64 IoU from (D, G) intersections and (D,), (G,) total areas; 0 where the union is empty, as the
    official evaluator does."""
    unions = pred_areas[:, None] + gt_areas[None, :] - intersections  # D x G
    ious = intersections.to(torch.float64) / unions.clamp(min=1).to(torch.float64)
    return torch.where(unions > 0, ious, torch.zeros_like(ious))
