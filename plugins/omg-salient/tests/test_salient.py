"""The worked-example plugin, installed as its own distribution: discovered, run end to end, options checked before
the model is built, written and scored with the built-in semantic-png format and evaluator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from omg_core.config import RunConfig, TaskConfig
from omg_core.errors import ConfigError
from omg_core.model.outputs import OMGOutputs
from omg_core.pipeline import run_task
from omg_core.registry import discover_tasks


def two_query_outputs(height: int, width: int) -> OMGOutputs:
    """Model outputs where query 0 is a confident class-0 object covering the left half and query 1 predicts void."""
    padded = (-(-height // 32) * 32, -(-width // 32) * 32)
    mask_logits = torch.full((1, 2, padded[0] // 4, padded[1] // 4), -20.0)
    mask_logits[0, 0, :, : width // 8] = 20.0  # left half of the image at stride 4
    class_logits = torch.tensor([[[8.0, 0.0, 0.0], [0.0, 0.0, 8.0]]])  # K = 2 classes + void
    return OMGOutputs(
        class_logits=class_logits, mask_logits=mask_logits, query_embeddings=torch.zeros(1, 2, 4),
        iou_logits=torch.zeros(1, 2, 1), in_vocab_logits=class_logits, num_learned_queries=2,
        is_prompt_query=torch.zeros(2, dtype=torch.bool), image_size=(height, width), padded_size=padded,
    )


def stand_in_model(model_config):
    def predict(request, plan):
        assert plan.learned_queries
        return two_query_outputs(*request.pixels.shape[-2:])

    return predict


def test_salient_is_discovered_with_its_options_and_the_builtin_format_and_evaluator() -> None:
    registry = discover_tasks()
    handle = registry.get("sod")
    assert handle.name == "salient" and handle.origin.distribution == "omg-salient"
    assert registry.formats_for(handle.info) == ["semantic-png"]
    assert registry.file_evaluator_for("salient")[1].name == "semantic-png"
    options = handle.info.model_dump(mode="json")["options"]
    assert options["object_score"]["default"] == 0.5 and "confidence" in options["object_score"]["description"]


def test_salient_runs_end_to_end_and_writes_a_binary_png(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((24, 40, 3), np.uint8)).save(tmp_path / "photo.png")
    config = RunConfig(task=TaskConfig(name="salient"), input=tmp_path / "photo.png", output=tmp_path / "out",
                       overlays=True)
    summary = run_task(config, discover_tasks(), stand_in_model)
    assert summary.written == (tmp_path / "out" / "photo.png",)
    written = np.asarray(Image.open(tmp_path / "out" / "photo.png"))
    assert written[:, :20].min() == 1 and written[:, 20:].max() == 0  # the confident object's left half only
    # the built-in overlay draws it too: both classes tinted, each in its own colour
    assert summary.overlays == (tmp_path / "out" / "overlays" / "photo.png",)
    overlay = np.asarray(Image.open(summary.overlays[0])).astype(int)
    assert (overlay[10, 5] != overlay[10, 30]).any()


def test_bad_options_are_refused_before_the_model_is_built(tmp_path: Path) -> None:
    def no_model(model_config):
        raise AssertionError("the model must not be built")

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    for options, message in (({"object_score": 1.5}, "less than or equal to 1"), ({"mask_treshold": 0.3}, "did you mean")):
        config = RunConfig(task=TaskConfig(name="salient", options=options), input=tmp_path / "a.png",
                           output=tmp_path / "out")
        with pytest.raises(ConfigError, match=message):
            run_task(config, discover_tasks(), no_model)
    assert not (tmp_path / "out").exists()


def test_omg_eval_scores_salient_maps(tmp_path: Path) -> None:
    truth, prediction = np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8)
    truth[:, :2] = 1
    prediction[:, :3] = 1  # background IoU 4/8, salient IoU 8/12
    for folder, labels in (("gt", truth), ("pred", prediction)):
        (tmp_path / folder).mkdir()
        Image.fromarray(labels).save(tmp_path / folder / "a.png")
    out = tmp_path / "figures.json"
    completed = subprocess.run(
        [sys.executable, "-m", "omg_core.cli", "eval", "--task", "salient", "--predictions", str(tmp_path / "pred"),
         "--ground-truth", str(tmp_path / "gt"), "--output", str(out)], capture_output=True, text=True,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(out.read_text())["mIoU"] == pytest.approx((4 / 8 + 8 / 12) / 2)
