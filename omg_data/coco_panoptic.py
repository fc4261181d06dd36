"""COCO panoptic format: one JSON (images, annotations with segments_info, categories) + one RGB PNG per image.

PNG colours encode segment ids as R + 256 G + 256^2 B; id 0 is VOID (ignored pixels).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from omg_data.errors import DataError
from omg_data.image_io import check_size, id_to_rgb, load_image, load_label_png, rgb_to_id, save_image, save_png
from omg_data.json_io import check_unique, load_validated, write_json
from omg_data.panoptic_common import (
    categories_from_json,
    categories_json,
    id_map_from_sample,
    segments_from_id_maps,
    segments_info,
)
from omg_data.sample import CategoryList, Sample, check_sample
from omg_data.schemas import CocoPanopticFile, ImageInfo

# Maps (image folder, image record) to the image file; Cityscapes nests images by city.
ImagePathFn = Callable[[Path, ImageInfo], Path]


def read_coco_panoptic(
    json_path: str | Path, png_dir: str | Path, image_dir: str | Path, image_path: ImagePathFn | None = None
) -> Iterator[Sample]:
    """Reads a COCO-panoptic-style dataset lazily, one sample per annotation record.

    Arguments:
      json_path: the panoptic JSON (e.g. `panoptic_val2017.json`).
      png_dir: the folder of panoptic PNGs named by each annotation's `file_name`.
      image_dir: the folder of images named by each image record's `file_name`.
      image_path: optional override of how an image record maps to its file.
    Returns:
      an iterator of single-frame Samples; segment instance ids are the JSON segment ids.
    Raises:
      DataError (file and record named) for schema errors, images without an annotation (or the
      reverse), missing/corrupt images or PNGs, size mismatch, unknown category ids, PNG/JSON id
      mismatches and duplicated segment ids.
    """
    json_path, png_dir, image_dir = Path(json_path), Path(png_dir), Path(image_dir)
    data: CocoPanopticFile = load_validated(json_path, CocoPanopticFile)
    categories = categories_from_json(data.categories, json_path)
    check_unique([image.id for image in data.images], "images", json_path)
    images = {image.id: image for image in data.images}
    annotated = {annotation.image_id for annotation in data.annotations}
    unannotated = [index for index, image in enumerate(data.images) if image.id not in annotated]
    if unannotated:
        # a panoptic annotation covers every pixel of its image; an image without one is a broken export
        first = data.images[unannotated[0]]
        raise DataError(
            f"{len(unannotated)} images have no entry in 'annotations' (first: id={first.id!r},"
            f" file_name={first.file_name!r}); every image needs its panoptic annotation",
            json_path,
            f"images[{unannotated[0]}]",
        )
    resolve = image_path or (lambda folder, info: folder / info.file_name)
    for index, annotation in enumerate(data.annotations):
        record = f"annotations[{index}] (image_id={annotation.image_id!r})"
        info = images.get(annotation.image_id)
        if info is None:
            raise DataError(
                f"image_id {annotation.image_id!r} has no entry in 'images'; add the image record", json_path, record
            )
        yield read_panoptic_frame(
            info, annotation.segments_info, resolve(image_dir, info), png_dir / annotation.file_name, categories, record
        )


def read_panoptic_frame(
    info: ImageInfo, segments: list, image_file: Path, png_file: Path, categories: CategoryList, record: str
) -> Sample:
    """Decodes one image + panoptic PNG pair into a single-frame Sample (see `read_coco_panoptic`)."""
    image = load_image(image_file, record)
    id_map = load_panoptic_png(png_file, record)
    check_size(image.shape[-2:], (info.height, info.width), image_file, record)
    check_size(id_map.shape, (info.height, info.width), png_file, record)
    fields = segments_from_id_maps(id_map[None], [segments], categories, [png_file], [record])
    return Sample(frames=image[None], categories=categories, sample_id=info.id, frame_names=[info.file_name], **fields)


def load_panoptic_png(path: Path, record: str) -> np.ndarray:
    """Decodes an RGB panoptic PNG to H x W int32 segment ids."""
    array = load_label_png(path, record)
    if array.ndim != 3:
        raise DataError(
            "panoptic PNG must be RGB (ids encoded as R + 256 G + 256^2 B), got a single-channel"
            " image; is this a semantic or raw-format mask?",
            path,
            record,
        )
    return rgb_to_id(array)


def write_coco_panoptic(
    samples: Iterable[Sample],
    json_path: str | Path,
    png_dir: str | Path,
    categories: CategoryList | None = None,
    image_dir: str | Path | None = None,
    png_name_of: Callable[[Sample], str] | None = None,
    image_path_of: Callable[[Path, Sample], Path] | None = None,
) -> Path:
    """Writes samples (ground truth or predictions) as COCO panoptic JSON + PNGs, as panopticapi expects.

    Segment ids are the samples' instance ids; each segment's area and bbox are counted from its pixels.
    Prediction samples (with `scores`) get a per-segment "score" field, which the evaluator ignores.

    Arguments:
      samples: single-frame samples; file names come from `frame_names[0]` (else the sample id).
      json_path: output JSON.
      png_dir: output folder for the PNGs (`<image stem>.png`).
      categories: category list for the JSON; defaults to the first sample's.
      image_dir: if given, the images are written there too (ground-truth export).
      png_name_of: PNG file name of a sample (default `<image stem>.png`).
      image_path_of: where an image goes under image_dir (default image_dir / file name).
    Returns:
      the JSON path.
    Raises:
      DataError if segments overlap, cover ignore pixels or ids do not fit the 24-bit encoding.
    """
    json_path, png_dir = Path(json_path), Path(png_dir)
    images, annotations = [], []
    for sample in samples:
        categories = categories or sample.categories
        check_sample(sample, json_path, categories, single_frame=True)
        image_name = sample.frame_names[0] if sample.frame_names else f"{sample.sample_id}.jpg"
        png_name = png_name_of(sample) if png_name_of else Path(image_name).with_suffix(".png").name
        id_map = id_map_from_sample(sample, 0, str(png_dir / png_name))
        save_png(id_to_rgb(id_map), png_dir / png_name)
        if image_dir is not None:
            target = image_path_of(Path(image_dir), sample) if image_path_of else Path(image_dir) / image_name
            save_image(sample.frames[0], target)
        images.append({"id": sample.sample_id, "file_name": image_name, "height": sample.height, "width": sample.width})
        annotations.append(
            {"image_id": sample.sample_id, "file_name": png_name, "segments_info": segments_info(sample, 0)}
        )
    if categories is None:
        raise ValueError("no samples and no categories given: nothing to describe in the JSON")
    write_json({"images": images, "annotations": annotations, "categories": categories_json(categories)}, json_path)
    return json_path
