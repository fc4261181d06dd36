"""Which learned query a phrase refers to, from the shared decoder's outputs over the vocabulary (phrase, neutral).

The classifier scores every query against the CLIP text embedding of each vocabulary entry; the phrase's probability
(softmax over the phrase, the neutral class and void) says how well the query's object fits the words, and the mask
score (Mask2Former / OMG-Seg instance inference: mean mask probability inside the mask) how sure the query is of its
mask. The referred object is the query with the highest product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from omg_core.postprocess import class_probabilities

#: Column of the phrase in the plan's vocabulary (the neutral class follows it).
PHRASE_COLUMN = 0


@dataclass
class ReferredQuery:
    """The query a phrase refers to.

    index: the query (among the learned queries).
    score: its phrase probability x mask score, in [0, 1].
    phrase_probabilities: (Q,) every query's phrase probability, for inspection.
    """

    index: int
    score: float
    phrase_probabilities: torch.Tensor


def mask_scores(mask_logits: torch.Tensor, valid_size: tuple[int, int]) -> torch.Tensor:
    """Mask2Former's mask score of each query: sum(sigmoid * (logit > 0)) / (sum(logit > 0) + 1e-6).

    Taken on the stride-4 logits, over the part that covers the image (not the padding): ranking needs no
    full-size masks, and only the winner is resized.

    Arguments:
      mask_logits: (Q, h, w) stride-4 logits of the padded input.
      valid_size: (h', w') of the stride-4 cells that cover the unpadded image.
    Returns:
      (Q,) float32 in [0, 1); 0 for an empty mask.
    """
    logits = mask_logits[:, : valid_size[0], : valid_size[1]].float()
    inside = (logits > 0).float()
    return (logits.sigmoid() * inside).flatten(1).sum(1) / (inside.flatten(1).sum(1) + 1e-6)


def valid_stride4_size(image_size: tuple[int, int], padded_size: tuple[int, int], mask_size: tuple[int, int]) -> (
        tuple[int, int]):
    """(h', w') of the stride-4 cells that cover an image of ``image_size`` padded to ``padded_size``."""
    return (math.ceil(image_size[0] * mask_size[0] / padded_size[0]),
            math.ceil(image_size[1] * mask_size[1] / padded_size[1]))


def referred_query(class_logits: torch.Tensor, mask_logits: torch.Tensor, valid_size: tuple[int, int]) -> (
        ReferredQuery):
    """The query whose phrase probability times mask score is highest (ties: the lowest query index).

    Arguments:
      class_logits: (Q, K + 1) logits over the plan's vocabulary (phrase first) and void (last).
      mask_logits: (Q, h, w) stride-4 mask logits.
      valid_size: see :func:`mask_scores`.
    Returns:
      ReferredQuery.
    """
    if class_logits.ndim != 2 or class_logits.shape[-1] < 2 or mask_logits.ndim != 3 \
            or class_logits.shape[0] != mask_logits.shape[0] or class_logits.shape[0] == 0:
        raise ValueError(f"expected class_logits (Q, K + 1) with K >= 1 and mask_logits (Q, h, w), Q >= 1; got "
                         f"{tuple(class_logits.shape)} and {tuple(mask_logits.shape)}")
    phrase = class_probabilities(class_logits.float())[:, PHRASE_COLUMN]
    scores = phrase * mask_scores(mask_logits, valid_size)
    index = int(torch.argmax(scores))  # the first of equal maxima
    return ReferredQuery(index=index, score=float(scores[index]), phrase_probabilities=phrase)
