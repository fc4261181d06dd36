"""Sine positional encodings of feature-map positions (DETR style), 2D for images and 3D for clips."""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def _sine_features(positions: torch.Tensor, num_feats: int, temperature: float) -> torch.Tensor:
    """Interleaved sin/cos of positions divided by geometric frequencies.

    Arguments:
      positions: ... (any shape) scaled positions.
      num_feats: number of output features (even).
      temperature: base of the geometric frequency progression.

    Returns:
      ... x num_feats features, sin on even channels and cos on odd ones.
    """
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=positions.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)
    scaled = positions[..., None] / dim_t  # ... x num_feats
    return torch.stack((scaled[..., 0::2].sin(), scaled[..., 1::2].cos()), dim=-1).flatten(-2)


class SinePositionEncoding(nn.Module):
    """Normalised sine encoding of (y, x) positions: 2 * num_feats channels, y features first.

    With `temporal=True` the encoding of a B x T x H x W grid also adds a sine encoding of the frame index over
    all 2 * num_feats channels (what OMG-Seg's transformer decoder uses; for T = 1 it is a constant offset).
    """

    def __init__(
        self,
        num_feats: int = 128,
        temperature: float = 10000.0,
        normalize: bool = True,
        scale: float = 2 * math.pi,
        eps: float = 1e-6,
        temporal: bool = False,
    ) -> None:
        super().__init__()
        if num_feats % 2:
            raise ValueError(f"num_feats must be even, got {num_feats}")
        self.num_feats = num_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = scale
        self.eps = eps
        self.temporal = temporal

    def _cumulative(self, length: int, device: torch.device) -> torch.Tensor:
        # Positions 1..length, normalised to (0, scale] as in DETR (there is no padding inside our maps).
        positions = torch.arange(1, length + 1, dtype=torch.float32, device=device)
        if self.normalize:
            positions = positions / (positions[-1] + self.eps) * self.scale
        return positions

    @torch.no_grad()
    def forward(self, batch: int, height: int, width: int, frames: int = 1, device: torch.device | None = None
                ) -> torch.Tensor:
        """
        Arguments:
          batch, height, width: size of the feature map.
          frames: number of frames (only with temporal=True may it differ from 1).
          device: where to build the encoding.

        Returns:
          B x 2*num_feats x H x W, or B x T x 2*num_feats x H x W when temporal=True.
        """
        if frames != 1 and not self.temporal:
            raise ValueError("a 2D positional encoding got frames > 1; build it with temporal=True")
        y = self._cumulative(height, device)[:, None].expand(height, width)  # H x W
        x = self._cumulative(width, device)[None, :].expand(height, width)  # H x W
        spatial = torch.cat(
            (_sine_features(y, self.num_feats, self.temperature), _sine_features(x, self.num_feats, self.temperature)),
            dim=-1,
        )  # H x W x 2F
        if not self.temporal:
            return spatial.permute(2, 0, 1)[None].expand(batch, -1, -1, -1)
        z = self._cumulative(frames, device)  # T
        temporal = _sine_features(z, 2 * self.num_feats, self.temperature)  # T x 2F
        encoding = spatial[None] + temporal[:, None, None, :]  # T x H x W x 2F
        return encoding.permute(0, 3, 1, 2)[None].expand(batch, -1, -1, -1, -1)
