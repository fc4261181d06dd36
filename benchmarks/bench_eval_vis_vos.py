"""YouTube-VIS AP and DAVIS-2017 J&F over 100 synthetic videos: ours (fused kernels) against straightforward
re-implementations of the official per-video algorithms, kept here because CI has no copy of the official repositories:

* YouTube-VIS: youtubevos/cocoapi ``ytvoseval`` -- track IoU from per-frame pycocotools RLE ``merge``/``area`` calls,
  greedy matching per (video, category, area range), COCO accumulation;
* DAVIS: davis2017-evaluation -- per object and frame, ``db_eval_iou`` and ``f_measure`` (``_seg2bmap`` in numpy, disk
  dilation of the boundaries; scipy's binary dilation stands in for ``cv2.dilate`` with the same disk).

Outputs are checked equal before anything is timed. Both YouTube-VIS sides start from the same in-memory JSON objects
(RLE decoding included); both DAVIS sides start from in-memory id maps (PNG decoding left out). The PyTorch fallbacks
are not timed here (they take minutes at this size: the YouTube-VIS fallback decodes every mask); the unit tests check
that they give the same figures.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from scipy.ndimage import binary_dilation

from omg_eval.video_instance_io import evaluate_youtube_vis
from omg_eval.vos import DAVISMetric

NUM_VIDEOS = 100
# YouTube-VIS: a 720p frame at half scale, 20 frames (valid videos have 20-36 annotated frames), 10 predicted tracks
# per video (a typical top-10 output), 2 ground-truth tracks.
VIS_FRAMES, VIS_HEIGHT, VIS_WIDTH, VIS_TRACKS, VIS_CLASSES = 20, 360, 640, 10, 8
# DAVIS: 480p at 3/8 scale (F radius 3), 6 frames (4 scored), 2 objects.
VOS_FRAMES, VOS_HEIGHT, VOS_WIDTH, VOS_OBJECTS = 6, 180, 320, 2
SUMMARY_KEYS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100")


def _box_rle(y0: int, x0: int, y1: int, x1: int) -> dict | None:
    """Compressed RLE of the box [y0, y1) x [x0, x1) clipped to the frame, or None when nothing is left."""
    y0, x0, y1, x1 = max(0, y0), max(0, x0), min(VIS_HEIGHT, y1), min(VIS_WIDTH, x1)
    if y1 <= y0 or x1 <= x0:
        return None
    mask = np.zeros((VIS_HEIGHT, VIS_WIDTH), np.uint8, order="F")
    mask[y0:y1, x0:x1] = 1
    rle = mask_utils.encode(mask)
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _box_track(rng: np.random.Generator, start: int, stop: int, shift: tuple[int, int] = (0, 0)) -> list:
    """Per-frame box RLEs of a track moving at constant speed, present in frames [start, stop)."""
    y, x = rng.integers(0, [VIS_HEIGHT - 120, VIS_WIDTH - 160])
    h, w = rng.integers(40, [120, 160])
    vy, vx = rng.integers(-3, 4, size=2)
    return [
        _box_rle(y + vy * t + shift[0], x + vx * t + shift[1], y + vy * t + shift[0] + h, x + vx * t + shift[1] + w)
        if start <= t < stop
        else None
        for t in range(VIS_FRAMES)
    ]


def _synthetic_youtube_vis(seed: int = 0) -> tuple[list[dict], dict]:
    """(results, annotation file) of NUM_VIDEOS videos with 2 ground-truth tracks each (appearing/leaving mid-video)."""
    rng = np.random.default_rng(seed)
    videos, annotations, results = [], [], []
    for video_id in range(1, NUM_VIDEOS + 1):
        videos.append({"id": video_id, "height": VIS_HEIGHT, "width": VIS_WIDTH, "length": VIS_FRAMES})
        gt_tracks = []
        for _ in range(2):
            state = rng.bit_generator.state  # replayed below to derive predictions from the same track
            start, stop = int(rng.integers(0, 3)), VIS_FRAMES - int(rng.integers(0, 3))
            frames = _box_track(rng, start, stop)
            category = int(rng.integers(1, VIS_CLASSES + 1))
            gt_tracks.append((category, state, start, stop))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "video_id": video_id,
                    "category_id": category,
                    "iscrowd": int(rng.random() < 0.05),
                    "segmentations": frames,
                    "areas": [None if r is None else int(mask_utils.area(r)) for r in frames],
                }
            )
        for i in range(VIS_TRACKS):
            if i < 4:  # near a ground-truth track, sometimes with the wrong class
                category, state, start, stop = gt_tracks[i % 2]
                shift = tuple(int(v) for v in rng.integers(-16, 17, size=2))
                replay = np.random.default_rng()
                replay.bit_generator.state = state
                replay.integers(0, 3), replay.integers(0, 3)
                frames = _box_track(replay, start, stop, shift)
                category = category if rng.random() < 0.8 else int(rng.integers(1, VIS_CLASSES + 1))
            else:
                category, frames = int(rng.integers(1, VIS_CLASSES + 1)), _box_track(rng, 0, VIS_FRAMES)
            results.append(
                {"video_id": video_id, "category_id": category, "score": round(float(rng.random()), 3),
                 "segmentations": frames}
            )  # fmt: skip
    categories = [{"id": c} for c in range(1, VIS_CLASSES + 1)]
    return results, {"videos": videos, "categories": categories, "annotations": annotations}


# ----------------------------------------------------------------------------------------------------------------
# Reference: the ytvoseval algorithm, per (video, category) with per-frame RLE operations, as the official loops.
# ----------------------------------------------------------------------------------------------------------------
def _reference_track_iou(dt_frames: list, gt_frames: list) -> float:
    inter = union = 0.0
    for d, g in zip(dt_frames, gt_frames, strict=True):
        if d and g:
            inter += mask_utils.area(mask_utils.merge([d, g], intersect=True))
            union += mask_utils.area(mask_utils.merge([d, g], intersect=False))
        elif g:
            union += mask_utils.area(g)
        elif d:
            union += mask_utils.area(d)
    return inter / union if union > 0 else 0.0


def _mean_area(areas: list) -> float:
    present = [a for a in areas if a]
    return float(np.array(present).mean()) if present else 0.0


def _reference_youtube_vis(results: list[dict], gt: dict) -> dict[str, float]:
    iou_thrs = np.linspace(0.5, 0.95, 10, endpoint=True)
    rec_thrs = np.linspace(0.0, 1.0, 101, endpoint=True)
    max_dets = (1, 10, 100)
    area_rngs = ((0.0, 1e10), (0.0, 128.0**2), (128.0**2, 256.0**2), (256.0**2, 1e10))
    video_ids = sorted(v["id"] for v in gt["videos"])
    cat_ids = sorted(c["id"] for c in gt["categories"])
    gts: dict = {}
    dts: dict = {}
    for ann in gt["annotations"]:
        gts.setdefault((ann["video_id"], ann["category_id"]), []).append(
            {"segs": ann["segmentations"], "avg_area": _mean_area(ann["areas"]), "crowd": bool(ann["iscrowd"])}
        )
    for i, res in enumerate(results):
        areas = [None if s is None else mask_utils.area(s) for s in res["segmentations"]]
        dts.setdefault((res["video_id"], res["category_id"]), []).append(
            {"segs": res["segmentations"], "avg_area": _mean_area(areas), "score": res["score"], "id": i + 1}
        )
    evaluated: dict = {}
    for vid in video_ids:
        for cat in cat_ids:
            g_all, d_all = gts.get((vid, cat), []), dts.get((vid, cat), [])
            if not g_all and not d_all:
                continue
            d_sorted = [d_all[i] for i in np.argsort([-d["score"] for d in d_all], kind="mergesort")][: max_dets[-1]]
            ious = np.array([[_reference_track_iou(d["segs"], g["segs"]) for g in g_all] for d in d_sorted])
            for a, (lo, hi) in enumerate(area_rngs):
                ignore = [g["crowd"] or g["avg_area"] < lo or g["avg_area"] > hi for g in g_all]
                g_order = np.argsort(ignore, kind="mergesort")
                g_ign = [ignore[j] for j in g_order]
                g_crowd = [g_all[j]["crowd"] for j in g_order]
                gt_match = np.zeros((len(iou_thrs), len(g_all)))
                dt_match = np.zeros((len(iou_thrs), len(d_sorted)))
                dt_ign = np.zeros((len(iou_thrs), len(d_sorted)), bool)
                for t, thr in enumerate(iou_thrs):
                    for di, d in enumerate(d_sorted):
                        best, m = min(thr, 1 - 1e-10), -1
                        for gi, j in enumerate(g_order):
                            if gt_match[t, gi] > 0 and not g_crowd[gi]:
                                continue
                            if m > -1 and not g_ign[m] and g_ign[gi]:
                                break
                            if ious[di, j] < best:
                                continue
                            best, m = ious[di, j], gi
                        if m > -1:
                            dt_ign[t, di] = g_ign[m]
                            dt_match[t, di] = 1
                            gt_match[t, m] = d["id"]
                outside = np.array([d["avg_area"] < lo or d["avg_area"] > hi for d in d_sorted], bool)
                dt_ign |= (dt_match == 0) & outside[None, :]
                scores = np.array([d["score"] for d in d_sorted])
                evaluated[(cat, a, vid)] = (scores, dt_match, dt_ign, np.array(g_ign, bool))
    precision = -np.ones((len(iou_thrs), len(rec_thrs), len(cat_ids), len(area_rngs), len(max_dets)))
    recall = -np.ones((len(iou_thrs), len(cat_ids), len(area_rngs), len(max_dets)))
    for k, cat in enumerate(cat_ids):
        for a in range(len(area_rngs)):
            entries = [evaluated[(cat, a, v)] for v in video_ids if (cat, a, v) in evaluated]
            if not entries:
                continue
            for m, max_det in enumerate(max_dets):
                scores = np.concatenate([e[0][:max_det] for e in entries])
                order = np.argsort(-scores, kind="mergesort")
                match = np.concatenate([e[1][:, :max_det] for e in entries], axis=1)[:, order]
                ign = np.concatenate([e[2][:, :max_det] for e in entries], axis=1)[:, order]
                npig = int(np.count_nonzero(~np.concatenate([e[3] for e in entries])))
                if npig == 0:
                    continue
                tps = np.cumsum((match != 0) & ~ign, axis=1).astype(float)
                fps = np.cumsum((match == 0) & ~ign, axis=1).astype(float)
                for t in range(len(iou_thrs)):
                    rc = tps[t] / npig
                    pr = (tps[t] / (fps[t] + tps[t] + np.spacing(1))).tolist()
                    recall[t, k, a, m] = rc[-1] if len(rc) else 0
                    for i in range(len(pr) - 1, 0, -1):
                        pr[i - 1] = max(pr[i - 1], pr[i])
                    q = np.zeros(len(rec_thrs))
                    for ri, pi in enumerate(np.searchsorted(rc, rec_thrs, side="left")):
                        if pi >= len(pr):
                            break
                        q[ri] = pr[pi]
                    precision[t, :, k, a, m] = q

    def mean(values: np.ndarray) -> float:
        return float(np.mean(values[values > -1])) if np.any(values > -1) else -1.0

    return {
        "AP": mean(precision[:, :, :, 0, 2]),
        "AP50": mean(precision[0, :, :, 0, 2]),
        "AP75": mean(precision[5, :, :, 0, 2]),
        "AP_small": mean(precision[:, :, :, 1, 2]),
        "AP_medium": mean(precision[:, :, :, 2, 2]),
        "AP_large": mean(precision[:, :, :, 3, 2]),
        "AR1": mean(recall[:, :, 0, 0]),
        "AR10": mean(recall[:, :, 0, 1]),
        "AR100": mean(recall[:, :, 0, 2]),
    }


# ----------------------------------------------------------------------------------------------------------------
# DAVIS data and reference: per object and frame, region IoU and boundary F exactly as davis2017/metrics.py.
# ----------------------------------------------------------------------------------------------------------------
def _synthetic_davis(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(pred, gt) uint8 T x H x W id maps: moving ellipses, jittered and eroded predictions, a void band."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:VOS_HEIGHT, 0:VOS_WIDTH]
    sequences = []
    for _ in range(NUM_VIDEOS):
        gt = np.zeros((VOS_FRAMES, VOS_HEIGHT, VOS_WIDTH), np.uint8)
        pred = np.zeros_like(gt)
        params = [(rng.uniform(45, 135), rng.uniform(60, 260), rng.uniform(15, 40), rng.uniform(20, 55),
                   *rng.uniform(-4, 4, size=2)) for _ in range(VOS_OBJECTS)]  # fmt: skip
        for t in range(VOS_FRAMES):
            for k, (cy, cx, ry, rx, vy, vx) in enumerate(params, start=1):
                inside = ((rows - cy - vy * t) / ry) ** 2 + ((cols - cx - vx * t) / rx) ** 2 <= 1
                gt[t][inside] = k
                jitter = rng.uniform(-5, 5, size=2)
                near = ((rows - cy - vy * t - jitter[0]) / (ry * 0.9)) ** 2 + (
                    (cols - cx - vx * t - jitter[1]) / rx
                ) ** 2
                pred[t][near <= 1] = k
            gt[t][:4] = 255
        sequences.append((pred, gt))
    return sequences


def _seg2bmap(seg: np.ndarray) -> np.ndarray:
    seg = seg.astype(bool)
    east, south, south_east = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    east[:, :-1], south[:-1, :], south_east[:-1, :-1] = seg[:, 1:], seg[1:, :], seg[1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    bmap[-1, :] = seg[-1, :] ^ east[-1, :]
    bmap[:, -1] = seg[:, -1] ^ south[:, -1]
    bmap[-1, -1] = False
    return bmap


def _reference_f(pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> float:
    radius = int(np.ceil(bound_th * np.linalg.norm(pred.shape)))
    span = np.arange(-radius, radius + 1)
    disk = (span[:, None] ** 2 + span[None, :] ** 2) <= radius**2
    fg_b, gt_b = _seg2bmap(pred), _seg2bmap(gt)
    fg_dil, gt_dil = binary_dilation(fg_b, structure=disk), binary_dilation(gt_b, structure=disk)
    n_fg, n_gt = fg_b.sum(), gt_b.sum()
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision, recall = np.sum(fg_b & gt_dil) / float(n_fg), np.sum(gt_b & fg_dil) / float(n_gt)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _reference_statistics(values: np.ndarray) -> tuple[float, float, float]:
    ids = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(np.uint8)
    bins = [values[ids[i] : ids[i + 1] + 1] for i in range(4)]
    return float(np.nanmean(values)), float(np.nanmean(values > 0.5)), float(np.nanmean(bins[0]) - np.nanmean(bins[3]))


def _reference_davis(sequences: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    j_stats, f_stats = [], []
    for pred, gt in sequences:
        gt = np.where(gt == 255, 0, gt)
        num_objects = int(gt[0].max())
        for k in range(1, num_objects + 1):
            j_frames, f_frames = [], []
            for t in range(1, len(gt) - 1):
                p, g = pred[t] == k, gt[t] == k
                union = np.sum(p | g)
                j_frames.append(1.0 if union == 0 else np.sum(p & g) / union)
                f_frames.append(_reference_f(p, g))
            j_stats.append(_reference_statistics(np.array(j_frames)))
            f_stats.append(_reference_statistics(np.array(f_frames)))
    j, f = np.array(j_stats), np.array(f_stats)
    return {"J&F-Mean": (np.mean(j[:, 0]) + np.mean(f[:, 0])) / 2, "J-Mean": np.mean(j[:, 0]),
            "J-Decay": np.mean(j[:, 2]), "F-Mean": np.mean(f[:, 0]), "F-Recall": np.mean(f[:, 1])}  # fmt: skip


def _ours_davis(sequences: list[tuple[torch.Tensor, torch.Tensor]]) -> dict:
    metric = DAVISMetric()
    for index, (pred, gt) in enumerate(sequences):
        metric.update(pred, gt, f"seq{index}")
    return metric.compute()


@pytest.fixture(scope="module")
def youtube_vis_data() -> tuple[list[dict], dict]:
    return _synthetic_youtube_vis()


@pytest.fixture(scope="module")
def davis_data() -> list[tuple[np.ndarray, np.ndarray]]:
    return _synthetic_davis()


@pytest.fixture(scope="module")
def youtube_vis_reference(youtube_vis_data: tuple[list[dict], dict]) -> dict[str, float]:
    return _reference_youtube_vis(*youtube_vis_data)


@pytest.fixture(scope="module")
def davis_reference(davis_data: list) -> dict[str, float]:
    return _reference_davis(davis_data)


@pytest.mark.benchmark(group="ytvis_ap_100_videos")
def test_youtube_vis_reference(benchmark, youtube_vis_data, youtube_vis_reference) -> None:
    benchmark.extra_info["role"] = "reference"
    result = benchmark.pedantic(_reference_youtube_vis, args=youtube_vis_data, rounds=2, iterations=1)
    assert result == youtube_vis_reference


@pytest.fixture(params=["all-threads", "1-thread"])
def torch_threads(request: pytest.FixtureRequest):
    """Our kernels with torch's default thread pool, and with one thread like the single-threaded reference (on a
    shared, busy machine the pool's synchronisation can cost more than it saves)."""
    previous = torch.get_num_threads()
    if request.param == "1-thread":
        torch.set_num_threads(1)
    yield request.param
    torch.set_num_threads(previous)


@pytest.mark.benchmark(group="ytvis_ap_100_videos")
def test_youtube_vis_ours(benchmark, torch_threads, youtube_vis_data, youtube_vis_reference) -> None:
    benchmark.extra_info["role"] = "ours"
    benchmark.extra_info["variant"] = torch_threads
    ours = evaluate_youtube_vis(*youtube_vis_data)
    assert youtube_vis_reference["AP"] > 0.05  # a meaningful operating point, not all zeros
    for key, value in youtube_vis_reference.items():
        assert math.isclose(ours[key], value, abs_tol=1e-9), key
    benchmark.pedantic(evaluate_youtube_vis, args=youtube_vis_data, rounds=3, iterations=1)


@pytest.mark.benchmark(group="davis_jf_100_videos")
def test_davis_reference(benchmark, davis_data, davis_reference) -> None:
    benchmark.extra_info["role"] = "reference"
    result = benchmark.pedantic(_reference_davis, args=(davis_data,), rounds=1, iterations=1)
    assert result == davis_reference


@pytest.mark.benchmark(group="davis_jf_100_videos")
def test_davis_ours(benchmark, torch_threads, davis_data, davis_reference) -> None:
    benchmark.extra_info["role"] = "ours"
    benchmark.extra_info["variant"] = torch_threads
    tensors = [(torch.from_numpy(p), torch.from_numpy(g)) for p, g in davis_data]  # uint8, as read from PNGs
    ours = _ours_davis(tensors)
    for key, value in davis_reference.items():
        assert math.isclose(ours[key], value, abs_tol=1e-9), key
    benchmark.pedantic(_ours_davis, args=(tensors,), rounds=2, iterations=1)
