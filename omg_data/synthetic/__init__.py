"""The shapes world: a seeded generator of images and videos in every dataset format OMG reads.

from omg_data.synthetic import ShapesWorld, write_dataset
world = ShapesWorld(seed=0, image_size=(128, 128))
sample = world.image(0)            # Sample with masks, classes, captions
clip = world.video(0, num_frames=8)
write_dataset("coco-panoptic", "out/", num=10, seed=0)
"""

from __future__ import annotations

from pathlib import Path

from omg_common.lazy_exports import lazy_exports
from omg_data.synthetic.formats import FORMATS, IMAGE_FORMATS, VIDEO_FORMATS

# the world and its classes need torch; loaded on first use so that `omg data --help` starts fast
_LAZY = {
    "HELD_OUT": "omg_data.synthetic.classes",
    "shapes_world_categories": "omg_data.synthetic.classes",
    "ShapesWorld": "omg_data.synthetic.world",
}

__all__ = [
    "FORMATS",
    "HELD_OUT",
    "IMAGE_FORMATS",
    "VIDEO_FORMATS",
    "ShapesWorld",
    "shapes_world_categories",
    "write_dataset",
]


def write_dataset(
    format: str,
    out_dir: str | Path,
    num: int,
    seed: int = 0,
    image_size: tuple[int, int] = (128, 128),
    num_frames: int = 8,
    exclude_held_out: bool = False,
) -> Path:
    """Generates a shapes-world dataset in `format` (see `FORMATS`) under `out_dir`.

    Arguments:
      format: dataset format name.
      out_dir: output folder.
      num: number of images (image formats) or videos (video formats).
      seed: world seed.
      image_size: (height, width).
      num_frames: frames per video.
      exclude_held_out: leave the held-out classes out (segmentation training data).
    Returns:
      out_dir as a Path.
    """
    from omg_data.synthetic.world import ShapesWorld

    world = ShapesWorld(seed=seed, image_size=image_size, exclude_held_out=exclude_held_out)
    return world.write_dataset(format, out_dir, num, num_frames=num_frames)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
