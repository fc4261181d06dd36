"""Interactive figures from files: a run's ``interactive.json`` against COCO instances, or a click simulation's log.

Two kinds of ``{"objects": [...]}`` file, told apart by their records' keys:

* what ``omg run --format interactive-json`` writes: one record per prompt with the prompt (``points`` /
  ``point_labels`` / ``box``, (x, y) pixels of the input image), its mask as a COCO RLE ``segmentation``, the input's
  ``file_name`` and, for open-vocabulary runs, ``category`` (the class name) and ``category_id``. Scored against a
  COCO instances JSON as OMG-Seg's ``InsClsIoUMetric`` scores interactive segmentation: the IoU of each prompt's mask
  with its object's ground-truth mask, averaged over prompts, and the share of prompts whose class is the object's.
* a click simulation's log: ``click_ious`` (IoU after each click) and/or ``box_iou`` per object, turned into
  mIoU@1click, mIoU@box and NoC by :class:`~omg_eval.interactive.InteractiveSegmentation`; no ground truth needed.

A run does not know which ground-truth object a prompt was meant for, so each record is joined to one:

1. by ``annotation_id``, when the record has one (added by whoever made the prompts);
2. else within its image (the ground truth's ``images[].file_name``, compared by base name with the record's), by
   where the prompt is: the non-crowd object whose mask holds the first positive click (several: the one holding
   the most of the other positive clicks, then the fewest negative clicks, then the highest box IoU when the prompt
   has a box, then the smallest); a prompt without a positive click, the object whose box has the highest IoU with
   the prompt's box.

A prompt that matches no object (a click on background, a box overlapping nothing) is reported as an anomaly
(:mod:`omg_eval.anomalies`) and scored IoU 0 and class wrong: a prediction the ground truth cannot check counts
against the run rather than vanishing from the mean.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from omg_common.errors import InputError
from omg_data.json_io import read_json
from omg_eval.anomalies import note_anomaly, reports_anomalies
from omg_eval.interactive import InteractiveSegmentation
from omg_eval.sharding import gather_objects, items_for_this_rank

#: Keys of a click simulation's per-object record.
CLICK_LOG_KEYS = frozenset({"click_ious", "box_iou"})


@reports_anomalies
def evaluate_interactive_file(
    results_json: str | Path,
    ground_truth: str | Path | dict | None = None,
    *,
    max_clicks: int = 20,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Interactive figures of an ``{"objects": [...]}`` file (see the module docstring for the two kinds).

    Arguments:
      results_json: a run's ``interactive.json``, or a click simulation's log.
      ground_truth: COCO instances JSON (path or loaded dict); needed for a run's file, unused for a log.
      max_clicks: click budget of NoC (click simulation logs).
      progress: called with the number of images (run files) or objects (logs) just scored.

    Returns:
      for a run's file, :func:`score_prompt_masks`' figures; for a log, ``InteractiveSegmentation.compute()`` plus
      ``num_objects``.

    Raises:
      InputError: a run's file without ground truth.
      ValueError: records of neither kind or of both, and what :func:`score_prompt_masks` refuses.
    """
    path = Path(results_json)
    data = read_json(path, "the interactive results JSON")
    if not isinstance(data, dict) or not isinstance(data.get("objects"), list):
        raise ValueError(
            f"{path} must hold {{'objects': [...]}}: one record per prompt (omg run --format interactive-json) or "
            "per simulated object ('click_ious' / 'box_iou')"
        )
    objects: list[Any] = data["objects"]
    for index, entry in enumerate(objects):
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: object {index} is a {type(entry).__name__}, not a record")
    with_masks = [index for index, entry in enumerate(objects) if "segmentation" in entry]
    if not with_masks and (objects or ground_truth is None):
        return _score_click_log(path, objects, max_clicks, progress)
    without = [index for index, entry in enumerate(objects) if "segmentation" not in entry]
    if without:
        raise ValueError(
            f"{path}: object {with_masks[0]} has a 'segmentation' (a run's prompt mask) but object {without[0]} has "
            "none; give one kind of record per file"
        )
    if ground_truth is None:
        raise InputError(
            f"{path} holds prompt masks (omg run --format interactive-json), which are scored against ground truth: "
            "give --ground-truth the COCO instances JSON of the prompted images"
        )
    gt = ground_truth if isinstance(ground_truth, dict) else read_json(ground_truth, "a COCO instances JSON")
    return score_prompt_masks(objects, gt, where=str(path), progress=progress)


def _score_click_log(
    path: Path, objects: list[dict], max_clicks: int, progress: Callable[[int], None] | None
) -> dict[str, Any]:
    """mIoU@1click, mIoU@box and NoC@85/90 of recorded click-simulation IoUs."""
    metric = InteractiveSegmentation(max_clicks=max_clicks)
    for index, entry in items_for_this_rank(list(enumerate(objects))):
        if not CLICK_LOG_KEYS & entry.keys():
            raise ValueError(
                f"{path}: object {index} has neither 'click_ious' nor 'box_iou' (a click simulation's record) nor "
                "'segmentation' (a run's prompt mask)"
            )
        metric.update(
            click_ious=[entry["click_ious"]] if "click_ious" in entry else None,
            box_ious=[entry["box_iou"]] if "box_iou" in entry else None,
        )
        if progress is not None:
            progress(1)
    figures = metric.compute()
    figures["num_objects"] = len(objects)
    return figures


# -- prompt masks against COCO instances -------------------------------------------------------------------------


@dataclass
class _GroundTruthImage:
    """One ground-truth image: its size and annotations, and their masks decoded on first use."""

    position: int  # in the ground truth's 'images'
    image_id: Any
    file_name: str
    height: int
    width: int
    annotations: list[dict[str, Any]] = field(default_factory=list)
    _masks: list[np.ndarray] | None = None

    def masks(self) -> list[np.ndarray]:
        """(H, W) bool mask of each annotation, in order."""
        from omg_data.rle import decode_segmentation

        if self._masks is None:
            self._masks = []
            for annotation in self.annotations:
                try:
                    self._masks.append(decode_segmentation(annotation["segmentation"], self.height, self.width))
                except (KeyError, ValueError) as error:
                    raise ValueError(
                        f"ground-truth annotation {annotation.get('id')!r} (image {self.file_name!r}): {error}"
                    ) from error
        return self._masks

    def release(self) -> None:
        """Forget the decoded masks (they are decoded again if asked for)."""
        self._masks = None

    def boxes_xyxy(self) -> np.ndarray:
        """(A, 4) float64 (x0, y0, x1, y1) of each annotation: its ``bbox``, else its mask's box."""
        boxes = np.zeros((len(self.annotations), 4), dtype=np.float64)
        for index, annotation in enumerate(self.annotations):
            bbox = annotation.get("bbox")
            if bbox is not None and len(bbox) == 4:
                x, y, w, h = (float(v) for v in bbox)
                boxes[index] = (x, y, x + w, y + h)
                continue
            rows, cols = np.nonzero(self.masks()[index])
            if len(rows):  # an empty mask keeps a zero box, which overlaps nothing
                boxes[index] = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        return boxes


@dataclass
class _GroundTruth:
    """A COCO instances JSON indexed for joining: images by base file name, annotations by id, category names."""

    images: list[_GroundTruthImage]
    by_name: dict[str, _GroundTruthImage]
    duplicate_names: set[str]
    annotation_image: dict[Any, tuple[_GroundTruthImage, int]]  # annotation id -> (image, index among its own)
    category_names: dict[Any, str]


def _index_ground_truth(gt: Any) -> _GroundTruth:
    if not isinstance(gt, dict) or not {"images", "annotations", "categories"} <= gt.keys():
        raise ValueError(
            "the ground truth must be a COCO instances JSON (a dict with 'images', 'annotations' and 'categories')"
        )
    images: list[_GroundTruthImage] = []
    by_name: dict[str, _GroundTruthImage] = {}
    by_id: dict[Any, _GroundTruthImage] = {}
    duplicates: set[str] = set()
    for record in gt["images"]:
        try:
            image = _GroundTruthImage(len(images), record["id"], str(record["file_name"]), int(record["height"]),
                                      int(record["width"]))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"ground-truth image {record!r:.80}: needs 'id', 'file_name', 'height' and 'width'") \
                from error
        name = Path(image.file_name).name
        if name in by_name:
            duplicates.add(name)
        images.append(image)
        by_name[name] = image
        by_id[image.image_id] = image
    annotation_image: dict[Any, tuple[_GroundTruthImage, int]] = {}
    for annotation in gt["annotations"]:
        image = by_id.get(annotation.get("image_id"))
        if image is None:
            raise ValueError(
                f"ground-truth annotation {annotation.get('id')!r} refers to image {annotation.get('image_id')!r}, "
                "which 'images' does not list"
            )
        annotation_image[annotation.get("id")] = (image, len(image.annotations))
        image.annotations.append(annotation)
    names = {category["id"]: str(category.get("name", category["id"])) for category in gt["categories"]}
    return _GroundTruth(images, by_name, duplicates, annotation_image, names)


def prompt_kind(record: dict[str, Any]) -> str:
    """What a prompt was, as the figure names say it: ``1click``, ``3clicks``, ``box``, or ``box+1click``."""
    num_clicks = len(record.get("points") or [])
    clicks = f"{num_clicks}click" if num_clicks == 1 else f"{num_clicks}clicks"
    if record.get("box") is not None:
        return f"box+{clicks}" if num_clicks else "box"
    return clicks


def _kind_order(kind: str) -> tuple[bool, int]:
    """Clicks first (1, 2, ...), then box prompts: the order of TaskInfo.metrics (mIoU@1click, mIoU@box)."""
    clicks = kind.removeprefix("box").removeprefix("+").removesuffix("clicks").removesuffix("click")
    return kind.startswith("box"), int(clicks or 0)


def _box_iou(box: Sequence[float], boxes: np.ndarray) -> np.ndarray:
    """(A,) IoU of one (x0, y0, x1, y1) box with each of ``boxes`` (A, 4)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    width = np.clip(np.minimum(x1, boxes[:, 2]) - np.maximum(x0, boxes[:, 0]), 0, None)
    height = np.clip(np.minimum(y1, boxes[:, 3]) - np.maximum(y0, boxes[:, 1]), 0, None)
    intersection = width * height
    union = max(x1 - x0, 0) * max(y1 - y0, 0) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def _holds(mask: np.ndarray, point: Sequence[float]) -> bool:
    """Whether the pixel under an (x, y) point is in ``mask``; a point outside the image is in no mask."""
    col, row = math.floor(float(point[0])), math.floor(float(point[1]))
    return 0 <= row < mask.shape[0] and 0 <= col < mask.shape[1] and bool(mask[row, col])


def match_prompt(record: dict[str, Any], image: _GroundTruthImage) -> int | None:
    """The index (among ``image.annotations``) of the object a prompt was meant for, by where the prompt is (see the
    module docstring), or None when it lies on no object."""
    points = record.get("points") or []
    labels = record.get("point_labels") or [1] * len(points)
    if len(labels) != len(points):
        raise ValueError(f"{len(points)} points but {len(labels)} point_labels")
    positives = [point for point, label in zip(points, labels) if int(label) == 1]
    negatives = [point for point, label in zip(points, labels) if int(label) == 0]
    box = record.get("box")
    candidates = [k for k, annotation in enumerate(image.annotations) if not annotation.get("iscrowd", 0)]
    box_ious = _box_iou(box, image.boxes_xyxy()) if box is not None else np.zeros(len(image.annotations))
    if positives:
        masks = image.masks()
        holding = [k for k in candidates if _holds(masks[k], positives[0])]
        if not holding:
            return None
        return min(holding, key=lambda k: (-sum(_holds(masks[k], p) for p in positives[1:]),
                                           sum(_holds(masks[k], p) for p in negatives), -box_ious[k],
                                           int(masks[k].sum()), k))
    if box is not None:
        overlapping = [k for k in candidates if box_ious[k] > 0]
        return max(overlapping, key=lambda k: (box_ious[k], -k)) if overlapping else None
    return None


def _same_class(record: dict[str, Any], annotation: dict[str, Any], category_names: dict[Any, str]) -> bool | None:
    """Whether a classified record names its object's category: by name when it has one (a run's vocabulary numbers
    its classes its own way), else by ``category_id``; None for a record without a class."""
    if "category" in record:
        expected = category_names.get(annotation.get("category_id"), "")
        return _normalise(str(record["category"])) == _normalise(expected)
    if "category_id" in record:
        return record["category_id"] == annotation.get("category_id")
    return None


def _normalise(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def score_prompt_masks(
    objects: list[dict[str, Any]], gt: Any, *, where: str = "interactive.json",
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Score a run's prompt masks against COCO instances (see the module docstring for the join).

    Arguments:
      objects: the records of ``interactive.json``.
      gt: the loaded COCO instances JSON.
      where: names the predictions in errors.
      progress: called with the number of images just scored.

    Returns:
      ``mIoU@<kind>`` per prompt kind present (``mIoU@1click``, ``mIoU@3clicks``, ``mIoU@box``, ...), ``mIoU`` over
      every prompt (OMG-Seg's ``miou``), ``acc`` (share of classified prompts whose class is their object's
      category, OMG-Seg's ``score`` / 100) when any record has a class, ``num_objects`` and ``num_unmatched``.

    Raises:
      ValueError: a record naming an image or annotation the ground truth lacks, a file name two ground-truth
        images share, a mask of another size than its image, a malformed record or ground truth.
    """
    truth = _index_ground_truth(gt)
    by_image: dict[int, list[tuple[int, dict[str, Any], int | None]]] = defaultdict(list)  # image position -> ...
    for index, record in enumerate(objects):
        image, annotation = _image_of(record, index, truth, where)
        by_image[image.position].append((index, record, annotation))
    # per prompt: (index in the file, kind, IoU, class right or None, matched)
    scored: list[tuple[int, str, float, bool | None, bool]] = []
    for position in items_for_this_rank(sorted(by_image)):
        image = truth.images[position]
        for index, record, annotation in by_image[position]:
            scored.append(_score_record(index, record, annotation, image, truth.category_names, where))
        image.release()  # a few MB of decoded masks per image: keep one image's, not the whole data set's
        if progress is not None:
            progress(1)
    unmatched = sorted(index for index, _, _, _, matched in scored if not matched)
    if unmatched:
        index = unmatched[0]
        record = objects[index]
        note_anomaly(
            "interactive-prompt-on-no-object",
            what="prompts on no ground-truth object (no object holds the first positive click or overlaps the box)",
            handling="scored IoU 0 and class wrong; give 'annotation_id' in a record to name its object",
            example=f"object {index} (image {record.get('file_name')!r}, prompt {record.get('prompt')!r}, "
                    f"{_describe_prompt(record)})",
            count=len(unmatched),
        )
    everything = sorted(row for rows in gather_objects(scored) for row in rows)
    return _figures(everything)


def _image_of(
    record: dict[str, Any], index: int, truth: _GroundTruth, where: str
) -> tuple[_GroundTruthImage, int | None]:
    """The ground-truth image of a record and, when it names one by ``annotation_id``, its object's index there."""
    name = Path(str(record["file_name"])).name if record.get("file_name") is not None else None
    if record.get("annotation_id") is not None:
        found = truth.annotation_image.get(record["annotation_id"])
        if found is None:
            raise ValueError(
                f"{where}: object {index} names annotation_id {record['annotation_id']!r}, which the ground truth "
                "does not hold; evaluate against the annotation file the prompts were made from"
            )
        image, annotation = found
        if name is not None and name != Path(image.file_name).name:
            raise ValueError(
                f"{where}: object {index} is for image {name!r} but its annotation_id {record['annotation_id']!r} "
                f"is an object of {image.file_name!r}; fix the record's file_name or annotation_id"
            )
        return image, annotation
    if name is None:
        raise ValueError(f"{where}: object {index} has neither 'file_name' nor 'annotation_id'; the ground-truth "
                         "object it answers cannot be found")
    if name in truth.duplicate_names:
        raise ValueError(
            f"{where}: object {index} is for image {name!r}, a file name several ground-truth images share; give "
            "each record an 'annotation_id'"
        )
    image = truth.by_name.get(name)
    if image is None:
        raise ValueError(
            f"{where}: object {index} is for image {name!r}, which the ground truth does not list; evaluate against "
            "the COCO instances JSON of the images the run was given"
        )
    return image, None


def _score_record(
    index: int, record: dict[str, Any], annotation: int | None, image: _GroundTruthImage,
    category_names: dict[Any, str], where: str,
) -> tuple[int, str, float, bool | None, bool]:
    """(index, kind, IoU with its object, class right or None, matched) of one record."""
    from omg_data.rle import decode_rle, segmentation_to_rle

    named = f"{where}: object {index} (image {image.file_name!r})"
    try:
        predicted = decode_rle(segmentation_to_rle(record["segmentation"], image.height, image.width))
        if annotation is None:
            annotation = match_prompt(record, image)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{named}: {error}") from error
    classified = "category" in record or "category_id" in record
    if annotation is None:
        return index, prompt_kind(record), 0.0, (False if classified else None), False
    truth = image.masks()[annotation]
    union = int(np.count_nonzero(predicted | truth))
    # OMG-Seg divides by union + 1e-8; an exact ratio differs from it by under 1e-8 and keeps a perfect mask at 1
    iou = int(np.count_nonzero(predicted & truth)) / union if union else 0.0
    return index, prompt_kind(record), iou, _same_class(record, image.annotations[annotation], category_names), True


def _describe_prompt(record: dict[str, Any]) -> str:
    parts = []
    if record.get("points"):
        parts.append(f"points {record['points']} labels {record.get('point_labels')}")
    if record.get("box") is not None:
        parts.append(f"box {record['box']}")
    return ", ".join(parts) or "no points or box"


def _figures(scored: list[tuple[int, str, float, bool | None, bool]]) -> dict[str, Any]:
    ious_by_kind: dict[str, list[float]] = defaultdict(list)
    for _, kind, iou, _, _ in scored:
        ious_by_kind[kind].append(iou)
    figures: dict[str, Any] = {
        f"mIoU@{kind}": float(np.mean(ious_by_kind[kind])) for kind in sorted(ious_by_kind, key=_kind_order)
    }
    figures["mIoU"] = float(np.mean([iou for _, _, iou, _, _ in scored])) if scored else float("nan")
    classes = [right for _, _, _, right, _ in scored if right is not None]
    if classes:
        figures["acc"] = float(np.mean(classes))
    figures["num_objects"] = len(scored)
    figures["num_unmatched"] = sum(not matched for *_, matched in scored)
    return figures
