"""Confusion matrix of semantic label maps (the inner loop of mIoU, fwIoU and pixel accuracy)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from omg_eval.kernels._extension import fused_kernels


def _range_error(name: str, labels: torch.Tensor, num_classes: int, ignore_index: int | None) -> ValueError:
    return ValueError(
        f"{name} holds values outside [0, {num_classes}) (min {int(labels.min())}, max {int(labels.max())}); "
        f"pass the right num_classes or map unlabelled pixels to ignore_index={ignore_index}"
    )


def _confusion_torch(
    gt_labels: torch.Tensor, pred_labels: torch.Tensor, num_classes: int, ignore_index: int | None
) -> torch.Tensor:
    """The PyTorch formulation (and the one that names an out-of-range label) on maps of any shape and int dtype."""
    gt_flat, pred_flat = gt_labels.reshape(-1).to(torch.int64), pred_labels.reshape(-1).to(torch.int64)
    if ignore_index is not None:
        keep = gt_flat != ignore_index
        gt_flat, pred_flat = gt_flat[keep], pred_flat[keep]
    for name, labels in (("gt_labels", gt_flat), ("pred_labels", pred_flat)):
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise _range_error(name, labels, num_classes, ignore_index)
    return torch.bincount(gt_flat * num_classes + pred_flat, minlength=num_classes * num_classes).view(
        num_classes, num_classes
    )


def _check_labels(gt_labels: torch.Tensor, pred_labels: torch.Tensor, where: str = "") -> None:
    if gt_labels.shape != pred_labels.shape:
        raise ValueError(
            f"{where}gt_labels {tuple(gt_labels.shape)} and pred_labels {tuple(pred_labels.shape)} must have the same "
            "shape"
        )
    for name, labels in (("gt_labels", gt_labels), ("pred_labels", pred_labels)):
        if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
            raise TypeError(
                f"{where}{name} must hold integer class indices, got {labels.dtype}; take the argmax of scores first"
            )


def confusion_matrix_batch(
    gt_maps: Sequence[torch.Tensor], pred_maps: Sequence[torch.Tensor], num_classes: int, ignore_index: int | None = 255
) -> torch.Tensor:
    """:func:`confusion_matrix` summed over many pairs of label maps (sizes may differ), in one call: the fused
    kernel counts the images in parallel instead of splitting each small image over threads.

    Arguments:
      gt_maps / pred_maps: B integer label maps each, pair b of one shape.
      num_classes, ignore_index: as in :func:`confusion_matrix`.

    Returns:
      (K, K) int64 matrix.
    """
    if len(gt_maps) != len(pred_maps):
        raise ValueError(f"got {len(gt_maps)} ground-truth maps but {len(pred_maps)} predicted maps")
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    for index, (gt, pred) in enumerate(zip(gt_maps, pred_maps)):
        _check_labels(gt, pred, f"image {index}: ")
    kernels = fused_kernels()
    if ignore_index is not None and ignore_index < 0:
        kernels = None  # the kernels read a negative ignore_index as "no ignore value"
    if kernels is None or not all(m.device.type == "cpu" for m in (*gt_maps, *pred_maps)):
        # map by map: confusion_matrix picks the CUDA kernel or the PyTorch formulation for each
        total = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        for index, (gt, pred) in enumerate(zip(gt_maps, pred_maps)):
            total += _image_confusion(gt, pred, num_classes, ignore_index, index).cpu()
        return total
    matrix, bad_image = kernels.confusion_matrix_batch(
        [m.contiguous() for m in gt_maps],
        [m.contiguous() for m in pred_maps],
        num_classes,
        -1 if ignore_index is None else ignore_index,
    )
    if int(bad_image) >= 0:  # let the single-map path name the label precisely
        index = int(bad_image)
        _image_confusion(gt_maps[index], pred_maps[index], num_classes, ignore_index, index)
        raise AssertionError(f"the fused confusion kernel refused image {index}, which the PyTorch path counts")
    return matrix


def _image_confusion(
    gt: torch.Tensor, pred: torch.Tensor, num_classes: int, ignore_index: int | None, index: int
) -> torch.Tensor:
    """:func:`confusion_matrix` of image ``index`` of a batch; its errors name the image."""
    try:
        return confusion_matrix(gt, pred, num_classes, ignore_index)
    except ValueError as error:
        raise ValueError(f"image {index}: {error}") from None


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
    _check_labels(gt_labels, pred_labels)
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    kernels = fused_kernels()
    if ignore_index is not None and ignore_index < 0:
        kernels = None  # the kernels read a negative ignore_index as "no ignore value"
    if kernels is not None and not (
        gt_labels.device == pred_labels.device
        and (gt_labels.device.type == "cpu" or (gt_labels.device.type == "cuda" and kernels.has_cuda()))
    ):
        kernels = None  # other devices (or a CPU-only build given CUDA tensors) use the PyTorch formulation
    if kernels is None:
        return _confusion_torch(gt_labels, pred_labels, num_classes, ignore_index)
    matrix = kernels.confusion_matrix(
        gt_labels.contiguous(), pred_labels.contiguous(), num_classes, -1 if ignore_index is None else ignore_index
    )
    if matrix.numel() == 0:  # the kernel found a label out of range: let the reference path name it precisely
        return _confusion_torch(gt_labels, pred_labels, num_classes, ignore_index)
    return matrix
