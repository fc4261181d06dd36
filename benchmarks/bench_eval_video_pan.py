"""VPQ and STQ over 100 synthetic videos: ours (one pair-count kernel call per video, vectorised windows) against
straightforward re-implementations of the official algorithms (VIPSeg ``eval_vpq_vspw.vpq_compute_single_core`` and
deeplab2's numpy ``STQuality``), kept here because CI has no copy of the official repositories. Outputs are checked
equal before anything is timed. Image decoding and JSON handling are left out on both sides.
"""

from __future__ import annotations

import collections
import math
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from omg_eval.stq import SegmentationTrackingQuality
from omg_eval.video_panoptic_quality import VideoPanopticQuality

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_image_data import CategoryStat, panopticapi_match_image  # noqa: E402  (VIPSeg reuses panopticapi's loop)

NUM_VIDEOS = 100
NUM_FRAMES, HEIGHT, WIDTH = 6, 90, 160  # 1/8 of a 720p VIPSeg frame
NUM_CLASSES, THINGS, DIVISOR, VOID = 20, (0, 1, 2, 3, 4, 5, 6, 7), 1000, 255
NFRAMES = (1, 2, 3, 4)  # VIPSeg's k = 0, 5, 10, 15


def _synthetic_videos(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(pred, gt) int64 T x H x W pairs: stuff bands, moving things, a VOID band, jittered and id-switched predictions."""
    rng = np.random.default_rng(seed)
    videos = []
    rows = np.arange(HEIGHT)[:, None]
    cols = np.arange(WIDTH)[None, :]
    for _ in range(NUM_VIDEOS):
        gt = np.empty((NUM_FRAMES, HEIGHT, WIDTH), np.int64)
        pred = np.empty_like(gt)
        bands = rng.integers(len(THINGS), NUM_CLASSES, size=4)
        objects = [(int(rng.choice(THINGS)), i + 1, *rng.integers(0, [HEIGHT - 20, WIDTH - 30]),
                    *rng.integers(8, [20, 30]), *rng.integers(-3, 4, size=2)) for i in range(10)]
        for t in range(NUM_FRAMES):
            stuff = bands[np.minimum(rows * 4 // HEIGHT, 3)] * DIVISOR
            gt[t] = np.broadcast_to(stuff, (HEIGHT, WIDTH))
            pred[t] = np.broadcast_to(bands[np.minimum((rows + t) * 4 // HEIGHT, 3)] * DIVISOR, (HEIGHT, WIDTH))
            for category, instance, y, x, h, w, vy, vx in objects:
                y0, x0 = y + vy * t, x + vx * t
                inside = (rows >= y0) & (rows < y0 + h) & (cols >= x0) & (cols < x0 + w)
                gt[t][inside] = category * DIVISOR + instance
                dy, dx = rng.integers(-2, 3, size=2)
                shifted = (rows >= y0 + dy) & (rows < y0 + dy + h) & (cols >= x0 + dx) & (cols < x0 + dx + w)
                switched = instance + 20 if (instance % 4 == 0 and t >= NUM_FRAMES // 2) else instance
                pred[t][shifted] = category * DIVISOR + switched
            gt[t][:, -6:] = VOID * DIVISOR
        videos.append((pred, gt))
    return videos


# ----------------------------------------------------------------------------------------------------------------
# Reference: the VIPSeg evaluator's algorithm, one window at a time with dictionaries, as in vpq_compute_single_core.
# ----------------------------------------------------------------------------------------------------------------
def _reference_vpq(videos: list[tuple[np.ndarray, np.ndarray]]) -> list[dict[str, float]]:
    results = []
    for nframes in NFRAMES:
        stats: dict[int, CategoryStat] = collections.defaultdict(CategoryStat)
        for pred, gt in videos:
            for start in range(0, NUM_FRAMES - nframes + 1):
                window_gt, window_pred = gt[start : start + nframes], pred[start : start + nframes]
                # Official ids: 0 is VOID; segments carry category and iscrowd in dictionaries.
                gt_ids = np.where(window_gt // DIVISOR == VOID, 0, window_gt + 1).astype(np.uint64)
                pred_ids = np.where(window_pred // DIVISOR == VOID, 0, window_pred + 1).astype(np.uint64)
                gt_segms, pred_segms = {}, {}
                for ids, segms, is_gt in ((gt_ids, gt_segms, True), (pred_ids, pred_segms, False)):
                    labels, areas = np.unique(ids, return_counts=True)
                    for label, area in zip(labels, areas):
                        if label == 0:
                            continue
                        category = int((label - 1) // DIVISOR)
                        crowd = is_gt and category in THINGS and (label - 1) % DIVISOR == 0
                        segms[label] = {"category_id": category, "area": area, "iscrowd": int(crowd)}
                panopticapi_match_image(gt_ids, pred_ids, gt_segms, pred_segms, stats)
        per_subset = {}
        for name, members in (("all", range(NUM_CLASSES)), ("thing", THINGS),
                              ("stuff", [c for c in range(NUM_CLASSES) if c not in THINGS])):
            pqs = []
            for category in members:
                iou, tp, fp, fn = stats[category].iou, stats[category].tp, stats[category].fp, stats[category].fn
                if tp + fp + fn:
                    pqs.append(iou / (tp + 0.5 * fp + 0.5 * fn))
            per_subset[name] = sum(pqs) / len(pqs) if pqs else math.nan
        results.append(per_subset)
    return results


# ----------------------------------------------------------------------------------------------------------------
# Reference: deeplab2's numpy STQuality algorithm (per-frame dictionary updates, then the gt x pred double loop).
# ----------------------------------------------------------------------------------------------------------------
def _reference_stq(videos: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    offset = 2**24
    confusion = np.zeros((NUM_CLASSES + 1, NUM_CLASSES + 1), np.float64)
    aq_sum, num_tubes = 0.0, 0
    for pred, gt in videos:
        predictions, ground_truth, intersections = {}, {}, {}
        for y_true, y_pred in zip(gt, pred):
            semantic_label, semantic_pred = y_true // DIVISOR, y_pred // DIVISOR
            semantic_label = np.where(semantic_label != VOID, semantic_label, NUM_CLASSES)
            semantic_pred = np.where(semantic_pred != VOID, semantic_pred, NUM_CLASSES)
            keys, counts = np.unique(semantic_label * (NUM_CLASSES + 1) + semantic_pred, return_counts=True)
            confusion[keys // (NUM_CLASSES + 1), keys % (NUM_CLASSES + 1)] += counts
            label_mask = np.isin(semantic_label, THINGS)
            prediction_mask = np.isin(semantic_pred, THINGS)
            is_crowd = label_mask & (y_true % DIVISOR == 0)
            label_mask &= ~is_crowd
            prediction_mask &= ~is_crowd
            for stats, ids in ((predictions, y_pred[prediction_mask]), (ground_truth, y_true[label_mask]),
                               (intersections, y_true[label_mask & prediction_mask] * offset
                                + y_pred[label_mask & prediction_mask])):
                for idx, count in zip(*np.unique(ids, return_counts=True)):
                    stats[idx] = stats.get(idx, 0) + float(count)
        for gt_id, gt_size in ground_truth.items():
            inner = 0.0
            for pr_id, pr_size in predictions.items():
                tpa = intersections.get(offset * gt_id + pr_id)
                if tpa is not None:
                    inner += tpa * (tpa / (gt_size + pr_size - tpa))
            aq_sum += inner / gt_size
        num_tubes += len(ground_truth)
    confusion[NUM_CLASSES, :] = 0
    inter = confusion.diagonal()
    unions = confusion.sum(0) + confusion.sum(1) - inter
    iou = float(np.sum(inter / np.maximum(unions, 1e-15)) / np.count_nonzero(unions))
    aq = aq_sum / max(num_tubes, 1e-15)
    return {"stq": math.sqrt(aq * iou), "aq": aq, "sq": iou}


def _ours_vpq(videos: list[tuple[torch.Tensor, torch.Tensor]]) -> dict:
    metric = VideoPanopticQuality(NUM_CLASSES, THINGS, DIVISOR, VOID, window_sizes=(0, 5, 10, 15), annotation_stride=5)
    for pred, gt in videos:
        metric.update(pred, gt)
    return metric.compute()


def _ours_stq(videos: list[tuple[torch.Tensor, torch.Tensor]]) -> dict:
    metric = SegmentationTrackingQuality(NUM_CLASSES, THINGS, DIVISOR, VOID)
    for pred, gt in videos:
        metric.update(pred, gt)
    return metric.compute()


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # The reference is single-threaded numpy; on a shared 2-core machine torch's intra-op threads also stall
    # badly when the cores are busy (a 20x slowdown was seen), so both sides run on one thread.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def videos() -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[torch.Tensor, torch.Tensor]]]:
    arrays = _synthetic_videos()
    return arrays, [(torch.from_numpy(p), torch.from_numpy(g)) for p, g in arrays]


@pytest.fixture(scope="module")
def checked(videos) -> bool:
    arrays, tensors = videos
    reference, ours = _reference_vpq(arrays), _ours_vpq(tensors)
    for nframes, expected in zip(NFRAMES, reference, strict=True):
        k = (nframes - 1) * 5
        for name, key in (("all", "vpq"), ("thing", "vpq_thing"), ("stuff", "vpq_stuff")):
            assert abs(ours[f"{key}@{k}"] - expected[name]) <= 1e-9, (k, name)
    assert 0.05 < ours["vpq"] < 0.95
    reference_stq, ours_stq = _reference_stq(arrays), _ours_stq(tensors)
    for key in ("stq", "aq", "sq"):
        assert abs(ours_stq[key] - reference_stq[key]) <= 1e-9, key
    assert 0.05 < ours_stq["stq"] < 0.95
    return True


@pytest.mark.benchmark(group="video_pan_vpq_100_videos")
def test_vpq_reference(benchmark, videos, checked) -> None:
    benchmark.extra_info["role"] = "reference"
    benchmark.pedantic(_reference_vpq, args=(videos[0],), rounds=2, iterations=1)


@pytest.mark.benchmark(group="video_pan_vpq_100_videos")
def test_vpq_ours(benchmark, videos, checked) -> None:
    benchmark.extra_info["role"] = "ours"
    benchmark.pedantic(_ours_vpq, args=(videos[1],), rounds=5, iterations=1)


@pytest.mark.benchmark(group="video_pan_stq_100_videos")
def test_stq_reference(benchmark, videos, checked) -> None:
    benchmark.extra_info["role"] = "reference"
    benchmark.pedantic(_reference_stq, args=(videos[0],), rounds=2, iterations=1)


@pytest.mark.benchmark(group="video_pan_stq_100_videos")
def test_stq_ours(benchmark, videos, checked) -> None:
    benchmark.extra_info["role"] = "ours"
    benchmark.pedantic(_ours_stq, args=(videos[1],), rounds=5, iterations=1)
