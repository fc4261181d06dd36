"""The ov-vis task: object tracks classified over any class names you give."""

from omg_core.task_info import TaskInfo
from omg_tasks._metric_binding import bind_metric
from omg_tasks._placeholder import PlaceholderTask

plugin = PlaceholderTask(
    TaskInfo(
        name="ov-vis",
        aliases=(),
        summary="object tracks classified over any class names you give",
        modality="video",
        prompt_kinds=(),
        vocabulary="open",
        metrics=("AP", "AP50", "AP75", "AR1", "AR10"),
        result_family="instances",
        output_formats=("youtube-vis-json",),
        file_evaluator="youtube-vis",
        implemented=False,
    ),
    bind_metric("ov-vis", "omg_eval.video_instance:YouTubeVISMetric"),
)
