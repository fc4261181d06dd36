"""The panoptic task (ps): a non-overlapping segment with a class for every thing and stuff region."""

from __future__ import annotations

from typing import TYPE_CHECKING

from omg_core.task_info import TaskInfo
from omg_core.task_io import QueryPlan, TaskRequest
from omg_tasks._builtin import BuiltinTask, PanopticOptions, class_names, thing_flags, to_input_size
from omg_tasks._file_evaluators import COCO_PANOPTIC
from omg_tasks._metric_binding import bind_metric

if TYPE_CHECKING:
    from omg_core.model.outputs import OMGOutputs
    from omg_core.results import PanopticMap


def encode(request: TaskRequest) -> QueryPlan:
    return QueryPlan(learned_queries=True)


def decode(request: TaskRequest, plan: QueryPlan, outputs: OMGOutputs) -> PanopticMap:
    """OMG-Seg's panoptic fusion (omg_core.inference.panoptic) at the input image's size."""
    from omg_core.inference.panoptic import PanopticSettings, panoptic_fusion
    from omg_core.results import PanopticMap

    options: PanopticOptions = request.options  # type: ignore[assignment]
    settings = PanopticSettings(options.object_mask_thr, options.iou_thr, options.filter_low_score)
    fusion = panoptic_fusion(outputs.class_logits[0].float().cpu(), outputs.mask_logits[0],
                             to_input_size(request, outputs), thing_flags(plan, outputs), settings)
    return PanopticMap(fusion.segment_ids, fusion.segments, class_names(request, plan, outputs))


INFO = TaskInfo(
    name="panoptic",
    aliases=("ps",),
    summary="a non-overlapping segment with a class for every thing and stuff region",
    modality="image",
    prompt_kinds=(),
    vocabulary="closed",
    metrics=("PQ", "SQ", "RQ"),
    options=PanopticOptions,
    result_family="panoptic",
    output_formats=("coco-panoptic", "semantic-png"),
    file_evaluator="coco-panoptic",
)

plugin = BuiltinTask(INFO, encode, decode, bind_metric("panoptic", "omg_eval.panoptic:PanopticQuality"),
                     file_evaluators=(COCO_PANOPTIC,))
