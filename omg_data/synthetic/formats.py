"""The dataset formats the shapes world writes (a module of its own so that `omg data --help` imports no torch)."""

from __future__ import annotations

IMAGE_FORMATS = ("coco-panoptic", "coco-instances", "coco-sam", "semantic", "ade20k", "cityscapes")
VIDEO_FORMATS = ("youtube-vis", "vipseg", "vspw", "davis")
FORMATS = IMAGE_FORMATS + VIDEO_FORMATS
