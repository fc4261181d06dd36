"""OMG-Seg's own prompt encoding: every prompt is a box query (a click becomes a 6-pixel box around it).

This is what the released OMG-Seg weights were trained with (`enable_box_query`): the query position is a linear
projection of the sine encoding of the normalised box (cx, cy, w, h); the query content is a learned mask token
plus a point/box type embedding (OMG-Seg uses type 0 for clicks and boxes alike at inference).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

# Half the side, in pixels, of the pseudo box OMG-Seg draws around a click.
CLICK_BOX_HALF_SIZE = 3.0


def box_sine_encoding(boxes: torch.Tensor, num_feats: int, temperature: float = 10000.0) -> torch.Tensor:
    """Sine encoding of normalised (cx, cy, w, h) boxes, features ordered y, x, w, h (DINO / mmdet convention).

    Arguments:
      boxes: ... x 4 in [0, 1].
      num_feats: features per coordinate.

    Returns:
      ... x 4*num_feats.
    """
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=boxes.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)
    scaled = boxes.float()[..., None] * (2 * math.pi) / dim_t  # ... x 4 x F
    encoded = torch.stack((scaled[..., 0::2].sin(), scaled[..., 1::2].cos()), dim=-1).flatten(-2)  # ... x 4 x F
    cx, cy, w, h = encoded.unbind(-2)
    return torch.cat([cy, cx, w, h], dim=-1)


class BoxQueryPromptEncoder(nn.Module):
    """Prompts as OMG-Seg box queries. Each prompt is one box or one positive click."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.mask_tokens = nn.Embedding(1, embed_dim)
        self.pb_embedding = nn.Embedding(2, embed_dim)  # 0 / 1: prompt type (OMG-Seg feeds 0 at inference)
        self.pos_linear = nn.Linear(2 * embed_dim, embed_dim)

    def forward(
        self,
        image_size: tuple[int, int],
        points: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Arguments:
          image_size: (H, W) in pixels of the unpadded input (boxes are normalised by it, as in OMG-Seg).
          points: B x N x P x 2 (x, y) pixels; each prompt must hold exactly one positive click (others padding).
          point_labels: B x N x P (1 positive, -1 padding; negative clicks are not supported by this encoding).
          boxes: B x N x 4 (x1, y1, x2, y2) pixels; a prompt with a box uses the box.

        Returns:
          prompt_feat: B x N x C, prompt_pos: B x N x C, valid: B x N bool (all True).
        """
        height, width = image_size
        if boxes is None:
            if points is None or point_labels is None:
                raise ValueError("the box-query prompt encoder needs boxes or points with point_labels")
            if (point_labels == 0).any():
                raise ValueError("OMG-Seg's box-query prompts take no negative clicks; drop them or build the "
                                 "model with prompt_encoding='sam'")
            positive = point_labels == 1
            if not (positive.sum(dim=-1) == 1).all():
                raise ValueError("OMG-Seg's box-query prompts take exactly one positive click per prompt (or a box); "
                                 "use prompt_encoding='sam' for several clicks")
            click = (points.float() * positive[..., None]).sum(dim=2)  # B x N x 2
            boxes = torch.cat([click - CLICK_BOX_HALF_SIZE, click + CLICK_BOX_HALF_SIZE], dim=-1)
        scale = torch.tensor([width, height, width, height], dtype=torch.float32, device=boxes.device)
        normalized = boxes.float() / scale
        cxcywh = torch.cat([(normalized[..., :2] + normalized[..., 2:]) / 2, normalized[..., 2:] - normalized[..., :2]],
                           dim=-1)
        # OMG-Seg passes boxes through inverse_sigmoid then sigmoid (eps 1e-5): a clamp at the borders.
        cxcywh = cxcywh.clamp(0, 1)
        cxcywh = torch.sigmoid(torch.log(cxcywh.clamp(min=1e-5) / (1 - cxcywh).clamp(min=1e-5)))
        pos = self.pos_linear(box_sine_encoding(cxcywh, self.embed_dim // 2))  # B x N x C
        prompt_type = torch.zeros(boxes.shape[:2], dtype=torch.long, device=boxes.device)
        feat = self.pb_embedding(prompt_type) + self.mask_tokens.weight[0]
        valid = torch.ones(boxes.shape[:2], dtype=torch.bool, device=boxes.device)
        return feat, pos, valid
