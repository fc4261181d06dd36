"""The video-semantic task (vss): a class label for every pixel of every frame."""

from omg_core.task_info import TaskInfo
from omg_tasks._file_evaluators import VSPW
from omg_tasks._metric_binding import bind_metric
from omg_tasks._placeholder import PlaceholderTask

plugin = PlaceholderTask(
    TaskInfo(
        name="video-semantic",
        aliases=("vss",),
        summary="a class label for every pixel of every frame",
        modality="video",
        prompt_kinds=(),
        vocabulary="closed",
        metrics=("mIoU", "VC8", "VC16"),
        result_family="semantic",
        output_formats=("vspw-png",),
        file_evaluator="vspw",
        implemented=False,
    ),
    bind_metric("video-semantic", "omg_eval.video_semantic:VideoSemanticMetric"),
    file_evaluators=(VSPW,),
)
