"""Pure-PyTorch multi-scale deformable attention (the reference every fused kernel must match).

Same algorithm as Deformable-DETR's ``ms_deform_attn_core_pytorch``: for each level, bilinearly sample the value map
at the sampling locations with ``grid_sample`` (zeros outside the map, ``align_corners=False``), then take the
attention-weighted sum over levels and points.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ms_deform_attn_reference(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention.

    Arguments:
      value: (B, S, heads, C) values of all levels flattened and concatenated; S = sum of H_l * W_l.
      spatial_shapes: (L, 2) int64 (H_l, W_l) of each level, in the order the levels are concatenated in ``value``.
      sampling_locations: (B, Q, heads, L, P, 2) normalised (x, y) in [0, 1]; points outside sample zeros.
      attention_weights: (B, Q, heads, L, P) weights (softmaxed over L * P by the caller).

    Returns:
      (B, Q, heads * C) attended features.
    """
    batch, _, heads, channels = value.shape
    _, queries, _, levels, points, _ = sampling_locations.shape
    sizes = [int(h) * int(w) for h, w in spatial_shapes.tolist()]
    value_per_level = value.split(sizes, dim=1)
    grids = 2 * sampling_locations - 1
    sampled_per_level = []
    for level, (height, width) in enumerate(spatial_shapes.tolist()):
        # B, H*W, heads, C -> B*heads, C, H, W
        level_value = value_per_level[level].flatten(2).transpose(1, 2).reshape(batch * heads, channels, height, width)
        # B, Q, heads, P, 2 -> B*heads, Q, P, 2
        level_grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        # B*heads, C, Q, P
        sampled_per_level.append(
            F.grid_sample(level_value, level_grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        )
    # B, Q, heads, L, P -> B*heads, 1, Q, L*P
    weights = attention_weights.transpose(1, 2).reshape(batch * heads, 1, queries, levels * points)
    # B*heads, C, Q, L*P -> B*heads, C, Q
    output = (torch.stack(sampled_per_level, dim=-2).flatten(-2) * weights).sum(-1)
    return output.view(batch, heads * channels, queries).transpose(1, 2).contiguous()
