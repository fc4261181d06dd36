"""Shared description and checking of video panoptic id maps (the inputs of VPQ and STQ).

Both metrics take one whole video per ``update`` call as a ``T x H x W`` integer map whose pixels hold
``category * label_divisor + instance``. This is the encoding of deeplab2's STQ (``semantic << bit_shift + instance``
is the special case ``label_divisor = 2 ** bit_shift``) and of OMG's VIPSeg loader. Conventions shared by both:

* a pixel whose category equals ``void_label`` is VOID (unlabelled ground truth, or "no prediction");
* a ground-truth pixel of a thing category with instance ``0`` is CROWD (deeplab2's convention; VIPSeg has no crowd,
  and OMG's VIPSeg readers number thing instances from 1 for that reason; to equal VIPSeg's ``eval_stq_vspw.py``,
  :func:`omg_eval.video_panoptic_files.evaluate_vipseg` gives STQ the one object that script numbers 0 as crowd);
* stuff segments are told apart by their full id, so a stuff category normally uses instance ``0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from omg_eval.kernels.segment_pairs import intersect_segment_ids, intersect_segment_ids_batch


@dataclass(frozen=True)
class PanopticLabelSpace:
    """What the integers of a panoptic id map mean.

    Arguments:
      num_classes: C, categories are 0 .. C-1.
      thing_classes: the category ids that are countable things (the others are stuff).
      label_divisor: id = category * label_divisor + instance, instance in [0, label_divisor).
      void_label: the category of VOID pixels; must lie outside [0, C).
    """

    num_classes: int
    thing_classes: tuple[int, ...]
    label_divisor: int
    void_label: int = 255

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {self.num_classes}")
        if self.label_divisor < 2:
            raise ValueError(f"label_divisor must be at least 2 (id = category * label_divisor + instance), "
                             f"got {self.label_divisor}")
        if 0 <= self.void_label < self.num_classes:
            raise ValueError(
                f"void_label {self.void_label} is a real category (num_classes={self.num_classes}); "
                f"use a value >= num_classes such as 255"
            )
        bad_things = [c for c in self.thing_classes if not 0 <= c < self.num_classes]
        if bad_things:
            raise ValueError(f"thing_classes {bad_things} lie outside [0, {self.num_classes})")
        if len(set(self.thing_classes)) != len(self.thing_classes):
            raise ValueError(f"thing_classes holds duplicates: {sorted(self.thing_classes)}")

    @classmethod
    def build(
        cls, num_classes: int, thing_classes: Sequence[int], label_divisor: int, void_label: int = 255
    ) -> PanopticLabelSpace:
        return cls(int(num_classes), tuple(int(c) for c in thing_classes), int(label_divisor), int(void_label))

    def is_thing_table(self, device: torch.device) -> torch.Tensor:
        """Boolean lookup (C + 1,): entry c tells whether category c is a thing; the last entry (VOID) is False."""
        table = torch.zeros(self.num_classes + 1, dtype=torch.bool, device=device)
        if self.thing_classes:
            table[list(self.thing_classes)] = True
        return table


def check_video_pair(
    pred_ids: torch.Tensor, gt_ids: torch.Tensor, space: PanopticLabelSpace
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate one video's predicted and ground-truth id maps and return them as int64.

    Arguments:
      pred_ids: T x H x W integer tensor.
      gt_ids: T x H x W integer tensor.
      space: the label space both follow.

    Returns:
      (pred_ids, gt_ids) as int64 tensors on their original device.
    """
    for name, ids in (("pred_ids", pred_ids), ("gt_ids", gt_ids)):
        if not isinstance(ids, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(ids).__name__}")
        if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.is_complex():
            raise TypeError(f"{name} must hold integer panoptic ids, got dtype {ids.dtype}")
        if ids.dim() != 3:
            raise ValueError(
                f"{name} must be one whole video T x H x W, got shape {tuple(ids.shape)}; "
                f"add a leading frame axis for a single frame"
            )
    if pred_ids.shape != gt_ids.shape:
        raise ValueError(f"pred_ids {tuple(pred_ids.shape)} and gt_ids {tuple(gt_ids.shape)} must have the same shape")
    if pred_ids.device != gt_ids.device:
        raise ValueError(f"pred_ids is on {pred_ids.device} but gt_ids on {gt_ids.device}; move them to one device")
    # Negative ids are caught by count_video_pairs, which reads every id's range in the same pass.
    return pred_ids.to(torch.int64), gt_ids.to(torch.int64)


def check_categories(segment_ids: torch.Tensor, space: PanopticLabelSpace, name: str) -> torch.Tensor:
    """Categories of a (small) tensor of distinct segment ids; raises when one is neither a class nor VOID.

    The metrics count (gt id, pred id) pairs first and check the few distinct ids afterwards, which costs nothing
    next to an elementwise pass over every pixel.

    Arguments:
      segment_ids: (N,) int64 ids as found in a video.
      space: the label space.
      name: "pred_ids" or "gt_ids", for the message.

    Returns:
      (N,) int64 categories (void_label for VOID).
    """
    categories = segment_ids // space.label_divisor
    invalid = (categories >= space.num_classes) & (categories != space.void_label)
    if bool(invalid.any()):
        bad = torch.unique(categories[invalid])
        raise ValueError(
            f"{name} holds categories {bad.tolist()[:10]} outside [0, {space.num_classes}) that are not "
            f"void_label={space.void_label}; check label_divisor={space.label_divisor} and num_classes"
        )
    return categories


# The shared pair-counting kernel takes ids in [0, 2^31).
_KERNEL_ID_LIMIT = 2**31


def _kernel_ready_ids(ids: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Ids as they are when they fit the kernel, else a dense renumbering and the lookup back to the real ids."""
    if ids.numel() == 0:
        return ids, None
    low, high = torch.aminmax(ids)  # one pass for both bounds
    if int(low) < 0:
        raise ValueError(f"{name} holds negative ids; encode VOID as void_label * label_divisor")
    if int(high) < _KERNEL_ID_LIMIT:
        return ids, None
    lookup, dense = torch.unique(ids, return_inverse=True)
    return dense, lookup


def count_video_pairs(
    pred_ids: torch.Tensor, gt_ids: torch.Tensor, per_frame: bool
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixel counts of every (gt id, pred id) pair of a video, over the whole video or frame by frame.

    Ids too large for the shared kernel (a large label_divisor) are renumbered densely and mapped back, so any valid
    label space works.

    Arguments:
      pred_ids: T x H x W int64 predicted ids.
      gt_ids: T x H x W int64 ground-truth ids.
      per_frame: count each frame apart (VPQ's windows) or the whole video at once (STQ).

    Returns:
      (frame (M,) or None, gt_pair_ids (M,), pred_pair_ids (M,), pixel_counts (M,)), int64.
    """
    gt_kernel_ids, gt_lookup = _kernel_ready_ids(gt_ids, "gt_ids")
    pred_kernel_ids, pred_lookup = _kernel_ready_ids(pred_ids, "pred_ids")
    frame = None
    if per_frame:
        frame, gt_pair, pred_pair, counts = intersect_segment_ids_batch(
            list(gt_kernel_ids.unbind(0)), list(pred_kernel_ids.unbind(0))
        )
    else:
        gt_pair, pred_pair, counts = intersect_segment_ids(gt_kernel_ids, pred_kernel_ids)
    if gt_lookup is not None:
        gt_pair = gt_lookup[gt_pair]
    if pred_lookup is not None:
        pred_pair = pred_lookup[pred_pair]
    return frame, gt_pair, pred_pair, counts
