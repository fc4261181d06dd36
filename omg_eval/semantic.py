"""Semantic segmentation figures (mIoU, fwIoU, pixel accuracy, mean class accuracy) from one confusion matrix.

Definitions follow mmseg's ``IoUMetric`` (OMG-Seg is built on the OpenMMLab stack): a class enters the mIoU mean
when its union is non-empty, i.e. it occurs in the ground truth or the prediction (so a class predicted but absent
from the ground truth scores IoU 0, where detectron2's SemSegEvaluator would leave it out), and the accuracy mean
when it occurs in the ground truth; fwIoU (not in mmseg) weighs each IoU by the class's share of ground-truth pixels,
as detectron2 does. Ground-truth pixels equal to ``ignore_index`` (255) are left out, with whatever was predicted
there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from omg_eval.kernels.confusion import confusion_matrix, confusion_matrix_batch
from omg_eval.metric import Metric


class SemanticSegmentation(Metric):
    """Accumulates a (K, K) confusion matrix over label maps.

    Arguments:
      num_classes: K; labels are class indices in [0, K).
      ignore_index: ground-truth label to skip (255 for COCO / ADE / Cityscapes), or None.
      class_names: optional K names for the per-class figures.
    """

    def __init__(
        self, num_classes: int, ignore_index: int | None = 255, class_names: Sequence[str] | None = None
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if ignore_index is not None and 0 <= ignore_index < num_classes:
            raise ValueError(
                f"ignore_index={ignore_index} is also a class index in [0, {num_classes}); pick a value outside "
                "the class range (255 is the usual choice)"
            )
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names is not None else [str(k) for k in range(num_classes)]
        self.add_state("confusion", torch.zeros(num_classes, num_classes, dtype=torch.int64), "sum")

    def update(
        self, pred_labels: torch.Tensor | Sequence[torch.Tensor], gt_labels: torch.Tensor | Sequence[torch.Tensor]
    ) -> None:
        """Add label maps.

        Arguments:
          pred_labels: (B, H, W) or (H, W) predicted class indices, or a list of such maps of varying sizes.
          gt_labels: ground-truth class indices of the same shapes; ``ignore_index`` marks unlabelled pixels.
        """
        if isinstance(pred_labels, torch.Tensor) != isinstance(gt_labels, torch.Tensor):
            raise TypeError("pass pred_labels and gt_labels both as tensors or both as lists of tensors")
        pairs = (
            [(pred_labels, gt_labels)]
            if isinstance(pred_labels, torch.Tensor)
            else list(zip(pred_labels, gt_labels, strict=True))
        )
        if len(pairs) == 1:
            counts = confusion_matrix(pairs[0][1], pairs[0][0], self.num_classes, self.ignore_index)
        else:  # one call for the batch: the kernel spreads the images over the threads
            counts = confusion_matrix_batch(
                [gt for _, gt in pairs], [pred for pred, _ in pairs], self.num_classes, self.ignore_index
            )
        self.confusion += counts.to(self.confusion.device)

    def compute(self) -> dict[str, Any]:
        """mIoU, fwIoU, pACC, mACC (fractions in [0, 1]; NaN when no labelled pixel was seen) and per-class IoU / acc."""
        confusion = self.confusion.to(torch.float64)
        true_positive = confusion.diagonal()
        gt_pixels = confusion.sum(dim=1)
        pred_pixels = confusion.sum(dim=0)
        union = gt_pixels + pred_pixels - true_positive
        iou_valid = (gt_pixels + pred_pixels) > 0
        acc_valid = gt_pixels > 0
        iou = torch.where(iou_valid, true_positive / union.clamp(min=1), torch.full_like(union, float("nan")))
        accuracy = torch.where(acc_valid, true_positive / gt_pixels.clamp(min=1), torch.full_like(union, float("nan")))
        total = gt_pixels.sum()
        nan = float("nan")
        miou = float(iou[iou_valid].mean()) if bool(iou_valid.any()) else nan
        weights = gt_pixels / total if float(total) > 0 else gt_pixels
        fwiou = float((iou[iou_valid] * weights[iou_valid]).sum()) if float(total) > 0 else nan
        return {
            "mIoU": miou,
            "fwIoU": fwiou,
            "pACC": float(true_positive.sum() / total) if float(total) > 0 else nan,
            "mACC": float(accuracy[acc_valid].mean()) if bool(acc_valid.any()) else nan,
            "per_class": {
                name: {"IoU": float(iou[k]), "ACC": float(accuracy[k])} for k, name in enumerate(self.class_names)
            },
        }
