"""VSPW mIoU and VC parity with the official VSPW code, hand-derived cases, errors and the folder entry point.

The fixture (tests/fixtures/eval/video_semantic) holds six synthetic videos of 1 to 20 frames in raw VSPW labels
(0 = others, 255 = void) with an all-void frame, a pixel flickering between raw 0 and 255, predictions on void
pixels and a predicted class that never occurs in the ground truth. Expected figures: VSPW's ``utils.Evaluator`` and
``VC_perclip.get_common`` (see expected.json -> provenance and make_fixture.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from video_fixtures import load_video_fixture

from omg_eval.video_semantic import VideoSemanticMetric, clip_consistency_scores
from omg_eval.video_semantic_files import evaluate_vspw, raw_vspw_to_labels

FIXTURE = Path(__file__).parent / "fixtures" / "eval" / "video_semantic"


@pytest.fixture(scope="module")
def fixture_data() -> tuple[dict, list[tuple[torch.Tensor, torch.Tensor]]]:
    return load_video_fixture('video_semantic')


def test_miou_and_vc_match_the_vspw_code(fixture_data) -> None:
    expected, videos = fixture_data
    clips = tuple(int(n) for n in expected["vc_by_clip"])
    metric = VideoSemanticMetric(expected["num_classes"], 255, clips)
    for pred, raw_gt in videos:
        metric.update(pred, raw_vspw_to_labels(raw_gt))
    result = metric.compute()
    assert metric.confusion.tolist() == expected["confusion"]
    # Both sides divide the same integers in float64; only the order of the final sums differs.
    assert abs(result["mIoU"] - expected["miou"]) <= 1e-9
    for clip, official in expected["vc_by_clip"].items():
        assert abs(result[f"VC{clip}"] - official) <= 1e-9
    assert 0.05 < result["VC8"] < 0.95 and 0.2 < result["mIoU"] < 0.95  # not trivially perfect or empty
    # The class predicted but absent from the ground truth is left out of the mean.
    assert math.isnan(result["per_class_IoU"][5])


def test_vc_keeps_raw_others_and_void_apart(fixture_data) -> None:
    # Mapping both raw "others" and void to one ignore value would merge the flickering pixel and change VC.
    expected, videos = fixture_data
    pred, raw_gt = videos[1]  # the "flicker_void" video
    faithful = clip_consistency_scores(pred.long(), raw_vspw_to_labels(raw_gt), 2)
    merged = torch.where(raw_gt == 0, 255, raw_vspw_to_labels(raw_gt))
    assert not torch.equal(faithful, clip_consistency_scores(pred.long(), merged, 2))


def test_vc_hand_derived_clips() -> None:
    # 4 frames of 1 x 3, clip length 2: scored clips start at 0, 1, 2 - 1 = ... only T - n = 2 clips (0 and 1),
    # the official script never scores the last one.
    gt = torch.tensor([[[1, 1, 2]], [[1, 1, 3]], [[1, 2, 3]], [[0, 0, 0]]])
    pred = torch.tensor([[[0, 1, 1]], [[0, 2, 1]], [[4, 2, 1]], [[4, 2, 1]]])
    scores = clip_consistency_scores(pred, gt, 2)
    # clip 0 (frames 0-1): gt stable at px 0, 1; pred stable at px 0, 2 -> 1 / 2.
    # clip 1 (frames 1-2): gt stable at px 0, 2; pred stable at px 1, 2 -> 1 / 2.
    assert scores.tolist() == [0.5, 0.5]
    # A clip whose ground truth changes everywhere scores NaN and is skipped, like np.nanmean does.
    flicker = torch.tensor([[[1, 2]], [[2, 1]], [[1, 2]]])
    assert torch.isnan(clip_consistency_scores(flicker, flicker, 2)).all()
    metric = VideoSemanticMetric(5, 255, (2, 3))
    metric.update(pred, gt)
    metric.update(flicker, flicker)
    result = metric.compute()
    assert result["VC2"] == pytest.approx(0.5, abs=1e-12)
    # clip length 3 on a 4-frame video: one clip (frames 0-2): gt stable at px 0 only, pred not there -> 0.
    assert result["VC3"] == 0.0
    assert int(metric.vc_clips[0]) == 2  # the NaN clips of the second video were not counted


def test_short_videos_are_skipped_and_miou_uses_gt_classes() -> None:
    metric = VideoSemanticMetric(3, 255, (8,))
    gt = torch.tensor([[[0, 0, 255, -1]]]).repeat(8, 1, 1)  # exactly 8 frames: skipped for VC8, like VSPW
    pred = torch.tensor([[[0, 2, 1, 1]]]).repeat(8, 1, 1)
    metric.update(pred, gt)
    result = metric.compute()
    assert math.isnan(result["VC8"]) and int(metric.vc_clips[0]) == 0
    # only class 0 is in the ground truth: IoU = 8 / (16 + 8 - 8) = 0.5; class 2 (only predicted) is left out.
    assert result["mIoU"] == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32, torch.uint8])
def test_every_integer_dtype_gives_the_int64_figures(dtype: torch.dtype) -> None:
    """The metric narrows labels internally; any integer input type must give exactly the int64 figures, including
    int8 ground truth whose VOID is negative ("others" = -1) and uint8 ground truth with 255."""
    generator = torch.Generator().manual_seed(7)
    gt = torch.randint(0, 5, (12, 9, 11), generator=generator)
    gt[:, :2] = gt[:1, :2]  # stable rows, so VC has consistent regions
    pred = torch.where(torch.rand(gt.shape, generator=generator) < 0.8, gt, torch.randint(0, 5, gt.shape))
    void_value = 255 if dtype == torch.uint8 else -1
    if dtype == torch.int8:
        ignore = 100  # int8 cannot hold 255: VOID is the negative label and an ignore_index above the classes
    else:
        ignore = 255
    gt[:, 4, :3] = void_value
    if dtype != torch.uint8:
        gt[3:, 6, 5:] = ignore if ignore <= torch.iinfo(dtype).max else -1
    expected_metric = VideoSemanticMetric(5, ignore, (4, 8))
    expected_metric.update(pred, gt)
    metric = VideoSemanticMetric(5, ignore, (4, 8))
    metric.update(pred.to(dtype), gt.to(dtype))
    result, expected = metric.compute(), expected_metric.compute()
    assert torch.equal(metric.confusion, expected_metric.confusion)
    for key in ("mIoU", "VC4", "VC8"):
        assert result[key] == expected[key] and not math.isnan(result[key])


def test_video_semantic_rejects_bad_inputs() -> None:
    metric = VideoSemanticMetric(3, 255, (8, 16))
    video = torch.zeros(3, 2, 2, dtype=torch.int64)
    with pytest.raises(ValueError, match="outside"):
        metric.update(video + 3, video)
    with pytest.raises(ValueError, match="outside"):
        metric.update(video, video + 7)  # a gt label that is neither a class, ignore_index nor negative
    with pytest.raises(ValueError, match="same shape"):
        metric.update(video[:2], video)
    with pytest.raises(TypeError, match="argmax"):
        metric.update(video.float(), video)
    with pytest.raises(ValueError, match="clip_lengths"):
        VideoSemanticMetric(3, 255, (1,))
    with pytest.raises(ValueError, match="ignore_index"):
        VideoSemanticMetric(3, 2)


def test_evaluate_vspw_reads_the_vspw_layout(tmp_path: Path, fixture_data) -> None:
    expected, videos = fixture_data
    for index, (pred, raw_gt) in enumerate(videos):
        (tmp_path / "data" / f"v{index}" / "mask").mkdir(parents=True)
        (tmp_path / "pred" / f"v{index}").mkdir(parents=True)
        for t in range(raw_gt.shape[0]):
            Image.fromarray(raw_gt[t].numpy()).save(tmp_path / "data" / f"v{index}" / "mask" / f"{t:08d}.png")
            Image.fromarray(pred[t].numpy()).save(tmp_path / "pred" / f"v{index}" / f"{t:08d}.png")
    split = tmp_path / "val.txt"
    split.write_text("".join(f"v{i}\n" for i in range(len(videos))))
    result = evaluate_vspw(tmp_path / "pred", tmp_path / "data", split_file=split, num_classes=expected["num_classes"])
    assert result["num_videos"] == len(videos)
    assert abs(result["mIoU"] - expected["miou"]) <= 1e-9
    assert abs(result["VC8"] - expected["vc_by_clip"]["8"]) <= 1e-9
    assert abs(result["VC16"] - expected["vc_by_clip"]["16"]) <= 1e-9
    (tmp_path / "pred" / "v3" / "00000004.png").unlink()
    with pytest.raises(FileNotFoundError, match="no prediction"):
        evaluate_vspw(tmp_path / "pred", tmp_path / "data", num_classes=expected["num_classes"])


def test_evaluate_vspw_names_a_prediction_of_the_wrong_size(tmp_path: Path) -> None:
    (tmp_path / "data" / "v" / "mask").mkdir(parents=True)
    (tmp_path / "pred" / "v").mkdir(parents=True)
    Image.fromarray(np.ones((4, 6), np.uint8)).save(tmp_path / "data" / "v" / "mask" / "0.png")
    Image.fromarray(np.zeros((2, 3), np.uint8)).save(tmp_path / "pred" / "v" / "0.png")
    with pytest.raises(ValueError, match="resolution"):
        evaluate_vspw(tmp_path / "pred", tmp_path / "data", num_classes=3)


def test_evaluate_vspw_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    root = tmp_path / "VSPW_480p"
    (root / "data" / "v" / "mask").mkdir(parents=True)
    (tmp_path / "pred" / "v").mkdir(parents=True)
    Image.fromarray(np.ones((4, 6), np.uint8)).save(root / "data" / "v" / "mask" / "0.png")
    Image.fromarray(np.full((4, 6), 200, np.uint8)).save(tmp_path / "pred" / "v" / "0.png")
    bad = tmp_path / "pred" / "v" / "0.png"
    with pytest.raises(ValueError, match=rf"{bad} holds values outside \[0, 3\) \(min 200, max 200\)"):
        evaluate_vspw(tmp_path / "pred", root / "data", num_classes=3)
    with pytest.raises(FileNotFoundError, match="looks like the VSPW root: pass its data/ folder"):
        evaluate_vspw(tmp_path / "pred", root, num_classes=3)  # the dataset root instead of data/
