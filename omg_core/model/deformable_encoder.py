"""Multi-scale deformable self-attention encoder (Deformable-DETR), the core of the pixel decoder."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from omg_core.ops.ms_deform_attn import multi_scale_deformable_attention


class MultiScaleDeformableAttention(nn.Module):
    """Each query attends to `num_points` sampled locations per head and level around its reference point."""

    def __init__(self, embed_dim: int = 256, num_heads: int = 8, num_levels: int = 3, num_points: int = 4) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.num_points = num_points
        self.sampling_offsets = nn.Linear(embed_dim, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dim, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dim, embed_dim)
        self.output_proj = nn.Linear(embed_dim, embed_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Start with each head looking in its own direction, points 1..P steps away (Deformable-DETR init).
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi / self.num_heads)
        directions = torch.stack([angles.cos(), angles.sin()], dim=-1)  # heads x 2
        directions = directions / directions.abs().max(dim=-1, keepdim=True).values
        grid = directions[:, None, None, :].repeat(1, self.num_levels, self.num_points, 1)
        grid = grid * torch.arange(1, self.num_points + 1, dtype=torch.float32)[None, None, :, None]
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(
        self,
        query: torch.Tensor,
        value: torch.Tensor,
        reference_points: torch.Tensor,
        spatial_shapes: torch.Tensor,
        level_start_index: torch.Tensor,
    ) -> torch.Tensor:
        """
        Arguments:
          query: B x Q x C queries (with positional encoding already added).
          value: B x S x C flattened multi-level features (S = sum of H_l * W_l).
          reference_points: B x Q x L x 2 normalised (x, y) reference point of each query on each level.
          spatial_shapes: L x 2 int64 (H_l, W_l).
          level_start_index: L int64 start of each level in S.

        Returns:
          B x Q x C attended features (before the residual connection).
        """
        batch, num_queries, _ = query.shape
        heads, levels, points = self.num_heads, self.num_levels, self.num_points
        value = self.value_proj(value).view(batch, value.shape[1], heads, self.embed_dim // heads)  # B x S x h x c
        offsets = self.sampling_offsets(query).view(batch, num_queries, heads, levels, points, 2)
        weights = self.attention_weights(query).view(batch, num_queries, heads, levels * points)
        weights = weights.softmax(-1).view(batch, num_queries, heads, levels, points)
        # Offsets are in pixels of each level; dividing by (W_l, H_l) makes them normalised coordinates.
        normalizer = torch.stack([spatial_shapes[:, 1], spatial_shapes[:, 0]], dim=-1).to(query.dtype)  # L x 2
        locations = reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
        # Sample in the precision of the locations (fp32 under bf16 autocast too): bf16 coordinates would be off
        # by up to half a pixel on a 128-wide map.
        value = value.to(locations.dtype)
        weights = weights.to(locations.dtype)
        attended = multi_scale_deformable_attention(value, spatial_shapes, level_start_index, locations, weights)
        return self.output_proj(attended)


class DeformableEncoderLayer(nn.Module):
    """Post-norm layer: deformable self-attention -> add & norm -> FFN -> add & norm."""

    def __init__(self, embed_dim: int, num_heads: int, num_levels: int, num_points: int, ffn_dim: int) -> None:
        super().__init__()
        self.self_attn = MultiScaleDeformableAttention(embed_dim, num_heads, num_levels, num_points)
        self.norm1 = nn.LayerNorm(embed_dim)
        self.linear1 = nn.Linear(embed_dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, embed_dim)
        self.norm2 = nn.LayerNorm(embed_dim)

    def forward(
        self,
        features: torch.Tensor,
        position: torch.Tensor,
        reference_points: torch.Tensor,
        spatial_shapes: torch.Tensor,
        level_start_index: torch.Tensor,
    ) -> torch.Tensor:
        """
        Arguments:
          features: B x S x C flattened multi-level features.
          position: B x S x C positional + level encoding.
          reference_points: B x S x L x 2.
          spatial_shapes, level_start_index: see MultiScaleDeformableAttention.

        Returns:
          B x S x C updated features.
        """
        attended = self.self_attn(features + position, features, reference_points, spatial_shapes, level_start_index)
        features = self.norm1(features + attended)
        features = self.norm2(features + self.linear2(F.relu(self.linear1(features))))
        return features


class DeformableEncoder(nn.Module):
    """A stack of deformable encoder layers over the flattened multi-level feature maps."""

    def __init__(
        self, num_layers: int, embed_dim: int, num_heads: int, num_levels: int, num_points: int, ffn_dim: int
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DeformableEncoderLayer(embed_dim, num_heads, num_levels, num_points, ffn_dim) for _ in range(num_layers)
        )

    @staticmethod
    def reference_points(spatial_shapes: list[tuple[int, int]], batch: int, device: torch.device) -> torch.Tensor:
        """Pixel centres of every level, normalised to [0, 1], repeated for every level (no padding).

        Returns:
          B x S x L x 2 (x, y).
        """
        centres = []
        for height, width in spatial_shapes:
            y = (torch.arange(height, dtype=torch.float32, device=device) + 0.5) / height
            x = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) / width
            grid_y, grid_x = torch.meshgrid(y, x, indexing="ij")
            centres.append(torch.stack([grid_x.flatten(), grid_y.flatten()], dim=-1))  # HW x 2
        points = torch.cat(centres, dim=0)  # S x 2
        return points[None, :, None, :].expand(batch, -1, len(spatial_shapes), -1)

    def forward(
        self, features: torch.Tensor, position: torch.Tensor, spatial_shapes: list[tuple[int, int]]
    ) -> torch.Tensor:
        """
        Arguments:
          features: B x S x C flattened multi-level features.
          position: B x S x C.
          spatial_shapes: (H_l, W_l) of each level in the order they are concatenated.

        Returns:
          B x S x C.
        """
        device = features.device
        shapes = torch.tensor(spatial_shapes, dtype=torch.int64, device=device)  # L x 2
        sizes = shapes.prod(1)
        level_start_index = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
        reference = self.reference_points(spatial_shapes, features.shape[0], device).to(features.dtype)
        for layer in self.layers:
            features = layer(features, position, reference, shapes, level_start_index)
        return features
