"""Open-vocabulary classification: cosine similarity to CLIP text embeddings, plus the FC-CLIP ensemble."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from omg_core.model.transformer_decoder import mlp


def mask_pool(features: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
    """Average of features inside each (binarised) mask.

    Arguments:
      features: B x C x H x W.
      mask_logits: B x Q x h x w; resized bilinearly to H x W, foreground where the logit is > 0.

    Returns:
      B x Q x C pooled features (zeros for empty masks).
    """
    if mask_logits.shape[-2:] != features.shape[-2:]:
        mask_logits = F.interpolate(mask_logits, size=features.shape[-2:], mode="bilinear", align_corners=False)
    masks = (mask_logits.detach() > 0).to(features.dtype)
    area = masks.sum(dim=(-1, -2), keepdim=True) + 1e-8  # eps keeps empty masks finite
    return torch.einsum("bchw,bqhw->bqc", features, masks / area)


def geometric_ensemble(
    in_vocab_logits: torch.Tensor,
    out_vocab_logits: torch.Tensor,
    seen_classes: torch.Tensor,
    alpha: float = 0.4,
    beta: float = 0.8,
    valid_queries: torch.Tensor | None = None,
    clip_classes: torch.Tensor | None = None,
) -> torch.Tensor:
    """FC-CLIP / OMG-Seg geometric ensemble of the trained and the frozen-CLIP classifiers.

    p_c = p_in^(1 - a) * p_out^a with a = alpha for seen classes and a = beta for unseen ones, both
    probabilities softmaxed over the K classes (no void). The void probability of the trained classifier
    is kept: the result is log([p * (1 - p_void), p_void]).

    Arguments:
      in_vocab_logits: ... x (K + 1) trained classifier logits, last column void.
      out_vocab_logits: ... x K (or K + 1, then the last column is ignored) CLIP mask-pooled logits.
      seen_classes: K bool, True for classes the model was trained on.
      alpha, beta: ensemble exponents for seen and unseen classes.
      valid_queries: ... bool, False for queries whose mask is empty at the CLIP resolution; these use the
        trained classifier only (exponent 0), as in OMG-Seg.
      clip_classes: K bool, the classes the CLIP classifier votes on (None: all, as in OMG-Seg). The others keep
        the trained classifier's probability (exponent 0) and the CLIP softmax runs over the voting classes only.

    Returns:
      ... x (K + 1) log-probabilities, last column void.
    """
    num_classes = in_vocab_logits.shape[-1] - 1
    if seen_classes.shape != (num_classes,):
        raise ValueError(f"seen_classes must have shape ({num_classes},) (one flag per class), "
                         f"got {tuple(seen_classes.shape)}")
    out_vocab_logits = out_vocab_logits[..., :num_classes]
    p_in = in_vocab_logits[..., :-1].softmax(-1)
    exponent = torch.where(seen_classes.to(p_in.device), alpha, beta).to(p_in.dtype)  # K
    if clip_classes is not None:
        if clip_classes.shape != (num_classes,):
            raise ValueError(f"clip_classes must have shape ({num_classes},), got {tuple(clip_classes.shape)}")
        voters = clip_classes.to(p_in.device, torch.bool)
        out_vocab_logits = out_vocab_logits.masked_fill(~voters, float("-inf"))
        exponent = exponent * voters.to(p_in.dtype)
    p_out = out_vocab_logits.softmax(-1)
    exponent = exponent.expand_as(p_in)
    if valid_queries is not None:
        exponent = exponent * valid_queries[..., None].to(p_in.dtype)
    # xlogy: an exponent of 0 gives p**0 = 1 even where p underflowed to 0 (the official power form); 0 * log 0 is NaN
    log_ensemble = torch.xlogy(1 - exponent, p_in) + torch.xlogy(exponent, p_out)
    ensemble = log_ensemble.softmax(-1)  # renormalise over the K classes
    p_void = in_vocab_logits.softmax(-1)[..., -1:]
    return torch.log(torch.cat([ensemble * (1 - p_void), p_void], dim=-1) + 1e-8)


# OMG-Seg's fixed classifier temperature (heads/mask2former_vid.py): a non-learned log scale, np.log(1 / 0.01)
# written to 4 decimals, so logits = exp(4.6052) * cosine = 100.003 * cosine (not exactly 100).
OFFICIAL_LOGIT_SCALE = 4.6052


class OpenVocabularyClassifier(nn.Module):
    """Class logits = exp(logit_scale) * cos(projected query, class text embedding), with a learned void class.

    The projected query is query_proj(query + mask_pool_proj(mask-pooled pixel features)), as in OMG-Seg.
    logit_scale is a constant (a non-persistent buffer, so it follows the module's device and dtype but is neither
    trained nor saved), as the official head's; the same scale multiplies the mask-pooled CLIP logits of the
    ensemble (the official `forward_logit` serves both).
    The void embedding is not normalised: it starts at zero (a constant logit of 0, OMG-Seg's void token)
    and may learn a direction.
    """

    logit_scale: torch.Tensor

    def __init__(self, embed_dim: int, clip_dim: int, logit_scale: float = OFFICIAL_LOGIT_SCALE) -> None:
        super().__init__()
        self.query_proj = mlp(embed_dim, embed_dim, clip_dim)
        self.mask_pool_proj = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, embed_dim))
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)), persistent=False)
        self.void_embedding = nn.Parameter(torch.zeros(clip_dim))

    def logits(self, embeddings: torch.Tensor, text_embeddings: torch.Tensor,
               log_scale: torch.Tensor | None = None) -> torch.Tensor:
        """
        Arguments:
          embeddings: ... x D embeddings in CLIP space (normalised here).
          text_embeddings: K x D normalised class embeddings, or K x P x D with P prototypes per class
            (synonyms; the class score is the best prototype's, as in OMG-Seg).
          log_scale: the log temperature (a scalar tensor); None: the classifier's `logit_scale`.

        Returns:
          ... x (K + 1) logits, last column void.
        """
        normalized = F.normalize(embeddings, dim=-1)
        text = text_embeddings.to(embeddings.dtype)
        if text.dim() == 2:
            class_cosines = normalized @ text.T  # ... x K
        else:
            class_cosines = torch.einsum("...d,kpd->...kp", normalized, text).amax(dim=-1)  # ... x K
        void_cosine = normalized @ self.void_embedding.to(embeddings.dtype)[:, None]  # ... x 1
        scale = (self.logit_scale if log_scale is None else log_scale.to(embeddings.dtype)).exp()
        return scale * torch.cat([class_cosines, void_cosine], dim=-1)

    def forward(
        self, query_embeddings: torch.Tensor, mask_features: torch.Tensor, mask_logits: torch.Tensor,
        text_embeddings: torch.Tensor,
    ) -> torch.Tensor:
        """
        Arguments:
          query_embeddings: B x Q x C normalised decoder queries.
          mask_features: B x T x C x H x W per-pixel embeddings.
          mask_logits: B x Q x T x H x W.
          text_embeddings: K x D or K x P x D.

        Returns:
          B x Q x (K + 1) in-vocabulary class logits.
        """
        # Frames are stacked along the height axis so one query pools over its whole tube.
        features = mask_features.transpose(1, 2).flatten(2, 3)  # B x C x T*H x W
        pooled = mask_pool(features, mask_logits.flatten(2, 3))  # B x Q x C
        projected = self.query_proj(self.mask_pool_proj(pooled) + query_embeddings)  # B x Q x D
        return self.logits(projected, text_embeddings)
