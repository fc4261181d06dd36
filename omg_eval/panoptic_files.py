"""PQ of COCO panoptic files (PNG folders + JSON), the file-level counterpart of panopticapi ``pq_compute``.

PNGs are decoded on a thread pool (torchvision's decoder releases the GIL) and their RGB planes go straight to the
pair-counting kernel, which turns colours into ids on the fly: each pixel is read once, nothing is decoded twice.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

try:  # torchvision's libpng decoder releases the GIL; PIL's path does not scale over threads
    from torchvision.io import ImageReadMode, decode_png, read_file

    # torchvision 0.29 flags its image codecs as deprecated in favour of torchcodec (not a dependency here); the
    # decoder still works, so silence exactly that notice instead of warning once per PNG.
    warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision")
except ImportError:  # pragma: no cover - a future torchvision without image codecs
    decode_png = None

from omg_eval.anomalies import reports_anomalies
from omg_eval.kernels.segment_pairs import intersect_segment_ids
from omg_eval.panoptic import PanopticQuality
from omg_eval.sharding import items_for_this_rank


def read_panoptic_png(path: Path) -> torch.Tensor:
    """A COCO panoptic PNG as a uint8 (H, W, 3) RGB tensor (id = R + 256 G + 256^2 B).

    Decoded by torchvision (libpng, releases the GIL, so threads decode in parallel; PIL here does not scale); the
    result is the H x W x 3 view of the decoded 3 x H x W planes, which the counting kernel reads in place.
    """
    if not path.is_file():
        raise FileNotFoundError(f"panoptic PNG {path} does not exist; check the folder and the annotation file_name")
    if decode_png is None:
        with Image.open(path) as image:
            return torch.from_numpy(np.array(image.convert("RGB")))
    try:
        planes = decode_png(read_file(str(path)), mode=ImageReadMode.RGB)  # 3 x H x W
    except RuntimeError as error:
        raise ValueError(f"{path} is not a readable PNG: {error}") from error
    return planes.permute(1, 2, 0)


def _load_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{what} JSON {path} does not exist")
    with open(path) as handle:
        data = json.load(handle)
    if not isinstance(data, dict) or "annotations" not in data:
        raise ValueError(f"{what} JSON {path} has no 'annotations' list; is it a COCO panoptic file?")
    return data


def _pairs(gt_json: dict[str, Any], pred_json: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    pred_by_image = {annotation["image_id"]: annotation for annotation in pred_json["annotations"]}
    matched = []
    for gt_annotation in gt_json["annotations"]:
        image_id = gt_annotation["image_id"]
        if image_id not in pred_by_image:
            raise ValueError(f"no prediction for image {image_id}; every ground-truth image needs a prediction entry")
        matched.append((gt_annotation, pred_by_image[image_id]))
    return matched


def _counted(
    jobs: Sequence[tuple[dict[str, Any], dict[str, Any]]], gt_folder: Path, pred_folder: Path, workers: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per image, in order: (gt id, pred id, count) of its pixel pairs, decoded and counted on the worker threads.

    Counting in the worker that decoded keeps the maps hot in its cache and leaves the main thread only the small
    per-batch matching; the kernel then runs single-threaded per image, so it never competes with the decoders.
    """

    def load(job: tuple[dict[str, Any], dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        gt_annotation, pred_annotation = job
        gt_map = read_panoptic_png(gt_folder / gt_annotation["file_name"])
        pred_map = read_panoptic_png(pred_folder / pred_annotation["file_name"])
        if gt_map.shape != pred_map.shape:
            raise ValueError(
                f"image {gt_annotation['image_id']}: prediction PNG is {tuple(pred_map.shape[:2])} but the ground "
                f"truth is {tuple(gt_map.shape[:2])}; predictions must have the ground-truth size"
            )
        return intersect_segment_ids(gt_map, pred_map)

    # a bounded window of pending images: the pool stays busy without holding the whole data set in memory
    window = max(4 * workers, 8)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = deque()
        for job in jobs:
            pending.append(pool.submit(load, job))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


@reports_anomalies
def evaluate_panoptic_files(
    gt_json_file: str | Path,
    pred_json_file: str | Path,
    gt_folder: str | Path | None = None,
    pred_folder: str | Path | None = None,
    *,
    workers: int | None = None,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """COCO panoptic quality of a prediction set, as panopticapi ``pq_compute``.

    Arguments:
      gt_json_file / pred_json_file: COCO panoptic JSON files (``annotations`` with ``segments_info``).
      gt_folder / pred_folder: PNG folders; default, as panopticapi: the JSON path without ``.json``.
      workers: PNG decoding threads (default: the CPU count).
      batch_size: images per kernel call.
      progress: called with the number of images just finished.

    Returns:
      ``PanopticQuality.compute()``'s dict.

    Ground truth whose PNG and ``segments_info`` disagree is scored as panopticapi scores it and reported as an
    anomaly (see :class:`PanopticQuality`): to the caller's ``collect_anomalies`` log, or else as one
    ``EvaluationAnomalyWarning`` per kind.
    """
    gt_json_file, pred_json_file = Path(gt_json_file), Path(pred_json_file)
    gt_folder = Path(gt_folder) if gt_folder is not None else gt_json_file.with_suffix("")
    pred_folder = Path(pred_folder) if pred_folder is not None else pred_json_file.with_suffix("")
    for folder, what in ((gt_folder, "ground-truth"), (pred_folder, "prediction")):
        if not folder.is_dir():
            raise FileNotFoundError(f"{what} PNG folder {folder} does not exist; pass it explicitly")
    gt_json, pred_json = _load_json(gt_json_file, "ground-truth"), _load_json(pred_json_file, "prediction")
    if "categories" not in gt_json:
        raise ValueError(f"ground-truth JSON {gt_json_file} has no 'categories' list")
    metric = PanopticQuality(gt_json["categories"])
    jobs = items_for_this_rank(_pairs(gt_json, pred_json))
    counted = _counted(jobs, gt_folder, pred_folder, workers or os.cpu_count() or 1)
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        per_image = [next(counted) for _ in chunk]
        pairs = (
            torch.cat([torch.full_like(gt_ids, index) for index, (gt_ids, _, _) in enumerate(per_image)]),
            *(torch.cat([image_pairs[k] for image_pairs in per_image]) for k in range(3)),
        )
        metric.update_from_pairs(
            pairs,  # type: ignore[arg-type]
            [pred_annotation["segments_info"] for _, pred_annotation in chunk],
            [gt_annotation["segments_info"] for gt_annotation, _ in chunk],
            image_names=[str(gt_annotation["image_id"]) for gt_annotation, _ in chunk],
        )
        if progress is not None:
            progress(len(chunk))
    metric.sync()
    return metric.compute()
