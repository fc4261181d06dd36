"""The video-semantic task (vss): a class label for every pixel of every frame."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from omg_core.task_info import TaskInfo
from omg_core.task_io import QueryPlan, TaskRequest
from omg_tasks._builtin import BuiltinTask, VideoOptions, class_names, to_input_size, track_of
from omg_tasks._file_evaluators import VSPW
from omg_tasks._metric_binding import bind_metric
from omg_tasks._video_stream import FramewiseStream

if TYPE_CHECKING:
    from omg_core.model.outputs import OMGOutputs
    from omg_core.results import SemanticVideo


class VideoSemanticOptions(VideoOptions):
    clip_size: int = Field(2, ge=1, description="frames per tube (the official VIPSeg setting, 2)")


def encode(request: TaskRequest) -> QueryPlan:
    options: VideoSemanticOptions = request.options  # type: ignore[assignment]
    return QueryPlan(learned_queries=True, tubes=options.tubes())


def decode(request: TaskRequest, plan: QueryPlan, outputs: OMGOutputs) -> SemanticVideo:
    """Mask2Former's semantic inference per frame on the tracked queries (class logits averaged over the video)."""
    from omg_core.inference.semantic import semantic_labels
    from omg_core.inference.video import video_semantic

    return video_semantic(track_of(outputs), to_input_size(request, outputs), semantic_labels,
                          class_names(request, plan, outputs))



def stream(request: TaskRequest, plan: QueryPlan) -> FramewiseStream:
    """Long videos tube by tube: each tube's frames fused with the class logits averaged over the tubes so far."""
    return FramewiseStream(INFO.name, request, plan, decode)


INFO = TaskInfo(
    name="video-semantic",
    aliases=("vss",),
    summary="a class label for every pixel of every frame",
    modality="video",
    prompt_kinds=(),
    vocabulary="closed",
    metrics=("mIoU", "VC8", "VC16"),
    options=VideoSemanticOptions,
    result_family="semantic",
    output_formats=("vspw-png",),
    file_evaluator="vspw",
)

plugin = BuiltinTask(INFO, encode, decode,
                     bind_metric("video-semantic", "omg_eval.video_semantic:VideoSemanticMetric"),
                     file_evaluators=(VSPW,), stream=stream)
