"""COCO-SAM: COCO instances used class-agnostically, with click and box prompts per object.

Prompts are sampled from each mask (seeded), or read from a prompts file so that an evaluation
uses fixed prompts: `{"prompts": [{"annotation_id", "image_id", "points": [[x, y], ...],
"point_labels": [1, ...], "box": [x0, y0, x1, y1]}, ...]}` (points are (column, row) pixel indices).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, Field

from omg_data.coco_instances import read_coco_instances
from omg_data.errors import DataError
from omg_data.json_io import load_validated, write_json
from omg_data.prompts import sample_prompts
from omg_data.sample import Category, CategoryList, Sample, SamplePrompts

# The single class of class-agnostic interactive segmentation.
OBJECT_CATEGORY = Category(id=1, name="object", is_thing=True)


def read_coco_sam(
    json_path: str | Path,
    image_dir: str | Path,
    num_points: int = 1,
    seed: int = 0,
    prompts_path: str | Path | None = None,
) -> Iterator[Sample]:
    """Reads COCO instances as interactive-segmentation samples.

    Every non-crowd instance becomes a class-agnostic "object" segment with `num_points` positive
    clicks and its box. Crowd regions cannot be prompted as one object, so they are kept as
    `ignore` pixels rather than dropped. Prompts are reproducible: the generator is seeded with
    (seed, image position).

    Arguments:
      json_path, image_dir: as for `read_coco_instances`.
      num_points: clicks per object.
      seed: prompt-sampling seed.
      prompts_path: a prompts file (see the module docstring) to use instead of sampling; every
        object needs an entry.
    Returns:
      an iterator of single-frame Samples with `prompts` set; `class_ids` are all 1 ("object").
    """
    categories = CategoryList([OBJECT_CATEGORY])
    fixed = _load_prompts(Path(prompts_path)) if prompts_path is not None else None
    for position, sample in enumerate(read_coco_instances(json_path, image_dir)):
        keep = ~sample.is_crowd
        masks = sample.masks[keep]  # S x 1 x H x W
        # an instance whose mask is empty (degenerate polygon) cannot be clicked; reject it loudly
        empty = ~masks.flatten(1).any(dim=1)
        if empty.any():
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
            prompts=(
                sample_prompts(masks[:, 0], num_points, rng)
                if fixed is None
                else _fixed_prompts(fixed, sample.instance_ids[keep].tolist(), sample, Path(prompts_path))
            ),
        )


class PromptRecord(BaseModel):
    """The prompts of one object in a prompts file."""

    annotation_id: int
    image_id: int | str
    points: list[list[float]] = Field(min_length=1)
    point_labels: list[int] | None = None
    box: list[float] = Field(min_length=4, max_length=4)


class PromptsFile(BaseModel):
    """A COCO-SAM prompts file."""

    prompts: list[PromptRecord]


def _load_prompts(path: Path) -> dict[int, PromptRecord]:
    records: dict[int, PromptRecord] = {}
    for index, record in enumerate(load_validated(path, PromptsFile).prompts):
        if any(len(point) != 2 for point in record.points):
            raise DataError("each point must be [x, y]", path, f"prompts[{index}]")
        if record.point_labels is not None and len(record.point_labels) != len(record.points):
            raise DataError("point_labels must have one label per point", path, f"prompts[{index}]")
        if record.annotation_id in records:
            raise DataError(f"annotation {record.annotation_id} has two prompt records", path, f"prompts[{index}]")
        records[record.annotation_id] = record
    return records


def _fixed_prompts(records: dict[int, PromptRecord], annotation_ids: list[int], sample: Sample, path: Path) -> SamplePrompts:
    missing = [a for a in annotation_ids if a not in records]
    if missing:
        raise DataError(
            f"no prompts for annotations {missing[:5]} of image {sample.sample_id!r}; every object needs a record",
            path,
        )
    chosen = [records[a] for a in annotation_ids]
    most = max((len(r.points) for r in chosen), default=1)
    points = torch.zeros(len(chosen), most, 2, dtype=torch.float32)
    labels = torch.full((len(chosen), most), -1, dtype=torch.int64)  # -1 pads objects with fewer clicks
    for row, record in enumerate(chosen):
        coords = torch.as_tensor(record.points, dtype=torch.float32)
        outside = (
            (coords[:, 0] < 0) | (coords[:, 0] >= sample.width) | (coords[:, 1] < 0) | (coords[:, 1] >= sample.height)
        )
        if outside.any():
            raise DataError(
                f"a point lies outside the {sample.width}x{sample.height} image",
                path,
                f"annotation_id={record.annotation_id}",
            )
        points[row, : len(coords)] = coords
        labels[row, : len(coords)] = torch.as_tensor(record.point_labels or [1] * len(coords))
    boxes = torch.as_tensor([r.box for r in chosen], dtype=torch.float32).reshape(-1, 4)
    return SamplePrompts(points=points, point_labels=labels, boxes=boxes)


def write_coco_sam_prompts(samples: Iterable[Sample], path: str | Path) -> Path:
    """Writes the prompts of COCO-SAM samples (instance ids = annotation ids) as a prompts file."""
    records = []
    for sample in samples:
        if sample.prompts is None:
            raise ValueError(f"sample {sample.sample_id!r} has no prompts to write")
        for row in range(sample.num_segments):
            valid = sample.prompts.point_labels[row] != -1
            records.append(
                {
                    "annotation_id": int(sample.instance_ids[row]),
                    "image_id": sample.sample_id,
                    "points": sample.prompts.points[row][valid].tolist(),
                    "point_labels": sample.prompts.point_labels[row][valid].tolist(),
                    "box": sample.prompts.boxes[row].tolist(),
                }
            )
    write_json({"prompts": records}, path)
    return Path(path)
