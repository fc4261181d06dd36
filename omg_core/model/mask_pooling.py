"""Mask pooling of frozen CLIP features: the input of the out-of-vocabulary classifier (FC-CLIP / OMG-Seg).

Two resolutions to meet at:

- "features" (official): the mask logits are resized bilinearly to the stride-32 feature grid and a cell counts
  when its resized logit is > 0. At the official 1024 px inputs that grid is 32 x 32 and fine enough.
- "masks": the stride-32 features are resized bilinearly to the mask logits' grid (stride 4) and pooled under
  the mask there. At 128 px the feature grid is 4 x 4 and cell centres lie 32 px apart, so a 20 px shape often
  covers no cell centre: "features" pooling then finds no cell and the CLIP branch has nothing to say. Pooling at
  the mask resolution weighs each cell by how much of the mask lies near it, and never loses a mask.

The tiny CLIP is trained with the same function (omg_core.clip_train), so what it learns is what OMG asks of it.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

PoolAt = Literal["features", "masks"]


def mask_pooled_sums(features: torch.Tensor, mask_logits: torch.Tensor,
                     pool_at: PoolAt = "features") -> tuple[torch.Tensor, torch.Tensor]:
    """Sums of features under each mask, and the mask areas (pooled features = sums / areas).

    Arguments:
      features: N x C x h x w feature maps (stride 32).
      mask_logits: N x Q x H x W mask logits of the same images (foreground where > 0), any resolution.
      pool_at: "features" or "masks", the grid the pooling happens on (see the module docstring).

    Returns:
      (N x Q x C feature sums, N x Q areas in cells of the grid pooled on).
    """
    if features.shape[0] != mask_logits.shape[0]:
        raise ValueError(f"features hold {features.shape[0]} images, masks {mask_logits.shape[0]}")
    if pool_at == "features":
        masks = F.interpolate(mask_logits, size=features.shape[-2:], mode="bilinear", align_corners=False)
        grid = features
    elif pool_at == "masks":
        masks = mask_logits
        grid = F.interpolate(features, size=mask_logits.shape[-2:], mode="bilinear", align_corners=False)
    else:
        raise ValueError(f"pool_at must be 'features' or 'masks', got {pool_at!r}")
    foreground = (masks > 0).to(grid.dtype)  # N x Q x h' x w'
    sums = torch.einsum("nchw,nqhw->nqc", grid, foreground)
    return sums, foreground.sum(dim=(2, 3))
