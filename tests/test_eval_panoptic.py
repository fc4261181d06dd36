"""PQ parity with the official COCO panopticapi (figures stored in the fixture, produced by panopticapi itself)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from omg_eval.anomalies import EvaluationAnomalyWarning, StrictAnomalyError, collect_anomalies
from omg_eval.kernels.segment_pairs import rgb_to_id
from omg_eval.panoptic import PanopticQuality
from omg_eval.panoptic_files import evaluate_panoptic_files

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "eval" / "image" / "panoptic"
# ground truth that panopticapi scores although it is odd: float areas, PNG ids missing from segments_info, entries
# without a pixel (see make_fixture.py there); expected.json holds the official pq_compute's figures
ODD = FIXTURE.parent / "panoptic_anomalies"
UNLISTED, PIXELLESS = "panoptic-gt-id-not-in-segments-info", "panoptic-gt-segment-without-pixels"
# panopticapi accumulates IoUs in float64 in its own order; ours adds the same float64 terms in another order, so
# sums agree to rounding (~1e-16), well inside 1e-9.
TOLERANCE = 1e-9


def _expected() -> dict:
    return json.loads((FIXTURE / "expected_pq.json").read_text())["results"]


def _assert_matches_panopticapi(results: dict, expected: dict, tolerance: float = TOLERANCE) -> None:
    for group in ("All", "Things", "Stuff"):
        assert results[group]["n"] == expected[group]["n"]
        for key in ("pq", "sq", "rq"):
            assert results[group][key] == pytest.approx(expected[group][key], abs=tolerance), (group, key)
    assert {str(k) for k in results["per_class"]} == set(expected["per_class"])
    for category_id, figures in results["per_class"].items():
        for key in ("pq", "sq", "rq"):
            assert figures[key] == pytest.approx(expected["per_class"][str(category_id)][key], abs=tolerance)


@pytest.mark.parametrize("backend", ["fused", "torch"])
def test_files_equal_panopticapi(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMG_EVAL_BACKEND", backend)
    results = evaluate_panoptic_files(FIXTURE / "gt.json", FIXTURE / "pred.json", FIXTURE / "gt", FIXTURE / "pred")
    _assert_matches_panopticapi(results, _expected())
    assert 0 < results["All"]["pq"] < 1


def _load_fixture(
    folder: Path = FIXTURE,
) -> tuple[list[dict], list[torch.Tensor], list[torch.Tensor], list[dict], list[dict]]:
    gt_json = json.loads((folder / "gt.json").read_text())
    pred_json = json.loads((folder / "pred.json").read_text())
    pred_by_image = {a["image_id"]: a for a in pred_json["annotations"]}
    gt_maps, pred_maps, gt_infos, pred_infos = [], [], [], []
    for annotation in gt_json["annotations"]:
        prediction = pred_by_image[annotation["image_id"]]
        gt_maps.append(rgb_to_id(torch.from_numpy(np.array(Image.open(folder / "gt" / annotation["file_name"])))))
        pred_maps.append(rgb_to_id(torch.from_numpy(np.array(Image.open(folder / "pred" / prediction["file_name"])))))
        gt_infos.append(annotation["segments_info"])
        pred_infos.append(prediction["segments_info"])
    return gt_json["categories"], gt_maps, pred_maps, gt_infos, pred_infos


def test_id_maps_in_any_batching_equal_panopticapi() -> None:
    categories, gt_maps, pred_maps, gt_infos, pred_infos = _load_fixture()
    one_batch, one_by_one = PanopticQuality(categories), PanopticQuality(categories)
    one_batch.update(pred_maps, pred_infos, gt_maps, gt_infos)
    for i in range(len(gt_maps)):
        one_by_one.update([pred_maps[i].to(torch.int32)], [pred_infos[i]], [gt_maps[i]], [gt_infos[i]])
    for metric in (one_batch, one_by_one):
        _assert_matches_panopticapi(metric.compute(), _expected())


def test_crowd_and_void_change_the_figures() -> None:
    """The fixture's crowd/VOID handling matters: treating crowd as ordinary ground truth changes PQ."""
    categories, gt_maps, pred_maps, gt_infos, pred_infos = _load_fixture()
    no_crowd = [[{**s, "iscrowd": 0} for s in infos] for infos in gt_infos]
    metric = PanopticQuality(categories)
    metric.update(pred_maps, pred_infos, gt_maps, no_crowd)
    assert abs(metric.compute()["All"]["pq"] - _expected()["All"]["pq"]) > 1e-3
    # panopticapi tests `iscrowd == 1`: any other value (a 2 in hand-made ground truth) is an ordinary segment
    odd_crowd = [[{**s, "iscrowd": 2 if s.get("iscrowd") else 0} for s in infos] for infos in gt_infos]
    odd = PanopticQuality(categories)
    odd.update(pred_maps, pred_infos, gt_maps, odd_crowd)
    assert odd.compute()["All"] == metric.compute()["All"]


def test_counts_of_a_hand_made_image() -> None:
    """One TP (IoU 6/8 after leaving VOID out), one FP absorbed by crowd, one FN, one FP."""
    gt = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 1], [2, 2, 0, 0], [3, 3, 3, 3]])
    pred = torch.tensor([[5, 5, 5, 5], [5, 5, 5, 0], [6, 6, 5, 5], [7, 7, 8, 8]])
    categories = [{"id": 1, "isthing": 1}, {"id": 2, "isthing": 1}, {"id": 3, "isthing": 0}]
    gt_info = [
        {"id": 1, "category_id": 1, "area": 8},
        {"id": 2, "category_id": 2, "area": 2, "iscrowd": 1},
        {"id": 3, "category_id": 3, "area": 4},
    ]
    pred_info = [
        {"id": 5, "category_id": 1},
        {"id": 6, "category_id": 2},
        {"id": 7, "category_id": 1},
        {"id": 8, "category_id": 1},
    ]
    metric = PanopticQuality(categories)
    metric.update([pred], [pred_info], [gt], [gt_info])
    # segment 5: 9 px, 2 on VOID, 7 on gt 1 -> IoU 7 / (9 + 8 - 7 - 2) = 7/8
    assert metric.tp.tolist() == [1, 0, 0]
    assert metric.iou_sum[0].item() == pytest.approx(7 / 8, abs=1e-15)
    assert metric.fp.tolist() == [2, 0, 0]  # 7 and 8 (not on crowd of their class); 6 lies on crowd of class 2
    assert metric.fn.tolist() == [0, 0, 1]


def _odd_expected() -> dict:
    return json.loads((ODD / "expected.json").read_text())["results"]


def _evaluate_odd(**kwargs) -> dict:
    return evaluate_panoptic_files(ODD / "gt.json", ODD / "pred.json", ODD / "gt", ODD / "pred", **kwargs)


@pytest.mark.parametrize("backend", ["fused", "torch"])
def test_odd_ground_truth_scores_as_panopticapi(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Float areas, PNG ids missing from segments_info, entries without a pixel: panopticapi's figures, reported."""
    monkeypatch.setenv("OMG_EVAL_BACKEND", backend)
    with collect_anomalies() as log:
        results = _evaluate_odd(batch_size=2)  # the odd images fall in two batches
    # the same float64 operations on the same values as panopticapi: equal to rounding of the last sums
    _assert_matches_panopticapi(results, _odd_expected(), tolerance=1e-12)
    assert log.counts() == {UNLISTED: 3, PIXELLESS: 2}  # ids 401, 402 (image 2), 605 (image 3); 602, 603
    assert log.kinds[UNLISTED].example == "image 2, segment ids 401, 402"
    assert log.kinds[PIXELLESS].example == "image 3, segment ids 602, 603"
    assert len(log.lines("panoptic")) == 2


def test_odd_ground_truth_in_memory_equals_the_files() -> None:
    categories, gt_maps, pred_maps, gt_infos, pred_infos = _load_fixture(ODD)
    metric = PanopticQuality(categories)
    with collect_anomalies() as log:
        for i in range(len(gt_maps)):
            metric.update([pred_maps[i]], [pred_infos[i]], [gt_maps[i]], [gt_infos[i]], image_names=[str(i + 1)])
    _assert_matches_panopticapi(metric.compute(), _odd_expected(), tolerance=1e-12)
    assert log.counts() == {UNLISTED: 3, PIXELLESS: 2}


def test_odd_ground_truth_float_areas_are_used_as_given() -> None:
    """Truncating the float areas of image 1 (as this project once did) changes the figures."""
    categories, gt_maps, pred_maps, gt_infos, pred_infos = _load_fixture(ODD)
    assert any(isinstance(s["area"], float) and s["area"] % 1 for s in gt_infos[0])
    truncated = [[{**s, "area": int(s["area"])} for s in infos] for infos in gt_infos]
    metric = PanopticQuality(categories)
    with collect_anomalies():
        metric.update(pred_maps, pred_infos, gt_maps, truncated)
    assert abs(metric.compute()["Things"]["pq"] - _odd_expected()["Things"]["pq"]) > 1e-3


def test_odd_ground_truth_strict_mode_names_the_image() -> None:
    with collect_anomalies(strict=True), pytest.raises(StrictAnomalyError, match="image 2, segment ids 401, 402"):
        _evaluate_odd()


def test_odd_ground_truth_without_a_log_warns_once_per_kind() -> None:
    with pytest.warns(EvaluationAnomalyWarning) as caught:
        results = _evaluate_odd(batch_size=1)
    lines = [str(w.message) for w in caught if issubclass(w.category, EvaluationAnomalyWarning)]
    assert len(lines) == 2, lines
    assert lines[0].startswith("evaluate_panoptic_files: 3 ground-truth PNG ids missing from segments_info")
    assert lines[1].startswith("evaluate_panoptic_files: 2 ground-truth segments_info entries without a pixel")
    assert results["All"]["pq"] == _odd_expected()["All"]["pq"]


def test_unlisted_ground_truth_is_neither_void_nor_matched() -> None:
    """Prediction 5 lies on 4 px of gt 1 and 4 px of the unlisted gt 2: IoU 4 / (8 + 4 - 4) = 0.5, no match (as
    VOID it would be 4 / 4); prediction 6 lies on the unlisted gt 3 only, a FP (as VOID it would be ignored)."""
    gt = torch.tensor([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 0, 0], [3, 3, 0, 0]])
    pred = torch.tensor([[5, 5, 5, 5], [5, 5, 5, 5], [6, 6, 0, 0], [6, 6, 0, 0]])
    metric = PanopticQuality([{"id": 1, "isthing": 1}])
    with collect_anomalies() as log:
        metric.update(
            [pred],
            [[{"id": 5, "category_id": 1}, {"id": 6, "category_id": 1}]],
            [gt],
            [[{"id": 1, "category_id": 1, "iscrowd": 0, "area": 4}]],
            image_names=["17"],
        )
    assert (metric.tp.tolist(), metric.fp.tolist(), metric.fn.tolist()) == ([0], [2], [1])
    assert log.counts() == {UNLISTED: 2} and log.kinds[UNLISTED].example == "image 17, segment ids 2, 3"


def test_ground_truth_without_pixels_is_a_fn_or_the_crowd_region() -> None:
    """gt 3 (no pixel) is a FN; crowd gt 4 (no pixel), listed after crowd gt 2, is class 1's crowd region, so
    prediction 6 on crowd gt 2 is a FP; listed before it, gt 2 absorbs prediction 6."""
    gt = torch.tensor([[1, 1, 2, 2], [1, 1, 2, 2]])
    pred = torch.tensor([[5, 5, 6, 6], [5, 5, 6, 6]])
    pred_info = [{"id": 5, "category_id": 1}, {"id": 6, "category_id": 1}]
    listed = {
        1: {"id": 1, "category_id": 1, "iscrowd": 0, "area": 4},
        2: {"id": 2, "category_id": 1, "iscrowd": 1, "area": 4},
        3: {"id": 3, "category_id": 1, "iscrowd": 0, "area": 4},
        4: {"id": 4, "category_id": 1, "iscrowd": 1, "area": 3},
    }
    for order, fp in (([1, 2, 3, 4], 1), ([1, 4, 3, 2], 0)):
        metric = PanopticQuality([{"id": 1, "isthing": 1}])
        with collect_anomalies() as log:
            metric.update([pred], [pred_info], [gt], [[listed[i] for i in order]])
        assert (metric.tp.tolist(), metric.fp.tolist(), metric.fn.tolist()) == ([1], [fp], [1]), order
        assert log.counts() == {PIXELLESS: 2}


def test_in_memory_update_without_a_log_warns() -> None:
    gt, pred = torch.tensor([[1, 7]]), torch.tensor([[1, 0]])
    metric = PanopticQuality([{"id": 1, "isthing": 1}])
    with pytest.warns(EvaluationAnomalyWarning, match="1 ground-truth PNG ids missing"):
        metric.update([pred], [[{"id": 1, "category_id": 1}]], [gt], [[{"id": 1, "category_id": 1, "area": 1}]])
    assert metric.tp.tolist() == [1]


def test_strict_mode_adds_nothing() -> None:
    gt, pred = torch.tensor([[1, 7]]), torch.tensor([[1, 0]])
    metric = PanopticQuality([{"id": 1, "isthing": 1}])
    with collect_anomalies(strict=True), pytest.raises(StrictAnomalyError, match="image 0, segment id 7"):
        metric.update([pred], [[{"id": 1, "category_id": 1}]], [gt], [[{"id": 1, "category_id": 1, "area": 1}]])
    assert metric.tp.tolist() == [0]


def test_bad_ground_truth_area_is_named() -> None:
    gt = torch.tensor([[1, 1]])
    metric = PanopticQuality([{"id": 1, "isthing": 1}])
    for area in ("2", None, True):
        with pytest.raises(ValueError, match=f"image 0: ground-truth segment id 1: area {area!r} is not a number"):
            metric.update([gt], [[{"id": 1, "category_id": 1}]], [gt], [[{"id": 1, "category_id": 1, "area": area}]])


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    from omg_data.errors import DataError

    for name in ("gt", "pred"):
        (tmp_path / name).mkdir()
        (tmp_path / f"{name}.json").write_text((ODD / f"{name}.json").read_text())
        for png in (ODD / name).iterdir():
            (tmp_path / name / png.name).write_bytes(png.read_bytes())
    broken = tmp_path / "pred" / "000002.png"
    broken.write_bytes(broken.read_bytes()[:60])
    with collect_anomalies(), pytest.raises(ValueError, match="000002.png is not a readable PNG") as error:
        evaluate_panoptic_files(tmp_path / "gt.json", tmp_path / "pred.json")
    assert "\n" not in str(error.value)
    (tmp_path / "pred.json").write_text('{"annotations": [}')
    with pytest.raises(DataError, match="pred.json: not valid JSON at line 1"):
        evaluate_panoptic_files(tmp_path / "gt.json", tmp_path / "pred.json")
    (tmp_path / "pred.json").unlink()
    (tmp_path / "pred.json").mkdir()
    with pytest.raises(DataError, match="pred.json: is a folder"):
        evaluate_panoptic_files(tmp_path / "gt.json", tmp_path / "pred.json", pred_folder=tmp_path / "pred")


def test_importing_the_file_evaluator_leaves_torchvision_out() -> None:
    """torchvision costs ~1.5 s of start-up (torch._dynamo); Pillow decodes the PNGs."""
    code = "import sys, omg_eval.panoptic_files; print(sorted(m for m in sys.modules if m.startswith('torchvision')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_user_errors_are_named(tmp_path: Path) -> None:
    categories = [{"id": 1, "isthing": 1}]
    metric = PanopticQuality(categories)
    gt = torch.ones(2, 2, dtype=torch.int64)
    gt_info = [{"id": 1, "category_id": 1, "area": 4}]
    with pytest.raises(ValueError, match="is in the PNG but not in segments_info"):
        metric.update([torch.full((2, 2), 4)], [[]], [gt], [gt_info])
    with pytest.raises(ValueError, match="has no pixel in the PNG"):
        metric.update([torch.zeros(2, 2, dtype=torch.int64)], [[{"id": 9, "category_id": 1}]], [gt], [gt_info])
    with pytest.raises(ValueError, match="category_id 4"):
        metric.update([gt], [[{"id": 1, "category_id": 4}]], [gt], [gt_info])
    with pytest.raises(ValueError, match="cover the same pixels"):
        metric.update([torch.ones(3, 2, dtype=torch.int64)], [[{"id": 1, "category_id": 1}]], [gt], [gt_info])
    with pytest.raises(ValueError, match="reserved for VOID"):
        metric.update([gt], [[{"id": 0, "category_id": 1}]], [gt], [gt_info])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate_panoptic_files(tmp_path / "missing.json", tmp_path / "pred.json", tmp_path, tmp_path)
    assert metric.tp.sum() == 0  # failed updates add nothing


def test_empty_groups_are_nan_not_a_crash() -> None:
    metric = PanopticQuality([{"id": 1, "isthing": 1}, {"id": 2, "isthing": 0}])
    gt = torch.ones(2, 2, dtype=torch.int64)
    metric.update([gt], [[{"id": 1, "category_id": 1}]], [gt], [[{"id": 1, "category_id": 1, "area": 4}]])
    results = metric.compute()
    assert results["Things"]["pq"] == 1.0 and results["Stuff"]["n"] == 0 and np.isnan(results["Stuff"]["pq"])


def test_eval_command_table_and_json(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from omg_eval.cli import eval_command

    output = tmp_path / "figures.json"
    args = [
        "--task",
        "panoptic",
        "--predictions",
        str(FIXTURE / "pred.json"),
        "--ground-truth",
        str(FIXTURE / "gt.json"),
    ]
    result = CliRunner().invoke(eval_command, [*args, "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert "All.pq" in result.output and f"{_expected()['All']['pq']:.4f}" in result.output
    written = json.loads(output.read_text())
    assert written["All"]["pq"] == pytest.approx(_expected()["All"]["pq"], abs=TOLERANCE)
    swapped = [
        "--task",
        "panoptic",
        "--predictions",
        str(FIXTURE / "gt.json"),
        "--ground-truth",
        str(FIXTURE / "pred.json"),
    ]
    result = CliRunner().invoke(eval_command, swapped)
    assert result.exit_code != 0 and "no 'categories' list" in str(result.exception)


def test_every_task_is_scored_through_its_registered_file_evaluator(tmp_path: Path) -> None:
    from omg_core.errors import UnknownTaskError
    from omg_core.registry import discover_tasks

    registry = discover_tasks()
    evaluators = registry.file_evaluators()
    assert {"coco-panoptic", "coco-instances", "semantic-png", "interactive-json", "vos"} <= set(evaluators)
    for evaluator in evaluators.values():
        assert callable(evaluator.load())
    for handle in registry:  # every built-in task names an evaluator some plugin contributes
        assert registry.file_evaluator_for(handle.name)[1] is evaluators[handle.info.file_evaluator]
    assert registry.file_evaluator_for("ps") == ("panoptic", evaluators["coco-panoptic"])  # aliases too
    assert registry.file_evaluator_for("ov-seg")[1] is evaluators["coco-panoptic"]  # the open twin's evaluator
    if "vos" not in registry:  # the omg-task-vos plugin's task takes the name when installed
        assert registry.file_evaluator_for("vos") == ("vos", evaluators["vos"])  # an evaluator by its own name
    assert registry.file_evaluator_for("coco-instances") == ("coco-instances", evaluators["coco-instances"])
    with pytest.raises(UnknownTaskError, match="Did you mean: panoptic"):
        registry.file_evaluator_for("panoptik")
    panoptic = evaluators["coco-panoptic"]
    assert panoptic.evaluate(FIXTURE / "pred.json", FIXTURE / "gt.json")["All"]["pq"] > 0
    with pytest.raises(ValueError, match="needs --ground-truth"):
        panoptic.evaluate(FIXTURE / "pred.json", None)
    with pytest.raises(FileNotFoundError, match="predictions"):
        evaluators["coco-instances"].evaluate(tmp_path / "missing.json", FIXTURE / "gt.json")
