"""Interactive segmentation figures: mIoU after one click, mIoU from a box prompt, NoC@85 / NoC@90.

``simulate_clicks`` runs the standard protocol against any predictor (clicks in, mask out) and returns the IoU after
each click; :class:`InteractiveSegmentation` turns those sequences into the figures. NoC@t is the number of clicks
needed to reach IoU >= t, counted as ``max_clicks`` (20) when never reached (such objects are also counted as
failures, NoF@t). RITM's ">=20" column counts objects whose NoC equals ``max_clicks``, so also those reaching t at
exactly the last click: that is ``over_max@t`` here (its ``compute_noc_metric``'s ``over_max``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from omg_eval.interactive_clicks import Click, mask_iou, next_click
from omg_eval.metric import Metric

Predictor = Callable[[Sequence[Click], torch.Tensor], torch.Tensor]


def simulate_clicks(
    predictor: Predictor,
    gt_mask: torch.Tensor,
    max_clicks: int = 20,
    stop_at_iou: float | None = None,
    ignore_mask: torch.Tensor | None = None,
) -> list[float]:
    """IoU after each simulated click (RITM's ``evaluate_sample`` loop with its ``Clicker``).

    Arguments:
      predictor: called with (all clicks so far, previous (H, W) bool mask); returns the new (H, W) bool mask.
      gt_mask: (H, W) bool object mask (must not be empty).
      max_clicks: at most this many clicks (20 in the standard protocol).
      stop_at_iou: stop early once IoU reaches it (clicks after that cannot change NoC at lower thresholds).
      ignore_mask: (H, W) bool pixels left out of the errors and the IoU (RITM's ground-truth label -1), or None.

    Returns:
      IoUs after clicks 1, 2, ... (shorter than max_clicks when stopped early or when no error is left: a perfect
      mask keeps IoU 1 for the remaining clicks).
    """
    gt_mask = gt_mask.to(torch.bool)
    if not bool((gt_mask if ignore_mask is None else gt_mask & ~ignore_mask.to(torch.bool)).any()):
        raise ValueError("gt_mask is empty (outside ignore_mask); interactive evaluation needs an object to click on")
    clicks: list[Click] = []
    mask = torch.zeros_like(gt_mask)
    ious: list[float] = []
    for _ in range(max_clicks):
        click = next_click(gt_mask, mask, clicks, ignore_mask)
        if click is None:
            break
        clicks.append(click)
        mask = predictor(clicks, mask).to(torch.bool)
        if mask.shape != gt_mask.shape:
            raise ValueError(f"the predictor returned a {tuple(mask.shape)} mask for a {tuple(gt_mask.shape)} object")
        ious.append(mask_iou(mask, gt_mask, ignore_mask))
        if stop_at_iou is not None and ious[-1] >= stop_at_iou:
            break
    return ious


class InteractiveSegmentation(Metric):
    """Accumulates per-object click IoU sequences and box-prompt IoUs.

    Arguments:
      thresholds: IoU targets of NoC (0.85, 0.90).
      max_clicks: click budget (20).
    """

    def __init__(self, thresholds: Sequence[float] = (0.85, 0.90), max_clicks: int = 20) -> None:
        super().__init__()
        if max_clicks < 1:
            raise ValueError(f"max_clicks must be at least 1, got {max_clicks}")
        self.thresholds = tuple(float(t) for t in thresholds)
        self.max_clicks = max_clicks
        num_t = len(self.thresholds)
        self.add_state("noc_sum", torch.zeros(num_t, dtype=torch.int64), "sum")
        self.add_state("failures", torch.zeros(num_t, dtype=torch.int64), "sum")
        self.add_state("over_max", torch.zeros(num_t, dtype=torch.int64), "sum")
        self.add_state("first_click_iou_sum", torch.zeros((), dtype=torch.float64), "sum")
        self.add_state("num_objects", torch.zeros((), dtype=torch.int64), "sum")
        self.add_state("box_iou_sum", torch.zeros((), dtype=torch.float64), "sum")
        self.add_state("num_boxes", torch.zeros((), dtype=torch.int64), "sum")

    def update(
        self, click_ious: Sequence[Sequence[float]] | None = None, box_ious: Sequence[float] | None = None
    ) -> None:
        """Add objects.

        Arguments:
          click_ious: per object, the IoU after clicks 1, 2, ... (as ``simulate_clicks`` returns; a sequence that
            ends early without reaching a threshold counts as failing it).
          box_ious: per object, the IoU of the mask predicted from its box prompt.
        """
        sequences = []
        for ious in click_ious or []:  # validate everything first: a rejected batch adds nothing
            if len(ious) == 0:
                raise ValueError("an object has no click IoU; run at least one click per object")
            if len(ious) > self.max_clicks:
                raise ValueError(f"an object has {len(ious)} click IoUs but max_clicks is {self.max_clicks}")
            values = torch.tensor([float(v) for v in ious], dtype=torch.float64)
            if bool((values < 0).any() | (values > 1).any()):
                raise ValueError("click IoUs must lie in [0, 1]")
            sequences.append(values)
        boxes = [float(iou) for iou in box_ious or []]
        if any(not 0 <= iou <= 1 for iou in boxes):
            raise ValueError(f"box IoUs must lie in [0, 1], got {[iou for iou in boxes if not 0 <= iou <= 1]}")
        for values in sequences:
            for t, threshold in enumerate(self.thresholds):
                reached = torch.nonzero(values >= threshold)
                noc = int(reached[0, 0]) + 1 if len(reached) else self.max_clicks
                self.noc_sum[t] += noc
                self.failures[t] += not len(reached)
                self.over_max[t] += noc == self.max_clicks
            self.first_click_iou_sum += values[0]
            self.num_objects += 1
        self.box_iou_sum += sum(boxes)
        self.num_boxes += len(boxes)

    def compute(self) -> dict[str, Any]:
        """``mIoU@1click``, ``mIoU@box``, ``NoC@<t>``, ``NoF@<t>`` and ``over_max@<t>`` per threshold (NaN when
        nothing was added)."""
        objects, boxes = int(self.num_objects), int(self.num_boxes)
        nan = float("nan")
        figures: dict[str, Any] = {
            "mIoU@1click": float(self.first_click_iou_sum) / objects if objects else nan,
            "mIoU@box": float(self.box_iou_sum) / boxes if boxes else nan,
        }
        for t, threshold in enumerate(self.thresholds):
            name = f"{round(threshold * 100):d}"
            figures[f"NoC@{name}"] = int(self.noc_sum[t]) / objects if objects else nan
            figures[f"NoF@{name}"] = int(self.failures[t])
            figures[f"over_max@{name}"] = int(self.over_max[t])
        return figures
