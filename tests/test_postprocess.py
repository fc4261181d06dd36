"""The shared post-processing steps agree with Mask2Former's / OMG-Seg's inference written out directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pycocotools import mask as coco_mask

from omg_core.postprocess import (
    boxes_from_masks,
    class_probabilities,
    encode_rles,
    keep_queries,
    masks_to_image_size,
    masks_to_original_size,
    query_classes,
)


def reference_sem_seg_postprocess(
    mask_logits: torch.Tensor, padded: tuple[int, int], image: tuple[int, int], original: tuple[int, int]
) -> torch.Tensor:
    """Mask2Former's steps: upsample (Q, h, w) to the padded input, crop to the image, resize to the original."""
    upsampled = F.interpolate(mask_logits[None], size=padded, mode="bilinear", align_corners=False)[0]
    cropped = upsampled[:, : image[0], : image[1]]
    return F.interpolate(cropped[None], size=original, mode="bilinear", align_corners=False)[0]


@pytest.mark.parametrize(
    ("padded", "image", "original"),
    [((64, 96), (61, 90), (122, 180)), ((32, 32), (32, 32), (32, 32)), ((96, 64), (83, 50), (47, 29))],
)
def test_masks_to_original_size_equals_mask2formers_steps(padded, image, original) -> None:
    logits = torch.randn(7, padded[0] // 4, padded[1] // 4, generator=torch.Generator().manual_seed(0))
    expected = reference_sem_seg_postprocess(logits, padded, image, original)
    assert torch.equal(masks_to_original_size(logits, padded, image, original), expected)
    kept = torch.tensor([5, 1])  # resizing only the kept queries gives exactly their rows
    assert torch.equal(masks_to_original_size(logits[kept], padded, image, original), expected[kept])


def test_masks_to_image_size_keeps_leading_dims_for_clips() -> None:
    logits = torch.randn(2, 3, 4, 8, 10)  # B x Q x T x h x w
    resized = masks_to_image_size(logits, (32, 40), (30, 37))
    assert resized.shape == (2, 3, 4, 30, 37)
    frame = reference_sem_seg_postprocess(logits[1, :, 2], (32, 40), (30, 37), (30, 37))
    assert torch.allclose(resized[1, :, 2], frame, atol=1e-6)


def test_query_classes_and_keep_follow_mask2formers_panoptic_rule() -> None:
    num_classes = 3
    logits = torch.tensor(
        [
            [5.0, 0.0, 0.0, 0.0],  # confident class 0: kept
            [0.0, 0.0, 0.0, 6.0],  # void wins: dropped
            [1.0, 1.0, 0.9, 0.0],  # class 0 best but unsure: dropped at 0.8
            [0.0, 0.0, 9.0, 8.9],  # class 2 just above void, score < 0.8: dropped
        ]
    )
    scores, labels = query_classes(logits)
    reference_scores, reference_labels = F.softmax(logits, dim=-1).max(-1)
    assert torch.equal(scores, reference_scores) and torch.equal(labels, reference_labels)
    assert keep_queries(scores, labels, num_classes, 0.8).tolist() == [True, False, False, False]
    assert keep_queries(scores, labels, num_classes, 0.0).tolist() == [True, False, True, True]
    # strictly above the threshold, as Mask2Former's `scores > object_mask_threshold`
    assert not keep_queries(scores[:1], labels[:1], num_classes, float(scores[0])).any()


def test_class_probabilities_drop_void_after_the_softmax() -> None:
    logits = torch.randn(2, 5, 4)
    probabilities = class_probabilities(logits)
    assert probabilities.shape == (2, 5, 3)
    assert torch.allclose(probabilities.sum(-1), 1 - logits.softmax(-1)[..., -1])


def test_boxes_from_masks_are_tight_and_zero_when_empty() -> None:
    masks = torch.zeros(2, 6, 8, dtype=torch.bool)
    masks[0, 1:4, 2:7] = True
    assert boxes_from_masks(masks).tolist() == [[2.0, 1.0, 7.0, 4.0], [0.0, 0.0, 0.0, 0.0]]


def test_encode_rles_round_trip_through_pycocotools() -> None:
    masks = torch.rand(3, 9, 11, generator=torch.Generator().manual_seed(1)) > 0.5
    masks[2] = False
    rles = encode_rles(masks)
    assert all(isinstance(rle["counts"], str) and rle["size"] == [9, 11] for rle in rles)
    decoded = [coco_mask.decode({"size": r["size"], "counts": r["counts"].encode()}) for r in rles]
    assert np.array_equal(np.stack(decoded).astype(bool), masks.numpy())


def test_resizing_no_query_gives_an_empty_stack() -> None:
    from omg_core.postprocess import masks_to_original_size

    assert masks_to_original_size(torch.zeros(0, 8, 8), (32, 32), (30, 28), (60, 56)).shape == (0, 60, 56)
