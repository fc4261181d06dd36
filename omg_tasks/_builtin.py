"""What the ten built-in tasks share: a plugin object built from a TaskInfo and two functions, and the steps every
decode takes (class names and thing flags of the outputs, resizing masks to the input, video tube options).

A built-in task module reads like a third-party plugin: a TaskInfo, an encode function (request -> QueryPlan) and a
decode function (request, plan, outputs -> typed result). Nothing here is private API: the functions use only
``omg_core`` and ``omg_core.inference``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from omg_core.file_evaluators import FileEvaluator
from omg_core.hookspecs import hookimpl
from omg_core.task_info import TaskInfo, TaskOptions
from omg_core.task_io import QueryPlan, TaskRequest, TaskResult, VideoStreamDecoder, VideoTubes
from omg_tasks._metric_binding import MetricFactory

if TYPE_CHECKING:
    import torch

    from omg_core.model.outputs import OMGOutputs

Encoder = Callable[[TaskRequest], QueryPlan]
Decoder = Callable[[TaskRequest, QueryPlan, "OMGOutputs"], Any]
StreamFactory = Callable[[TaskRequest, QueryPlan], VideoStreamDecoder]


class BuiltinTask:
    """Task plugin object: the task hooks from a TaskInfo, an encoder, a decoder, a metric factory and (video tasks)
    a stream decoder factory."""

    def __init__(
        self,
        info: TaskInfo,
        encode: Encoder,
        decode: Decoder,
        metric_factory: MetricFactory,
        file_evaluators: Sequence[FileEvaluator] = (),
        stream: StreamFactory | None = None,
    ) -> None:
        self.info = info
        self._stream = stream
        self._encode = encode
        self._decode = decode
        self._metric_factory = metric_factory
        self.file_evaluators = list(file_evaluators)

    @hookimpl
    def omg_task_info(self) -> TaskInfo:
        return self.info

    @hookimpl
    def omg_encode_queries(self, request: TaskRequest) -> QueryPlan:
        return self._encode(request)

    @hookimpl
    def omg_decode_outputs(self, request: TaskRequest, plan: QueryPlan, outputs: OMGOutputs) -> TaskResult:
        return TaskResult(task=self.info.name, source=request.source, data=self._decode(request, plan, outputs),
                          frame_names=request.frame_names, prompts=request.prompts)

    @hookimpl
    def omg_open_video_stream(self, request: TaskRequest, plan: QueryPlan) -> VideoStreamDecoder | None:
        return self._stream(request, plan) if self._stream is not None else None

    @hookimpl
    def omg_create_metric(self, options: dict[str, Any]) -> Any:
        return self._metric_factory(options)

    @hookimpl
    def omg_file_evaluators(self) -> list[FileEvaluator]:
        return self.file_evaluators


# -- options shared by several tasks ------------------------------------------------------------------------------
class PanopticOptions(TaskOptions):
    """OMG-Seg's panoptic fusion settings (the ConvNeXt-L evaluation configs' values)."""

    object_mask_thr: float = Field(0.0, ge=0, le=1, description="class score a query must exceed to be kept")
    iou_thr: float = Field(0.8, ge=0, le=1,
                           description="share of a query's mask it must keep after overlaps to become a segment")
    filter_low_score: bool = Field(True, description="paint only pixels where the query's own mask probability >= 0.5")


class InstanceOptions(TaskOptions):
    max_per_image: int = Field(100, ge=1, description="detections kept per image (top scores over queries x classes)")


class VideoOptions(TaskOptions):
    """How the video is cut into tubes (OMG-Seg's MinVIS inference)."""

    clip_size: int = Field(5, ge=1, description="frames per tube (official: 5 for YouTube-VIS, 2 for VIPSeg)")
    clip_size_small: int = Field(3, ge=1, description="frames per tube for short videos")
    small_clip_thr: int = Field(15, ge=0, description="videos of at most this many frames use clip_size_small")

    def tubes(self) -> VideoTubes:
        return VideoTubes(self.clip_size, self.clip_size_small, self.small_clip_thr)


class VideoPanopticOptions(VideoOptions, PanopticOptions):
    clip_size: int = Field(2, ge=1, description="frames per tube (official VIPSeg setting: 2)")


class VideoInstanceOptions(VideoOptions):
    max_per_video: int = Field(100, ge=1, description="tracks kept per video (top scores over queries x classes)")


# -- decode steps -------------------------------------------------------------------------------------------------
def class_names(request: TaskRequest, plan: QueryPlan, outputs: OMGOutputs) -> tuple[str, ...]:
    """The K names the class columns stand for: the predictor's, else the plan's vocabulary (first synonyms), else
    placeholders (hand-made outputs)."""
    if outputs.class_names is not None:
        return tuple(outputs.class_names)
    if plan.vocabulary is not None:
        return tuple(text.split(",")[0].strip() for text in plan.vocabulary)
    return tuple(f"class {index}" for index in range(outputs.class_logits.shape[-1] - 1))


def thing_flags(plan: QueryPlan, outputs: OMGOutputs) -> torch.Tensor:
    """(K,) bool thing flags: the predictor's, else the plan's, else every class a thing."""
    import torch

    flags = outputs.thing_classes if outputs.thing_classes is not None else plan.thing_classes
    if flags is None:
        return torch.ones(outputs.class_logits.shape[-1] - 1, dtype=torch.bool)
    return torch.tensor(flags, dtype=torch.bool)


def to_input_size(request: TaskRequest, outputs: OMGOutputs) -> Callable[[torch.Tensor], torch.Tensor]:
    """Resizes (N, h, w) stride-4 mask logits to the request's pixels as OMG-Seg does: upsample to the padded input,
    crop the padding, resize from the test size to the original size (all bilinear)."""
    from omg_core.postprocess import masks_to_original_size

    original = (int(request.pixels.shape[-2]), int(request.pixels.shape[-1]))

    def resize(mask_logits: torch.Tensor) -> torch.Tensor:
        return masks_to_original_size(mask_logits.float().cpu(), outputs.padded_size, outputs.image_size, original)

    return resize


def vocabulary_plan(request: TaskRequest, **fields: Any) -> QueryPlan:
    """The plan of an open-vocabulary task: the request's vocabulary and thing flags, the ensemble on."""
    import torch

    seen = torch.tensor(request.seen_classes, dtype=torch.bool) if request.seen_classes is not None else None
    return QueryPlan(vocabulary=request.vocabulary, thing_classes=request.thing_classes, seen_classes=seen,
                     open_vocabulary=True, **fields)


def track_of(outputs: OMGOutputs) -> Any:
    """The tracked video of the predictor's video outputs as `omg_core.inference.video.TrackOutputs`: per query
    slot (a track) class logits averaged over tubes, mask logits (Q, T, h, w)."""
    from omg_core.inference.video import TrackOutputs

    if outputs.num_frames == 0 or outputs.mask_logits.dim() != 5:
        raise ValueError("a video task needs the outputs of a video (mask_logits 1 x Q x T x h x w)")
    return TrackOutputs(class_logits=outputs.class_logits[0].float().cpu(), iou_logits=outputs.iou_logits[0].float().cpu(),
                        mask_logits=outputs.mask_logits[0], extras={}, num_tubes=1)
