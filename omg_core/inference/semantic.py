"""Semantic inference as Mask2Former does it (OMG-Seg's ``semantic_postprocess`` raises NotImplementedError):

    semseg = einsum("qc,qhw->chw", softmax(class_logits)[..., :-1], sigmoid(mask_logits))

summed over chunks of queries, so only a chunk of queries is ever held at the output size.
"""

from __future__ import annotations

import torch

from omg_core.inference.test_time_resize import (
    MaskResize,
    check_query_logits,
    resized_output,
    resized_query_chunks,
)
from omg_core.postprocess import class_probabilities


def semantic_inference(
    class_logits: torch.Tensor, mask_logits: torch.Tensor, resize: MaskResize, chunk: int = 16
) -> torch.Tensor:
    """Per-class scores of every pixel: the sum over queries of class probability x mask probability.

    Arguments:
      class_logits: (Q, K + 1) logits, last column void (may be on another device than the masks, e.g. the CPU).
      mask_logits: (Q, h, w) stride-4 logits of the padded input.
      resize: maps (N, h, w) logits to (N, H, W) logits at the output size.
      chunk: queries resized at a time.
    Returns:
      (K, H, W) float32 scores where ``resize`` puts the logits (not normalised: a pixel's scores sum to its total mask
      probability mass).
    """
    check_query_logits(class_logits, mask_logits)
    height, width, device = resized_output(mask_logits, resize)
    probabilities = class_probabilities(class_logits.float()).to(device)  # (Q, K)
    scores = torch.zeros((probabilities.shape[1], height, width), device=device)
    all_queries = torch.arange(mask_logits.shape[0], device=mask_logits.device)
    for start, logits in resized_query_chunks(mask_logits, all_queries, resize, chunk):
        chunk_probabilities = probabilities[start : start + len(logits)]
        scores += torch.einsum("qc,qhw->chw", chunk_probabilities, logits.sigmoid())
    return scores


def semantic_labels(class_logits: torch.Tensor, mask_logits: torch.Tensor, resize: MaskResize) -> torch.Tensor:
    """The best class of every pixel under :func:`semantic_inference`.

    Returns:
      (H, W) int64 class indices where ``resize`` puts the logits.
    """
    return semantic_inference(class_logits, mask_logits, resize).argmax(0)
