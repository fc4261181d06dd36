"""COCO-style matching and precision/recall accumulation of YouTube-VIS (the ``ytvoseval`` algorithm).

Per (video, category) the detections, best score first, greedily take the best-IoU ground-truth track still free
at each IoU threshold; crowd tracks (and tracks outside the area range) are "ignore" tracks that absorb detections
without counting. Per (category, area range, max detections) the matches of all videos are pooled, sorted by score and
turned into a precision-recall curve sampled at 101 recall points. Reimplemented from the official evaluator's
behaviour (youtubevos/cocoapi ``PythonAPI/pycocotools/ytvoseval.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Same constructions as the official Params, so that threshold comparisons agree to the last bit.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10, endpoint=True)  # T
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, 101, endpoint=True)  # R
MAX_DETECTIONS = (1, 10, 100)  # M
# A detection needs at least this IoU; the official caps the 0.95 threshold just below 1 so that IoU 1 still matches.
_MIN_IOUS = np.minimum(IOU_THRESHOLDS, 1 - 1e-10).tolist()
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
    if len(gt_crowd) == 0:  # detections without ground truth: all unmatched, ignored only outside the area range
        scores = dt_scores.tolist()
        order = sorted(range(len(scores)), key=lambda i: -scores[i])[:max_detections]  # stable, as mergesort
        areas = dt_avg_areas.tolist()
        outside = np.array([areas[i] < low or areas[i] > high for i in order], dtype=bool)
        return VideoCategoryMatches(
            dt_scores[order],
            np.zeros((len(IOU_THRESHOLDS), len(order)), dtype=bool),
            np.repeat(outside[None, :], len(IOU_THRESHOLDS), axis=0),
            np.zeros(0, dtype=bool),
        )
    # Per (video, category) there are a handful of tracks, so plain Python lists beat numpy's per-call overhead here.
    crowd = gt_crowd.tolist()
    gt_ign = [c or a < low or a > high for c, a in zip(crowd, gt_avg_areas.tolist())]
    # Stable sorts as the official mergesort: regular tracks first, detections by decreasing score.
    gt_order = sorted(range(len(gt_ign)), key=gt_ign.__getitem__)
    score_list = dt_scores.tolist()
    dt_order = sorted(range(len(score_list)), key=lambda i: -score_list[i])[:max_detections]
    gt_ign = [gt_ign[j] for j in gt_order]
    crowd = [crowd[j] for j in gt_order]
    num_t, num_dt, num_gt = len(IOU_THRESHOLDS), len(dt_order), len(gt_order)
    matched = [[False] * num_dt for _ in range(num_t)]
    ignored = [[False] * num_dt for _ in range(num_t)]
    if num_gt and num_dt:  # otherwise nothing can match: every detection stays unmatched
        iou_rows = ious.tolist()
        for t, threshold in enumerate(_MIN_IOUS):
            taken = [False] * num_gt
            for d, dt_index in enumerate(dt_order):
                row = iou_rows[dt_index]
                best, match = threshold, -1
                for g, gt_index in enumerate(gt_order):
                    if taken[g] and not crowd[g]:
                        continue
                    # Once a regular track matched, ignore tracks (sorted last) cannot take the detection.
                    if match > -1 and not gt_ign[match] and gt_ign[g]:
                        break
                    if row[gt_index] < best:
                        continue
                    best, match = row[gt_index], g  # ties go to the later track, as officially
                if match > -1:
                    matched[t][d] = True
                    ignored[t][d] = gt_ign[match]
                    taken[match] = True
    areas = dt_avg_areas.tolist()
    out_of_range = [areas[i] < low or areas[i] > high for i in dt_order]
    matched_array = np.array(matched, dtype=bool).reshape(num_t, num_dt)
    ignored_array = np.array(ignored, dtype=bool).reshape(num_t, num_dt)
    ignored_array |= ~matched_array & np.array(out_of_range, dtype=bool)[None, :]
    return VideoCategoryMatches(
        dt_scores[np.array(dt_order, dtype=np.int64)], matched_array, ignored_array, np.array(gt_ign, dtype=bool)
    )


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
