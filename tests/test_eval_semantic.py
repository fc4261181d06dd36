"""Semantic figures against an independent NumPy transcription of mmseg's IoUMetric (mIoU, aAcc, mAcc) and
detectron2's fwIoU formula."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from omg_eval.semantic import SemanticSegmentation


def _mmseg_style(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore: int) -> dict[str, float]:
    """mmseg IoUMetric (intersect_and_union + nanmean) for mIoU / aAcc / mAcc; fwIoU weighs IoU by gt share as
    detectron2's SemSegEvaluator does."""
    keep = gt != ignore
    pred, gt = pred[keep], gt[keep]
    intersect = pred[pred == gt]
    area_intersect = np.histogram(intersect, bins=num_classes, range=(0, num_classes - 1))[0].astype(float)
    area_pred = np.histogram(pred, bins=num_classes, range=(0, num_classes - 1))[0].astype(float)
    area_label = np.histogram(gt, bins=num_classes, range=(0, num_classes - 1))[0].astype(float)
    area_union = area_pred + area_label - area_intersect
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = area_intersect / area_union
        acc = area_intersect / area_label
    valid = ~np.isnan(iou)
    return {
        "mIoU": np.nanmean(iou),
        "fwIoU": np.sum(iou[valid] * (area_label / area_label.sum())[valid]),
        "mACC": np.nanmean(acc),
        "pACC": area_intersect.sum() / area_label.sum(),
    }


@pytest.mark.parametrize("backend", ["fused", "torch"])
def test_semantic_equals_reference_with_ignore_and_absent_classes(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMG_EVAL_BACKEND", backend)
    rng = np.random.default_rng(0)
    num_classes = 7
    gts = [rng.integers(0, 5, size=(13, 17)) for _ in range(3)]  # classes 5, 6 never in the ground truth
    preds = [np.where(rng.random(g.shape) < 0.6, g, rng.integers(0, 6, size=g.shape)) for g in gts]  # 6 never predicted
    for g in gts:
        g[rng.random(g.shape) < 0.15] = 255
    metric = SemanticSegmentation(num_classes)
    for p, g in zip(preds, gts):
        metric.update(torch.from_numpy(p), torch.from_numpy(g).to(torch.uint8))
    ours = metric.compute()
    reference = _mmseg_style(np.stack(preds), np.stack(gts), num_classes, 255)
    for key, value in reference.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key
    assert ours["per_class"]["5"]["IoU"] == 0.0  # predicted, absent from gt: counts as 0 in the mean
    assert np.isnan(ours["per_class"]["6"]["IoU"])  # in neither: left out


@pytest.mark.parametrize("backend", ["fused", "torch"])
@pytest.mark.parametrize("ignore", [-1, -2])
def test_a_negative_ignore_index_is_skipped_by_every_update_path(
    backend: str, ignore: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fused kernels use -1 for "no ignore value": a negative ignore_index must not reach them as one."""
    monkeypatch.setenv("OMG_EVAL_BACKEND", backend)
    rng = np.random.default_rng(2)
    gts = [rng.integers(0, 3, size=(6, 9)) for _ in range(3)]
    preds = [rng.integers(0, 3, size=(6, 9)) for _ in range(3)]
    for g in gts:
        g[rng.random(g.shape) < 0.3] = ignore
    reference = _mmseg_style(np.stack(preds), np.stack(gts), 3, ignore)
    single, listed = SemanticSegmentation(3, ignore_index=ignore), SemanticSegmentation(3, ignore_index=ignore)
    for p, g in zip(preds, gts):
        single.update(torch.from_numpy(p), torch.from_numpy(g))
    listed.update([torch.from_numpy(p) for p in preds], [torch.from_numpy(g) for g in gts])
    for metric in (single, listed):
        assert metric.compute()["mIoU"] == pytest.approx(reference["mIoU"], abs=1e-12)


def test_semantic_batches_lists_and_merge() -> None:
    rng = np.random.default_rng(1)
    pred = torch.from_numpy(rng.integers(0, 4, size=(4, 9, 11)))
    gt = torch.from_numpy(rng.integers(0, 4, size=(4, 9, 11)))
    batched, listed, halves = SemanticSegmentation(4), SemanticSegmentation(4), SemanticSegmentation(4)
    batched.update(pred, gt)
    listed.update(list(pred), list(gt))
    other = SemanticSegmentation(4)
    halves.update(pred[:2], gt[:2])
    other.update(pred[2:], gt[2:])
    halves.merge_state(other.state_dict())
    assert torch.equal(batched.confusion, listed.confusion) and torch.equal(batched.confusion, halves.confusion)
    assert int(batched.confusion.sum()) == 4 * 9 * 11


def test_semantic_user_errors() -> None:
    metric = SemanticSegmentation(3)
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        metric.update(torch.tensor([[0, 4]]), torch.tensor([[0, 1]]))
    with pytest.raises(TypeError, match="argmax"):
        metric.update(torch.rand(2, 2), torch.zeros(2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="same shape"):
        metric.update(torch.zeros(2, 3, dtype=torch.int64), torch.zeros(3, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="also a class index"):
        SemanticSegmentation(300, ignore_index=255)
    assert int(metric.confusion.sum()) == 0


def test_semantic_png_folders_through_the_eval_command(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from PIL import Image

    from omg_eval.cli import eval_command

    rng = np.random.default_rng(3)
    preds, gts = [], []
    for index, side in enumerate(("a", "b", "c")):
        gt = rng.integers(0, 4, size=(9, 12)).astype(np.uint8)
        gt[0] = 255
        pred = np.where(rng.random(gt.shape) < 0.7, gt, 1).astype(np.uint8)
        pred[gt == 255] = 2
        for root, labels in ((tmp_path / "gt", gt), (tmp_path / "pred", pred)):
            (root / "sub").mkdir(parents=True, exist_ok=True)
            Image.fromarray(labels).save(root / "sub" / f"{index}{side}.png")
        preds.append(pred.astype(np.int64))
        gts.append(gt.astype(np.int64))
    output = tmp_path / "out.json"
    args = ["--task", "semantic", "--predictions", str(tmp_path / "pred"), "--ground-truth", str(tmp_path / "gt")]
    result = CliRunner().invoke(eval_command, [*args, "--output", str(output)])
    assert result.exit_code == 0, result.output
    reference = _mmseg_style(np.stack(preds), np.stack(gts), 4, 255)
    assert json.loads(output.read_text())["mIoU"] == pytest.approx(reference["mIoU"], abs=1e-12)
    (tmp_path / "pred" / "sub" / "0a.png").unlink()
    result = CliRunner().invoke(eval_command, args)
    assert result.exit_code != 0 and "have no prediction" in str(result.exception)
