"""Panoptic quality (PQ, SQ, RQ for all / things / stuff and per class), equal to COCO panopticapi ``pq_compute``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from omg_eval.anomalies import note_anomaly, reports_anomalies
from omg_eval.kernels.segment_pairs import intersect_segment_ids_batch
from omg_eval.metric import Metric
from omg_eval.panoptic_matching import VOID_ID, GTOddities, SegmentTable, pq_counts

Segment = Mapping[str, Any]


def _is_number_array(values: list[Any]) -> bool:
    """Whether ``values`` make a NumPy integer or float array (no bool, string, None or nested list)."""
    try:
        return np.array(values).dtype.kind in "iuf"
    except (ValueError, TypeError):
        return False


class PanopticQuality(Metric):
    """COCO panoptic quality over a data set.

    Arguments:
      categories: every category of the data set, each a mapping with ``id`` and ``isthing`` (0/1), as the
        ``categories`` list of a COCO panoptic JSON.

    ``update`` takes a batch of images: id maps (0 = VOID, or COCO RGB maps) and their ``segments_info`` lists.
    Ground truth whose map and ``segments_info`` disagree is scored as panopticapi scores it (an unlisted map id is
    left out of the matching; a listed segment without a pixel stays, a FN unless crowd) and reported with
    :func:`~omg_eval.anomalies.note_anomaly`: to the active ``collect_anomalies`` log, else as one
    ``EvaluationAnomalyWarning`` per kind and ``update`` call. A prediction that disagrees with its map is an error.
    ``compute`` returns panopticapi's structure: ``{"All"|"Things"|"Stuff": {"pq", "sq", "rq", "n"},
    "per_class": {category id: {"pq", "sq", "rq"}}}``; a group without any category having TP + FP + FN > 0 gets
    NaN figures and n = 0 (panopticapi divides by zero there).
    """

    def __init__(self, categories: Sequence[Mapping[str, Any]]) -> None:
        super().__init__()
        if not categories:
            raise ValueError("categories is empty; pass the 'categories' list of the panoptic ground-truth JSON")
        self.category_ids: list[int] = []
        self.is_thing: list[bool] = []
        for category in categories:
            if "id" not in category or "isthing" not in category:
                raise ValueError(f"category {dict(category)} needs an 'id' and an 'isthing' (0 or 1)")
            self.category_ids.append(int(category["id"]))
            self.is_thing.append(bool(category["isthing"]))
        if len(set(self.category_ids)) != len(self.category_ids):
            raise ValueError("categories lists the same id twice; each category id must appear once")
        # category id -> index, as a sorted lookup so whole segment tables are mapped in one searchsorted
        self._category_order = np.argsort(np.array(self.category_ids, dtype=np.int64), kind="stable")
        self._sorted_category_ids = np.array(self.category_ids, dtype=np.int64)[self._category_order]
        num_categories = len(self.category_ids)
        self.add_state("iou_sum", torch.zeros(num_categories, dtype=torch.float64), "sum")
        self.add_state("tp", torch.zeros(num_categories, dtype=torch.int64), "sum")
        self.add_state("fp", torch.zeros(num_categories, dtype=torch.int64), "sum")
        self.add_state("fn", torch.zeros(num_categories, dtype=torch.int64), "sum")

    def _table(
        self, segments_per_image: Sequence[Sequence[Segment]], names: Sequence[str], side: str
    ) -> tuple[SegmentTable, np.ndarray]:
        # one flat pass in Python, then every check as a tensor operation (COCO has ~20 segments per image)
        try:
            rows = [
                (s["id"], s["category_id"], s.get("iscrowd", 0)) for segments in segments_per_image for s in segments
            ]
        except KeyError:
            bad = next(
                (n, dict(s))
                for segments, n in zip(segments_per_image, names)
                for s in segments
                if "id" not in s or "category_id" not in s
            )
            raise ValueError(f"image {bad[0]}: {side} segment {bad[1]} needs an 'id' and a 'category_id'") from None
        counts = np.array([len(segments) for segments in segments_per_image], dtype=np.int64)
        image = np.repeat(np.arange(len(counts)), counts)
        values = np.array(rows, dtype=np.int64).reshape(-1, 3)
        ids, category_ids, crowds = (np.ascontiguousarray(column) for column in values.T)
        # ground-truth areas as given (panopticapi puts the JSON value, integer or float, in the IoU union); -1 marks
        # a missing one, counted on the map later. Predicted areas are always counted on the map.
        areas = np.full(len(ids), -1.0)
        if side == "ground-truth" and len(ids):
            given = [s.get("area", -1) for segments in segments_per_image for s in segments]
            if _is_number_array(given):
                areas = np.array(given).astype(np.float64)
            else:
                row = next((i for i, a in enumerate(given) if not _is_number_array([a])), 0)
                raise ValueError(
                    f"image {names[int(image[row])]}: {side} segment id {int(ids[row])}: area {given[row]!r} is not a "
                    "number; give the pixel count (or leave 'area' out to count it on the map)"
                )

        def fail(mask: np.ndarray, message: str) -> None:
            if mask.any():
                row = int(np.flatnonzero(mask)[0])
                raise ValueError(
                    f"image {names[int(image[row])]}: {side} segment id {int(ids[row])}: "
                    + message.format(category=int(category_ids[row]))
                )

        fail(ids == VOID_ID, "0 is reserved for VOID; renumber it")
        fail((ids < 0) | (ids >= 2**31), "segment ids must lie in [1, 2^31)")
        keys = image * 2**31 + ids
        order = np.argsort(keys, kind="stable")
        repeated = np.zeros(len(keys), dtype=bool)
        repeated[order[1:]] = keys[order[1:]] == keys[order[:-1]]
        fail(repeated, "is listed twice in segments_info")
        position = np.minimum(np.searchsorted(self._sorted_category_ids, category_ids), len(self.category_ids) - 1)
        known = self._sorted_category_ids[position] == category_ids
        fail(
            ~known,
            "has category_id {category}, which is not in the categories given to PanopticQuality "
            f"({len(self.category_ids)} categories)",
        )
        table = SegmentTable(
            image=image,
            ids=ids,
            category=self._category_order[position],
            iscrowd=crowds == 1,  # panopticapi tests `iscrowd == 1`: any other value is an ordinary segment
            area=np.maximum(areas, 0.0),
        )
        return table, np.flatnonzero(areas < 0)

    @reports_anomalies
    def update(
        self,
        pred_maps: Sequence[torch.Tensor],
        pred_segments: Sequence[Sequence[Segment]],
        gt_maps: Sequence[torch.Tensor],
        gt_segments: Sequence[Sequence[Segment]],
        image_names: Sequence[str] | None = None,
    ) -> None:
        """Add a batch of images.

        Arguments:
          pred_maps: B predicted id maps (H_b x W_b integer, 0 = VOID) or COCO RGB maps (H_b x W_b x 3 uint8).
          pred_segments: B lists of ``{"id", "category_id"}`` (areas are counted on the map).
          gt_maps: B ground-truth maps, same sizes.
          gt_segments: B lists of ``{"id", "category_id", "iscrowd", "area"}``; ``area`` is used as given, integer or
            float, as panopticapi does; a missing one is counted on the map.
          image_names: a name per image for error messages (defaults to the batch index).
        """
        if len(pred_maps) != len(gt_maps):
            raise ValueError(f"got {len(pred_maps)} predicted maps but {len(gt_maps)} ground-truth maps")
        pairs = intersect_segment_ids_batch(list(gt_maps), list(pred_maps)) if len(pred_maps) else None
        self.update_from_pairs(pairs, pred_segments, gt_segments, image_names)

    @reports_anomalies
    def update_from_pairs(
        self,
        pairs: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None,
        pred_segments: Sequence[Sequence[Segment]],
        gt_segments: Sequence[Sequence[Segment]],
        image_names: Sequence[str] | None = None,
    ) -> None:
        """:meth:`update` from pixel counts already taken (for pipelines that count while decoding).

        Arguments:
          pairs: ``intersect_segment_ids_batch`` of the batch's maps: (image index, gt id, pred id, count), each
            (M,); None for an empty batch.
          pred_segments, gt_segments, image_names: as in :meth:`update`.
        """
        batch = len(pred_segments)
        if len(gt_segments) != batch:
            raise ValueError(
                f"batch sizes differ: {batch} pred segment lists, {len(gt_segments)} gt segment lists; pass one of "
                "each per image"
            )
        names = [str(n) for n in image_names] if image_names is not None else [str(i) for i in range(batch)]
        if len(names) != batch:
            raise ValueError(f"got {len(names)} image_names for {batch} images")
        if batch == 0 or pairs is None:
            return
        pair_image, pair_gt, pair_pred, pair_count = (p.cpu().numpy() for p in pairs)
        if len(pair_image) and int(pair_image.max()) >= batch:
            raise ValueError(f"pairs refer to image {int(pair_image.max())} but the batch has {batch} images")
        gt_table, rows_without_area = self._table(gt_segments, names, "ground-truth")
        pred_table, _ = self._table(pred_segments, names, "predicted")
        if len(rows_without_area):
            self._fill_gt_areas(gt_table, rows_without_area, pair_image, pair_gt, pair_count)
        counts = pq_counts(
            pair_image, pair_gt, pair_pred, pair_count, gt_table, pred_table, len(self.category_ids), names
        )
        _report(counts.gt_oddities, names)  # before adding anything: strict mode raises here
        self.iou_sum += torch.from_numpy(counts.iou_sum)
        self.tp += torch.from_numpy(counts.tp)
        self.fp += torch.from_numpy(counts.fp)
        self.fn += torch.from_numpy(counts.fn)

    @staticmethod
    def _fill_gt_areas(
        gt_table: SegmentTable,
        rows: np.ndarray,
        pair_image: np.ndarray,
        pair_gt: np.ndarray,
        pair_count: np.ndarray,
    ) -> None:
        """Areas counted on the map for the ground-truth rows whose annotation has no ``area``."""
        wanted = gt_table.keys[rows]
        pair_keys = pair_image * 2**31 + pair_gt
        hit = np.isin(pair_keys, wanted)
        unique_keys, inverse = np.unique(pair_keys[hit], return_inverse=True)
        sums = np.bincount(inverse, weights=pair_count[hit], minlength=len(unique_keys)).astype(np.int64)
        position = np.minimum(np.searchsorted(unique_keys, wanted), max(len(unique_keys) - 1, 0))
        found = unique_keys[position] == wanted if len(unique_keys) else np.zeros(len(wanted), dtype=bool)
        gt_table.area[rows] = np.where(found, sums[position] if len(sums) else 0, 0)

    def compute(self) -> dict[str, Any]:
        """PQ / SQ / RQ for All, Things, Stuff (with n, the number of categories averaged) and per class."""
        denominators = (
            self.tp.to(torch.float64) + 0.5 * self.fp.to(torch.float64) + 0.5 * self.fn.to(torch.float64)
        ).tolist()
        results: dict[str, Any] = {}
        per_class: dict[int, dict[str, float]] = {}
        for category_id, tp, iou, denominator in zip(
            self.category_ids, self.tp.tolist(), self.iou_sum.tolist(), denominators
        ):
            if denominator == 0:
                per_class[category_id] = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
                continue
            per_class[category_id] = {"pq": iou / denominator, "sq": iou / tp if tp else 0.0, "rq": tp / denominator}
        for group, wanted in (("All", None), ("Things", True), ("Stuff", False)):
            chosen = [
                per_class[category_id]
                for category_id, is_thing, denominator in zip(self.category_ids, self.is_thing, denominators)
                if (wanted is None or is_thing == wanted) and denominator > 0
            ]
            n = len(chosen)
            results[group] = {
                key: (sum(figures[key] for figures in chosen) / n if n else math.nan) for key in ("pq", "sq", "rq")
            }
            results[group]["n"] = n
        results["per_class"] = per_class
        return results


_ODDITY_KINDS = (
    (
        "panoptic-gt-id-not-in-segments-info",
        "ground-truth PNG ids missing from segments_info",
        "left out of the matching, as panopticapi does (neither matched, nor VOID, nor crowd)",
        "unlisted",
    ),
    (
        "panoptic-gt-segment-without-pixels",
        "ground-truth segments_info entries without a pixel in the PNG",
        "kept, as panopticapi does: never matched, so a false negative, or its category's crowd region if iscrowd",
        "pixelless",
    ),
)


def _report(oddities: GTOddities, names: Sequence[str]) -> None:
    """One :func:`note_anomaly` per image and kind of ground-truth oddity."""
    for kind, what, handling, field in _ODDITY_KINDS:
        image, ids = getattr(oddities, f"{field}_image"), getattr(oddities, f"{field}_ids")
        if not len(image):
            continue
        starts = np.flatnonzero(np.r_[True, image[1:] != image[:-1]])
        for start, stop in zip(starts.tolist(), [*starts[1:].tolist(), len(image)]):
            in_image = [str(i) for i in ids[start:stop].tolist()]
            listed = ", ".join(in_image[:5]) + (", ..." if len(in_image) > 5 else "")
            example = f"image {names[int(image[start])]}, segment id{'s' if len(in_image) > 1 else ''} {listed}"
            note_anomaly(kind, what=what, handling=handling, example=example, count=len(in_image))
