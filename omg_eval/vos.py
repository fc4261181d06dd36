"""DAVIS-2017 video object segmentation: J (region IoU), F (boundary F-measure) and J&F, each as mean, recall and
decay, equal to ``davis2017-evaluation``.

Per sequence the objects are the ids present in the first ground-truth frame. Semi-supervised (default): the first and
the last frames are not scored (the first is given to the method, the official also drops the last) and void pixels
count as background. Unsupervised: every frame is scored, void pixels are removed, and proposals are assigned to
objects first (see :mod:`omg_eval.vos_unsupervised`). J and F are computed per object and frame, summarised per
object (mean, recall = fraction of frames above 0.5, decay = first-quarter minus last-quarter mean), and averaged over
all objects of all sequences.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from omg_eval.kernels.boundary_f import boundary_radius, object_counts
from omg_eval.metric import Metric
from omg_eval.vos_statistics import f_measure_from_counts, jaccard_from_counts, sequence_statistics
from omg_eval.vos_unsupervised import matched_object_scores

VOID_ID = 255


TASKS = ("semi-supervised", "unsupervised")


def _min_max(ids: torch.Tensor) -> tuple[int, int]:
    """Smallest and largest id; numpy on the CPU, whose single-threaded reductions avoid torch's parallel region for
    these few-millisecond checks (costly when the machine's cores are busy)."""
    if ids.numel() == 0:
        return 0, 0
    if ids.is_cuda:
        low, high = torch.aminmax(ids)
        return int(low), int(high)
    values = ids.numpy()
    return int(values.min()), int(values.max())


def _first_frame_objects(frame: torch.Tensor) -> int:
    """Largest object id of a uint8 frame, void excluded (the official's object count)."""
    if frame.is_cuda:
        present = torch.unique(frame).tolist()
    else:  # a 256-bin histogram: one cheap single-threaded pass, unlike a parallel sort
        present = np.flatnonzero(np.bincount(frame.numpy().ravel(), minlength=256)).tolist()
    return max([i for i in present if i != VOID_ID], default=0)


class DAVISMetric(Metric):
    """J&F of DAVIS-2017.

    Arguments:
      bound_th: boundary tolerance of F, as a fraction of the image diagonal (< 1) or in pixels (>= 1, whole number).
      task: ``"semi-supervised"`` (objects given in the first frame) or ``"unsupervised"`` (proposals matched to
        objects).
      skip_first_and_last: do not score the first and last frame of each sequence; default: True for
        semi-supervised, False for unsupervised (the official protocols).
    """

    def __init__(
        self, bound_th: float = 0.008, task: str = "semi-supervised", skip_first_and_last: bool | None = None
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        boundary_radius(1, 1, bound_th)  # validates the threshold now rather than at the first update
        self.bound_th = bound_th
        self.task = task
        self.skip_first_and_last = task == "semi-supervised" if skip_first_and_last is None else skip_first_and_last
        self.add_state("objects", [], dist_reduce_fx="cat")

    def update(self, pred_ids: torch.Tensor, gt_ids: torch.Tensor, sequence: str) -> None:
        """Add one sequence.

        Arguments:
          pred_ids: (T, H, W) integer object-id maps of the prediction (0 background, 1..K objects), including the
            first and last frames (they are skipped when ``skip_first_and_last``).
          gt_ids: (T, H, W) ground-truth id maps; 255 marks void pixels (treated as background, as officially).
          sequence: the sequence name (object names are ``<sequence>_<id>``).
        """
        if pred_ids.dim() != 3 or pred_ids.shape != gt_ids.shape:
            raise ValueError(
                f"sequence {sequence!r}: pred_ids {tuple(pred_ids.shape)} and gt_ids {tuple(gt_ids.shape)} must both be "
                "(T, H, W) id maps of the same frames and resolution"
            )
        if pred_ids.is_floating_point() or gt_ids.is_floating_point():
            raise ValueError(f"sequence {sequence!r}: id maps must be integer tensors, not floating point")
        gt_low, gt_high = _min_max(gt_ids)
        if gt_low < 0 or gt_high > VOID_ID:
            raise ValueError(f"sequence {sequence!r}: gt_ids must hold object ids 0..254 and void {VOID_ID}")
        # DAVIS masks are 8-bit PNGs: uint8 keeps every whole-sequence pass four to eight times lighter than int64.
        gt_ids = gt_ids.to(torch.uint8)
        num_objects = _first_frame_objects(gt_ids[0]) if gt_ids.numel() else 0
        if num_objects == 0:
            raise ValueError(
                f"sequence {sequence!r}: the first ground-truth frame has no object; DAVIS scores the objects of the "
                "first annotated frame"
            )
        if self.skip_first_and_last:
            if gt_ids.shape[0] < 3:
                raise ValueError(
                    f"sequence {sequence!r} has {gt_ids.shape[0]} frames; at least 3 are needed when the first and last "
                    "are not scored (or pass skip_first_and_last=False)"
                )
            gt_ids, pred_ids = gt_ids[1:-1], pred_ids[1:-1]
        pred_low, pred_high = _min_max(pred_ids)
        if pred_low < 0:
            raise ValueError(f"sequence {sequence!r}: pred_ids must be non-negative object ids")
        height, width = gt_ids.shape[-2:]
        radius = boundary_radius(int(height), int(width), self.bound_th)
        if self.task == "unsupervised":
            if pred_high > 255:
                raise ValueError(f"sequence {sequence!r}: proposal ids must fit in 8 bits")
            j_values, f_values = matched_object_scores(pred_ids.to(torch.uint8), gt_ids, num_objects, radius, VOID_ID)
            self._add_objects(sequence, j_values, f_values)
            return
        if pred_high > num_objects:
            raise ValueError(
                f"sequence {sequence!r}: the prediction holds object id {pred_high} but the first ground-truth frame "
                f"has only {num_objects} objects (ids 1..{num_objects}); the official evaluator rejects such results"
            )
        pred_ids = pred_ids.to(torch.uint8)
        # Void (255) and ids that appear only after the first frame belong to no object, as officially.
        counts = object_counts(pred_ids, gt_ids, num_objects, radius).cpu()  # K x T x 6
        intersections, unions = counts[..., 0], counts[..., 1]
        j_values = jaccard_from_counts(intersections, unions)  # K x T
        f_values = f_measure_from_counts(counts[..., 2:])  # K x T
        self._add_objects(sequence, j_values, f_values)

    def _add_objects(self, sequence: str, j_values: np.ndarray, f_values: np.ndarray) -> None:
        """Store the per-frame J and F (K, T) of a sequence's objects, named ``<sequence>_<k>`` as officially."""
        for k in range(j_values.shape[0]):
            self.objects.append({"name": f"{sequence}_{k + 1}", "J": j_values[k], "F": f_values[k]})

    def compute(self) -> dict[str, Any]:
        """``J&F-Mean``, ``J-Mean``, ``J-Recall``, ``J-Decay``, ``F-Mean``, ``F-Recall``, ``F-Decay`` (fractions) and
        ``per_object`` {name: {"J-Mean", "F-Mean"}}."""
        if not self.objects:
            raise ValueError("no sequence was added; call update() before compute()")
        names = [o["name"] for o in self.objects]
        if len(set(names)) != len(names):
            raise ValueError("a sequence was added twice (same name); call update once per sequence, or reset()")
        j_stats = np.array([sequence_statistics(np.asarray(o["J"])) for o in self.objects])  # objects x 3
        f_stats = np.array([sequence_statistics(np.asarray(o["F"])) for o in self.objects])  # objects x 3
        j_mean, f_mean = np.mean(j_stats[:, 0]), np.mean(f_stats[:, 0])
        return {
            "J&F-Mean": float((j_mean + f_mean) / 2.0),
            "J-Mean": float(j_mean),
            "J-Recall": float(np.mean(j_stats[:, 1])),
            "J-Decay": float(np.mean(j_stats[:, 2])),
            "F-Mean": float(f_mean),
            "F-Recall": float(np.mean(f_stats[:, 1])),
            "F-Decay": float(np.mean(f_stats[:, 2])),
            "per_object": {
                name: {"J-Mean": float(j[0]), "F-Mean": float(f[0])} for name, j, f in zip(names, j_stats, f_stats)
            },
        }
