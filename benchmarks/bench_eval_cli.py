"""The whole ``omg eval`` command against the official tools run as programs: process start to figures.

At the sizes people evaluate interactively, start-up (imports, kernel loading) is a large share of the time, so these
groups time both sides as fresh processes on the same files:

  cli-pq-600-panopticapi      600 480x640 COCO-like panoptic PNG pairs; reference: panopticapi single-process
                              (``cli_reference.py panopticapi``); ours: ``omg eval --task panoptic``.
  cli-mask-ap-2000-pycocotools  2,000 images of COCO instances + results; reference: pycocotools' COCOeval as a
                              program (``cli_reference.py pycocotools``); ours: ``omg eval --task instance``.

Both sides' headline figures are checked equal before anything is timed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from eval_image_data import synthetic_instances, synthetic_panoptic, write_panoptic_files  # noqa: E402

OMG = [sys.executable, "-m", "omg_core.cli"]
REFERENCE = [sys.executable, str(HERE / "cli_reference.py")]


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 0, result.stderr
    return result


def _reference_figure(tool: str, first: Path, second: Path) -> float:
    return json.loads(_run([*REFERENCE, tool, str(first), str(second)], HERE).stdout.splitlines()[-1])["figure"]


def _omg_figures(task: str, predictions: Path, ground_truth: Path, output: Path) -> dict:
    _run([*OMG, "eval", "--task", task, "--predictions", str(predictions), "--ground-truth", str(ground_truth),
          "--output", str(output)], HERE)
    return json.loads(output.read_text())


@pytest.fixture(scope="module")
def panoptic_600(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli-panoptic")
    write_panoptic_files(synthetic_panoptic(600, seed=3), root)
    return root


@pytest.fixture(scope="module")
def instances_2000(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli-instances")
    gt, results = synthetic_instances(2000, seed=0)
    (root / "gt.json").write_text(json.dumps(gt))
    (root / "results.json").write_text(json.dumps(results))
    return root


@pytest.mark.benchmark(group="cli-pq-600-panopticapi")
def test_cli_pq_reference_panopticapi(benchmark, panoptic_600: Path) -> None:
    benchmark.extra_info["role"] = "reference"
    gt, pred = panoptic_600 / "gt.json", panoptic_600 / "pred.json"
    ours = _omg_figures("panoptic", pred, gt, panoptic_600 / "figures.json")["All"]["pq"]
    assert ours == pytest.approx(_reference_figure("panopticapi", gt, pred), abs=1e-12)
    benchmark.pedantic(_reference_figure, args=("panopticapi", gt, pred), rounds=2, iterations=1)


@pytest.mark.benchmark(group="cli-pq-600-panopticapi")
def test_cli_pq_ours(benchmark, panoptic_600: Path) -> None:
    benchmark.extra_info["role"] = "ours"
    args = ("panoptic", panoptic_600 / "pred.json", panoptic_600 / "gt.json", panoptic_600 / "figures.json")
    benchmark.pedantic(_omg_figures, args=args, rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="cli-mask-ap-2000-pycocotools")
def test_cli_mask_ap_reference_pycocotools(benchmark, instances_2000: Path) -> None:
    benchmark.extra_info["role"] = "reference"
    gt, results = instances_2000 / "gt.json", instances_2000 / "results.json"
    ours = _omg_figures("instance", results, gt, instances_2000 / "figures.json")["AP"]
    assert ours == pytest.approx(_reference_figure("pycocotools", gt, results), abs=1e-12)
    benchmark.pedantic(_reference_figure, args=("pycocotools", gt, results), rounds=2, iterations=1)


@pytest.mark.benchmark(group="cli-mask-ap-2000-pycocotools")
def test_cli_mask_ap_ours(benchmark, instances_2000: Path) -> None:
    benchmark.extra_info["role"] = "ours"
    args = ("instance", instances_2000 / "results.json", instances_2000 / "gt.json", instances_2000 / "figures.json")
    benchmark.pedantic(_omg_figures, args=args, rounds=3, iterations=1, warmup_rounds=1)
