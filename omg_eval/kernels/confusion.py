"""Confusion matrix of semantic label maps (the inner loop of mIoU, fwIoU and pixel accuracy)."""

from __future__ import annotations

import torch


def confusion_matrix(
    gt_labels: torch.Tensor, pred_labels: torch.Tensor, num_classes: int, ignore_index: int | None = 255
) -> torch.Tensor:
    """Count pixels per (ground-truth class, predicted class).

    Arguments:
      gt_labels: integer tensor of any shape; pixels equal to ``ignore_index`` are skipped.
      pred_labels: integer tensor of the same shape, values in [0, num_classes).
      num_classes: K.
      ignore_index: ground-truth value to skip, or None.

    Returns:
      (K, K) int64 matrix, rows = ground truth, columns = prediction.
    """
    if gt_labels.shape != pred_labels.shape:
        raise ValueError(
            f"gt_labels {tuple(gt_labels.shape)} and pred_labels {tuple(pred_labels.shape)} must have the same shape"
        )
    gt_flat = gt_labels.reshape(-1).to(torch.int64)
    pred_flat = pred_labels.reshape(-1).to(torch.int64)
    if ignore_index is not None:
        keep = gt_flat != ignore_index
        gt_flat, pred_flat = gt_flat[keep], pred_flat[keep]
    for name, labels in (("gt_labels", gt_flat), ("pred_labels", pred_flat)):
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise ValueError(
                f"{name} holds values outside [0, {num_classes}) (min {int(labels.min())}, max {int(labels.max())}); "
                f"pass the right num_classes or map unlabelled pixels to ignore_index={ignore_index}"
            )
    return torch.bincount(gt_flat * num_classes + pred_flat, minlength=num_classes * num_classes).view(
        num_classes, num_classes
    )
