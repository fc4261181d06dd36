"""Segmentation and Tracking Quality (STQ), equal to deeplab2's numpy implementation
(``evaluation/numpy/segmentation_and_tracking_quality.py``; Weber et al., "STEP", 2021).

STQ = sqrt(AQ * SQ).

* AQ (association quality) looks only at thing pixels outside ground-truth crowd regions (a thing category with
  instance 0 in the ground truth; a predicted instance 0 is an ordinary track). For every ground-truth
  track g (a full panoptic id followed through the whole video) it sums, over the predicted tracks p overlapping it,
  TPA(p, g) * IoU(p, g), divides by |g|, and the sum over all tracks of all videos is divided by the number of tracks.
* SQ is the mean IoU of the semantic categories over all pixels of all videos. Ground-truth VOID rows are dropped;
  predicted VOID stays a column, so predicting VOID on labelled pixels counts as a miss and, as in deeplab2, the VOID
  column then also counts as one more category (with IoU 0) in the mean.
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


def video_stq_stats(
    pred_ids: torch.Tensor, gt_ids: torch.Tensor, space: PanopticLabelSpace
) -> tuple[float, int, torch.Tensor]:
    """AQ numerator, number of ground-truth tracks and semantic confusion of one video.

    Everything is derived from one table of (gt id, pred id, pixel count) over the whole video, so the per-pixel
    work is a single pass of the shared pair-counting kernel.

    Arguments:
      pred_ids: T x H x W int64 predicted panoptic ids (already checked).
      gt_ids: T x H x W int64 ground-truth panoptic ids.
      space: the label space.

    Returns:
      (sum over tracks g of (1 / |g|) * sum_p TPA * IoU, number of ground-truth tracks,
       (C + 1) x (C + 1) int64 confusion of categories with VOID at index C and its row left at zero).
    """
    num_classes, divisor = space.num_classes, space.label_divisor
    _, gt_pair, pred_pair, counts = count_video_pairs(pred_ids, gt_ids, per_frame=False)  # M each
    gt_category = check_categories(gt_pair, space, "gt_ids").clamp(max=num_classes)  # VOID -> C
    pred_category = check_categories(pred_pair, space, "pred_ids").clamp(max=num_classes)

    confusion = torch.zeros(num_classes + 1, num_classes + 1, dtype=torch.int64, device=counts.device)
    confusion.index_put_((gt_category, pred_category), counts, accumulate=True)
    confusion[num_classes] = 0  # ground-truth VOID pixels do not count; predicted VOID does (a miss)

    is_thing = space.is_thing_table(counts.device)  # entry C (VOID) is False
    gt_crowd = is_thing[gt_category] & (gt_pair % divisor == 0)
    gt_tracked = is_thing[gt_category] & ~gt_crowd  # M
    # Predictions on crowd regions are not judged for association.
    pred_tracked = is_thing[pred_category] & ~gt_crowd  # M

    gt_tracks, gt_index = torch.unique(gt_pair[gt_tracked], return_inverse=True)
    gt_size = torch.zeros(gt_tracks.numel(), dtype=torch.float64, device=counts.device)
    gt_size.index_add_(0, gt_index, counts[gt_tracked].double())
    pred_tracks, pred_index = torch.unique(pred_pair[pred_tracked], return_inverse=True)
    pred_size = torch.zeros(pred_tracks.numel(), dtype=torch.float64, device=counts.device)
    pred_size.index_add_(0, pred_index, counts[pred_tracked].double())

    both = gt_tracked & pred_tracked
    tpa = counts[both].double()  # K
    pair_gt = torch.searchsorted(gt_tracks, gt_pair[both])
    pair_pred = torch.searchsorted(pred_tracks, pred_pair[both])
    union = gt_size[pair_gt] + pred_size[pair_pred] - tpa  # tpa + fpa + fna
    weighted = torch.zeros_like(gt_size).index_add_(0, pair_gt, tpa * (tpa / union))
    return float((weighted / gt_size).sum()), int(gt_tracks.numel()), confusion.cpu()


def mean_iou_with_void_column(confusion: torch.Tensor) -> float:
    """deeplab2's STQ mean IoU from a (C + 1) x (C + 1) confusion whose last row (gt VOID) is already zero.

    Every entry with a non-zero union counts in the mean, including the VOID column when predictions left labelled
    pixels VOID; NaN when nothing is labelled.
    """
    confusion = confusion.double()
    intersections = confusion.diagonal()
    unions = confusion.sum(0) + confusion.sum(1) - intersections
    counted = int((unions > 0).sum())
    if counted == 0:
        return math.nan
    return float((intersections / unions.clamp(min=1e-15)).sum()) / counted


class SegmentationTrackingQuality(Metric):
    """STQ, AQ and SQ (the mean IoU), equal to deeplab2's numpy ``STQuality``.

    Arguments:
      num_classes: C.
      thing_classes: category ids whose instances are tracked.
      label_divisor: id = category * label_divisor + instance (deeplab2's bit shift s is label_divisor = 2**s).
      void_label: category of VOID pixels (deeplab2's ``ignore_label``), outside [0, C).
    """

    def __init__(
        self, num_classes: int, thing_classes: Sequence[int], label_divisor: int, void_label: int = 255
    ) -> None:
        super().__init__()
        self.space = PanopticLabelSpace.build(num_classes, thing_classes, label_divisor, void_label)
        size = self.space.num_classes + 1
        self.add_state("confusion", torch.zeros(size, size, dtype=torch.int64), "sum")
        self.add_state("association_sum", torch.zeros((), dtype=torch.float64), "sum")
        self.add_state("num_tracks", torch.zeros((), dtype=torch.int64), "sum")
        self.add_state("num_videos", torch.zeros((), dtype=torch.int64), "sum")
        # One (AQ, SQ) float64 pair per video, for deeplab2's per-sequence figures.
        self.add_state("per_video", [], "cat")

    def update(self, pred_ids: torch.Tensor, gt_ids: torch.Tensor) -> None:
        """Add one whole video (one deeplab2 sequence).

        Arguments:
          pred_ids: T x H x W predicted panoptic ids.
          gt_ids: T x H x W ground-truth panoptic ids.
        """
        pred_ids, gt_ids = check_video_pair(pred_ids, gt_ids, self.space)
        association, tracks, confusion = video_stq_stats(pred_ids, gt_ids, self.space)
        self.association_sum = self.association_sum + association
        self.num_tracks = self.num_tracks + tracks
        self.confusion = self.confusion + confusion
        self.num_videos = self.num_videos + 1
        video_aq = association / max(tracks, 1e-15)
        self.per_video.append(torch.tensor([video_aq, mean_iou_with_void_column(confusion)], dtype=torch.float64))

    def compute(self) -> dict[str, Any]:
        """Returns:
        {"stq", "aq", "sq"}; aq is 0 when there is no ground-truth track (deeplab2 divides by max(tracks, 1e-15)).
        Also "stq_per_video", "aq_per_video", "sq_per_video": (V,) float64 in update order (across processes,
        rank by rank, as compute gathers them).
        """
        aq = float(self.association_sum) / max(int(self.num_tracks), 1e-15)
        sq = mean_iou_with_void_column(self.confusion)
        per_video = torch.stack(self.per_video) if self.per_video else torch.zeros(0, 2, dtype=torch.float64)
        return {
            "stq": math.sqrt(aq * sq) if not math.isnan(sq) else math.nan,
            "aq": aq,
            "sq": sq,
            "stq_per_video": (per_video[:, 0] * per_video[:, 1]).sqrt(),
            "aq_per_video": per_video[:, 0],
            "sq_per_video": per_video[:, 1],
        }
