"""Fused kernels equal their PyTorch twins (and pycocotools for RLE) on awkward inputs; backend selection works."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from pycocotools import mask as coco_mask

from omg_eval.kernels._extension import fused_kernels
from omg_eval.kernels.confusion import confusion_matrix, confusion_matrix_batch
from omg_eval.kernels.rle import encode_masks, rle_ious
from omg_eval.kernels.segment_pairs import intersect_segment_ids, intersect_segment_ids_batch, rgb_to_id
from omg_eval.kernels.video_extension import video_extension


@pytest.fixture
def both_backends(monkeypatch: pytest.MonkeyPatch):
    def run(function, *args):
        monkeypatch.setenv("OMG_EVAL_BACKEND", "fused")
        fused = function(*args)
        monkeypatch.setenv("OMG_EVAL_BACKEND", "torch")
        reference = function(*args)
        return fused, reference

    return run


def _maps(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    gt = torch.randint(0, 6, (23, 31), generator=generator) * 70001  # large ids, several hash collisions likely
    pred = torch.randint(0, 9, (23, 31), generator=generator)
    gt[:5] = 0  # VOID rows: long runs
    return gt, pred


def test_segment_pairs_fused_equals_torch(both_backends) -> None:
    generator = torch.Generator().manual_seed(0)
    gt, pred = _maps(generator)
    rgb = torch.randint(0, 256, (23, 31, 3), dtype=torch.uint8, generator=generator)
    planar = rgb.permute(2, 0, 1).contiguous().permute(1, 2, 0)  # as torchvision decodes PNGs
    cases = [
        (gt, pred),
        (gt.to(torch.int32), pred.to(torch.int16)),
        (rgb, pred),
        (gt, rgb),
        (planar, rgb),
        (gt[:0], pred[:0]),
    ]
    for gt_map, pred_map in cases:
        fused, reference = both_backends(intersect_segment_ids, gt_map, pred_map)
        for a, b in zip(fused, reference):
            assert torch.equal(a, b)
    assert int(fused[2].sum()) == 0  # the empty case
    # runs crossing the kernel's 1024-pixel chunks and 8-pixel flag words, ids changing at a chunk's first pixel
    long_gt = torch.zeros(3000, dtype=torch.int32)
    long_gt[1023:2049] = 5
    long_gt[2057] = 9
    long_pred = torch.arange(3000, dtype=torch.int64) // 700
    fused, reference = both_backends(intersect_segment_ids, long_gt, long_pred)
    for a, b in zip(fused, reference):
        assert torch.equal(a, b)
    # two decoded-PNG (planar) maps larger than one chunk, colours changing in one channel only
    planes = torch.zeros(2, 3, 40, 60, dtype=torch.uint8)
    planes[0, 1, 10:30, 5:50] = 7
    planes[1, 2, :, 33:] = 1
    planes[1, 0, 20:, :] = 200
    views = planes.permute(0, 2, 3, 1)
    fused, reference = both_backends(intersect_segment_ids, views[0], views[1])
    for a, b in zip(fused, reference):
        assert torch.equal(a, b)
    assert len(fused[0]) == 8  # 2 gt colours x 4 pred colours, every combination present
    counts = intersect_segment_ids(gt, pred)[2]
    assert int(counts.sum()) == gt.numel()
    maps = [_maps(generator) for _ in range(4)]
    fused, reference = both_backends(intersect_segment_ids_batch, [m[0] for m in maps], [m[1] for m in maps])
    for a, b in zip(fused, reference):
        assert torch.equal(a, b)
    assert torch.equal(rgb_to_id(rgb), rgb[..., 0].long() + 256 * rgb[..., 1].long() + 65536 * rgb[..., 2].long())


def test_segment_pairs_interleaved_rgb_fused_equals_torch(both_backends) -> None:
    """Two H x W x 3 maps as PIL decodes them: the kernel's byte-wise boundary scan (3 bytes back) and its de-duplication
    of pixels flagged in several channels, across its 1024-pixel chunks and 32-byte groups."""
    generator = torch.Generator().manual_seed(3)
    gt = torch.zeros(40, 77, 3, dtype=torch.uint8)  # 3080 pixels: three full chunks and a short tail
    gt[:, 20:, 0] = 1  # a change in the red channel only
    gt[13:, :, 1] = 255  # green only, starting at pixel 1001 (crosses the first chunk boundary)
    gt[26, 46:, :] = torch.tensor([9, 8, 7], dtype=torch.uint8)  # all three channels at once
    gt.view(-1, 3)[1024] = torch.tensor([1, 2, 3], dtype=torch.uint8)  # a chunk's first pixel
    gt.view(-1, 3)[3079] = torch.tensor([0, 0, 5], dtype=torch.uint8)  # the last pixel, blue only
    pred = torch.zeros_like(gt)
    pred[:, :, 2] = (torch.arange(77) // 11).to(torch.uint8)
    pred[5:9] = torch.randint(0, 3, (4, 77, 3), dtype=torch.uint8, generator=generator)  # short noisy runs
    cases = [
        (gt, pred),
        (gt[:1, :1], pred[:1, :1]),  # one pixel
        (gt[:0], pred[:0]),  # no pixel
        (gt[:, ::2], pred[:, ::2]),  # not contiguous: copied first
        (torch.randint(0, 4, (31, 33, 3), dtype=torch.uint8, generator=generator),) * 2,
    ]
    for gt_map, pred_map in cases:
        fused, reference = both_backends(intersect_segment_ids, gt_map, pred_map)
        for a, b in zip(fused, reference):
            assert torch.equal(a, b)
        assert int(fused[2].sum()) == gt_map.shape[0] * gt_map.shape[1]
    fused, reference = both_backends(intersect_segment_ids_batch, [gt, gt[:3]], [pred, pred[:3]])
    for a, b in zip(fused, reference):
        assert torch.equal(a, b)


def test_segment_pairs_reject_bad_ids(both_backends, monkeypatch: pytest.MonkeyPatch) -> None:
    for backend in ("fused", "torch"):
        monkeypatch.setenv("OMG_EVAL_BACKEND", backend)
        with pytest.raises(ValueError, match=r"\[0, 2\^31\)"):
            intersect_segment_ids(torch.tensor([[-1, 2]]), torch.tensor([[0, 1]]))
        with pytest.raises(ValueError, match="same pixels"):
            intersect_segment_ids(torch.zeros(2, 3, dtype=torch.int64), torch.zeros(3, 2, dtype=torch.int64))
        with pytest.raises(TypeError, match="integer segment ids"):
            intersect_segment_ids(torch.zeros(2, 2), torch.zeros(2, 2))


def _blocky_labels(generator: torch.Generator, size: int, classes: int, run: int) -> torch.Tensor:
    """Labels in runs of about ``run`` equal pixels (the kernel adds a run at a time), some runs of one pixel."""
    runs = 2 * size // run + 2  # lengths average ~run, so these cover the size; the tail is repeated if not
    values = torch.randint(0, classes, (runs,), generator=generator)
    lengths = torch.randint(1, 2 * run, (runs,), generator=generator)
    labels = torch.repeat_interleave(values, lengths)
    return labels.repeat(size // max(len(labels), 1) + 1)[:size]


def test_confusion_fused_equals_torch(both_backends, monkeypatch: pytest.MonkeyPatch) -> None:
    generator = torch.Generator().manual_seed(1)
    gt = torch.randint(0, 5, (70000,), generator=generator).to(torch.uint8)  # per-pixel noise: runs of one
    pred = torch.randint(0, 5, (70000,), generator=generator)
    gt[::7] = 255
    # over the 2^20 pixels counted inline: split over threads, runs crossing the split points
    big_gt = _blocky_labels(generator, (1 << 20) + 12345, 6, 50).to(torch.int16)
    big_gt[1000:3000] = 255
    big_pred = _blocky_labels(generator, (1 << 20) + 12345, 6, 70)
    cases = [
        (gt, pred, 255),
        (gt.clamp(max=4), pred, None),
        (big_gt, big_pred, 255),
        (big_gt.clamp(max=5), big_pred, None),
    ]
    for gt_case, pred_case, ignore in cases:
        fused, reference = both_backends(confusion_matrix, gt_case, pred_case, 6, ignore)
        assert torch.equal(fused, reference) and fused.dtype == torch.int64
    monkeypatch.setenv("OMG_EVAL_BACKEND", "fused")
    with pytest.raises(ValueError, match="pred_labels holds values outside"):
        confusion_matrix(gt, pred + 1, 5)
    with pytest.raises(ValueError, match="gt_labels holds values outside"):
        confusion_matrix(big_gt, big_pred, 5)  # label 5 found only past the inline size


def test_confusion_batch_equals_the_sum_of_single_maps(both_backends, monkeypatch: pytest.MonkeyPatch) -> None:
    generator = torch.Generator().manual_seed(4)
    gts, preds = [], []
    for index, (height, width) in enumerate([(31, 17), (5, 64), (0, 9), (48, 48), (1, 1), (40, 33)]):
        gt = _blocky_labels(generator, height * width, 7, 9).reshape(height, width)
        pred = _blocky_labels(generator, height * width, 7, 5).reshape(height, width)
        if index % 2:
            gt = torch.where(torch.rand(gt.shape, generator=generator) < 0.1, 255, gt).to(torch.uint8)
        gts.append(gt)
        preds.append(pred.to(torch.int32) if index == 3 else pred)
    expected = sum(confusion_matrix(g, p, 7) for g, p in zip(gts, preds))
    fused, reference = both_backends(confusion_matrix_batch, gts, preds, 7)
    assert torch.equal(fused, expected) and torch.equal(reference, expected)
    empty_fused, empty_reference = both_backends(confusion_matrix_batch, [], [], 3)
    assert torch.equal(empty_fused, torch.zeros(3, 3, dtype=torch.int64)) and torch.equal(empty_fused, empty_reference)
    for backend in ("fused", "torch"):
        monkeypatch.setenv("OMG_EVAL_BACKEND", backend)
        with pytest.raises(ValueError, match="image 5: pred_labels holds values outside"):
            confusion_matrix_batch(gts, [*preds[:5], preds[5] + 7], 7)
        with pytest.raises(ValueError, match="image 1: gt_labels"):
            confusion_matrix_batch(gts[:2], [preds[0], preds[0]], 7)


def _random_masks(generator: torch.Generator, count: int) -> torch.Tensor:
    masks = torch.rand(count, 17, 13, generator=generator) < 0.4
    masks[0] = False  # empty mask
    masks[1] = True  # full mask (the RLE starts with an empty run of zeros)
    return masks


def test_rle_encode_and_iou_equal_pycocotools(both_backends) -> None:
    generator = torch.Generator().manual_seed(2)
    dets, gts = _random_masks(generator, 6), _random_masks(generator, 5)
    crowd = torch.tensor([False, True, False, True, False])
    fused, reference = both_backends(encode_masks, dets)
    coco = coco_mask.encode(np.asfortranarray(dets.permute(1, 2, 0).numpy().astype(np.uint8)))
    for ours_fused, ours_torch, theirs in zip(fused, reference, coco):
        assert torch.equal(ours_fused, ours_torch)
        uncompressed = coco_mask.frPyObjects({"counts": ours_fused.tolist(), "size": [17, 13]}, 17, 13)
        assert uncompressed["counts"] == theirs["counts"]
    gt_rles = encode_masks(gts)
    fused, reference = both_backends(rle_ious, encode_masks(dets), gt_rles, crowd)
    coco_gt = coco_mask.encode(np.asfortranarray(gts.permute(1, 2, 0).numpy().astype(np.uint8)))
    expected = np.asarray(coco_mask.iou(coco, coco_gt, crowd.int().tolist()))
    assert torch.equal(fused, reference)
    np.testing.assert_array_equal(fused.numpy(), expected)


def test_backend_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMG_EVAL_BACKEND", "torch")
    assert fused_kernels() is None
    monkeypatch.setenv("OMG_EVAL_BACKEND", "fused")
    assert fused_kernels() is not None  # this machine has a compiler: forcing fused must give the kernels
    monkeypatch.setenv("OMG_EVAL_BACKEND", "fast")
    with pytest.raises(ValueError, match="is not a backend"):
        fused_kernels()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the CUDA kernels build only there)")
def test_confusion_cuda_equals_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMG_EVAL_BACKEND", "fused")
    kernels = fused_kernels()
    assert kernels is not None and kernels.has_cuda()
    generator = torch.Generator().manual_seed(3)
    for num_classes in (7, 150):  # shared-memory and global-memory paths
        gt = torch.randint(0, num_classes, (300_001,), generator=generator)
        pred = torch.randint(0, num_classes, (300_001,), generator=generator)
        gt[::5] = 255
        on_gpu = confusion_matrix(gt.cuda(), pred.cuda().to(torch.int32), num_classes)
        assert torch.equal(on_gpu.cpu(), confusion_matrix(gt, pred, num_classes))
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(gt.cuda(), (pred + 200).cuda(), num_classes)


def test_compressed_rle_decoding_equals_pycocotools() -> None:
    kernels = fused_kernels()
    assert kernels is not None
    generator = torch.Generator().manual_seed(4)
    masks = _random_masks(generator, 5)
    masks[2, 3:9, 2:7] = True  # long runs: multi-character counts
    coco = coco_mask.encode(np.asfortranarray(masks.permute(1, 2, 0).numpy().astype(np.uint8)))
    num_pixels = masks.shape[1] * masks.shape[2]
    runs, lengths, areas, bad, problem = kernels.rle_from_strings([r["counts"] for r in coco], num_pixels)
    assert (bad, problem) == (-1, "")
    for decoded, expected, area, rle in zip(torch.split(runs, lengths.tolist()), encode_masks(masks), areas, coco):
        assert torch.equal(decoded, expected)
        assert int(area) == int(coco_mask.area(rle))
    video_areas, bad, _ = video_extension().rle_string_areas([r["counts"] for r in coco], num_pixels)
    assert bad == -1 and torch.equal(video_areas, areas)


# Malformed compressed RLE strings of a 10 x 10 image, with the words the error must contain. The overflow strings
# are what pycocotools' rleFrString shifts past 64 bits or wraps: 13 continuation groups for one count, and counts
# that stay within 60 bits each but whose differences add up past 2^63.
_HUGE = "0" + "o" * 11 + "?"  # 0, then 2^59 - 1: eleven 0x3f groups and a last group of 15 (sign bit clear)
MALFORMED_RLES = {
    "truncated": ("0a", "truncated"),  # 'a' (0x31) says another group follows, but the string ends
    "truncated-later": ("5:e", "truncated"),
    "overflow": ("0" + "o" * 13 + "0", "overflows 64 bits"),
    "overflow-sum": (_HUGE + "o" * 11 + "?" + "0" + ("o" * 11 + "?") * 20, "overflows 64 bits"),
    "negative": ("1O", "negative"),  # the second count decodes to -1
    "bad-character": ("5:e2~", "invalid '~'"),
    "short": ("5:", "cover 15 pixels, not the 100"),  # runs 5, 10: the image has 100 pixels
    "long": ("5:f2", "cover 101 pixels, not the 100"),
    "empty": ("", "cover 0 pixels"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_RLES))
def test_malformed_rle_strings_are_refused_by_both_extensions(name: str) -> None:
    """The one decoder (coco_rle.h) serves both extensions: each refuses every malformed string with the same words,
    where pycocotools' rleFrString reads past the end or shifts signed values out of range."""
    text, words = MALFORMED_RLES[name]
    good = coco_mask.encode(np.asfortranarray(np.eye(10, dtype=np.uint8)))["counts"].decode()
    runs, lengths, areas, bad, problem = fused_kernels().rle_from_strings([good, text], 100)
    assert bad == 1 and words in problem
    assert runs.numel() == 0 and lengths.tolist() == [0, 0] and areas.tolist() == [0, 0]
    video_areas, video_bad, video_problem = video_extension().rle_string_areas([good, text], 100)
    assert (video_bad, video_problem) == (1, problem)
    if text:  # an empty string is an absent frame for the track kernel
        with pytest.raises(ValueError, match=f"ground-truth RLE string 1 is malformed: .*{re.escape(words)}"):
            video_extension().rle_track_intersections([good, good], [good, text], 2, torch.tensor([[0, 0]]), 100)


def test_rle_decoding_limits_are_exact() -> None:
    """The largest count the decoder takes (12 groups, 2^59 - 1) decodes exactly; differences apply from the fourth
    count on, as in pycocotools, and zero-length runs inside a string are fine."""
    runs, _, areas, bad, _ = fused_kernels().rle_from_strings([_HUGE], -1)
    assert bad == -1 and runs.tolist() == [0, 2**59 - 1] and areas.tolist() == [2**59 - 1]
    text = coco_mask.frPyObjects({"size": [10, 10], "counts": [3, 0, 7, 20, 70]}, 10, 10)["counts"]
    runs, _, areas, bad, _ = fused_kernels().rle_from_strings([text], 100)
    assert bad == -1 and runs.tolist() == [3, 0, 7, 20, 70] and areas.tolist() == [20]


def test_no_compiler_falls_back_to_torch_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a C++ compiler every metric still works on the PyTorch formulations, after a single warning per
    extension; OMG_EVAL_BACKEND=fused then is an error that says why."""
    import warnings

    from omg_common import ext_build
    from omg_eval.kernels import _extension, video_extension

    generator = torch.Generator().manual_seed(5)
    gt, pred = _maps(generator)
    expected = intersect_segment_ids(gt, pred)  # fused, built before the compiler "disappears"
    saved = dict(_extension._loaded)
    monkeypatch.delenv("OMG_EVAL_BACKEND", raising=False)
    monkeypatch.setattr(ext_build, "compiler_available", lambda: False)
    monkeypatch.setattr(ext_build, "_warned", set())
    _extension._loaded.clear()
    video_extension._video_extension_for.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler found.*OMG_EVAL_BACKEND"):
            fallback = intersect_segment_ids(gt, pred)
        for a, b in zip(fallback, expected):
            assert torch.equal(a, b)
        with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler found"):
            assert video_extension.video_extension() is None
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # later calls stay silent
            intersect_segment_ids(gt, pred)
            confusion_matrix(gt % 4, pred % 4, 4, ignore_index=None)
            assert video_extension.video_extension() is None
        monkeypatch.setenv("OMG_EVAL_BACKEND", "fused")
        with pytest.raises(ext_build.ExtensionBuildError, match="OMG_EVAL_BACKEND=fused"):
            fused_kernels()
    finally:
        _extension._loaded.clear()
        _extension._loaded.update(saved)
        video_extension._video_extension_for.cache_clear()


@pytest.mark.parametrize("name", ["truncated", "overflow", "short", "long"])
def test_malformed_rle_in_youtube_vis_names_video_track_and_frame(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The video path (evaluate_youtube_vis -> rle_areas / rle_track_intersections) decodes with the same decoder and
    names the video, the record and the frame."""
    from omg_eval.video_instance_io import evaluate_youtube_vis

    monkeypatch.setenv("OMG_EVAL_BACKEND", "fused")
    text, words = MALFORMED_RLES[name]
    good = {"size": [10, 10], "counts": coco_mask.encode(np.asfortranarray(np.eye(10, dtype=np.uint8)))["counts"]}
    good["counts"] = good["counts"].decode()
    bad = {"size": [10, 10], "counts": text}
    gt = {
        "videos": [{"id": 3, "height": 10, "width": 10, "length": 2}],
        "categories": [{"id": 1}],
        "annotations": [{"id": 8, "video_id": 3, "category_id": 1, "segmentations": [good, good], "areas": [10, 10]}],
    }
    results = [
        {"video_id": 3, "category_id": 1, "score": 0.9, "segmentations": [good, None]},
        {"video_id": 3, "category_id": 1, "score": 0.8, "segmentations": [good, bad]},
    ]
    pattern = rf"video 3: result 1 frame 1: malformed compressed RLE 'counts': .*{re.escape(words)}"
    with pytest.raises(ValueError, match=pattern):
        evaluate_youtube_vis(results, gt)
    gt["annotations"][0]["segmentations"] = [bad, good]
    with pytest.raises(ValueError, match=r"video 3: annotation 8 frame 0: malformed compressed RLE 'counts'"):
        evaluate_youtube_vis(results[:1], gt)
