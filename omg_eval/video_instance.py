"""YouTube-VIS video instance segmentation AP/AR as a torchmetrics-style metric (equal to ``ytvoseval``).

``update`` takes one video at a time: its predicted tracks (score, class, per-frame masks) and its ground-truth tracks.
It reduces them at once to the small per-video record the official evaluator needs (track IoU of every pair, summed
over frames; mean areas; scores; classes; crowd flags), so memory does not grow with the video size. ``compute`` runs
the official greedy matching and precision/recall accumulation on those records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from omg_eval.kernels.video_overlap import iou_from_counts, track_intersections
from omg_eval.metric import Metric
from omg_eval.video_instance_matching import (
    AREA_RANGES,
    IOU_THRESHOLDS,
    MAX_DETECTIONS,
    RECALL_THRESHOLDS,
    VideoCategoryMatches,
    match_video_category,
    mean_of_valid,
    precision_recall,
)


def mean_present_area(frame_areas: torch.Tensor) -> torch.Tensor:
    """Mean area over the frames where each track is present (area > 0), 0 for a track never present.

    Arguments:
      frame_areas: (N, T) per-frame areas; absent frames hold 0 (or NaN for a ``null`` annotation).

    Returns:
      (N,) float64, the official ``avg_area`` (YouTube-VIS bins tracks by it).
    """
    areas = np.nan_to_num(frame_areas.to(torch.float64).cpu().numpy(), nan=0.0)  # N x T
    present = areas != 0
    counts = present.sum(1)
    if np.array_equal(areas, np.round(areas)):
        # Whole-number areas sum exactly in float64 in any order, so one vectorised sum equals the official np.mean.
        means = np.where(counts > 0, areas.sum(1) / np.maximum(counts, 1), 0.0)
    else:  # fractional areas (polygon files): np.mean row by row, summed in the official's order
        means = np.array([row[row != 0].mean() if row.any() else 0.0 for row in areas], dtype=np.float64)
    return torch.from_numpy(means.astype(np.float64))


class YouTubeVISMetric(Metric):
    """Video instance segmentation AP/AR of YouTube-VIS.

    Arguments:
      category_ids: the ground-truth category ids (the ``categories`` of the annotation file). Classes without a
        ground-truth track are left out of the means, as the official evaluator does.
    """

    def __init__(self, category_ids: Sequence[int]) -> None:
        super().__init__()
        if len(set(category_ids)) != len(category_ids) or not category_ids:
            raise ValueError(f"category_ids must be a non-empty list of distinct ids, got {list(category_ids)}")
        self.category_ids = sorted(int(c) for c in category_ids)
        self.add_state("videos", [], dist_reduce_fx="cat")

    def update(
        self,
        video_id: int,
        pred_scores: torch.Tensor,
        pred_labels: torch.Tensor,
        pred_masks: torch.Tensor,
        gt_labels: torch.Tensor,
        gt_masks: torch.Tensor,
        gt_iscrowd: torch.Tensor | None = None,
        gt_frame_areas: torch.Tensor | None = None,
    ) -> None:
        """Add one video.

        Arguments:
          video_id: the video's id (unique across the data set; orders ties between equal scores as the official).
          pred_scores: (D,) detection confidences.
          pred_labels: (D,) category ids.
          pred_masks: (D, T, H, W) bool per-frame masks of each predicted track (all False where absent).
          gt_labels: (G,) category ids.
          gt_masks: (G, T, H, W) bool ground-truth tracks.
          gt_iscrowd: (G,) bool, crowd tracks (ignored: they absorb detections without counting). Default: none.
          gt_frame_areas: (G, T) areas to bin the ground truth by, when the annotation file gives them (the official
            uses the file's ``areas``, not the mask areas). Default: counted from ``gt_masks``.
        """
        num_pred, num_gt = pred_masks.shape[0], gt_masks.shape[0]
        if pred_masks.dim() != 4 or gt_masks.dim() != 4 or pred_masks.shape[1:] != gt_masks.shape[1:]:
            raise ValueError(
                f"pred_masks {tuple(pred_masks.shape)} and gt_masks {tuple(gt_masks.shape)} must be (D, T, H, W) and "
                "(G, T, H, W) with the same frames and resolution; resize predictions to the annotation size"
            )
        if pred_scores.shape != (num_pred,) or pred_labels.shape != (num_pred,):
            raise ValueError(
                f"pred_scores {tuple(pred_scores.shape)} and pred_labels {tuple(pred_labels.shape)} must both be "
                f"({num_pred},), one per predicted track"
            )
        if gt_labels.shape != (num_gt,):
            raise ValueError(f"gt_labels {tuple(gt_labels.shape)} must be ({num_gt},), one per ground-truth track")
        gt_iscrowd = torch.zeros(num_gt, dtype=torch.bool) if gt_iscrowd is None else gt_iscrowd.to(torch.bool)
        if gt_iscrowd.shape != (num_gt,):
            raise ValueError(f"gt_iscrowd {tuple(gt_iscrowd.shape)} must be ({num_gt},)")
        intersections = track_intersections(pred_masks.flatten(1), gt_masks.flatten(1)).cpu()
        pred_frame_areas = pred_masks.flatten(2).sum(2, dtype=torch.int64).cpu()  # D x T
        mask_frame_areas = gt_masks.flatten(2).sum(2, dtype=torch.int64).cpu()  # G x T
        if gt_frame_areas is None:
            gt_frame_areas = mask_frame_areas
        elif gt_frame_areas.shape != mask_frame_areas.shape:
            raise ValueError(
                f"gt_frame_areas {tuple(gt_frame_areas.shape)} must be (G, T) = {tuple(mask_frame_areas.shape)}"
            )
        self.add_video_statistics(
            video_id=video_id,
            pred_scores=pred_scores,
            pred_labels=pred_labels,
            pred_frame_areas=pred_frame_areas,
            gt_labels=gt_labels,
            gt_iscrowd=gt_iscrowd,
            gt_frame_areas=gt_frame_areas,
            intersections=intersections,
            pred_areas=pred_frame_areas.sum(1),
            gt_areas=mask_frame_areas.sum(1),
        )

    def add_video_statistics(
        self,
        video_id: int,
        pred_scores: torch.Tensor,
        pred_labels: torch.Tensor,
        pred_frame_areas: torch.Tensor,
        gt_labels: torch.Tensor,
        gt_iscrowd: torch.Tensor,
        gt_frame_areas: torch.Tensor,
        intersections: torch.Tensor,
        pred_areas: torch.Tensor,
        gt_areas: torch.Tensor,
    ) -> None:
        """Add one video from counts already taken (what :meth:`update` does after counting; file readers that
        count frame by frame call it directly).

        Arguments:
          video_id: the video's id.
          pred_scores, pred_labels: (D,).
          pred_frame_areas: (D, F) per-frame predicted areas over every frame each track lists (the size bins use
            their mean; F exceeds T where a results file lists more frames than the video has, as ytvoseval allows).
          gt_labels, gt_iscrowd: (G,).
          gt_frame_areas: (G, T) per-frame ground-truth areas used for the size bins (NaN or 0 where absent).
          intersections: (D, G) pixels shared by each pair over the whole video.
          pred_areas: (D,) total mask pixels of each predicted track over the frames it is compared on.
          gt_areas: (G,) total mask pixels of each ground-truth track over the video, or (D, G) over the frames
            each pair is compared on (the official zips the two per-frame lists, so a predicted track shorter than
            the video is compared with the first frames of each ground-truth track only).
        """
        known = set(self.category_ids)
        for name, labels in (("pred_labels", pred_labels), ("gt_labels", gt_labels)):
            unknown = sorted({int(v) for v in labels.tolist()} - known)
            if unknown:
                raise ValueError(
                    f"video {video_id}: {name} holds category ids {unknown} that are not among the ground-truth "
                    f"categories {self.category_ids}; map them to annotation ids or drop those tracks before update"
                )
        if not torch.isfinite(pred_scores.to(torch.float64)).all():
            raise ValueError(f"video {video_id}: pred_scores must be finite")
        self.videos.append(
            {
                "video_id": int(video_id),
                "pred_scores": pred_scores.detach().to(torch.float64).cpu(),
                "pred_labels": pred_labels.detach().to(torch.int64).cpu(),
                "pred_avg_areas": mean_present_area(pred_frame_areas),
                "gt_labels": gt_labels.detach().to(torch.int64).cpu(),
                "gt_iscrowd": gt_iscrowd.detach().to(torch.bool).cpu(),
                "gt_avg_areas": mean_present_area(gt_frame_areas),
                "ious": _track_ious(intersections.cpu(), pred_areas.cpu(), gt_areas.cpu()),
            }
        )

    def compute(self) -> dict[str, Any]:
        """AP (IoU .50:.05:.95), AP50, AP75, AP_small/medium/large, AR1/AR10/AR100, AR_small/medium/large (as
        fractions, -1 where no category has ground truth), and ``AP_per_category`` (-1 for classes absent from the
        ground truth)."""
        videos = sorted(self.videos, key=lambda v: v["video_id"])
        ids = [v["video_id"] for v in videos]
        if len(set(ids)) != len(ids):
            raise ValueError("a video was added twice (same video_id); call update once per video, or reset()")
        num_t, num_r, num_k = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(self.category_ids)
        area_names = list(AREA_RANGES)
        precision = -np.ones((num_t, num_r, num_k, len(area_names), len(MAX_DETECTIONS)))
        recall = -np.ones((num_t, num_k, len(area_names), len(MAX_DETECTIONS)))
        arrays = [{key: value.numpy() for key, value in video.items() if key != "video_id"} for video in videos]
        for k, category in enumerate(self.category_ids):
            # The (video, category) subsets, taken once and shared by the four area ranges.
            subsets = []
            for video in arrays:
                dt = video["pred_labels"] == category
                gt = video["gt_labels"] == category
                if dt.any() or gt.any():
                    subsets.append(
                        {
                            "ious": video["ious"][dt][:, gt],
                            "dt_scores": video["pred_scores"][dt],
                            "dt_avg_areas": video["pred_avg_areas"][dt],
                            "gt_avg_areas": video["gt_avg_areas"][gt],
                            "gt_crowd": video["gt_iscrowd"][gt],
                        }
                    )
            if not subsets:
                continue
            for a, area_name in enumerate(area_names):
                matches: list[VideoCategoryMatches] = [
                    match_video_category(**subset, area_range=AREA_RANGES[area_name], max_detections=MAX_DETECTIONS[-1])
                    for subset in subsets
                ]
                for m, max_detections in enumerate(MAX_DETECTIONS):
                    curves = precision_recall(matches, max_detections)
                    if curves is not None:
                        precision[:, :, k, a, m], recall[:, k, a, m] = curves
        return summarize(precision, recall, self.category_ids)


def _track_ious(intersections: torch.Tensor, pred_areas: torch.Tensor, gt_areas: torch.Tensor) -> torch.Tensor:
    """(D, G) IoUs from intersections, (D,) predicted areas and (G,) or per-pair (D, G) ground-truth areas."""
    if gt_areas.dim() == 1:
        return iou_from_counts(intersections, pred_areas, gt_areas)
    if gt_areas.shape != intersections.shape:
        raise ValueError(f"gt_areas {tuple(gt_areas.shape)} must be (G,) or (D, G) = {tuple(intersections.shape)}")
    # iou_from_counts on the pairs as one row: unions = (pred + gt areas of the pair) - intersection, as in (D,) + (G,)
    totals = (pred_areas[:, None] + gt_areas).reshape(1, -1)
    return iou_from_counts(intersections.reshape(-1)[None, :], torch.zeros(1, dtype=totals.dtype), totals[0]).reshape(
        intersections.shape
    )


def summarize(precision: np.ndarray, recall: np.ndarray, category_ids: list[int]) -> dict[str, Any]:
    """The official twelve summary figures from (T, R, K, A, M) precision and (T, K, A, M) recall."""
    area = {name: i for i, name in enumerate(AREA_RANGES)}
    last = len(MAX_DETECTIONS) - 1
    t50 = int(np.where(IOU_THRESHOLDS == 0.5)[0][0])
    t75 = int(np.where(IOU_THRESHOLDS == 0.75)[0][0])
    all_areas = precision[:, :, :, area["all"], last]  # T x R x K
    results: dict[str, Any] = {
        "AP": mean_of_valid(all_areas),
        "AP50": mean_of_valid(all_areas[t50]),
        "AP75": mean_of_valid(all_areas[t75]),
        "AP_small": mean_of_valid(precision[:, :, :, area["small"], last]),
        "AP_medium": mean_of_valid(precision[:, :, :, area["medium"], last]),
        "AP_large": mean_of_valid(precision[:, :, :, area["large"], last]),
    }
    for m, max_detections in enumerate(MAX_DETECTIONS):
        results[f"AR{max_detections}"] = mean_of_valid(recall[:, :, area["all"], m])
    for name in ("small", "medium", "large"):
        results[f"AR_{name}"] = mean_of_valid(recall[:, :, area[name], last])
    results["AP_per_category"] = {
        category: mean_of_valid(all_areas[:, :, k]) for k, category in enumerate(category_ids)
    }
    return results
