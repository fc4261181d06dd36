"""Precision/recall accumulation and the 12 summary figures of COCO AP, as pycocotools ``COCOeval.accumulate`` and
``summarize`` compute them (same arithmetic, so the figures agree to the last bit on the same matches)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from omg_eval.instance_matching import ImageMatches

# exactly pycocotools' Params grids
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS = (1, 10, 100)
AREA_RANGES = np.array([[0, 1e5**2], [0, 32**2], [32**2, 96**2], [96**2, 1e5**2]], dtype=np.float64)
AREA_NAMES = ("all", "small", "medium", "large")
SUMMARY_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def accumulate(
    matches_per_category: Sequence[Sequence[ImageMatches]],
    iou_thresholds: np.ndarray = IOU_THRESHOLDS,
    recall_thresholds: np.ndarray = RECALL_THRESHOLDS,
    max_dets: Sequence[int] = MAX_DETS,
) -> tuple[np.ndarray, np.ndarray]:
    """Precision (T, R, K, A, M) and recall (T, K, A, M); -1 where a category has no regular ground truth.

    Arguments:
      matches_per_category: K lists of per-image matches, images in increasing image-id order (the order breaks
        score ties, as in pycocotools).
    """
    num_t, num_r, num_k, num_m = len(iou_thresholds), len(recall_thresholds), len(matches_per_category), len(max_dets)
    num_a = len(matches_per_category[0][0].regular_gt) if any(matches_per_category) else len(AREA_RANGES)
    precision = -np.ones((num_t, num_r, num_k, num_a, num_m))
    recall = -np.ones((num_t, num_k, num_a, num_m))
    for k, image_matches in enumerate(matches_per_category):
        if not image_matches:
            continue
        for a in range(num_a):
            regular_gt = int(sum(int(m.regular_gt[a]) for m in image_matches))
            if regular_gt == 0:
                continue
            for m_index, max_det in enumerate(max_dets):
                scores = np.concatenate([m.scores[:max_det] for m in image_matches])
                order = np.argsort(-scores, kind="mergesort")
                matched = np.concatenate([m.matched[a, :, :max_det] for m in image_matches], axis=1)[:, order]
                ignored = np.concatenate([m.ignored[a, :, :max_det] for m in image_matches], axis=1)[:, order]
                tp_sum = np.cumsum(matched & ~ignored, axis=1).astype(dtype=float)
                fp_sum = np.cumsum(~matched & ~ignored, axis=1).astype(dtype=float)
                for t in range(num_t):
                    tp, fp = tp_sum[t], fp_sum[t]
                    num_det = len(tp)
                    rc = tp / regular_gt
                    pr = tp / (fp + tp + np.spacing(1))
                    recall[t, k, a, m_index] = rc[-1] if num_det else 0
                    pr = np.maximum.accumulate(pr[::-1])[::-1] if num_det else pr
                    positions = np.searchsorted(rc, recall_thresholds, side="left")
                    q = np.zeros(num_r)
                    inside = positions < num_det
                    q[inside] = pr[positions[inside]]
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
