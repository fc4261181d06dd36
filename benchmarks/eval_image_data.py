"""Synthetic COCO-size data and the in-repo reference algorithms of ``bench_eval_image.py``.

``panopticapi_pq_single_core`` transcribes the per-image algorithm of COCO panopticapi's ``pq_compute_single_core``
(np.unique pair counting, then Python loops over pairs and segments) so the benchmark has its reference without a
copy of panopticapi; the benchmark checks it agrees with ``PanopticQuality`` before timing anything.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

OFFSET = 256 * 256 * 256
VOID = 0
CATEGORIES = [{"id": c, "isthing": int(c <= 80), "name": str(c)} for c in range(1, 134)]


def synthetic_panoptic(
    num_images: int, height: int = 480, width: int = 640, seed: int = 0, crowd_and_void: bool = True
) -> list[dict[str, Any]]:
    """Images like COCO panoptic: a few stuff bands, 5-20 things as rectangles, VOID and crowd pixels; the prediction
    is the ground truth shifted, with some segments relabelled, dropped or added."""
    rng = np.random.default_rng(seed)
    images = []
    for index in range(num_images):
        gt = np.zeros((height, width), dtype=np.int64)
        gt_info: dict[int, dict[str, Any]] = {}
        cuts = np.sort(rng.integers(0, height, size=3))
        for top, bottom in zip([0, *cuts], [*cuts, height]):
            segment_id = int(rng.integers(1, 2**24 - 1))
            gt[top:bottom] = segment_id
            gt_info[segment_id] = {"id": segment_id, "category_id": int(rng.integers(81, 134)), "iscrowd": 0}
        for thing in range(int(rng.integers(5, 21))):
            h, w = int(rng.integers(10, height // 2)), int(rng.integers(10, width // 2))
            y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
            segment_id = int(rng.integers(1, 2**24 - 1))
            gt[y : y + h, x : x + w] = segment_id
            crowd = int(crowd_and_void and thing == 0)
            gt_info[segment_id] = {"id": segment_id, "category_id": int(rng.integers(1, 81)), "iscrowd": crowd}
        if crowd_and_void:
            gt[:, int(rng.integers(0, width - 8)) :][:, :8] = VOID
        pred = np.roll(gt, shift=(int(rng.integers(-6, 7)), int(rng.integers(-6, 7))), axis=(0, 1))
        present, areas = np.unique(gt, return_counts=True)
        gt_segments = []
        for segment_id, area in zip(present.tolist(), areas.tolist()):
            if segment_id != VOID:
                gt_segments.append({**gt_info[segment_id], "area": int(area)})
        pred_ids = np.unique(pred)
        remap = np.zeros(len(pred_ids), dtype=np.int64)
        pred_segments = []
        for position, segment_id in enumerate(pred_ids.tolist()):
            if segment_id == VOID or (crowd_and_void and rng.random() < 0.05):
                continue  # VOID stays VOID; a few segments dropped to VOID
            new_id = position * 997 + 1
            remap[position] = new_id
            category = gt_info[segment_id]["category_id"]
            if rng.random() < 0.1:
                category = int(rng.integers(1, 134))
            pred_segments.append({"id": new_id, "category_id": category})
        pred = remap[np.searchsorted(pred_ids, pred)]
        if not crowd_and_void:
            kept = {s["id"] for s in pred_segments}
            assert all(int(i) in kept for i in np.unique(pred))
        images.append(
            {"image_id": index, "gt": gt, "pred": pred, "gt_segments": gt_segments, "pred_segments": pred_segments}
        )
    return images


def id_map_to_rgb(id_map: np.ndarray) -> np.ndarray:
    """The COCO panoptic PNG colours of an id map (H x W x 3 uint8, id = R + 256 G + 256^2 B)."""
    return np.stack([id_map % 256, id_map // 256 % 256, id_map // 65536], axis=-1).astype(np.uint8)


def panopticapi_rgb2id(color: np.ndarray) -> np.ndarray:
    """panopticapi's ``np.array(image, dtype=np.uint32)`` followed by ``rgb2id``."""
    color = color.astype(np.uint32)
    return color[:, :, 0] + 256 * color[:, :, 1] + 256 * 256 * color[:, :, 2]


class CategoryStat:
    def __init__(self) -> None:
        self.iou, self.tp, self.fp, self.fn = 0.0, 0, 0, 0


def panopticapi_pq_single_core(
    images: list[dict[str, Any]], categories: list[dict[str, Any]]
) -> dict[int, CategoryStat]:
    """panopticapi's per-image PQ statistics on maps already in memory (same algorithm, same order).

    ``image["gt"]`` / ``image["pred"]`` are either id maps or the H x W x 3 uint8 RGB arrays a decoded PNG gives;
    RGB maps go through panopticapi's ``rgb2id`` first, as in its per-image loop.
    """
    stats: dict[int, CategoryStat] = defaultdict(CategoryStat)
    category_ids = {c["id"] for c in categories}
    for image in images:
        pan_gt, pan_pred = image["gt"], image["pred"]
        if pan_gt.ndim == 3:
            pan_gt, pan_pred = panopticapi_rgb2id(pan_gt), panopticapi_rgb2id(pan_pred)
        gt_segms = {el["id"]: dict(el) for el in image["gt_segments"]}
        pred_segms = {el["id"]: dict(el) for el in image["pred_segments"]}
        pred_labels_set = set(pred_segms)
        labels, labels_cnt = np.unique(pan_pred, return_counts=True)
        for label, label_cnt in zip(labels, labels_cnt):
            if label not in pred_segms:
                if label == VOID:
                    continue
                raise KeyError(f"segment {label} in PNG and not in JSON")
            pred_segms[label]["area"] = label_cnt
            pred_labels_set.remove(label)
            if pred_segms[label]["category_id"] not in category_ids:
                raise KeyError("unknown category")
        if pred_labels_set:
            raise KeyError("segments in JSON and not in PNG")
        panopticapi_match_image(pan_gt, pan_pred, gt_segms, pred_segms, stats)
    return stats


def panopticapi_match_image(
    pan_gt: np.ndarray,
    pan_pred: np.ndarray,
    gt_segms: dict[int, dict[str, Any]],
    pred_segms: dict[int, dict[str, Any]],
    stats: dict[int, CategoryStat],
) -> None:
    """The matching half of panopticapi's per-image loop: pair counting, IoU > 0.5 matches, crowd and VOID rules.

    ``gt_segms`` / ``pred_segms`` map segment id -> {"category_id", "iscrowd" (gt), "area"}; ``stats`` accumulates.
    """
    pan_gt_pred = pan_gt.astype(np.uint64) * OFFSET + pan_pred.astype(np.uint64)
    gt_pred_map = {}
    labels, labels_cnt = np.unique(pan_gt_pred, return_counts=True)
    for label, intersection in zip(labels, labels_cnt):
        gt_pred_map[(label // OFFSET, label % OFFSET)] = intersection
    gt_matched, pred_matched = set(), set()
    for (gt_label, pred_label), intersection in gt_pred_map.items():
        if gt_label not in gt_segms or pred_label not in pred_segms:
            continue
        if gt_segms[gt_label]["iscrowd"] == 1:
            continue
        if gt_segms[gt_label]["category_id"] != pred_segms[pred_label]["category_id"]:
            continue
        union = (
            pred_segms[pred_label]["area"]
            + gt_segms[gt_label]["area"]
            - intersection
            - gt_pred_map.get((VOID, pred_label), 0)
        )
        iou = intersection / union
        if iou > 0.5:
            stats[gt_segms[gt_label]["category_id"]].tp += 1
            stats[gt_segms[gt_label]["category_id"]].iou += iou
            gt_matched.add(gt_label)
            pred_matched.add(pred_label)
    crowd_labels_dict = {}
    for gt_label, gt_info in gt_segms.items():
        if gt_label in gt_matched:
            continue
        if gt_info["iscrowd"] == 1:
            crowd_labels_dict[gt_info["category_id"]] = gt_label
            continue
        stats[gt_info["category_id"]].fn += 1
    for pred_label, pred_info in pred_segms.items():
        if pred_label in pred_matched:
            continue
        intersection = gt_pred_map.get((VOID, pred_label), 0)
        if pred_info["category_id"] in crowd_labels_dict:
            intersection += gt_pred_map.get((crowd_labels_dict[pred_info["category_id"]], pred_label), 0)
        if intersection / pred_info["area"] > 0.5:
            continue
        stats[pred_info["category_id"]].fp += 1


def pq_average(stats: dict[int, CategoryStat], categories: list[dict[str, Any]]) -> float:
    """panopticapi's ``pq_average`` over all categories (PQ only)."""
    total, n = 0.0, 0
    for category in categories:
        stat = stats[category["id"]] if category["id"] in stats else CategoryStat()
        if stat.tp + stat.fp + stat.fn == 0:
            continue
        n += 1
        total += stat.iou / (stat.tp + 0.5 * stat.fp + 0.5 * stat.fn)
    return total / n


def to_torchmetrics(id_map: np.ndarray, segments: list[dict[str, Any]], stuff_ids: set[int]) -> np.ndarray:
    """(H, W, 2) (category, instance) map as torchmetrics' PanopticQuality takes it; VOID -> category -1."""
    output = np.full((*id_map.shape, 2), -1, dtype=np.int64)
    output[..., 1] = 0
    ids = np.array([0] + [s["id"] for s in segments], dtype=np.int64)
    categories = np.array([-1] + [s["category_id"] for s in segments], dtype=np.int64)
    instances = np.array([0] + [0 if s["category_id"] in stuff_ids else k + 1 for k, s in enumerate(segments)])
    order = np.argsort(ids)
    position = order[np.searchsorted(ids[order], id_map)]
    output[..., 0] = categories[position]
    output[..., 1] = instances[position]
    return output


def synthetic_instances(num_images: int, seed: int = 0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A COCO instances set and its results: polygons (boxes) rasterised to RLE, some crowd, 5-30 detections/image."""
    from pycocotools import mask as coco_mask

    rng = np.random.default_rng(seed)
    images, annotations, results = [], [], []
    height, width = 240, 320
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "height": height, "width": width})
        for index in range(int(rng.integers(0, 10))):
            h, w = (int(v) for v in rng.integers(4, 140, size=2))
            y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
            category = int(rng.integers(1, 21))
            rle = coco_mask.frPyObjects([[x, y, x + w, y, x + w, y + h, x, y + h]], height, width)[0]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
                    "area": float(coco_mask.area(rle)),
                    "bbox": [x, y, w, h],
                    "iscrowd": int(index == 0 and rng.random() < 0.1),
                }
            )
            for _ in range(int(rng.integers(1, 4))):
                dy, dx, dh, dw = (int(v) for v in rng.integers(-8, 9, size=4))
                yy, xx = int(np.clip(y + dy, 0, height - 2)), int(np.clip(x + dx, 0, width - 2))
                hh, ww = int(np.clip(h + dh, 1, height - yy)), int(np.clip(w + dw, 1, width - xx))
                det = coco_mask.frPyObjects([[xx, yy, xx + ww, yy, xx + ww, yy + hh, xx, yy + hh]], height, width)[0]
                results.append(
                    {
                        "image_id": image_id,
                        "category_id": category if rng.random() < 0.85 else int(rng.integers(1, 21)),
                        "segmentation": {"size": det["size"], "counts": det["counts"].decode("ascii")},
                        "score": float(rng.random()),
                    }
                )
        for _ in range(int(rng.integers(0, 8))):  # background false positives
            h, w = (int(v) for v in rng.integers(4, 60, size=2))
            y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
            det = coco_mask.frPyObjects([[x, y, x + w, y, x + w, y + h, x, y + h]], height, width)[0]
            results.append(
                {
                    "image_id": image_id,
                    "category_id": int(rng.integers(1, 21)),
                    "segmentation": {"size": det["size"], "counts": det["counts"].decode("ascii")},
                    "score": float(rng.random()),
                }
            )
    categories = [{"id": c, "name": str(c)} for c in range(1, 21)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def write_panoptic_files(images: list[dict[str, Any]], root: Path) -> None:
    """Writes ``synthetic_panoptic`` images as COCO panoptic files: root/gt.json + root/gt/*.png, root/pred.json +
    root/pred/*.png (ids as RGB colours, PNG level 6 as COCO's files)."""
    from PIL import Image

    for side in ("gt", "pred"):
        (root / side).mkdir(parents=True, exist_ok=True)
    annotations: dict[str, list[dict[str, Any]]] = {"gt": [], "pred": []}
    for image in images:
        name = f"{image['image_id']:06d}.png"
        for side in ("gt", "pred"):
            Image.fromarray(id_map_to_rgb(image[side])).save(root / side / name, compress_level=6)
            annotations[side].append(
                {"image_id": image["image_id"], "file_name": name, "segments_info": image[f"{side}_segments"]}
            )
    (root / "gt.json").write_text(json.dumps({"annotations": annotations["gt"], "categories": CATEGORIES}))
    (root / "pred.json").write_text(json.dumps({"annotations": annotations["pred"]}))
