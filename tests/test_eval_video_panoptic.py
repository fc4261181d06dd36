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
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from video_fixtures import load_video_fixture

from omg_eval.stq import SegmentationTrackingQuality
from omg_eval.video_panoptic_files import (
    VIPSEG_NUM_CLASSES,
    VIPSEG_THING_CLASSES,
    decode_vipseg_panomask,
    evaluate_vipseg,
    find_label_space,
)
from omg_eval.video_panoptic_quality import VideoPanopticQuality

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


def test_vpq_default_windows_average_the_official_figures(fixture_data) -> None:
    expected, videos = fixture_data
    result = _vpq_over(videos, expected).compute()  # k in (0, 5, 10, 15) -> n in (1, 2, 3, 4)
    official = [expected["vpq_by_nframes"][str(n)] for n in (1, 2, 3, 4)]
    assert _close(result["vpq"], sum(o["All"]["pq"] for o in official) / 4)
    assert _close(result["vpq_thing"], sum(o["Things"]["pq"] for o in official) / 4)
    assert _close(result["vpq_stuff"], sum(o["Stuff"]["pq"] for o in official) / 4)
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
    raw = np.array([[0, 1, 3, 6200], [6201, 200, 62, 3]], dtype=np.uint16)
    ids = decode_vipseg_panomask(raw, 124, things)
    # 0 -> VOID; 1 -> stuff 0; 3 -> category 2 (a thing) written below 125 -> its own instance 101;
    # 6200 / 6201 -> person (61) instances 1 and 2; 200 -> category 1 instance 1, a segment apart from value 2.
    assert ids.tolist() == [[255000, 0, 2101, 61001], [61002, 1001, 61101, 2101]]
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
    for index, (pred, gt) in enumerate(videos[:3]):
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
    vpq = VideoPanopticQuality(7, things, 1000, 255)
    stq = SegmentationTrackingQuality(7, things, 1000, 255)
    for pred, gt in decoded:
        vpq.update(pred, gt)
        stq.update(pred, gt)
    assert result["num_videos"] == 3
    assert result["vpq"] == vpq.compute()["vpq"] and result["stq"] == stq.compute()["stq"]
    (tmp_path / "pred" / "video1" / "00002.png").unlink()
    with pytest.raises(FileNotFoundError, match="no prediction"):
        evaluate_vipseg(tmp_path / "pred", tmp_path / "gt", num_classes=7, thing_classes=things)


def test_evaluate_vipseg_takes_the_label_space_from_the_data_sets_categories(tmp_path: Path, fixture_data) -> None:
    expected, videos = fixture_data
    things = expected["thing_classes"]
    divisor = expected["label_divisor"]
    pred, gt = videos[0]
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
