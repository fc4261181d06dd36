"""Intersection counting of ground-truth and predicted segment ids (the inner loop of PQ, VPQ and STQ)."""

from __future__ import annotations

import torch


def intersect_segment_ids(
    gt_ids: torch.Tensor, pred_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Count the pixels of every (ground-truth id, predicted id) pair present in two id maps.

    Arguments:
      gt_ids: int64 tensor of any shape, non-negative segment ids (0 may mean VOID; the caller decides).
      pred_ids: int64 tensor of the same shape.

    Returns:
      (gt_pair_ids (M,), pred_pair_ids (M,), pixel_counts (M,)), one entry per pair that occurs, sorted by
      (gt id, pred id).
    """
    if gt_ids.shape != pred_ids.shape:
        raise ValueError(f"gt_ids {tuple(gt_ids.shape)} and pred_ids {tuple(pred_ids.shape)} must have the same shape")
    gt_flat = gt_ids.reshape(-1).to(torch.int64)
    pred_flat = pred_ids.reshape(-1).to(torch.int64)
    if gt_flat.numel() and (int(gt_flat.min()) < 0 or int(pred_flat.min()) < 0):
        raise ValueError("segment ids must be non-negative")
    offset = int(pred_flat.max()) + 1 if pred_flat.numel() else 1
    pair_keys, counts = torch.unique(gt_flat * offset + pred_flat, return_counts=True)
    return pair_keys // offset, pair_keys % offset, counts
