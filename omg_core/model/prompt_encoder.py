"""SAM-style prompt encoder: points and boxes become queries that run through the decoder with learned ones."""

from __future__ import annotations

import torch
import torch.nn as nn


class RandomFourierPositionEncoding(nn.Module):
    """Encodes normalised (x, y) coordinates with a fixed random Gaussian projection (SAM's PositionEmbeddingRandom)."""

    def __init__(self, num_feats: int, scale: float = 1.0) -> None:
        """
        Arguments:
          num_feats: half of the output width (sin and cos of num_feats projections).
          scale: std of the Gaussian frequencies.
        """
        super().__init__()
        self.register_buffer("gaussian_matrix", scale * torch.randn(2, num_feats))

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """
        Arguments:
          coords: ... x 2 (x, y) in [0, 1].

        Returns:
          ... x 2*num_feats encodings.
        """
        projected = (2 * coords - 1) @ self.gaussian_matrix.to(coords.dtype)
        projected = 2 * torch.pi * projected
        return torch.cat([projected.sin(), projected.cos()], dim=-1)


class PromptEncoder(nn.Module):
    """Each prompt (a set of clicks and/or one box) becomes one query of the transformer decoder.

    A prompt's tokens (points with their positive/negative type embedding; the two box corners with their corner
    embeddings) are averaged into the query's positional embedding; the query content is a learned vector plus
    an embedding of the prompt kind (points only / with box), like OMG-Seg's interactive queries, plus (when the
    decoder's mask features are given) a projection of the mask features under the prompt's positive clicks and box
    centre. That last term is ours: without it every prompt starts from the same content, its place only in a
    random-Fourier positional embedding the decoder's sine-encoded keys must learn to match, and a small model
    trained briefly learned no prompt masks at all (empty masks after 5,000 steps); with it the first mask is
    already "pixels like the clicked one".
    """

    POSITIVE, NEGATIVE, PADDING = 1, 0, -1

    def __init__(self, embed_dim: int, feature_channels: int | None = None) -> None:
        super().__init__()
        if embed_dim % 2:
            raise ValueError(f"embed_dim must be even, got {embed_dim}")
        self.embed_dim = embed_dim
        self.feature_proj = nn.Linear(feature_channels or embed_dim, embed_dim)
        self.position_encoding = RandomFourierPositionEncoding(embed_dim // 2)
        # 0: negative click, 1: positive click, 2: box top-left, 3: box bottom-right (SAM's order).
        self.point_embeddings = nn.Embedding(4, embed_dim)
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.prompt_content = nn.Embedding(1, embed_dim)
        self.prompt_kind_embed = nn.Embedding(2, embed_dim)  # 0: clicks only, 1: with a box

    def forward(
        self,
        image_size: tuple[int, int],
        points: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        mask_features: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Arguments:
          image_size: (H, W) in pixels of the (unpadded) input image the coordinates refer to.
          points: B x N x P x 2 (x, y) pixel coordinates, or None.
          point_labels: B x N x P with 1 positive, 0 negative, -1 padding; required with points.
          boxes: B x N x 4 (x1, y1, x2, y2) pixels, or None.
          mask_features: B x C' x h x w, the decoder's stride-4 mask features of the padded image (of the first
            frame for clips), or None.

        Returns:
          prompt_feat: B x N x C query content.
          prompt_pos: B x N x C query positional embeddings.
          valid: B x N bool, False for prompts with no click and no box (all padding).
        """
        height, width = image_size
        scale = None
        token_sum = None
        token_count = None
        has_box = None
        if points is not None:
            device = points.device
            scale = torch.tensor([width, height], dtype=torch.float32, device=device)
            # +0.5: a click on pixel (i, j) means its centre, as in SAM.
            encoded = self.position_encoding((points.float() + 0.5) / scale)  # B x N x P x C
            labels = point_labels.long()
            is_point = labels != self.PADDING
            type_embed = self.point_embeddings.weight[labels.clamp(min=0)]  # B x N x P x C
            tokens = (encoded + type_embed) * is_point[..., None]
            token_sum = tokens.sum(dim=2)
            token_count = is_point.sum(dim=2)
        if boxes is not None:
            device = boxes.device
            scale = torch.tensor([width, height], dtype=torch.float32, device=device)
            corners = (boxes.float().view(*boxes.shape[:2], 2, 2) + 0.5) / scale  # B x N x 2 x 2
            corner_tokens = self.position_encoding(corners) + self.point_embeddings.weight[2:4]
            box_sum = corner_tokens.sum(dim=2)
            token_sum = box_sum if token_sum is None else token_sum + box_sum
            token_count = (torch.full(boxes.shape[:2], 2, device=device) if token_count is None
                           else token_count + 2)
            has_box = torch.ones(boxes.shape[:2], dtype=torch.long, device=device)
        if token_sum is None:
            raise ValueError("the prompt encoder needs points (with point_labels) or boxes")
        valid = token_count > 0
        pos = token_sum / token_count.clamp(min=1)[..., None]
        pos = torch.where(valid[..., None], pos, self.not_a_point_embed.weight[0].expand_as(pos))
        if has_box is None:
            has_box = torch.zeros(valid.shape, dtype=torch.long, device=valid.device)
        feat = self.prompt_content.weight[0] + self.prompt_kind_embed(has_box)  # B x N x C
        if mask_features is not None:
            feat = feat + self.feature_proj(features_at_prompts(mask_features, points, point_labels, boxes))
        return feat, pos, valid


def features_at_prompts(
    mask_features: torch.Tensor,
    points: torch.Tensor | None,
    point_labels: torch.Tensor | None,
    boxes: torch.Tensor | None,
) -> torch.Tensor:
    """The mean feature under each prompt's positive clicks and box centre.

    Arguments:
      mask_features: B x C x h x w at stride 4 of the padded image (pixel (x, y) lies in cell (x // 4, y // 4)).
      points, point_labels: B x N x P x 2 pixel clicks and their labels (1 positive), or None.
      boxes: B x N x 4 pixel boxes, or None.

    Returns:
      B x N x C, zeros for a prompt with neither.
    """
    anchors, weights = [], []
    if points is not None and point_labels is not None:
        anchors.append(points.float())  # B x N x P x 2
        weights.append((point_labels == PromptEncoder.POSITIVE).float())  # B x N x P
    if boxes is not None:
        anchors.append(((boxes[..., :2] + boxes[..., 2:]) / 2).float()[:, :, None])  # B x N x 1 x 2
        weights.append(torch.ones(boxes.shape[:2], device=boxes.device)[..., None])
    where = torch.cat(anchors, dim=2)  # B x N x A x 2
    weight = torch.cat(weights, dim=2)  # B x N x A
    batch, prompts, count = weight.shape
    height, width = mask_features.shape[-2:]
    size = torch.tensor([4.0 * width, 4.0 * height], device=where.device)
    grid = (where + 0.5) / size * 2 - 1  # grid_sample's [-1, 1] over the padded image
    sampled = torch.nn.functional.grid_sample(mask_features, grid.view(batch, prompts * count, 1, 2).to(
        mask_features.dtype), mode="bilinear", align_corners=False)  # B x C x N*A x 1
    sampled = sampled[..., 0].permute(0, 2, 1).reshape(batch, prompts, count, -1)  # B x N x A x C
    total = (sampled * weight[..., None].to(sampled.dtype)).sum(dim=2)
    return total / weight.sum(dim=2).clamp(min=1)[..., None].to(sampled.dtype)
