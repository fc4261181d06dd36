"""File entry point of YouTube-VIS evaluation: results JSON + annotation JSON -> AP/AR, as the official ``ytvoseval``.

Formats (YouTube-VIS 2019/2021):
  annotation file: ``videos`` (``id``, ``height``, ``width``, ``length`` or ``file_names``), ``categories`` (``id``),
    ``annotations`` (``video_id``, ``category_id``, ``segmentations``: one entry per frame, an RLE, a polygon list or
    ``null``; ``areas``: one per frame, number or ``null``; ``iscrowd`` optional).
  results file: a list of ``{"video_id", "category_id", "score", "segmentations"}``, one per predicted track, with one
    RLE (or ``null``) per frame.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils

from omg_eval.kernels.video_overlap import rle_pair_intersections
from omg_eval.sharding import items_for_this_rank
from omg_eval.video_instance import YouTubeVISMetric


def _load_json(source: str | Path | dict | list, what: str) -> Any:
    if isinstance(source, (dict, list)):
        return source
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    with path.open() as handle:
        return json.load(handle)


def _video_frames(video: dict) -> int:
    if "length" in video:
        return int(video["length"])
    if "file_names" in video:
        return len(video["file_names"])
    raise ValueError(f"video {video.get('id')!r} has neither 'length' nor 'file_names'; the frame count is unknown")


def _to_rle(segmentation: Any, height: int, width: int, where: str) -> dict | None:
    """A frame's segmentation as a compressed RLE, or None for ``null`` (track absent from the frame)."""
    if segmentation is None:
        return None
    if isinstance(segmentation, dict):
        size, counts = segmentation.get("size"), segmentation.get("counts")
        if counts is None or size is None:
            raise ValueError(f"{where}: an RLE needs both 'size' and 'counts'")
        if len(size) != 2 or size[0] != height or size[1] != width:
            raise ValueError(
                f"{where}: RLE size {list(size)} differs from the video size [{height}, {width}]; encode masks at the "
                "annotation resolution"
            )
        if isinstance(counts, list):  # uncompressed RLE (the ground truth of YouTube-VIS uses it)
            return mask_utils.frPyObjects(segmentation, height, width)
        return segmentation
    if isinstance(segmentation, list):  # polygons
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    raise ValueError(f"{where}: a segmentation must be an RLE dict with 'size' and 'counts', a polygon list or null")


def _check_track(track: dict, num_frames: int, where: str) -> list:
    segmentations = track.get("segmentations")
    if not isinstance(segmentations, list):
        raise ValueError(f"{where}: 'segmentations' must be a list with one entry per frame")
    if len(segmentations) != num_frames:
        raise ValueError(
            f"{where}: {len(segmentations)} segmentations for a video of {num_frames} frames; give one per frame "
            "(null where the object is absent)"
        )
    return segmentations


def _frame_areas(rles: list[list[dict | None]], num_frames: int) -> torch.Tensor:
    """(N, T) int64 per-frame areas straight from the RLEs (0 where a track is absent), in one pycocotools call."""
    areas = torch.zeros(len(rles) * num_frames, dtype=torch.int64)
    present = [n * num_frames + t for n, track in enumerate(rles) for t, rle in enumerate(track) if rle is not None]
    if present:
        flat = [rle for track in rles for rle in track if rle is not None]
        areas[present] = torch.from_numpy(mask_utils.area(flat).astype(np.int64))
    return areas.reshape(len(rles), num_frames)


def _video_counts(
    pred_rles: list[list[dict | None]],
    pred_labels: list[int],
    gt_rles: list[list[dict | None]],
    gt_labels: list[int],
    num_frames: int,
    height: int,
    width: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Intersections (D, G) and per-frame areas (D, T), (G, T) of one video.

    Only pairs of the same category are ever compared, so only those are counted; the intersections of the other
    pairs are -1 (their IoU is NaN and never read).
    """
    pred_frame_areas = _frame_areas(pred_rles, num_frames)
    gt_frame_areas = _frame_areas(gt_rles, num_frames)
    intersections = torch.full((len(pred_rles), len(gt_rles)), -1, dtype=torch.int64)
    pairs = torch.tensor(
        [(i, j) for i, p in enumerate(pred_labels) for j, g in enumerate(gt_labels) if p == g], dtype=torch.int64
    ).reshape(-1, 2)
    if len(pairs):
        intersections[pairs[:, 0], pairs[:, 1]] = rle_pair_intersections(pred_rles, gt_rles, pairs, height, width)
    return intersections, pred_frame_areas, gt_frame_areas


def evaluate_youtube_vis(results_json: str | Path | list, gt_json: str | Path | dict) -> dict[str, Any]:
    """Evaluate YouTube-VIS results against an annotation file.

    Arguments:
      results_json: path to the results JSON (or the loaded list).
      gt_json: path to the annotation JSON (or the loaded dict).

    Returns:
      The figures of :meth:`YouTubeVISMetric.compute` (AP, AP50, AP75, AP_small, ..., AR100, AP_per_category).

    Raises:
      ValueError: for results naming unknown videos or categories, per-frame lists of the wrong length, masks at the
        wrong size, or a malformed annotation (the message names the track and the fix).
    """
    gt = _load_json(gt_json, "annotation file")
    results = _load_json(results_json, "results file")
    if not isinstance(gt, dict) or not {"videos", "categories", "annotations"} <= gt.keys():
        raise ValueError("the annotation file must be a dict with 'videos', 'categories' and 'annotations'")
    if not isinstance(results, list):
        raise ValueError("the results file must be a list of {video_id, category_id, score, segmentations}")
    videos = {video["id"]: video for video in gt["videos"]}
    metric = YouTubeVISMetric([category["id"] for category in gt["categories"]])
    gt_by_video: dict[Any, list[dict]] = defaultdict(list)
    for annotation in gt["annotations"]:
        if annotation.get("video_id") not in videos:
            raise ValueError(
                f"annotation {annotation.get('id')!r} refers to unknown video {annotation.get('video_id')!r}"
            )
        gt_by_video[annotation["video_id"]].append(annotation)
    pred_by_video: dict[Any, list[dict]] = defaultdict(list)
    for index, result in enumerate(results):
        missing = {"video_id", "category_id", "score", "segmentations"} - result.keys()
        if missing:
            raise ValueError(f"result {index} lacks {sorted(missing)}")
        if result["video_id"] not in videos:
            raise ValueError(
                f"result {index} refers to video {result['video_id']!r}, which is not in the annotation file; "
                "evaluate against the annotation file the results were made for"
            )
        pred_by_video[result["video_id"]].append(result)
    for video_id in items_for_this_rank(sorted(videos)):
        video = videos[video_id]
        height, width, num_frames = int(video["height"]), int(video["width"]), _video_frames(video)
        preds, gts = pred_by_video[video_id], gt_by_video[video_id]
        if not preds and not gts:
            continue
        pred_rles = [
            [
                _to_rle(s, height, width, f"result for video {video_id} frame {t}")
                for t, s in enumerate(_check_track(p, num_frames, f"a result for video {video_id}"))
            ]
            for p in preds
        ]
        gt_rles, gt_areas = [], []
        for annotation in gts:
            where = f"annotation {annotation.get('id')!r}"
            segmentations = _check_track(annotation, num_frames, where)
            gt_rles.append([_to_rle(s, height, width, f"{where} frame {t}") for t, s in enumerate(segmentations)])
            areas = annotation.get("areas")
            if not isinstance(areas, list) or len(areas) != num_frames:
                raise ValueError(f"{where}: 'areas' must list one area (or null) per frame")
            gt_areas.append([float("nan") if a is None else float(a) for a in areas])
        pred_labels = [int(p["category_id"]) for p in preds]
        gt_labels = [int(a["category_id"]) for a in gts]
        intersections, pred_frame_areas, gt_mask_areas = _video_counts(
            pred_rles, pred_labels, gt_rles, gt_labels, num_frames, height, width
        )
        metric.add_video_statistics(
            video_id=video_id,
            pred_scores=torch.tensor([float(p["score"]) for p in preds], dtype=torch.float64),
            pred_labels=torch.tensor(pred_labels, dtype=torch.int64),
            pred_frame_areas=pred_frame_areas,
            gt_labels=torch.tensor(gt_labels, dtype=torch.int64),
            gt_iscrowd=torch.tensor([bool(a.get("iscrowd", 0)) for a in gts], dtype=torch.bool),
            gt_frame_areas=torch.tensor(gt_areas, dtype=torch.float64).reshape(len(gts), num_frames),
            intersections=intersections,
            pred_areas=pred_frame_areas.sum(1),
            gt_areas=gt_mask_areas.sum(1),
        )
    metric.sync()
    return metric.compute()
