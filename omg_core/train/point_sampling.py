"""Sampling mask logits and target masks at sparse points, as Mask2Former trains on 12,544 points per mask instead of
whole masks.

Points are (x, y) in [0, 1] x [0, 1] of the mask canvas, read with bilinear interpolation (grid_sample,
align_corners=False, zeros outside), so a stride-4 prediction and a full-resolution target that cover the same padded
input are sampled at the same places without resizing either.

Clips are sampled as OMG-Seg's video head samples them: the T frames of a mask are stacked top to bottom into one
tall "film" (T*h x w) and points are drawn over the whole film, so one set of points covers every frame of the clip.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def point_sample(inputs: torch.Tensor, point_coords: torch.Tensor) -> torch.Tensor:
    """Bilinear reads of `inputs` at normalised points (detectron2 / mmcv `point_sample`).

    Arguments:
      inputs: N x C x H x W values (float).
      point_coords: N x P x 2 points, (x, y) in [0, 1] of each input's canvas.

    Returns:
      N x C x P values at the points.
    """
    grid = point_coords.unsqueeze(2) * 2.0 - 1.0  # N x P x 1 x 2 in grid_sample's [-1, 1]
    return F.grid_sample(inputs, grid, align_corners=False).squeeze(3)


def uniform_points(
    num_masks: int, num_points: int, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Uniformly random points.

    Arguments:
      num_masks: N, how many independent point sets.
      num_points: P.
      device: where to draw them (a generator must live on the same device).
      generator: source of randomness; the global one when None.

    Returns:
      N x P x 2 points in [0, 1).
    """
    return torch.rand(num_masks, num_points, 2, device=device, generator=generator)


def uncertain_points_with_randomness(
    mask_logits: torch.Tensor,
    num_points: int,
    oversample_ratio: float = 3.0,
    importance_sample_ratio: float = 0.75,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Points where each mask is least certain, plus uniform ones (Mask2Former's
    `get_uncertain_point_coords_with_randomness` with uncertainty -|logit|).

    Draws `num_points * oversample_ratio` uniform candidates per mask, keeps the `importance_sample_ratio` share with
    the logits closest to 0 (read at the candidates, not at the coarse pixels: a point between a -1 and a +1 pixel is
    uncertain even though neither pixel is), and fills the rest with fresh uniform points. Random draws happen in the
    official order (candidates, then the uniform rest), so a generator seeded alike gives the official points.

    Arguments:
      mask_logits: N x 1 x H x W mask logits (call it under no_grad: the points carry no gradient).
      num_points: P points per mask.
      oversample_ratio: candidates per kept point (>= 1).
      importance_sample_ratio: share of the P points chosen by uncertainty, in [0, 1].
      generator: source of randomness; the global one when None.

    Returns:
      N x P x 2 points, (x, y) in [0, 1).
    """
    if oversample_ratio < 1 or not 0 <= importance_sample_ratio <= 1:
        raise ValueError(
            f"need oversample_ratio >= 1 and importance_sample_ratio in [0, 1], got {oversample_ratio},"
            f" {importance_sample_ratio}"
        )
    num_masks = mask_logits.shape[0]
    num_candidates = int(num_points * oversample_ratio)
    candidates = uniform_points(num_masks, num_candidates, mask_logits.device, generator)  # N x P' x 2
    uncertainty = -point_sample(mask_logits, candidates).abs()[:, 0]  # N x P'
    num_uncertain = int(importance_sample_ratio * num_points)
    chosen = uncertainty.topk(num_uncertain, dim=1).indices  # N x P_u
    points = candidates.gather(1, chosen.unsqueeze(-1).expand(-1, -1, 2))
    num_random = num_points - num_uncertain
    if num_random > 0:
        points = torch.cat([points, uniform_points(num_masks, num_random, mask_logits.device, generator)], dim=1)
    return points


def as_film(masks: torch.Tensor, is_clip: bool) -> torch.Tensor:
    """The canvas points are drawn on: images unchanged, clips with their frames stacked vertically.

    Arguments:
      masks: N x h x w (images) or N x T x h x w (clips), logits or binary masks.
      is_clip: whether `masks` has the frame dimension.

    Returns:
      N x h x w, or N x (T*h) x w for clips (frame t occupies rows t*h .. (t+1)*h - 1, as OMG-Seg's
      `mask.flatten(2, 3)` lays a clip out).
    """
    return masks.flatten(1, 2) if is_clip else masks
