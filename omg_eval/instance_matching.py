"""Greedy detection-to-ground-truth matching of one (image, category), as pycocotools ``COCOeval.evaluateImg``.

For every IoU threshold and area range, detections are visited by decreasing score (stable on input order) and each
takes, among the ground truths it may still take, the one of highest IoU (ties: the later one) with IoU >= threshold.
A ground truth may be taken once, except crowd ones, which absorb any number of detections. Ground truths ignored in
an area range (crowd, or area outside the range) come after the others and are only considered when no regular one
qualifies; a detection matched to an ignored ground truth is ignored, and so is an unmatched detection whose area
lies outside the range. All thresholds and area ranges are processed together as rows of one (A * T, G) problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from omg_eval.kernels._extension import fused_kernels


@dataclass
class ImageMatches:
    """Matching of one (image, category) for A area ranges and T thresholds, detections in score order.

    scores (D,) float64, sorted descending. matched (A, T, D) bool. ignored (A, T, D) bool.
    regular_gt (A,) int64: ground truths not ignored in each area range.
    """

    scores: np.ndarray
    matched: np.ndarray
    ignored: np.ndarray
    regular_gt: np.ndarray


def match_image(
    ious: np.ndarray,
    det_scores: np.ndarray,
    det_areas: np.ndarray,
    gt_areas: np.ndarray,
    gt_crowd: np.ndarray,
    area_ranges: np.ndarray,
    iou_thresholds: np.ndarray,
    max_dets: int,
) -> ImageMatches:
    """Match the detections of one (image, category) to its ground truths.

    Arguments:
      ious: (D, G) IoU of detection d with ground truth g, detections in input order (crowd-aware, as maskUtils.iou).
      det_scores: (D,) confidence. det_areas: (D,) mask areas. gt_areas: (G,) annotation areas. gt_crowd: (G,) bool.
      area_ranges: (A, 2) inclusive [low, high] areas. iou_thresholds: (T,). max_dets: highest maxDets.

    Returns:
      ImageMatches with at most ``max_dets`` detections.
    """
    order = np.argsort(-det_scores, kind="mergesort")[:max_dets]
    ious = ious[order]
    scores, det_areas = det_scores[order], det_areas[order]
    num_ranges, num_thresholds = len(area_ranges), len(iou_thresholds)
    num_det, num_gt = ious.shape[0], len(gt_areas)
    # A x G: ignored ground truths per area range
    gt_ignored = gt_crowd[None, :] | (gt_areas[None, :] < area_ranges[:, :1]) | (gt_areas[None, :] > area_ranges[:, 1:])
    rows = num_ranges * num_thresholds
    # R x G with R = A * T (area-major), as in the (A, T) outputs
    row_ignored = np.repeat(gt_ignored, num_thresholds, axis=0)
    row_threshold = np.minimum(np.tile(iou_thresholds, num_ranges), 1 - 1e-10)
    gt_taken = np.zeros((rows, num_gt), dtype=bool)
    matched = np.zeros((rows, num_det), dtype=bool)
    matched_ignored = np.zeros((rows, num_det), dtype=bool)
    row_index = np.arange(rows)
    reversed_columns = np.arange(num_gt)[::-1]
    for d in range(num_det):
        if num_gt == 0:
            break
        available = ~gt_taken | gt_crowd[None, :]
        passes = available & (ious[d][None, :] >= row_threshold[:, None])
        found = np.zeros(rows, dtype=bool)
        choice = np.zeros(rows, dtype=np.int64)
        for want_ignored in (False, True):
            eligible = passes & (row_ignored == want_ignored) & ~found[:, None]
            scored = np.where(eligible, ious[d][None, :], -1.0)
            # highest IoU, ties to the later ground truth: argmax over the reversed columns
            best = reversed_columns[np.argmax(scored[:, ::-1], axis=1)]
            hit = eligible[row_index, best]
            choice = np.where(hit, best, choice)
            found |= hit
        matched[found, d] = True
        matched_ignored[found, d] = row_ignored[row_index[found], choice[found]]
        gt_taken[row_index[found], choice[found]] = True
    outside = (det_areas[None, :] < area_ranges[:, :1]) | (det_areas[None, :] > area_ranges[:, 1:])  # A x D
    ignored = matched_ignored | (~matched & np.repeat(outside, num_thresholds, axis=0))
    return ImageMatches(
        scores=scores,
        matched=matched.reshape(num_ranges, num_thresholds, num_det),
        ignored=ignored.reshape(num_ranges, num_thresholds, num_det),
        regular_gt=(~gt_ignored).sum(axis=1),
    )


@dataclass
class MatchGroup:
    """Inputs of one (image, category): ious (D, G) with detections in input order (rows past the maxDets cut may be
    0), det_scores / det_areas (D,), gt_areas (G,), gt_crowd (G,) bool."""

    ious: np.ndarray
    det_scores: np.ndarray
    det_areas: np.ndarray
    gt_areas: np.ndarray
    gt_crowd: np.ndarray


def match_groups(
    groups: Sequence[MatchGroup], area_ranges: np.ndarray, iou_thresholds: np.ndarray, max_dets: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`match_image` of many groups in one call (the fused kernel when built, else NumPy, same results).

    Returns:
      kept (K,): group-relative indices of the detections kept, each group's in score order; kept_count (N,);
      matched (K, A, T) bool; ignored (K, A, T) bool; regular_gt (N, A) int64.
    """
    num_a, num_t = len(area_ranges), len(iou_thresholds)
    if not groups:
        empty = np.zeros((0, num_a, num_t), dtype=bool)
        return (
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.int64),
            empty,
            empty.copy(),
            np.zeros((0, num_a), dtype=np.int64),
        )
    kernels = fused_kernels()
    if kernels is not None:
        det_offsets = np.cumsum([0] + [len(g.det_scores) for g in groups])
        gt_offsets = np.cumsum([0] + [len(g.gt_areas) for g in groups])
        outputs = kernels.coco_match_groups(
            torch.from_numpy(np.concatenate([g.ious.reshape(-1) for g in groups]).astype(np.float64)),
            torch.from_numpy(det_offsets.astype(np.int64)),
            torch.from_numpy(gt_offsets.astype(np.int64)),
            torch.from_numpy(np.concatenate([g.det_scores for g in groups]).astype(np.float64)),
            torch.from_numpy(np.concatenate([g.det_areas for g in groups]).astype(np.float64)),
            torch.from_numpy(np.concatenate([g.gt_areas for g in groups]).astype(np.float64)),
            torch.from_numpy(np.concatenate([g.gt_crowd for g in groups]).astype(np.uint8)),
            torch.from_numpy(np.ascontiguousarray(area_ranges, dtype=np.float64)),
            torch.from_numpy(np.ascontiguousarray(iou_thresholds, dtype=np.float64)),
            int(max_dets),
        )
        return tuple(output.numpy() for output in outputs)  # type: ignore[return-value]
    kept, counts, matched, ignored, regular = [], [], [], [], []
    for group in groups:
        result = match_image(
            group.ious,
            group.det_scores,
            group.det_areas,
            group.gt_areas,
            group.gt_crowd,
            area_ranges,
            iou_thresholds,
            max_dets,
        )
        order = np.argsort(-group.det_scores, kind="mergesort")[:max_dets]
        kept.append(order)
        counts.append(len(order))
        matched.append(result.matched.transpose(2, 0, 1))
        ignored.append(result.ignored.transpose(2, 0, 1))
        regular.append(result.regular_gt)
    return (
        np.concatenate(kept).astype(np.int64),
        np.array(counts, dtype=np.int64),
        np.concatenate(matched),
        np.concatenate(ignored),
        np.stack(regular).astype(np.int64),
    )
