"""PQ of COCO panoptic files (PNG folders + JSON), the file-level counterpart of panopticapi ``pq_compute``.

PNGs are decoded by Pillow on a thread pool (Pillow releases the GIL while it inflates and unfilters, so threads
decode in parallel) and their H x W x 3 RGB pixels go straight to the pair-counting kernel, which turns colours into
ids on the fly: each pixel is read once, nothing is decoded twice. torchvision's libpng decoder takes ~25% less CPU
per PNG, but importing torchvision costs ~1.5 s of start-up (torch._dynamo), the time of decoding ~1000 PNG pairs.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from omg_data.json_io import read_json
from omg_eval.anomalies import reports_anomalies
from omg_eval.image_names import GroundTruthImageNames, base_name
from omg_eval.kernels.segment_pairs import intersect_segment_ids
from omg_eval.panoptic import PanopticQuality
from omg_eval.sharding import items_for_this_rank


def read_panoptic_png(path: Path) -> torch.Tensor:
    """A COCO panoptic PNG as a uint8 (H, W, 3) RGB tensor (id = R + 256 G + 256^2 B), as panopticapi reads it.

    Raises:
      FileNotFoundError: no such file. ValueError: not a readable PNG (one line naming the file).
    """
    if not path.is_file():
        raise FileNotFoundError(f"panoptic PNG {path} does not exist; check the folder and the annotation file_name")
    try:
        with Image.open(path) as image:
            if image.mode != "RGB":
                image = image.convert("RGB")  # palette / grey / RGBA PNGs: RGB as panopticapi's rgb2id reads them
            # np.array (a copy) rather than np.asarray: Pillow's array is read-only, which torch warns about
            pixels = np.array(image)
    except (OSError, SyntaxError, ValueError) as error:  # PIL.UnidentifiedImageError is an OSError
        detail = " ".join(str(error).split()) or type(error).__name__
        raise ValueError(f"{path} is not a readable PNG: {detail}") from error
    return torch.from_numpy(pixels)


def _load_json(path: Path, what: str) -> dict[str, Any]:
    data = read_json(path, expected=f"the {what} COCO panoptic JSON")
    if not isinstance(data, dict) or "annotations" not in data:
        raise ValueError(f"{what} JSON {path} has no 'annotations' list; is it a COCO panoptic file?")
    return data


def _predictions_by_name(
    gt_json: dict[str, Any], pred_json: dict[str, Any], gt_file: Path, pred_file: Path
) -> dict[Any, dict[str, Any]] | None:
    """The prediction annotations by ground-truth image id, paired by input file name (see
    :mod:`omg_eval.image_names`); None when the predictions do not name their images, to be paired by id.

    The predictions name their images when their JSON has an ``images`` list whose records all carry a ``file_name``
    (omg run's panoptic.json; detectron2's, a copy of the ground truth's, pairs the same either way): an annotation's
    ``image_id`` then only points at its record there, whose ``file_name`` says which ground-truth image it is.
    """
    images = pred_json.get("images")
    if not isinstance(images, list) or not images:
        return None
    named = [isinstance(image, dict) and bool(image.get("file_name")) for image in images]
    if not any(named):
        return None
    if not all(named):
        raise ValueError(
            f"prediction JSON {pred_file}: image record {images[named.index(False)]!r:.80} has no 'file_name' but "
            "others have one; give every images[] record its input file_name (to pair them with the ground truth "
            "by name, as omg run writes them) or leave 'images' out (to pair annotations by image_id)"
        )
    names = GroundTruthImageNames(gt_json.get("images"), gt_file)
    pred_names = {image.get("id"): image["file_name"] for image in images}
    by_gt_id: dict[Any, dict[str, Any]] = {}
    paired_from: dict[Any, int] = {}
    for index, annotation in enumerate(pred_json["annotations"]):
        image_id = annotation.get("image_id")
        if image_id not in pred_names:
            raise ValueError(
                f"prediction annotation {index} of {pred_file} is for image {image_id!r}, which its 'images' list "
                "does not hold; the annotations and images of a prediction JSON must come from the same run"
            )
        gt_id = names.id_of(pred_names[image_id], f"prediction annotation {index} of {pred_file}")
        if gt_id in by_gt_id:
            raise ValueError(
                f"prediction annotations {paired_from[gt_id]} and {index} of {pred_file} are both for image "
                f"{base_name(pred_names[image_id])!r} (ground-truth id {gt_id!r}); give each image to the run once"
            )
        by_gt_id[gt_id], paired_from[gt_id] = annotation, index
    return by_gt_id


def _pairs(
    gt_json: dict[str, Any], pred_json: dict[str, Any], gt_file: Path, pred_file: Path
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(ground-truth annotation, prediction annotation) per ground-truth image: by input file name when the
    predictions name their images, else by ``image_id`` as panopticapi pairs them."""
    by_name = _predictions_by_name(gt_json, pred_json, gt_file, pred_file)
    if by_name is not None:
        pred_by_image = by_name
    else:
        pred_by_image = {annotation["image_id"]: annotation for annotation in pred_json["annotations"]}
    gt_names = {image.get("id"): image.get("file_name") for image in gt_json.get("images") or []
                if isinstance(image, dict)}
    matched = []
    for gt_annotation in gt_json["annotations"]:
        image_id = gt_annotation["image_id"]
        if image_id not in pred_by_image:
            if by_name is not None:
                raise ValueError(
                    f"no prediction for image {image_id} ({gt_names.get(image_id)!r}) of ground truth {gt_file}: "
                    f"{pred_file} names no image of that file name; every ground-truth image needs a prediction "
                    "entry: run on all of the ground truth's images"
                )
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

    Pairing: when the prediction JSON's ``images`` records carry a ``file_name`` (``omg run --format coco-panoptic``
    writes the input file's name there, and numbers images by input position), each prediction annotation is paired
    with the ground-truth image of that file name, compared without directories, and scored under the ground truth's
    id: the name wins over the prediction's ``image_id`` wherever the two point at different images. A name the
    ground truth lacks, a name two ground-truth images share, or two predictions of one image is an error (see
    :mod:`omg_eval.image_names`). A prediction JSON without ``images`` (panopticapi's own format) is paired by
    ``image_id`` exactly as ``pq_compute`` pairs it.

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
    jobs = items_for_this_rank(_pairs(gt_json, pred_json, gt_json_file, pred_json_file))
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
    return metric.compute()
