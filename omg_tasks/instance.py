"""The instance task (is): a mask, class and score for every countable object."""

from omg_core.task_info import TaskInfo
from omg_tasks._file_evaluators import COCO_INSTANCES
from omg_tasks._metric_binding import bind_metric
from omg_tasks._placeholder import PlaceholderTask

plugin = PlaceholderTask(
    TaskInfo(
        name="instance",
        aliases=("is",),
        summary="a mask, class and score for every countable object",
        modality="image",
        prompt_kinds=(),
        vocabulary="closed",
        metrics=("AP", "AP50", "AP75", "APs", "APm", "APl"),
        result_family="instances",
        output_formats=("coco-results-json",),
        file_evaluator="coco-instances",
        implemented=False,
    ),
    bind_metric("instance", "omg_eval.instance:CocoMaskAP"),
    file_evaluators=(COCO_INSTANCES,),
)
