"""The salient task: which pixels belong to any confident object, one binary map per image.

Written against the plugin API alone (README "Tasks are plugins" and the docstrings of omg_core): the shared model
finds objects with its learned queries; a pixel is salient when the mask of a confident object covers it. Writing
(semantic-png) and scoring (`omg eval --task salient`, the semantic-png evaluator) come from the built-in plugins.
"""

from __future__ import annotations

from pydantic import Field

from omg_core import TaskInfo, TaskOptions, hookimpl
from omg_core.task_io import QueryPlan, TaskRequest, TaskResult

VOCABULARY = ("background", "salient")


class SalientOptions(TaskOptions):
    object_score: float = Field(0.5, ge=0, le=1, description="class confidence above which a query is an object")
    mask_threshold: float = Field(0.5, gt=0, lt=1, description="mask probability above which a pixel is covered")


@hookimpl
def omg_task_info() -> TaskInfo:
    return TaskInfo(
        name="salient",
        aliases=("sod",),
        summary="the pixels of any confident object, as one binary map per image",
        modality="image",
        vocabulary="closed",
        metrics=("mIoU", "pACC"),
        result_family="semantic",
        output_formats=("semantic-png",),
        file_evaluator="semantic-png",
        options=SalientOptions,
    )


@hookimpl
def omg_encode_queries(request: TaskRequest) -> QueryPlan:
    return QueryPlan(learned_queries=True)  # every learned query; the model's own vocabulary scores them


@hookimpl
def omg_decode_outputs(request: TaskRequest, plan: QueryPlan, outputs) -> TaskResult:
    # torch-based modules are imported in the hooks that use them: `omg tasks` imports every plugin and stays fast
    from omg_core.postprocess import keep_queries, masks_to_original_size, query_classes
    from omg_core.results import SemanticMap

    options: SalientOptions = request.options
    scores, labels = query_classes(outputs.class_logits[0])  # the batch axis of 1 stays in outputs
    keep = keep_queries(scores, labels, num_classes=outputs.class_logits.shape[-1] - 1, threshold=options.object_score)
    height, width = request.pixels.shape[-2:]
    logits = masks_to_original_size(outputs.mask_logits[0, keep], outputs.padded_size, outputs.image_size,
                                    (height, width))
    salient = (logits.sigmoid() > options.mask_threshold).any(dim=0)  # no kept query: nothing is salient
    return TaskResult(task="salient", source=request.source, data=SemanticMap(salient.long(), VOCABULARY))


@hookimpl
def omg_create_metric(options: dict) -> object:
    from omg_eval.semantic import SemanticSegmentation

    return SemanticSegmentation(num_classes=len(VOCABULARY), class_names=VOCABULARY)

