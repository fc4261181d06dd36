"""DAVIS-2017 semi-supervised video object segmentation.

Layout: `JPEGImages/<res>/<seq>/<frame>.jpg`, `Annotations/<res>/<seq>/<frame>.png` (palette PNGs whose
indices are object ids, 0 background, 255 void), `ImageSets/2017/<split>.txt`. Validation sequences
annotate every frame; test-dev / challenge sequences only the first, which is all a method may use.
Results for `davis2017-evaluation` are palette PNGs `<out>/<seq>/<frame>.png`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from omg_data.errors import DataError
from omg_data.image_io import check_size, davis_palette, load_image, load_label_png, save_image, save_png
from omg_data.panoptic_common import masks_from_id_maps
from omg_data.prompts import sample_prompts
from omg_data.sample import Category, CategoryList, Sample, check_sample

OBJECT_CATEGORY = Category(id=1, name="object", is_thing=True)
VOID_VALUE = 255


def read_davis(
    root: str | Path, split: str = "val", resolution: str = "480p", num_points: int = 1, seed: int = 0
) -> Iterator[Sample]:
    """Reads DAVIS-2017 sequences, one video sample at a time, with first-frame prompts.

    Arguments:
      root: the DAVIS folder.
      split: name of the list in `ImageSets/2017/` ("train", "val", "test-dev", ...).
      resolution: "480p" or "Full-Resolution".
      num_points, seed: clicks sampled from each first-frame mask (reproducible per sequence).
    Returns:
      video Samples: every object a class-agnostic segment (instance id = object id), `prompts.masks`
      the first-frame masks. Frames without an annotation PNG (test splits) are marked all-ignore.
    Raises:
      DataError for a missing split list or sequence, annotations that match no frame, an object
      absent from the first frame, non-palette masks and missing/corrupt/mis-sized files.
    """
    root = Path(root)
    split_file = root / "ImageSets" / "2017" / f"{split}.txt"
    if not split_file.is_file():
        raise DataError("split list not found; DAVIS-2017 keeps them in ImageSets/2017/", split_file)
    sequences = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
    for position, sequence in enumerate(sequences):
        yield read_davis_sequence(
            root / "JPEGImages" / resolution / sequence,
            root / "Annotations" / resolution / sequence,
            num_points,
            np.random.default_rng([seed, position]),
            f"{split_file.name}:{position + 1}",
        )


def read_davis_sequence(
    image_dir: Path, annotation_dir: Path, num_points: int, rng: np.random.Generator, record: str
) -> Sample:
    """Reads one DAVIS sequence (see `read_davis`)."""
    image_files = sorted(image_dir.glob("*.jpg"))
    if not image_files:
        raise DataError("no frames found; check the sequence name and the resolution folder", image_dir, record)
    annotation_files = {p.stem: p for p in sorted(annotation_dir.glob("*.png"))}
    frame_stems = [p.stem for p in image_files]
    stray = sorted(set(annotation_files) - set(frame_stems))
    if stray:
        raise DataError(
            f"annotations {stray[:5]} have no matching frame (frame count mismatch)", annotation_dir, record
        )
    if frame_stems[0] not in annotation_files:
        raise DataError(
            f"the first frame {frame_stems[0]} has no annotation; semi-supervised VOS needs it", annotation_dir, record
        )
    frames, label_maps, annotated = [], [], []
    for image_file in image_files:
        frame = load_image(image_file, record)
        frames.append(frame)
        annotation = annotation_files.get(image_file.stem)
        if annotation is None:
            label_maps.append(np.zeros(frame.shape[-2:], dtype=np.int64))
            annotated.append(False)
            continue
        labels = load_label_png(annotation, record)
        if labels.ndim != 2:
            raise DataError("DAVIS masks are palette PNGs of object ids; got an RGB image", annotation, record)
        check_size(labels.shape, tuple(frame.shape[-2:]), annotation, record)
        label_maps.append(labels.astype(np.int64))
        annotated.append(True)
    label_array = np.stack(label_maps)  # T x H x W
    maps = torch.from_numpy(label_array)
    object_ids = [int(v) for v in np.unique(label_array) if v not in (0, VOID_VALUE)]
    ids = torch.as_tensor(object_ids, dtype=torch.int64)
    masks = masks_from_id_maps(label_array, object_ids)  # S x T x H x W
    first = masks[:, 0]
    missing = [object_ids[i] for i in range(len(object_ids)) if not first[i].any()]
    if missing:
        raise DataError(
            f"objects {missing} do not appear in the first frame; semi-supervised VOS takes every"
            " object from the first-frame mask",
            annotation_files[frame_stems[0]],
            record,
        )
    prompts = sample_prompts(first, num_points, rng)
    prompts.masks = first
    ignore = (maps == VOID_VALUE) | ~torch.as_tensor(annotated)[:, None, None]
    count = len(object_ids)
    return Sample(
        frames=torch.stack(frames),
        masks=masks,
        class_ids=torch.full((count,), OBJECT_CATEGORY.id, dtype=torch.int64),
        is_thing=torch.ones(count, dtype=torch.bool),
        instance_ids=ids,
        is_crowd=torch.zeros(count, dtype=torch.bool),
        ignore=ignore,
        categories=CategoryList([OBJECT_CATEGORY]),
        sample_id=image_dir.name,
        frame_names=[p.name for p in image_files],
        is_video=True,
        prompts=prompts,
    )


def object_map_from_sample(sample: Sample, frame: int, where: str) -> np.ndarray:
    """Paints one frame into an H x W uint8 object-id map (0 background, 255 void)."""
    ids = sample.instance_ids
    if len(ids) and (ids.min() < 1 or ids.max() >= VOID_VALUE):
        raise DataError(f"DAVIS object ids must be 1..254, got {ids.tolist()}", where, f"sample {sample.sample_id!r}")
    masks = sample.masks[:, frame]
    if (masks.sum(dim=0) > 1).any():
        raise DataError(
            f"objects overlap in frame {frame}; a DAVIS mask holds one object per pixel",
            where,
            f"sample {sample.sample_id!r}",
        )
    object_map = (masks.long() * ids[:, None, None]).sum(dim=0) if len(ids) else torch.zeros(masks.shape[1:])
    object_map = object_map.long().numpy()
    object_map[sample.ignore[frame].numpy() & (object_map == 0)] = VOID_VALUE
    return object_map.astype(np.uint8)


def write_davis_results(samples: Iterable[Sample], out_dir: str | Path) -> Path:
    """Writes predicted object masks as DAVIS palette PNGs `<out_dir>/<seq>/<frame>.png`."""
    out_dir = Path(out_dir)
    palette = davis_palette()
    for sample in samples:
        check_sample(sample, out_dir)
        for frame, stem in enumerate(_frame_stems(sample)):
            path = out_dir / str(sample.sample_id) / f"{stem}.png"
            save_png(object_map_from_sample(sample, frame, str(path)), path, palette=palette)
    return out_dir


def write_davis(samples: Iterable[Sample], root: str | Path, split: str = "val", resolution: str = "480p") -> Path:
    """Writes ground-truth video samples in the DAVIS-2017 layout (frames, palette annotations, split list)."""
    root = Path(root)
    names = []
    annotations = root / "Annotations" / resolution
    for sample in samples:
        check_sample(sample, root)
        names.append(str(sample.sample_id))
        write_davis_results([sample], annotations)
        for frame, stem in enumerate(_frame_stems(sample)):
            save_image(sample.frames[frame], root / "JPEGImages" / resolution / str(sample.sample_id) / f"{stem}.jpg")
    split_file = root / "ImageSets" / "2017" / f"{split}.txt"
    split_file.parent.mkdir(parents=True, exist_ok=True)
    split_file.write_text("".join(f"{n}\n" for n in names))
    return root


def _frame_stems(sample: Sample) -> list[str]:
    if sample.frame_names:
        return [Path(name).stem for name in sample.frame_names]
    return [f"{index:05d}" for index in range(sample.num_frames)]
