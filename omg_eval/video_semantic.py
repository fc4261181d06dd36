"""Video semantic segmentation metrics of VSPW (Miao et al., CVPR 2021): mIoU and video consistency VC_n.

Equal to the VSPW evaluation code (sssdddwww2/CVPR2021_VSPW_Implement: ``utils.Evaluator`` for mIoU,
``VC_perclip.py`` for VC):

* mIoU pools one confusion matrix over every frame of every video and averages the IoU over the categories that
  occur in the ground truth (a category that is only predicted is left out of the mean).
* VC_n slides a clip of n frames over each video. Inside a clip, the pixels whose ground-truth label is the same in
  all n frames form the "consistent" region; the clip's score is the fraction of that region where the prediction is
  also the same in all n frames (it does not have to be correct). VC_n is the mean over all clips of all videos,
  skipping clips whose consistent region is empty. Two details of the official script are kept on purpose, so that
  figures agree: videos with at most n frames are skipped, and the clip starts run over 0 .. T-n-1 (the last
  possible clip is not scored). Ground-truth VOID takes part in VC like any other label, as in the official script.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from omg_eval.kernels.confusion import confusion_matrix
from omg_eval.metric import Metric

_KERNEL_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def label_changes(labels: torch.Tensor) -> torch.Tensor:
    """Where a label differs from the next frame's.

    Arguments:
      labels: T x H x W integer labels, T >= 1.

    Returns:
      (T - 1) x H x W bool, entry t true where frame t + 1 differs from frame t.
    """
    return labels[1:] != labels[:-1]


def unstable_over_clips(changes: torch.Tensor, clip_length: int) -> torch.Tensor:
    """Where the label is not constant over each scored clip, from the frame-to-frame change flags.

    A clip starting at frame i covers change flags [i, i + n - 1); their OR is built by doubling the window (an OR of
    two overlapping windows is still the OR of their union), so it takes log2(n) passes over bool planes, whatever T.

    Arguments:
      changes: (T - 1) x H x W bool from :func:`label_changes`, with T > n.
      clip_length: n >= 2.

    Returns:
      (T - n) x H x W bool, true where the label changes somewhere inside clip i = 0 .. T-n-1.
    """
    span = clip_length - 1
    num_clips = changes.shape[0] + 1 - clip_length
    window, width = changes, 1  # window[t] = OR of flags [t, t + width)
    while 2 * width <= span:
        window = window[:-width] | window[width:]
        width *= 2
    if width < span:  # the last step overlaps: [t, t + width) and [t + span - width, t + span) cover [t, t + span)
        window = window[: window.shape[0] - (span - width)] | window[span - width :]
    return window[:num_clips]


def _clip_scores(gt_changes: torch.Tensor, pred_changes: torch.Tensor, clip_length: int) -> torch.Tensor:
    """float64 (T - n,) clip scores (NaN where the clip's consistent region is empty) from both change flags."""
    gt_unstable = unstable_over_clips(gt_changes, clip_length)  # (T - n) x H x W
    either_unstable = gt_unstable | unstable_over_clips(pred_changes, clip_length)
    pixels = gt_unstable[0].numel()
    # an int32 sum reads the bools as they are (an int64 one copies them first); a frame holds far below 2^31 pixels
    consistent_area = (pixels - gt_unstable.flatten(1).sum(1, dtype=torch.int32)).double()
    agreeing_area = (pixels - either_unstable.flatten(1).sum(1, dtype=torch.int32)).double()
    return (agreeing_area / consistent_area).cpu()  # 0 / 0 -> NaN, dropped later like np.nanmean does


def clip_consistency_scores(pred_labels: torch.Tensor, gt_labels: torch.Tensor, clip_length: int) -> torch.Tensor:
    """VC scores of every scored clip of one video.

    Arguments:
      pred_labels: T x H x W integer predictions.
      gt_labels: T x H x W integer ground truth.
      clip_length: n >= 2.

    Returns:
      float64 (T - n,) scores (NaN where the clip's consistent ground-truth region is empty); empty when T <= n.
    """
    if gt_labels.shape[0] <= clip_length:
        return torch.zeros(0, dtype=torch.float64)
    return _clip_scores(label_changes(gt_labels), label_changes(pred_labels), clip_length)


def _value_range(labels: torch.Tensor) -> tuple[int, int]:
    """(lowest, highest) label, (0, 0) for an empty video."""
    if labels.numel() == 0:
        return 0, 0
    lowest, highest = torch.aminmax(labels)
    return int(lowest), int(highest)


def _narrowed(labels: torch.Tensor, lowest: int, highest: int) -> torch.Tensor:
    """The same labels as uint8 or int16 when [lowest, highest] fits, else unchanged.

    The copy is exact, so VC's equality tests and the confusion counts do not change; every later pass (the confusion
    kernel, the change flags) then reads 1 or 2 bytes a pixel instead of 8, which is most of their cost.
    """
    if labels.element_size() <= 2:  # already narrow
        return labels
    for dtype in (torch.uint8, torch.int16):
        limits = torch.iinfo(dtype)
        if limits.min <= lowest and highest <= limits.max:
            return labels.to(dtype)
    return labels


def _labels_for_iou(gt_labels: torch.Tensor, lowest: int, highest: int, ignore_index: int) -> torch.Tensor:
    """Ground truth with every negative label turned into ``ignore_index`` (both are VOID for mIoU).

    Arguments:
      gt_labels: T x H x W ground truth whose values lie in [lowest, highest].
    """
    if lowest >= 0:
        return gt_labels
    if ignore_index == 255 and lowest >= -1 and highest <= 255:
        # VSPW's case ("others" = -1, void = 255): the uint8 cast wraps -1 to 255 and keeps 0..255, in one pass
        return gt_labels.to(torch.uint8)
    return torch.where(gt_labels < 0, ignore_index, gt_labels.to(torch.int64))  # int64: ignore_index may not fit


class VideoSemanticMetric(Metric):
    """VSPW mIoU and video consistency VC_n.

    Arguments:
      num_classes: K, predictions lie in [0, K).
      ignore_index: ground-truth label of VOID pixels (255 in VSPW after shifting labels down by one).
      clip_lengths: the n of VC_n; VSPW reports (8, 16).

    Ground-truth labels outside [0, K) must be ``ignore_index`` or negative; both are VOID for mIoU (the official
    evaluator keeps only 0 <= gt < K), while VC compares them as they are, so mapping VSPW's raw "others" (0) to -1 and
    its void (255) to ``ignore_index`` keeps VC identical to the official script, which reads the raw masks.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, clip_lengths: Sequence[int] = (8, 16)) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index {ignore_index} is a real class (num_classes={num_classes}); use 255")
        bad = [n for n in clip_lengths if int(n) < 2]
        if bad or not clip_lengths:
            raise ValueError(f"clip_lengths must be integers >= 2 (VSPW uses 8 and 16), got {list(clip_lengths)}")
        if len(set(clip_lengths)) != len(clip_lengths):
            raise ValueError(f"clip_lengths {list(clip_lengths)} holds duplicates")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.clip_lengths = tuple(int(n) for n in clip_lengths)
        self.add_state("confusion", torch.zeros(num_classes, num_classes, dtype=torch.int64), "sum")
        self.add_state("vc_sum", torch.zeros(len(self.clip_lengths), dtype=torch.float64), "sum")
        self.add_state("vc_clips", torch.zeros(len(self.clip_lengths), dtype=torch.int64), "sum")
        self.add_state("num_videos", torch.zeros((), dtype=torch.int64), "sum")

    def update(self, pred_labels: torch.Tensor, gt_labels: torch.Tensor) -> None:
        """Add one whole video.

        Arguments:
          pred_labels: T x H x W integer class predictions in [0, K).
          gt_labels: T x H x W integer ground truth, frames in temporal order.
        """
        for name, labels in (("pred_labels", pred_labels), ("gt_labels", gt_labels)):
            if not isinstance(labels, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(labels).__name__}")
            if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
                raise TypeError(f"{name} must hold integer class labels, got dtype {labels.dtype}; take the argmax")
            if labels.dim() != 3:
                raise ValueError(f"{name} must be one whole video T x H x W, got shape {tuple(labels.shape)}")
        if pred_labels.shape != gt_labels.shape:
            raise ValueError(
                f"pred_labels {tuple(pred_labels.shape)} and gt_labels {tuple(gt_labels.shape)} must have the same shape"
            )
        # the usual integer types pass as they are (the confusion kernel reads each, VC only compares labels); the
        # unsigned 16-64-bit ones, which few torch operators take, are widened
        if pred_labels.dtype not in _KERNEL_DTYPES:
            pred_labels = pred_labels.to(torch.int64)
        if gt_labels.dtype not in _KERNEL_DTYPES:
            gt_labels = gt_labels.to(torch.int64)
        lowest, highest = _value_range(pred_labels)
        if lowest < 0 or highest >= self.num_classes:
            raise ValueError(
                f"pred_labels hold values outside [0, {self.num_classes}) (min {lowest}, max {highest}); "
                "predictions must be class indices"
            )
        pred_labels = _narrowed(pred_labels, lowest, highest)
        lowest, highest = _value_range(gt_labels)
        gt_labels = _narrowed(gt_labels, lowest, highest)
        gt_for_iou = _labels_for_iou(gt_labels, lowest, highest, self.ignore_index)
        counts = confusion_matrix(gt_for_iou, pred_labels, self.num_classes, self.ignore_index)  # K x K
        self.confusion = self.confusion + counts.cpu()
        sums, clips = self.vc_sum.clone(), self.vc_clips.clone()
        num_frames = gt_labels.shape[0]
        if any(num_frames > n for n in self.clip_lengths):  # VSPW skips videos of at most n frames
            # the frame-to-frame change flags serve every clip length
            gt_changes, pred_changes = label_changes(gt_labels), label_changes(pred_labels)
            for index, clip_length in enumerate(self.clip_lengths):
                if num_frames <= clip_length:
                    continue
                scores = _clip_scores(gt_changes, pred_changes, clip_length)
                scored = scores[~torch.isnan(scores)]
                sums[index] += scored.sum()
                clips[index] += scored.numel()
        self.vc_sum, self.vc_clips = sums, clips
        self.num_videos = self.num_videos + 1

    def compute(self) -> dict[str, Any]:
        """Returns:
        {"mIoU", "per_class_IoU" (K,) float64 with NaN for classes absent from the ground truth, "VC<n>" per clip
        length (NaN when no video is longer than n frames)}.
        """
        confusion = self.confusion.double()
        intersections = confusion.diagonal()
        gt_area = confusion.sum(1)
        unions = gt_area + confusion.sum(0) - intersections
        in_gt = gt_area > 0
        per_class = torch.where(in_gt, intersections / unions.clamp(min=1), math.nan)
        results: dict[str, Any] = {
            "mIoU": float(per_class[in_gt].sum()) / int(in_gt.sum()) if bool(in_gt.any()) else math.nan,
            "per_class_IoU": per_class,
        }
        for index, clip_length in enumerate(self.clip_lengths):
            clips = int(self.vc_clips[index])
            results[f"VC{clip_length}"] = float(self.vc_sum[index]) / clips if clips else math.nan
        return results
