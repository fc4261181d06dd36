"""The video-panoptic task (vps): panoptic segments with instance ids stable across frames."""

from __future__ import annotations

from typing import TYPE_CHECKING

from omg_core.task_info import TaskInfo
from omg_core.task_io import QueryPlan, TaskRequest
from omg_tasks._builtin import BuiltinTask, VideoPanopticOptions, class_names, thing_flags, to_input_size, track_of
from omg_tasks._file_evaluators import VIPSEG
from omg_tasks._metric_binding import bind_metric_collection
from omg_tasks._video_stream import FramewiseStream

if TYPE_CHECKING:
    from omg_core.model.outputs import OMGOutputs
    from omg_core.results import PanopticVideo


def encode(request: TaskRequest) -> QueryPlan:
    options: VideoPanopticOptions = request.options  # type: ignore[assignment]
    return QueryPlan(learned_queries=True, tubes=options.tubes())


def decode(request: TaskRequest, plan: QueryPlan, outputs: OMGOutputs) -> PanopticVideo:
    """Per-frame panoptic fusion of the tracked queries (class logits averaged over the video); a thing keeps its
    query slot's id in every frame."""
    from omg_core.inference.panoptic import PanopticSettings, panoptic_fusion
    from omg_core.inference.video import video_panoptic

    options: VideoPanopticOptions = request.options  # type: ignore[assignment]
    settings = PanopticSettings(options.object_mask_thr, options.iou_thr, options.filter_low_score)
    return video_panoptic(track_of(outputs), to_input_size(request, outputs), thing_flags(plan, outputs), settings,
                          panoptic_fusion, class_names(request, plan, outputs))



def stream(request: TaskRequest, plan: QueryPlan) -> FramewiseStream:
    """Long videos tube by tube: each tube's frames fused with the class logits averaged over the tubes so far."""
    return FramewiseStream(INFO.name, request, plan, decode)


INFO = TaskInfo(
    name="video-panoptic",
    aliases=("vps",),
    summary="panoptic segments with instance ids stable across frames",
    modality="video",
    prompt_kinds=(),
    vocabulary="closed",
    metrics=("VPQ", "STQ"),
    options=VideoPanopticOptions,
    result_family="panoptic",
    output_formats=("vipseg-png",),
    file_evaluator="vipseg",
)

plugin = BuiltinTask(
    INFO, encode, decode,
    bind_metric_collection("video-panoptic", {"VPQ": "omg_eval.video_panoptic_quality:VideoPanopticQuality",
                                              "STQ": "omg_eval.stq:SegmentationTrackingQuality"}),
    file_evaluators=(VIPSEG,), stream=stream,
)
