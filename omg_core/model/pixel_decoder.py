"""Mask2Former's MSDeformAttn pixel decoder: deformable encoder on strides 32/16/8, FPN to stride 4."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from omg_core.model.deformable_encoder import DeformableEncoder
from omg_core.model.position_encoding import SinePositionEncoding


def _conv_norm(in_channels: int, out_channels: int, kernel_size: int, bias: bool, num_groups: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias),
        nn.GroupNorm(num_groups, out_channels),
    )


class MSDeformAttnPixelDecoder(nn.Module):
    """Turns the four backbone maps into per-pixel mask features and three multi-scale maps for the decoder.

    Level order everywhere (input_projs, level_embed, returned multi_scale_features) is from low to high
    resolution: index 0 is stride 32, 1 is stride 16, 2 is stride 8.
    """

    def __init__(
        self,
        in_channels: tuple[int, int, int, int],
        feat_channels: int = 256,
        mask_channels: int = 256,
        num_layers: int = 6,
        num_heads: int = 8,
        num_points: int = 4,
        ffn_dim: int = 1024,
        num_groups: int = 32,
        num_levels: int = 3,
    ) -> None:
        super().__init__()
        if num_levels != 3 or len(in_channels) != 4:
            raise ValueError("the pixel decoder expects 4 backbone levels and 3 encoder levels (strides 32/16/8)")
        self.num_levels = num_levels
        # 1x1 conv (with bias) + GroupNorm per encoder level; stride 32 first.
        self.input_projs = nn.ModuleList(
            _conv_norm(in_channels[3 - index], feat_channels, 1, bias=True, num_groups=num_groups)
            for index in range(num_levels)
        )
        self.level_embed = nn.Embedding(num_levels, feat_channels)
        self.position_encoding = SinePositionEncoding(feat_channels // 2, normalize=True)
        self.encoder = DeformableEncoder(num_layers, feat_channels, num_heads, num_levels, num_points, ffn_dim)
        # FPN step for stride 4 (GroupNorm makes the conv bias redundant, so there is none).
        self.lateral_convs = nn.ModuleList([_conv_norm(in_channels[0], feat_channels, 1, False, num_groups)])
        self.output_convs = nn.ModuleList([_conv_norm(feat_channels, feat_channels, 3, False, num_groups)])
        self.mask_features = nn.Conv2d(feat_channels, mask_channels, kernel_size=1)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        for proj in self.input_projs:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.zeros_(proj[0].bias)
        for conv in (self.lateral_convs[0][0], self.output_convs[0][0], self.mask_features):
            nn.init.kaiming_uniform_(conv.weight, a=1)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        nn.init.normal_(self.level_embed.weight)

    def forward(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """
        Arguments:
          features: backbone maps {"res2": B x C1 x H/4 x W/4, ..., "res5": B x C4 x H/32 x W/32}.

        Returns:
          mask_features: B x mask_channels x H/4 x W/4.
          multi_scale_features: [B x C x H/32 x W/32, B x C x H/16 x W/16, B x C x H/8 x W/8].
        """
        names = ["res5", "res4", "res3"]
        flat_features, flat_positions, spatial_shapes = [], [], []
        for index, name in enumerate(names):
            x = self.input_projs[index](features[name])  # B x C x h x w
            batch, _, height, width = x.shape
            position = self.position_encoding(batch, height, width, device=x.device).to(x.dtype)
            position = position + self.level_embed.weight[index].view(1, -1, 1, 1)
            flat_features.append(x.flatten(2).transpose(1, 2))  # B x hw x C
            flat_positions.append(position.flatten(2).transpose(1, 2))  # B x hw x C
            spatial_shapes.append((height, width))
        memory = self.encoder(torch.cat(flat_features, 1), torch.cat(flat_positions, 1), spatial_shapes)

        multi_scale_features = []
        for chunk, (height, width) in zip(memory.split([h * w for h, w in spatial_shapes], dim=1), spatial_shapes):
            multi_scale_features.append(chunk.transpose(1, 2).reshape(chunk.shape[0], -1, height, width))

        lateral = self.lateral_convs[0](features["res2"])  # B x C x H/4 x W/4
        top_down = F.interpolate(multi_scale_features[-1], size=lateral.shape[-2:], mode="bilinear",
                                 align_corners=False)
        finest = F.relu(self.output_convs[0](lateral + top_down))
        return self.mask_features(finest), multi_scale_features
