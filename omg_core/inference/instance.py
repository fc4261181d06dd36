"""OMG-Seg's instance inference (``OMGFusionHead.instance_postprocess``): top (query, class) pairs to scored masks.

    probabilities = softmax(class_logits)[:, :-1]                 # (Q, K), void dropped
    top max_per_image (query, class) pairs over the flattened Q x K
    drop the pairs whose class is stuff                           # after the top-k: fewer may remain
    binary = mask logit > 0
    mask score = sum(sigmoid * binary) / (sum(binary) + 1e-6)
    score = class probability * mask score

Only the queries among the top pairs are resized (each once, however many classes it holds).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from omg_core.inference.test_time_resize import (
    MaskResize,
    check_query_logits,
    resized_output,
    resized_query_chunks,
)
from omg_core.postprocess import boxes_from_masks, class_probabilities


@dataclass
class InstancePrediction:
    """Scored instance masks of one image, best first.

    masks: (N, H, W) bool, the mask logits > 0.
    scores: (N,) float32, class probability x mask score.
    labels: (N,) int64 class indices.
    query_indices: (N,) int64 query of each detection (a query may appear with several classes).
    boxes: (N, 4) float32 (x0, y0, x1, y1), x1/y1 exclusive; zeros for an empty mask.
    """

    masks: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    query_indices: torch.Tensor
    boxes: torch.Tensor


def instance_inference(
    class_logits: torch.Tensor,
    mask_logits: torch.Tensor,
    resize: MaskResize,
    is_thing: torch.Tensor,
    max_per_image: int = 100,
    chunk: int = 16,
) -> InstancePrediction:
    """OMG-Seg's instance inference of one image.

    The official top-k is unsorted (``sorted=False``), so its order is undefined. Here detections come sorted by
    final score, descending, ties by flat index (query * K + class) ascending; and where several pairs tie for the
    last places of the top ``max_per_image``, the ones with the lowest flat indices are taken. ``max_per_image``
    larger than Q * K takes every pair (the official topk would raise).

    Arguments:
      class_logits: (Q, K + 1) logits, last column void (may be on another device than the masks, e.g. the CPU).
      mask_logits: (Q, h, w) stride-4 logits of the padded input.
      resize: maps (N, h, w) logits to (N, H, W) logits at the output size.
      is_thing: (K,) bool; pairs of stuff classes are dropped after the top-k.
      max_per_image: pairs taken before the stuff ones are dropped.
      chunk: queries resized at a time.
    Returns:
      InstancePrediction with N <= max_per_image detections, where ``resize`` puts the logits.
    """
    check_query_logits(class_logits, mask_logits, is_thing)
    num_classes = is_thing.numel()
    is_thing = is_thing.to(class_logits.device)
    flat_probabilities = class_probabilities(class_logits.float()).flatten()
    count = min(max_per_image, flat_probabilities.numel())
    # a stable descending sort puts tied pairs in flat-index order, so the cut keeps the lowest flat indices
    top_flat = torch.sort(flat_probabilities, descending=True, stable=True).indices[:count]
    top_flat = top_flat[is_thing[top_flat % num_classes]].sort().values  # things only, in flat-index order
    height, width, device = resized_output(mask_logits, resize)
    class_scores = flat_probabilities[top_flat].to(device)
    labels = (top_flat % num_classes).to(device)
    query_indices = (top_flat // num_classes).to(device)

    unique_queries, detection_slot = torch.unique(query_indices, sorted=True, return_inverse=True)
    query_masks = torch.zeros((len(unique_queries), height, width), dtype=torch.bool, device=device)
    query_mask_scores = torch.zeros(len(unique_queries), device=device)
    for start, logits in resized_query_chunks(mask_logits, unique_queries, resize, chunk):
        binary = (logits > 0).float()
        end = start + len(logits)
        inside = binary.flatten(1).sum(1)
        query_mask_scores[start:end] = (logits.sigmoid() * binary).flatten(1).sum(1) / (inside + 1e-6)
        query_masks[start:end] = binary.bool()

    scores = class_scores * query_mask_scores[detection_slot]
    # stable: equal scores stay in flat-index order
    order = torch.sort(scores, descending=True, stable=True).indices
    masks = query_masks[detection_slot[order]]
    return InstancePrediction(
        masks=masks,
        scores=scores[order],
        labels=labels[order],
        query_indices=query_indices[order],
        boxes=boxes_from_masks(masks).to(masks.device),
    )
