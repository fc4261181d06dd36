"""COCO-SAM: COCO instances used class-agnostically, with click and box prompts sampled from each mask."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from omg_data.coco_instances import read_coco_instances
from omg_data.prompts import sample_prompts
from omg_data.sample import Category, CategoryList, Sample

# The single class of class-agnostic interactive segmentation.
OBJECT_CATEGORY = Category(id=1, name="object", is_thing=True)


def read_coco_sam(json_path: str | Path, image_dir: str | Path, num_points: int = 1, seed: int = 0) -> Iterator[Sample]:
    """Reads COCO instances as interactive-segmentation samples.

    Every non-crowd instance becomes a class-agnostic "object" segment with `num_points` positive
    clicks and its box. Crowd regions cannot be prompted as one object, so they are kept as
    `ignore` pixels rather than dropped. Prompts are reproducible: the generator is seeded with
    (seed, image position).

    Arguments:
      json_path, image_dir: as for `read_coco_instances`.
      num_points: clicks per object.
      seed: prompt-sampling seed.
    Returns:
      an iterator of single-frame Samples with `prompts` set; `class_ids` are all 1 ("object").
    """
    categories = CategoryList([OBJECT_CATEGORY])
    for position, sample in enumerate(read_coco_instances(json_path, image_dir)):
        keep = ~sample.is_crowd
        masks = sample.masks[keep]  # S x 1 x H x W
        # an instance whose mask is empty (degenerate polygon) cannot be clicked; reject it loudly
        empty = ~masks.flatten(1).any(dim=1)
        if empty.any():
            from omg_data.errors import DataError

            bad = sample.instance_ids[keep][empty].tolist()
            raise DataError(
                f"annotations {bad} of image {sample.sample_id!r} have empty masks; no prompt can be"
                " sampled from them (fix or remove the annotations)",
                json_path,
            )
        crowd = sample.masks[sample.is_crowd].any(dim=0)  # 1 x H x W
        rng = np.random.default_rng([seed, position])
        count = int(keep.sum())
        yield Sample(
            frames=sample.frames,
            masks=masks,
            class_ids=torch.full((count,), OBJECT_CATEGORY.id, dtype=torch.int64),
            is_thing=torch.ones(count, dtype=torch.bool),
            instance_ids=sample.instance_ids[keep],
            is_crowd=torch.zeros(count, dtype=torch.bool),
            ignore=sample.ignore | crowd,
            categories=categories,
            sample_id=sample.sample_id,
            frame_names=sample.frame_names,
            prompts=sample_prompts(masks[:, 0], num_points, rng),
        )
