"""Per-frame DAVIS measures and their per-object statistics (mean, recall, decay), as ``davis2017-evaluation``."""

from __future__ import annotations

import numpy as np
import torch


def jaccard_from_counts(intersections: torch.Tensor, unions: torch.Tensor) -> np.ndarray:
    """Region similarity J per frame: intersection / union, 1 for frames where both masks are empty.

    Arguments:
      intersections, unions: (...) int64 pixel counts.

    Returns:
      (...) float64.
    """
    inter = intersections.cpu().numpy().astype(np.float64)
    union = unions.cpu().numpy().astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        j = inter / union
    return np.where(union == 0, 1.0, j)


def f_measure_from_counts(counts: torch.Tensor) -> np.ndarray:
    """Boundary F per frame from [n_fg, n_gt, fg_match, gt_match] counts (see ``boundary_match_counts``).

    A prediction without boundary scores precision 1 and recall 0 (F = 0) against a non-empty ground truth, the
    reverse gives precision 0 and recall 1, and two empty boundaries score F = 1, as the official ``f_measure``.

    Arguments:
      counts: (..., 4) int64.

    Returns:
      (...) float64 F.
    """
    rows = counts.reshape(-1, 4).cpu().tolist()
    values = []
    for n_fg, n_gt, fg_match, gt_match in rows:
        if n_fg == 0 and n_gt > 0:
            precision, recall = 1.0, 0.0
        elif n_fg > 0 and n_gt == 0:
            precision, recall = 0.0, 1.0
        elif n_fg == 0 and n_gt == 0:
            precision, recall = 1.0, 1.0
        else:
            precision, recall = fg_match / float(n_fg), gt_match / float(n_gt)
        values.append(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
    return np.array(values, dtype=np.float64).reshape(tuple(counts.shape[:-1]))


def decay_bins(num_frames: int) -> list[tuple[int, int]]:
    """Start and stop of the first and last of four frame quarters that the decay compares.

    The official builds the bin edges with ``np.round(np.linspace(1, n, 5) + 1e-10) - 1`` cast to uint8, and each bin
    runs to its right edge inclusive (bins share their edge frames). The uint8 cast wraps above 255 frames; we keep it
    so that long sequences score as they do officially. The official's ``edge + 1`` is taken in int64 here, as NumPy
    1.x (which the evaluator was written for) computes ``np.uint8 + 1``; under NumPy 2 (NEP 50) it stays uint8 and
    an edge of 255 (a 256-frame object) wraps to 0, leaving the last quarter empty and the decay NaN, which then makes
    the dataset's mean decay NaN. That artifact is not reproduced.
    """
    edges = (np.round(np.linspace(1, num_frames, 5) + 1e-10) - 1).astype(np.uint8).astype(np.int64)
    return [(int(edges[i]), int(edges[i + 1]) + 1) for i in range(4)]


def sequence_statistics(per_frame: np.ndarray) -> tuple[float, float, float]:
    """Mean, recall (fraction of frames above 0.5) and decay (first quarter mean minus last quarter mean) of one
    object's per-frame values; NaN frames are skipped by the means, as ``np.nanmean`` officially."""
    if per_frame.size == 0:
        raise ValueError("an object has no evaluated frames; sequences need at least 3 frames in semi-supervised mode")
    mean = float(np.nanmean(per_frame))
    recall = float(np.nanmean(per_frame > 0.5))
    bins = decay_bins(len(per_frame))
    with np.errstate(invalid="ignore"):
        first, last = per_frame[bins[0][0] : bins[0][1]], per_frame[bins[3][0] : bins[3][1]]
        decay = float(np.nanmean(first) - np.nanmean(last)) if first.size and last.size else float("nan")
    return mean, recall, decay
