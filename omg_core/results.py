"""Typed results of one sample, by family: what a task's decode hook returns and what writers, overlays and metrics read.

A family is a shape of answer that several tasks share (panoptic and ov-seg both give a ``PanopticMap``), so a writer
or visualiser written for a family serves every task that produces it, built-in or plugin. Every result holds CPU
tensors at the original image size and the vocabulary its class indices point into (a constructor given tensors on
another device, e.g. a decode hook's on the model's GPU, moves them to the CPU).

    family            image result       video result (T frames, ids/slots stable over time = tracks)
    semantic          SemanticMap        SemanticVideo
    panoptic          PanopticMap        PanopticVideo
    instances         Instances          Tracks
    prompt-masks      PromptMasks        PromptTracks

Constructors check shapes and dtypes and raise ``ValueError`` naming the field, so a plugin's mistake surfaces where
it is made, not in a writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from omg_core.postprocess import boxes_from_masks

#: Label of unlabelled pixels in semantic maps.
IGNORE_LABEL = -1


def _check(
    value: torch.Tensor, name: str, shape: Sequence[int | None], kinds: str, owner: str, axes: str | None = None
) -> None:
    """Raise ValueError unless ``value`` is a tensor of ``len(shape)`` dims (None = any size) and a dtype kind in
    ``kinds`` ('b' bool, 'i' integer, 'f' floating); ``axes`` names the dims in the message ("(N, T, H, W)")."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{owner}.{name} must be a torch.Tensor, got {type(value).__name__}")
    expected = axes or "x".join("?" if size is None else str(size) for size in shape)
    if value.ndim != len(shape) or any(size is not None and size != actual for size, actual in zip(shape, value.shape)):
        raise ValueError(f"{owner}.{name} must have shape {expected}, got {tuple(value.shape)}")
    kind = "b" if value.dtype == torch.bool else "f" if value.is_floating_point() else "i"
    if kind not in kinds or value.is_complex():
        wanted = {"b": "bool", "i": "integer", "f": "floating"}
        raise ValueError(f"{owner}.{name} must be {' or '.join(wanted[k] for k in kinds)}, got {value.dtype}")


def _to_cpu(result: object, *names: str) -> None:
    """Move the named tensor fields of ``result`` to the CPU: writers, overlays and metrics read results with numpy,
    and a decode hook naturally builds them on the device the model ran on."""
    for name in names:
        value = getattr(result, name)
        if isinstance(value, torch.Tensor) and value.device.type != "cpu":
            setattr(result, name, value.cpu())


def _check_labels(labels: torch.Tensor, vocabulary: Sequence[str] | None, owner: str, allow_ignore: bool) -> None:
    if vocabulary is None or labels.numel() == 0:
        return
    low = IGNORE_LABEL if allow_ignore else 0
    if int(labels.min()) < low or int(labels.max()) >= len(vocabulary):
        raise ValueError(
            f"{owner}: class indices must lie in [{low}, {len(vocabulary) - 1}] (the vocabulary has "
            f"{len(vocabulary)} names), got [{int(labels.min())}, {int(labels.max())}]"
        )


# Image and video classes of a family share a private base (fields and checks) but not a public one, so that
# ``isinstance(result, Instances)`` never holds for a video's Tracks.


@dataclass
class _Semantic:
    family: ClassVar[str] = "semantic"
    _map_ndim: ClassVar[int] = 2
    labels: torch.Tensor
    vocabulary: tuple[str, ...]

    def __post_init__(self) -> None:
        _to_cpu(self, "labels")
        _check(self.labels, "labels", (None,) * self._map_ndim, "i", type(self).__name__,
               "(H, W)" if self._map_ndim == 2 else "(T, H, W)")
        self.vocabulary = tuple(self.vocabulary)
        _check_labels(self.labels, self.vocabulary, type(self).__name__, allow_ignore=True)


@dataclass
class SemanticMap(_Semantic):
    """A class for every pixel of an image.

    labels: (H, W) integer class indices into ``vocabulary``; IGNORE_LABEL (-1) where no class is given.
    vocabulary: the class names.
    """


@dataclass
class SemanticVideo(_Semantic):
    """A class for every pixel of every frame: ``labels`` is (T, H, W), otherwise as SemanticMap."""

    _map_ndim: ClassVar[int] = 3

    @property
    def num_frames(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class Segment:
    """One segment of a panoptic map.

    id: its value in the map (> 0; 0 is void). In a video the same id across frames is one track.
    label: class index into the vocabulary.
    score: confidence in [0, 1].
    is_thing: a countable object (True) or a stuff region (False).
    """

    id: int
    label: int
    score: float
    is_thing: bool


@dataclass
class _Panoptic:
    family: ClassVar[str] = "panoptic"
    segment_ids: torch.Tensor
    segments: tuple[Segment, ...]
    vocabulary: tuple[str, ...]
    _map_ndim: ClassVar[int] = 2

    def __post_init__(self) -> None:
        owner = type(self).__name__
        _to_cpu(self, "segment_ids")
        _check(self.segment_ids, "segment_ids", (None,) * self._map_ndim, "i", owner,
               "(H, W)" if self._map_ndim == 2 else "(T, H, W)")
        self.segments = tuple(self.segments)
        ids = [segment.id for segment in self.segments]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{owner}.segments lists an id twice; each segment id once")
        if any(segment_id <= 0 for segment_id in ids):
            raise ValueError(f"{owner}.segments: ids must be > 0 (0 is void in segment_ids)")
        present = set(torch.unique(self.segment_ids).tolist()) - {0}
        unlisted = sorted(present - set(ids))
        if unlisted:
            raise ValueError(f"{owner}: segment_ids holds ids {unlisted[:5]} that no Segment describes")
        self.vocabulary = tuple(self.vocabulary)
        _check_labels(torch.tensor([s.label for s in self.segments], dtype=torch.int64), self.vocabulary, owner, False)


@dataclass
class PanopticMap(_Panoptic):
    """Non-overlapping segments covering an image, each with a class.

    segment_ids: (H, W) integer segment ids, 0 = void (no segment).
    segments: one Segment per id present in the map, no duplicates (a listed id may have no pixel).
    vocabulary: the class names.
    """


@dataclass
class PanopticVideo(_Panoptic):
    """Panoptic maps of every frame, ``segment_ids`` (T, H, W); a segment id is one track through the video."""

    _map_ndim: ClassVar[int] = 3

    @property
    def num_frames(self) -> int:
        return int(self.segment_ids.shape[0])


@dataclass
class _Instances:
    family: ClassVar[str] = "instances"
    masks: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    vocabulary: tuple[str, ...]
    boxes: torch.Tensor | None = None
    _mask_ndim: ClassVar[int] = 3

    def __post_init__(self) -> None:
        owner = type(self).__name__
        _to_cpu(self, "masks", "scores", "labels", "boxes")
        _check(self.masks, "masks", (None,) * self._mask_ndim, "b", owner,
               "(N, H, W)" if self._mask_ndim == 3 else "(N, T, H, W)")
        count = int(self.masks.shape[0])
        _check(self.scores, "scores", (count,), "f", owner)
        _check(self.labels, "labels", (count,), "i", owner)
        _check_labels(self.labels, self.vocabulary, owner, allow_ignore=False)
        if self.boxes is None:
            # a track's box covers every frame it appears in
            self.boxes = boxes_from_masks(self.masks.any(dim=1) if self._mask_ndim == 4 else self.masks)
        _check(self.boxes, "boxes", (count, 4), "f", owner)
        self.vocabulary = tuple(self.vocabulary)

    def __len__(self) -> int:
        return int(self.masks.shape[0])


@dataclass
class Instances(_Instances):
    """Scored object masks of an image (they may overlap).

    masks: (N, H, W) bool.
    scores: (N,) confidences in [0, 1].
    labels: (N,) class indices into ``vocabulary``.
    vocabulary: the class names.
    boxes: (N, 4) float (x0, y0, x1, y1), x1/y1 exclusive; computed from the masks when not given.
    """


@dataclass
class Tracks(_Instances):
    """Scored objects tracked through a video: ``masks`` (N, T, H, W), one score and class per track; ``boxes``
    cover each track's union over frames."""

    _mask_ndim: ClassVar[int] = 4

    @property
    def num_frames(self) -> int:
        return int(self.masks.shape[1])


@dataclass
class _PromptMasks:
    family: ClassVar[str] = "prompt-masks"
    masks: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor | None = None
    vocabulary: tuple[str, ...] | None = None
    _mask_ndim: ClassVar[int] = 3

    def __post_init__(self) -> None:
        owner = type(self).__name__
        _to_cpu(self, "masks", "scores", "labels")
        _check(self.masks, "masks", (None,) * self._mask_ndim, "b", owner,
               "(N, H, W)" if self._mask_ndim == 3 else "(N, T, H, W)")
        count = int(self.masks.shape[0])
        _check(self.scores, "scores", (count,), "f", owner)
        if (self.labels is None) != (self.vocabulary is None):
            raise ValueError(f"{owner}: labels and vocabulary come together; give both or neither")
        if self.labels is not None:
            self.vocabulary = tuple(self.vocabulary)  # type: ignore[arg-type]
            _check(self.labels, "labels", (count,), "i", owner)
            _check_labels(self.labels, self.vocabulary, owner, allow_ignore=False)

    def __len__(self) -> int:
        return int(self.masks.shape[0])


@dataclass
class PromptMasks(_PromptMasks):
    """One mask per prompt (point or box), in prompt order.

    masks: (P, H, W) bool.
    scores: (P,) predicted mask quality (IoU) in [0, 1].
    labels: (P,) class indices into ``vocabulary`` (open-vocabulary interactive), or None.
    vocabulary: the class names when ``labels`` is given, else None.
    """


@dataclass
class PromptTracks(_PromptMasks):
    """One mask track per prompt through a video (video object segmentation): ``masks`` (P, T, H, W)."""

    _mask_ndim: ClassVar[int] = 4

    @property
    def num_frames(self) -> int:
        return int(self.masks.shape[1])



# -- a video's tracks streamed tube by tube (``omg run --video-mode stream``) ---------------------------------------
# Which query slots become tracks, and their classes and scores, are only known when the whole video has been seen
# (class logits are averaged over it), so a streamed ``Tracks`` arrives as the masks of EVERY slot, a few frames at a
# time (``TrackFrames``, RLE-encoded so that memory stays flat), then the choice (``TrackSelection``).


@dataclass
class TrackFrames:
    """Frames ``first_frame .. first_frame + t - 1`` of every query slot's mask in a streamed video.

    rles: per slot, per frame of the chunk, a COCO RLE (``{"size": [H, W], "counts": str}``) or None where the slot
      has no pixel.
    mask_scores: (Q, t) float32 each slot's mask score per frame (mean probability inside its mask, 0 when empty).
    size: (H, W) of the frames.
    preview_slots, preview_labels, preview_scores: the best tracks by what has been seen so far (class logits
      averaged over the tubes up to this one), for drawing the frames now; the final tracks may differ.
    vocabulary: the class names.
    """

    family: ClassVar[str] = "instances"
    first_frame: int
    rles: list[list[dict | None]]
    mask_scores: torch.Tensor
    size: tuple[int, int]
    preview_slots: torch.Tensor
    preview_labels: torch.Tensor
    preview_scores: torch.Tensor
    vocabulary: tuple[str, ...]

    def __post_init__(self) -> None:
        owner = "TrackFrames"
        _to_cpu(self, "mask_scores", "preview_slots", "preview_labels", "preview_scores")
        frames = len(self.rles[0]) if self.rles else 0
        if any(len(slot) != frames for slot in self.rles):
            raise ValueError(f"{owner}.rles must hold the same number of frames for every slot")
        _check(self.mask_scores, "mask_scores", (len(self.rles), frames), "f", owner)
        count = int(self.preview_slots.shape[0]) if self.preview_slots.ndim == 1 else -1
        _check(self.preview_slots, "preview_slots", (None,), "i", owner)
        _check(self.preview_labels, "preview_labels", (count,), "i", owner)
        _check(self.preview_scores, "preview_scores", (count,), "f", owner)
        _check_labels(self.preview_labels, self.vocabulary, owner, allow_ignore=False)
        self.vocabulary = tuple(self.vocabulary)

    @property
    def num_frames(self) -> int:
        return int(self.mask_scores.shape[1])


@dataclass
class TrackSelection:
    """The tracks of a streamed video, chosen once every frame was seen: track n is query slot ``slots[n]`` (its masks
    came in the ``TrackFrames``), with class ``labels[n]`` and score ``scores[n]``, sorted by score (descending).

    slots, labels: (N,) int64; scores: (N,) float32; boxes: (N, 4) each track's box over all frames.
    num_frames: T; size: (H, W).
    """

    family: ClassVar[str] = "instances"
    slots: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor
    vocabulary: tuple[str, ...]
    num_frames: int
    size: tuple[int, int]

    def __post_init__(self) -> None:
        owner = "TrackSelection"
        _to_cpu(self, "slots", "scores", "labels", "boxes")
        _check(self.slots, "slots", (None,), "i", owner)
        count = int(self.slots.shape[0])
        _check(self.scores, "scores", (count,), "f", owner)
        _check(self.labels, "labels", (count,), "i", owner)
        _check(self.boxes, "boxes", (count, 4), "f", owner)
        _check_labels(self.labels, self.vocabulary, owner, allow_ignore=False)
        self.vocabulary = tuple(self.vocabulary)

    def __len__(self) -> int:
        return int(self.slots.shape[0])


Result = SemanticMap | SemanticVideo | PanopticMap | PanopticVideo | Instances | Tracks | PromptMasks | PromptTracks

#: Every result class, by the family name a writer or visualiser declares it understands.
FAMILIES: dict[str, tuple[type, ...]] = {
    "semantic": (SemanticMap, SemanticVideo),
    "panoptic": (PanopticMap, PanopticVideo),
    "instances": (Instances, Tracks),
    "prompt-masks": (PromptMasks, PromptTracks),
}

#: The video classes of the families (a time axis before H x W), second in each FAMILIES pair.
VIDEO_RESULTS: tuple[type, ...] = tuple(video for _, video in FAMILIES.values())


def pixel_field(result: Result) -> str:
    """The name of a result's per-pixel tensor ("labels", "segment_ids" or "masks"), whose last two dims are the
    input's H x W (and, for a video, the one before them its frames)."""
    if isinstance(result, _Semantic):
        return "labels"
    if isinstance(result, _Panoptic):
        return "segment_ids"
    return "masks"
