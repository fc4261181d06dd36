"""COCO mask AP (AP, AP50, AP75, APs/m/l, AR@1/10/100, ARs/m/l), equal to pycocotools ``COCOeval(iouType="segm")``.

``update`` matches each image's detections at once (IoUs from COCO run-length encodings, then the greedy matching of
:mod:`omg_eval.instance_matching`; with the fused kernels, RLE decoding, IoUs and matching of a whole image are three
C++ calls) and keeps only a compact per-image record of match flags, so states are small and sync across processes
by concatenation; ``compute`` orders detections by image id, exactly as COCOeval iterates images, and accumulates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from omg_data.rle import Rle, segmentation_to_rle
from omg_eval.instance_accumulate import AREA_RANGES, IOU_THRESHOLDS, MAX_DETS, accumulate, summarize
from omg_eval.instance_masks import mask_areas, mask_ious
from omg_eval.instance_matching import MatchGroup, match_groups
from omg_eval.kernels._extension import fused_kernels
from omg_eval.kernels.rle import runs_from_strings
from omg_eval.metric import Metric

Annotation = Mapping[str, Any]


def _record(image_id: int, side: str, index: int, annotation: Annotation) -> str:
    """How errors name an annotation: ``image 3: detection 7 (id 41)`` (index = position in the update call)."""
    known = f" (id {annotation['id']!r})" if "id" in annotation else ""
    return f"image {image_id}: {side} {index}{known}"


def _to_rles(annotations: Sequence[Annotation], side: str, height: int, width: int, image_id: int) -> list[Rle]:
    """Compressed RLEs of the annotations' segmentations, converted as pycocotools' ``annToRLE`` converts them
    (:func:`omg_data.rle.segmentation_to_rle`); an error names the image and the annotation."""
    rles = []
    for index, annotation in enumerate(annotations):
        try:
            rles.append(segmentation_to_rle(annotation["segmentation"], height, width))
        except (KeyError, ValueError) as error:
            problem = "no 'segmentation'" if isinstance(error, KeyError) else str(error)
            raise ValueError(f"{_record(image_id, side, index, annotation)}: {problem}") from error
    return rles


class CocoMaskAP(Metric):
    """COCO instance-segmentation AP over a data set.

    Arguments:
      category_ids: the data set's category ids (the ``categories`` of the instances JSON); every ground truth and
        detection must use one of them.
    """

    def __init__(self, category_ids: Sequence[int]) -> None:
        super().__init__()
        if not category_ids:
            raise ValueError("category_ids is empty; pass the ids of the 'categories' of the instances JSON")
        self.category_ids = sorted(int(c) for c in category_ids)
        if len(set(self.category_ids)) != len(self.category_ids):
            raise ValueError("category_ids lists an id twice")
        self._category_index = {c: k for k, c in enumerate(self.category_ids)}
        # one record per image: (image id, per-category regular gt counts (C, A) for its categories, and per kept
        # detection: category index, rank by score, score, matched (A, T), ignored (A, T))
        self.add_state("records", [], "cat")
        self.add_state("image_ids", [], "cat")

    def _category(self, annotation: Annotation, image_id: int, side: str) -> int:
        if "category_id" not in annotation:
            raise ValueError(f"image {image_id}: a {side} has no 'category_id'")
        category_id = int(annotation["category_id"])
        if category_id not in self._category_index:
            raise ValueError(
                f"image {image_id}: {side} category_id {category_id} is not one of the {len(self.category_ids)} "
                "category ids given to CocoMaskAP; fix the mapping from model classes to dataset category ids"
            )
        return self._category_index[category_id]

    def update(
        self,
        image_id: int,
        height: int,
        width: int,
        ground_truths: Sequence[Annotation],
        detections: Sequence[Annotation],
    ) -> None:
        """Add one image.

        Arguments:
          image_id: the COCO image id (orders images as COCOeval does; each image once).
          height, width: image size (polygons are rasterised at it).
          ground_truths: ``{"category_id", "segmentation", "area", "iscrowd"}`` (COCO annotation fields; ``area``
            is the annotation's, as COCOeval uses it for the area ranges; missing means the mask area).
          detections: ``{"category_id", "segmentation", "score"}``, segmentation a COCO RLE, a polygon list or an
            (H, W) bool tensor; an ``area`` field overrides the mask area (COCO's loadRes sets it from the bbox when
            results carry boxes).
        """
        image_id = int(image_id)
        gt_by_category: dict[int, list[int]] = defaultdict(list)  # category index -> positions in ground_truths
        det_by_category: dict[int, list[int]] = defaultdict(list)
        for index, annotation in enumerate(ground_truths):
            gt_by_category[self._category(annotation, image_id, "ground truth")].append(index)
        for index, annotation in enumerate(detections):
            if "score" not in annotation:
                raise ValueError(f"image {image_id}: a detection has no 'score'")
            det_by_category[self._category(annotation, image_id, "detection")].append(index)
        gt_rles = _to_rles(ground_truths, "ground truth", height, width, image_id)
        det_rles = _to_rles(detections, "detection", height, width, image_id)
        categories = sorted(set(gt_by_category) | set(det_by_category))
        members = [(gt_by_category.get(c, []), det_by_category.get(c, [])) for c in categories]
        kernels = fused_kernels()
        if kernels is not None:
            groups = _fused_groups(
                kernels, ground_truths, detections, gt_rles, det_rles, members, height, width, image_id
            )
        else:
            groups = [
                self._group(
                    [ground_truths[i] for i in gts],
                    [detections[i] for i in dets],
                    [gt_rles[i] for i in gts],
                    [det_rles[i] for i in dets],
                )
                for gts, dets in members
            ]
        kept, kept_count, matched, ignored, regular = match_groups(groups, AREA_RANGES, IOU_THRESHOLDS, MAX_DETS[-1])
        group_of_det = np.repeat(np.arange(len(groups)), kept_count)
        scores = np.concatenate([g.det_scores for g in groups]) if groups else np.zeros(0)
        det_offsets = np.cumsum([0] + [len(g.det_scores) for g in groups])[:-1]
        ranks = np.arange(len(kept)) - np.repeat(np.cumsum(kept_count) - kept_count, kept_count)
        self.image_ids.append(image_id)
        self.records.append(
            (
                image_id,
                torch.tensor(categories, dtype=torch.int64),
                torch.from_numpy(regular),
                torch.from_numpy(np.asarray(categories, dtype=np.int64)[group_of_det]),
                torch.from_numpy(ranks.astype(np.int64)),
                torch.from_numpy(scores[det_offsets[group_of_det] + kept] if len(kept) else np.zeros(0)),
                torch.from_numpy(matched),
                torch.from_numpy(ignored),
            )
        )

    @staticmethod
    def _group(
        gts: Sequence[Annotation], dets: Sequence[Annotation], gt_rles: Sequence[Rle], det_rles: Sequence[Rle]
    ) -> MatchGroup:
        """Areas, scores and IoUs of one (image, category) through pycocotools' mask API (the path without kernels;
        compressed strings go to pycocotools unchecked, as COCOeval passes them)."""
        gt_crowd = np.array([bool(g.get("iscrowd", 0)) for g in gts], dtype=bool)
        gt_areas = np.array(
            [float(g["area"]) if "area" in g else float(a) for g, a in zip(gts, mask_areas(gt_rles))], dtype=np.float64
        )
        det_areas = np.array(
            [float(d["area"]) if "area" in d else float(a) for d, a in zip(dets, mask_areas(det_rles))],
            dtype=np.float64,
        )
        det_scores = np.array([float(d["score"]) for d in dets], dtype=np.float64)
        # IoUs only for the detections that survive the maxDets cut (as COCOeval.computeIoU); other rows stay 0 and
        # are never read, because matching keeps the same top detections
        top = np.argsort(-det_scores, kind="mergesort")[: MAX_DETS[-1]]
        ious = np.zeros((len(dets), len(gts)))
        if len(top) and len(gts):
            ious[top] = mask_ious([det_rles[i] for i in top], gt_rles, gt_crowd)
        return MatchGroup(ious, det_scores, det_areas, gt_areas, gt_crowd)

    def compute(self) -> dict[str, Any]:
        """The 12 COCO figures (``AP`` ... ``ARl``, fractions; -1 where nothing is measurable) and per-category AP."""
        if len(set(self.image_ids)) != len(self.image_ids):
            seen: set[int] = set()
            repeated = next(i for i in self.image_ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
            raise ValueError(f"image {repeated} was added more than once; add each image exactly once (per rank)")
        num_k, num_a = len(self.category_ids), len(AREA_RANGES)
        regular_gt = np.zeros((num_k, num_a), dtype=np.int64)
        parts: list[list[np.ndarray]] = [[] for _ in range(6)]
        for image_id, categories, regular, det_category, ranks, scores, matched, ignored in self.records:
            np.add.at(regular_gt, categories.numpy(), regular.numpy())
            for part, values in zip(
                parts, (det_category, np.full(len(ranks), image_id), ranks, scores, matched, ignored)
            ):
                part.append(np.asarray(values))
        num_t = len(IOU_THRESHOLDS)
        if parts[0]:
            columns = [np.concatenate(part) for part in parts]
        else:
            columns = [np.zeros(0, dtype=np.int64)] * 3 + [np.zeros(0)] + [np.zeros((0, num_a, num_t), dtype=bool)] * 2
        precision, recall = accumulate(*columns, regular_gt)
        figures: dict[str, Any] = summarize(precision, recall)
        per_class = {}
        for k, category_id in enumerate(self.category_ids):
            values = precision[:, :, k, 0, -1]
            kept = values[values > -1]
            per_class[category_id] = float(np.mean(kept)) if len(kept) else -1.0
        figures["per_class_AP"] = per_class
        figures["precision"] = precision
        figures["recall"] = recall
        return figures


def _annotation_areas(annotations: Sequence[Annotation], mask_pixels: np.ndarray) -> np.ndarray:
    """The ``area`` field where given (COCOeval uses it), else the mask's pixel count."""
    return np.array(
        [float(a["area"]) if "area" in a else float(m) for a, m in zip(annotations, mask_pixels)], dtype=np.float64
    )


def _fused_groups(
    kernels: Any,
    ground_truths: Sequence[Annotation],
    detections: Sequence[Annotation],
    gt_rles: Sequence[Rle],
    det_rles: Sequence[Rle],
    members: Sequence[tuple[Sequence[int], Sequence[int]]],
    height: int,
    width: int,
    image_id: int,
) -> list[MatchGroup]:
    """The MatchGroups of one image with every RLE decoded once and all IoUs in one kernel call.

    ``members`` holds, per category, the positions of its ground truths and detections in the update call."""
    gt_order = [i for group_gts, _ in members for i in group_gts]
    det_order = [i for _, group_dets in members for i in group_dets]
    gts = [ground_truths[i] for i in gt_order]
    counts = [gt_rles[i]["counts"] for i in gt_order] + [det_rles[i]["counts"] for i in det_order]

    def name(row: int) -> str:
        if row < len(gt_order):
            return _record(image_id, "ground truth", gt_order[row], ground_truths[gt_order[row]])
        index = det_order[row - len(gt_order)]
        return _record(image_id, "detection", index, detections[index])

    runs, lengths, areas = runs_from_strings(counts, height * width, name)
    areas = areas.numpy()
    gt_rows, det_rows, det_offsets, gt_offsets, groups_meta = [], [], [0], [0], []
    gt_start, det_start = 0, len(gts)
    for gt_indices, det_indices in members:
        group_gts = [ground_truths[i] for i in gt_indices]
        group_dets = [detections[i] for i in det_indices]
        scores = np.array([float(d["score"]) for d in group_dets], dtype=np.float64)
        top = np.argsort(-scores, kind="mergesort")[: MAX_DETS[-1]]
        if len(group_gts) == 0:
            top = top[:0]  # nothing to intersect with
        det_rows.extend((det_start + top).tolist())
        gt_rows.extend(range(gt_start, gt_start + len(group_gts)))
        det_offsets.append(len(det_rows))
        gt_offsets.append(len(gt_rows))
        groups_meta.append((group_gts, group_dets, scores, top, gt_start, det_start))
        gt_start += len(group_gts)
        det_start += len(group_dets)
    crowd = np.array([bool(g.get("iscrowd", 0)) for g in gts], dtype=np.uint8)
    ious = kernels.rle_iou_groups(
        runs,
        lengths,
        torch.tensor(det_rows, dtype=torch.int64),
        torch.tensor(det_offsets, dtype=torch.int64),
        torch.tensor(gt_rows, dtype=torch.int64),
        torch.tensor(gt_offsets, dtype=torch.int64),
        torch.from_numpy(crowd[np.asarray(gt_rows, dtype=np.int64)] if gt_rows else np.zeros(0, dtype=np.uint8)),
    ).numpy()
    groups, position = [], 0
    for group_gts, group_dets, scores, top, first_gt, first_det in groups_meta:
        block = np.zeros((len(group_dets), len(group_gts)))
        size = len(top) * len(group_gts)
        block[top] = ious[position : position + size].reshape(len(top), len(group_gts))
        position += size
        groups.append(
            MatchGroup(
                ious=block,
                det_scores=scores,
                det_areas=_annotation_areas(group_dets, areas[first_det : first_det + len(group_dets)]),
                gt_areas=_annotation_areas(group_gts, areas[first_gt : first_gt + len(group_gts)]),
                gt_crowd=crowd[first_gt : first_gt + len(group_gts)].astype(bool),
            )
        )
    return groups
