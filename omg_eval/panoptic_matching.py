"""Per-category PQ statistics (TP, FP, FN, summed IoU) of a batch of images, vectorised over all their segments.

The rules are those of COCO panopticapi ``pq_compute_single_core``:

* id 0 is VOID; a ground-truth/prediction pair can match only within one category, never with a crowd segment,
  and matches when IoU > 0.5, where the union leaves out the prediction's pixels on VOID;
* ground-truth areas come from the annotation (``area``, as given, a float too), predicted areas are counted on the
  map;
* a ground-truth id of the map that ``segments_info`` does not list is left out of the matching (neither matched, nor
  VOID, nor crowd); a listed ground-truth segment without a pixel is kept: never matched, so a FN unless crowd, and a
  crowd one still is its category's crowd region. Both are returned (:class:`GTOddities`) for the caller to report;
* an unmatched non-crowd ground truth is a FN; an unmatched prediction is a FP unless more than half of it lies on
  VOID plus the crowd region of its category (when an image has several crowd segments of one category, the last
  one listed is that region, as in panopticapi).

Every image's segments are flattened into tables so the whole batch takes a fixed number of array operations. The
tables are small (tens of rows per image), so NumPy does this part: it runs them on the calling thread, where torch's
intra-op thread pool would contend with the PNG decoding threads for the same cores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

VOID_ID = 0
_ID_SPAN = 2**31  # segment ids are below this, so (image, id) packs into one int64 key


@dataclass
class SegmentTable:
    """Segments of a batch, one row per segment, in annotation order (NumPy arrays).

    image (S,): image index in the batch. ids (S,): segment id. category (S,): category index in [0, C).
    iscrowd (S,) bool. area (S,) float64 (ground truth: the annotation's ``area`` as given, integer or not;
    predictions: unused).
    """

    image: np.ndarray
    ids: np.ndarray
    category: np.ndarray
    iscrowd: np.ndarray
    area: np.ndarray

    @property
    def keys(self) -> np.ndarray:
        return self.image * _ID_SPAN + self.ids


@dataclass
class GTOddities:
    """Ground-truth inputs panopticapi scores although maps and segment lists disagree, as (image index, segment id)
    rows sorted by image then id.

    unlisted_image, unlisted_ids (U,): ids of a ground-truth map missing from its ``segments_info``.
    pixelless_image, pixelless_ids (P,): ``segments_info`` entries without a pixel in the map.
    """

    unlisted_image: np.ndarray
    unlisted_ids: np.ndarray
    pixelless_image: np.ndarray
    pixelless_ids: np.ndarray


@dataclass
class PQCounts:
    """Per-category accumulators: iou_sum (C,) float64, tp / fp / fn (C,) int64; and the batch's GTOddities."""

    iou_sum: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    gt_oddities: GTOddities


def _lookup(table_keys: np.ndarray, query_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row of each query key in a table of unique keys. Returns (row (Q,), found (Q,) bool)."""
    if len(table_keys) == 0:
        return np.zeros(len(query_keys), dtype=np.int64), np.zeros(len(query_keys), dtype=bool)
    order = np.argsort(table_keys, kind="stable")
    sorted_keys = table_keys[order]
    position = np.minimum(np.searchsorted(sorted_keys, query_keys), len(sorted_keys) - 1)
    return order[position], sorted_keys[position] == query_keys


def _sum_by(index: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Sum of int64 ``values`` per ``index`` (float64 bincount is exact: pixel counts stay far below 2^53)."""
    return np.bincount(index, weights=values, minlength=size).astype(np.int64)


def pq_counts(
    pair_image: np.ndarray,
    pair_gt: np.ndarray,
    pair_pred: np.ndarray,
    pair_count: np.ndarray,
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
      ValueError: when a predicted map holds a non-VOID id missing from its segment list, or a listed predicted
        segment has no pixel (panopticapi raises on both). The ground-truth counterparts are scored as panopticapi
        does and returned in ``gt_oddities``.
    """
    # --- map every pair to its rows; check the prediction's map and segment list agree (panopticapi raises) ---
    pred_row, pred_found = _lookup(pred.keys, pair_image * _ID_SPAN + pair_pred)
    gt_row, gt_found = _lookup(gt.keys, pair_image * _ID_SPAN + pair_gt)
    unlisted = ~pred_found & (pair_pred != VOID_ID)
    if unlisted.any():
        where = int(np.flatnonzero(unlisted)[0])
        raise ValueError(
            f"image {image_names[int(pair_image[where])]}: predicted segment id {int(pair_pred[where])} is in the PNG "
            "but not in segments_info; list every non-zero id of the map (or set those pixels to 0 = VOID)"
        )
    pred_on_map = np.zeros(len(pred.ids), dtype=bool)
    pred_on_map[pred_row[pred_found]] = True
    if not pred_on_map.all():
        row = int(np.flatnonzero(~pred_on_map)[0])
        raise ValueError(
            f"image {image_names[int(pred.image[row])]}: predicted segment id {int(pred.ids[row])} is in "
            "segments_info but has no pixel in the PNG; drop it from segments_info"
        )
    # ground truth: panopticapi skips pairs whose gt id is unlisted and keeps listed segments without pixels
    gt_unlisted = ~gt_found & (pair_gt != VOID_ID)
    unlisted_keys = np.unique(pair_image[gt_unlisted] * _ID_SPAN + pair_gt[gt_unlisted])  # one per (image, id)
    gt_on_map = np.zeros(len(gt.ids), dtype=bool)
    gt_on_map[gt_row[gt_found]] = True
    pixelless = np.flatnonzero(~gt_on_map)
    pixelless = pixelless[np.lexsort((gt.ids[pixelless], gt.image[pixelless]))]
    oddities = GTOddities(
        unlisted_image=unlisted_keys // _ID_SPAN,
        unlisted_ids=unlisted_keys % _ID_SPAN,
        pixelless_image=gt.image[pixelless],
        pixelless_ids=gt.ids[pixelless],
    )

    pred_area = _sum_by(pred_row[pred_found], pair_count[pred_found], len(pred.ids))
    on_void = pred_found & (pair_gt == VOID_ID)
    pred_void = _sum_by(pred_row[on_void], pair_count[on_void], len(pred.ids))

    # --- matches: same category, non-crowd gt, IoU > 0.5 (unique by construction, no assignment needed) ---
    candidate = np.flatnonzero(pred_found & gt_found)
    c_gt, c_pred = gt_row[candidate], pred_row[candidate]
    keep = ~gt.iscrowd[c_gt] & (gt.category[c_gt] == pred.category[c_pred])
    c_gt, c_pred, c_inter = c_gt[keep], c_pred[keep], pair_count[candidate[keep]]
    # float64 throughout, in panopticapi's order: exact for integer areas, the same rounding for float ones
    union = pred_area[c_pred] + gt.area[c_gt] - c_inter - pred_void[c_pred]
    iou = c_inter / union
    matched = iou > 0.5
    m_gt, m_pred, m_iou = c_gt[matched], c_pred[matched], iou[matched]
    m_category = gt.category[m_gt]

    iou_sum = np.bincount(m_category, weights=m_iou, minlength=num_categories)
    tp = np.bincount(m_category, minlength=num_categories).astype(np.int64)

    gt_matched = np.zeros(len(gt.ids), dtype=bool)
    gt_matched[m_gt] = True
    pred_matched = np.zeros(len(pred.ids), dtype=bool)
    pred_matched[m_pred] = True

    fn = np.bincount(gt.category[~gt_matched & ~gt.iscrowd], minlength=num_categories).astype(np.int64)

    # --- crowd region of each (image, category): the last crowd segment listed ---
    num_images = len(image_names)
    crowd_rows = np.flatnonzero(gt.iscrowd)
    last_crowd_row = np.full(num_images * num_categories, -1, dtype=np.int64)
    np.maximum.at(last_crowd_row, gt.image[crowd_rows] * num_categories + gt.category[crowd_rows], crowd_rows)
    crowd_id = np.where(last_crowd_row >= 0, gt.ids[np.maximum(last_crowd_row, 0)] if len(gt.ids) else -1, -1)

    # pixels of each prediction on its category's crowd region
    on_crowd = np.zeros_like(pred_found)
    if len(pred.ids):
        safe_row = np.minimum(pred_row, len(pred.ids) - 1)  # rows of unlisted pairs are masked by pred_found below
        pair_slot = pred.image[safe_row] * num_categories + pred.category[safe_row]
        on_crowd = pred_found & (crowd_id[pair_slot] == pair_gt)
    pred_crowd = _sum_by(pred_row[on_crowd], pair_count[on_crowd], len(pred.ids))

    # panopticapi compares a float ratio with 0.5; 2 * ignored > area is the same test in exact integers
    ignored = (pred_void + pred_crowd) * 2 > pred_area
    fp = np.bincount(pred.category[~pred_matched & ~ignored], minlength=num_categories).astype(np.int64)
    return PQCounts(iou_sum=iou_sum, tp=tp, fp=fp, fn=fn, gt_oddities=oddities)
