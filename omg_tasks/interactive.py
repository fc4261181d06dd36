"""The interactive task (int): one class-agnostic mask per point or box prompt (SAM-style)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from omg_core.task_info import TaskInfo
from omg_core.task_io import QueryPlan, TaskRequest
from omg_tasks._builtin import BuiltinTask, class_names, to_input_size
from omg_tasks._file_evaluators import INTERACTIVE_JSON
from omg_tasks._metric_binding import bind_metric

if TYPE_CHECKING:
    from omg_core.model.outputs import OMGOutputs
    from omg_core.results import PromptMasks


def encode(request: TaskRequest) -> QueryPlan:
    # prompt queries only: they never attend to the learned queries, so running those would change nothing
    return QueryPlan(learned_queries=False, prompts=request.prompts)


def decode(request: TaskRequest, plan: QueryPlan, outputs: OMGOutputs, with_labels: bool = False) -> PromptMasks:
    """One mask per prompt, in prompt order: the prompt query's mask resized to the image, sigmoid > 0.5."""
    from omg_core.inference.prompt_masks import prompt_mask_inference
    from omg_core.results import PromptMasks

    prompt_queries = slice(outputs.num_learned_queries, None)
    found = prompt_mask_inference(
        outputs.mask_logits[0, prompt_queries], outputs.iou_logits[0, prompt_queries].float().cpu(),
        to_input_size(request, outputs),
        outputs.class_logits[0, prompt_queries].float().cpu() if with_labels else None,
    )
    if with_labels:
        return PromptMasks(found.masks, found.scores, found.labels, class_names(request, plan, outputs))
    return PromptMasks(found.masks, found.scores)


INFO = TaskInfo(
    name="interactive",
    aliases=("int",),
    summary="one class-agnostic mask per point or box prompt (SAM-style)",
    modality="image",
    prompt_kinds=("points", "boxes"),
    vocabulary="closed",
    metrics=("mIoU@1click", "mIoU@box", "NoC@85", "NoC@90"),
    result_family="prompt-masks",
    output_formats=("interactive-json", "coco-results-json"),
    file_evaluator="interactive-json",
)

plugin = BuiltinTask(INFO, encode, decode, bind_metric("interactive", "omg_eval.interactive:InteractiveSegmentation"),
                     file_evaluators=(INTERACTIVE_JSON,))
