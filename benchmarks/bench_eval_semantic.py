"""Semantic-metric benchmarks: each group pairs our evaluator with the official algorithm measured in the same run.

Groups (``nox -s bench`` turns each into the ratio ours / reference):
  semantic-miou-mmseg  mIoU, aAcc (our "pACC") and mAcc of 200 ADE20K-like 512 x 512 label maps, 150 classes;
                       reference: mmseg's ``IoUMetric`` per-image algorithm (``intersect_and_union``: drop ignore
                       pixels, three ``torch.histc`` over the classes; ``total_area_to_metrics``: sums, IoU =
                       intersect / union, nanmean), transcribed here. Ours: ``SemanticSegmentation.update`` on the
                       list of maps, then ``compute``.
  vspw-miou-vc         VSPW mIoU and VC8 of 100 synthetic 10-frame videos of 240 x 427 (half of VSPW's 480p),
                       124 classes; reference: the VSPW evaluation code (``utils.Evaluator`` fast_hist per frame for
                       mIoU, ``VC_perclip.get_common`` for VC), transcribed here. Ours: ``VideoSemanticMetric``
                       updated once per video. VC16 is not measured: every video has at most 16 frames, so the
                       official script skips them all and VC16 is NaN on both sides.

Both sides of a group start from the same int64 label maps in memory (the dtype an argmax and mmseg's / VSPW's
loaders give), PNG decoding left out. Every group checks the figures agree before anything is timed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from pytest_benchmark.fixture import BenchmarkFixture

from omg_eval.semantic import SemanticSegmentation
from omg_eval.video_semantic import VideoSemanticMetric

IGNORE = 255

# ADE20K-like images: 150 classes; the ground truth draws from classes [0, 144), class 144 only ever appears in the
# wrong blocks of the predictions, and classes 145..149 occur nowhere (left out of every mean on both sides).
ADE_IMAGES, ADE_SIZE, ADE_CLASSES = 200, 512, 150
ADE_GT_CLASSES, ADE_PRED_ONLY_CLASS = 144, 144

# VSPW-like videos: 124 classes drawn from [0, 120); class 120 only predicted, 121..123 nowhere. Ground truth also
# holds VOID (255) bands around moving objects and VSPW's "others" (raw 0, i.e. -1 after the label shift) regions.
VSPW_VIDEOS, VSPW_FRAMES, VSPW_HEIGHT, VSPW_WIDTH, VSPW_CLASSES = 100, 10, 240, 427, 124
VSPW_GT_CLASSES, VSPW_PRED_ONLY_CLASS, VSPW_OTHERS = 120, 120, -1
CLIP_LENGTH = 8


def _voronoi_labels(
    rng: np.random.Generator, height: int, width: int, classes: np.ndarray, num_regions: int, cell: int
) -> np.ndarray:
    """A height x width int64 map of ``num_regions`` Voronoi regions (computed on a grid ``cell`` times coarser, so
    region borders are staircases like the polygons of ADE / VSPW annotations), each given a class from ``classes``.
    """
    coarse_h, coarse_w = -(-height // cell), -(-width // cell)
    seeds = rng.random((num_regions, 2)) * (coarse_h, coarse_w)  # R x 2
    ys, xs = np.mgrid[0:coarse_h, 0:coarse_w]  # h x w each
    distances = (ys[..., None] - seeds[:, 0]) ** 2 + (xs[..., None] - seeds[:, 1]) ** 2  # h x w x R
    region = distances.argmin(axis=-1)  # h x w
    labels = rng.choice(classes, size=num_regions)[region]
    return np.repeat(np.repeat(labels, cell, axis=0), cell, axis=1)[:height, :width].astype(np.int64)


def _random_box(rng: np.random.Generator, height: int, width: int, low: int, high: int) -> tuple[slice, slice]:
    box_h, box_w = rng.integers(low, high, size=2)
    y, x = rng.integers(0, height - box_h), rng.integers(0, width - box_w)
    return slice(y, y + box_h), slice(x, x + box_w)


def synthetic_ade(seed: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(predictions, ground truths): ADE_IMAGES pairs of ADE_SIZE x ADE_SIZE int64 maps.

    The ground truth holds 6-14 regions, an unlabelled (ignore) border band on some images and scattered ignore
    pixels; the prediction is the scene under the ground truth (so it predicts a class where the ground truth says
    ignore) with 2-4 blocks of wrong classes, which sometimes are the predicted-only class.
    """
    rng = np.random.default_rng(seed)
    gt_classes = np.arange(ADE_GT_CLASSES)
    preds, gts = [], []
    for _ in range(ADE_IMAGES):
        scene = _voronoi_labels(rng, ADE_SIZE, ADE_SIZE, gt_classes, int(rng.integers(6, 15)), cell=8)
        pred = scene.copy()
        for _ in range(int(rng.integers(2, 5))):
            wrong = ADE_PRED_ONLY_CLASS if rng.random() < 0.2 else int(rng.integers(0, ADE_GT_CLASSES))
            pred[_random_box(rng, ADE_SIZE, ADE_SIZE, 24, 160)] = wrong
        gt = scene
        if rng.random() < 0.5:
            band = int(rng.integers(2, 12))
            gt[:band], gt[-band:], gt[:, :band], gt[:, -band:] = IGNORE, IGNORE, IGNORE, IGNORE
        gt[rng.random(gt.shape) < 0.01] = IGNORE
        preds.append(torch.from_numpy(pred))
        gts.append(torch.from_numpy(gt))
    return preds, gts


def synthetic_vspw(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """VSPW_VIDEOS (prediction, ground truth) pairs of T x H x W int64 videos.

    Each video has a static background of Voronoi regions (one of them "others" in a third of the videos) and 2-4
    boxes moving 0-3 pixels per frame, each framed by a 2-pixel VOID band. The prediction follows the scene with the
    boxes off by a jittering pixel offset (so their borders flicker), predicts a class where the ground truth is VOID
    or "others", mistakes a third of the background regions for another class in every frame (consistent but
    wrong: lowers mIoU, not VC) and in some frames has a wrong block that comes and goes: VC8 lies well inside (0, 1).
    """
    rng = np.random.default_rng(seed)
    gt_classes = np.arange(VSPW_GT_CLASSES)
    videos = []
    for _ in range(VSPW_VIDEOS):
        background = _voronoi_labels(rng, VSPW_HEIGHT, VSPW_WIDTH, gt_classes, int(rng.integers(4, 10)), cell=6)
        others = background == background[rng.integers(0, VSPW_HEIGHT), rng.integers(0, VSPW_WIDTH)]
        has_others = rng.random() < 1 / 3
        boxes = []
        for _ in range(int(rng.integers(2, 5))):
            box_h, box_w = rng.integers(20, 80, size=2)
            y, x = rng.integers(10, VSPW_HEIGHT - box_h - 10), rng.integers(10, VSPW_WIDTH - box_w - 10)
            velocity = rng.integers(-3, 4, size=2)
            boxes.append((int(rng.choice(gt_classes)), y, x, box_h, box_w, velocity))
        present = np.unique(background)
        confused = {int(c): int(rng.integers(0, VSPW_GT_CLASSES)) for c in rng.choice(present, size=len(present) // 3)}
        gt = np.empty((VSPW_FRAMES, VSPW_HEIGHT, VSPW_WIDTH), np.int64)
        pred = np.empty_like(gt)
        for t in range(VSPW_FRAMES):
            gt[t], pred[t] = background, background
            if has_others:
                gt[t][others] = VSPW_OTHERS
            for label, y, x, box_h, box_w, (vy, vx) in boxes:
                y0 = int(np.clip(y + vy * t, 2, VSPW_HEIGHT - box_h - 2))
                x0 = int(np.clip(x + vx * t, 2, VSPW_WIDTH - box_w - 2))
                gt[t, y0 - 2 : y0 + box_h + 2, x0 - 2 : x0 + box_w + 2] = IGNORE
                gt[t, y0 : y0 + box_h, x0 : x0 + box_w] = label
                dy, dx = rng.integers(-2, 3, size=2)
                pred[t, max(0, y0 + dy) : y0 + dy + box_h, max(0, x0 + dx) : x0 + dx + box_w] = label
            for region_class in confused:  # a region mistaken for another class in every frame
                pred[t][background == region_class] = confused[region_class]
            if rng.random() < 0.5:
                wrong = VSPW_PRED_ONLY_CLASS if rng.random() < 0.3 else int(rng.integers(0, VSPW_GT_CLASSES))
                pred[t][_random_box(rng, VSPW_HEIGHT, VSPW_WIDTH, 16, 80)] = wrong
        videos.append((torch.from_numpy(pred), torch.from_numpy(gt)))
    return videos


# ----------------------------------------------------------------------------------------------------------------
# Reference 1: mmseg IoUMetric (mmseg/evaluation/metrics/iou_metric.py), per image, in float32 as mmseg computes it.
# ----------------------------------------------------------------------------------------------------------------
def mmseg_intersect_and_union(
    pred_label: torch.Tensor, label: torch.Tensor, num_classes: int, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """mmseg's per-image areas: float32 (K,) intersection, union, prediction and ground-truth histograms."""
    labelled = label != ignore_index
    pred_label, label = pred_label[labelled], label[labelled]
    intersect = pred_label[pred_label == label]
    area_intersect = torch.histc(intersect.float(), bins=num_classes, min=0, max=num_classes - 1)
    area_pred_label = torch.histc(pred_label.float(), bins=num_classes, min=0, max=num_classes - 1)
    area_label = torch.histc(label.float(), bins=num_classes, min=0, max=num_classes - 1)
    return area_intersect, area_pred_label + area_label - area_intersect, area_pred_label, area_label


def mmseg_areas(preds: list[torch.Tensor], gts: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Summed float32 (K,) areas (intersection, union, prediction, label) as mmseg's ``compute_metrics`` sums them."""
    per_image = [mmseg_intersect_and_union(p, g, ADE_CLASSES, IGNORE) for p, g in zip(preds, gts, strict=True)]
    return tuple(sum(column) for column in zip(*per_image))


def mmseg_figures(areas: tuple[torch.Tensor, ...]) -> dict[str, float]:
    """``total_area_to_metrics`` with metrics=["mIoU"], then the nanmean of the summary (without mmseg's rounding to
    two decimals of a percent). The dtype of ``areas`` decides the arithmetic: float32 is mmseg's own."""
    total_intersect, total_union, _, total_label = areas
    return {
        "aAcc": float((total_intersect.sum() / total_label.sum()).numpy()),
        "mIoU": float(np.nanmean((total_intersect / total_union).numpy())),
        "mAcc": float(np.nanmean((total_intersect / total_label).numpy())),
    }


def mmseg_reference(preds: list[torch.Tensor], gts: list[torch.Tensor]) -> dict[str, float]:
    """aAcc, mIoU and mAcc as mmseg's IoUMetric reports them (fractions, float32 arithmetic)."""
    return mmseg_figures(mmseg_areas(preds, gts))


def ours_semantic(preds: list[torch.Tensor], gts: list[torch.Tensor]) -> SemanticSegmentation:
    """Our metric after one ``update`` with the whole list (``compute`` is left to the caller)."""
    metric = SemanticSegmentation(ADE_CLASSES, ignore_index=IGNORE)
    metric.update(preds, gts)
    return metric


# ----------------------------------------------------------------------------------------------------------------
# Reference 2: the VSPW evaluation code (sssdddwww2/CVPR2021_VSPW_Implement): utils.Evaluator for mIoU (a float64
# confusion matrix fed frame by frame, ground truth kept where 0 <= gt < K) and VC_perclip.get_common for VC.
# get_common reads the raw VSPW masks (label + 1, others 0, void 255); VC only tests labels for equality, so it gives
# the same scores on the shifted labels (others -1, void 255) that both sides read here.
# ----------------------------------------------------------------------------------------------------------------
def vspw_fast_hist(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``Evaluator._generate_matrix``: K x K counts (rows ground truth) of the pixels with 0 <= gt < K."""
    labelled = (gt >= 0) & (gt < num_classes)
    return np.bincount(num_classes * gt[labelled] + pred[labelled], minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def vspw_miou(confusion: np.ndarray) -> float:
    """``Evaluator.Mean_Intersection_over_Union``: IoU summed over the classes present in the ground truth."""
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.diag(confusion) / (confusion.sum(axis=1) + confusion.sum(axis=0) - np.diag(confusion))
    in_gt = confusion.sum(axis=1) > 0
    return float(np.nansum(iou * in_gt) / in_gt.sum())


def vspw_clip_scores(gt_frames: np.ndarray, pred_frames: np.ndarray, clip_length: int) -> list[float]:
    """``get_common``: clip starts 0 .. T-n-1; per clip, the pixels whose ground truth (and prediction) equals the
    clip's first frame in each of the next n-1 frames; score = both-stable area / gt-stable area (NaN when 0 / 0)."""
    height, width = gt_frames.shape[1:]
    scores = []
    for start in range(len(gt_frames) - clip_length):
        gt_common = np.ones((height, width))
        pred_common = np.ones((height, width))
        for offset in range(1, clip_length):
            gt_common = np.logical_and(gt_common, gt_frames[start] == gt_frames[start + offset])
            pred_common = np.logical_and(pred_common, pred_frames[start] == pred_frames[start + offset])
        with np.errstate(invalid="ignore", divide="ignore"):
            scores.append((pred_common * gt_common).sum() / gt_common.sum())
    return scores


def vspw_reference(videos: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """mIoU and VC8 of (prediction, ground truth) T x H x W videos, as the VSPW scripts compute them."""
    confusion = np.zeros((VSPW_CLASSES, VSPW_CLASSES))
    clip_scores: list[float] = []
    for pred, gt in videos:
        for gt_frame, pred_frame in zip(gt, pred, strict=True):
            confusion += vspw_fast_hist(gt_frame, pred_frame, VSPW_CLASSES)
        if len(gt) > CLIP_LENGTH:  # VC_perclip skips videos of at most n frames
            clip_scores.extend(vspw_clip_scores(gt, pred, CLIP_LENGTH))
    vc = float(np.nanmean(np.array(clip_scores))) if clip_scores else math.nan
    return {"mIoU": vspw_miou(confusion), f"VC{CLIP_LENGTH}": vc}


def ours_video_semantic(videos: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, Any]:
    """Our VSPW figures: one ``update`` per (prediction, ground truth) T x H x W video, then ``compute``."""
    metric = VideoSemanticMetric(VSPW_CLASSES, IGNORE, (CLIP_LENGTH,))
    for pred, gt in videos:
        metric.update(pred, gt)
    return metric.compute()


# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ade_maps() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    return synthetic_ade(seed=0)


@pytest.fixture(scope="module")
def vspw_videos() -> list[tuple[torch.Tensor, torch.Tensor]]:
    return synthetic_vspw(seed=0)


@pytest.mark.benchmark(group="semantic-miou-mmseg")
def test_semantic_miou_reference_mmseg(
    benchmark: BenchmarkFixture, ade_maps: tuple[list[torch.Tensor], list[torch.Tensor]]
) -> None:
    benchmark.extra_info["role"] = "reference"
    preds, gts = ade_maps
    metric = ours_semantic(preds, gts)
    ours = metric.compute()
    areas = mmseg_areas(preds, gts)
    # mmseg's float32 histograms hold exact integers here (every total is below 2^24): the same counts as ours
    confusion = metric.confusion
    intersect, _, pred_area, label_area = areas
    for theirs, mine in (
        (intersect, confusion.diagonal()),
        (label_area, confusion.sum(1)),
        (pred_area, confusion.sum(0)),
    ):
        assert bool((theirs == theirs.round()).all()) and torch.equal(theirs.to(torch.int64), mine)
    # mmseg divides in float32; its formulas on the same counts in float64 must give our figures to the last bits
    exact = mmseg_figures(tuple(area.double() for area in areas))
    assert ours["mIoU"] == pytest.approx(exact["mIoU"], rel=0, abs=1e-12)
    assert ours["pACC"] == pytest.approx(exact["aAcc"], rel=0, abs=1e-12)
    assert ours["mACC"] == pytest.approx(exact["mAcc"], rel=0, abs=1e-12)
    # and mmseg as it runs, to float32 rounding
    as_run = mmseg_reference(preds, gts)
    for mine, theirs in (("mIoU", "mIoU"), ("pACC", "aAcc"), ("mACC", "mAcc")):
        assert ours[mine] == pytest.approx(as_run[theirs], rel=0, abs=1e-6), mine
    # the awkward classes are there: one predicted only (IoU 0, in the mean), five in neither (out of every mean)
    assert ours["per_class"][str(ADE_PRED_ONLY_CLASS)]["IoU"] == 0.0
    assert all(math.isnan(ours["per_class"][str(k)]["IoU"]) for k in range(ADE_PRED_ONLY_CLASS + 1, ADE_CLASSES))
    assert 0.3 < ours["mIoU"] < 0.95
    benchmark.pedantic(mmseg_reference, args=ade_maps, rounds=2, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="semantic-miou-mmseg")
def test_semantic_miou_ours(
    benchmark: BenchmarkFixture, ade_maps: tuple[list[torch.Tensor], list[torch.Tensor]]
) -> None:
    benchmark.extra_info["role"] = "ours"
    benchmark.pedantic(lambda: ours_semantic(*ade_maps).compute(), rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="vspw-miou-vc")
def test_vspw_reference(benchmark: BenchmarkFixture, vspw_videos: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    benchmark.extra_info["role"] = "reference"
    arrays = [(pred.numpy(), gt.numpy()) for pred, gt in vspw_videos]
    expected = vspw_reference(arrays)
    ours = ours_video_semantic(vspw_videos)
    assert ours["mIoU"] == pytest.approx(expected["mIoU"], rel=0, abs=1e-12)
    assert ours["VC8"] == pytest.approx(expected["VC8"], rel=0, abs=1e-12)
    assert 0.2 < ours["VC8"] < 0.98 and 0.3 < ours["mIoU"] < 0.95  # neither trivially perfect nor empty
    assert math.isnan(ours["per_class_IoU"][VSPW_PRED_ONLY_CLASS])  # predicted only: out of the VSPW mean
    benchmark.pedantic(vspw_reference, args=(arrays,), rounds=2, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="vspw-miou-vc")
def test_vspw_ours(benchmark: BenchmarkFixture, vspw_videos: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    benchmark.extra_info["role"] = "ours"
    benchmark.pedantic(ours_video_semantic, args=(vspw_videos,), rounds=3, iterations=1, warmup_rounds=1)
