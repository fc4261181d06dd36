"""The instance task (is): a scored mask and class for every countable object."""

from __future__ import annotations

from typing import TYPE_CHECKING

from omg_core.task_info import TaskInfo
from omg_core.task_io import QueryPlan, TaskRequest
from omg_tasks._builtin import BuiltinTask, InstanceOptions, class_names, thing_flags, to_input_size
from omg_tasks._file_evaluators import COCO_INSTANCES
from omg_tasks._metric_binding import bind_metric

if TYPE_CHECKING:
    from omg_core.model.outputs import OMGOutputs
    from omg_core.results import Instances


def encode(request: TaskRequest) -> QueryPlan:
    return QueryPlan(learned_queries=True)


def decode(request: TaskRequest, plan: QueryPlan, outputs: OMGOutputs) -> Instances:
    """OMG-Seg's instance inference: top-k over queries x classes, things only, mask-quality-weighted scores."""
    from omg_core.inference.instance import instance_inference
    from omg_core.results import Instances

    options: InstanceOptions = request.options  # type: ignore[assignment]
    found = instance_inference(outputs.class_logits[0].float().cpu(), outputs.mask_logits[0],
                               to_input_size(request, outputs), thing_flags(plan, outputs), options.max_per_image)
    return Instances(found.masks, found.scores, found.labels, class_names(request, plan, outputs), found.boxes)


INFO = TaskInfo(
    name="instance",
    aliases=("is",),
    summary="a mask, class and score for every countable object",
    modality="image",
    prompt_kinds=(),
    vocabulary="closed",
    metrics=("AP", "AP50", "AP75", "APs", "APm", "APl"),
    options=InstanceOptions,
    result_family="instances",
    output_formats=("coco-results-json",),
    file_evaluator="coco-instances",
)

plugin = BuiltinTask(INFO, encode, decode, bind_metric("instance", "omg_eval.instance:CocoMaskAP"),
                     file_evaluators=(COCO_INSTANCES,))
