"""Writes the shapes world in every supported dataset format, through the same writers predictions use.

Layouts under `out_dir` (each readable by the matching `omg_data` reader):
  coco-panoptic   images/, panoptic.json, panoptic/                 read_coco_panoptic
  coco-instances  images/, instances.json (things only; polygons where unoccluded, RLE, crowd as
                  uncompressed RLE; annotation id = image id * 1000 + instance id)
                                                                    read_coco_instances
  coco-sam        coco-instances files + prompts.json (one click and a box per object)
                                                                    read_coco_sam(..., prompts_path=)
  semantic        images/, labels/ (category ids, 255 ignore)       read_semantic_png
  ade20k          ADEChallengeData2016 layout, semantic + panoptic  read_ade20k_semantic / _panoptic
  cityscapes      gtFine/cityscapes_panoptic_val{.json,/}, leftImg8bit/val/<city>/
                                                                    read_cityscapes_panoptic
  youtube-vis     JPEGImages/, instances.json (things only)         read_youtube_vis
  vipseg          images/, panomasks/ (raw), panomasksRGB/, panoptic_gt_VIPSeg.json,
                  panoVIPSeg_categories.json                        read_vipseg / read_vipseg_raw
  vspw            data/<video>/{origin,mask}/, val.txt              read_vspw
  davis           JPEGImages/480p/, Annotations/480p/, ImageSets/2017/val.txt   read_davis
Every format also gets `captions.json` ({sample id as written in the files: captions}) for CLIP training.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import torch

from omg_data.cityscapes import write_cityscapes_panoptic
from omg_data.coco_instances import write_coco_instances
from omg_data.coco_panoptic import write_coco_panoptic
from omg_data.coco_sam import read_coco_sam, write_coco_sam_prompts
from omg_data.davis import write_davis
from omg_data.json_io import write_json
from omg_data.panoptic_common import categories_json
from omg_data.sample import Sample
from omg_data.semantic_png import write_semantic_png
from omg_data.synthetic.formats import FORMATS
from omg_data.synthetic.world import ShapesWorld
from omg_data.vipseg import write_vipseg, write_vipseg_raw
from omg_data.vspw import write_vspw
from omg_data.youtube_vis import write_youtube_vis


def write_dataset(world: ShapesWorld, format: str, out_dir: str | Path, num: int, num_frames: int = 8) -> Path:
    """Writes `num` images (image formats) or videos (video formats) of `world` in `format`.

    Arguments:
      world: the generator.
      format: one of FORMATS.
      out_dir: output folder (created).
      num: number of images or videos.
      num_frames: frames per video.
    Returns:
      out_dir.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    if num < 1:
        raise ValueError(f"num must be at least 1, got {num}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    captions: dict[str, list[str]] = {}

    def images() -> Iterator[Sample]:
        return (world.image(index) for index in range(num))

    def videos() -> Iterator[Sample]:
        return (world.video(index, num_frames) for index in range(num))

    def recorded(samples: Iterable[Sample]) -> Iterator[Sample]:
        """Passes samples through, noting their captions under the id the files use."""
        for sample in samples:
            captions[str(sample.sample_id)] = sample.captions
            yield sample

    if format == "coco-panoptic":
        write_coco_panoptic(
            recorded(images()), out / "panoptic.json", out / "panoptic", world.categories, out / "images"
        )
    elif format in ("coco-instances", "coco-sam"):
        _write_coco_instances(world, out, num, captions)
        if format == "coco-sam":
            # fixed prompts for evaluation, sampled once (seeded by the world seed) from the written masks
            samples = read_coco_sam(out / "instances.json", out / "images", num_points=1, seed=world.seed)
            write_coco_sam_prompts(samples, out / "prompts.json")
    elif format == "semantic":
        for sample in recorded(images()):
            write_semantic_png(sample, out / "labels" / f"{sample.sample_id:012d}.png")
            _save(sample, out / "images" / sample.frame_names[0])
        write_json(categories_json(world.categories), out / "categories.json")
    elif format == "ade20k":
        _write_ade20k(recorded(images()), out, world)
    elif format == "cityscapes":
        renamed = (replace(s, sample_id=f"synth_000000_{int(s.sample_id):06d}") for s in images())
        write_cityscapes_panoptic(recorded(renamed), out, "val", world.categories)
    elif format == "youtube-vis":
        tracks = (replace(v, instance_ids=global_id(v, v.instance_ids)) for v in map(_things_only, videos()))
        write_youtube_vis(recorded(tracks), out / "instances.json", world.categories, out / "JPEGImages")
    elif format == "vipseg":
        # both layouts; videos are regenerated for the second (deterministic) instead of held in memory
        write_vipseg_raw(recorded(_named(videos())), out / "panomasks", out / "images")
        write_vipseg(_named(videos()), out / "panoptic_gt_VIPSeg.json", out / "panomasksRGB", world.categories)
        write_json(categories_json(world.categories), out / "panoVIPSeg_categories.json")
    elif format == "vspw":
        write_vspw(recorded(_named(videos())), out, split="val")
        write_json(categories_json(world.categories), out / "categories.json")
    elif format == "davis":
        write_davis((_davis_objects(s) for s in recorded(_named(videos()))), out, split="val")
    write_json(captions, out / "captions.json")
    return out


def global_id(sample: Sample, local_ids: torch.Tensor) -> torch.Tensor:
    """Annotation ids unique across a COCO / YouTube-VIS file: sample id * 1000 + the id within the sample."""
    return int(sample.sample_id) * 1000 + local_ids


def _save(sample: Sample, path: Path) -> None:
    from omg_data.image_io import save_image

    save_image(sample.frames[0], path)


def _named(samples: Iterable[Sample]) -> Iterator[Sample]:
    """Video ids as folder names ("video_00001"), frames named by their index."""
    for sample in samples:
        yield replace(
            sample,
            sample_id=f"video_{int(sample.sample_id):05d}",
            frame_names=[Path(name).name for name in sample.frame_names],
        )


def _write_coco_instances(world: ShapesWorld, out: Path, num: int, captions: dict[str, list[str]]) -> None:
    polygons: dict[tuple[object, int], list[list[float]]] = {}

    def stream() -> Iterator[Sample]:
        for index in range(num):
            sample, outlines = world.image_with_polygons(index)
            captions[str(sample.sample_id)] = sample.captions
            for instance_id, polygon in outlines.items():
                polygons[(sample.sample_id, global_id(sample, instance_id))] = polygon
            # instances carry no stuff: stuff is a panoptic / semantic notion
            things = _things_only(sample)
            yield replace(things, instance_ids=global_id(things, things.instance_ids))

    write_coco_instances(stream(), out / "instances.json", world.categories, out / "images", polygons)


def _things_only(sample: Sample) -> Sample:
    keep = sample.is_thing
    return replace(
        sample,
        masks=sample.masks[keep],
        class_ids=sample.class_ids[keep],
        is_thing=sample.is_thing[keep],
        instance_ids=sample.instance_ids[keep],
        is_crowd=sample.is_crowd[keep],
        ignore=torch.zeros_like(sample.ignore),
    )


def _davis_objects(sample: Sample) -> Sample:
    """DAVIS objects: non-crowd things present in the first frame, numbered 1..N; the rest is background."""
    keep = sample.is_thing & ~sample.is_crowd & sample.masks[:, 0].flatten(1).any(dim=1)
    count = int(keep.sum())
    return replace(
        sample,
        masks=sample.masks[keep],
        class_ids=torch.ones(count, dtype=torch.int64),
        is_thing=torch.ones(count, dtype=torch.bool),
        instance_ids=torch.arange(1, count + 1),
        is_crowd=torch.zeros(count, dtype=torch.bool),
        ignore=torch.zeros_like(sample.ignore),
    )


def _write_ade20k(samples: Iterator[Sample], out: Path, world: ShapesWorld) -> None:
    written = []
    for sample in samples:
        name = f"ADE_val_{int(sample.sample_id):08d}"
        sample = replace(sample, frame_names=[f"{name}.jpg"])
        # raw ADE convention: class k stored as k + 1, 0 = other (ignore)
        write_semantic_png(sample, out / "annotations" / "validation" / f"{name}.png", reduce_zero_label=True)
        written.append(sample)
    write_coco_panoptic(
        written,
        out / "ade20k_panoptic_val.json",
        out / "ade20k_panoptic_val",
        world.categories,
        out / "images" / "validation",
    )
    write_json(categories_json(world.categories), out / "categories.json")
