"""The referring task: a phrase ("the red star on the left") -> the one mask of the object it describes.

Written against the plugin API alone (README "Tasks are plugins"). The phrase becomes a vocabulary entry, so the
model's CLIP text tower embeds it and its classifier scores every learned query against it, next to a neutral
``background`` class; the query with the highest phrase probability times mask score is the referred object
(selection.py). The result is a two-class ``SemanticMap`` (0 background, 1 the object): the built-in ``semantic-png``
writer stores it as the 0/1 mask PNG referring datasets use, and this plugin's ``referring-png`` evaluator scores such
folders (mIoU, oIoU) for ``omg eval --task referring``.

Why a second class: with the phrase alone the classifier's softmax would compare it only with void, and in the
open-vocabulary ensemble (whose class softmax leaves void out) a single class has probability 1 for every query, so
the ranking would forget the words. ``background`` is a neutral rival: a query on the described object scores higher
for the phrase than for it, a query on anything else lower.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from omg_core import TaskInfo, TaskOptions, hookimpl
from omg_core.errors import InputError
from omg_core.file_evaluators import FileEvaluator
from omg_core.task_io import QueryPlan, TaskRequest, TaskResult

if TYPE_CHECKING:
    from omg_core.model.outputs import OMGOutputs

#: The rival class the phrase is scored against (see the module docstring).
NEUTRAL_CLASS = "background"
PHRASE_HINT = "give the words that describe the object, e.g. --option phrase=\"the red star on the left\""

REFERRING_PNG = FileEvaluator(
    name="referring-png",
    summary="referring segmentation mIoU (mean of per-image IoU) and oIoU (summed intersections over summed unions)",
    predictions="folder of <image>.png masks, non-zero = the referred object (what `omg run --task referring` writes)",
    prediction_kind="folder",
    ground_truth="folder of <image>.png ground-truth masks, non-zero = the object (0/1 or 0/255)",
    ground_truth_kind="folder",
    function="omg_task_referring.evaluate:evaluate_referring_pngs",
)


def vocabulary_text(phrase: str) -> str:
    """The phrase as one vocabulary entry. The model reads ',', '/' and '_or_' in a class name as synonym separators
    and '_' as a space; a phrase is one description, so those become spaces (and runs of spaces one)."""
    return " ".join(re.sub(r"[,/_]", " ", phrase).split())


class ReferringOptions(TaskOptions):
    phrase: str = Field(description="the words that pick out one object in each image, e.g. 'the red star on the "
                                    "left' (required)")
    open_vocabulary: bool = Field(True, description="score the phrase with the trained classifier and the frozen "
                                                    "CLIP features together (OMG-Seg's open-vocabulary ensemble)")

    @field_validator("phrase")
    @classmethod
    def _phrase_has_words(cls, phrase: str) -> str:
        if not vocabulary_text(phrase):
            raise ValueError(f"the phrase {phrase!r} has no words; {PHRASE_HINT}")
        return phrase.strip()


@hookimpl
def omg_task_info() -> TaskInfo:
    return TaskInfo(
        name="referring",
        aliases=("ris",),
        summary="the one object a phrase describes, as a binary mask per image",
        modality="image",
        vocabulary="open",
        metrics=("mIoU", "oIoU"),
        result_family="semantic",
        output_formats=("semantic-png",),
        file_evaluator=REFERRING_PNG.name,
        options=ReferringOptions,
    )


@hookimpl
def omg_encode_queries(request: TaskRequest) -> QueryPlan:
    options: ReferringOptions = request.options  # type: ignore[assignment]
    text = vocabulary_text(options.phrase)
    if not text:  # validated options never get here; hooks called with unvalidated ones may
        raise InputError(f"referring: the phrase {options.phrase!r} has no words; {PHRASE_HINT}")
    if request.vocabulary is not None:
        raise InputError(f"referring takes its words from the phrase option, not --vocabulary; {PHRASE_HINT}")
    return QueryPlan(learned_queries=True, vocabulary=(text, NEUTRAL_CLASS), thing_classes=(True, False),
                     open_vocabulary=options.open_vocabulary)


@hookimpl
def omg_decode_outputs(request: TaskRequest, plan: QueryPlan, outputs: OMGOutputs) -> TaskResult:
    from omg_core.postprocess import masks_to_original_size
    from omg_core.results import SemanticMap
    from omg_task_referring.selection import referred_query, valid_stride4_size

    options: ReferringOptions = request.options  # type: ignore[assignment]
    learned = slice(0, outputs.num_learned_queries)  # the plan has no prompts: every query is a learned one
    mask_logits = outputs.mask_logits[0, learned].float().cpu()
    valid = valid_stride4_size(outputs.image_size, outputs.padded_size, tuple(mask_logits.shape[-2:]))
    chosen = referred_query(outputs.class_logits[0, learned].float().cpu(), mask_logits, valid)
    original = (int(request.pixels.shape[-2]), int(request.pixels.shape[-1]))
    logits = masks_to_original_size(mask_logits[chosen.index : chosen.index + 1], outputs.padded_size,
                                    outputs.image_size, original)
    mask = logits[0].sigmoid() > 0.5  # OMG-Seg's mask threshold
    return TaskResult(task="referring", source=request.source,
                      data=SemanticMap(mask.long(), (NEUTRAL_CLASS, options.phrase)))


@hookimpl
def omg_create_metric(options: dict[str, Any]) -> object:
    from omg_task_referring.metric import ReferringIoU

    return ReferringIoU()


@hookimpl
def omg_file_evaluators() -> list[FileEvaluator]:
    return [REFERRING_PNG]
