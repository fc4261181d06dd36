"""The panoptic task (ps): a non-overlapping segment with a class for every thing and stuff region."""

from omg_core.task_info import TaskInfo
from omg_tasks._file_evaluators import COCO_PANOPTIC
from omg_tasks._metric_binding import bind_metric
from omg_tasks._placeholder import PlaceholderTask

plugin = PlaceholderTask(
    TaskInfo(
        name="panoptic",
        aliases=("ps",),
        summary="a non-overlapping segment with a class for every thing and stuff region",
        modality="image",
        prompt_kinds=(),
        vocabulary="closed",
        metrics=("PQ", "SQ", "RQ"),
        result_family="panoptic",
        output_formats=("coco-panoptic",),
        file_evaluator="coco-panoptic",
        implemented=False,
    ),
    bind_metric("panoptic", "omg_eval.panoptic:PanopticQuality"),
    file_evaluators=(COCO_PANOPTIC,),
)
