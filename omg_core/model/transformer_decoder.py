"""Mask2Former transformer decoder with masked cross-attention, for images and for clips (OMG-Seg video head)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from omg_core.model.position_encoding import SinePositionEncoding


def mlp(in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 3) -> nn.Sequential:
    """Linear/ReLU stack; indices 0, 2, 4 ... are the Linear layers."""
    layers: list[nn.Module] = []
    dims = [in_dim] + [hidden_dim] * (num_layers - 1)
    for index, dim in enumerate(dims):
        last = index == num_layers - 1
        layers.append(nn.Linear(dim, out_dim if last else hidden_dim))
        if not last:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def attention_mask_from_masks(mask_logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Masked-attention mask: a query may only look where its current mask prediction is foreground.

    Arguments:
      mask_logits: B x Q x T x H x W mask logits.
      size: (h, w) of the feature level the next layer attends to.

    Returns:
      B x Q x (T * h * w) bool, True where attention is blocked (sigmoid < 0.5), shared by all heads. A row that
      would block everything is fully unblocked instead: a query with an empty mask attends to the whole map.
    """
    batch, queries, frames = mask_logits.shape[:3]
    resized = F.interpolate(mask_logits.flatten(1, 2), size=size, mode="bilinear", align_corners=False)
    blocked = resized.view(batch, queries, frames * size[0] * size[1]) < 0  # sigmoid(x) < 0.5 <=> x < 0
    blocked = blocked & ~blocked.all(dim=-1, keepdim=True)
    return blocked.detach()


def multi_head_attention(
    attention: nn.MultiheadAttention,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    blocked: torch.Tensor | None = None,
) -> torch.Tensor:
    """nn.MultiheadAttention's computation with its own weights, through scaled_dot_product_attention, with one
    mask broadcast over the heads (instead of one copy per head).

    Arguments:
      attention: a batch_first nn.MultiheadAttention (its in_proj and out_proj weights are used).
      query: B x Q x C; key, value: B x S x C.
      blocked: B x Q x S or Q x S bool, True = may not attend (every row must allow something), or None.

    Returns:
      B x Q x C.
    """
    batch, num_queries, channels = query.shape
    heads = attention.num_heads
    w_q, w_k, w_v = attention.in_proj_weight.chunk(3)
    b_q, b_k, b_v = attention.in_proj_bias.chunk(3)

    def split_heads(x: torch.Tensor) -> torch.Tensor:  # B x L x C -> B x heads x L x C/heads
        return x.view(batch, x.shape[1], heads, channels // heads).transpose(1, 2)

    q = split_heads(F.linear(query, w_q, b_q))
    k = split_heads(F.linear(key, w_k, b_k))
    v = split_heads(F.linear(value, w_v, b_v))
    allowed = None
    if blocked is not None:
        allowed = ~(blocked[:, None] if blocked.dim() == 3 else blocked)  # SDPA's bool mask means "may attend"
    attended = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)  # B x heads x Q x C/heads
    return attention.out_proj(attended.transpose(1, 2).reshape(batch, num_queries, channels))


class MaskedDecoderLayer(nn.Module):
    """Post-norm layer: masked cross-attention -> self-attention -> FFN, each with residual and LayerNorm."""

    def __init__(self, embed_dim: int, num_heads: int, ffn_dim: int) -> None:
        super().__init__()
        self.cross_attn = nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)
        self.norm_cross = nn.LayerNorm(embed_dim)
        self.self_attn = nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)
        self.norm_self = nn.LayerNorm(embed_dim)
        self.linear1 = nn.Linear(embed_dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, embed_dim)
        self.norm_ffn = nn.LayerNorm(embed_dim)

    def forward(
        self,
        queries: torch.Tensor,
        query_pos: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        cross_attn_mask: torch.Tensor | None,
        self_attn_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """
        Arguments:
          queries: B x Q x C query features.
          query_pos: B x Q x C query positional embeddings.
          memory: B x S x C features of one level (all frames).
          memory_pos: B x S x C positional encoding of the memory.
          cross_attn_mask: B x Q x S bool, True = blocked.
          self_attn_mask: Q x Q bool, True = blocked, or None.

        Returns:
          B x Q x C updated queries.
        """
        attended = multi_head_attention(self.cross_attn, queries + query_pos, memory + memory_pos, memory,
                                        cross_attn_mask)
        queries = self.norm_cross(queries + attended)
        qk = queries + query_pos
        attended = multi_head_attention(self.self_attn, qk, qk, queries, self_attn_mask)
        queries = self.norm_self(queries + attended)
        queries = self.norm_ffn(queries + self.linear2(F.relu(self.linear1(queries))))
        return queries


@dataclass
class LayerPrediction:
    """What the decoder predicts after one layer (or before the first one).

    query_embeddings: B x Q x C normalised query features (input of the class head).
    mask_logits: B x Q x T x H x W mask logits at the mask-feature resolution (stride 4).
    iou_logits: B x Q x 1 predicted mask-quality (objectness) logits.
    raw_query_embeddings: B x Q x C the decoder's queries before the final LayerNorm (what OMG-Seg's video
      inference matches between tubes, `return_query` in its head).
    """

    query_embeddings: torch.Tensor
    mask_logits: torch.Tensor
    iou_logits: torch.Tensor
    raw_query_embeddings: torch.Tensor


class MaskedTransformerDecoder(nn.Module):
    """Learned queries (and optional prompt queries) refined by masked attention over three feature levels.

    Level round robin starts at the coarsest level: layer i attends to level i % 3 (stride 32, 16, 8, 32, ...).
    """

    def __init__(
        self,
        embed_dim: int = 256,
        mask_channels: int = 256,
        num_layers: int = 9,
        num_heads: int = 8,
        ffn_dim: int = 2048,
        num_queries: int = 300,
        num_levels: int = 3,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.num_queries = num_queries
        self.position_encoding = SinePositionEncoding(embed_dim // 2, normalize=True, temporal=True)
        self.level_embed = nn.Embedding(num_levels, embed_dim)
        self.query_feat = nn.Embedding(num_queries, embed_dim)
        self.query_embed = nn.Embedding(num_queries, embed_dim)
        self.layers = nn.ModuleList(MaskedDecoderLayer(embed_dim, num_heads, ffn_dim) for _ in range(num_layers))
        self.decoder_norm = nn.LayerNorm(embed_dim)
        self.mask_embed = mlp(embed_dim, embed_dim, mask_channels)
        self.iou_embed = mlp(embed_dim, embed_dim, 1)
        for layer in self.layers:
            for parameter in layer.parameters():
                if parameter.dim() > 1:
                    nn.init.xavier_normal_(parameter)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def predict(self, queries: torch.Tensor, mask_features: torch.Tensor) -> LayerPrediction:
        """
        Arguments:
          queries: B x Q x C decoder queries.
          mask_features: B x T x C x H x W per-pixel embeddings.

        Returns:
          The prediction heads' outputs for these queries.
        """
        embeddings = self.decoder_norm(queries)
        mask_logits = torch.einsum("bqc,btchw->bqthw", self.mask_embed(embeddings), mask_features)
        return LayerPrediction(embeddings, mask_logits, self.iou_embed(embeddings), queries)

    def forward(
        self,
        mask_features: torch.Tensor,
        multi_scale_features: list[torch.Tensor],
        num_frames: int,
        prompt_feat: torch.Tensor | None = None,
        prompt_pos: torch.Tensor | None = None,
        use_learned_queries: bool = True,
    ) -> list[LayerPrediction]:
        """
        Arguments:
          mask_features: (B * T) x C x H x W per-pixel embeddings (frames of a clip are consecutive).
          multi_scale_features: per level (B * T) x C x h_l x w_l, coarsest first.
          num_frames: T (1 for images).
          prompt_feat: B x N x C prompt query content, or None.
          prompt_pos: B x N x C prompt query positional embeddings, or None.
          use_learned_queries: False runs the prompt queries alone (Q = 0).

        Returns:
          num_layers + 1 predictions: before the first layer, then after each layer. Queries are the Q learned
          ones followed by the N prompt queries.
        """
        if not use_learned_queries and prompt_feat is None:
            raise ValueError("use_learned_queries=False needs prompt queries")
        batch = mask_features.shape[0] // num_frames
        mask_features = mask_features.view(batch, num_frames, *mask_features.shape[1:])  # B x T x C x H x W

        memories, memory_positions, level_sizes = [], [], []
        for level, features in enumerate(multi_scale_features):
            _, channels, height, width = features.shape
            # Frames are concatenated along the spatial axis, so one query attends over the whole clip.
            memory = features.view(batch, num_frames, channels, height * width).transpose(2, 3)
            memories.append(memory.reshape(batch, num_frames * height * width, channels)
                            + self.level_embed.weight[level])
            position = self.position_encoding(batch, height, width, frames=num_frames, device=features.device)
            memory_positions.append(position.permute(0, 1, 3, 4, 2).reshape(batch, -1, channels)
                                    .to(features.dtype))
            level_sizes.append((height, width))

        num_learned = self.num_queries if use_learned_queries else 0
        queries = self.query_feat.weight[:num_learned][None].expand(batch, -1, -1)
        query_pos = self.query_embed.weight[:num_learned][None].expand(batch, -1, -1)
        self_attn_mask = None
        if prompt_feat is not None:
            if prompt_pos is None or prompt_pos.shape != prompt_feat.shape:
                raise ValueError("prompt_feat and prompt_pos must both be given with the same shape B x N x C")
            queries = torch.cat([queries, prompt_feat.to(queries.dtype)], dim=1)
            query_pos = torch.cat([query_pos, prompt_pos.to(query_pos.dtype)], dim=1)
            self_attn_mask = prompt_self_attention_mask(num_learned, prompt_feat.shape[1], queries.device)

        predictions = [self.predict(queries, mask_features)]
        for index, layer in enumerate(self.layers):
            level = index % self.num_levels
            cross_mask = attention_mask_from_masks(predictions[-1].mask_logits, level_sizes[level])
            queries = layer(queries, query_pos, memories[level], memory_positions[level], cross_mask,
                            self_attn_mask)
            predictions.append(self.predict(queries, mask_features))
        return predictions


def prompt_self_attention_mask(num_learned: int, num_prompts: int, device: torch.device) -> torch.Tensor:
    """Self-attention mask that keeps prompt queries independent.

    Learned queries see each other only; each prompt query sees only itself. So adding prompts never changes
    the learned queries' predictions, and one prompt never changes another's (as in OMG-Seg, where interactive
    queries cannot see each other).

    Returns:
      (Q + N) x (Q + N) bool, True = blocked.
    """
    total = num_learned + num_prompts
    blocked = torch.ones(total, total, dtype=torch.bool, device=device)
    blocked[:num_learned, :num_learned] = False
    prompt_index = torch.arange(num_learned, total, device=device)
    blocked[prompt_index, prompt_index] = False
    return blocked
