"""The video-instance task (vis): object tracks, a mask per frame, a class and a score per track."""

from __future__ import annotations

from typing import TYPE_CHECKING

from omg_core.task_info import TaskInfo
from omg_core.task_io import QueryPlan, TaskRequest
from omg_tasks._builtin import BuiltinTask, VideoInstanceOptions, class_names, thing_flags, to_input_size, track_of
from omg_tasks._file_evaluators import VOS, YOUTUBE_VIS
from omg_tasks._metric_binding import bind_metric
from omg_tasks._video_stream import InstanceStream

if TYPE_CHECKING:
    from omg_core.model.outputs import OMGOutputs
    from omg_core.results import Tracks


def encode(request: TaskRequest) -> QueryPlan:
    options: VideoInstanceOptions = request.options  # type: ignore[assignment]
    return QueryPlan(learned_queries=True, tubes=options.tubes())


def decode(request: TaskRequest, plan: QueryPlan, outputs: OMGOutputs) -> Tracks:
    """Each tracked query (class logits averaged over the video) is one candidate track; OMG-Seg's instance
    inference picks the best (query, class) pairs."""
    from omg_core.inference.video import video_instances

    options: VideoInstanceOptions = request.options  # type: ignore[assignment]
    return video_instances(track_of(outputs), to_input_size(request, outputs), thing_flags(plan, outputs),
                           options.max_per_video, class_names(request, plan, outputs))



def stream(request: TaskRequest, plan: QueryPlan) -> InstanceStream:
    """Long videos tube by tube; the tracks (chosen from the whole video's classes) equal the offline ones."""
    options: VideoInstanceOptions = request.options  # type: ignore[assignment]
    return InstanceStream(INFO.name, request, plan, options.max_per_video)


INFO = TaskInfo(
    name="video-instance",
    aliases=("vis",),
    summary="object tracks: a mask per frame, a class and a score per track",
    modality="video",
    prompt_kinds=(),
    vocabulary="closed",
    metrics=("AP", "AP50", "AP75", "AR1", "AR10"),
    options=VideoInstanceOptions,
    result_family="instances",
    output_formats=("youtube-vis-json",),
    file_evaluator="youtube-vis",
)

plugin = BuiltinTask(INFO, encode, decode, bind_metric("video-instance", "omg_eval.video_instance:YouTubeVISMetric"),
                     file_evaluators=(YOUTUBE_VIS, VOS), stream=stream)
