"""The semantic task (ss): a class label for every pixel."""

from omg_core.task_info import TaskInfo
from omg_tasks._file_evaluators import SEMANTIC_PNG
from omg_tasks._metric_binding import bind_metric
from omg_tasks._placeholder import PlaceholderTask

plugin = PlaceholderTask(
    TaskInfo(
        name="semantic",
        aliases=("ss",),
        summary="a class label for every pixel",
        modality="image",
        prompt_kinds=(),
        vocabulary="closed",
        metrics=("mIoU", "fwIoU", "pAcc"),
        result_family="semantic",
        output_formats=("semantic-png",),
        file_evaluator="semantic-png",
        implemented=False,
    ),
    bind_metric("semantic", "omg_eval.semantic:SemanticSegmentation"),
    file_evaluators=(SEMANTIC_PNG,),
)
