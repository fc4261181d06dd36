"""The ov-seg task: panoptic, instance and semantic segmentation over any class names you give."""

from omg_core.task_info import TaskInfo
from omg_tasks._metric_binding import bind_metric
from omg_tasks._placeholder import PlaceholderTask

plugin = PlaceholderTask(
    TaskInfo(
        name="ov-seg",
        aliases=(),
        summary="panoptic, instance and semantic segmentation over any class names you give",
        modality="image",
        prompt_kinds=(),
        vocabulary="open",
        metrics=("PQ", "SQ", "RQ"),
        result_family="panoptic",
        output_formats=("coco-panoptic", "coco-results-json", "semantic-png"),
        file_evaluator="coco-panoptic",
        implemented=False,
    ),
    bind_metric("ov-seg", "omg_eval.panoptic:PanopticQuality"),
)
