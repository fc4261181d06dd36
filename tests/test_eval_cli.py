"""`omg eval` resolves tasks through the registry (names, aliases, open-vocabulary twins) and runs --all."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from omg_core.cli import EXIT_USER_ERROR, main


def write_semantic_folders(root: Path) -> None:
    rng = np.random.default_rng(0)
    for index in range(2):
        gt = rng.integers(0, 3, size=(6, 7)).astype(np.uint8)
        pred = np.where(rng.random(gt.shape) < 0.5, gt, 0).astype(np.uint8)
        for kind, labels in (("gt", gt), ("pred", pred)):
            (root / kind / "semantic").mkdir(parents=True, exist_ok=True)
            Image.fromarray(labels).save(root / kind / "semantic" / f"{index}.png")


def write_interactive_results(root: Path) -> None:
    for name in ("interactive", "ov-interactive"):
        (root / "pred" / name).mkdir(parents=True, exist_ok=True)
        objects = [{"click_ious": [0.5, 0.9], "box_iou": 0.8}, {"click_ious": [0.95], "box_iou": 0.6}]
        (root / "pred" / name / "results.json").write_text(json.dumps({"objects": objects}))


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_alias_and_canonical_name_give_the_same_figures(tmp_path: Path) -> None:
    write_semantic_folders(tmp_path)
    outputs = []
    for name in ("semantic", "ss"):
        out = tmp_path / f"{name}.json"
        result = invoke("eval", "--task", name, "--predictions", str(tmp_path / "pred" / "semantic"),
                        "--ground-truth", str(tmp_path / "gt" / "semantic"), "--output", str(out))
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(out.read_text()))
    assert outputs[0] == outputs[1] and 0 < outputs[0]["mIoU"] < 1


def test_open_vocabulary_tasks_use_their_closed_twins_evaluator(tmp_path: Path) -> None:
    write_interactive_results(tmp_path)
    out = tmp_path / "ov.json"
    result = invoke("eval", "--task", "ov-interactive", "--predictions",
                    str(tmp_path / "pred" / "ov-interactive" / "results.json"), "--output", str(out))
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["mIoU@1click"] == (0.5 + 0.95) / 2


def test_unknown_task_is_a_clear_error(tmp_path: Path) -> None:
    result = invoke("eval", "--task", "semantc", "--predictions", str(tmp_path))
    assert result.exit_code == EXIT_USER_ERROR and "Did you mean: semantic" in result.output


def test_task_or_all_is_required(tmp_path: Path) -> None:
    result = invoke("eval", "--predictions", str(tmp_path))
    assert result.exit_code == 2 and "give either --task T or --all" in result.output


def test_all_evaluates_every_task_folder_present(tmp_path: Path) -> None:
    write_semantic_folders(tmp_path)
    write_interactive_results(tmp_path)
    out = tmp_path / "all.json"
    result = invoke("eval", "--all", "--predictions", str(tmp_path / "pred"), "--ground-truth", str(tmp_path / "gt"),
                    "--output", str(out))
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert sorted(figures) == ["interactive", "ov-interactive", "semantic"]
    assert figures["interactive"] == figures["ov-interactive"]
    assert "mIoU" in figures["semantic"]


def test_all_with_no_task_folder_says_how_to_lay_them_out(tmp_path: Path) -> None:
    (tmp_path / "pred").mkdir()
    result = invoke("eval", "--all", "--predictions", str(tmp_path / "pred"))
    assert result.exit_code == EXIT_USER_ERROR and "name sub-folders after tasks" in result.output


def test_json_output_turns_tensors_into_lists_and_leaves_out_only_large_arrays() -> None:
    import math

    import torch

    from omg_eval.cli import MAX_JSON_ARRAY_VALUES, to_json_ready

    figures = {
        "vpq": torch.tensor(0.5, dtype=torch.float64),
        "per_class_pq": torch.tensor([0.25, math.nan]),
        "per_video": np.array([1, 2]),
        "precision": np.zeros(MAX_JSON_ARRAY_VALUES + 1),
        "nested": {"n": np.int64(3), "curve": torch.zeros(MAX_JSON_ARRAY_VALUES + 1)},
    }
    ready = to_json_ready(figures)
    assert ready == {"vpq": 0.5, "per_class_pq": [0.25, None], "per_video": [1, 2], "nested": {"n": 3}}
    json.dumps(ready)  # plain JSON


def test_non_utf8_json_names_the_file_and_the_byte(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_bytes(b'{"objects": [{"click_ious": [0.5], "note": "caf\xe9"}]}')  # Latin-1, not UTF-8
    result = invoke("eval", "--task", "interactive", "--predictions", str(results))
    assert result.exit_code == EXIT_USER_ERROR
    assert str(results) in result.output and "not UTF-8" in result.output and "0xe9" in result.output
    assert "Traceback" not in result.output


def test_folder_given_for_a_file_and_file_for_a_folder_say_what_they_are(tmp_path: Path) -> None:
    write_semantic_folders(tmp_path)
    folder = tmp_path / "pred" / "semantic"
    result = invoke("eval", "--task", "interactive", "--predictions", str(folder))
    assert result.exit_code == EXIT_USER_ERROR
    assert "is a folder; expected a file" in result.output and "does not exist" not in result.output
    a_file = next(folder.glob("*.png"))
    result = invoke("eval", "--task", "semantic", "--predictions", str(a_file), "--ground-truth",
                    str(tmp_path / "gt" / "semantic"))
    assert result.exit_code == EXIT_USER_ERROR
    assert "is a file; expected a folder" in result.output and "does not exist" not in result.output
    result = invoke("eval", "--task", "semantic", "--predictions", str(tmp_path / "missing"), "--ground-truth",
                    str(tmp_path / "gt" / "semantic"))
    assert result.exit_code == EXIT_USER_ERROR and "does not exist" in result.output


def test_corrupt_png_is_one_line_naming_the_file(tmp_path: Path) -> None:
    write_semantic_folders(tmp_path)
    corrupt = tmp_path / "pred" / "semantic" / "0.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")
    result = invoke("eval", "--task", "semantic", "--predictions", str(tmp_path / "pred" / "semantic"),
                    "--ground-truth", str(tmp_path / "gt" / "semantic"))
    assert result.exit_code == EXIT_USER_ERROR
    assert str(corrupt) in result.output and "cannot decode image" in result.output
    assert "Traceback" not in result.output


def _instances_with_a_foreign_category(root: Path) -> tuple[Path, Path]:
    """A COCO instances pair whose results hold two detections of category 99, which the ground truth lacks."""
    from pycocotools import mask as coco_mask

    square = np.zeros((8, 8), np.uint8)
    square[2:6, 2:6] = 1
    rle = coco_mask.encode(np.asfortranarray(square))
    rle = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
    gt = {
        "images": [{"id": 1, "height": 8, "width": 8}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": rle, "area": 16.0,
                         "bbox": [2, 2, 4, 4], "iscrowd": 0}],
        "categories": [{"id": 1, "name": "square"}],
    }
    results = [{"image_id": 1, "category_id": c, "segmentation": rle, "score": s} for c, s in ((1, 0.9), (99, 0.8),
                                                                                            (99, 0.7))]
    (root / "gt.json").write_text(json.dumps(gt))
    (root / "results.json").write_text(json.dumps(results))
    return root / "results.json", root / "gt.json"


def test_anomalies_are_scored_as_the_official_tool_with_one_warning_line_and_refused_with_strict(
    tmp_path: Path,
) -> None:
    predictions, truth = _instances_with_a_foreign_category(tmp_path)
    out = tmp_path / "figures.json"
    args = ["eval", "--task", "instance", "--predictions", str(predictions), "--ground-truth", str(truth)]
    result = invoke(*args, "--output", str(out))
    assert result.exit_code == 0, result.output
    # the foreign detections are ignored, as COCOeval does: the one matching detection scores AP 1
    assert json.loads(out.read_text())["AP"] == pytest.approx(1.0, abs=1e-12)
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.output
    assert "instance: 2 results for categories absent from the ground truth" in warnings[0]
    assert "category 99" in warnings[0] and "--strict" in warnings[0]
    result = invoke(*args, "--strict")
    assert result.exit_code == EXIT_USER_ERROR
    assert "category 99" in result.output and "--strict" in result.output and "Traceback" not in result.output


def test_no_evaluator_imports_torchvision() -> None:
    """torchvision pulls in torch._dynamo (~1.5 s of start-up); evaluation decodes PNGs with PIL instead. Every module
    of omg_eval is imported, so no evaluator can bring it in."""
    import subprocess
    import sys

    probe = (
        "import importlib, pkgutil, sys, omg_eval\n"
        "for m in pkgutil.walk_packages(omg_eval.__path__, 'omg_eval.'): importlib.import_module(m.name)\n"
        "print('torchvision' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_a_synth_folder_is_its_own_panoptic_ground_truth_despite_its_captions_json(tmp_path: Path) -> None:
    """`omg data synth` writes captions.json beside panoptic.json: the folder still names one panoptic JSON, the one
    with its PNG folder of the same name next to it."""
    data = tmp_path / "data"
    assert invoke("data", "synth", "--format", "coco-panoptic", "--num", "2", "--size", "32x32", "--out",
                  str(data)).exit_code == 0
    assert sorted(p.name for p in data.glob("*.json")) == ["captions.json", "panoptic.json"]
    out = tmp_path / "pq.json"
    result = invoke("eval", "--task", "ps", "--predictions", str(data), "--ground-truth", str(data), "--output",
                    str(out))
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["All"]["pq"] == 1.0
    (data / "other.json").write_text("{}")
    (data / "other").mkdir()  # now two JSONs have a folder beside them: which one is meant is the user's to say
    result = CliRunner().invoke(main, ["eval", "--task", "ps", "--predictions", str(data), "--ground-truth", str(data)])
    assert result.exit_code == 2 and "holds 3 JSON files; pass the panoptic JSON itself" in result.output
