"""Boundary matching of DAVIS's F measure: 1-pixel boundary maps, disk dilation and matched-pixel counts.

Follows ``davis2017-evaluation`` (``metrics.f_measure``): ``_seg2bmap`` marks a pixel whose east, south or south-east
neighbour differs (with its own rules for the last row and column), both boundaries are dilated with
``skimage.morphology.disk(r)`` through ``cv2.dilate`` (pixels outside the image never count), and precision/recall
count boundary pixels that fall inside the other mask's dilated boundary.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from omg_eval.kernels.video_extension import video_extension


def boundary_radius(height: int, width: int, bound_th: float = 0.008) -> int:
    """Dilation radius in pixels: ``bound_th`` itself when >= 1, otherwise ceil(bound_th x image diagonal).

    Raises:
      ValueError: for a non-positive threshold or a fractional pixel count (disk(1.5) is an even-sized kernel whose
        centre cv2 places off-grid; the official code never uses one).
    """
    if bound_th <= 0:
        raise ValueError(f"bound_th must be positive, got {bound_th}")
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(f"bound_th >= 1 is a radius in pixels and must be a whole number, got {bound_th}")
        return int(bound_th)
    return int(math.ceil(bound_th * math.sqrt(height * height + width * width)))


def boundary_maps(masks: torch.Tensor) -> torch.Tensor:
    """DAVIS ``_seg2bmap`` on a batch.

    Arguments:
      masks: (B, H, W) bool.

    Returns:
      (B, H, W) bool boundary maps.
    """
    east = torch.zeros_like(masks)
    south = torch.zeros_like(masks)
    south_east = torch.zeros_like(masks)
    east[:, :, :-1] = masks[:, :, 1:]
    south[:, :-1, :] = masks[:, 1:, :]
    south_east[:, :-1, :-1] = masks[:, 1:, 1:]
    bmap = (masks ^ east) | (masks ^ south) | (masks ^ south_east)
    # The official overrides, in this order: last row looks east only, last column south only, corner never.
    bmap[:, -1, :] = masks[:, -1, :] ^ east[:, -1, :]
    bmap[:, :, -1] = masks[:, :, -1] ^ south[:, :, -1]
    bmap[:, -1, -1] = False
    return bmap


def disk_half_widths(radius: int) -> list[int]:
    """Half width of each row of ``skimage.morphology.disk(radius)`` (offsets with dx^2 + dy^2 <= radius^2)."""
    return [math.isqrt(radius * radius - dy * dy) for dy in range(radius + 1)]


def dilate_disk(bmaps: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary dilation by a disk, as ``cv2.dilate`` with ``disk(radius)``: out-of-image pixels never contribute.

    Arguments:
      bmaps: (B, H, W) bool.
      radius: disk radius in pixels.

    Returns:
      (B, H, W) bool.
    """
    batch, height, width = bmaps.shape
    rows = bmaps.to(torch.float32).reshape(batch * height, 1, width)
    # The disk is a stack of horizontal segments: dilate each row once per distinct half width, then OR shifted rows.
    horizontal: dict[int, torch.Tensor] = {}
    dilated = torch.zeros_like(bmaps)
    for dy in range(-radius, radius + 1):
        if abs(dy) >= height:  # a row of the disk that lies wholly outside a frame flatter than the radius
            continue
        half = disk_half_widths(radius)[abs(dy)]
        if half not in horizontal:
            pooled = F.max_pool1d(rows, kernel_size=2 * half + 1, stride=1, padding=half) if half else rows
            horizontal[half] = pooled.reshape(batch, height, width) > 0
        segment = horizontal[half]
        if dy >= 0:
            dilated[:, : height - dy, :] |= segment[:, dy:, :]
        else:
            dilated[:, -dy:, :] |= segment[:, : height + dy, :]
    return dilated


def boundary_match_counts_torch(fg_masks: torch.Tensor, gt_masks: torch.Tensor, radius: int) -> torch.Tensor:
    """Pure-PyTorch :func:`boundary_match_counts` (same integers)."""
    fg_bmaps, gt_bmaps = boundary_maps(fg_masks), boundary_maps(gt_masks)
    fg_match = (fg_bmaps & dilate_disk(gt_bmaps, radius)).flatten(1).sum(1)
    gt_match = (gt_bmaps & dilate_disk(fg_bmaps, radius)).flatten(1).sum(1)
    return torch.stack([fg_bmaps.flatten(1).sum(1), gt_bmaps.flatten(1).sum(1), fg_match, gt_match], dim=1).to(
        torch.int64
    )


def boundary_match_counts(fg_masks: torch.Tensor, gt_masks: torch.Tensor, radius: int) -> torch.Tensor:
    """Boundary pixel counts of DAVIS's F measure for a batch of (prediction, ground truth) mask pairs.

    Fused C++/CUDA kernel when available (``OMG_EVAL_BACKEND=fused|torch`` overrides), PyTorch otherwise.

    Arguments:
      fg_masks: (B, H, W) bool predicted masks (void pixels already cleared by the caller).
      gt_masks: (B, H, W) bool ground-truth masks.
      radius: dilation radius in pixels (see :func:`boundary_radius`).

    Returns:
      (B, 4) int64: boundary pixels of the prediction, of the ground truth, prediction boundary pixels within the
      radius of the ground-truth boundary, ground-truth boundary pixels within the radius of the prediction boundary.
    """
    if fg_masks.dim() != 3 or fg_masks.shape != gt_masks.shape:
        raise ValueError(
            f"fg_masks {tuple(fg_masks.shape)} and gt_masks {tuple(gt_masks.shape)} must both be (B, H, W) of one shape"
        )
    if radius < 0:
        raise ValueError(f"radius must be non-negative, got {radius}")
    fg_masks, gt_masks = fg_masks.to(torch.bool), gt_masks.to(torch.bool)
    if fg_masks.numel() == 0:
        return torch.zeros(fg_masks.shape[0], 4, dtype=torch.int64, device=fg_masks.device)
    extension = video_extension()
    if extension is None:
        return boundary_match_counts_torch(fg_masks, gt_masks, radius)
    return extension.boundary_match_counts(fg_masks.contiguous(), gt_masks.contiguous(), int(radius))


def _object_overlaps(
    pred_ids: torch.Tensor, gt_ids: torch.Tensor, num_objects: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per object and frame, the pixels in both masks and in either, from one histogram of (frame, gt id, pred id).

    Ids outside 1..num_objects (background, void, later objects) count for no object.

    Returns:
      (intersections (K, T), unions (K, T)) int64.
    """
    num_frames, labels = pred_ids.shape[0], num_objects + 1
    # Fold every id outside 1..K into 0 so that the histogram stays (K + 1) x (K + 1) per frame.
    gt_ids = torch.where(gt_ids.to(torch.int64) > num_objects, 0, gt_ids.to(torch.int64))
    pred_ids = torch.where(pred_ids.to(torch.int64) > num_objects, 0, pred_ids.to(torch.int64))
    frame_offset = torch.arange(num_frames, device=gt_ids.device)[:, None, None] * labels * labels  # T x 1 x 1
    keys = frame_offset + gt_ids * labels + pred_ids  # T x H x W
    histogram = torch.bincount(keys.flatten(), minlength=num_frames * labels * labels).view(num_frames, labels, labels)
    objects = torch.arange(1, labels, device=gt_ids.device)
    intersections = histogram[:, objects, objects]  # T x K
    unions = histogram.sum(2)[:, 1:] + histogram.sum(1)[:, 1:] - intersections  # T x K
    return intersections.T, unions.T


def object_counts_torch(pred_ids: torch.Tensor, gt_ids: torch.Tensor, num_objects: int, radius: int) -> torch.Tensor:
    """Pure-PyTorch :func:`object_counts` (same integers; boundary counts via :func:`boundary_match_counts`, which
    still uses the CUDA kernel for GPU tensors)."""
    intersections, unions = _object_overlaps(pred_ids, gt_ids, num_objects)  # K x T
    object_ids = torch.arange(1, num_objects + 1, device=gt_ids.device, dtype=gt_ids.dtype)[:, None, None, None]
    pred_masks = (pred_ids[None] == object_ids).flatten(0, 1)  # K*T x H x W
    gt_masks = (gt_ids[None] == object_ids).flatten(0, 1)  # K*T x H x W
    extension = video_extension()
    if extension is not None and pred_masks.is_cuda:
        boundary = extension.boundary_match_counts(pred_masks.contiguous(), gt_masks.contiguous(), int(radius))
    else:
        boundary = boundary_match_counts_torch(pred_masks, gt_masks, radius)
    boundary = boundary.view(num_objects, -1, 4)
    return torch.cat([intersections[..., None], unions[..., None], boundary], dim=2).to(torch.int64)


def object_counts(pred_ids: torch.Tensor, gt_ids: torch.Tensor, num_objects: int, radius: int) -> torch.Tensor:
    """Every count of DAVIS's J and F for each object of a sequence, from its id maps.

    Object k's masks are the pixels whose id equals k, so void (255) and ids above ``num_objects`` belong to no object.
    The fused CPU kernel does one pass per (object, frame); GPU tensors and ``OMG_EVAL_BACKEND=torch`` take the
    PyTorch formulation. Both return the same integers.

    Arguments:
      pred_ids: (T, H, W) uint8 predicted id maps.
      gt_ids: (T, H, W) uint8 ground-truth id maps.
      num_objects: K, the objects are ids 1..K.
      radius: boundary dilation radius in pixels.

    Returns:
      (K, T, 6) int64: intersection, union, prediction boundary pixels, ground-truth boundary pixels, prediction
      boundary pixels near the ground-truth boundary, ground-truth boundary pixels near the prediction boundary.
    """
    if pred_ids.dim() != 3 or pred_ids.shape != gt_ids.shape:
        raise ValueError(f"pred_ids {tuple(pred_ids.shape)} and gt_ids {tuple(gt_ids.shape)} must both be (T, H, W)")
    if pred_ids.dtype != torch.uint8 or gt_ids.dtype != torch.uint8:
        raise ValueError("pred_ids and gt_ids must be uint8 id maps (DAVIS ids are 0..255)")
    if not 0 <= num_objects < 255:
        raise ValueError(f"num_objects must be in [0, 254], got {num_objects}")
    extension = video_extension()
    if extension is None or pred_ids.is_cuda:
        return object_counts_torch(pred_ids, gt_ids, num_objects, radius)
    return extension.davis_object_counts(pred_ids.contiguous(), gt_ids.contiguous(), int(num_objects), int(radius))
