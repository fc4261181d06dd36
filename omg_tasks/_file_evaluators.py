"""The file evaluators of the built-in tasks: each wraps an ``omg_eval`` function equal to the official tool.

Task modules return them from ``omg_file_evaluators`` and name them in ``TaskInfo.file_evaluator``; the adapters
below give every evaluator the one signature ``(predictions, ground_truth, progress)`` and import ``omg_eval`` only
when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omg_core.file_evaluators import FileEvaluator, Progress


def _panoptic_json(path: Path, what: str) -> Path:
    """A COCO panoptic JSON, given itself or as the folder holding it: the folder's one JSON, or among several (an
    `omg data synth` folder also holds captions.json) the one whose PNG folder of the same name sits next to it."""
    if path.is_dir():
        candidates = sorted(path.glob("*.json"))
        with_pngs = [candidate for candidate in candidates if candidate.with_suffix("").is_dir()]
        if len(candidates) > 1 and len(with_pngs) == 1:
            return with_pngs[0]
        if len(candidates) != 1:
            raise ValueError(
                f"{what} folder {path} holds {len(candidates)} JSON files; pass the panoptic JSON itself "
                "(its PNGs in the folder of the same name)"
            )
        return candidates[0]
    return path


def evaluate_coco_panoptic(predictions: Path, ground_truth: Path | None, progress: Progress | None) -> dict[str, Any]:
    from omg_eval.panoptic_files import evaluate_panoptic_files

    return evaluate_panoptic_files(
        _panoptic_json(ground_truth, "ground truth"),  # type: ignore[arg-type]
        _panoptic_json(predictions, "predictions"),
        progress=progress,
    )


def evaluate_coco_instances(predictions: Path, ground_truth: Path | None, progress: Progress | None) -> dict[str, Any]:
    from omg_eval.instance_files import evaluate_instance_files

    return evaluate_instance_files(ground_truth, predictions, progress=progress)  # type: ignore[arg-type]


def evaluate_semantic_png(predictions: Path, ground_truth: Path | None, progress: Progress | None) -> dict[str, Any]:
    from omg_eval.semantic_files import evaluate_semantic_files

    return evaluate_semantic_files(predictions, ground_truth, progress=progress)  # type: ignore[arg-type]


def evaluate_interactive_json(
    predictions: Path, ground_truth: Path | None, progress: Progress | None
) -> dict[str, Any]:
    from omg_eval.interactive_files import evaluate_interactive_file

    return evaluate_interactive_file(predictions, ground_truth, progress=progress)


def evaluate_vipseg(predictions: Path, ground_truth: Path | None, progress: Progress | None) -> dict[str, Any]:
    from omg_eval.video_panoptic_files import evaluate_vipseg as evaluate

    return evaluate(predictions, ground_truth)  # type: ignore[arg-type]


def evaluate_vspw(predictions: Path, ground_truth: Path | None, progress: Progress | None) -> dict[str, Any]:
    from omg_eval.video_semantic_files import evaluate_vspw as evaluate

    return evaluate(predictions, ground_truth)  # type: ignore[arg-type]


def evaluate_youtube_vis(predictions: Path, ground_truth: Path | None, progress: Progress | None) -> dict[str, Any]:
    from omg_eval.video_instance_io import evaluate_youtube_vis as evaluate

    return evaluate(predictions, ground_truth, progress=progress)  # type: ignore[arg-type]


def evaluate_davis(predictions: Path, ground_truth: Path | None, progress: Progress | None) -> dict[str, Any]:
    from omg_eval.vos_io import evaluate_davis as evaluate

    return evaluate(predictions, ground_truth)  # type: ignore[arg-type]


_HERE = __name__
COCO_PANOPTIC = FileEvaluator(
    "coco-panoptic",
    "PQ / SQ / RQ, equal to panopticapi pq_compute",
    "COCO panoptic JSON (PNGs in the folder of the same name), or the folder holding it; images that name their input "
    "file (images[].file_name, as `omg run` writes them) are joined to the ground truth's by file name",
    "file or folder",
    "COCO panoptic JSON (same layout)",
    "file or folder",
    f"{_HERE}:evaluate_coco_panoptic",
)
COCO_INSTANCES = FileEvaluator(
    "coco-instances",
    "COCO mask AP, equal to pycocotools COCOeval(iouType='segm')",
    "COCO results JSON; results that name their input file (file_name, as `omg run` writes them) are joined to the "
    "ground truth's images by file name",
    "file",
    "COCO instances JSON",
    "file",
    f"{_HERE}:evaluate_coco_instances",
)
SEMANTIC_PNG = FileEvaluator(
    "semantic-png",
    "mIoU / pixel accuracy of label PNGs, equal to mmseg's IoUMetric",
    "folder of label PNGs",
    "folder",
    "folder of label PNGs (255 = unlabelled)",
    "folder",
    f"{_HERE}:evaluate_semantic_png",
)
INTERACTIVE_JSON = FileEvaluator(
    "interactive-json",
    "mIoU per prompt kind (mIoU@1click, mIoU@box, ...) and class accuracy of a run's prompt masks, as OMG-Seg's "
    "InsClsIoUMetric; or mIoU@1click, mIoU@box, NoC@85/90 of recorded click simulations",
    "interactive.json of `omg run --format interactive-json` (scored against --ground-truth, a COCO instances JSON), "
    "or a click-simulation log {'objects': [{'click_ious': [...], 'box_iou': x}]} (no ground truth)",
    "file",
    None,  # optional: a click-simulation log needs none, and the evaluator asks for it when a run's file does
    "file",
    f"{_HERE}:evaluate_interactive_json",
)
VIPSEG = FileEvaluator(
    "vipseg",
    "VPQ (VIPSeg's eval_vpq_vspw.py windows) and STQ (eval_stq_vspw.py)",
    "folder of <video>/<frame>.png VIPSeg masks",
    "folder",
    "VIPSeg panomasks folder (categories from the panoVIPSeg_categories.json in it or beside it)",
    "folder",
    f"{_HERE}:evaluate_vipseg",
)
VSPW = FileEvaluator(
    "vspw",
    "mIoU and video consistency VC8 / VC16, equal to the VSPW evaluator",
    "folder of <video>/<frame>.png label maps",
    "folder",
    "VSPW data folder",
    "folder",
    f"{_HERE}:evaluate_vspw",
)
YOUTUBE_VIS = FileEvaluator(
    "youtube-vis",
    "video AP, equal to youtubevos/cocoapi ytvoseval",
    "YouTube-VIS results JSON, or the folder of `omg run --format youtube-vis-json` (results.json + videos.json: "
    "videos joined to the annotation file by name)",
    "file or folder",
    "YouTube-VIS JSON",
    "file",
    f"{_HERE}:evaluate_youtube_vis",
)
VOS = FileEvaluator(
    "vos",
    "DAVIS 2017 J&F, equal to davis2017-evaluation",
    "folder of <sequence>/<frame>.png masks",
    "folder",
    "DAVIS Annotations folder",
    "folder",
    f"{_HERE}:evaluate_davis",
)
