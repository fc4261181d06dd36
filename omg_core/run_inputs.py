"""Reading what a user points ``omg run`` at: images, frame folders, video files, and prompt files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from omg_core.errors import InputError
from omg_core.task_info import Modality
from omg_core.task_io import Prompts

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"})


@dataclass(frozen=True)
class InputSource:
    """One sample to run: an image file, or a clip (a folder of frames or a video file)."""

    path: Path
    modality: Modality


def plan_inputs(path: Path, modality: Modality) -> list[InputSource]:
    """Decide which samples ``path`` holds for a task of ``modality``, without decoding pixels yet.

    Image tasks take one image file or a folder of images (each one a sample). Video tasks take a folder of frames
    (one clip) or a video file. Anything else is an :class:`InputError` that says what the task expects.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"--input {path}: no such file or folder")
    suffix = path.suffix.lower()
    if modality == "image":
        if path.is_file():
            if suffix in VIDEO_SUFFIXES:
                raise InputError(
                    f"--input {path} is a video, but this is an image task; extract frames, or pick a video task"
                )
            if suffix not in IMAGE_SUFFIXES:
                raise InputError(f"--input {path}: {suffix or 'no suffix'} is not an image ({_names(IMAGE_SUFFIXES)})")
            return [InputSource(path, "image")]
        images = _images_in(path)
        if not images:
            raise InputError(f"--input {path}: the folder holds no images ({_names(IMAGE_SUFFIXES)})")
        return [InputSource(image, "image") for image in images]
    if path.is_file():
        if suffix in IMAGE_SUFFIXES:
            raise InputError(
                f"--input {path} is a single image, but this is a video task; give a folder of frames or a video file"
            )
        if suffix not in VIDEO_SUFFIXES:
            raise InputError(f"--input {path}: {suffix or 'no suffix'} is not a video ({_names(VIDEO_SUFFIXES)})")
        return [InputSource(path, "video")]
    if not _images_in(path):
        raise InputError(f"--input {path}: the folder holds no frames ({_names(IMAGE_SUFFIXES)})")
    return [InputSource(path, "video")]


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _names(suffixes: frozenset[str]) -> str:
    return ", ".join(sorted(suffixes))


def read_image(path: Path) -> torch.Tensor:
    """Decode one image file into (3, H, W) uint8 RGB (a corrupt file is an error naming it)."""
    from omg_data.image_io import load_image

    return load_image(path)


def iter_frames(source: InputSource) -> Iterator[torch.Tensor]:
    """Yield the frames of a clip one at a time, (3, H, W) uint8, so a long video never sits in memory whole."""
    from omg_data.video_stream import FrameStream

    first_shape = None
    for index, frame in enumerate(FrameStream(source.path)):
        if first_shape is None:
            first_shape = frame.shape
        elif frame.shape != first_shape:
            raise InputError(
                f"{source.path}: frame {index} has size {tuple(frame.shape[1:])}, the first frame "
                f"{tuple(first_shape[1:])}; all frames of a clip must have one size"
            )
        yield frame


def read_prompts(path: Path) -> Prompts:
    """Read a prompts JSON file: ``{"points": [[[x, y], ...], ...], "point_labels": [[1, 0, ...], ...],
    "boxes": [[x0, y0, x1, y1], ...]}`` (pixels; each outer entry is one prompt, i.e. one output mask)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--prompts {path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"--prompts {path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"--prompts {path}: expected an object with 'points'/'point_labels'/'boxes'")
    unknown = set(data) - {"points", "point_labels", "boxes"}
    if unknown:
        raise InputError(f"--prompts {path}: unknown key(s) {sorted(unknown)}; use points, point_labels, boxes")
    try:
        points = torch.tensor(data["points"], dtype=torch.float32) if "points" in data else None
        labels = torch.tensor(data["point_labels"], dtype=torch.int64) if "point_labels" in data else None
        boxes = torch.tensor(data["boxes"], dtype=torch.float32) if "boxes" in data else None
        if points is not None and labels is None:
            labels = torch.ones(points.shape[:2], dtype=torch.int64)  # bare points are positive clicks
        prompts = Prompts(points=points, point_labels=labels, boxes=boxes)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise InputError(f"--prompts {path}: {exc}") from exc
    if prompts.num_prompts == 0:
        raise InputError(f"--prompts {path}: holds no prompts")
    if boxes is not None and bool((boxes[:, 2:] <= boxes[:, :2]).any()):
        raise InputError(f"--prompts {path}: every box must have x1 > x0 and y1 > y0")
    return prompts
