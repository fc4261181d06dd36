"""The typed values that flow through a task's hooks: request -> query plan -> (model) -> result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omg_core.task_info import Modality, TaskOptions

if TYPE_CHECKING:  # only annotations: plugins import these types at discovery, which must not load torch
    import torch


@dataclass
class Prompts:
    """User prompts for interactive tasks, in input-image pixel coordinates. Each of the N prompts becomes one query.

    Attributes:
      points: (N, P, 2) float (x, y), or None.
      point_labels: (N, P) int64: 1 positive, 0 negative, -1 padding (ignored), or None.
      boxes: (N, 4) float (x0, y0, x1, y1), or None.
      masks: (N, H, W) bool coarse masks, or None.
    """

    points: torch.Tensor | None = None
    point_labels: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    masks: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if (self.points is None) != (self.point_labels is None):
            raise ValueError("points and point_labels come together: give both or neither")
        if self.points is not None and self.point_labels is not None:
            if self.points.ndim != 3 or self.points.shape[-1] != 2:
                raise ValueError(f"points must be (N, P, 2) (x, y) pixels, got shape {tuple(self.points.shape)}")
            if self.point_labels.shape != self.points.shape[:2]:
                raise ValueError(
                    f"point_labels must be (N, P) = {tuple(self.points.shape[:2])}, got {tuple(self.point_labels.shape)}"
                )
        if self.boxes is not None and (self.boxes.ndim != 2 or self.boxes.shape[-1] != 4):
            raise ValueError(f"boxes must be (N, 4) (x0, y0, x1, y1) pixels, got shape {tuple(self.boxes.shape)}")
        counts = {len(t) for t in (self.points, self.boxes, self.masks) if t is not None}
        if len(counts) > 1:
            raise ValueError(f"points, boxes and masks must describe the same number of prompts, got {sorted(counts)}")

    @property
    def kinds(self) -> tuple[str, ...]:
        present = (("points", self.points), ("boxes", self.boxes), ("masks", self.masks))
        return tuple(kind for kind, value in present if value is not None)

    @property
    def num_prompts(self) -> int:
        for value in (self.points, self.boxes, self.masks):
            if value is not None:
                return len(value)
        return 0


@dataclass
class TaskRequest:
    """Everything the user asked for one sample.

    Attributes:
      task: canonical task name.
      modality: 'image' or 'video'.
      pixels: (3, H, W) uint8 for an image, (T, 3, H, W) uint8 for a video clip, at the size it was read (before the
        test-time resize: `pixels.shape[-2:]` is the original size results are reported at).
      source: where the pixels came from (file or folder), used to name outputs.
      prompts: interactive prompts, or None.
      vocabulary: class names for open-vocabulary tasks (synonyms separated by ","), or None to use the model's
        default vocabulary.
      thing_classes: one flag per vocabulary class, True for countable things, False for stuff (None: all things).
      seen_classes: one flag per vocabulary class, True for classes the model was trained on, overriding the
        word-overlap rule the open-vocabulary ensemble uses by default (None: the rule decides).
      options: the task's options (its ``TaskInfo.options`` model), validated before the model was built.
      frame_names: for a video, the names of its frames in order (for writers), or None.
    """

    task: str
    modality: Modality
    pixels: torch.Tensor
    source: Path | None = None
    prompts: Prompts | None = None
    vocabulary: tuple[str, ...] | None = None
    options: TaskOptions = field(default_factory=TaskOptions)
    thing_classes: tuple[bool, ...] | None = None
    seen_classes: tuple[bool, ...] | None = None
    frame_names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class VideoTubes:
    """How OMG-Seg's video inference cuts a video into tubes decoded one at a time, whose queries are matched to the
    previous tube's so that a query slot is one track (values of the official YouTube-VIS configs by default; VIPSeg
    uses clip_size 2).

    Attributes:
      clip_size: frames per tube.
      clip_size_small: frames per tube for videos of at most ``small_clip_thr`` frames.
      small_clip_thr: see ``clip_size_small``.
      overlap: frames shared by consecutive tubes (0 in every official config).
    """

    clip_size: int = 5
    clip_size_small: int = 3
    small_clip_thr: int = 15
    overlap: int = 0

    def __post_init__(self) -> None:
        if min(self.clip_size, self.clip_size_small) < 1:
            raise ValueError(f"tube sizes must be >= 1, got clip_size={self.clip_size}, "
                             f"clip_size_small={self.clip_size_small}")
        if not 0 <= self.overlap < min(self.clip_size, self.clip_size_small):
            raise ValueError(f"overlap must be in [0, tube size), got {self.overlap}")


@dataclass
class QueryPlan:
    """What the shared decoder must run for a request, produced by ``omg_encode_queries``.

    Attributes:
      learned_queries: run all of the model's learned object queries (True), or none (False: prompt-only tasks). There
        is no subset: learned queries attend to each other, so running some would change them; and a task cannot know
        how many a model has (32 for omg-tiny, 300 for ConvNeXt-L), so it does not say a number.
      prompts: prompts to encode into additional queries, or None.
      vocabulary: the class names the classifier scores against (None keeps the model's default vocabulary).
      thing_classes: (K,) flags, True for things, for the plan's vocabulary (None: all things; ignored without a
        vocabulary, whose flags come with the model's default vocabulary).
      seen_classes: (K,) bool, which vocabulary classes were seen in training (for the open-vocabulary ensemble).
      open_vocabulary: apply the open-vocabulary ensemble (FC-CLIP / OMG-Seg) with the frozen CLIP classifier; with
        ``seen_classes`` None, the predictor derives them by OMG-Seg's word-overlap rule against the vocabulary the
        model was trained on. A model whose ``open_vocabulary.ensemble`` is "always" (omg-tiny) ensembles every
        plan, as if this were True.
      tubes: how a video is cut into tubes for the decoder (OMG-Seg's MinVIS inference); None: the defaults.
    """

    learned_queries: bool = True
    prompts: Prompts | None = None
    vocabulary: tuple[str, ...] | None = None
    thing_classes: tuple[bool, ...] | None = None
    seen_classes: torch.Tensor | None = None
    open_vocabulary: bool = False
    tubes: VideoTubes | None = None


@dataclass
class TaskResult:
    """A task's decoded result for one sample. Tasks put their typed payload in ``data``.

    Attributes:
      task: canonical task name.
      source: the sample it belongs to.
      data: task-specific typed payload (for example a panoptic id map and its segment list).
      frame_names: for a video, the name (stem) of each frame, in order, so writers name per-frame files after the
        input's frames (``00000``, ``00005``, ... of a frame folder); None for images, or to number frames from 0.
      prompts: the prompts the result answers (interactive tasks), for overlays to draw; None otherwise.
    """

    task: str
    source: Path | None
    data: Any
    frame_names: tuple[str, ...] | None = None
    prompts: Prompts | None = None


# -- video as a stream (``omg run --video-mode stream``) ----------------------------------------------------------


@dataclass
class VideoChunk:
    """One tube of a streamed video, decoded by the model, as a stream decoder receives it.

    Attributes:
      first_frame: the video frame index of the chunk's first frame.
      pixels: (t, 3, H, W) uint8 the chunk's frames at the input size.
      outputs: the model's outputs for the chunk, like a whole video's (batch axis of 1): ``mask_logits``
        1 x Q x t x h x w with the queries permuted onto the track slots (slot q is one object through the video);
        ``class_logits`` 1 x Q x (K + 1) averaged over the tubes SO FAR (the open-vocabulary ensemble applied to
        features pooled over the frames so far); they become the whole video's only on the last chunk.
      frame_names: the stems of the chunk's frames.
      is_last: no frames follow; ``outputs.class_logits`` is then the average over the whole video.
    """

    first_frame: int
    pixels: torch.Tensor
    outputs: Any
    frame_names: tuple[str, ...]
    is_last: bool


class VideoStreamDecoder:
    """Decodes one video tube by tube, so results are written while the video is read (subclass it in a task plugin
    and return one from ``omg_open_video_stream``).

    ``omg run --video-mode stream`` calls :meth:`decode_chunk` once per tube in video order and :meth:`finish` once
    after the last; each returned result goes to the writer's ``write_chunk`` / ``finish_video``. Keep only small
    running state between calls (sums, counts), never the frames or masks, so memory does not grow with the video.
    """

    def decode_chunk(self, chunk: VideoChunk) -> TaskResult:
        """The result for the chunk's frames: a ``TaskResult`` whose ``data`` covers exactly those frames and whose
        ``frame_names`` are ``chunk.frame_names``.

        What ``data`` is depends on the family, because the built-in streaming writers expect it: semantic and
        panoptic tasks return a ``SemanticVideo`` / ``PanopticVideo`` of the chunk's t frames (final for those
        frames); an instances task cannot know its tracks before the end, so it returns ``TrackFrames`` (every query
        slot's masks of these frames as RLEs, plus the best tracks so far for overlays) and :meth:`finish` returns
        the ``TrackSelection`` (which slots are the tracks). ``omg_core.inference.video_stream`` keeps that state for
        you (``omg_tasks/video_instance.py`` uses it)."""
        raise NotImplementedError

    def finish(self) -> TaskResult | None:
        """What can only be decided once the whole video is seen (an instances task's ``TrackSelection``), or None
        (semantic and panoptic tasks)."""
        return None
