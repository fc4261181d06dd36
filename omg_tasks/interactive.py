"""The interactive task (int): one class-agnostic mask per point or box prompt (SAM-style)."""

from omg_core.task_info import TaskInfo
from omg_tasks._file_evaluators import INTERACTIVE_JSON
from omg_tasks._metric_binding import bind_metric
from omg_tasks._placeholder import PlaceholderTask

plugin = PlaceholderTask(
    TaskInfo(
        name="interactive",
        aliases=("int",),
        summary="one class-agnostic mask per point or box prompt (SAM-style)",
        modality="image",
        prompt_kinds=("points", "boxes"),
        vocabulary="closed",
        metrics=("mIoU@1click", "mIoU@box", "NoC@85", "NoC@90"),
        result_family="prompt-masks",
        output_formats=("coco-results-json",),
        file_evaluator="interactive-json",
        implemented=False,
    ),
    bind_metric("interactive", "omg_eval.interactive:InteractiveSegmentation"),
    file_evaluators=(INTERACTIVE_JSON,),
)
