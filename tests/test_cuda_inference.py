"""The shipped model on a CUDA device: every task decodes to CPU results (writers, overlays and metrics read them with
numpy) and scores as it does on the CPU. CI has no GPU; these run where one is present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from omg_core.cli import main as cli
from omg_core.demo import DEMO_IMAGE
from omg_core.model.predictor import OMGPredictor

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@requires_cuda
def test_every_task_on_cuda_scores_as_on_cpu() -> None:
    from omg_core.train.quality import measure_quality

    figures = {}
    for device in ("cpu", "cuda"):
        predictor = OMGPredictor.from_pretrained("omg-tiny", device)
        figures[device] = measure_quality(predictor, seed=4242, num_samples=4).figures
    # the GPU's float arithmetic differs in the last bits, which can flip a boundary pixel, not a figure by points
    apart = {key: (figures["cpu"][key], figures["cuda"][key]) for key in figures["cpu"]
             if not abs(figures["cpu"][key] - figures["cuda"][key]) <= 2.0}
    assert not apart, f"figures (cpu, cuda) that differ: {apart}"


@requires_cuda
@pytest.mark.parametrize("task", ["panoptic", "semantic", "instance", "ov-seg", "salient"])
def test_cli_image_tasks_on_cuda_write_what_the_cpu_writes(task: str, tmp_path: Path) -> None:
    written = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / device
        vocabulary = ["--vocabulary", "shapes-world"] if task == "ov-seg" else []
        result = CliRunner().invoke(cli, ["run", "--task", task, "--input", str(DEMO_IMAGE), "--output", str(out),
                                          "--device", device, *vocabulary])
        assert result.exit_code == 0, result.output
        written[device] = sorted(str(path.relative_to(out)) for path in out.rglob("*") if path.is_file())
    assert written["cpu"] == written["cuda"]
    if task in ("panoptic", "ov-seg"):
        def labels(device: str) -> list[int]:
            document = json.loads((tmp_path / device / "panoptic.json").read_text())
            return sorted(s["category_id"] for a in document["annotations"] for s in a["segments_info"])

        assert labels("cpu") == labels("cuda")
