"""Masks of prompt queries (interactive segmentation) and mask proposals of learned queries (DAVIS).

Interactive, as OMG-Seg's detector does it with ``inference_sam``: the prompt queries' mask logits, cropped and
resized to the original image, thresholded at sigmoid > 0.5; nothing else (no crop around the prompt, no score
threshold, one mask per prompt). The official evaluation reads only the masks; scores and labels are extras here.

Proposals, as ``OMGFusionHead.proposal_postprocess``: the ``num_proposals`` queries with the highest predicted IoU,
their masks at sigmoid > 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from omg_core.inference.test_time_resize import MaskResize, resized_output, resized_query_chunks
from omg_core.postprocess import class_probabilities


@dataclass
class PromptMaskPrediction:
    """One mask per prompt, in prompt order.

    masks: (N, H, W) bool, sigmoid of the resized logits > 0.5.
    scores: (N,) float32: sigmoid of the IoU head, or without one the mean mask probability inside the mask.
    labels: (N,) int64 best class (void excluded), or None without class logits.
    """

    masks: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor | None


@dataclass
class ProposalPrediction:
    """Mask proposals, best first.

    masks: (P, H, W) bool, sigmoid of the resized logits > 0.5.
    scores: (P,) float32 sigmoid of the IoU head, descending.
    query_indices: (P,) int64 query of each proposal.
    """

    masks: torch.Tensor
    scores: torch.Tensor
    query_indices: torch.Tensor


def prompt_mask_inference(
    mask_logits: torch.Tensor,
    iou_logits: torch.Tensor | None,
    resize: MaskResize,
    class_logits: torch.Tensor | None = None,
    chunk: int = 16,
) -> PromptMaskPrediction:
    """Masks, scores and (optionally) classes of N prompt queries.

    Arguments:
      mask_logits: (N, h, w) stride-4 logits of the prompt queries.
      iou_logits: (N, 1) IoU-head logits, or None.
      resize: maps (N, h, w) logits to (N, H, W) logits at the output size.
      class_logits: (N, K + 1) logits (last column void), or None.
      chunk: prompts resized at a time.
    Returns:
      PromptMaskPrediction where ``resize`` puts the logits (the logits of the IoU and class heads may be elsewhere).
    """
    count = mask_logits.shape[0]
    if mask_logits.ndim != 3:
        raise ValueError(f"mask_logits must be (N, h, w), got {tuple(mask_logits.shape)}")
    if iou_logits is not None and iou_logits.shape != (count, 1):
        raise ValueError(f"iou_logits must be ({count}, 1), got {tuple(iou_logits.shape)}")
    if class_logits is not None and (class_logits.ndim != 2 or class_logits.shape[0] != count):
        raise ValueError(f"class_logits must be ({count}, K + 1), got {tuple(class_logits.shape)}")

    height, width, device = resized_output(mask_logits, resize)
    masks = torch.zeros((count, height, width), dtype=torch.bool, device=device)
    mean_inside = torch.zeros(count, device=device)
    all_prompts = torch.arange(count, device=mask_logits.device)
    for start, logits in resized_query_chunks(mask_logits, all_prompts, resize, chunk):
        probabilities = logits.sigmoid()
        binary = probabilities > 0.5  # the official threshold; `logits > 0` differs where sigmoid rounds to 0.5
        end = start + len(logits)
        masks[start:end] = binary
        inside = binary.float()
        mean_inside[start:end] = (probabilities * inside).flatten(1).sum(1) / (inside.flatten(1).sum(1) + 1e-6)

    scores = iou_logits.float().sigmoid().flatten().to(device) if iou_logits is not None else mean_inside
    labels = None
    if class_logits is not None:
        labels = class_probabilities(class_logits.float()).argmax(-1).to(device)
    return PromptMaskPrediction(masks=masks, scores=scores, labels=labels)


def proposal_inference(
    iou_logits: torch.Tensor,
    mask_logits: torch.Tensor,
    resize: MaskResize,
    num_proposals: int = 25,
    chunk: int = 16,
) -> ProposalPrediction:
    """The ``num_proposals`` queries with the highest predicted IoU and their masks (25 in OMG-Seg's DAVIS config).

    The official code returns the proposals in ASCENDING score order (it reverses the sorted top-k); here they are
    DESCENDING. Hungarian matching to the first-frame objects does not depend on the order, but OMG-Seg's DAVIS
    painting does: it paints matched proposals in index order, so with the official order the higher-scored
    proposal wins an overlap; paint these in reverse to get the same map. Ties in the IoU score are taken lowest
    query index first. ``num_proposals`` larger than Q takes every query (the official topk would raise).

    Arguments:
      iou_logits: (Q, 1) IoU-head logits.
      mask_logits: (Q, h, w) stride-4 logits.
      resize: maps (N, h, w) logits to (N, H, W) logits at the output size.
      num_proposals: how many to keep.
      chunk: queries resized at a time.
    Returns:
      ProposalPrediction with min(num_proposals, Q) proposals, where ``resize`` puts the logits.
    """
    if mask_logits.ndim != 3 or iou_logits.shape != (mask_logits.shape[0], 1):
        raise ValueError(
            f"expected iou_logits (Q, 1) and mask_logits (Q, h, w), got {tuple(iou_logits.shape)} and "
            f"{tuple(mask_logits.shape)}"
        )
    height, width, device = resized_output(mask_logits, resize)
    iou_scores = iou_logits.float().sigmoid().flatten().to(device)
    order = torch.sort(iou_scores, descending=True, stable=True).indices[: min(num_proposals, len(iou_scores))]
    masks = torch.zeros((len(order), height, width), dtype=torch.bool, device=device)
    for start, logits in resized_query_chunks(mask_logits, order, resize, chunk):
        masks[start : start + len(logits)] = logits.sigmoid() > 0.5
    return ProposalPrediction(masks=masks, scores=iou_scores[order], query_indices=order)
