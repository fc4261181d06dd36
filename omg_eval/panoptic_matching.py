"""Per-category PQ statistics (TP, FP, FN, summed IoU) of a batch of images, vectorised over all their segments.

The rules are those of COCO panopticapi ``pq_compute_single_core``:

* id 0 is VOID; a ground-truth/prediction pair can match only within one category, never with a crowd segment,
  and matches when IoU > 0.5, where the union leaves out the prediction's pixels on VOID;
* ground-truth areas come from the annotation (``area``), predicted areas are counted on the map;
* an unmatched non-crowd ground truth is a FN; an unmatched prediction is a FP unless more than half of it lies on
  VOID plus the crowd region of its category (when an image has several crowd segments of one category, the last
  one listed is that region, as in panopticapi).

Every image's segments are flattened into tables so the whole batch takes a fixed number of tensor operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

VOID_ID = 0
_ID_SPAN = 2**31  # segment ids are below this, so (image, id) packs into one int64 key


@dataclass
class SegmentTable:
    """Segments of a batch, one row per segment, in annotation order.

    image (S,): image index in the batch. ids (S,): segment id. category (S,): category index in [0, C).
    iscrowd (S,) bool. area (S,) int64 (ground truth: the annotation's ``area``; predictions: unused).
    """

    image: torch.Tensor
    ids: torch.Tensor
    category: torch.Tensor
    iscrowd: torch.Tensor
    area: torch.Tensor

    @property
    def keys(self) -> torch.Tensor:
        return self.image * _ID_SPAN + self.ids


@dataclass
class PQCounts:
    """Per-category accumulators: iou_sum (C,) float64, tp / fp / fn (C,) int64."""

    iou_sum: torch.Tensor
    tp: torch.Tensor
    fp: torch.Tensor
    fn: torch.Tensor


def _lookup(table_keys: torch.Tensor, query_keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row of each query key in a table of unique keys. Returns (row (Q,), found (Q,) bool)."""
    order = torch.argsort(table_keys)
    sorted_keys = table_keys[order]
    position = torch.searchsorted(sorted_keys, query_keys).clamp(max=max(len(sorted_keys) - 1, 0))
    if len(sorted_keys) == 0:
        return torch.zeros_like(query_keys), torch.zeros_like(query_keys, dtype=torch.bool)
    found = sorted_keys[position] == query_keys
    return order[position], found


def _first_missing(table: SegmentTable, present: torch.Tensor) -> int:
    return int(torch.nonzero(~present)[0, 0])


def pq_counts(
    pair_image: torch.Tensor,
    pair_gt: torch.Tensor,
    pair_pred: torch.Tensor,
    pair_count: torch.Tensor,
    gt: SegmentTable,
    pred: SegmentTable,
    num_categories: int,
    image_names: Sequence[str],
) -> PQCounts:
    """PQ accumulators of a batch from its (gt id, pred id) pixel counts.

    Arguments:
      pair_image, pair_gt, pair_pred, pair_count: (M,) int64 output of ``intersect_segment_ids_batch``.
      gt: ground-truth segments of the batch (ids unique per image, never 0).
      pred: predicted segments of the batch (ids unique per image, never 0).
      num_categories: C.
      image_names: a name per image of the batch, used in error messages.

    Returns:
      The batch's PQCounts.

    Raises:
      ValueError: when a map holds a non-VOID id missing from its segment list, or a listed segment has no pixel.
    """
    # --- map every pair to its rows; check maps and segment lists agree (panopticapi raises on predictions) ---
    pred_row, pred_found = _lookup(pred.keys, pair_image * _ID_SPAN + pair_pred)
    gt_row, gt_found = _lookup(gt.keys, pair_image * _ID_SPAN + pair_gt)
    for name, found, ids, side in (("predicted", pred_found, pair_pred, pred), ("ground-truth", gt_found, pair_gt, gt)):
        unlisted = ~found & (ids != VOID_ID)
        if bool(unlisted.any()):
            where = int(torch.nonzero(unlisted)[0, 0])
            raise ValueError(
                f"image {image_names[int(pair_image[where])]}: {name} segment id {int(ids[where])} is in the PNG but "
                "not in segments_info; list every non-zero id of the map (or set those pixels to 0 = VOID)"
            )
        on_map = torch.zeros(len(side.ids), dtype=torch.bool)
        on_map[(pred_row if side is pred else gt_row)[found]] = True
        if len(side.ids) and not bool(on_map.all()):
            row = _first_missing(side, on_map)
            raise ValueError(
                f"image {image_names[int(side.image[row])]}: {name} segment id {int(side.ids[row])} is in "
                "segments_info but has no pixel in the PNG; drop it from segments_info"
            )

    pred_area = torch.zeros(len(pred.ids), dtype=torch.int64).index_add_(
        0, pred_row[pred_found], pair_count[pred_found]
    )
    on_void = pred_found & (pair_gt == VOID_ID)
    pred_void = torch.zeros(len(pred.ids), dtype=torch.int64).index_add_(0, pred_row[on_void], pair_count[on_void])

    # --- matches: same category, non-crowd gt, IoU > 0.5 (unique by construction, no assignment needed) ---
    candidate = pred_found & gt_found
    candidate_index = torch.nonzero(candidate).flatten()
    c_gt, c_pred = gt_row[candidate_index], pred_row[candidate_index]
    keep = (~gt.iscrowd[c_gt]) & (gt.category[c_gt] == pred.category[c_pred])
    c_gt, c_pred, c_inter = c_gt[keep], c_pred[keep], pair_count[candidate_index[keep]]
    union = pred_area[c_pred] + gt.area[c_gt] - c_inter - pred_void[c_pred]
    iou = c_inter.to(torch.float64) / union.to(torch.float64)
    matched = iou > 0.5
    m_gt, m_pred, m_iou = c_gt[matched], c_pred[matched], iou[matched]
    m_category = gt.category[m_gt]

    iou_sum = torch.zeros(num_categories, dtype=torch.float64).index_add_(0, m_category, m_iou)
    tp = torch.bincount(m_category, minlength=num_categories)

    gt_matched = torch.zeros(len(gt.ids), dtype=torch.bool)
    gt_matched[m_gt] = True
    pred_matched = torch.zeros(len(pred.ids), dtype=torch.bool)
    pred_matched[m_pred] = True

    fn = torch.bincount(gt.category[~gt_matched & ~gt.iscrowd], minlength=num_categories)

    # --- crowd region of each (image, category): the last crowd segment listed ---
    num_images = len(image_names)
    crowd_rows = torch.nonzero(gt.iscrowd).flatten()
    crowd_slot = gt.image[crowd_rows] * num_categories + gt.category[crowd_rows]
    last_crowd_row = torch.full((num_images * num_categories,), -1, dtype=torch.int64)
    last_crowd_row.scatter_reduce_(0, crowd_slot, crowd_rows, reduce="amax")
    crowd_id = torch.where(
        last_crowd_row >= 0, gt.ids[last_crowd_row.clamp(min=0)], torch.full_like(last_crowd_row, -1)
    )

    # pixels of each prediction on its category's crowd region
    on_crowd = torch.zeros_like(pred_found)
    if len(pred.ids):
        safe_row = pred_row.clamp(max=len(pred.ids) - 1)  # rows of unlisted pairs are masked by pred_found below
        pair_slot = pred.image[safe_row] * num_categories + pred.category[safe_row]
        on_crowd = pred_found & (crowd_id[pair_slot] == pair_gt)
    pred_crowd = torch.zeros(len(pred.ids), dtype=torch.int64).index_add_(0, pred_row[on_crowd], pair_count[on_crowd])

    # panopticapi compares a float ratio with 0.5; 2 * ignored > area is the same test in exact integers
    ignored = (pred_void + pred_crowd) * 2 > pred_area
    fp = torch.bincount(pred.category[~pred_matched & ~ignored], minlength=num_categories)
    return PQCounts(iou_sum=iou_sum, tp=tp, fp=fp, fn=fn)
