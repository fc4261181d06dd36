"""Prompt sampling for interactive segmentation: positive clicks and boxes drawn from each mask."""

from __future__ import annotations

import numpy as np
import torch

from omg_data.geometry import mask_boxes_xyxy
from omg_data.sample import SamplePrompts


def sample_prompts(masks: torch.Tensor, num_points: int, rng: np.random.Generator, frame_index: int = 0) -> SamplePrompts:
    """Samples `num_points` positive clicks uniformly inside each mask, plus each mask's tight box.

    Clicks are pixel indices (x = column, y = row), torchvision's KeyPoints convention, so flips and
    crops in `omg_data.augment` map them exactly; every click lies inside its mask.

    Arguments:
      masks: S x H x W bool, none empty.
      num_points: clicks per mask (sampled with replacement when a mask is smaller).
      rng: the generator (seed it per sample for reproducible prompts).
      frame_index: the frame the masks come from.
    Returns:
      SamplePrompts with points S x P x 2, point_labels S x P (all 1) and boxes S x 4.
    """
    count = masks.shape[0]
    points = torch.zeros(count, num_points, 2, dtype=torch.float32)
    for index in range(count):
        ys, xs = np.nonzero(masks[index].numpy())
        if len(ys) == 0:
            raise ValueError(f"mask {index} is empty: a prompt needs at least one pixel")
        chosen = rng.choice(len(ys), size=num_points, replace=len(ys) < num_points)
        points[index, :, 0] = torch.from_numpy(xs[chosen].astype(np.float32))
        points[index, :, 1] = torch.from_numpy(ys[chosen].astype(np.float32))
    return SamplePrompts(
        points=points,
        point_labels=torch.ones(count, num_points, dtype=torch.int64),
        boxes=mask_boxes_xyxy(masks),
        frame_index=frame_index,
    )
