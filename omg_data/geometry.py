"""Boxes and areas of masks."""

from __future__ import annotations

import numpy as np
import torch


def mask_boxes_xyxy(masks: torch.Tensor) -> torch.Tensor:
    """Tight boxes of N x H x W bool masks: N x 4 float32 (x0, y0, x1, y1), x1/y1 exclusive; zeros if empty."""
    n = masks.shape[0]
    if n == 0:
        return torch.zeros(0, 4, dtype=torch.float32)
    rows = masks.any(dim=2)  # N x H
    cols = masks.any(dim=1)  # N x W
    height, width = masks.shape[-2:]
    row_index = torch.arange(height).expand(n, height)
    col_index = torch.arange(width).expand(n, width)
    y0 = torch.where(rows, row_index, height).min(dim=1).values
    y1 = torch.where(rows, row_index, -1).max(dim=1).values + 1
    x0 = torch.where(cols, col_index, width).min(dim=1).values
    x1 = torch.where(cols, col_index, -1).max(dim=1).values + 1
    boxes = torch.stack([x0, y0, x1, y1], dim=1).float()
    empty = ~rows.any(dim=1)
    boxes[empty] = 0.0
    return boxes


def coco_bbox(mask: np.ndarray | torch.Tensor) -> list[float]:
    """COCO `bbox` [x, y, width, height] of one H x W mask (pixel units, as panopticapi writes it)."""
    box = mask_boxes_xyxy(torch.as_tensor(np.asarray(mask, dtype=bool))[None])[0].tolist()
    return [box[0], box[1], box[2] - box[0], box[3] - box[1]]
