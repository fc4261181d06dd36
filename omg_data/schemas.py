"""Pydantic models of the annotation files (only the fields the readers use; extra fields are allowed).

Validating a whole file up front turns a malformed record into an error that names the record,
instead of a KeyError deep inside a reader.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class CocoCategory(_Record):
    """A `categories` entry (COCO, panoptic, YouTube-VIS, VIPSeg)."""

    id: int
    name: str
    isthing: int | bool = 1
    color: list[int] | None = None
    supercategory: str | None = None


class ImageInfo(_Record):
    """An `images` entry."""

    id: int | str
    file_name: str
    height: int = Field(gt=0)
    width: int = Field(gt=0)


class RleMask(_Record):
    """An RLE mask: `counts` is a string (compressed) or a list of run lengths (uncompressed)."""

    size: list[int] = Field(min_length=2, max_length=2)
    counts: str | list[int]


# A COCO `segmentation`: polygons (list of coordinate lists) or RLE.
Segmentation = list[list[float]] | RleMask


class PanopticSegment(_Record):
    """One `segments_info` entry; `id` is the segment's colour-encoded id in the PNG (1 .. 256^3 - 1)."""

    id: int = Field(gt=0, lt=256**3)
    category_id: int
    area: int | None = None
    bbox: list[float] | None = None
    iscrowd: int = 0


class PanopticAnnotation(_Record):
    """One image's panoptic annotation: its PNG and the segments in it."""

    image_id: int | str
    file_name: str
    segments_info: list[PanopticSegment]


class CocoPanopticFile(_Record):
    """A COCO panoptic JSON (also ADE20K and Cityscapes panoptic)."""

    images: list[ImageInfo]
    annotations: list[PanopticAnnotation]
    categories: list[CocoCategory]


class InstanceAnnotation(_Record):
    """One COCO instance annotation."""

    id: int
    image_id: int | str
    category_id: int
    segmentation: Segmentation
    iscrowd: int = 0
    area: float | None = None
    bbox: list[float] | None = None


class CocoInstancesFile(_Record):
    """A COCO instances JSON."""

    images: list[ImageInfo]
    annotations: list[InstanceAnnotation]
    categories: list[CocoCategory]


class VideoInfo(_Record):
    """A YouTube-VIS `videos` entry; `file_names` lists the frames in order."""

    id: int
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    length: int | None = None
    file_names: list[str] = Field(min_length=1)


class VideoAnnotation(_Record):
    """A YouTube-VIS track: one segmentation (or null) per frame."""

    id: int
    video_id: int
    category_id: int
    segmentations: list[Segmentation | None]
    iscrowd: int = 0
    areas: list[float | None] | None = None
    bboxes: list[list[float] | None] | None = None


class YouTubeVisFile(_Record):
    """A YouTube-VIS 2019 / 2021 JSON."""

    videos: list[VideoInfo]
    annotations: list[VideoAnnotation] = Field(default_factory=list)  # absent in test splits
    categories: list[CocoCategory]


class VideoFrameInfo(_Record):
    """A frame entry of a VIPSeg-style video."""

    id: int | str
    file_name: str
    height: int = Field(gt=0)
    width: int = Field(gt=0)


class PanopticVideo(_Record):
    """A VIPSeg-style video: its frames in order."""

    video_id: str | int
    images: list[VideoFrameInfo] = Field(min_length=1)


class PanopticVideoAnnotation(_Record):
    """A VIPSeg-style video annotation: one panoptic annotation per frame."""

    video_id: str | int
    annotations: list[PanopticAnnotation]


class PanopticVideoFile(_Record):
    """VIPSeg's COCO-style video panoptic file (as written by its `create_panoptic_video_labels.py`)."""

    videos: list[PanopticVideo]
    annotations: list[PanopticVideoAnnotation]
    categories: list[CocoCategory]


class YouTubeVisResult(_Record):
    """One predicted track of a YouTube-VIS results file."""

    video_id: int
    category_id: int
    score: float
    segmentations: list[RleMask | None]


class CocoResult(_Record):
    """One predicted instance of a COCO results file."""

    image_id: int | str
    category_id: int
    score: float
    segmentation: RleMask


def describe(record: dict[str, Any]) -> str:
    """A short identification of a raw JSON record ("id=3, image_id=17") for error messages."""
    keys = ("id", "image_id", "video_id", "file_name", "name")
    return ", ".join(f"{key}={record[key]!r}" for key in keys if isinstance(record, dict) and key in record)
