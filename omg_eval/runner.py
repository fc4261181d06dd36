"""Task name -> file-level evaluator: the table behind ``omg eval``.

Every evaluator takes (predictions path, ground-truth path or None, progress) and returns a dict of figures. Video
evaluators live in their own modules and are imported only when their task is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from omg_data.paths import MissingPathError, require_file, require_folder

Progress = Callable[[int], None]
PathKind = Literal["file", "folder", "file or folder"]


@dataclass(frozen=True)
class Evaluator:
    """How to evaluate one task from files.

    module / function: where the evaluator lives (imported lazily).
    predictions / ground_truth: what the two paths must be, for help texts and errors.
    call: adapts (predictions, ground truth, progress) to the evaluator's own signature.
    prediction_kind / truth_kind: whether each path is a file, a folder, or may be either.
    """

    module: str
    function: str
    predictions: str
    ground_truth: str | None
    call: Callable[[Callable[..., dict[str, Any]], Path, Path | None, Progress | None], dict[str, Any]]
    prediction_kind: PathKind
    truth_kind: PathKind

    def load(self) -> Callable[..., dict[str, Any]]:
        return getattr(importlib.import_module(self.module), self.function)


def _panoptic(evaluate: Callable[..., dict[str, Any]], pred: Path, gt: Path | None, progress: Progress | None) -> dict:
    pred_json, gt_json = _panoptic_json(pred, "predictions"), _panoptic_json(gt, "ground truth")  # type: ignore[arg-type]
    return evaluate(gt_json, pred_json, progress=progress)


def _panoptic_json(path: Path, what: str) -> Path:
    """A COCO panoptic JSON, given itself or as the folder holding one JSON (its PNG folder sits next to it)."""
    if path.is_dir():
        candidates = sorted(path.glob("*.json"))
        if len(candidates) != 1:
            raise ValueError(
                f"{what} folder {path} holds {len(candidates)} JSON files; pass the panoptic JSON itself "
                "(its PNGs in the folder of the same name)"
            )
        return candidates[0]
    return path


EVALUATORS: dict[str, Evaluator] = {
    "panoptic": Evaluator(
        "omg_eval.panoptic_files",
        "evaluate_panoptic_files",
        "COCO panoptic JSON (PNGs in the folder of the same name)",
        "COCO panoptic JSON (same layout)",
        _panoptic,
        "file or folder",
        "file or folder",
    ),
    "instance": Evaluator(
        "omg_eval.instance_files",
        "evaluate_instance_files",
        "COCO results JSON",
        "COCO instances JSON",
        lambda evaluate, pred, gt, progress: evaluate(gt, pred, progress=progress),
        "file",
        "file",
    ),
    "semantic": Evaluator(
        "omg_eval.semantic_files",
        "evaluate_semantic_files",
        "folder of label PNGs",
        "folder of label PNGs (255 = unlabelled)",
        lambda evaluate, pred, gt, progress: evaluate(pred, gt, progress=progress),
        "folder",
        "folder",
    ),
    "interactive": Evaluator(
        "omg_eval.interactive_files",
        "evaluate_interactive_file",
        "JSON {'objects': [{'click_ious': [...], 'box_iou': x}]}",
        None,
        lambda evaluate, pred, gt, progress: evaluate(pred, progress=progress),
        "file",
        "file",
    ),
    "video-panoptic": Evaluator(
        "omg_eval.video_panoptic_files",
        "evaluate_vipseg",
        "folder of <video>/<frame>.png VIPSeg masks",
        "VIPSeg panomasks folder (categories from the panoVIPSeg_categories.json in it or beside it)",
        lambda evaluate, pred, gt, progress: evaluate(pred, gt),
        "folder",
        "folder",
    ),
    "video-semantic": Evaluator(
        "omg_eval.video_semantic_files",
        "evaluate_vspw",
        "folder of <video>/<frame>.png label maps",
        "VSPW data folder",
        lambda evaluate, pred, gt, progress: evaluate(pred, gt),
        "folder",
        "folder",
    ),
    "video-instance": Evaluator(
        "omg_eval.video_instance_io",
        "evaluate_youtube_vis",
        "YouTube-VIS results JSON",
        "YouTube-VIS JSON",
        lambda evaluate, pred, gt, progress: evaluate(pred, gt),
        "file",
        "file",
    ),
    "vos": Evaluator(
        "omg_eval.vos_io",
        "evaluate_davis",
        "folder of <sequence>/<frame>.png masks",
        "DAVIS Annotations folder",
        lambda evaluate, pred, gt, progress: evaluate(pred, gt),
        "folder",
        "folder",
    ),
}


#: Tasks whose result files are scored by another task's evaluator (same formats, open vocabulary).
SHARED_EVALUATORS: dict[str, str] = {"ov-seg": "panoptic", "ov-interactive": "interactive", "ov-vis": "video-instance"}


def evaluator_name_for(task: str) -> str | None:
    """The EVALUATORS key that scores ``task``'s files (None when the task has no file evaluator)."""
    name = SHARED_EVALUATORS.get(task, task)
    return name if name in EVALUATORS else None


def evaluate_task(
    task: str, predictions: str | Path, ground_truth: str | Path | None, progress: Progress | None = None
) -> dict[str, Any]:
    """Run the evaluator of ``task`` on files.

    Raises:
      KeyError: unknown task (the message lists the known ones).
      MissingPathError (a FileNotFoundError): a path that does not exist.
      DataError (a ValueError): a folder given where a file is expected or the reverse.
      ValueError: a ground truth missing for a task that needs one.
    """
    if task not in EVALUATORS:
        raise KeyError(f"no evaluator for task {task!r}; known tasks: {', '.join(sorted(EVALUATORS))}")
    evaluator = EVALUATORS[task]
    pred_path = _require(Path(predictions), evaluator.prediction_kind, f"predictions: {evaluator.predictions}")
    gt_path = Path(ground_truth) if ground_truth is not None else None
    if evaluator.ground_truth is not None:
        if gt_path is None:
            raise ValueError(f"task {task!r} needs --ground-truth ({evaluator.ground_truth})")
        gt_path = _require(gt_path, evaluator.truth_kind, f"ground truth: {evaluator.ground_truth}")
    return evaluator.call(evaluator.load(), pred_path, gt_path, progress)


def _require(path: Path, kind: PathKind, expected: str) -> Path:
    """``path`` when it is the kind of path expected; otherwise an error saying what it is and what was expected."""
    if kind == "file":
        return require_file(path, f"a file ({expected})")
    if kind == "folder":
        return require_folder(path, f"a folder ({expected})")
    if not path.exists():
        raise MissingPathError(f"does not exist; expected a file or folder ({expected})", path)
    return path
