"""The ov-vis task: object tracks classified over any class names you give (open vocabulary)."""

from __future__ import annotations

from omg_core.task_info import TaskInfo
from omg_core.task_io import QueryPlan, TaskRequest
from omg_tasks import video_instance
from omg_tasks._builtin import BuiltinTask, VideoInstanceOptions, vocabulary_plan
from omg_tasks._metric_binding import bind_metric
from omg_tasks._video_stream import InstanceStream


def encode(request: TaskRequest) -> QueryPlan:
    options: VideoInstanceOptions = request.options  # type: ignore[assignment]
    # the ensemble with the frozen CLIP classifier is applied on whole tracks (mask pooling over every frame)
    return vocabulary_plan(request, tubes=options.tubes())



def stream(request: TaskRequest, plan: QueryPlan) -> InstanceStream:
    """Long videos tube by tube; the tracks (chosen from the whole video's classes) equal the offline ones."""
    options: VideoInstanceOptions = request.options  # type: ignore[assignment]
    return InstanceStream(INFO.name, request, plan, options.max_per_video)


INFO = TaskInfo(
    name="ov-vis",
    aliases=(),
    summary="object tracks classified over any class names you give (open vocabulary)",
    modality="video",
    prompt_kinds=(),
    vocabulary="open",
    metrics=("AP", "AP50", "AP75", "AR1", "AR10"),
    options=VideoInstanceOptions,
    result_family="instances",
    output_formats=("youtube-vis-json",),
    file_evaluator="youtube-vis",
)

plugin = BuiltinTask(INFO, encode, video_instance.decode, bind_metric("ov-vis", "omg_eval.video_instance:YouTubeVISMetric"),
                     stream=stream)
