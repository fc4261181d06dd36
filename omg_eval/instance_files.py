"""COCO mask AP of a results JSON against an instances JSON, with pycocotools' loading conventions."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omg_eval.instance import CocoMaskAP
from omg_eval.sharding import items_for_this_rank


def _load(path: str | Path, what: str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} JSON {path} does not exist")
    with open(path) as handle:
        return json.load(handle)


def evaluate_instance_files(
    gt_json_file: str | Path, results_json_file: str | Path, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """``COCOeval(iouType="segm")`` figures of a results file.

    Arguments:
      gt_json_file: COCO instances JSON (``images``, ``annotations``, ``categories``).
      results_json_file: COCO results JSON, a list of ``{"image_id", "category_id", "segmentation", "score"}``.
      progress: called with the number of images just finished.

    Returns:
      ``CocoMaskAP.compute()``'s dict.

    As ``COCO.loadRes``: when the first result carries a non-empty ``bbox``, every detection's area (used for the
    small / medium / large ranges) is its box area, otherwise its mask area.
    """
    gt = _load(gt_json_file, "ground-truth")
    results = _load(results_json_file, "results")
    for key in ("images", "annotations", "categories"):
        if key not in gt:
            raise ValueError(f"ground-truth JSON {gt_json_file} has no '{key}'; is it a COCO instances file?")
    if not isinstance(results, list):
        raise ValueError(f"results JSON {results_json_file} must be a list of detections (COCO results format)")
    images = {int(image["id"]): (int(image["height"]), int(image["width"])) for image in gt["images"]}
    gt_by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for annotation in gt["annotations"]:
        gt_by_image[int(annotation["image_id"])].append(annotation)
    box_areas = bool(results) and bool(results[0].get("bbox"))
    det_by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for index, result in enumerate(results):
        if "segmentation" not in result:
            raise ValueError(f"result {index} has no 'segmentation'; mask AP needs an RLE or polygon per detection")
        image_id = int(result["image_id"])
        if image_id not in images:
            raise ValueError(f"result {index} is for image {image_id}, which is not in the ground truth")
        if box_areas:
            if not result.get("bbox"):
                raise ValueError(f"result {index} has no 'bbox' although the first result has one; give all or none")
            result = {**result, "area": float(result["bbox"][2]) * float(result["bbox"][3])}
        elif "area" in result:
            result = {k: v for k, v in result.items() if k != "area"}  # loadRes recomputes it from the mask
        det_by_image[image_id].append(result)
    metric = CocoMaskAP([int(category["id"]) for category in gt["categories"]])
    for image_id in items_for_this_rank(sorted(images)):
        height, width = images[image_id]
        metric.update(image_id, height, width, gt_by_image.get(image_id, []), det_by_image.get(image_id, []))
        if progress is not None:
            progress(1)
    metric.sync()
    return metric.compute()
