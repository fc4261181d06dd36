"""``omg eval --task referring``: mIoU / oIoU of a folder of mask PNGs against a folder of ground-truth mask PNGs.

A pixel belongs to the referred object where the PNG is not 0 in either folder: the 0/1 maps ``omg run --task
referring`` writes (semantic-png) and the 0/1 or 0/255 masks referring datasets come as both read right.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omg_core.file_evaluators import Progress


def read_mask(path: Path, role: str) -> Any:
    """(H, W) bool: the PNG's non-zero pixels (any channel of an RGB PNG)."""
    import torch

    from omg_data.image_io import read_png_array

    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; the predictions need one PNG per ground-truth mask, named alike "
                                "(what `omg run --task referring --format semantic-png` writes)")
    values = read_png_array(path, f"save the {role} as a grey or palette PNG (0 = not the object)")
    mask = torch.from_numpy(values != 0)
    return mask.any(dim=-1) if mask.ndim == 3 else mask


def evaluate_referring_pngs(predictions: Path, ground_truth: Path | None, progress: Progress | None) -> dict[str, Any]:
    """mIoU, oIoU and num_samples over every PNG of the ground-truth folder.

    Arguments:
      predictions: folder of ``<name>.png`` predicted masks.
      ground_truth: folder of ``<name>.png`` ground-truth masks.
      progress: told of each image scored.
    """
    from omg_task_referring.metric import ReferringIoU

    if ground_truth is None:
        raise ValueError("referring-png needs --ground-truth: a folder of mask PNGs named like the predictions")
    truths = sorted(Path(ground_truth).glob("*.png"))
    if not truths:
        raise ValueError(f"{ground_truth} holds no PNG masks")
    metric = ReferringIoU()
    for truth_path in truths:
        truth = read_mask(truth_path, "ground truth")
        prediction = read_mask(Path(predictions) / truth_path.name, "prediction")
        if prediction.shape != truth.shape:
            raise ValueError(f"{Path(predictions) / truth_path.name} is {prediction.shape[1]}x{prediction.shape[0]} but "
                             f"{truth_path} is {truth.shape[1]}x{truth.shape[0]}; predict at the image's size")
        metric.update(prediction, truth)
        if progress is not None:
            progress(1)
    return metric.compute()
