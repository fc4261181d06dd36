"""Semantic segmentation label PNGs: one class value per pixel, 255 = ignore.

`reduce_zero_label` follows the ADE20K convention: in the files 0 means "other" (ignored) and
class k is stored as k + 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from omg_data.errors import DataError
from omg_data.image_io import check_size, load_image, load_label_png, save_png
from omg_data.panoptic_common import masks_from_id_maps
from omg_data.sample import CategoryList, Sample, check_sample

IGNORE_VALUE = 255


def decode_semantic(
    label: np.ndarray, categories: CategoryList, reduce_zero_label: bool, path: Path, record: str
) -> np.ndarray:
    """Maps raw PNG values to category ids (H x W int64, IGNORE_VALUE for ignore); unknown values raise."""
    if label.ndim != 2:
        raise DataError(
            "semantic label PNG must be single-channel (grey or palette), got RGB; is this a colour"
            " visualisation instead of the label file?",
            path,
            record,
        )
    raw = label.astype(np.int64)
    values = raw.copy()
    if reduce_zero_label:
        values = raw - 1
        values[(raw == 0) | (raw == IGNORE_VALUE)] = IGNORE_VALUE  # 0 is "other"; a raw 255 stays ignore
    unknown = sorted(int(v) for v in np.unique(values) if v != IGNORE_VALUE and v not in categories)
    if unknown:
        raise DataError(
            f"label values {unknown[:10]} are not category ids of this dataset"
            f"{' (after subtracting 1 for reduce_zero_label)' if reduce_zero_label else ''};"
            " check the category list and the reduce_zero_label setting",
            path,
            record,
        )
    return values


def segments_from_class_maps(class_maps: np.ndarray, categories: CategoryList) -> dict[str, torch.Tensor]:
    """T x H x W category-id maps -> one segment per class present (instance id = class id + 1)."""
    present = [int(v) for v in np.unique(class_maps) if v != IGNORE_VALUE]
    classes = torch.as_tensor(present, dtype=torch.int64)
    return {
        "masks": masks_from_id_maps(class_maps, present),  # S x T x H x W
        "class_ids": classes,
        "is_thing": torch.as_tensor([categories.by_id(c).is_thing for c in present], dtype=torch.bool),
        "instance_ids": classes + 1,
        "is_crowd": torch.zeros(len(present), dtype=torch.bool),
        "ignore": torch.from_numpy(class_maps == IGNORE_VALUE),
    }


def read_semantic_png(
    image_dir: str | Path,
    label_dir: str | Path,
    categories: CategoryList,
    reduce_zero_label: bool = False,
    image_suffix: str = ".jpg",
) -> Iterator[Sample]:
    """Reads an image folder + label-PNG folder pair (matched by file stem), in sorted order.

    Arguments:
      image_dir: images `<stem><image_suffix>`.
      label_dir: label PNGs `<stem>.png`.
      categories: the dataset's categories; ids are the (reduced) label values.
      reduce_zero_label: ADE20K raw convention (0 = ignore, class k stored as k + 1).
      image_suffix: suffix of the image files.
    Returns:
      an iterator of single-frame Samples with one segment per class present.
    """
    image_dir, label_dir = Path(image_dir), Path(label_dir)
    if not label_dir.is_dir():
        raise DataError("label folder not found", label_dir)
    label_files = sorted(label_dir.glob("*.png"))
    if not label_files:
        raise DataError("no label PNGs in this folder; check the path and split", label_dir)
    for label_file in label_files:
        record = label_file.stem
        image_file = image_dir / f"{label_file.stem}{image_suffix}"
        image = load_image(image_file, record)
        label = load_label_png(label_file, record)
        check_size(label.shape[:2], tuple(image.shape[-2:]), label_file, record)
        class_map = decode_semantic(label, categories, reduce_zero_label, label_file, record)
        yield Sample(
            frames=image[None],
            categories=categories,
            sample_id=label_file.stem,
            frame_names=[image_file.name],
            **segments_from_class_maps(class_map[None], categories),
        )


def class_map_from_sample(sample: Sample, frame: int, where: str) -> np.ndarray:
    """Paints frame `frame` into an H x W category-id map (IGNORE_VALUE where no segment or ignore).

    Raises:
      DataError when segments of different classes overlap or a class id does not fit below 255.
    """
    class_map = np.full((sample.height, sample.width), IGNORE_VALUE, dtype=np.int64)
    painted = np.zeros((sample.height, sample.width), dtype=bool)
    for index in range(sample.num_segments):
        class_id = int(sample.class_ids[index])
        if not 0 <= class_id < IGNORE_VALUE:
            raise DataError(
                f"class id {class_id} cannot be stored in a semantic PNG (0..254, 255 = ignore)",
                where,
                f"sample {sample.sample_id!r}",
            )
        mask = sample.masks[index, frame].numpy()
        clash = mask & painted & (class_map != class_id)
        if clash.any():
            raise DataError(
                f"segment {int(sample.instance_ids[index])} (class {class_id}) overlaps a segment of"
                f" another class in frame {frame}; a semantic map holds one class per pixel",
                where,
                f"sample {sample.sample_id!r}",
            )
        class_map[mask] = class_id
        painted |= mask
    if (painted & sample.ignore[frame].numpy()).any():
        raise DataError(
            f"a segment covers pixels marked ignore in frame {frame}", where, f"sample {sample.sample_id!r}"
        )
    return class_map


def encode_semantic(class_map: np.ndarray, reduce_zero_label: bool) -> np.ndarray:
    """Category-id map -> PNG values (uint8), inverse of `decode_semantic`."""
    if reduce_zero_label:
        if (class_map == IGNORE_VALUE - 1).any():
            raise ValueError("class 254 cannot be stored with reduce_zero_label (it would become 255 = ignore)")
        return np.where(class_map == IGNORE_VALUE, 0, class_map + 1).astype(np.uint8)
    return class_map.astype(np.uint8)


def write_semantic_png(
    sample: Sample, path: str | Path, frame: int = 0, reduce_zero_label: bool = False, palette: np.ndarray | None = None
) -> Path:
    """Writes one frame of a sample as a semantic label PNG (255 = ignore).

    Arguments:
      sample: ground truth or prediction; its class ids are the values written.
      path: the PNG file.
      frame: which frame.
      reduce_zero_label: store class k as k + 1 and ignore as 0 (ADE20K raw convention).
      palette: optional 256 x 3 palette for a palette PNG (VSPW style); values are unchanged.
    """
    check_sample(sample, path)
    class_map = class_map_from_sample(sample, frame, str(path))
    save_png(encode_semantic(class_map, reduce_zero_label), path, palette=palette)
    return Path(path)
