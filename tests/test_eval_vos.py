"""DAVIS-2017 J&F: parity with the official davis2017-evaluation (figures stored in the fixture, see its
``provenance``), equality of the fused and PyTorch boundary kernels, and the errors users can run into."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from omg_common.ext_build import compiler_available
from omg_core.cli import EXIT_USER_ERROR, main
from omg_data.errors import DataError
from omg_eval.kernels.boundary_f import (
    boundary_maps,
    boundary_match_counts,
    boundary_match_counts_torch,
    boundary_radius,
    dilate_disk,
    object_counts,
    object_counts_torch,
)
from omg_eval.vos import DAVISMetric
from omg_eval.vos_io import _read_id_map, evaluate_davis
from omg_eval.vos_statistics import sequence_statistics

FIXTURES = Path(__file__).parent / "fixtures" / "eval" / "vos"
# J and F are ratios of exact integer pixel counts computed in float64 as the official does: 1e-9 is ample.
TOLERANCE = 1e-9
BACKENDS = [
    "torch",
    pytest.param("fused", marks=pytest.mark.skipif(not compiler_available(), reason="no C++ compiler to build it")),
]


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((FIXTURES / "expected.json").read_text())


@pytest.mark.parametrize("backend", BACKENDS)
def test_evaluate_davis_matches_official(backend: str, monkeypatch: pytest.MonkeyPatch, expected: dict) -> None:
    monkeypatch.setenv("OMG_EVAL_BACKEND", backend)
    ours = evaluate_davis(FIXTURES / "pred", FIXTURES / "gt")
    for key, value in expected["global"].items():
        assert ours[key] == pytest.approx(value, abs=TOLERANCE), key
    assert set(ours["per_object"]) == set(expected["per_object"])
    for name, values in expected["per_object"].items():
        for key in ("J-Mean", "F-Mean"):
            assert ours["per_object"][name][key] == pytest.approx(values[key], abs=TOLERANCE), (name, key)


def _fixture_sequences() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, pred_ids (T, H, W), gt_ids (T, H, W)) of every fixture sequence."""
    sequences = []
    for sequence in sorted(p.name for p in (FIXTURES / "gt").iterdir()):
        frames = sorted((FIXTURES / "gt" / sequence).glob("*.png"))
        gt_ids = np.stack([_read_id_map(f, "annotation") for f in frames]).astype(np.int64)
        pred_frames = [FIXTURES / "pred" / sequence / f.name for f in frames]
        pred_ids = np.stack([_read_id_map(f, "prediction") for f in pred_frames]).astype(np.int64)
        sequences.append((sequence, torch.from_numpy(pred_ids), torch.from_numpy(gt_ids)))
    return sequences


def test_per_object_recall_and_decay_match_official(expected: dict) -> None:
    metric = DAVISMetric()
    for sequence, pred_ids, gt_ids in _fixture_sequences():
        metric.update(pred_ids, gt_ids, sequence)
    assert len(metric.objects) == len(expected["per_object"])
    for record in metric.objects:
        official = expected["per_object"][record["name"]]
        j_mean, j_recall, j_decay = sequence_statistics(record["J"])
        f_mean, f_recall, f_decay = sequence_statistics(record["F"])
        ours = {"J-Mean": j_mean, "J-Recall": j_recall, "J-Decay": j_decay}
        ours.update({"F-Mean": f_mean, "F-Recall": f_recall, "F-Decay": f_decay})
        for key, value in official.items():
            assert ours[key] == pytest.approx(value, abs=TOLERANCE), (record["name"], key)


def test_state_merge_equals_single_pass(expected: dict) -> None:
    """Sequences split over two instances (as over two ranks) and merged give the official figures."""
    first, second = DAVISMetric(), DAVISMetric()
    for index, (sequence, pred_ids, gt_ids) in enumerate(_fixture_sequences()):
        (first if index % 2 else second).update(pred_ids, gt_ids, sequence)
    first.merge_state(second.state_dict())
    ours = first.compute()
    for key, value in expected["global"].items():
        assert ours[key] == pytest.approx(value, abs=TOLERANCE), key


def _brute_force_dilation(bmaps: torch.Tensor, radius: int) -> torch.Tensor:
    """Dilation straight from the definition: a pixel is set if any set pixel lies within the disk around it."""
    out = torch.zeros_like(bmaps)
    _, height, width = bmaps.shape
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dx * dx + dy * dy > radius * radius or abs(dy) >= height or abs(dx) >= width:
                continue  # outside the disk, or a shift that moves every pixel out of the frame
            shifted = torch.zeros_like(bmaps)
            shifted[:, max(0, -dy) : height - max(0, dy), max(0, -dx) : width - max(0, dx)] = bmaps[
                :, max(0, dy) : height - max(0, -dy), max(0, dx) : width - max(0, -dx)
            ]
            out |= shifted
    return out


@pytest.mark.parametrize("size", [(23, 31), (2, 30), (30, 2)])  # frames flatter or narrower than the radius too
@pytest.mark.parametrize("radius", [0, 1, 3, 8])
def test_disk_dilation_matches_definition(radius: int, size: tuple[int, int]) -> None:
    generator = torch.Generator().manual_seed(radius)
    bmaps = torch.rand(2, *size, generator=generator) > 0.9
    assert torch.equal(dilate_disk(bmaps, radius), _brute_force_dilation(bmaps, radius))


def test_boundary_map_rules() -> None:
    """seg2bmap (outputs checked against the official ``_seg2bmap``): the image border is never a boundary, a mask's
    left edge is marked on the background pixel before it, an isolated pixel marks itself and its north, west and
    north-west neighbours."""
    assert not boundary_maps(torch.ones(1, 4, 5, dtype=torch.bool)).any()
    right_half = torch.zeros(1, 4, 5, dtype=torch.bool)
    right_half[0, :, 3:] = True
    assert boundary_maps(right_half)[0].nonzero().tolist() == [[0, 2], [1, 2], [2, 2], [3, 2]]
    dot = torch.zeros(1, 5, 5, dtype=torch.bool)
    dot[0, 2, 2] = True
    assert boundary_maps(dot)[0].nonzero().tolist() == [[1, 1], [1, 2], [2, 1], [2, 2]]


@pytest.mark.parametrize(
    "shape,radius",
    [((5, 7, 9), 1), ((3, 30, 41), 3), ((2, 1, 10), 2), ((2, 10, 1), 2), ((2, 64, 64), 8), ((2, 2, 300), 3),
     ((2, 300, 2), 3)],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_boundary_backends_agree(backend: str, shape: tuple, radius: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMG_EVAL_BACKEND", backend)
    generator = torch.Generator().manual_seed(radius)
    fg = torch.rand(shape, generator=generator) > 0.6
    gt = torch.rand(shape, generator=generator) > 0.5
    fg[0] = False  # an empty prediction: precision/recall corner cases
    assert torch.equal(boundary_match_counts(fg, gt, radius), boundary_match_counts_torch(fg, gt, radius))


@pytest.mark.parametrize("backend", BACKENDS)
def test_object_counts_backends_agree(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-object counts from id maps holding void (255) and ids beyond the first frame's objects."""
    monkeypatch.setenv("OMG_EVAL_BACKEND", backend)
    generator = torch.Generator().manual_seed(3)
    pred = torch.randint(0, 4, (3, 21, 34), generator=generator, dtype=torch.uint8)
    gt = torch.randint(0, 6, (3, 21, 34), generator=generator, dtype=torch.uint8)
    gt[:, :2] = 255
    counts = object_counts(pred, gt, 3, 2)
    assert torch.equal(counts, object_counts_torch(pred, gt, 3, 2))
    for k in range(1, 4):  # J's counts straight from the definition
        assert torch.equal(counts[k - 1, :, 0], ((pred == k) & (gt == k)).flatten(1).sum(1))
        assert torch.equal(counts[k - 1, :, 1], ((pred == k) | (gt == k)).flatten(1).sum(1))


def test_boundary_radius_follows_the_diagonal() -> None:
    assert boundary_radius(480, 854) == 8  # DAVIS 480p
    assert boundary_radius(120, 160) == 2
    assert boundary_radius(50, 70, bound_th=3) == 3
    with pytest.raises(ValueError, match="whole number"):
        boundary_radius(50, 70, bound_th=1.5)


def test_user_errors_name_the_problem(tmp_path: Path) -> None:
    metric = DAVISMetric()
    gt_ids = torch.zeros(4, 8, 8, dtype=torch.int64)
    gt_ids[:, 2:5, 2:5] = 1
    with pytest.raises(ValueError, match="object id 2"):
        metric.update(gt_ids * 2, gt_ids, "too_many_objects")
    with pytest.raises(ValueError, match="same frames"):
        metric.update(gt_ids[:3], gt_ids, "short_prediction")
    with pytest.raises(ValueError, match="at least 3"):
        metric.update(gt_ids[:2], gt_ids[:2], "two_frames")
    with pytest.raises(ValueError, match="first ground-truth frame has no object"):
        metric.update(gt_ids, torch.zeros_like(gt_ids), "no_objects")
    with pytest.raises(ValueError, match="no sequence"):
        metric.compute()
    shutil.copytree(FIXTURES / "gt" / "border", tmp_path / "gt" / "border")
    (tmp_path / "pred" / "border").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="00001.png"):
        evaluate_davis(tmp_path / "pred", tmp_path / "gt")


def _broken(data: bytes, how: str) -> bytes:
    if how == "truncated":
        return data[:80]
    if how == "not-an-image":
        return b"not a png at all"
    flipped = bytearray(data)  # "bad-data": one byte of the compressed pixels flipped
    flipped[data.index(b"IDAT") + 10] ^= 0xFF
    return bytes(flipped)


@pytest.mark.parametrize("how", ["truncated", "not-an-image", "bad-data"])
def test_a_corrupt_prediction_png_is_one_error_naming_the_file(tmp_path: Path, how: str) -> None:
    shutil.copytree(FIXTURES / "gt", tmp_path / "gt")
    shutil.copytree(FIXTURES / "pred", tmp_path / "pred")
    bad = tmp_path / "pred" / "blobs" / "00002.png"
    bad.write_bytes(_broken(bad.read_bytes(), how))
    with pytest.raises(DataError, match=r"blobs/00002\.png: cannot decode this PNG .*write the prediction again"):
        evaluate_davis(tmp_path / "pred", tmp_path / "gt")
    # the same through `omg eval`: exit code 2 (a user error), one line naming the file, no traceback
    result = CliRunner().invoke(main, ["eval", "--task", "vos", "--predictions", str(tmp_path / "pred"),
                                       "--ground-truth", str(tmp_path / "gt")])
    assert result.exit_code == EXIT_USER_ERROR, result.output
    assert str(bad) in result.output and "cannot decode this PNG" in result.output
    assert "Traceback" not in result.output and "UnidentifiedImageError" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_png_reader_gives_the_official_arrays(tmp_path: Path) -> None:
    # davis2017-evaluation reads np.array(Image.open(path)): palette indices of palette PNGs, 0/1 of 1-bit ones.
    ids = np.array([[0, 1, 2], [255, 1, 0]], dtype=np.uint8)
    palette = Image.fromarray(ids, mode="P")
    palette.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
    palette.save(tmp_path / "p.png")
    Image.fromarray(ids[:, :2] > 0).save(tmp_path / "one_bit.png")
    for name in ("p.png", "one_bit.png"):
        with Image.open(tmp_path / name) as image:
            official = np.array(image)
        assert np.array_equal(_read_id_map(tmp_path / name, "prediction"), official.astype(np.uint8)), name


@pytest.mark.parametrize("backend", BACKENDS)
def test_unsupervised_matches_official(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unsupervised protocol: more proposals than objects, fewer, swapped ids, void pixels; all frames scored."""
    monkeypatch.setenv("OMG_EVAL_BACKEND", backend)
    folder = FIXTURES / "unsupervised"
    expected = json.loads((folder / "expected.json").read_text())
    ours = evaluate_davis(folder / "pred", folder / "gt", task="unsupervised")
    for key, value in expected["global"].items():
        assert ours[key] == pytest.approx(value, abs=TOLERANCE), key
    assert set(ours["per_object"]) == set(expected["per_object"])
    for name, values in expected["per_object"].items():
        for key, value in values.items():
            assert ours["per_object"][name][key] == pytest.approx(value, abs=TOLERANCE), (name, key)
    with pytest.raises(ValueError, match="at most 20 proposals"):
        gt_ids = torch.zeros(2, 6, 6, dtype=torch.uint8)
        gt_ids[:, 1:3, 1:3] = 1
        DAVISMetric(task="unsupervised").update(torch.full_like(gt_ids, 21), gt_ids, "too_many_proposals")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_kernels_match_cpu() -> None:
    generator = torch.Generator().manual_seed(4)
    fg = torch.rand(3, 40, 57, generator=generator) > 0.6
    gt = torch.rand(3, 40, 57, generator=generator) > 0.5
    assert torch.equal(boundary_match_counts(fg.cuda(), gt.cuda(), 3).cpu(), boundary_match_counts_torch(fg, gt, 3))
    pred_ids = torch.randint(0, 4, (3, 21, 34), generator=generator, dtype=torch.uint8)
    gt_ids = torch.randint(0, 6, (3, 21, 34), generator=generator, dtype=torch.uint8)
    assert torch.equal(
        object_counts(pred_ids.cuda(), gt_ids.cuda(), 3, 2).cpu(), object_counts_torch(pred_ids, gt_ids, 3, 2)
    )


@pytest.mark.parametrize("num_frames", [10, 255, 256, 300])
def test_decay_compares_the_official_first_and_last_quarters(num_frames: int) -> None:
    """db_statistics' bins: uint8 edges (wrapping above 255 frames, as officially) and an inclusive right edge taken
    in int64 as NumPy 1.x does; at 256 frames NumPy 2 would wrap that edge to 0 and give a NaN decay."""
    values = np.random.default_rng(num_frames).random(num_frames)
    edges = (np.round(np.linspace(1, num_frames, 5) + 1e-10) - 1).astype(np.uint8).astype(np.int64)
    first, last = values[edges[0] : edges[1] + 1], values[edges[3] : edges[4] + 1]
    _, _, decay = sequence_statistics(values)
    if num_frames == 300:  # the wrapped edges leave the last quarter empty: NaN, officially too
        assert last.size == 0 and np.isnan(decay)
    else:
        assert last.size and decay == pytest.approx(first.mean() - last.mean(), abs=1e-12)
