"""COCO mask AP of a results JSON against an instances JSON, with pycocotools' loading conventions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omg_data.json_io import read_json
from omg_eval.anomalies import note_anomaly, reports_anomalies
from omg_eval.image_names import GroundTruthImageNames
from omg_eval.instance import CocoMaskAP
from omg_eval.sharding import items_for_this_rank

#: What ``omg run --format coco-results-json`` writes beside ``results.json``: the run's images by id and file name.
RUN_IMAGES_FILE = "images.json"


@reports_anomalies
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

    Pairing: results that name their input file (``file_name``, as ``omg run --format coco-results-json`` writes
    every detection; its ``image_id`` is the input's position, not the data set's id) are paired with the
    ground-truth image of that file name, compared without directories, and scored under the ground truth's id: the
    name wins over ``image_id`` wherever the two point at different images. The ``images.json`` such a run writes
    beside its results is checked too, so that an image the ground truth lacks is refused even where it had no
    detection. Results without ``file_name`` (pycocotools' results format, e.g. detectron2's
    ``coco_instances_results.json``) are paired by ``image_id`` exactly as ``loadRes`` pairs them; a file mixing the
    two is refused, as is a name the ground truth lacks or that two ground-truth images share (see
    :mod:`omg_eval.image_names`).

    As ``COCO.loadRes``: when the first result carries a non-empty ``bbox``, every detection's area (used for the
    small / medium / large ranges) is its box area, otherwise its mask area. As ``COCOeval``, which evaluates only
    the ground truth's categories, results of other categories are ignored (reported as an anomaly); a result for an
    image the ground truth lacks is an error (``loadRes`` asserts).
    """
    gt = read_json(gt_json_file, expected="a COCO instances JSON (the ground truth)")
    results = read_json(results_json_file, expected="a COCO results JSON (a list of detections)")
    if not isinstance(gt, dict):
        raise ValueError(f"ground-truth JSON {gt_json_file} must be a dict; is it a COCO instances file?")
    for key in ("images", "annotations", "categories"):
        if key not in gt:
            raise ValueError(f"ground-truth JSON {gt_json_file} has no '{key}'; is it a COCO instances file?")
    if not isinstance(results, list):
        raise ValueError(f"results JSON {results_json_file} must be a list of detections (COCO results format)")
    results = _paired_by_name(results, gt, Path(gt_json_file), Path(results_json_file))
    images = {int(image["id"]): (int(image["height"]), int(image["width"])) for image in gt["images"]}
    category_ids = {int(category["id"]) for category in gt["categories"]}
    gt_by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for annotation in gt["annotations"]:
        gt_by_image[int(annotation["image_id"])].append(annotation)
    box_areas = bool(results) and bool(results[0].get("bbox"))
    det_by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    # per image, the results whose category the ground truth lacks: (index in the file, category)
    foreign_by_image: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for index, result in enumerate(results):
        if "segmentation" not in result:
            raise ValueError(f"result {index} has no 'segmentation'; mask AP needs an RLE or polygon per detection")
        if "category_id" not in result:
            raise ValueError(f"result {index} has no 'category_id'")
        image_id = int(result["image_id"])
        if image_id not in images:
            raise ValueError(f"result {index} is for image {image_id}, which is not in the ground truth")
        if box_areas:
            if not result.get("bbox"):
                raise ValueError(f"result {index} has no 'bbox' although the first result has one; give all or none")
            result = {**result, "area": float(result["bbox"][2]) * float(result["bbox"][3])}
        elif "area" in result:
            result = {k: v for k, v in result.items() if k != "area"}  # loadRes recomputes it from the mask
        if int(result["category_id"]) not in category_ids:
            foreign_by_image[image_id].append((index, int(result["category_id"])))
            continue
        det_by_image[image_id].append(result)
    metric = CocoMaskAP(sorted(category_ids))
    image_ids = items_for_this_rank(sorted(images))
    _note_foreign_categories(foreign_by_image, image_ids)
    for image_id in image_ids:
        height, width = images[image_id]
        metric.update(image_id, height, width, gt_by_image.get(image_id, []), det_by_image.get(image_id, []))
        if progress is not None:
            progress(1)
    return metric.compute()


def _paired_by_name(results: list[Any], gt: dict[str, Any], gt_file: Path, results_file: Path) -> list[Any]:
    """The results with ``image_id`` set to the ground truth's id of the image each names in ``file_name``; the
    results unchanged when none names one (they are paired by ``image_id``)."""
    named = [isinstance(result, dict) and result.get("file_name") is not None for result in results]
    if not any(named):
        return results
    if not all(named):
        raise ValueError(
            f"results JSON {results_file}: result {named.index(False)} has no 'file_name' but result "
            f"{named.index(True)} has one; give every result its input file_name (paired with the ground truth by "
            "name, as omg run writes them) or none (paired by image_id, as pycocotools pairs them)"
        )
    names = GroundTruthImageNames(gt["images"], gt_file)
    run_images = results_file.parent / RUN_IMAGES_FILE
    if run_images.is_file():  # omg run's catalogue: its images without a detection must be in the ground truth too
        catalogue = read_json(run_images, expected="the images.json of an omg run (its images by id)")
        listed = catalogue.get("images") if isinstance(catalogue, dict) else None
        if not isinstance(listed, list):
            raise ValueError(f"{run_images} must be {{'images': [{{'id', 'file_name', ...}}]}}, as omg run writes it")
        for number, image in enumerate(listed):
            if isinstance(image, dict) and image.get("file_name") is not None:
                names.id_of(image["file_name"], f"image {number} of the run's {run_images}")
    ids: dict[str, Any] = {}  # file name -> ground-truth id, each name looked up once
    paired = []
    for index, result in enumerate(results):
        name = str(result["file_name"])
        if name not in ids:
            ids[name] = names.id_of(name, f"result {index} of {results_file}")
        paired.append({**result, "image_id": ids[name]})
    return paired


def _note_foreign_categories(foreign_by_image: dict[int, list[tuple[int, int]]], image_ids: list[int]) -> None:
    """Report the ignored results of this rank's images (each rank its own share, so counts add up over ranks)."""
    foreign = sorted(
        (index, image_id, category) for image_id in image_ids for index, category in foreign_by_image[image_id]
    )
    if foreign:
        index, image_id, category = foreign[0]
        note_anomaly(
            "instance-category-not-in-gt",
            what="results for categories absent from the ground truth",
            handling="ignored, as pycocotools' COCOeval does (it evaluates only the ground truth's categories)",
            example=f"result {index} (image {image_id}, category {category})",
            count=len(foreign),
        )
