"""COCO instances format (polygons, RLE, crowd) and COCO results JSON, decoded with pycocotools."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import torch

from omg_data.errors import DataError
from omg_data.geometry import coco_bbox
from omg_data.image_io import check_size, load_image, save_image
from omg_data.json_io import check_unique, load_validated, write_json
from omg_data.panoptic_common import categories_from_json, categories_json
from omg_data.rle import decode_segmentation, encode_mask
from omg_data.sample import CategoryList, Sample, check_sample
from omg_data.schemas import CocoInstancesFile, CocoResult, InstanceAnnotation


def read_coco_instances(json_path: str | Path, image_dir: str | Path) -> Iterator[Sample]:
    """Reads a COCO instances dataset lazily, one sample per image record (images without objects included).

    Instance masks may overlap (they are amodal per object); crowd annotations become segments with
    `is_crowd` set. COCO instances have no void pixels, so `ignore` is all False.

    Arguments:
      json_path: e.g. `instances_val2017.json`.
      image_dir: folder of the images named by each record's `file_name`.
    Returns:
      an iterator of single-frame Samples; instance ids are the annotation ids.
    Raises:
      DataError for schema errors, annotations of unknown images or categories, malformed
      segmentations, duplicate annotation ids, and missing/corrupt/mis-sized images.
    """
    json_path, image_dir = Path(json_path), Path(image_dir)
    data: CocoInstancesFile = load_validated(json_path, CocoInstancesFile)
    categories = categories_from_json(data.categories, json_path)
    by_image: dict[int | str, list[tuple[int, InstanceAnnotation]]] = defaultdict(list)
    check_unique([image.id for image in data.images], "images", json_path)
    image_ids = {image.id for image in data.images}
    seen_ids: set[int] = set()
    for index, annotation in enumerate(data.annotations):
        record = f"annotations[{index}] (id={annotation.id}, image_id={annotation.image_id!r})"
        if annotation.image_id not in image_ids:
            raise DataError(f"image_id {annotation.image_id!r} has no entry in 'images'", json_path, record)
        if annotation.category_id not in categories:
            raise DataError(
                f"unknown category_id {annotation.category_id}; it is not in 'categories'", json_path, record
            )
        if annotation.id in seen_ids:
            raise DataError(
                f"annotation id {annotation.id} is used twice; annotation ids must be unique", json_path, record
            )
        seen_ids.add(annotation.id)
        by_image[annotation.image_id].append((index, annotation))
    for image_index, info in enumerate(data.images):
        record = f"images[{image_index}] (id={info.id!r}, file_name={info.file_name!r})"
        image = load_image(image_dir / info.file_name, record)
        check_size(image.shape[-2:], (info.height, info.width), image_dir / info.file_name, record)
        masks = []
        for index, annotation in by_image.get(info.id, []):
            try:
                masks.append(decode_segmentation(annotation.segmentation, info.height, info.width))
            except ValueError as error:
                raise DataError(
                    f"bad segmentation: {error}", json_path, f"annotations[{index}] (id={annotation.id})"
                ) from error
        annotations = [a for _, a in by_image.get(info.id, [])]
        yield Sample(
            frames=image[None],
            categories=categories,
            sample_id=info.id,
            frame_names=[info.file_name],
            **_segment_fields(masks, annotations, categories, info.height, info.width),
        )


def _segment_fields(
    masks: list[np.ndarray], annotations: list[InstanceAnnotation], categories: CategoryList, height: int, width: int
) -> dict[str, torch.Tensor]:
    stacked = torch.from_numpy(np.stack(masks)) if masks else torch.zeros(0, height, width, dtype=torch.bool)
    class_ids = [a.category_id for a in annotations]
    return {
        "masks": stacked[:, None],  # S x 1 x H x W
        "class_ids": torch.as_tensor(class_ids, dtype=torch.int64),
        "is_thing": torch.as_tensor([categories.by_id(c).is_thing for c in class_ids], dtype=torch.bool),
        "instance_ids": torch.as_tensor([a.id for a in annotations], dtype=torch.int64),
        "is_crowd": torch.as_tensor([bool(a.iscrowd) for a in annotations], dtype=torch.bool),
        "ignore": torch.zeros(1, height, width, dtype=torch.bool),
    }


def write_coco_instances(
    samples: Iterable[Sample],
    json_path: str | Path,
    categories: CategoryList | None = None,
    image_dir: str | Path | None = None,
    polygons: Mapping[tuple[object, int], list[list[float]]] | None = None,
) -> Path:
    """Writes ground-truth samples as a COCO instances JSON.

    Segments are written as compressed RLE, crowd segments as uncompressed RLE (the COCO convention),
    and as polygons where `polygons` supplies an outline that rasterises exactly to the mask.

    Arguments:
      samples: single-frame samples; instance ids become annotation ids.
      json_path: output JSON.
      categories: defaults to the first sample's.
      image_dir: if given, images are written there.
      polygons: optional {(sample_id, instance_id): COCO polygon list}.
    Returns:
      the JSON path.
    """
    from pycocotools import mask as mask_utils

    images, annotations = [], []
    used_ids: set[int] = set()
    for sample in samples:
        categories = categories or sample.categories
        check_sample(sample, json_path, categories, single_frame=True)
        clash = used_ids.intersection(sample.instance_ids.tolist())
        if clash:
            raise DataError(
                f"instance ids {sorted(clash)[:5]} of sample {sample.sample_id!r} were already used by an"
                " earlier sample; COCO annotation ids must be unique across the file (renumber them,"
                " e.g. image id * 1000 + k)",
                json_path,
            )
        used_ids.update(sample.instance_ids.tolist())
        name = sample.frame_names[0] if sample.frame_names else f"{sample.sample_id}.jpg"
        images.append({"id": sample.sample_id, "file_name": name, "height": sample.height, "width": sample.width})
        if image_dir is not None:
            save_image(sample.frames[0], Path(image_dir) / name)
        for index in range(sample.num_segments):
            mask = sample.masks[index, 0].numpy()
            instance_id = int(sample.instance_ids[index])
            polygon = (polygons or {}).get((sample.sample_id, instance_id))
            if sample.is_crowd[index]:
                segmentation = _uncompressed_rle(mask)
            elif polygon is not None and np.array_equal(decode_segmentation(polygon, *mask.shape), mask):
                segmentation = polygon
            else:
                segmentation = encode_mask(mask)
            area = float(mask_utils.area(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))))
            annotations.append(
                {
                    "id": instance_id,
                    "image_id": sample.sample_id,
                    "category_id": int(sample.class_ids[index]),
                    "segmentation": segmentation,
                    "area": area,
                    "bbox": coco_bbox(mask),
                    "iscrowd": int(sample.is_crowd[index]),
                }
            )
    if categories is None:
        raise ValueError("no samples and no categories given: nothing to describe in the JSON")
    write_json({"images": images, "annotations": annotations, "categories": categories_json(categories)}, json_path)
    return Path(json_path)


def _uncompressed_rle(mask: np.ndarray) -> dict:
    # Column-major run lengths starting with a background run, as COCO stores crowd regions.
    flat = mask.T.reshape(-1).astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0] + counts
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def write_coco_results(samples: Iterable[Sample], json_path: str | Path) -> Path:
    """Writes prediction samples as a COCO results JSON (`COCOeval(iouType="segm")` input).

    Each segment becomes {image_id, category_id, segmentation (compressed RLE), bbox, score}.
    Samples without `scores` are written with score 1.0.
    """
    results = []
    for sample in samples:
        check_sample(sample, json_path, single_frame=True)
        scores = sample.scores if sample.scores is not None else torch.ones(sample.num_segments)
        for index in range(sample.num_segments):
            mask = sample.masks[index, 0]
            results.append(
                {
                    "image_id": sample.sample_id,
                    "category_id": int(sample.class_ids[index]),
                    "segmentation": encode_mask(mask),
                    "bbox": coco_bbox(mask),
                    "score": float(scores[index]),
                }
            )
    write_json(results, json_path)
    return Path(json_path)


def read_coco_results(json_path: str | Path, categories: CategoryList) -> dict[int | str, Sample]:
    """Reads a COCO results JSON back into prediction samples, one per image id.

    The samples carry no pixels: `frames` is an expanded zero tensor of the mask size.
    Results keep their file order; instance ids are 1-based positions within each image.
    """
    json_path = Path(json_path)
    results: list[CocoResult] = load_validated(json_path, list[CocoResult])
    grouped: dict[int | str, list[tuple[int, CocoResult]]] = defaultdict(list)
    for index, result in enumerate(results):
        if result.category_id not in categories:
            raise DataError(f"unknown category_id {result.category_id}", json_path, f"[{index}]")
        grouped[result.image_id].append((index, result))
    samples = {}
    for image_id, entries in grouped.items():
        height, width = entries[0][1].segmentation.size
        masks = []
        for index, result in entries:
            try:
                masks.append(decode_segmentation(result.segmentation, height, width))
            except ValueError as error:
                raise DataError(f"bad segmentation: {error}", json_path, f"[{index}]") from error
        class_ids = [r.category_id for _, r in entries]
        samples[image_id] = Sample(
            frames=torch.zeros(1, 3, 1, 1, dtype=torch.uint8).expand(1, 3, height, width),
            masks=torch.from_numpy(np.stack(masks))[:, None],
            class_ids=torch.as_tensor(class_ids, dtype=torch.int64),
            is_thing=torch.as_tensor([categories.by_id(c).is_thing for c in class_ids], dtype=torch.bool),
            instance_ids=torch.arange(1, len(entries) + 1, dtype=torch.int64),
            is_crowd=torch.zeros(len(entries), dtype=torch.bool),
            ignore=torch.zeros(1, height, width, dtype=torch.bool),
            categories=categories,
            sample_id=image_id,
            scores=torch.as_tensor([r.score for _, r in entries], dtype=torch.float32),
        )
    return samples
