"""Panoptic quality (PQ, SQ, RQ for all / things / stuff and per class), equal to COCO panopticapi ``pq_compute``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from omg_eval.kernels.segment_pairs import intersect_segment_ids_batch
from omg_eval.metric import Metric
from omg_eval.panoptic_matching import VOID_ID, SegmentTable, pq_counts

Segment = Mapping[str, Any]


class PanopticQuality(Metric):
    """COCO panoptic quality over a data set.

    Arguments:
      categories: every category of the data set, each a mapping with ``id`` and ``isthing`` (0/1), as the
        ``categories`` list of a COCO panoptic JSON.

    ``update`` takes a batch of images: id maps (0 = VOID, or COCO RGB maps) and their ``segments_info`` lists.
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
        self._category_index = {category_id: index for index, category_id in enumerate(self.category_ids)}
        num_categories = len(self.category_ids)
        self.add_state("iou_sum", torch.zeros(num_categories, dtype=torch.float64), "sum")
        self.add_state("tp", torch.zeros(num_categories, dtype=torch.int64), "sum")
        self.add_state("fp", torch.zeros(num_categories, dtype=torch.int64), "sum")
        self.add_state("fn", torch.zeros(num_categories, dtype=torch.int64), "sum")

    def _table(
        self, segments_per_image: Sequence[Sequence[Segment]], names: Sequence[str], side: str
    ) -> tuple[SegmentTable, list[int]]:
        images, ids, categories, crowds, areas, rows_without_area = [], [], [], [], [], []
        for image, (segments, name) in enumerate(zip(segments_per_image, names)):
            seen: set[int] = set()
            for segment in segments:
                if "id" not in segment or "category_id" not in segment:
                    raise ValueError(f"image {name}: {side} segment {dict(segment)} needs an 'id' and a 'category_id'")
                segment_id, category_id = int(segment["id"]), int(segment["category_id"])
                if segment_id == VOID_ID:
                    raise ValueError(f"image {name}: {side} segment id 0 is reserved for VOID; renumber it")
                if segment_id in seen:
                    raise ValueError(f"image {name}: {side} segment id {segment_id} is listed twice in segments_info")
                seen.add(segment_id)
                if category_id not in self._category_index:
                    raise ValueError(
                        f"image {name}: {side} segment {segment_id} has category_id {category_id}, which is not in "
                        f"the categories given to PanopticQuality ({len(self.category_ids)} categories)"
                    )
                if "area" not in segment:
                    rows_without_area.append(len(ids))
                images.append(image)
                ids.append(segment_id)
                categories.append(self._category_index[category_id])
                crowds.append(bool(segment.get("iscrowd", 0)))
                areas.append(int(segment.get("area", 0)))
        table = SegmentTable(
            image=torch.tensor(images, dtype=torch.int64),
            ids=torch.tensor(ids, dtype=torch.int64),
            category=torch.tensor(categories, dtype=torch.int64),
            iscrowd=torch.tensor(crowds, dtype=torch.bool),
            area=torch.tensor(areas, dtype=torch.int64),
        )
        return table, rows_without_area

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
          gt_segments: B lists of ``{"id", "category_id", "iscrowd", "area"}``; a missing ``area`` is counted on the
            map (COCO ground truth always carries it, and panopticapi uses the annotation's value).
          image_names: a name per image for error messages (defaults to the batch index).
        """
        batch = len(pred_maps)
        if not (len(pred_segments) == len(gt_maps) == len(gt_segments) == batch):
            raise ValueError(
                f"batch sizes differ: {batch} pred maps, {len(pred_segments)} pred segment lists, {len(gt_maps)} gt "
                f"maps, {len(gt_segments)} gt segment lists; pass one of each per image"
            )
        names = [str(n) for n in image_names] if image_names is not None else [str(i) for i in range(batch)]
        if len(names) != batch:
            raise ValueError(f"got {len(names)} image_names for {batch} images")
        if batch == 0:
            return
        gt_table, rows_without_area = self._table(gt_segments, names, "ground-truth")
        pred_table, _ = self._table(pred_segments, names, "predicted")
        pair_image, pair_gt, pair_pred, pair_count = intersect_segment_ids_batch(list(gt_maps), list(pred_maps))
        if rows_without_area:
            self._fill_gt_areas(gt_table, rows_without_area, pair_image, pair_gt, pair_count)
        counts = pq_counts(
            pair_image, pair_gt, pair_pred, pair_count, gt_table, pred_table, len(self.category_ids), names
        )
        self.iou_sum += counts.iou_sum
        self.tp += counts.tp
        self.fp += counts.fp
        self.fn += counts.fn

    @staticmethod
    def _fill_gt_areas(
        gt_table: SegmentTable,
        rows: list[int],
        pair_image: torch.Tensor,
        pair_gt: torch.Tensor,
        pair_count: torch.Tensor,
    ) -> None:
        row_index = torch.tensor(rows, dtype=torch.int64)
        wanted = gt_table.keys[row_index]
        pair_keys = pair_image * 2**31 + pair_gt
        hit = torch.isin(pair_keys, wanted)
        unique_keys, inverse = torch.unique(pair_keys[hit], return_inverse=True)
        sums = torch.zeros(len(unique_keys), dtype=torch.int64).index_add_(0, inverse, pair_count[hit])
        position = torch.searchsorted(unique_keys, wanted).clamp(max=max(len(unique_keys) - 1, 0))
        found = unique_keys[position] == wanted if len(unique_keys) else torch.zeros_like(wanted, dtype=torch.bool)
        gt_table.area[row_index] = torch.where(found, sums[position] if len(sums) else wanted * 0, 0)

    def compute(self) -> dict[str, Any]:
        """PQ / SQ / RQ for All, Things, Stuff (with n, the number of categories averaged) and per class."""
        denominator = self.tp.to(torch.float64) + 0.5 * self.fp.to(torch.float64) + 0.5 * self.fn.to(torch.float64)
        results: dict[str, Any] = {}
        per_class: dict[int, dict[str, float]] = {}
        for index, category_id in enumerate(self.category_ids):
            tp, iou = int(self.tp[index]), float(self.iou_sum[index])
            if float(denominator[index]) == 0:
                per_class[category_id] = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
                continue
            per_class[category_id] = {
                "pq": iou / float(denominator[index]),
                "sq": iou / tp if tp else 0.0,
                "rq": tp / float(denominator[index]),
            }
        for group, wanted in (("All", None), ("Things", True), ("Stuff", False)):
            chosen = [
                per_class[category_id]
                for index, category_id in enumerate(self.category_ids)
                if (wanted is None or self.is_thing[index] == wanted) and float(denominator[index]) > 0
            ]
            n = len(chosen)
            results[group] = {
                key: (sum(figures[key] for figures in chosen) / n if n else math.nan) for key in ("pq", "sq", "rq")
            }
            results[group]["n"] = n
        results["per_class"] = per_class
        return results
