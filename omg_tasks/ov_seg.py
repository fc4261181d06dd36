"""The ov-seg task: panoptic segmentation over any class names you give (open vocabulary)."""

from __future__ import annotations

from omg_core.task_info import TaskInfo
from omg_core.task_io import QueryPlan, TaskRequest
from omg_tasks import panoptic
from omg_tasks._builtin import BuiltinTask, PanopticOptions, vocabulary_plan
from omg_tasks._metric_binding import bind_metric


def encode(request: TaskRequest) -> QueryPlan:
    # the trained classifier and the frozen CLIP classifier, geometric ensemble with seen/unseen exponents
    return vocabulary_plan(request)


INFO = TaskInfo(
    name="ov-seg",
    aliases=(),
    summary="panoptic segmentation over any class names you give (open vocabulary)",
    modality="image",
    prompt_kinds=(),
    vocabulary="open",
    metrics=("PQ", "SQ", "RQ"),
    options=PanopticOptions,
    result_family="panoptic",
    output_formats=("coco-panoptic", "semantic-png"),
    file_evaluator="coco-panoptic",
)

plugin = BuiltinTask(INFO, encode, panoptic.decode, bind_metric("ov-seg", "omg_eval.panoptic:PanopticQuality"))
