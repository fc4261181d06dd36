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

from omg_eval.kernels.video_overlap import track_intersections
from omg_eval.video_instance import YouTubeVISMetric

# Decode at most this many mask bytes at once; longer or larger videos are counted in chunks of frames.
_DECODE_BUDGET_BYTES = 256 << 20


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
    if isinstance(segmentation, list):  # polygons
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if not isinstance(segmentation, dict) or "counts" not in segmentation or "size" not in segmentation:
        raise ValueError(
            f"{where}: a segmentation must be an RLE dict with 'size' and 'counts', a polygon list or null"
        )
    if list(segmentation["size"]) != [height, width]:
        raise ValueError(
            f"{where}: RLE size {segmentation['size']} differs from the video size [{height}, {width}]; encode masks "
            "at the annotation resolution"
        )
    if isinstance(segmentation["counts"], list):  # uncompressed RLE (the ground truth of YouTube-VIS uses it)
        return mask_utils.frPyObjects(segmentation, height, width)
    return segmentation


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


def _decode_frames(rles: list[list[dict | None]], start: int, stop: int, height: int, width: int) -> torch.Tensor:
    """(N, stop - start, H, W) bool masks of N tracks over frames [start, stop)."""
    masks = np.zeros((len(rles), stop - start, height, width), dtype=bool)
    for n, track in enumerate(rles):
        for t in range(start, stop):
            if track[t] is not None:
                masks[n, t - start] = mask_utils.decode(track[t]).astype(bool)
    return torch.from_numpy(masks)


def _video_counts(
    pred_rles: list[list[dict | None]], gt_rles: list[list[dict | None]], num_frames: int, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Intersections (D, G) and per-frame areas (D, T), (G, T) of a video, decoding a bounded chunk of frames at once."""
    num_pred, num_gt = len(pred_rles), len(gt_rles)
    intersections = torch.zeros(num_pred, num_gt, dtype=torch.int64)
    pred_frame_areas = torch.zeros(num_pred, num_frames, dtype=torch.int64)
    gt_frame_areas = torch.zeros(num_gt, num_frames, dtype=torch.int64)
    if num_pred == 0 or num_gt == 0:  # only the areas are needed, straight from the RLEs
        for rles, areas in ((pred_rles, pred_frame_areas), (gt_rles, gt_frame_areas)):
            for n, track in enumerate(rles):
                for t, rle in enumerate(track):
                    if rle is not None:
                        areas[n, t] = int(mask_utils.area(rle))
        return intersections, pred_frame_areas, gt_frame_areas
    frames_per_chunk = max(1, _DECODE_BUDGET_BYTES // max(1, (num_pred + num_gt) * height * width))
    for start in range(0, num_frames, frames_per_chunk):
        stop = min(num_frames, start + frames_per_chunk)
        pred_masks = _decode_frames(pred_rles, start, stop, height, width)  # D x t x H x W
        gt_masks = _decode_frames(gt_rles, start, stop, height, width)  # G x t x H x W
        intersections += track_intersections(pred_masks.flatten(1), gt_masks.flatten(1))
        pred_frame_areas[:, start:stop] = pred_masks.flatten(2).sum(2)
        gt_frame_areas[:, start:stop] = gt_masks.flatten(2).sum(2)
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
    for video_id in sorted(videos):
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
        intersections, pred_frame_areas, gt_mask_areas = _video_counts(pred_rles, gt_rles, num_frames, height, width)
        metric.add_video_statistics(
            video_id=video_id,
            pred_scores=torch.tensor([float(p["score"]) for p in preds], dtype=torch.float64),
            pred_labels=torch.tensor([int(p["category_id"]) for p in preds], dtype=torch.int64),
            pred_frame_areas=pred_frame_areas,
            gt_labels=torch.tensor([int(a["category_id"]) for a in gts], dtype=torch.int64),
            gt_iscrowd=torch.tensor([bool(a.get("iscrowd", 0)) for a in gts], dtype=torch.bool),
            gt_frame_areas=torch.tensor(gt_areas, dtype=torch.float64).reshape(len(gts), num_frames),
            intersections=intersections,
            pred_areas=pred_frame_areas.sum(1),
            gt_areas=gt_mask_areas.sum(1),
        )
    return metric.compute()
