"""The ov-interactive task: a mask and an open-vocabulary class for every point or box prompt."""

from __future__ import annotations

from typing import TYPE_CHECKING

from omg_core.task_info import TaskInfo
from omg_core.task_io import QueryPlan, TaskRequest
from omg_tasks import interactive
from omg_tasks._builtin import BuiltinTask, vocabulary_plan
from omg_tasks._metric_binding import bind_metric

if TYPE_CHECKING:
    from omg_core.model.outputs import OMGOutputs
    from omg_core.results import PromptMasks


def encode(request: TaskRequest) -> QueryPlan:
    return vocabulary_plan(request, learned_queries=False, prompts=request.prompts)


def decode(request: TaskRequest, plan: QueryPlan, outputs: OMGOutputs) -> PromptMasks:
    """As interactive, plus each mask's best class (ensemble probabilities without void)."""
    return interactive.decode(request, plan, outputs, with_labels=True)


INFO = TaskInfo(
    name="ov-interactive",
    aliases=(),
    summary="a mask and an open-vocabulary class for every point or box prompt",
    modality="image",
    prompt_kinds=("points", "boxes"),
    vocabulary="open",
    metrics=("mIoU@1click", "mIoU@box", "NoC@85", "NoC@90"),
    result_family="prompt-masks",
    output_formats=("interactive-json", "coco-results-json"),
    file_evaluator="interactive-json",
)

plugin = BuiltinTask(INFO, encode, decode,
                     bind_metric("ov-interactive", "omg_eval.interactive:InteractiveSegmentation"))
