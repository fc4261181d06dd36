"""Post-processing steps every task repeats on the model's raw outputs, as pure tensor functions.

Tasks (built-in and plugins) turn ``OMGOutputs`` into results with the same few steps, in the order OMG-Seg and
Mask2Former take them:

    scores, labels = query_classes(class_logits)                 # softmax over K classes + void, best column
    keep = keep_queries(scores, labels, num_classes=K, threshold=0.8)  # not void, confident enough
    logits = masks_to_original_size(mask_logits[keep], padded_size, image_size, original_size)
    masks = logits > 0                                           # (sigmoid > 0.5)
    boxes = boxes_from_masks(masks)
    rles = encode_rles(masks)

Shapes use Q queries, K classes (the last class column is void), h x w the stride-4 mask size of the padded input.
Resizing is the expensive step (Q x H x W floats at the original size), so select the kept queries first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from omg_data.geometry import mask_boxes_xyxy
from omg_data.rle import encode_mask


def class_probabilities(class_logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities without void: softmax over the K + 1 columns, void column dropped (Mask2Former's semantic
    and instance inference).

    Arguments:
      class_logits: (..., Q, K + 1) logits, last column void.
    Returns:
      (..., Q, K) probabilities (a query's row sums to 1 - its void probability).
    """
    return class_logits.softmax(dim=-1)[..., :-1]


def query_classes(class_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query's best column of the softmax over K classes + void (Mask2Former / OMG-Seg panoptic inference).

    Arguments:
      class_logits: (..., Q, K + 1) logits, last column void.
    Returns:
      scores (..., Q) and labels (..., Q) int64, where label K means the query predicts void.
    """
    scores, labels = class_logits.softmax(dim=-1).max(dim=-1)
    return scores, labels


def keep_queries(scores: torch.Tensor, labels: torch.Tensor, num_classes: int, threshold: float) -> torch.Tensor:
    """Queries that predict a class (not void) with a score above ``threshold`` (strictly, as Mask2Former).

    Arguments:
      scores, labels: from :func:`query_classes`.
      num_classes: K (label K is void).
      threshold: object mask threshold (0.8 in Mask2Former's panoptic inference, 0 in OMG-Seg's eval configs).
    Returns:
      bool mask of the same shape as ``scores``.
    """
    return labels.ne(num_classes) & (scores > threshold)


def masks_to_image_size(
    mask_logits: torch.Tensor, padded_size: tuple[int, int], image_size: tuple[int, int]
) -> torch.Tensor:
    """Mask logits at the size of the (resized) input image: bilinear upsampling of the stride-4 logits to the padded
    input, then the padding cropped off, as OMG-Seg and Mask2Former do.

    Arguments:
      mask_logits: (..., h, w) logits of the padded input at stride 4 (any leading dims: queries, frames).
      padded_size: (H_pad, W_pad) of the padded model input.
      image_size: (H, W) of the input before padding.
    Returns:
      (..., H, W) logits.
    """
    leading = mask_logits.shape[:-2]
    height, width = image_size
    if mask_logits.numel() == 0:  # no query kept: interpolate refuses empty batches
        return mask_logits.new_zeros(*leading, height, width)
    flat = mask_logits.reshape(1, -1, *mask_logits.shape[-2:])
    resized = F.interpolate(flat, size=padded_size, mode="bilinear", align_corners=False)
    return resized[..., :height, :width].reshape(*leading, height, width)


def masks_to_original_size(
    mask_logits: torch.Tensor,
    padded_size: tuple[int, int],
    image_size: tuple[int, int],
    original_size: tuple[int, int],
) -> torch.Tensor:
    """Mask logits at the size of the original image: :func:`masks_to_image_size`, then a bilinear resize from the
    test-time size to the original one (skipped when they are equal).

    Arguments:
      mask_logits: (..., h, w) stride-4 logits; pass only the queries you keep.
      padded_size, image_size: as in :func:`masks_to_image_size`.
      original_size: (H0, W0) of the image before the test-time resize.
    Returns:
      (..., H0, W0) logits.
    """
    logits = masks_to_image_size(mask_logits, padded_size, image_size)
    if tuple(original_size) == tuple(image_size):
        return logits
    leading = logits.shape[:-2]
    if logits.numel() == 0:
        return logits.new_zeros(*leading, *original_size)
    flat = logits.reshape(1, -1, *logits.shape[-2:])
    resized = F.interpolate(flat, size=tuple(original_size), mode="bilinear", align_corners=False)
    return resized.reshape(*leading, *original_size)


def boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """Tight (x0, y0, x1, y1) boxes of (N, H, W) bool masks, x1/y1 exclusive; an empty mask gets zeros.

    Returns:
      (N, 4) float32.
    """
    return mask_boxes_xyxy(masks.bool().cpu())


def encode_rles(masks: torch.Tensor | Sequence[torch.Tensor]) -> list[dict[str, Any]]:
    """COCO compressed RLEs (``{"size": [H, W], "counts": str}``, JSON-ready) of (N, H, W) bool masks."""
    return [encode_mask(mask.bool().cpu()) for mask in masks]
