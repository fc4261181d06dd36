"""Precision/recall accumulation and the 12 summary figures of COCO AP, as pycocotools ``COCOeval.accumulate`` and
``summarize`` compute them (same arithmetic, so the figures agree to the last bit on the same matches)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# exactly pycocotools' Params grids
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS = (1, 10, 100)
AREA_RANGES = np.array([[0, 1e5**2], [0, 32**2], [32**2, 96**2], [96**2, 1e5**2]], dtype=np.float64)
AREA_NAMES = ("all", "small", "medium", "large")
SUMMARY_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def accumulate(
    det_category: np.ndarray,
    det_image: np.ndarray,
    det_rank: np.ndarray,
    det_score: np.ndarray,
    det_matched: np.ndarray,
    det_ignored: np.ndarray,
    regular_gt: np.ndarray,
    iou_thresholds: np.ndarray = IOU_THRESHOLDS,
    recall_thresholds: np.ndarray = RECALL_THRESHOLDS,
    max_dets: Sequence[int] = MAX_DETS,
) -> tuple[np.ndarray, np.ndarray]:
    """Precision (T, R, K, A, M) and recall (T, K, A, M); -1 where a category has no regular ground truth.

    Arguments:
      det_category, det_image, det_rank, det_score: (N,) per matched-or-not detection: category index, image id,
        rank by score within its (image, category), score.
      det_matched, det_ignored: (N, A, T) bool.
      regular_gt: (K, A) ground truths not ignored, per category and area range.

    Detections enter each curve in pycocotools' order: images by increasing id, each image's detections by score,
    then a stable sort by score over the category, so tied scores are broken exactly as COCOeval breaks them.
    """
    num_t, num_r, num_m = len(iou_thresholds), len(recall_thresholds), len(max_dets)
    num_k, num_a = regular_gt.shape
    precision = -np.ones((num_t, num_r, num_k, num_a, num_m))
    recall = -np.ones((num_t, num_k, num_a, num_m))
    order = np.lexsort((det_rank, det_image, det_category))
    bounds = np.searchsorted(det_category[order], np.arange(num_k + 1))
    for k in range(num_k):
        rows = order[bounds[k] : bounds[k + 1]]
        for m_index, max_det in enumerate(max_dets):
            kept = rows[det_rank[rows] < max_det]
            kept = kept[np.argsort(-det_score[kept], kind="mergesort")]
            num_det = len(kept)
            for a in range(num_a):
                if regular_gt[k, a] == 0:
                    continue
                matched = det_matched[kept, a, :].T  # T x D
                ignored = det_ignored[kept, a, :].T
                tp_sum = np.cumsum(matched & ~ignored, axis=1).astype(dtype=float)
                fp_sum = np.cumsum(~matched & ~ignored, axis=1).astype(dtype=float)
                recall_curve = tp_sum / regular_gt[k, a]  # T x D
                precision_curve = tp_sum / (fp_sum + tp_sum + np.spacing(1))
                recall[:, k, a, m_index] = recall_curve[:, -1] if num_det else 0
                if num_det == 0:
                    precision[:, :, k, a, m_index] = 0
                    continue
                # the precision envelope: running maximum from the right, as COCOeval's backward loop
                envelope = np.maximum.accumulate(precision_curve[:, ::-1], axis=1)[:, ::-1]
                for t in range(num_t):
                    positions = np.searchsorted(recall_curve[t], recall_thresholds, side="left")
                    q = np.zeros(num_r)
                    inside = positions < num_det
                    q[inside] = envelope[t, positions[inside]]
                    precision[t, :, k, a, m_index] = q
    return precision, recall


def summarize(
    precision: np.ndarray,
    recall: np.ndarray,
    iou_thresholds: np.ndarray = IOU_THRESHOLDS,
    max_dets: Sequence[int] = MAX_DETS,
) -> dict[str, float]:
    """The 12 COCO figures (``COCOeval.stats`` order, names in ``SUMMARY_NAMES``); -1 where nothing was measurable."""

    def mean_of(values: np.ndarray) -> float:
        kept = values[values > -1]
        return float(np.mean(kept)) if len(kept) else -1.0

    def threshold_index(value: float) -> int:
        return int(np.nonzero(np.isclose(iou_thresholds, value))[0][0])

    last = len(max_dets) - 1

    def ap(area: int, threshold: float | None = None) -> float:
        s = precision[:, :, :, area, last]
        return mean_of(s[threshold_index(threshold)] if threshold is not None else s)

    def ar(area: int, max_det_index: int) -> float:
        return mean_of(recall[:, :, area, max_det_index])

    figures = [
        ap(0),
        ap(0, 0.5),
        ap(0, 0.75),
        ap(1),
        ap(2),
        ap(3),
        ar(0, 0),
        ar(0, 1),
        ar(0, last),
        ar(1, last),
        ar(2, last),
        ar(3, last),
    ]
    return dict(zip(SUMMARY_NAMES, figures))
