"""Segmentation and Tracking Quality (STQ), equal to deeplab2's numpy implementation
(``evaluation/numpy/segmentation_and_tracking_quality.py``; Weber et al., "STEP", 2021).

STQ = sqrt(AQ * SQ).

* AQ (association quality) looks only at thing pixels outside ground-truth crowd regions. For every ground-truth
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

from omg_eval.kernels.confusion import confusion_matrix
from omg_eval.kernels.segment_pairs import intersect_segment_ids
from omg_eval.metric import Metric
from omg_eval.video_panoptic_inputs import PanopticLabelSpace, check_video_pair


def video_association_sum(
    pred_ids: torch.Tensor, gt_ids: torch.Tensor, space: PanopticLabelSpace
) -> tuple[float, int]:
    """AQ numerator and number of ground-truth tracks of one video.

    Arguments:
      pred_ids: T x H x W int64 predicted panoptic ids (already checked).
      gt_ids: T x H x W int64 ground-truth panoptic ids.
      space: the label space.

    Returns:
      (sum over tracks g of (1 / |g|) * sum_p TPA * IoU, number of ground-truth tracks).
    """
    divisor = space.label_divisor
    is_thing = space.is_thing_table(gt_ids.device)
    gt_category = (gt_ids // divisor).clamp(max=space.num_classes)  # VOID -> C, which is_thing maps to False
    pred_category = (pred_ids // divisor).clamp(max=space.num_classes)
    gt_crowd = is_thing[gt_category] & (gt_ids % divisor == 0)
    gt_tracked = is_thing[gt_category] & ~gt_crowd  # T x H x W
    pred_tracked = is_thing[pred_category] & ~gt_crowd  # T x H x W
    # Pixels outside the tracked regions get the sentinel id 0 (never a tracked id: tracked gt ids have instance
    # > 0, and a tracked prediction of category 0 with instance 0 is shifted by one below).
    gt_keys = torch.where(gt_tracked, gt_ids + 1, 0)
    pred_keys = torch.where(pred_tracked, pred_ids + 1, 0)
    gt_pair, pred_pair, counts = intersect_segment_ids(gt_keys, pred_keys)
    gt_rows, pred_rows = gt_pair > 0, pred_pair > 0

    gt_tracks, gt_index = torch.unique(gt_pair[gt_rows], return_inverse=True)
    gt_size = torch.zeros(gt_tracks.numel(), dtype=torch.float64, device=counts.device)
    gt_size.index_add_(0, gt_index, counts[gt_rows].double())
    pred_tracks, pred_index = torch.unique(pred_pair[pred_rows], return_inverse=True)
    pred_size = torch.zeros(pred_tracks.numel(), dtype=torch.float64, device=counts.device)
    pred_size.index_add_(0, pred_index, counts[pred_rows].double())

    both = gt_rows & pred_rows
    tpa = counts[both].double()  # K
    pair_gt = torch.searchsorted(gt_tracks, gt_pair[both])
    pair_pred = torch.searchsorted(pred_tracks, pred_pair[both])
    union = gt_size[pair_gt] + pred_size[pair_pred] - tpa  # tpa + fpa + fna
    weighted = torch.zeros_like(gt_size).index_add_(0, pair_gt, tpa * (tpa / union))
    return float((weighted / gt_size).sum()), int(gt_tracks.numel())


def semantic_confusion(pred_ids: torch.Tensor, gt_ids: torch.Tensor, space: PanopticLabelSpace) -> torch.Tensor:
    """(C + 1) x (C + 1) pixel counts of (gt category, predicted category); index C is VOID, its row stays 0."""
    divisor, num_classes = space.label_divisor, space.num_classes
    gt_category = (gt_ids // divisor).clamp(max=num_classes)
    pred_category = (pred_ids // divisor).clamp(max=num_classes)
    return confusion_matrix(gt_category, pred_category, num_classes + 1, ignore_index=num_classes)


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

    def update(self, pred_ids: torch.Tensor, gt_ids: torch.Tensor) -> None:
        """Add one whole video (one deeplab2 sequence).

        Arguments:
          pred_ids: T x H x W predicted panoptic ids.
          gt_ids: T x H x W ground-truth panoptic ids.
        """
        pred_ids, gt_ids = check_video_pair(pred_ids, gt_ids, self.space)
        association, tracks = video_association_sum(pred_ids, gt_ids, self.space)
        self.association_sum = self.association_sum + association
        self.num_tracks = self.num_tracks + tracks
        self.confusion = self.confusion + semantic_confusion(pred_ids, gt_ids, self.space).cpu()
        self.num_videos = self.num_videos + 1

    def compute(self) -> dict[str, Any]:
        """Returns:
        {"stq", "aq", "sq"}; aq is 0 when there is no ground-truth track (deeplab2 divides by max(tracks, 1e-15)).
        """
        aq = float(self.association_sum) / max(int(self.num_tracks), 1e-15)
        sq = mean_iou_with_void_column(self.confusion)
        return {"stq": math.sqrt(aq * sq) if not math.isnan(sq) else math.nan, "aq": aq, "sq": sq}
