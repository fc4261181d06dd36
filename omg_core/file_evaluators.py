"""File evaluators: how ``omg eval`` scores a folder or file of predictions against the ground truth.

A file evaluator is named after the files it reads ("coco-panoptic", "youtube-vis", ...), not after a task: several
tasks write the same files (panoptic and ov-seg both write COCO panoptic) and one evaluator scores them all. Plugins
contribute evaluators through the ``omg_file_evaluators`` hook and a task names the one that scores its result files
in ``TaskInfo.file_evaluator``; ``omg eval --task T`` finds it through the registry, for built-in and third-party
tasks alike. An evaluator's name also works on its own, ``omg eval --task vos``, for result files no task writes.

The evaluating function is given as ``"module:function"`` so that listing evaluators imports nothing heavy; it is
imported on first use and called as ``function(predictions, ground_truth, progress)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from omg_data.paths import MissingPathError, require_file, require_folder

PathKind = Literal["file", "folder", "file or folder"]
#: Called with the number of images or videos just scored.
Progress = Callable[[int], None]
#: ``function(predictions, ground_truth or None, progress or None) -> figures``.
EvaluateFiles = Callable[[Path, "Path | None", "Progress | None"], dict[str, Any]]


@dataclass(frozen=True)
class FileEvaluator:
    """One way of scoring result files.

    name: what ``omg eval --task`` and ``TaskInfo.file_evaluator`` call it (lower-case words joined by '-').
    summary: the metric and the official tool it equals, for ``omg tasks --json`` and help texts.
    predictions: what the predictions path holds, for messages ("COCO results JSON").
    prediction_kind: whether that path is a file, a folder, or may be either.
    ground_truth: what the ground-truth path holds, or None when the evaluator needs none.
    ground_truth_kind: as prediction_kind, for the ground truth.
    function: ``"module:function"`` (imported on first use) or the callable itself, taking
      ``(predictions, ground_truth, progress)`` and returning a dict of figures.
    """

    name: str
    summary: str
    predictions: str
    prediction_kind: PathKind
    ground_truth: str | None
    ground_truth_kind: PathKind
    function: str | EvaluateFiles

    def load(self) -> EvaluateFiles:
        """The evaluating function (imports its module the first time)."""
        if callable(self.function):
            return self.function
        module_name, _, attribute = self.function.partition(":")
        return getattr(importlib.import_module(module_name), attribute)

    def evaluate(
        self, predictions: str | Path, ground_truth: str | Path | None, progress: Progress | None = None
    ) -> dict[str, Any]:
        """Check both paths are what this evaluator reads, then score.

        Raises:
          MissingPathError (a FileNotFoundError): a path that does not exist.
          DataError (a ValueError): a folder given where a file is expected, or the reverse.
          ValueError: no ground truth for an evaluator that needs one; anything the evaluating function raises.
        """
        prediction_path = _require(Path(predictions), self.prediction_kind, f"predictions: {self.predictions}")
        truth_path = Path(ground_truth) if ground_truth is not None else None
        if self.ground_truth is not None:
            if truth_path is None:
                raise ValueError(f"{self.name} needs --ground-truth ({self.ground_truth})")
            truth_path = _require(truth_path, self.ground_truth_kind, f"ground truth: {self.ground_truth}")
        return self.load()(prediction_path, truth_path, progress)


def _require(path: Path, kind: PathKind, expected: str) -> Path:
    """``path`` when it is the kind of path expected; otherwise an error saying what it is and what was expected."""
    if kind == "file":
        return require_file(path, f"a file ({expected})")
    if kind == "folder":
        return require_folder(path, f"a folder ({expected})")
    if not path.exists():
        raise MissingPathError(f"does not exist; expected a file or folder ({expected})", path)
    return path
