"""YouTube-VIS AP/AR: parity with the official youtubevos/cocoapi ``ytvoseval`` (figures stored in the fixture, see its
``provenance``), equality of the fused and PyTorch counting kernels, and the errors users can run into."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from omg_common.ext_build import compiler_available
from omg_data.errors import DataError
from omg_eval import video_instance_io
from omg_eval.anomalies import EvaluationAnomalyWarning, StrictAnomalyError, collect_anomalies
from omg_eval.kernels.video_overlap import (
    rle_pair_intersections,
    track_intersections,
    track_intersections_torch,
)
from omg_eval.video_instance import YouTubeVISMetric
from omg_eval.video_instance_io import _to_rle, evaluate_youtube_vis

FIXTURES = Path(__file__).parent / "fixtures" / "eval" / "video_instance"
# Inputs ytvoseval scores although they are odd (see anomalies/make_fixture.py): 300 masks in one video, a 260-frame
# track, [] for absent frames, a category absent from the annotation file, tracks longer and shorter than their video.
ANOMALIES = FIXTURES / "anomalies"
SUMMARY_KEYS = [
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
]
# Every figure is a ratio of exact integer counts computed in float64 the way the official does: 1e-9 is ample.
TOLERANCE = 1e-9

BACKENDS = [
    "torch",
    pytest.param("fused", marks=pytest.mark.skipif(not compiler_available(), reason="no C++ compiler to build it")),
]


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((FIXTURES / "expected.json").read_text())


@pytest.fixture(scope="module")
def gt() -> dict:
    return json.loads((FIXTURES / "gt.json").read_text())


@pytest.fixture(scope="module")
def results() -> list:
    return json.loads((FIXTURES / "results.json").read_text())


def assert_figures_equal(ours: dict, official: dict) -> None:
    for key in SUMMARY_KEYS:
        assert ours[key] == pytest.approx(official[key], abs=TOLERANCE), key
    for category, value in official["AP_per_category"].items():
        assert ours["AP_per_category"][int(category)] == pytest.approx(value, abs=TOLERANCE), category


@pytest.mark.parametrize("backend", BACKENDS)
def test_file_entry_matches_official(backend: str, monkeypatch: pytest.MonkeyPatch, expected: dict) -> None:
    monkeypatch.setenv("OMG_EVAL_BACKEND", backend)
    ours = evaluate_youtube_vis(FIXTURES / "results.json", FIXTURES / "gt.json")
    assert_figures_equal(ours, expected["full"])
    # The fixture exercises every bin: classes absent from gt (-1), maxDets 1 vs 10 and all three size ranges.
    assert expected["full"]["AR1"] != expected["full"]["AR10"]
    assert min(expected["full"][k] for k in ("AP_small", "AP_medium", "AP_large")) > 0


def test_empty_predictions_match_official(expected: dict) -> None:
    assert_figures_equal(evaluate_youtube_vis([], FIXTURES / "gt.json"), expected["empty_predictions"])


def _track_masks(track: dict, video: dict) -> torch.Tensor:
    height, width = video["height"], video["width"]
    frames = []
    for segmentation in track["segmentations"]:
        rle = _to_rle(segmentation, height, width, "fixture")
        frames.append(np.zeros((height, width), bool) if rle is None else mask_utils.decode(rle).astype(bool))
    return torch.from_numpy(np.stack(frames))  # T x H x W


def _update_video(metric: YouTubeVISMetric, video: dict, gt: dict, results: list) -> None:
    preds = [r for r in results if r["video_id"] == video["id"]]
    gts = [a for a in gt["annotations"] if a["video_id"] == video["id"]]
    empty = torch.zeros(0, video["length"], video["height"], video["width"], dtype=torch.bool)
    metric.update(
        video_id=video["id"],
        pred_scores=torch.tensor([p["score"] for p in preds], dtype=torch.float64),
        pred_labels=torch.tensor([p["category_id"] for p in preds], dtype=torch.int64),
        pred_masks=torch.stack([_track_masks(p, video) for p in preds]) if preds else empty,
        gt_labels=torch.tensor([a["category_id"] for a in gts], dtype=torch.int64),
        gt_masks=torch.stack([_track_masks(a, video) for a in gts]) if gts else empty,
        gt_iscrowd=torch.tensor([bool(a["iscrowd"]) for a in gts], dtype=torch.bool),
    )


def test_tensor_update_and_state_merge_match_official(expected: dict, gt: dict, results: list) -> None:
    """Videos fed as tensors to two metric instances (as two ranks would), merged, give the official figures."""
    categories = [c["id"] for c in gt["categories"]]
    first, second = YouTubeVISMetric(categories), YouTubeVISMetric(categories)
    # Out of order on purpose: ties between equal scores must still be broken by video id, as officially.
    for video in reversed(gt["videos"]):
        _update_video(first if video["id"] % 2 else second, video, gt, results)
    first.merge_state(second.state_dict())
    assert_figures_equal(first.compute(), expected["full"])
    first.reset()
    with pytest.raises(ValueError, match="categor"):
        first.update(
            1,
            torch.ones(1),
            torch.tensor([99]),
            torch.zeros(1, 2, 4, 4, dtype=torch.bool),
            torch.tensor([1]),
            torch.zeros(1, 2, 4, 4, dtype=torch.bool),
        )


def test_track_ious_match_official(expected: dict, gt: dict, results: list) -> None:
    """The per-pair video IoUs themselves (sum of intersections / sum of unions over frames) equal ytvoseval's."""
    metric = YouTubeVISMetric([c["id"] for c in gt["categories"]])
    for video in gt["videos"]:
        _update_video(metric, video, gt, results)
    records = {v["video_id"]: v for v in metric.videos}
    assert expected["full"]["ious"], "the fixture must hold IoU matrices"
    for entry in expected["full"]["ious"]:
        record = records[entry["video_id"]]
        dt = record["pred_labels"] == entry["category_id"]
        gt_mask = record["gt_labels"] == entry["category_id"]
        # ytvoseval orders detections by decreasing score (stable) before computing IoUs.
        order = torch.from_numpy(np.argsort(-record["pred_scores"][dt].numpy(), kind="mergesort"))
        ours = record["ious"][dt][:, gt_mask][order]
        np.testing.assert_allclose(ours.numpy(), np.array(entry["ious"]).reshape(ours.shape), atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("num_pred,num_gt,num_pixels", [(3, 2, 1000), (0, 2, 50), (5, 3, 64 * 7 + 13), (4, 1, 1)])
@pytest.mark.parametrize("backend", BACKENDS)
def test_track_intersections_backends_agree(
    backend: str, num_pred: int, num_gt: int, num_pixels: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMG_EVAL_BACKEND", backend)
    generator = torch.Generator().manual_seed(num_pixels)
    pred = torch.rand(num_pred, num_pixels, generator=generator) > 0.5
    gt = torch.rand(num_gt, num_pixels, generator=generator) > 0.3
    brute_force = (pred[:, None, :] & gt[None, :, :]).sum(-1)
    assert torch.equal(track_intersections(pred, gt), brute_force)
    assert torch.equal(track_intersections_torch(pred, gt), brute_force)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rle_pair_intersections_backends_agree(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run-length intersections straight from compressed RLE strings (long runs, absent frames) equal dense counts."""
    monkeypatch.setenv("OMG_EVAL_BACKEND", backend)
    rng = np.random.default_rng(5)
    height, width, frames = 70, 90, 4
    dense = rng.random((6, frames, height, width)) > rng.random((6, 1, 1, 1))  # tracks of different densities
    dense[:, :, 10:60, 20:80] |= rng.random((6, 1, 1, 1)) > 0.5  # long runs: multi-group and negative-delta counts
    tracks = []
    for track in dense:
        rles = [mask_utils.encode(np.asfortranarray(frame.astype(np.uint8))) for frame in track]
        rles[1] = None  # absent frame
        tracks.append(rles)
    dense[:, 1] = False
    pairs = torch.tensor([[0, 0], [0, 1], [2, 1], [1, 2], [2, 0]])
    pred, gt = tracks[:3], tracks[3:]
    expected = torch.tensor([int((dense[d] & dense[3 + g]).sum()) for d, g in pairs.tolist()])
    assert torch.equal(rle_pair_intersections(pred, gt, pairs, height, width), expected)


def test_file_errors_name_the_problem(gt: dict, results: list) -> None:
    bad = copy.deepcopy(results)
    bad[0]["video_id"] = 999
    with pytest.raises(ValueError, match="video 999"):
        evaluate_youtube_vis(bad, gt)
    bad = copy.deepcopy(gt)
    bad["annotations"][0]["segmentations"] = bad["annotations"][0]["segmentations"][:-1]
    with pytest.raises(ValueError, match="one per frame"):
        evaluate_youtube_vis(results, bad)
    bad = copy.deepcopy(results)
    bad[0]["segmentations"][0] = mask_utils.encode(np.asfortranarray(np.ones((5, 5), np.uint8)))
    with pytest.raises(ValueError, match="size"):
        evaluate_youtube_vis(bad, gt)
    with pytest.raises(DataError, match="missing.json"):
        evaluate_youtube_vis(FIXTURES / "missing.json", gt)
    with pytest.raises(DataError, match="folder"):
        evaluate_youtube_vis(results, FIXTURES)


@pytest.fixture(scope="module")
def anomalies_expected() -> dict:
    return json.loads((ANOMALIES / "expected.json").read_text())


def assert_exactly_official(ours: dict, official: dict) -> None:
    for key in SUMMARY_KEYS:
        assert ours[key] == pytest.approx(official[key], abs=1e-12, rel=0), key
    assert {str(k): v for k, v in ours["AP_per_category"].items()} == pytest.approx(
        official["AP_per_category"], abs=1e-12, rel=0
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_odd_inputs_score_as_official(backend: str, monkeypatch: pytest.MonkeyPatch, anomalies_expected: dict) -> None:
    """300 masks in one video and a 260-frame track (past pycocotools' 255-RLE area() limit), [] absent frames,
    a category the annotation file lacks and tracks longer / shorter than their video: ytvoseval's figures and IoUs,
    and the two kinds of anomaly counted."""
    monkeypatch.setenv("OMG_EVAL_BACKEND", backend)
    metrics: list[YouTubeVISMetric] = []

    class Recording(YouTubeVISMetric):
        def __init__(self, category_ids: list[int]) -> None:
            super().__init__(category_ids)
            metrics.append(self)

    monkeypatch.setattr(video_instance_io, "YouTubeVISMetric", Recording)
    with collect_anomalies() as log:
        ours = evaluate_youtube_vis(ANOMALIES / "results.json", ANOMALIES / "gt.json")
    official = anomalies_expected["full"]
    assert_exactly_official(ours, official)
    assert -1 < official["AP"] < 1 and official["AP_medium"] != official["AP_large"]
    assert log.counts() == {"video-instance-category-not-in-gt": 3, "video-instance-track-length": 10}
    assert log.kinds["video-instance-category-not-in-gt"].example == "result 10 (video 1, category 7)"
    assert log.kinds["video-instance-track-length"].example == "result 12 (video 2): 270 segmentations for 260 frames"
    records = {record["video_id"]: record for record in metrics[0].videos}
    for entry in official["ious"]:
        record = records[entry["video_id"]]
        dt = record["pred_labels"] == entry["category_id"]
        gt_mask = record["gt_labels"] == entry["category_id"]
        order = torch.from_numpy(np.argsort(-record["pred_scores"][dt].numpy(), kind="mergesort"))
        mine = record["ious"][dt][:, gt_mask][order].numpy()
        np.testing.assert_allclose(mine, np.array(entry["ious"]).reshape(mine.shape), atol=1e-12, rtol=0)
    # the 8-frame track equal to its ground truth on them: IoU 1 over the zipped frames
    assert any(1.0 in np.array(entry["ious"]) for entry in official["ious"] if entry["video_id"] == 3)


def test_odd_inputs_strict_and_warned() -> None:
    with collect_anomalies(strict=True), pytest.raises(StrictAnomalyError, match="category 7"):
        evaluate_youtube_vis(ANOMALIES / "results.json", ANOMALIES / "gt.json")
    with pytest.warns(EvaluationAnomalyWarning) as caught:
        evaluate_youtube_vis(ANOMALIES / "results.json", ANOMALIES / "gt.json")
    lines = [str(w.message) for w in caught if issubclass(w.category, EvaluationAnomalyWarning)]
    assert len(lines) == 2
    assert lines[0].startswith("evaluate_youtube_vis: 3 result tracks of categories absent from the annotation file")
    assert lines[1].startswith("evaluate_youtube_vis: 10 result tracks whose 'segmentations' list is longer or shorter")


def test_falsy_segmentations_are_absent_frames() -> None:
    for absent in (None, [], {}):
        assert _to_rle(absent, 4, 5, "test") is None
    with pytest.raises(ValueError, match="'size' and 'counts'"):
        _to_rle({"counts": "abc"}, 4, 5, "test")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_track_intersections_match_cpu() -> None:
    generator = torch.Generator().manual_seed(9)
    pred = torch.rand(4, 3001, generator=generator) > 0.5
    gt = torch.rand(3, 3001, generator=generator) > 0.4
    assert torch.equal(track_intersections(pred.cuda(), gt.cuda()).cpu(), track_intersections_torch(pred, gt))
