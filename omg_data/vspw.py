"""VSPW video semantic segmentation: `data/<video>/origin/<frame>.jpg` + `data/<video>/mask/<frame>.png`.

Ground-truth masks store class k (0..123) as k + 1, with 0 = "others" and 255 = void, both ignored by
the VSPW mIoU / VC evaluators (the ADE20K `reduce_zero_label` convention); `<split>.txt` lists the videos
of a split. Predictions for those evaluators are `<out>/<video>/<frame>.png` holding the class index k
itself (0..123).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from omg_data.errors import DataError
from omg_data.image_io import check_size, load_image, load_label_png, save_image, save_png
from omg_data.sample import CategoryList, Sample, check_sample
from omg_data.semantic_png import (
    IGNORE_VALUE,
    class_map_from_sample,
    decode_semantic,
    encode_semantic,
    segments_from_class_maps,
    write_semantic_png,
)


def read_vspw(
    root: str | Path, split: str, categories: CategoryList, reduce_zero_label: bool = True
) -> Iterator[Sample]:
    """Reads a VSPW split, one video sample at a time.

    Arguments:
      root: the VSPW folder holding `data/` and `<split>.txt`.
      split: "train", "val" or "test".
      categories: the dataset's categories (ids are the class indices k).
      reduce_zero_label: masks store k + 1 with 0 = "others" (the VSPW release); False for masks that
        already hold k.
    Returns:
      video Samples with one segment per class present in the clip (instance id = class id + 1).
    Raises:
      DataError for a missing split file or video, mask/frame count or name mismatches, unknown
      label values and missing/corrupt/mis-sized files.
    """
    root = Path(root)
    split_file = root / f"{split}.txt"
    if not split_file.is_file():
        raise DataError("split list not found; VSPW ships train.txt, val.txt and test.txt in its root", split_file)
    videos = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
    for line, video in enumerate(videos, start=1):
        yield read_vspw_video(
            root / "data" / video, categories, f"{split_file.name}:{line} ({video})", reduce_zero_label
        )


def read_vspw_video(video_dir: Path, categories: CategoryList, record: str, reduce_zero_label: bool = True) -> Sample:
    """Reads one VSPW video folder (origin/ + mask/) into a Sample."""
    image_files = sorted((video_dir / "origin").glob("*.jpg"))
    mask_files = sorted((video_dir / "mask").glob("*.png"))
    if not image_files:
        raise DataError("no frames in origin/; check the video name and the dataset root", video_dir, record)
    if len(mask_files) != len(image_files):
        raise DataError(
            f"{len(mask_files)} masks but {len(image_files)} frames; every frame needs one mask", video_dir, record
        )
    frames, class_maps = [], []
    for image_file, mask_file in zip(image_files, mask_files, strict=True):
        if image_file.stem != mask_file.stem:
            raise DataError(
                f"mask {mask_file.name} pairs with frame {image_file.name}; names must match", mask_file, record
            )
        frame = load_image(image_file, record)
        label = load_label_png(mask_file, record)
        check_size(label.shape[:2], tuple(frame.shape[-2:]), mask_file, record)
        frames.append(frame)
        class_maps.append(decode_semantic(label, categories, reduce_zero_label, mask_file, record))
    return Sample(
        frames=torch.stack(frames),
        categories=categories,
        sample_id=video_dir.name,
        frame_names=[f.name for f in image_files],
        is_video=True,
        **segments_from_class_maps(np.stack(class_maps), categories),
    )


def write_vspw(samples: Iterable[Sample], root: str | Path, split: str | None = None, with_images: bool = True) -> Path:
    """Writes video samples in the VSPW layout (and, with `split`, the split list).

    For predictions pass `with_images=False`, `split=None`: only `data/<video>/mask/<frame>.png`
    is written; `write_vspw_predictions` writes the flat `<video>/<frame>.png` evaluator layout.
    """
    root = Path(root)
    videos = []
    for sample in samples:
        check_sample(sample, root)
        video = str(sample.sample_id)
        videos.append(video)
        for frame, name in enumerate(_frame_stems(sample)):
            write_semantic_png(
                sample, root / "data" / video / "mask" / f"{name}.png", frame=frame, reduce_zero_label=True
            )
            if with_images:
                save_image(sample.frames[frame], root / "data" / video / "origin" / f"{name}.jpg")
    if split is not None:
        (root / f"{split}.txt").write_text("".join(f"{v}\n" for v in videos))
    return root


def write_vspw_predictions(samples: Iterable[Sample], out_dir: str | Path) -> Path:
    """Writes predicted video semantic maps as `<out_dir>/<video>/<frame>.png` (VSPW evaluator input).

    Pixels hold the class index k (not k + 1); pixels no segment covers get 255.
    """
    out_dir = Path(out_dir)
    for sample in samples:
        check_sample(sample, out_dir)
        for frame, name in enumerate(_frame_stems(sample)):
            path = out_dir / str(sample.sample_id) / f"{name}.png"
            class_map = class_map_from_sample(sample, frame, str(path))
            unassigned = int((class_map == IGNORE_VALUE).sum())
            if unassigned:
                # the VSPW scripts index their confusion matrix with the prediction: every pixel needs a class
                raise DataError(
                    f"prediction leaves {unassigned} pixels of frame {frame} without a class; VSPW evaluators need"
                    " a class index at every pixel (assign them, e.g. to the highest-scoring class)",
                    path,
                    f"sample {sample.sample_id!r}",
                )
            save_png(encode_semantic(class_map, reduce_zero_label=False), path)
    return out_dir


def _frame_stems(sample: Sample) -> list[str]:
    if sample.frame_names:
        return [Path(name).stem for name in sample.frame_names]
    return [f"{index:08d}" for index in range(sample.num_frames)]
