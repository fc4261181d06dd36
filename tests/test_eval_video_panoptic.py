"""VPQ parity with the VIPSeg evaluator, hand-derived cases, input errors and the VIPSeg file entry point.

The fixture (tests/fixtures/eval/video_panoptic) holds six synthetic videos (1 to 8 frames) with VOID bands, crowd
regions, an all-VOID ground-truth frame and an all-VOID predicted frame, objects appearing mid-video, an identity
switch, a wrong thing class, a class that only the prediction uses and a class that occurs nowhere. Its expected
figures were produced by VIPSeg's own ``eval_vpq_vspw.py`` functions on RGB id PNGs + segments_info (see
``expected.json`` -> provenance and ``make_fixture.py``).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from video_fixtures import load_video_fixture

from omg_core.cli import main
from omg_data.errors import DataError
from omg_eval.anomalies import EvaluationAnomalyWarning, StrictAnomalyError, collect_anomalies
from omg_eval.stq import SegmentationTrackingQuality
from omg_eval.video_panoptic_files import (
    VIPSEG_NUM_CLASSES,
    VIPSEG_THING_CLASSES,
    decode_vipseg_panomask,
    evaluate_vipseg,
    find_label_space,
)
from omg_eval.video_panoptic_quality import VIPSEG_WINDOW_SIZES, VPSNET_WINDOW_SIZES, VideoPanopticQuality

FIXTURE = Path(__file__).parent / "fixtures" / "eval" / "video_panoptic"
# The official script names windows by annotated frames n; with a stride of 5 video frames k = 5 * (n - 1).
NFRAMES_TO_K = {1: 0, 2: 5, 3: 10, 4: 15, 6: 25, 8: 35}


@pytest.fixture(scope="module")
def fixture_data() -> tuple[dict, list[tuple[torch.Tensor, torch.Tensor]]]:
    return load_video_fixture('video_panoptic')


def _vpq_over(videos, expected, label_divisor: int | None = None, **kwargs) -> VideoPanopticQuality:
    metric = VideoPanopticQuality(
        expected["num_classes"], expected["thing_classes"], label_divisor or expected["label_divisor"],
        expected["void_label"], **kwargs,
    )
    for pred, gt in videos:
        metric.update(pred, gt)
    return metric


def _close(ours: float, theirs: float | None, tol: float = 1e-9) -> bool:
    if theirs is None:
        return math.isnan(ours)
    return abs(ours - theirs) <= tol


def test_vpq_matches_vipseg_evaluator_for_every_window(fixture_data) -> None:
    expected, videos = fixture_data
    sizes = tuple(NFRAMES_TO_K[int(n)] for n in expected["vpq_by_nframes"])
    metric = _vpq_over(videos, expected, window_sizes=sizes, annotation_stride=5)
    result = metric.compute()
    for window, (nframes, official) in enumerate(expected["vpq_by_nframes"].items()):
        k = NFRAMES_TO_K[int(nframes)]
        # Integer statistics must agree exactly, per category.
        counts = torch.stack([metric.tp[window], metric.fp[window], metric.fn[window]], 1).tolist()
        assert counts == official["per_class_counts"], f"TP/FP/FN differ for n={nframes}"
        # IoU sums are float64 in both; only summation order differs, so 1e-9 is far above the noise.
        assert _close(result[f"vpq@{k}"], official["All"]["pq"])
        assert _close(result[f"vpq_thing@{k}"], official["Things"]["pq"])
        assert _close(result[f"vpq_stuff@{k}"], official["Stuff"]["pq"])
        assert _close(result[f"vsq@{k}"], official["All"]["sq"])
        assert _close(result[f"vrq@{k}"], official["All"]["rq"])
        for ours, theirs in zip(result[f"per_class_pq@{k}"].tolist(), official["per_class_pq"], strict=True):
            assert _close(ours, theirs)


def test_vpq_windows_of_both_scripts_average_the_official_figures(fixture_data) -> None:
    # eval_vpq_vspw.py's windows n = 1, 2, 4, 6, 8: its vpq is the plain mean of the five window figures.
    expected, videos = fixture_data
    result = _vpq_over(videos, expected, window_sizes=VIPSEG_WINDOW_SIZES).compute()
    assert result["vpq_windows"] == "n=1,2,4,6,8"
    official = [expected["vpq_by_nframes"][str(n)] for n in (1, 2, 4, 6, 8)]
    assert _close(result["vpq"], sum(o["All"]["pq"] for o in official) / 5)
    assert _close(result["vpq_thing"], sum(o["Things"]["pq"] for o in official) / 5)
    assert _close(result["vpq_stuff"], sum(o["Stuff"]["pq"] for o in official) / 5)
    # The metric's own default: VPSNet's windows n = 1..4 (in-memory clips are often shorter than 8 frames).
    vpsnet = _vpq_over(videos, expected).compute()
    assert vpsnet["vpq_windows"] == "n=1,2,3,4" and VPSNET_WINDOW_SIZES == (0, 5, 10, 15)
    assert _close(vpsnet["vpq"], sum(expected["vpq_by_nframes"][str(n)]["All"]["pq"] for n in (1, 2, 3, 4)) / 4)
    # The fixture is not trivially perfect or empty at any window.
    assert 0.1 < result["vpq"] < 0.9


def test_vpq_does_not_depend_on_label_divisor_or_split_across_ranks(fixture_data) -> None:
    expected, videos = fixture_data
    whole = _vpq_over(videos, expected)
    old, new = expected["label_divisor"], 1000
    reencoded = [((p // old) * new + p % old, (g // old) * new + g % old) for p, g in videos]
    assert torch.equal(_vpq_over(reencoded, expected, label_divisor=new).tp, whole.tp)
    first, second = _vpq_over(videos[:3], expected), _vpq_over(videos[3:], expected)
    first.merge_state(second.state_dict())
    for name in ("tp", "fp", "fn"):
        assert torch.equal(getattr(first, name), getattr(whole, name))
    assert torch.allclose(first.iou_sum, whole.iou_sum, rtol=0, atol=1e-12)
    first.reset()
    assert int(first.tp.sum()) == 0 and int(first.num_videos) == 0


def test_vpq_hand_derived_two_frame_video() -> None:
    # Category 0 is a thing, 1 is stuff; divisor 10, VOID = 9. Frames 1 x 4.
    # frame 0: gt [1, 1, 10(stuff), 90(void)] ; pred [1, 1, 10, 1]
    # frame 1: gt [1, 1, 10, 10]              ; pred [2, 2, 10, 10]   (identity switch 1 -> 2)
    gt = torch.tensor([[[1, 1, 10, 90]], [[1, 1, 10, 10]]])
    pred = torch.tensor([[[1, 1, 10, 1]], [[2, 2, 10, 10]]])
    metric = VideoPanopticQuality(2, [0], 10, 9, window_sizes=(0, 1), annotation_stride=1)
    metric.update(pred, gt)
    # n = 1, frame 0: thing 1 vs pred 1: I = 2, U = 3 + 2 - 2 - 1 (pred on void) = 2 -> IoU 1. Stuff IoU 1.
    #        frame 1: thing 1 vs pred 2: IoU 1; stuff 10: IoU 1.  -> thing TP 2 (IoU 2), stuff TP 2 (IoU 2).
    # n = 2, window [0, 2): thing tube 1 (area 4) vs pred 1 (area 3, 1 px on void): I = 2, U = 3 + 4 - 2 - 1 = 4,
    #        IoU 0.5 is not > 0.5; vs pred 2: I = 2, U = 2 + 4 - 2 = 4, not matched either. So thing: FN 1, and
    #        pred 1 (1/3 on void, not forgiven) and pred 2 are FPs: FP 2. Stuff: I = 3, U = 3 -> TP 1.
    assert metric.tp.tolist() == [[2, 2], [0, 1]]
    assert metric.fp.tolist() == [[0, 0], [2, 0]]
    assert metric.fn.tolist() == [[0, 0], [1, 0]]
    result = metric.compute()
    assert result["vpq@0"] == pytest.approx(1.0, abs=1e-12)
    # n = 2: thing PQ = 0 / (0 + 1 + 0.5) = 0, stuff PQ = 1 -> mean 0.5.
    assert result["vpq@1"] == pytest.approx(0.5, abs=1e-12)
    assert result["vpq_thing@1"] == 0.0
    assert result["vpq"] == pytest.approx(0.75, abs=1e-12)


def test_vpq_crowd_and_void_forgive_false_positives() -> None:
    # Thing category 0 with instance 0 in the ground truth is crowd (divisor 10, VOID 9).
    gt = torch.tensor([[[0, 0, 0, 90, 90, 11]]])
    pred = torch.tensor([[[3, 3, 4, 4, 4, 11]]])
    metric = VideoPanopticQuality(2, [0], 10, 9, window_sizes=(0,), annotation_stride=1)
    metric.update(pred, gt)
    # pred 3 lies fully on the crowd -> ignored; pred 4 has 1 px crowd + 2 px void of 3 -> ignored; crowd is no FN.
    assert metric.fp.tolist() == [[0, 0]] and metric.fn.tolist() == [[0, 0]]
    assert metric.tp.tolist() == [[0, 1]]
    assert math.isnan(metric.compute()["vpq_thing@0"])  # no thing category occurs: the official script would crash


def test_vpq_rejects_bad_inputs() -> None:
    metric = VideoPanopticQuality(3, [0], 100, 255, window_sizes=(0,), annotation_stride=1)
    frame = torch.zeros(2, 4, 4, dtype=torch.int64)
    with pytest.raises(ValueError, match="same shape"):
        metric.update(frame, frame[:1])
    with pytest.raises(ValueError, match="T x H x W"):
        metric.update(frame[0], frame[0])
    with pytest.raises(TypeError, match="integer"):
        metric.update(frame.float(), frame)
    with pytest.raises(ValueError, match="outside"):
        metric.update(frame, frame + 500)  # category 5 does not exist
    with pytest.raises(ValueError, match="negative"):
        metric.update(frame - 1, frame)
    with pytest.raises(ValueError, match="void_label"):
        VideoPanopticQuality(3, [0], 100, 2)
    with pytest.raises(ValueError, match="multiple of annotation_stride"):
        VideoPanopticQuality(3, [0], 100, 255, window_sizes=(0, 3))
    with pytest.raises(ValueError, match="thing_classes"):
        VideoPanopticQuality(3, [7], 100, 255)


def test_decode_vipseg_panomask_follows_the_official_converter() -> None:
    things = (2, 61)
    raw = np.array([[0, 1, 3, 6200], [6201, 200, 62, 3], [2, 299, 1, 0]], dtype=np.uint16)
    ids = decode_vipseg_panomask(raw, 124, things)
    # 0 -> VOID; 1 -> stuff 0; 3 -> category 2 (a thing) written below 125 -> its own object, instance 101;
    # 6200 / 6201 -> person (61) instances 1 and 2; 62 -> person without instance number -> instance 101.
    # 2, 200 and 299 are all stuff category 1: create_panoptic_video_labels.py gives every value of a stuff category
    # the category's colour, so they are one segment (instance 0).
    assert ids.tolist() == [[255000, 0, 2101, 61001], [61002, 1000, 61101, 2101], [1000, 1000, 0, 255000]]
    with pytest.raises(ValueError, match="outside"):
        decode_vipseg_panomask(np.array([[20000]], dtype=np.uint16), 124, things)


def _write_vipseg(root: Path, name: str, frames: np.ndarray) -> None:
    (root / name).mkdir(parents=True)
    for t, frame in enumerate(frames):
        Image.fromarray(frame.astype(np.uint16)).save(root / name / f"{t:05d}.png")


def test_evaluate_vipseg_reads_folders_and_matches_the_metrics(tmp_path: Path, fixture_data) -> None:
    expected, videos = fixture_data
    things = expected["thing_classes"]
    divisor = expected["label_divisor"]
    decoded = []
    for index, (pred, gt) in enumerate(videos):  # the 8-frame video fills the n = 8 window
        raws = []
        for ids in (gt, pred):
            category, instance = (ids // divisor).numpy(), (ids % divisor).numpy()
            is_thing = np.isin(category, things)
            raw = np.where(is_thing, (category + 1) * 100 + np.maximum(instance - 1, 0), category + 1)
            raws.append(np.where(category == expected["void_label"], 0, raw))
        _write_vipseg(tmp_path / "gt", f"video{index}", raws[0])
        _write_vipseg(tmp_path / "pred", f"video{index}", raws[1])
        decoded.append(tuple(torch.stack([decode_vipseg_panomask(f, 7, things) for f in r]) for r in raws[::-1]))
    result = evaluate_vipseg(tmp_path / "pred", tmp_path / "gt", num_classes=7, thing_classes=things)
    vpq = VideoPanopticQuality(7, things, 1000, 255, window_sizes=VIPSEG_WINDOW_SIZES)
    stq = SegmentationTrackingQuality(7, things, 1000, 255)
    for pred, gt in decoded:
        vpq.update(pred, gt)
        stq.update(pred, gt)
    assert result["num_videos"] == len(videos)
    assert result["vpq"] == vpq.compute()["vpq"] and result["stq"] == stq.compute()["stq"]
    assert result["stq_first_segment_crowd_videos"] == 0  # every video's first frame starts with stuff 0
    (tmp_path / "pred" / "video1" / "00002.png").unlink()
    with pytest.raises(FileNotFoundError, match="no prediction"):
        evaluate_vipseg(tmp_path / "pred", tmp_path / "gt", num_classes=7, thing_classes=things)


def test_evaluate_vipseg_takes_the_label_space_from_the_data_sets_categories(tmp_path: Path, fixture_data) -> None:
    expected, videos = fixture_data
    things = expected["thing_classes"]
    divisor = expected["label_divisor"]
    pred, gt = videos[5]  # 8 frames: every VPQ window of the headline has a figure
    for side, ids in (("gt", gt), ("pred", pred)):
        category, instance = (ids // divisor).numpy(), (ids % divisor).numpy()
        raw = np.where(np.isin(category, things), (category + 1) * 100 + np.maximum(instance - 1, 0), category + 1)
        _write_vipseg(tmp_path / "root" / side, "video0", np.where(category == expected["void_label"], 0, raw))
    gt_dir, pred_dir = tmp_path / "root" / "gt", tmp_path / "root" / "pred"
    given = evaluate_vipseg(pred_dir, gt_dir, num_classes=7, thing_classes=things)
    categories = [{"id": c, "name": str(c), "isthing": int(c in things)} for c in range(7)]
    # next to the panomasks folder, as in the VIPSeg release and the shapes world
    (tmp_path / "root" / "panoVIPSeg_categories.json").write_text(json.dumps(categories))
    found = evaluate_vipseg(pred_dir, gt_dir)
    assert found["label_space"] == str(tmp_path / "root" / "panoVIPSeg_categories.json")
    assert found["vpq"] == given["vpq"] and found["stq"] == given["stq"]
    # another thing list changes what STQ tracks: the categories really are used
    flipped = [{**c, "isthing": 1 - c["isthing"]} for c in categories]
    (gt_dir / "panoVIPSeg_categories.json").write_text(json.dumps(flipped))  # the folder's own file comes first
    with pytest.warns(EvaluationAnomalyWarning):  # stuff values >= 125 now, and things below 125
        assert evaluate_vipseg(pred_dir, gt_dir)["stq"] != given["stq"]
    (gt_dir / "panoVIPSeg_categories.json").write_text(json.dumps([{"id": 1}]))
    with pytest.raises(ValueError, match="not a VIPSeg category list"):
        evaluate_vipseg(pred_dir, gt_dir)
    with pytest.raises(ValueError, match="give both num_classes and thing_classes"):
        evaluate_vipseg(pred_dir, gt_dir, num_classes=7)
    (gt_dir / "panoVIPSeg_categories.json").unlink()
    (tmp_path / "root" / "panoVIPSeg_categories.json").unlink()
    assert find_label_space(gt_dir)[:2] == (VIPSEG_NUM_CLASSES, VIPSEG_THING_CLASSES)


def test_vpq_huge_label_divisor_renumbers_ids_exactly(fixture_data) -> None:
    # With label_divisor = 2**40 the ids exceed the shared kernel's [0, 2^31) range, so they are renumbered densely
    # before counting; the statistics must not change.
    expected, videos = fixture_data
    old, new = expected["label_divisor"], 2**40
    reencoded = [((p.long() // old) * new + p % old, (g.long() // old) * new + g % old) for p, g in videos]
    huge = _vpq_over(reencoded, expected, label_divisor=new)
    whole = _vpq_over(videos, expected)
    for name in ("tp", "fp", "fn"):
        assert torch.equal(getattr(huge, name), getattr(whole, name))


def test_vpq_matches_the_printed_output_of_the_official_program(fixture_data) -> None:
    # The official script run end to end (PNG + JSON in its submission layout) prints 100 x VPQ with 4 decimals,
    # averaged over n = 1, 2, 4, 6, 8 annotated frames; the 5e-5 tolerance is that rounding.
    expected, videos = fixture_data
    printed = expected["vpq_official_cli"]
    sizes = tuple(NFRAMES_TO_K[n] for n in printed["nframes"])
    result = _vpq_over(videos, expected, window_sizes=sizes, annotation_stride=5).compute()
    for key in ("vpq_all", "vpq_thing", "vpq_stuff"):
        ours = result["vpq" if key == "vpq_all" else key]
        assert abs(100 * ours - printed[key]) <= 5e-5, key


# --- Raw VIPSeg masks scored by VIPSeg's own pipeline (converter + eval_vpq_vspw.py + eval_stq_vspw.py) -------------
# tests/fixtures/eval/video_panoptic/vipseg_raw: written by make_raw_fixture.py, scored by run_official_raw.py (see the
# provenance in expected_official.json). Four videos of 9, 8, 5 and 10 frames: one stuff category written with three
# raw values in one frame, two videos whose first listed ground-truth segment is a thing, a thing written without
# instance number, stuff written with one, a wrong class, identity switches and VOID.
RAW = FIXTURE / "vipseg_raw"


@pytest.fixture(scope="module")
def raw_official() -> dict:
    return json.loads((RAW / "expected_official.json").read_text())


@pytest.fixture(scope="module")
def raw_ours() -> dict:
    with pytest.warns(EvaluationAnomalyWarning):
        return evaluate_vipseg(RAW / "pred", RAW / "gt")


def test_raw_vipseg_masks_score_as_the_official_pipeline_in_every_window(raw_official, raw_ours) -> None:
    assert set(raw_official["vpq_by_nframes"]) == {"1", "2", "3", "4", "6", "8"}
    for nframes, official in raw_official["vpq_by_nframes"].items():
        k = NFRAMES_TO_K[int(nframes)]
        assert _close(raw_ours[f"vpq@{k}"], official["All"]["pq"]), nframes
        assert _close(raw_ours[f"vpq_thing@{k}"], official["Things"]["pq"]), nframes
        assert _close(raw_ours[f"vpq_stuff@{k}"], official["Stuff"]["pq"]), nframes
        assert _close(raw_ours[f"vsq@{k}"], official["All"]["sq"]) and _close(raw_ours[f"vrq@{k}"], official["All"]["rq"])
        for category, pq in official["per_class_pq"].items():
            assert _close(float(raw_ours[f"per_class_pq@{k}"][int(category)]), pq), (nframes, category)
    # the fixture is neither perfect nor empty, and the long windows have fewer videos (the 5-frame one drops out)
    assert 0.3 < raw_ours["vpq@35"] < raw_ours["vpq@0"] < 0.9


def test_vpq_headline_is_what_eval_vpq_vspw_prints(raw_official, raw_ours) -> None:
    script = raw_official["vpq_script"]
    assert script["nframes"] == [1, 2, 4, 6, 8] and raw_ours["vpq_windows"] == "n=1,2,4,6,8"
    # per window the script returns 100 x (All, Things, Stuff); vpq-final.txt holds their means with 4 decimals
    for index, key in enumerate(("vpq", "vpq_thing", "vpq_stuff")):
        returned = [window[index] / 100 for window in script["printed_per_window"]]
        assert _close(raw_ours[key], sum(returned) / len(returned)), key
        printed = script["vpq_final"]["vpq_all" if key == "vpq" else key]
        assert abs(100 * raw_ours[key] - printed) <= 5e-5, key
        # both window sets by name; VPSNet's n = 1..4 from the same official per-window code
        by_windows = raw_ours[f"{key}_by_windows"]
        assert list(by_windows) == ["n=1,2,4,6,8", "n=1,2,3,4"] and by_windows["n=1,2,4,6,8"] == raw_ours[key]
        subset = {"vpq": "All", "vpq_thing": "Things", "vpq_stuff": "Stuff"}[key]
        vpsnet = [raw_official["vpq_by_nframes"][str(n)][subset]["pq"] for n in (1, 2, 3, 4)]
        assert _close(by_windows["n=1,2,3,4"], sum(vpsnet) / 4), key
    assert raw_ours["vpq_by_windows"]["n=1,2,4,6,8"] != pytest.approx(raw_ours["vpq_by_windows"]["n=1,2,3,4"])


def _write_raw_video(root: Path, video: str, frames: list[list[list[int]]]) -> None:
    _write_vipseg(root, video, np.array(frames))


def _raw_pair(tmp_path: Path, gt: list, pred: list, video: str = "v") -> tuple[Path, Path]:
    _write_raw_video(tmp_path / "gt", video, gt)
    _write_raw_video(tmp_path / "pred", video, pred)
    return tmp_path / "pred", tmp_path / "gt"


def test_two_raw_values_of_one_stuff_category_are_one_segment(tmp_path: Path) -> None:
    # Category 1 is stuff (raw 2), category 2 a thing. The ground truth writes the stuff as 2 and as 200 / 201 in
    # the same frame; VIPSeg's converter colours all three alike, so it is one segment that the all-2 prediction
    # matches exactly: VPQ 1 (as two segments it would be two misses and a false positive).
    gt = [[[2, 2, 200, 201], [301, 301, 2, 200]], [[200, 200, 2, 2], [301, 301, 201, 201]]]
    pred = [[[2, 2, 2, 2], [301, 301, 2, 2]], [[2, 2, 2, 2], [301, 301, 2, 2]]]
    pred_dir, gt_dir = _raw_pair(tmp_path, gt, pred)
    with pytest.warns(EvaluationAnomalyWarning, match="stuff written with an instance number"):
        result = evaluate_vipseg(pred_dir, gt_dir, num_classes=3, thing_classes=[2], window_sizes=(0, 5),
                                 secondary_window_sizes=None, stq_official_numbering=False)
    assert result["vpq@0"] == 1.0 and result["vpq@5"] == 1.0 and result["vpq"] == 1.0
    assert result["vpq_by_windows"] == {"n=1,2": 1.0}
    assert result["stq"] == 1.0


def test_thing_values_stay_apart(tmp_path: Path) -> None:
    # A thing written below 125 (3 = category 2 without instance) is an object apart from 300 and 301.
    gt = [[[3, 3, 300, 301]]]
    pred_dir, gt_dir = _raw_pair(tmp_path, gt, [[[300, 300, 300, 300]]])
    with pytest.warns(EvaluationAnomalyWarning, match="thing written without instance number"):
        result = evaluate_vipseg(pred_dir, gt_dir, num_classes=3, thing_classes=[2], window_sizes=(0,),
                                 secondary_window_sizes=None, stq_official_numbering=False)
    # gt 300 (1 px) vs pred 300 (4 px): IoU 1/4; no match: 3 FN, 1 FP -> PQ 0
    assert result["vpq@0"] == 0.0


def test_first_listed_segment_thing_is_crowd_for_stq_unless_asked(tmp_path: Path) -> None:
    # The first frame holds no stuff: the first segment eval_stq_vspw.py numbers (instance 0) is the thing 301,
    # which deeplab2's STQ then reads as a crowd region. Its 4 pixels are the only thing track, so AQ is 0.
    gt = [[[301, 301, 0, 0]], [[301, 301, 2, 2]]]
    pred = [[[301, 302, 2, 2]], [[301, 301, 2, 2]]]
    pred_dir, gt_dir = _raw_pair(tmp_path, gt, pred)
    with pytest.warns(EvaluationAnomalyWarning, match="first ground-truth segment is a thing"):
        official = evaluate_vipseg(pred_dir, gt_dir, num_classes=3, thing_classes=[2], window_sizes=(0, 5))
    assert official["aq"] == 0.0 and official["stq"] == 0.0 and official["stq_first_segment_crowd_videos"] == 1
    corrected = evaluate_vipseg(pred_dir, gt_dir, num_classes=3, thing_classes=[2], window_sizes=(0, 5),
                                stq_official_numbering=False)
    # track 301 (4 px) meets pred 301 (3 px, TPA 3, IoU 3/4) and pred 302 (1 px, TPA 1, IoU 1/4)
    assert corrected["aq"] == pytest.approx((3 * 3 / 4 + 1 * 1 / 4) / 4, abs=1e-12)
    assert corrected["sq"] == official["sq"]
    # VPQ does not care: the converter marks no segment as crowd
    assert corrected["vpq"] == official["vpq"]


def test_vipseg_anomalies_are_refused_in_strict_mode() -> None:
    with collect_anomalies(strict=True), pytest.raises(StrictAnomalyError, match="a_stuff_merge/00000.png"):
        evaluate_vipseg(RAW / "pred", RAW / "gt")


def test_a_window_no_video_fills_is_nan_and_reported(tmp_path: Path) -> None:
    frames = [[[1, 1, 300, 300]]] * 3  # 3 frames: the n = 4, 6 and 8 windows have no start
    pred_dir, gt_dir = _raw_pair(tmp_path, frames, frames)
    with pytest.warns(EvaluationAnomalyWarning, match=r"3 VPQ windows no video fills .*n=4 "):
        result = evaluate_vipseg(pred_dir, gt_dir, num_classes=3, thing_classes=[2])
    assert result["vpq@5"] == 1.0 and math.isnan(result["vpq@25"]) and math.isnan(result["vpq"])


@pytest.mark.parametrize("side", ["pred", "gt"])
def test_a_corrupt_mask_png_is_one_error_naming_the_file(tmp_path: Path, side: str) -> None:
    shutil.copytree(RAW, tmp_path / "raw")
    bad = tmp_path / "raw" / side / "d_plain" / "00003.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated
    with pytest.raises(DataError, match=r"d_plain/00003\.png: cannot decode this PNG") as error:
        evaluate_vipseg(tmp_path / "raw" / "pred", tmp_path / "raw" / "gt")
    assert ("write the prediction again" if side == "pred" else "extract the VIPSeg panomasks again") in str(error.value)
    bad.write_text("not a png")
    with pytest.raises(DataError, match="not an image PIL can identify"):
        evaluate_vipseg(tmp_path / "raw" / "pred", tmp_path / "raw" / "gt")


def test_omg_eval_names_the_vpq_windows(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    result = CliRunner().invoke(main, ["eval", "--task", "video-panoptic", "--predictions", str(RAW / "pred"),
                                       "--ground-truth", str(RAW / "gt"), "--output", str(out)])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert figures["vpq_windows"] == "n=1,2,4,6,8"
    assert set(figures["vpq_by_windows"]) == {"n=1,2,4,6,8", "n=1,2,3,4"}
    assert "vpq_by_windows.n=1,2,4,6,8" in result.output and "vpq_by_windows.n=1,2,3,4" in result.output
    assert "first ground-truth segment is a thing" in result.output  # the anomaly line


def _sync_worker(rank: int, world_size: int, store_path: str, videos, expected, out_path: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=world_size)
    try:
        vpq = _vpq_over(videos[rank::world_size], expected)
        stq = SegmentationTrackingQuality(
            expected["num_classes"], expected["thing_classes"], expected["label_divisor"], expected["void_label"]
        )
        for pred, gt in videos[rank::world_size]:
            stq.update(pred, gt)
        vpq.sync()
        stq.sync()
        if rank == 0:
            torch.save({"vpq": vpq.compute()["vpq"], "stq": stq.compute()["stq"], "tp": vpq.tp}, out_path)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_vpq_and_stq_states_sync_across_processes(tmp_path: Path, fixture_data) -> None:
    expected, videos = fixture_data
    out = tmp_path / "rank0.pt"
    torch.multiprocessing.spawn(
        _sync_worker, args=(2, str(tmp_path / "store"), videos, expected, str(out)), nprocs=2, join=True
    )
    synced = torch.load(out)
    whole = _vpq_over(videos, expected)
    stq = SegmentationTrackingQuality(
        expected["num_classes"], expected["thing_classes"], expected["label_divisor"], expected["void_label"]
    )
    for pred, gt in videos:
        stq.update(pred, gt)
    assert torch.equal(synced["tp"], whole.tp)
    assert synced["vpq"] == pytest.approx(whole.compute()["vpq"], abs=1e-12)
    assert synced["stq"] == pytest.approx(stq.compute()["stq"], abs=1e-12)


def test_evaluate_vipseg_errors_name_the_file_the_side_and_the_fix(tmp_path: Path) -> None:
    frame = np.ones((1, 4, 5), np.int64)  # stuff category 0
    _write_vipseg(tmp_path / "VIPSeg" / "panomasks", "v1", frame)
    _write_vipseg(tmp_path / "pred", "v1", np.full((1, 4, 5), 200 * 100 + 3))  # decodes to category 199
    gt_dir = tmp_path / "VIPSeg" / "panomasks"
    with pytest.raises(ValueError, match=r"predicted frame .*pred/v1/00000\.png: mask values decode to categories"):
        evaluate_vipseg(tmp_path / "pred", gt_dir, num_classes=7, thing_classes=[2])
    with pytest.raises(ValueError, match="looks like the VIPSeg root: pass its panomasks/ folder"):
        evaluate_vipseg(tmp_path / "pred", tmp_path / "VIPSeg", num_classes=7, thing_classes=[2])
