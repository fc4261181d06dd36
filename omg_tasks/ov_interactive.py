"""The ov-interactive task: a mask and an open-vocabulary class for every point or box prompt."""

from omg_core.task_info import TaskInfo
from omg_tasks._metric_binding import bind_metric
from omg_tasks._placeholder import PlaceholderTask

plugin = PlaceholderTask(
    TaskInfo(
        name="ov-interactive",
        aliases=(),
        summary="a mask and an open-vocabulary class for every point or box prompt",
        modality="image",
        prompt_kinds=("points", "boxes"),
        vocabulary="open",
        metrics=("mIoU@1click", "mIoU@box", "NoC@85", "NoC@90"),
        result_family="prompt-masks",
        output_formats=("coco-results-json",),
        file_evaluator="interactive-json",
        implemented=False,
    ),
    bind_metric("ov-interactive", "omg_eval.interactive:InteractiveSegmentation"),
)
