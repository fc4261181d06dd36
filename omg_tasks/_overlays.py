"""The built-in overlays, a plugin of their own: every result family drawn over its input, for a person to look at.

Semantic and panoptic maps are tinted with a colour per class (per segment for panoptic things) and outlined; instances,
tracks and prompt masks get a colour per object, an outline, a box and their class name with the score. Video results
give one picture per frame, in a folder named after the input. A plugin with ``@hookimpl(tryfirst=True)`` on
``omg_render_overlay`` replaces these for the results it draws.
"""

from __future__ import annotations

import colorsys
from pathlib import Path
from typing import TYPE_CHECKING

from omg_core.hookspecs import hookimpl
from omg_core.task_info import TaskInfo

if TYPE_CHECKING:  # torch and NumPy load when a picture is drawn, not when `omg tasks` discovers this plugin
    import numpy as np
    import torch

    from omg_core.task_io import TaskResult

#: How much of a region's colour is mixed into the image.
TINT = 0.5


def colour(index: int) -> tuple[int, int, int]:
    """A bright colour for ``index``, far from its neighbours (golden-ratio hue steps), the same in every picture."""
    red, green, blue = colorsys.hsv_to_rgb((index * 0.618033988749895) % 1.0, 0.75, 1.0)
    return int(red * 255), int(green * 255), int(blue * 255)


@hookimpl
def omg_render_overlay(task: TaskInfo, result: TaskResult, pixels: torch.Tensor, output_dir: Path) -> list[Path] | None:
    from omg_core import results as families

    data = result.data
    image_types = (families.SemanticMap, families.PanopticMap, families.Instances, families.PromptMasks)
    video_types = (families.SemanticVideo, families.PanopticVideo, families.Tracks, families.PromptTracks)
    stem = Path(result.source).stem if result.source is not None else "overlay"
    if isinstance(data, image_types):
        path = Path(output_dir) / f"{stem}.png"
        _draw(data, pixels, None).save(path)
        return [path]
    if isinstance(data, video_types):
        folder = Path(output_dir) / stem
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for frame in range(data.num_frames):
            path = folder / f"{frame:05d}.png"
            _draw(data, pixels[frame], frame).save(path)
            written.append(path)
        return written
    return None  # not a result family: the task's own plugin may draw it


def _draw(data: object, image: torch.Tensor, frame: int | None) -> object:  # -> PIL.Image.Image
    """The overlay of one image (``frame`` None) or one frame of a video result."""
    import numpy as np
    from PIL import Image, ImageDraw

    from omg_core import results as families

    canvas = image.permute(1, 2, 0).numpy().astype(np.float32)  # H x W x 3
    regions: list[tuple[np.ndarray, tuple[int, int, int], str | None]] = []  # mask, colour, label
    if isinstance(data, (families.SemanticMap, families.SemanticVideo)):
        labels = (data.labels if frame is None else data.labels[frame]).numpy()
        for label in np.unique(labels[labels >= 0]).tolist():
            regions.append((labels == label, colour(label), None))
    elif isinstance(data, (families.PanopticMap, families.PanopticVideo)):
        ids = (data.segment_ids if frame is None else data.segment_ids[frame]).numpy()
        for segment in data.segments:
            mask = ids == segment.id
            if mask.any():
                tint = colour(segment.id if segment.is_thing else segment.label)
                name = data.vocabulary[segment.label] if segment.is_thing else None
                regions.append((mask, tint, name))
    else:  # Instances / Tracks / PromptMasks / PromptTracks: one colour per object, name and score
        for index in range(len(data)):
            mask = (data.masks[index] if frame is None else data.masks[index, frame]).numpy()
            name = data.vocabulary[int(data.labels[index])] if data.labels is not None else f"#{index}"
            regions.append((mask, colour(index + 1), f"{name} {float(data.scores[index]):.2f}"))
    for mask, tint, _ in regions:
        canvas[mask] = (1 - TINT) * canvas[mask] + TINT * np.asarray(tint, dtype=np.float32)
    picture = Image.fromarray(canvas.round().clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for mask, tint, label in regions:
        draw.bitmap((0, 0), Image.fromarray(_outline(mask) * 255), fill=tint)
        if label is not None:
            ys, xs = np.nonzero(mask)
            if len(xs):
                draw.rectangle((int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())), outline=tint)
                draw.text((int(xs.min()) + 2, int(ys.min()) + 1), label, fill=(255, 255, 255))
    return picture


def _outline(mask: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` with a 4-neighbour outside it: its one-pixel border, as uint8 0/1 (the image's own edge
    is no border: a region reaching it is not outlined there)."""
    import numpy as np

    padded = np.pad(mask, 1, mode="edge")
    inner = padded[1:-1, :-2] & padded[1:-1, 2:] & padded[:-2, 1:-1] & padded[2:, 1:-1]
    return (mask & ~inner).astype(np.uint8)
