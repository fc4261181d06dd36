"""VIPSeg video panoptic segmentation.

Two layouts, both read here:
  * raw (as distributed): `panomasks/<video>/<frame>.png`, 16-bit single channel. 0 = VOID, a value
    v < 125 is stuff of raw class v, else a thing of raw class v // 100 (instance v % 100). The
    category id in `panoVIPSeg_categories.json` is raw class - 1.
  * COCO style (after VIPSeg's `create_panoptic_video_labels.py`; what its VPQ evaluator reads):
    `panoptic_gt_VIPSeg_<split>.json` ({videos, annotations, categories}) + RGB PNGs
    `panomasksRGB/<video>/<frame>.png`. Predictions use the same layout (`pred.json` + `pan_pred/`).
Images are `images/<video>/<frame stem>.jpg` in both.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from omg_data.coco_panoptic import load_panoptic_png
from omg_data.errors import DataError
from omg_data.image_io import check_size, id_to_rgb, load_image, load_label_png, save_image, save_png
from omg_data.json_io import check_unique, load_validated, read_json, write_json
from omg_data.panoptic_common import (
    categories_from_json,
    categories_json,
    id_map_from_sample,
    masks_from_id_maps,
    segments_from_id_maps,
    segments_info,
)
from omg_data.sample import CategoryList, Sample, check_sample
from omg_data.schemas import CocoCategory, PanopticVideoFile

# Raw VIPSeg values below this are stuff classes; at or above, thing instances (class * 100 + instance).
RAW_THING_THRESHOLD = 125


def read_vipseg(json_path: str | Path, png_dir: str | Path, image_dir: str | Path) -> Iterator[Sample]:
    """Reads COCO-style VIPSeg (or any video panoptic JSON of that shape), one video sample at a time.

    Arguments:
      json_path: `panoptic_gt_VIPSeg_<split>.json`.
      png_dir: `panomasksRGB`, holding `<video>/<file_name>`.
      image_dir: `images`, holding `<video>/<frame stem>.jpg`.
    Returns:
      video Samples; a segment id recurring across frames is one track (instance id = segment id).
    Raises:
      DataError for schema errors, a video whose annotation count differs from its frame count,
      unknown categories, PNG/JSON id mismatches and missing/corrupt/mis-sized files.
    """
    json_path, png_dir, image_dir = Path(json_path), Path(png_dir), Path(image_dir)
    data: PanopticVideoFile = load_validated(json_path, PanopticVideoFile)
    categories = categories_from_json(data.categories, json_path)
    check_unique([video.video_id for video in data.videos], "videos", json_path)
    check_unique([entry.video_id for entry in data.annotations], "annotations", json_path)
    annotations = {entry.video_id: (index, entry) for index, entry in enumerate(data.annotations)}
    video_ids = {video.video_id for video in data.videos}
    for index, entry in enumerate(data.annotations):
        if entry.video_id not in video_ids:
            raise DataError(
                f"video_id {entry.video_id!r} has no entry in 'videos'; add the video record or remove the annotation",
                json_path,
                f"annotations[{index}]",
            )
    for video_index, video in enumerate(data.videos):
        if video.video_id not in annotations:
            raise DataError(
                f"video {video.video_id!r} has no entry in 'annotations'", json_path, f"videos[{video_index}]"
            )
        annotation_index, entry = annotations[video.video_id]
        record = f"annotations[{annotation_index}] (video_id={video.video_id!r})"
        if len(entry.annotations) != len(video.images):
            raise DataError(
                f"{len(entry.annotations)} frame annotations but the video lists {len(video.images)}"
                " images; every frame needs one annotation",
                json_path,
                record,
            )
        frames, id_maps, png_paths, records = [], [], [], []
        for frame_index, (info, frame) in enumerate(zip(video.images, entry.annotations, strict=True)):
            frame_record = f"{record}.annotations[{frame_index}] (image_id={frame.image_id!r})"
            image_file = image_dir / str(video.video_id) / f"{Path(info.file_name).stem}.jpg"
            png_file = png_dir / str(video.video_id) / frame.file_name
            image = load_image(image_file, frame_record)
            id_map = load_panoptic_png(png_file, frame_record)
            check_size(image.shape[-2:], (info.height, info.width), image_file, frame_record)
            check_size(id_map.shape, (info.height, info.width), png_file, frame_record)
            frames.append(image)
            id_maps.append(id_map)
            png_paths.append(png_file)
            records.append(frame_record)
        fields = segments_from_id_maps(
            np.stack(id_maps), [f.segments_info for f in entry.annotations], categories, png_paths, records
        )
        yield Sample(
            frames=torch.stack(frames),
            categories=categories,
            sample_id=video.video_id,
            frame_names=[info.file_name for info in video.images],
            is_video=True,
            **fields,
        )


def write_vipseg(
    samples: Iterable[Sample],
    json_path: str | Path,
    png_dir: str | Path,
    categories: CategoryList | None = None,
    image_dir: str | Path | None = None,
) -> Path:
    """Writes video samples in COCO-style VIPSeg layout: JSON + `<png_dir>/<video>/<frame>.png`.

    The same layout serves predictions: name the JSON `pred.json` and the folder `pan_pred`.
    Segment ids are instance ids, so a track keeps its colour across frames.
    """
    json_path, png_dir = Path(json_path), Path(png_dir)
    videos, annotations = [], []
    for sample in samples:
        categories = categories or sample.categories
        check_sample(sample, json_path, categories)
        video_id = str(sample.sample_id)
        names = _frame_png_names(sample)
        images, frames = [], []
        for frame, name in enumerate(names):
            id_map = id_map_from_sample(sample, frame, str(png_dir / video_id / name))
            save_png(id_to_rgb(id_map), png_dir / video_id / name)
            if image_dir is not None:
                save_image(sample.frames[frame], Path(image_dir) / video_id / f"{Path(name).stem}.jpg")
            images.append({"id": Path(name).stem, "file_name": name, "height": sample.height, "width": sample.width})
            frames.append(
                {"image_id": Path(name).stem, "file_name": name, "segments_info": segments_info(sample, frame)}
            )
        videos.append({"video_id": video_id, "images": images})
        annotations.append({"video_id": video_id, "annotations": frames})
    if categories is None:
        raise ValueError("no samples and no categories given: nothing to describe in the JSON")
    write_json({"videos": videos, "annotations": annotations, "categories": categories_json(categories)}, json_path)
    return json_path


def _frame_png_names(sample: Sample) -> list[str]:
    if sample.frame_names:
        return [f"{Path(name).stem}.png" for name in sample.frame_names]
    return [f"{index:08d}.png" for index in range(sample.num_frames)]


def read_vipseg_categories(path: str | Path) -> CategoryList:
    """Reads `panoVIPSeg_categories.json` (a list of {id, name, isthing, color})."""
    from pydantic import TypeAdapter, ValidationError

    raw = read_json(path)
    try:
        entries = TypeAdapter(list[CocoCategory]).validate_python(raw)
    except ValidationError as error:
        raise DataError(f"not a VIPSeg category list: {error.errors()[0]['msg']}", path) from error
    return categories_from_json(entries, path)


def read_vipseg_raw(
    panomask_dir: str | Path, image_dir: str | Path, categories: CategoryList, videos: Iterable[str] | None = None
) -> Iterator[Sample]:
    """Reads raw VIPSeg panomasks (see the module docstring), one video sample at a time.

    Arguments:
      panomask_dir: `panomasks`, holding `<video>/<frame>.png`.
      image_dir: `images`, holding `<video>/<frame>.jpg`.
      categories: from `read_vipseg_categories`.
      videos: video names to read (default: every folder, sorted).
    Returns:
      video Samples; instance ids are the raw mask values (stable across frames).
    """
    panomask_dir, image_dir = Path(panomask_dir), Path(image_dir)
    names = sorted(p.name for p in panomask_dir.iterdir() if p.is_dir()) if videos is None else list(videos)
    for video in names:
        mask_files = sorted((panomask_dir / video).glob("*.png"))
        image_files = sorted((image_dir / video).glob("*.jpg"))
        if len(mask_files) != len(image_files) or not mask_files:
            raise DataError(
                f"{len(mask_files)} masks but {len(image_files)} frames; every frame needs one mask",
                panomask_dir / video,
                video,
            )
        frames, raw_maps = [], []
        for mask_file, image_file in zip(mask_files, image_files, strict=True):
            if mask_file.stem != image_file.stem:
                raise DataError(
                    f"mask {mask_file.name} pairs with frame {image_file.name}; names must match", mask_file, video
                )
            frame = load_image(image_file, video)
            raw = load_label_png(mask_file, video)
            if raw.ndim != 2:
                raise DataError(
                    "raw VIPSeg masks are single-channel; RGB masks are the COCO-style layout (use read_vipseg)",
                    mask_file,
                    video,
                )
            check_size(raw.shape, tuple(frame.shape[-2:]), mask_file, video)
            frames.append(frame)
            raw_maps.append(raw.astype(np.int64))
        yield _sample_from_raw(torch.stack(frames), np.stack(raw_maps), categories, video, mask_files)


def _sample_from_raw(
    frames: torch.Tensor, raw_maps: np.ndarray, categories: CategoryList, video: str, mask_files: list[Path]
) -> Sample:
    values = [int(v) for v in np.unique(raw_maps) if v != 0]
    class_ids = []
    for value in values:
        category_id = (value if value < RAW_THING_THRESHOLD else value // 100) - 1
        if category_id not in categories:
            frame = int(np.argmax((raw_maps == value).reshape(len(raw_maps), -1).any(axis=1)))
            raise DataError(
                f"mask value {value} decodes to unknown category id {category_id}", mask_files[frame], video
            )
        class_ids.append(category_id)
    ids = torch.as_tensor(values, dtype=torch.int64)
    return Sample(
        frames=frames,
        masks=masks_from_id_maps(raw_maps, values),
        class_ids=torch.as_tensor(class_ids, dtype=torch.int64),
        is_thing=torch.as_tensor([categories.by_id(c).is_thing for c in class_ids], dtype=torch.bool),
        instance_ids=ids,
        is_crowd=torch.zeros(len(values), dtype=torch.bool),
        ignore=torch.from_numpy(raw_maps == 0),
        categories=categories,
        sample_id=video,
        frame_names=[f.with_suffix(".jpg").name for f in mask_files],
        is_video=True,
    )


def write_vipseg_raw(samples: Iterable[Sample], panomask_dir: str | Path, image_dir: str | Path | None = None) -> None:
    """Writes video samples as raw VIPSeg panomasks (16-bit PNGs, see the module docstring).

    Things are numbered per class in order of their instance ids (at most 100 per class and video).
    """
    panomask_dir = Path(panomask_dir)
    for sample in samples:
        check_sample(sample, panomask_dir)
        video = str(sample.sample_id)
        values = []
        per_class: dict[int, int] = {}
        for index in range(sample.num_segments):
            raw_class = int(sample.class_ids[index]) + 1
            if sample.is_thing[index]:
                ordinal = per_class.get(raw_class, 0)
                per_class[raw_class] = ordinal + 1
                if ordinal >= 100:
                    raise DataError(
                        f"more than 100 instances of category {raw_class - 1}: raw VIPSeg cannot encode them",
                        panomask_dir / video,
                    )
                value = raw_class * 100 + ordinal
                if value < RAW_THING_THRESHOLD:
                    raise DataError(
                        f"thing category id {raw_class - 1} is too small for the raw encoding (values"
                        f" below {RAW_THING_THRESHOLD} mean stuff)",
                        panomask_dir / video,
                    )
            else:
                value = raw_class
                if value >= RAW_THING_THRESHOLD:
                    raise DataError(
                        f"stuff category id {raw_class - 1} is too large for the raw encoding", panomask_dir / video
                    )
            values.append(value)
        encoded = replace(sample, instance_ids=torch.as_tensor(values, dtype=torch.int64))
        for frame, name in enumerate(_frame_png_names(sample)):
            raw = id_map_from_sample(encoded, frame, str(panomask_dir / video / name))
            save_png(raw.astype(np.uint16), panomask_dir / video / name)
            if image_dir is not None:
                save_image(sample.frames[frame], Path(image_dir) / video / f"{Path(name).stem}.jpg")
