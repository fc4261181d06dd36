"""STQ parity with deeplab2's numpy ``STQuality``, hand-derived cases and input errors.

Expected figures come from deeplab2 run on the video panoptic fixture (see
tests/fixtures/eval/video_panoptic/expected.json -> provenance).

Tolerances: SQ (mean IoU) agrees to 1e-9. AQ, and so STQ, to 1e-6 only: deeplab2 stores its track areas with
``counts.astype(np.float32)`` and, under numpy >= 2 (NEP 50), every AQ term ``tpa * (tpa / (tpa + fpa + fna))`` and
``1 / gt_size * inner_sum`` is then evaluated in float32, so the official AQ carries float32 rounding (~1e-7
relative; its AQ_per_seq values visibly end in float32 digits). We count in int64 and divide in float64.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest
import torch
from video_fixtures import load_video_fixture

from omg_eval.anomalies import EvaluationAnomalyWarning
from omg_eval.stq import SegmentationTrackingQuality
from omg_eval.video_panoptic_files import evaluate_vipseg

FIXTURE = Path(__file__).parent / "fixtures" / "eval" / "video_panoptic"
FLOAT32_TOLERANCE = 1e-6


def _stq_over_fixture(expected: dict, videos: list[tuple[torch.Tensor, torch.Tensor]]) -> SegmentationTrackingQuality:
    metric = SegmentationTrackingQuality(
        expected["num_classes"], expected["thing_classes"], expected["label_divisor"], expected["void_label"]
    )
    for pred, gt in videos:
        metric.update(pred, gt)
    return metric


@pytest.fixture(scope="module")
def fixture_data() -> tuple[dict, list[tuple[torch.Tensor, torch.Tensor]]]:
    return load_video_fixture('video_panoptic')


def test_stq_matches_deeplab2(fixture_data) -> None:
    expected, videos = fixture_data
    result = _stq_over_fixture(expected, videos).compute()
    official = expected["stq"]
    assert abs(result["sq"] - official["IoU"]) <= 1e-9
    assert abs(result["aq"] - official["AQ"]) <= FLOAT32_TOLERANCE
    assert abs(result["stq"] - official["STQ"]) <= FLOAT32_TOLERANCE
    assert 0.1 < result["aq"] < 0.9 and 0.1 < result["sq"] < 0.9  # neither trivially perfect nor empty


def test_stq_per_video_figures_match_deeplab2_per_sequence(fixture_data) -> None:
    expected, videos = fixture_data
    result = _stq_over_fixture(expected, videos).compute()
    official_aq, official_stq = expected["stq"]["AQ_per_seq"], expected["stq"]["STQ_per_seq"]
    assert result["aq_per_video"].shape == (len(videos),)
    assert torch.allclose(result["aq_per_video"], torch.tensor(official_aq, dtype=torch.float64), rtol=0,
                          atol=FLOAT32_TOLERANCE)
    assert torch.allclose(result["stq_per_video"], torch.tensor(official_stq, dtype=torch.float64), rtol=0,
                          atol=FLOAT32_TOLERANCE)
    for (pred, gt), aq in zip(videos, official_aq, strict=True):
        assert abs(_stq_over_fixture(expected, [(pred, gt)]).compute()["aq"] - aq) <= FLOAT32_TOLERANCE


def test_stq_merge_equals_one_pass(fixture_data) -> None:
    expected, videos = fixture_data
    whole = _stq_over_fixture(expected, videos)
    first, second = _stq_over_fixture(expected, videos[:2]), _stq_over_fixture(expected, videos[2:])
    first.merge_state(second.state_dict())
    assert torch.equal(first.confusion, whole.confusion) and int(first.num_tracks) == int(whole.num_tracks)
    assert first.compute()["stq"] == pytest.approx(whole.compute()["stq"], abs=1e-12)


def test_stq_hand_derived_split_track_crowd_and_void_column() -> None:
    # Classes: 0 thing, 1 stuff; divisor 10; VOID = 9. Two frames of 1 x 4 pixels.
    # gt   f0: [1, 1, 0, 10]  f1: [1, 1, 0, 90]   track 1 (4 px), crowd (thing, instance 0), stuff, void
    # pred f0: [1, 1, 5, 10]  f1: [2, 2, 90, 10]  track 1 then 2 (a split), a prediction on the crowd, void pred
    gt = torch.tensor([[[1, 1, 0, 10]], [[1, 1, 0, 90]]])
    pred = torch.tensor([[[1, 1, 5, 10]], [[2, 2, 90, 10]]])
    metric = SegmentationTrackingQuality(2, [0], 10, 9)
    metric.update(pred, gt)
    result = metric.compute()
    # AQ: crowd pixels are dropped for both sides, so pred 5 disappears. Track 1 (|g| = 4) meets pred 1 (2 px, TPA 2,
    # IoU 2/4) and pred 2 (2 px, TPA 2, IoU 2/4): AQ = (2 * 0.5 + 2 * 0.5) / 4 = 0.5 over one track.
    assert result["aq"] == pytest.approx(0.5, abs=1e-12)
    # SQ: rows gt (thing, stuff), columns pred (thing, stuff, VOID); the gt-VOID pixel is dropped.
    #   thing row: 4 track px -> thing, crowd f0 -> thing (pred 5), crowd f1 -> VOID  => [5, 0, 1]
    #   stuff row: f0 stuff -> stuff                                                   => [0, 1, 0]
    # IoU thing = 5 / (6 + 5 - 5) = 5/6, stuff = 1 / (1 + 1 - 1) = 1, VOID column: 0 / 1 = 0 and it counts (deeplab2).
    assert result["sq"] == pytest.approx((5 / 6 + 1 + 0) / 3, abs=1e-12)
    assert result["stq"] == pytest.approx(math.sqrt(0.5 * (5 / 6 + 1) / 3), abs=1e-12)


def test_stq_without_tracks_gives_zero_aq() -> None:
    metric = SegmentationTrackingQuality(2, [0], 10, 9)
    stuff_only = torch.full((2, 3, 3), 10)
    metric.update(stuff_only, stuff_only)
    result = metric.compute()
    assert result["aq"] == 0.0 and result["sq"] == 1.0 and result["stq"] == 0.0


def test_stq_rejects_bad_inputs() -> None:
    metric = SegmentationTrackingQuality(2, [0], 10, 9)
    video = torch.zeros(2, 3, 3, dtype=torch.int64)
    with pytest.raises(ValueError, match="outside"):
        metric.update(video + 30, video)  # category 3 is neither a class nor VOID
    with pytest.raises(ValueError, match="same shape"):
        metric.update(video[:, :2], video)
    with pytest.raises(ValueError, match="label_divisor"):
        SegmentationTrackingQuality(2, [0], 1, 9)


def test_stq_ids_beyond_the_kernel_range_are_renumbered(fixture_data) -> None:
    # label_divisor 2**24 puts VOID ids at 255 * 2**24 > 2**31, outside the pair kernel's range.
    expected, videos = fixture_data
    old, new = expected["label_divisor"], 2**24
    reencoded = [((p.long() // old) * new + p % old, (g.long() // old) * new + g % old) for p, g in videos]
    metric = SegmentationTrackingQuality(expected["num_classes"], expected["thing_classes"], new, expected["void_label"])
    for pred, gt in reencoded:
        metric.update(pred, gt)
    whole = _stq_over_fixture(expected, videos)
    assert torch.equal(metric.confusion, whole.confusion)
    assert metric.compute()["aq"] == pytest.approx(whole.compute()["aq"], abs=1e-12)


# --- Raw VIPSeg masks: STQ as VIPSeg's eval_stq_vspw.py computes it -------------------------------------------------
# tests/fixtures/eval/video_panoptic/vipseg_raw, scored by run_official_raw.py (provenance in expected_official.json):
# VIPSeg's converter, then eval_stq_vspw.py main() with the STQ it bundles (deeplab2's 2021 numpy STQ, integer counts,
# so AQ agrees to 1e-9 here). Two of the four videos list a thing first, which the script's numbering from 0 turns into
# a crowd region; "numbered_from_one" is the same STQ on the script's labels with the instance numbers moved up by
# one (not an official figure: what stq_official_numbering=False must give).
RAW = FIXTURE / "vipseg_raw"


@pytest.fixture(scope="module")
def raw_official() -> dict:
    return json.loads((RAW / "expected_official.json").read_text())


def _raw_stq(**kwargs) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EvaluationAnomalyWarning)
        return evaluate_vipseg(RAW / "pred", RAW / "gt", **kwargs)


def test_stq_of_raw_vipseg_masks_equals_eval_stq_vspw(raw_official) -> None:
    ours, official = _raw_stq(), raw_official["stq"]["official"]
    assert abs(ours["stq"] - official["STQ"]) <= 1e-9
    assert abs(ours["aq"] - official["AQ"]) <= 1e-9
    assert abs(ours["sq"] - official["IoU"]) <= 1e-9
    for key, theirs in (("stq_per_video", "STQ_per_seq"), ("aq_per_video", "AQ_per_seq"), ("sq_per_video", "IoU_per_seq")):
        assert torch.allclose(ours[key], torch.tensor(official[theirs], dtype=torch.float64), rtol=0, atol=1e-9), key
    # deeplab2's current numpy STQ (float32 counts) on the same labels: equal to float32 rounding
    head = raw_official["stq"]["deeplab2_head"]
    assert abs(ours["aq"] - head["AQ"]) <= FLOAT32_TOLERANCE and abs(ours["stq"] - head["STQ"]) <= FLOAT32_TOLERANCE
    firsts = raw_official["first_listed_gt_segment"]
    assert ours["stq_first_segment_crowd_videos"] == sum(f["isthing"] for f in firsts.values()) == 2


def test_stq_numbered_from_one_scores_the_first_thing_as_a_track(raw_official) -> None:
    ours, expected = _raw_stq(stq_official_numbering=False), raw_official["stq"]["numbered_from_one"]
    assert abs(ours["aq"] - expected["AQ"]) <= 1e-9 and abs(ours["stq"] - expected["STQ"]) <= 1e-9
    assert abs(ours["sq"] - raw_official["stq"]["official"]["IoU"]) <= 1e-9  # SQ does not depend on the numbering
    assert ours["aq"] != pytest.approx(raw_official["stq"]["official"]["AQ"], abs=1e-3)
