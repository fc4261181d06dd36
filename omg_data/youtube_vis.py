"""YouTube-VIS 2019 / 2021: one JSON of videos (frame file lists) and tracks with per-frame segmentations.

A track's `segmentations` has one entry per frame: an RLE (or polygon) where the object is visible,
`null` where it is absent. Frames live under `JPEGImages/<file_names[i]>`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
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
from omg_data.schemas import VideoAnnotation, YouTubeVisFile, YouTubeVisResult


def read_youtube_vis(json_path: str | Path, image_dir: str | Path) -> Iterator[Sample]:
    """Reads a YouTube-VIS dataset lazily, one video sample at a time.

    Arguments:
      json_path: e.g. `train.json` / `instances.json` of YouTube-VIS 2019 or 2021.
      image_dir: the `JPEGImages` folder the `file_names` are relative to.
    Returns:
      an iterator of video Samples (T frames); each track is a segment whose mask is empty in frames
      where the object is absent. Instance ids are the annotation ids. Videos of a test split (no
      annotations) yield samples with no segments.
    Raises:
      DataError for schema errors, unknown video or category ids, a track whose number of
      segmentations differs from the video's frame count, malformed segmentations and
      missing/corrupt/mis-sized frames.
    """
    json_path, image_dir = Path(json_path), Path(image_dir)
    data: YouTubeVisFile = load_validated(json_path, YouTubeVisFile)
    categories = categories_from_json(data.categories, json_path)
    check_unique([video.id for video in data.videos], "videos", json_path)
    check_unique([track.id for track in data.annotations], "annotations", json_path)
    videos = {video.id: video for video in data.videos}
    tracks: dict[int, list[tuple[int, VideoAnnotation]]] = defaultdict(list)
    for index, track in enumerate(data.annotations):
        record = f"annotations[{index}] (id={track.id}, video_id={track.video_id})"
        video = videos.get(track.video_id)
        if video is None:
            raise DataError(f"video_id {track.video_id} has no entry in 'videos'", json_path, record)
        if track.category_id not in categories:
            raise DataError(f"unknown category_id {track.category_id}; it is not in 'categories'", json_path, record)
        if len(track.segmentations) != len(video.file_names):
            raise DataError(
                f"track has {len(track.segmentations)} segmentations but video {video.id} has"
                f" {len(video.file_names)} frames; there must be one entry (or null) per frame",
                json_path,
                record,
            )
        tracks[track.video_id].append((index, track))
    for video_index, video in enumerate(data.videos):
        record = f"videos[{video_index}] (id={video.id})"
        if video.length is not None and video.length != len(video.file_names):
            raise DataError(
                f"length is {video.length} but file_names lists {len(video.file_names)} frames", json_path, record
            )
        frames = []
        for name in video.file_names:
            frame = load_image(image_dir / name, record)
            check_size(frame.shape[-2:], (video.height, video.width), image_dir / name, record)
            frames.append(frame)
        masks = []
        for index, track in tracks.get(video.id, []):
            per_frame = []
            for frame_index, segmentation in enumerate(track.segmentations):
                if not segmentation:  # null, or [] (absent as well: ytvoseval tests `if seg`)
                    per_frame.append(np.zeros((video.height, video.width), dtype=bool))
                    continue
                try:
                    per_frame.append(decode_segmentation(segmentation, video.height, video.width))
                except ValueError as error:
                    raise DataError(
                        f"bad segmentation in frame {frame_index}: {error}",
                        json_path,
                        f"annotations[{index}] (id={track.id})",
                    ) from error
            masks.append(np.stack(per_frame))
        video_tracks = [t for _, t in tracks.get(video.id, [])]
        class_ids = [t.category_id for t in video_tracks]
        height, width = video.height, video.width
        yield Sample(
            frames=torch.stack(frames),
            masks=(
                torch.from_numpy(np.stack(masks))
                if masks
                else torch.zeros(0, len(frames), height, width, dtype=torch.bool)
            ),
            class_ids=torch.as_tensor(class_ids, dtype=torch.int64),
            is_thing=torch.as_tensor([categories.by_id(c).is_thing for c in class_ids], dtype=torch.bool),
            instance_ids=torch.as_tensor([t.id for t in video_tracks], dtype=torch.int64),
            is_crowd=torch.as_tensor([bool(t.iscrowd) for t in video_tracks], dtype=torch.bool),
            ignore=torch.zeros(len(frames), height, width, dtype=torch.bool),
            categories=categories,
            sample_id=video.id,
            frame_names=list(video.file_names),
            is_video=True,
        )


def write_youtube_vis(
    samples: Iterable[Sample],
    json_path: str | Path,
    categories: CategoryList | None = None,
    image_dir: str | Path | None = None,
) -> Path:
    """Writes ground-truth video samples as a YouTube-VIS JSON (null where a track is absent).

    Arguments:
      samples: video samples with integer ids; `frame_names` are the paths relative to JPEGImages
        (default `<id>/<index:05d>.jpg`).
      json_path: output JSON.
      categories: defaults to the first sample's.
      image_dir: if given, frames are written there.
    """
    videos, annotations = [], []
    used_ids: set[int] = set()
    for sample in samples:
        categories = categories or sample.categories
        check_sample(sample, json_path, categories)
        clash = used_ids.intersection(sample.instance_ids.tolist())
        if clash:
            raise DataError(
                f"instance ids {sorted(clash)[:5]} of video {sample.sample_id!r} were already used by an"
                " earlier video; YouTube-VIS annotation ids must be unique across the file (renumber"
                " them, e.g. video id * 1000 + k)",
                json_path,
            )
        used_ids.update(sample.instance_ids.tolist())
        names = sample.frame_names or [f"{sample.sample_id}/{index:05d}.jpg" for index in range(sample.num_frames)]
        videos.append(
            {
                "id": sample.sample_id,
                "width": sample.width,
                "height": sample.height,
                "length": sample.num_frames,
                "file_names": names,
            }
        )
        if image_dir is not None:
            for frame, name in zip(sample.frames, names, strict=True):
                save_image(frame, Path(image_dir) / name)
        for index in range(sample.num_segments):
            segmentations, areas, boxes = [], [], []
            for frame in range(sample.num_frames):
                mask = sample.masks[index, frame]
                area = int(mask.sum())
                segmentations.append(encode_mask(mask) if area else None)
                areas.append(float(area) if area else None)
                boxes.append(coco_bbox(mask) if area else None)
            annotations.append(
                {
                    "id": int(sample.instance_ids[index]),
                    "video_id": sample.sample_id,
                    "category_id": int(sample.class_ids[index]),
                    "segmentations": segmentations,
                    "areas": areas,
                    "bboxes": boxes,
                    "iscrowd": int(sample.is_crowd[index]),
                    "height": sample.height,
                    "width": sample.width,
                    "length": sample.num_frames,
                }
            )
    if categories is None:
        raise ValueError("no samples and no categories given: nothing to describe in the JSON")
    write_json({"videos": videos, "annotations": annotations, "categories": categories_json(categories)}, json_path)
    return Path(json_path)


def write_youtube_vis_results(samples: Iterable[Sample], json_path: str | Path) -> Path:
    """Writes predicted tracks as a YouTube-VIS results JSON (the ytvoseval / CodaLab input).

    Each segment becomes {video_id, category_id, score, segmentations}; frames where the track is
    empty get an RLE of an empty mask, which every YouTube-VIS evaluator version accepts.
    """
    results = []
    for sample in samples:
        check_sample(sample, json_path)
        scores = sample.scores if sample.scores is not None else torch.ones(sample.num_segments)
        for index in range(sample.num_segments):
            results.append(
                {
                    "video_id": sample.sample_id,
                    "category_id": int(sample.class_ids[index]),
                    "score": float(scores[index]),
                    "segmentations": [encode_mask(sample.masks[index, frame]) for frame in range(sample.num_frames)],
                }
            )
    write_json(results, json_path)
    return Path(json_path)


def read_youtube_vis_results(json_path: str | Path, categories: CategoryList) -> dict[int, Sample]:
    """Reads a YouTube-VIS results JSON back into prediction samples (no pixels), one per video id.

    Raises:
      DataError for unknown categories or tracks of one video with different frame counts.
    """
    json_path = Path(json_path)
    results: list[YouTubeVisResult] = load_validated(json_path, list[YouTubeVisResult])
    grouped: dict[int, list[tuple[int, YouTubeVisResult]]] = defaultdict(list)
    for index, result in enumerate(results):
        if result.category_id not in categories:
            raise DataError(f"unknown category_id {result.category_id}", json_path, f"[{index}]")
        grouped[result.video_id].append((index, result))
    samples = {}
    for video_id, entries in grouped.items():
        sizes = [s.size for _, r in entries for s in r.segmentations if s is not None]
        if not sizes:
            raise DataError(
                "every segmentation of this video is null; the frame size is unknown", json_path, f"video_id={video_id}"
            )
        height, width = sizes[0]
        length = len(entries[0][1].segmentations)
        masks = []
        for index, result in entries:
            if len(result.segmentations) != length:
                raise DataError(
                    f"track has {len(result.segmentations)} frames, other tracks of video {video_id} have {length}",
                    json_path,
                    f"[{index}]",
                )
            masks.append(
                np.stack(
                    [
                        decode_segmentation(s, height, width)
                        if s is not None
                        else np.zeros((height, width), dtype=bool)
                        for s in result.segmentations
                    ]
                )
            )
        class_ids = [r.category_id for _, r in entries]
        samples[video_id] = Sample(
            frames=torch.zeros(1, 3, 1, 1, dtype=torch.uint8).expand(length, 3, height, width),
            masks=torch.from_numpy(np.stack(masks)),
            class_ids=torch.as_tensor(class_ids, dtype=torch.int64),
            is_thing=torch.as_tensor([categories.by_id(c).is_thing for c in class_ids], dtype=torch.bool),
            instance_ids=torch.arange(1, len(entries) + 1, dtype=torch.int64),
            is_crowd=torch.zeros(len(entries), dtype=torch.bool),
            ignore=torch.zeros(length, height, width, dtype=torch.bool),
            categories=categories,
            sample_id=video_id,
            is_video=True,
            scores=torch.as_tensor([r.score for _, r in entries], dtype=torch.float32),
        )
    return samples
