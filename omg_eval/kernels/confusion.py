"""Confusion matrix of semantic label maps (the inner loop of mIoU, fwIoU and pixel accuracy)."""

from __future__ import annotations

import torch

from omg_eval.kernels._extension import fused_kernels


def _range_error(name: str, labels: torch.Tensor, num_classes: int, ignore_index: int | None) -> ValueError:
    return ValueError(
        f"{name} holds values outside [0, {num_classes}) (min {int(labels.min())}, max {int(labels.max())}); "
        f"pass the right num_classes or map unlabelled pixels to ignore_index={ignore_index}"
    )


def _confusion_torch(
    gt_flat: torch.Tensor, pred_flat: torch.Tensor, num_classes: int, ignore_index: int | None
) -> torch.Tensor:
    if ignore_index is not None:
        keep = gt_flat != ignore_index
        gt_flat, pred_flat = gt_flat[keep], pred_flat[keep]
    for name, labels in (("gt_labels", gt_flat), ("pred_labels", pred_flat)):
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise _range_error(name, labels, num_classes, ignore_index)
    return torch.bincount(gt_flat * num_classes + pred_flat, minlength=num_classes * num_classes).view(
        num_classes, num_classes
    )


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
    for name, labels in (("gt_labels", gt_labels), ("pred_labels", pred_labels)):
        if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
            raise TypeError(
                f"{name} must hold integer class indices, got {labels.dtype}; take the argmax of scores first"
            )
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    kernels = fused_kernels()
    if kernels is not None and not (
        gt_labels.device == pred_labels.device
        and (gt_labels.device.type == "cpu" or (gt_labels.device.type == "cuda" and kernels.has_cuda()))
    ):
        kernels = None  # other devices (or a CPU-only build given CUDA tensors) use the PyTorch formulation
    if kernels is None:
        return _confusion_torch(
            gt_labels.reshape(-1).to(torch.int64), pred_labels.reshape(-1).to(torch.int64), num_classes, ignore_index
        )
    matrix = kernels.confusion_matrix(
        gt_labels.contiguous(), pred_labels.contiguous(), num_classes, -1 if ignore_index is None else ignore_index
    )
    if matrix.numel() == 0:  # the kernel found a label out of range: let the reference path name it precisely
        return _confusion_torch(
            gt_labels.reshape(-1).to(torch.int64), pred_labels.reshape(-1).to(torch.int64), num_classes, ignore_index
        )
    return matrix
