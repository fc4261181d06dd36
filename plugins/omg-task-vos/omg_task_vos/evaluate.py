"""``omg eval --task vos``: DAVIS-2017 J&F of a folder of result PNGs, by ``omg_eval.vos_io.evaluate_davis``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omg_core.file_evaluators import Progress

#: The resolution DAVIS-2017 is scored at, looked for first under a DAVIS root's Annotations/.
SCORED_RESOLUTION = "480p"


def annotation_folder(ground_truth: Path) -> Path:
    """The folder of ``<video>/<frame>.png`` annotations: ``ground_truth`` itself, or for a DAVIS root its
    ``Annotations/480p`` (else its only resolution folder)."""
    annotations = ground_truth / "Annotations"
    if not annotations.is_dir():
        return ground_truth
    if (annotations / SCORED_RESOLUTION).is_dir():
        return annotations / SCORED_RESOLUTION
    resolutions = sorted(entry for entry in annotations.iterdir() if entry.is_dir())
    if len(resolutions) != 1:
        names = ", ".join(entry.name for entry in resolutions) or "none"
        raise ValueError(f"{annotations} holds resolution folders {names}; pass the one the predictions were made "
                         "at as --ground-truth")
    return resolutions[0]


def evaluate_davis_folders(predictions: Path, ground_truth: Path | None, progress: Progress | None) -> dict[str, Any]:
    """J&F-Mean, J/F mean, recall and decay over every video of the ground truth (semi-supervised protocol: the
    first and last frames are not scored).

    Arguments:
      predictions: ``<video>/<frame>.png`` object-id PNGs (0 background, 1..K the first frame's objects).
      ground_truth: the annotation folder, or the DAVIS root.
      progress: told the number of videos once they are scored.
    """
    from omg_eval.vos_io import evaluate_davis

    if ground_truth is None:
        raise ValueError("davis-jf needs --ground-truth: the DAVIS Annotations/480p folder or the DAVIS root")
    annotations = annotation_folder(Path(ground_truth))
    figures = evaluate_davis(predictions, annotations)
    if progress is not None:
        progress(sum(1 for entry in annotations.iterdir() if entry.is_dir()))
    return figures
