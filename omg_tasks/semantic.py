"""The semantic task (ss): a class label for every pixel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from omg_core.task_info import TaskInfo
from omg_core.task_io import QueryPlan, TaskRequest
from omg_tasks._builtin import BuiltinTask, class_names, to_input_size
from omg_tasks._file_evaluators import SEMANTIC_PNG
from omg_tasks._metric_binding import bind_metric

if TYPE_CHECKING:
    from omg_core.model.outputs import OMGOutputs
    from omg_core.results import SemanticMap


def encode(request: TaskRequest) -> QueryPlan:
    return QueryPlan(learned_queries=True)


def decode(request: TaskRequest, plan: QueryPlan, outputs: OMGOutputs) -> SemanticMap:
    """Mask2Former's semantic inference (OMG-Seg's head has none): class probabilities without void times mask
    probabilities, summed over queries, argmax per pixel."""
    from omg_core.inference.semantic import semantic_labels
    from omg_core.results import SemanticMap

    labels = semantic_labels(outputs.class_logits[0].float().cpu(), outputs.mask_logits[0],
                             to_input_size(request, outputs))
    return SemanticMap(labels, class_names(request, plan, outputs))


INFO = TaskInfo(
    name="semantic",
    aliases=("ss",),
    summary="a class label for every pixel",
    modality="image",
    prompt_kinds=(),
    vocabulary="closed",
    metrics=("mIoU", "fwIoU", "pACC"),
    result_family="semantic",
    output_formats=("semantic-png",),
    file_evaluator="semantic-png",
)

plugin = BuiltinTask(INFO, encode, decode, bind_metric("semantic", "omg_eval.semantic:SemanticSegmentation"),
                     file_evaluators=(SEMANTIC_PNG,))
