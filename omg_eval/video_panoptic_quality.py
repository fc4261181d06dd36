"""Video Panoptic Quality (VPQ) as computed by the VIPSeg evaluator (``ClipPanoFCN/eval_vpq_vspw.py`` of
VIPSeg-Dataset/VIPSeg-Dataset, after VPSNet).

For a window of ``n`` consecutive annotated frames the frames are stacked into one volume and panoptic quality is
computed on "tubes" (a segment id followed through the window): a ground-truth and a predicted tube of the same
category match when their IoU over the window exceeds 0.5, the union leaving out the prediction's pixels on VOID.
Every window start 0 .. T-n of every video contributes its TP / FP / FN / IoU to per-category sums, which are pooled
over the whole data set before PQ is averaged over the categories that occur. The window size is reported as
``k = (n - 1) * annotation_stride`` frames (VIPSeg and Cityscapes-VPS annotate every 5th frame). VPQ is the mean of the
window sizes' PQ. Figures are fractions in [0, 1] (the official script prints them times 100).

Which windows: VIPSeg's ``eval_vpq_vspw.py`` (the script its ``run_eval.sh`` runs) loops over n = 1, 2, 4, 6, 8
annotated frames, i.e. k = 0, 5, 15, 25, 35 (:data:`VIPSEG_WINDOW_SIZES`; the headline of ``omg eval`` and
:func:`omg_eval.video_panoptic_files.evaluate_vipseg`), and writes the plain mean of the five window figures to
``vpq-final.txt``. The ``eval_vpq.py`` beside it is VPSNet's Cityscapes-VPS evaluator, which averages n = 1, 2, 3, 4,
i.e. k = 0, 5, 10, 15 (:data:`VPSNET_WINDOW_SIZES`, the default of :class:`VideoPanopticQuality`, whose training and
validation clips are often shorter than the 8 annotated frames of VIPSeg's longest window). The per-window matching is
the same code in both scripts; a video shorter than a window adds nothing to it. ``compute()`` names its windows in
"vpq_windows".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from omg_eval.metric import Metric
from omg_eval.video_panoptic_inputs import (
    PanopticLabelSpace,
    check_categories,
    check_video_pair,
    count_video_pairs,
)

#: Window sizes k (video frames) of VIPSeg's eval_vpq_vspw.py: n = 1, 2, 4, 6, 8 annotated frames.
VIPSEG_WINDOW_SIZES: tuple[int, ...] = (0, 5, 15, 25, 35)
#: Window sizes k of VPSNet's (Cityscapes-VPS) eval_vpq.py: n = 1, 2, 3, 4 annotated frames.
VPSNET_WINDOW_SIZES: tuple[int, ...] = (0, 5, 10, 15)


def window_frame_counts(window_sizes: Sequence[int], annotation_stride: int) -> tuple[int, ...]:
    """Turn window sizes k (in video frames) into numbers of annotated frames n = k / stride + 1."""
    if annotation_stride < 1:
        raise ValueError(f"annotation_stride must be at least 1, got {annotation_stride}")
    if not window_sizes:
        raise ValueError(f"window_sizes is empty; VIPSeg's eval_vpq_vspw.py uses {VIPSEG_WINDOW_SIZES}")
    counts = []
    for k in window_sizes:
        if k < 0 or k % annotation_stride:
            raise ValueError(
                f"window size {k} is not a non-negative multiple of annotation_stride={annotation_stride}; "
                f"k counts video frames between the first and last annotated frame of a window"
            )
        counts.append(k // annotation_stride + 1)
    if len(set(counts)) != len(counts):
        raise ValueError(f"window_sizes {list(window_sizes)} holds duplicates")
    return tuple(counts)


def describe_windows(window_sizes: Sequence[int], annotation_stride: int) -> str:
    """A name for a set of windows, by annotated frames per window: ``(0, 5, 15, 25, 35)`` -> ``"n=1,2,4,6,8"``."""
    return "n=" + ",".join(str(n) for n in window_frame_counts(window_sizes, annotation_stride))


def average_over_windows(results: dict[str, Any], window_sizes: Sequence[int]) -> dict[str, float]:
    """"vpq", "vpq_thing" and "vpq_stuff": the plain means of the per-window figures ``results["vpq@k"]`` etc. over
    ``window_sizes``, as eval_vpq_vspw.py averages its windows (NaN when a window has no figure)."""
    if not window_sizes:
        raise ValueError("average_over_windows needs at least one window size")
    missing = [k for k in window_sizes if f"vpq@{k}" not in results]
    if missing:
        raise KeyError(f"no per-window figures for window sizes {missing}; compute them first")
    return {
        key: sum(results[f"{key}@{k}"] for k in window_sizes) / len(window_sizes)
        for key in ("vpq", "vpq_thing", "vpq_stuff")
    }


def _per_frame_table(
    frame: torch.Tensor, column: torch.Tensor, counts: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    """Sum ``counts`` into a (T, N) table at (frame, column) and return its running sum with a zero first row."""
    table = torch.zeros(shape, dtype=torch.int64, device=counts.device)
    table.index_put_((frame, column), counts, accumulate=True)
    return torch.cat([table.new_zeros(1, shape[1]), table.cumsum(0)])  # (T + 1) x N


def video_pq_stats(
    pred_ids: torch.Tensor, gt_ids: torch.Tensor, space: PanopticLabelSpace, frame_counts: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-category TP, FP, FN and summed IoU of one video, pooled over all its windows, for each window length.

    Arguments:
      pred_ids: T x H x W int64 predicted panoptic ids (already checked).
      gt_ids: T x H x W int64 ground-truth panoptic ids.
      space: the label space.
      frame_counts: window lengths n in annotated frames.

    Returns:
      (tp, fp, fn, iou_sum), each W x C (int64, int64, int64, float64) on the CPU, W = len(frame_counts).
    """
    num_windows, num_classes = len(frame_counts), space.num_classes
    tp = torch.zeros(num_windows, num_classes, dtype=torch.int64)
    fp, fn = torch.zeros_like(tp), torch.zeros_like(tp)
    iou_sum = torch.zeros(num_windows, num_classes, dtype=torch.float64)
    num_frames = gt_ids.shape[0]
    if gt_ids.numel() == 0:
        return tp, fp, fn, iou_sum

    frame, gt_pair, pred_pair, counts = count_video_pairs(pred_ids, gt_ids, per_frame=True)
    assert frame is not None
    divisor = space.label_divisor
    gt_is_void = check_categories(gt_pair, space, "gt_ids") == space.void_label  # M
    pred_is_void = check_categories(pred_pair, space, "pred_ids") == space.void_label  # M

    # Dense numbering of the video's real segments: G ground-truth tubes, P predicted tubes.
    gt_segments = torch.unique(gt_pair[~gt_is_void])  # G
    pred_segments = torch.unique(pred_pair[~pred_is_void])  # P
    gt_index = torch.searchsorted(gt_segments, gt_pair).clamp_(max=max(gt_segments.numel() - 1, 0))
    pred_index = torch.searchsorted(pred_segments, pred_pair).clamp_(max=max(pred_segments.numel() - 1, 0))
    gt_category = gt_segments // divisor  # G
    pred_category = pred_segments // divisor  # P
    is_thing = space.is_thing_table(gt_ids.device)
    gt_is_crowd = is_thing[gt_category] & (gt_segments % divisor == 0)  # G
    num_gt, num_pred = gt_segments.numel(), pred_segments.numel()

    both_real = ~gt_is_void & ~pred_is_void
    same_category = torch.zeros_like(both_real)
    same_category[both_real] = gt_category[gt_index[both_real]] == pred_category[pred_index[both_real]]
    on_crowd = torch.zeros_like(both_real)
    on_crowd[both_real] = gt_is_crowd[gt_index[both_real]]

    # Running sums over frames; a window [s, s + n) is the difference of two rows.
    gt_area = _per_frame_table(frame[~gt_is_void], gt_index[~gt_is_void], counts[~gt_is_void], (num_frames, num_gt))
    pred_rows = ~pred_is_void
    pred_area = _per_frame_table(frame[pred_rows], pred_index[pred_rows], counts[pred_rows], (num_frames, num_pred))
    void_rows = gt_is_void & ~pred_is_void
    pred_on_void = _per_frame_table(frame[void_rows], pred_index[void_rows], counts[void_rows], (num_frames, num_pred))
    # A prediction's pixels on the crowd region of its own category are forgiven like VOID when counting FPs.
    crowd_rows = on_crowd & same_category
    pred_on_crowd = _per_frame_table(
        frame[crowd_rows], pred_index[crowd_rows], counts[crowd_rows], (num_frames, num_pred)
    )
    # Candidate matches: non-crowd ground truth and prediction of the same category that overlap somewhere.
    candidate_rows = same_category & ~on_crowd
    pair_keys = gt_index[candidate_rows] * max(num_pred, 1) + pred_index[candidate_rows]
    pairs, pair_column = torch.unique(pair_keys, return_inverse=True)  # K
    pair_gt, pair_pred = pairs // max(num_pred, 1), pairs % max(num_pred, 1)  # K, K
    intersection = _per_frame_table(
        frame[candidate_rows], pair_column, counts[candidate_rows], (num_frames, pairs.numel())
    )
    pair_category = gt_category[pair_gt]  # K

    # Every window of every length at once: row r covers frames [window_start[r], window_end[r]) and belongs to
    # window length number window_of_row[r]. Videos shorter than a window give it no rows, as the official loop over
    # starts 0 .. T-n is then empty.
    starts, ends, owners = [], [], []
    for window, length in enumerate(frame_counts):
        num_starts = max(num_frames - length + 1, 0)
        starts.append(torch.arange(num_starts))
        ends.append(torch.arange(num_starts) + length)
        owners.append(torch.full((num_starts,), window))
    device = counts.device
    window_start, window_end = torch.cat(starts).to(device), torch.cat(ends).to(device)  # R, R
    window_of_row = torch.cat(owners).to(device)  # R

    def over_windows(running: torch.Tensor) -> torch.Tensor:
        return running[window_end] - running[window_start]  # R x N

    window_gt_area, window_pred_area = over_windows(gt_area), over_windows(pred_area)  # R x G, R x P
    window_pred_void = over_windows(pred_on_void)  # R x P
    window_inter = over_windows(intersection)  # R x K
    union = window_pred_area[:, pair_pred] + window_gt_area[:, pair_gt] - window_inter - window_pred_void[:, pair_pred]
    # IoU > 0.5 tested on integers (2 * I > U) so that no rounding can flip a borderline match.
    matched = (window_inter > 0) & (2 * window_inter > union)  # R x K
    pair_iou = torch.where(matched, window_inter.double() / union.clamp(min=1).double(), 0.0)  # R x K

    gt_matched = torch.zeros_like(window_gt_area).index_add_(1, pair_gt, matched.to(torch.int64)) > 0
    missed = (window_gt_area > 0) & ~gt_matched & ~gt_is_crowd  # R x G
    pred_matched = torch.zeros_like(window_pred_area).index_add_(1, pair_pred, matched.to(torch.int64)) > 0
    # An unmatched prediction lying more than half on VOID or same-category crowd is not a false positive.
    forgiven = 2 * (window_pred_void + over_windows(pred_on_crowd)) > window_pred_area
    false_pos = (window_pred_area > 0) & ~pred_matched & ~forgiven  # R x P

    def per_window_category(per_row: torch.Tensor, category: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Sum an R x N table into W x C: rows by window length, columns by their category."""
        per_window = torch.zeros(num_windows, per_row.shape[1], dtype=per_row.dtype, device=device)
        per_window.index_add_(0, window_of_row, per_row)
        return out.index_add_(1, category.cpu(), per_window.cpu())

    per_window_category(matched.to(torch.int64), pair_category, tp)
    per_window_category(pair_iou, pair_category, iou_sum)
    per_window_category(missed.to(torch.int64), gt_category, fn)
    per_window_category(false_pos.to(torch.int64), pred_category, fp)
    return tp, fp, fn, iou_sum


def pq_average(
    tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor, iou_sum: torch.Tensor, categories: torch.Tensor
) -> dict[str, float]:
    """PQ, SQ and RQ averaged over the given categories that have any TP, FP or FN (VIPSeg's ``pq_average``).

    Arguments:
      tp, fp, fn, iou_sum: (C,) per-category sums.
      categories: boolean (C,) mask of the categories in this average (all, things or stuff).

    Returns:
      {"pq", "sq", "rq", "n"}; pq/sq/rq are NaN when no category of the subset occurs (the official script divides
      by zero there).
    """
    present = categories & ((tp + fp + fn) > 0)
    count = int(present.sum())
    if count == 0:
        return {"pq": math.nan, "sq": math.nan, "rq": math.nan, "n": 0}
    tp_f, fp_f, fn_f, iou_f = (x[present].double() for x in (tp, fp, fn, iou_sum))
    denominator = tp_f + 0.5 * fp_f + 0.5 * fn_f
    pq = iou_f / denominator
    sq = torch.where(tp_f > 0, iou_f / tp_f.clamp(min=1), 0.0)
    rq = tp_f / denominator
    return {"pq": float(pq.sum()) / count, "sq": float(sq.sum()) / count, "rq": float(rq.sum()) / count, "n": count}


class VideoPanopticQuality(Metric):
    """VPQ over several window sizes, equal to the VIPSeg evaluator.

    Arguments:
      num_classes: C.
      thing_classes: category ids of things.
      label_divisor: id = category * label_divisor + instance.
      void_label: category of VOID pixels (outside [0, C)).
      window_sizes: window sizes k in video frames; default :data:`VPSNET_WINDOW_SIZES` (0, 5, 10, 15), VPSNet's
        n = 1..4 annotated frames; :data:`VIPSEG_WINDOW_SIZES` (0, 5, 15, 25, 35) gives the windows of VIPSeg's
        eval_vpq_vspw.py (what ``omg eval`` reports), which need videos of at least 8 annotated frames.
      annotation_stride: video frames between two annotated frames (5 for VIPSeg / Cityscapes-VPS), so a window
        of size k spans k / annotation_stride + 1 annotated frames. Pass 1 to give window sizes in annotated frames
        minus one.
    """

    def __init__(
        self,
        num_classes: int,
        thing_classes: Sequence[int],
        label_divisor: int,
        void_label: int = 255,
        window_sizes: Sequence[int] = VPSNET_WINDOW_SIZES,
        annotation_stride: int = 5,
    ) -> None:
        super().__init__()
        self.space = PanopticLabelSpace.build(num_classes, thing_classes, label_divisor, void_label)
        self.window_sizes = tuple(int(k) for k in window_sizes)
        self.annotation_stride = int(annotation_stride)
        self.frame_counts = window_frame_counts(self.window_sizes, annotation_stride)
        shape = (len(self.frame_counts), self.space.num_classes)
        self.add_state("tp", torch.zeros(shape, dtype=torch.int64), "sum")
        self.add_state("fp", torch.zeros(shape, dtype=torch.int64), "sum")
        self.add_state("fn", torch.zeros(shape, dtype=torch.int64), "sum")
        self.add_state("iou_sum", torch.zeros(shape, dtype=torch.float64), "sum")
        self.add_state("num_videos", torch.zeros((), dtype=torch.int64), "sum")

    def update(self, pred_ids: torch.Tensor, gt_ids: torch.Tensor) -> None:
        """Add one whole video.

        Arguments:
          pred_ids: T x H x W predicted panoptic ids (category * label_divisor + instance).
          gt_ids: T x H x W ground-truth panoptic ids, frames in temporal order.
        """
        pred_ids, gt_ids = check_video_pair(pred_ids, gt_ids, self.space)
        tp, fp, fn, iou_sum = video_pq_stats(pred_ids, gt_ids, self.space, self.frame_counts)
        self.tp, self.fp, self.fn = self.tp + tp, self.fp + fp, self.fn + fn
        self.iou_sum = self.iou_sum + iou_sum
        self.num_videos = self.num_videos + 1

    def compute(self) -> dict[str, Any]:
        """Returns:
        {"vpq", "vpq_thing", "vpq_stuff"} (plain means over all window sizes, as eval_vpq_vspw.py's
        ``vpq-final.txt``), "vpq_windows" (which windows, e.g. "n=1,2,3,4") and, per window size k, "vpq@k",
        "vpq_thing@k", "vpq_stuff@k", "vsq@k", "vrq@k", plus "per_class_pq@k" (C,) float64 (NaN where a category
        has no TP, FP or FN). A window no video fills, or a subset (things, stuff) with no category, is NaN where
        the official script divides by zero.
        """
        is_thing = self.space.is_thing_table(torch.device("cpu"))[: self.space.num_classes]
        everything = torch.ones_like(is_thing)
        results: dict[str, Any] = {}
        for window, k in enumerate(self.window_sizes):
            stats = (self.tp[window], self.fp[window], self.fn[window], self.iou_sum[window])
            for key, subset in (("vpq", everything), ("vpq_thing", is_thing), ("vpq_stuff", ~is_thing)):
                average = pq_average(*stats, subset)
                results[f"{key}@{k}"] = average["pq"]
                if key == "vpq":
                    results[f"vsq@{k}"], results[f"vrq@{k}"] = average["sq"], average["rq"]
            tp, fp, fn, iou = (x.double() for x in stats)
            denominator = tp + 0.5 * fp + 0.5 * fn
            results[f"per_class_pq@{k}"] = torch.where(denominator > 0, iou / denominator.clamp(min=0.5), math.nan)
        results.update(average_over_windows(results, self.window_sizes))
        results["vpq_windows"] = describe_windows(self.window_sizes, self.annotation_stride)
        return results
