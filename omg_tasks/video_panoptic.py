"""The video-panoptic task (vps): panoptic segments with instance ids stable across frames."""

from omg_core.task_info import TaskInfo
from omg_tasks._file_evaluators import VIPSEG
from omg_tasks._metric_binding import bind_metric_collection
from omg_tasks._placeholder import PlaceholderTask

plugin = PlaceholderTask(
    TaskInfo(
        name="video-panoptic",
        aliases=("vps",),
        summary="panoptic segments with instance ids stable across frames",
        modality="video",
        prompt_kinds=(),
        vocabulary="closed",
        metrics=("VPQ", "STQ"),
        result_family="panoptic",
        output_formats=("vipseg-png",),
        file_evaluator="vipseg",
        implemented=False,
    ),
    bind_metric_collection(
        "video-panoptic",
        {
            "VPQ": "omg_eval.video_panoptic_quality:VideoPanopticQuality",
            "STQ": "omg_eval.stq:SegmentationTrackingQuality",
        },
    ),
    file_evaluators=(VIPSEG,),
)
