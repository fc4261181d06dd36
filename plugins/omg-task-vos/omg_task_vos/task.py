"""The vos task: semi-supervised video object segmentation, the DAVIS-2017 protocol, as OMG-Seg evaluates it.

Written against the plugin API alone (README "Tasks are plugins"): the objects are given as the first frame's DAVIS
annotation (``first_frame_masks`` option, or the DAVIS layout beside the frames; see first_frame.py). The shared model
runs the video as MinVIS video segmentation, so each learned query is one track; the first-frame objects are matched
to the best tracks' frame-0 masks and carried by them (tracking.py). Results are ``PromptTracks`` written by the
built-in ``davis-png`` writer; ``omg eval --task vos`` scores them with this plugin's ``davis-jf`` evaluator.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from omg_core import TaskInfo, TaskOptions, hookimpl
from omg_core.file_evaluators import FileEvaluator
from omg_core.output_formats import OutputFormat
from omg_core.task_io import QueryPlan, TaskRequest, TaskResult, VideoTubes

if TYPE_CHECKING:
    from omg_core.model.outputs import OMGOutputs
    from omg_task_vos.first_frame import FirstFrameObjects

#: The DAVIS first frame's name, for pixels that come without frame names.
DEFAULT_FIRST_FRAME = "00000"

DAVIS_JF = FileEvaluator(
    name="davis-jf",
    summary="DAVIS-2017 semi-supervised J&F (region J, boundary F, mean/recall/decay), equal to davis2017-evaluation",
    predictions="folder of <video>/<frame>.png object-id PNGs (what `omg run --task vos` writes)",
    prediction_kind="folder",
    ground_truth="the DAVIS Annotations/<resolution> folder, or the DAVIS root holding Annotations/480p",
    ground_truth_kind="folder",
    function="omg_task_vos.evaluate:evaluate_davis_folders",
)

#: The built-in davis-png writer writes it (track k = object id k + 1); declaring it for this task here, as a video
#: task joins a video format, keeps `--format davis-png` open to it whatever tasks the built-in declaration names.
DAVIS_PNG = OutputFormat("davis-png", "DAVIS results: <video>/<frame>.png palette PNGs of object ids", tasks=("vos",))


class VOSOptions(TaskOptions):
    first_frame_masks: str | None = Field(
        None,
        description="the first frame's DAVIS annotation PNG (palette indices = object ids), or a folder holding "
        "<first frame>.png or <video>/<first frame>.png; None: <root>/Annotations/<res>/<video>/ beside the input "
        "<root>/JPEGImages/<res>/<video>/",
    )
    num_proposals: int = Field(25, ge=1, description="query tracks with the best IoU score matched to the objects "
                                                    "(OMG-Seg's DAVIS config: 25)")
    clip_size: int = Field(5, ge=1, description="frames per tube of the video inference (official DAVIS config: 5)")
    clip_size_small: int = Field(3, ge=1, description="frames per tube for short videos (official: 3)")
    small_clip_thr: int = Field(15, ge=0, description="videos of at most this many frames use clip_size_small")


@hookimpl
def omg_task_info() -> TaskInfo:
    return TaskInfo(
        name="vos",
        aliases=("davis",),
        summary="semi-supervised video object segmentation: the first frame's objects tracked through the video",
        modality="video",
        vocabulary="closed",
        metrics=("J&F-Mean", "J-Mean", "F-Mean"),
        result_family="prompt-masks",
        output_formats=(DAVIS_PNG.name,),
        file_evaluator=DAVIS_JF.name,
        options=VOSOptions,
    )


def first_frame_objects(request: TaskRequest) -> FirstFrameObjects:
    """The objects the request's first frame annotation marks (InputError naming the file and the fix)."""
    from omg_task_vos.first_frame import find_first_frame_annotation, read_first_frame_objects

    options: VOSOptions = request.options  # type: ignore[assignment]
    first_frame = request.frame_names[0] if request.frame_names else DEFAULT_FIRST_FRAME
    source = Path(request.source) if request.source is not None else None
    path = find_first_frame_annotation(options.first_frame_masks, source, first_frame)
    return read_first_frame_objects(path, (int(request.pixels.shape[-2]), int(request.pixels.shape[-1])))


@hookimpl
def omg_encode_queries(request: TaskRequest) -> QueryPlan:
    options: VOSOptions = request.options  # type: ignore[assignment]
    first_frame_objects(request)  # a missing or bad annotation fails now, before the model runs on the whole video
    # every learned query, the model's own vocabulary: OMG-Seg ranks the tracks by their IoU head, not by class
    return QueryPlan(learned_queries=True,
                     tubes=VideoTubes(options.clip_size, options.clip_size_small, options.small_clip_thr))


@hookimpl
def omg_decode_outputs(request: TaskRequest, plan: QueryPlan, outputs: OMGOutputs) -> TaskResult:
    import torch

    from omg_core.postprocess import masks_to_original_size
    from omg_core.results import PromptTracks
    from omg_task_vos.tracking import track_first_frame_objects

    if outputs.mask_logits.dim() != 5:
        raise ValueError(f"vos needs the outputs of a video (mask_logits 1 x Q x T x h x w), got "
                         f"{tuple(outputs.mask_logits.shape)}")
    options: VOSOptions = request.options  # type: ignore[assignment]
    objects = first_frame_objects(request)
    original = (int(request.pixels.shape[-2]), int(request.pixels.shape[-1]))

    def resize(mask_logits: torch.Tensor) -> torch.Tensor:
        return masks_to_original_size(mask_logits.float().cpu(), outputs.padded_size, outputs.image_size, original)

    learned = slice(0, outputs.num_learned_queries)
    tracks = track_first_frame_objects(outputs.iou_logits[0, learned].float().cpu(), outputs.mask_logits[0, learned],
                                       objects.masks, resize, options.num_proposals)
    # Track k is object id k + 1, so the DAVIS ids of the annotation survive writing; an id the annotation skips
    # (objects 1 and 3, no 2) gets an empty track, as the DAVIS evaluator counts objects up to the largest id.
    count = max(objects.object_ids)
    masks = torch.zeros((count, *tracks.masks.shape[1:]), dtype=torch.bool)
    scores = torch.zeros(count, dtype=torch.float32)
    positions = torch.tensor(objects.object_ids) - 1
    masks[positions], scores[positions] = tracks.masks, tracks.scores
    return TaskResult(task="vos", source=request.source, data=PromptTracks(masks, scores),
                      frame_names=request.frame_names)


@hookimpl
def omg_create_metric(options: dict[str, Any]) -> object:
    from omg_eval.vos import DAVISMetric

    return DAVISMetric(bound_th=options.get("bound_th", 0.008))


@hookimpl
def omg_output_formats() -> list[OutputFormat]:
    return [DAVIS_PNG]


@hookimpl
def omg_file_evaluators() -> list[FileEvaluator]:
    return [DAVIS_JF]
