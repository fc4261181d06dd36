"""Typed task answers painted from ground-truth masks, for the stand-in runners of the training-evaluation and
quality tests (each decides which masks and labels to give, this paints them the way a task result holds them)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from omg_core.results import Instances, PanopticMap, PanopticVideo, Segment, SemanticMap, SemanticVideo, Tracks

PAINTED_TASKS = ("panoptic", "ov-seg", "video-panoptic", "semantic", "video-semantic", "instance", "video-instance",
                 "ov-vis")


def painted_answer(task: str, masks: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor,
                   names: tuple[str, ...], is_thing: Sequence[bool], order: Sequence[int] | None = None) -> object:
    """
    Arguments:
      task: one of PAINTED_TASKS.
      masks: N x T x H x W bool; labels: N class indices into `names`; scores: N.
      is_thing: per class of `names`.
      order: the rows in painting order for the maps (later rows keep the pixels they share); default 0 .. N-1.

    Returns:
      the task's typed result; maps are 0 where no mask is painted (segment ids start at 1).
    """
    rows = range(len(labels)) if order is None else order
    if task in ("panoptic", "ov-seg", "video-panoptic"):
        ids = torch.zeros(masks.shape[1:], dtype=torch.int64)
        for row in rows:
            ids[masks[row]] = row + 1
        segments = [Segment(row + 1, int(labels[row]), float(scores[row]), is_thing[int(labels[row])])
                    for row in range(len(labels))]
        return PanopticVideo(ids, segments, names) if task == "video-panoptic" else PanopticMap(ids[0], segments, names)
    if task in ("semantic", "video-semantic"):
        ids = torch.zeros(masks.shape[1:], dtype=torch.int64)  # class 0 where nothing is painted
        for row in rows:
            ids[masks[row]] = labels[row]
        return SemanticVideo(ids, names) if task == "video-semantic" else SemanticMap(ids[0], names)
    if task == "instance":
        return Instances(masks[:, 0], scores, labels, names)
    if task in ("video-instance", "ov-vis"):
        return Tracks(masks, scores, labels, names)
    raise ValueError(f"painted_answer does not paint {task!r}")
