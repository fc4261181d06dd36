"""COCO-style matching and precision/recall accumulation of YouTube-VIS (the ``ytvoseval`` algorithm).

Per (video, category) the detections, best score first, greedily take the best-IoU ground-truth track still free
at each IoU threshold; crowd tracks (and tracks outside the area range) are "ignore" tracks that absorb detections
without counting. Per (category, area range, max detections) the matches of all videos are pooled, sorted by score and
turned into a precision-recall curve sampled at 101 recall points. Reimplemented from the official evaluator's
behaviour (youtubevos/cocoapi ``PythonAPI/pycocotools/ytvoseval.py``), vectorised over IoU thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Same constructions as the official Params, so that threshold comparisons agree to the last bit.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10, endpoint=True)  # T
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, 101, endpoint=True)  # R
MAX_DETECTIONS = (1, 10, 100)  # M
# YouTube-VIS measures a track by its mean area over the frames where it is present; its size bins are 128^2/256^2.
AREA_RANGES = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 128.0**2),
    "medium": (128.0**2, 256.0**2),
    "large": (256.0**2, 1e5**2),
}


@dataclass
class VideoCategoryMatches:
    """Matching result of one (video, category, area range).

    Attributes:
      scores: (D,) float64 detection scores, best first (at most the largest max-detections kept).
      matched: (T, D) bool, detection matched at each IoU threshold.
      ignored: (T, D) bool, detection matched to an ignore track, or unmatched and outside the area range.
      gt_ignored: (G,) bool ignore flags of the ground-truth tracks.
    """

    scores: np.ndarray
    matched: np.ndarray
    ignored: np.ndarray
    gt_ignored: np.ndarray


def match_video_category(
    ious: np.ndarray,
    dt_scores: np.ndarray,
    dt_avg_areas: np.ndarray,
    gt_avg_areas: np.ndarray,
    gt_crowd: np.ndarray,
    area_range: tuple[float, float],
    max_detections: int,
) -> VideoCategoryMatches:
    """Greedy matching of the detections of one (video, category) to its ground-truth tracks.

    Arguments:
      ious: (D, G) float64 track IoU, detections and tracks in their input order.
      dt_scores: (D,) detection scores.
      dt_avg_areas: (D,) mean non-empty area of each detection.
      gt_avg_areas: (G,) mean non-empty area of each ground-truth track.
      gt_crowd: (G,) bool crowd flags.
      area_range: (low, high); tracks whose mean area falls outside are ignored.
      max_detections: keep this many detections, highest score first.

    Returns:
      The :class:`VideoCategoryMatches`.
    """
    low, high = area_range
    gt_ignored = gt_crowd | (gt_avg_areas < low) | (gt_avg_areas > high)  # G
    # Stable sorts as the official mergesort: regular tracks first, detections by decreasing score.
    gt_order = np.argsort(gt_ignored, kind="mergesort")
    dt_order = np.argsort(-dt_scores, kind="mergesort")[:max_detections]
    gt_ignored, gt_crowd = gt_ignored[gt_order], gt_crowd[gt_order]
    ious = ious[dt_order][:, gt_order]  # D x G
    num_thresholds, num_dt = len(IOU_THRESHOLDS), len(dt_order)
    gt_taken = np.zeros((num_thresholds, len(gt_order)), dtype=bool)  # T x G
    matched = np.zeros((num_thresholds, num_dt), dtype=bool)  # T x D
    ignored = np.zeros((num_thresholds, num_dt), dtype=bool)  # T x D
    if len(gt_order):
        min_iou = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[:, None]  # T x 1
        rows = np.arange(num_thresholds)
        for d in range(num_dt):
            candidate = (~gt_taken | gt_crowd[None, :]) & (ious[d][None, :] >= min_iou)  # T x G
            # A regular track always wins over an ignore track; among equals the last one in order wins.
            for group in (~gt_ignored, gt_ignored):
                scores = np.where(candidate & group[None, :], ious[d][None, :], -1.0)  # T x G
                best = scores.shape[1] - 1 - np.argmax(scores[:, ::-1], axis=1)  # T
                found = (scores[rows, best] >= 0) & ~matched[:, d]
                matched[found, d] = True
                ignored[found, d] = gt_ignored[best[found]]
                gt_taken[rows[found], best[found]] = True
    out_of_range = (dt_avg_areas[dt_order] < low) | (dt_avg_areas[dt_order] > high)  # D
    ignored |= ~matched & out_of_range[None, :]
    return VideoCategoryMatches(dt_scores[dt_order], matched, ignored, gt_ignored)


def precision_recall(matches: list[VideoCategoryMatches], max_detections: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Pool the matches of one (category, area range) over videos into precision and recall.

    Arguments:
      matches: per video (in increasing video id order, which decides ties between equal scores).
      max_detections: detections kept per video.

    Returns:
      (precision (T, R), recall (T,)) float64, or None when no ground-truth track counts (the category is then left
      out of the means, as the official -1).
    """
    scores = np.concatenate([m.scores[:max_detections] for m in matches])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([m.matched[:, :max_detections] for m in matches], axis=1)[:, order]  # T x D
    ignored = np.concatenate([m.ignored[:, :max_detections] for m in matches], axis=1)[:, order]  # T x D
    num_positives = int(np.count_nonzero(~np.concatenate([m.gt_ignored for m in matches])))
    if num_positives == 0:
        return None
    tp_cumsum = np.cumsum(matched & ~ignored, axis=1).astype(np.float64)  # T x D
    fp_cumsum = np.cumsum(~matched & ~ignored, axis=1).astype(np.float64)  # T x D
    num_thresholds, num_dt = tp_cumsum.shape
    precision = np.zeros((num_thresholds, len(RECALL_THRESHOLDS)))
    recall = np.zeros(num_thresholds)
    for t in range(num_thresholds):
        rc = tp_cumsum[t] / num_positives
        pr = tp_cumsum[t] / (fp_cumsum[t] + tp_cumsum[t] + np.spacing(1))
        recall[t] = rc[-1] if num_dt else 0.0
        # Interpolated precision: the best precision at any recall at least as high.
        pr = np.maximum.accumulate(pr[::-1])[::-1]
        positions = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
        reachable = positions < num_dt
        precision[t, reachable] = pr[positions[reachable]]
    return precision, recall


def mean_of_valid(values: np.ndarray) -> float:
    """Mean of the entries that are not -1 (categories without ground truth), or -1 when there are none."""
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0
