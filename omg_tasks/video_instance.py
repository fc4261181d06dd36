"""The video-instance task (vis): object tracks: a mask per frame, a class and a score per track."""

from omg_core.task_info import TaskInfo
from omg_tasks._file_evaluators import VOS, YOUTUBE_VIS
from omg_tasks._metric_binding import bind_metric
from omg_tasks._placeholder import PlaceholderTask

plugin = PlaceholderTask(
    TaskInfo(
        name="video-instance",
        aliases=("vis",),
        summary="object tracks: a mask per frame, a class and a score per track",
        modality="video",
        prompt_kinds=(),
        vocabulary="closed",
        metrics=("AP", "AP50", "AP75", "AR1", "AR10"),
        result_family="instances",
        output_formats=("youtube-vis-json",),
        file_evaluator="youtube-vis",
        implemented=False,
    ),
    bind_metric("video-instance", "omg_eval.video_instance:YouTubeVISMetric"),
    file_evaluators=(YOUTUBE_VIS, VOS),
)
