"""Referring segmentation figures: mIoU (the mean of each sample's IoU) and oIoU (all intersections over all unions),
the two numbers RefCOCO papers report."""

from __future__ import annotations

from typing import Any

import torch

from omg_eval.metric import Metric


class ReferringIoU(Metric):
    """IoU of one predicted mask per sample against its ground-truth mask.

    A sample whose prediction and ground truth are both empty has IoU 1 (gRefCOCO's convention for phrases that
    refer to nothing); it adds nothing to oIoU.
    """

    def __init__(self) -> None:
        super().__init__()
        self.add_state("iou_sum", torch.zeros((), dtype=torch.float64), "sum")
        self.add_state("num_samples", torch.zeros((), dtype=torch.int64), "sum")
        self.add_state("intersection", torch.zeros((), dtype=torch.int64), "sum")
        self.add_state("union", torch.zeros((), dtype=torch.int64), "sum")

    def update(self, pred_masks: torch.Tensor, gt_masks: torch.Tensor) -> None:
        """Add samples.

        Arguments:
          pred_masks: (H, W) or (N, H, W) bool, one mask per sample.
          gt_masks: the ground truth, same shape.
        """
        if pred_masks.shape != gt_masks.shape or pred_masks.ndim not in (2, 3):
            raise ValueError(f"pred_masks {tuple(pred_masks.shape)} and gt_masks {tuple(gt_masks.shape)} must both be "
                             "(H, W) or (N, H, W) masks of the same size")
        predicted, truth = pred_masks.bool().reshape(-1, *pred_masks.shape[-2:]), gt_masks.bool().reshape(
            -1, *gt_masks.shape[-2:])
        intersections = (predicted & truth).flatten(1).sum(1)
        unions = (predicted | truth).flatten(1).sum(1)
        ious = torch.where(unions > 0, intersections.double() / unions.clamp(min=1), torch.ones_like(unions).double())
        self.iou_sum += ious.sum().cpu()
        self.num_samples += len(ious)
        self.intersection += intersections.sum().cpu()
        self.union += unions.sum().cpu()

    def compute(self) -> dict[str, Any]:
        """``mIoU``, ``oIoU`` (fractions; oIoU is 1 when every mask was empty) and ``num_samples``."""
        samples = int(self.num_samples)
        if samples == 0:
            raise ValueError("no sample was added; call update() before compute()")
        union = int(self.union)
        return {
            "mIoU": float(self.iou_sum) / samples,
            "oIoU": int(self.intersection) / union if union else 1.0,
            "num_samples": samples,
        }
