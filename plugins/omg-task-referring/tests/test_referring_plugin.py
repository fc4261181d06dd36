"""The referring plugin, installed as its own distribution: discovered with its evaluator, the phrase put in the
vocabulary beside a neutral class, the query with the best phrase probability x mask score chosen, blank phrases
refused before the model is built, masks scored by its metric and by `omg eval --task referring`, and one run of
omg-tiny through the predictor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omg_task_referring import task as referring
from omg_task_referring.metric import ReferringIoU
from PIL import Image

from omg_core.config import RunConfig, TaskConfig
from omg_core.errors import ConfigError, InputError
from omg_core.model.outputs import OMGOutputs
from omg_core.pipeline import run_task
from omg_core.registry import discover_tasks
from omg_core.results import SemanticMap
from omg_core.task_io import TaskRequest

SIDE = 8  # images of SIDE x SIDE pixels, run at 4x that size: the 8 x 8 stride-4 mask logits map one-to-one to pixels


def image_outputs(mask_logits: torch.Tensor, class_logits: list[list[float]],
                  image_size: tuple[int, int] = (4 * SIDE, 4 * SIDE)) -> OMGOutputs:
    """Outputs over the vocabulary (phrase, background) + void: mask_logits Q x 8 x 8, class_logits Q x 3."""
    queries = mask_logits.shape[0]
    logits = torch.tensor([class_logits])
    return OMGOutputs(
        class_logits=logits, mask_logits=mask_logits[None], query_embeddings=torch.zeros(1, queries, 4),
        iou_logits=torch.zeros(1, queries, 1), in_vocab_logits=logits, num_learned_queries=queries,
        is_prompt_query=torch.zeros(queries, dtype=torch.bool), image_size=image_size,
        padded_size=(4 * SIDE, 4 * SIDE),
    )


def request_for(phrase: str, height: int = SIDE, **options) -> TaskRequest:
    return TaskRequest(task="referring", modality="image", pixels=torch.zeros(3, height, SIDE, dtype=torch.uint8),
                       options=referring.ReferringOptions(phrase=phrase, **options))


def decode(request: TaskRequest, outputs: OMGOutputs) -> SemanticMap:
    return referring.omg_decode_outputs(request, referring.omg_encode_queries(request), outputs).data


def three_query_masks() -> torch.Tensor:
    """Query 0: left columns; query 1: right columns; query 2: top rows (logits +-20: sure masks)."""
    blocks = torch.zeros(3, SIDE, SIDE, dtype=torch.bool)
    blocks[0, :, :3] = True
    blocks[1, :, 5:] = True
    blocks[2, :2, :] = True
    return torch.where(blocks, 20.0, -20.0)


def test_referring_is_discovered_with_its_required_phrase_and_evaluator() -> None:
    registry = discover_tasks()
    handle = registry.get("ris")
    assert handle.name == "referring" and handle.origin.distribution == "omg-task-referring"
    assert registry.file_evaluator_for("referring") == ("referring", referring.REFERRING_PNG)
    options = handle.info.model_dump(mode="json")["options"]
    assert options["phrase"]["required"] and not options["open_vocabulary"]["required"]


def test_the_phrase_is_one_vocabulary_entry_beside_a_neutral_class() -> None:
    plan = referring.omg_encode_queries(request_for("  the red, star / on_the left "))
    assert plan.vocabulary == ("the red star on the left", "background")  # no synonym separators left
    assert plan.learned_queries and plan.prompts is None and plan.open_vocabulary
    assert not referring.omg_encode_queries(request_for("a cat", open_vocabulary=False)).open_vocabulary
    given_vocabulary = TaskRequest(task="referring", modality="image", pixels=torch.zeros(3, 4, 4, dtype=torch.uint8),
                                   options=referring.ReferringOptions(phrase="a cat"), vocabulary=("dog",))
    with pytest.raises(InputError, match="not --vocabulary"):
        referring.omg_encode_queries(given_vocabulary)


def test_the_query_with_the_highest_phrase_probability_wins() -> None:
    # equally sure masks: the ranking is the phrase probability (softmax over phrase, background, void)
    class_logits = [[1.0, 0.0, 0.0], [3.0, 0.0, 0.0], [2.0, 0.0, 0.0]]
    result = decode(request_for("the right one"), image_outputs(three_query_masks(), class_logits))
    assert result.vocabulary == ("background", "the right one")
    expected = torch.zeros(SIDE, SIDE, dtype=torch.long)
    expected[:, 5:] = 1  # query 1's mask
    assert torch.equal(result.labels, expected)
    # the same logits with query 2's phrase column highest: query 2 is chosen
    result = decode(request_for("the top"), image_outputs(three_query_masks(), [[1.0, 0, 0], [2.0, 0, 0], [3.0, 0, 0]]))
    assert result.labels[:2].eq(1).all() and result.labels[2:].eq(0).all()


def test_an_unsure_mask_or_one_in_the_padding_loses_to_a_slightly_less_likely_sure_mask() -> None:
    mask_logits = three_query_masks()
    mask_logits[1] = torch.where(mask_logits[1] > 0, 0.1, -20.0)  # query 1: most likely phrase, mask prob 0.52
    class_logits = [[2.6, 0.0, 0.0], [3.0, 0.0, 0.0], [-5.0, 0.0, 0.0]]  # query 0: 0.85 x 1.0 > 0.91 x 0.52
    result = decode(request_for("the left one"), image_outputs(mask_logits, class_logits))
    assert result.labels[:, :3].eq(1).all() and result.labels[:, 3:].eq(0).all()
    # a 24-pixel-high image padded to 32: the stride-4 rows 6 and 7 are padding; a mask there covers nothing
    mask_logits = three_query_masks()
    mask_logits[1] = -20.0
    mask_logits[1, 6:] = 20.0
    result = decode(request_for("the left one", height=6), image_outputs(mask_logits, class_logits, (24, 32)))
    assert result.labels.shape == (6, SIDE) and result.labels[:, :3].eq(1).all()


def test_a_blank_phrase_is_refused_before_the_model_is_built(tmp_path: Path) -> None:
    def no_model(model_config):
        raise AssertionError("the model must not be built")

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    for options, message in (({"phrase": " , "}, "has no words; give the words"), ({}, "'phrase': Field required")):
        config = RunConfig(task=TaskConfig(name="referring", options=options), input=tmp_path / "a.png",
                           output=tmp_path / "out")
        with pytest.raises(ConfigError, match=message):
            run_task(config, discover_tasks(), no_model)
    # a hook called with options that skipped validation refuses it as an input error
    unvalidated = TaskRequest(task="referring", modality="image", pixels=torch.zeros(3, 4, 4, dtype=torch.uint8),
                              options=referring.ReferringOptions.model_construct(phrase="   ", open_vocabulary=True))
    with pytest.raises(InputError, match="has no words"):
        referring.omg_encode_queries(unvalidated)


def test_the_metric_gives_mean_and_overall_iou() -> None:
    metric = referring.omg_create_metric({})
    assert isinstance(metric, ReferringIoU)
    truth = torch.zeros(2, 1, 4, dtype=torch.bool)
    prediction = torch.zeros(2, 1, 4, dtype=torch.bool)
    truth[0, 0, :2], prediction[0, 0, 1:4] = True, True  # I = 1, U = 4
    truth[1, 0, :3], prediction[1, 0, :2] = True, True  # I = 2, U = 3
    metric.update(prediction, truth)
    metric.update(torch.zeros(1, 4, dtype=torch.bool), torch.zeros(1, 4, dtype=torch.bool))  # nothing, found: IoU 1
    figures = metric.compute()
    assert figures["mIoU"] == pytest.approx((1 / 4 + 2 / 3 + 1) / 3)
    assert figures["oIoU"] == pytest.approx(3 / 7) and figures["num_samples"] == 3
    metric.reset()
    with pytest.raises(ValueError, match="no sample"):
        metric.compute()


def test_a_run_writes_0_1_pngs_that_omg_eval_scores(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    Image.fromarray(np.zeros((SIDE, SIDE, 3), np.uint8)).save(tmp_path / "photos" / "a.png")
    truth = np.zeros((SIDE, SIDE), np.uint8)
    truth[:, 4:] = 255  # a 0/255 dataset mask: columns 4..7; the prediction will be columns 5..7 (IoU 3/4)
    (tmp_path / "gt").mkdir()
    Image.fromarray(truth).save(tmp_path / "gt" / "a.png")

    def stand_in_model(model_config):
        def predict(request, plan):
            assert plan.vocabulary == ("the right one", "background")
            return image_outputs(three_query_masks(), [[1.0, 0.0, 0.0], [3.0, 0.0, 0.0], [2.0, 0.0, 0.0]])

        return predict

    config = RunConfig(task=TaskConfig(name="ris", options={"phrase": "the right one"}), input=tmp_path / "photos",
                       output=tmp_path / "out")
    summary = run_task(config, discover_tasks(), stand_in_model)
    assert summary.written == (tmp_path / "out" / "a.png",)
    written = np.asarray(Image.open(summary.written[0]))
    assert written[:, 5:].min() == 1 and written[:, :5].max() == 0  # semantic-png: class 1 is the phrase
    out = tmp_path / "figures.json"
    completed = subprocess.run(
        [sys.executable, "-m", "omg_core.cli", "eval", "--task", "referring", "--predictions", str(tmp_path / "out"),
         "--ground-truth", str(tmp_path / "gt"), "--output", str(out)], capture_output=True, text=True,
    )
    assert completed.returncode == 0, completed.stderr
    figures = json.loads(out.read_text())
    assert figures["mIoU"] == pytest.approx(3 / 4) and figures["oIoU"] == pytest.approx(3 / 4)


def test_omg_tiny_runs_referring_through_the_predictor() -> None:
    from omg_core.model import create_model
    from omg_core.model.predictor import OMGPredictor

    torch.manual_seed(0)
    predictor = OMGPredictor(create_model("omg-tiny"))
    predictor.set_image(torch.randint(0, 256, (3, 24, 40), dtype=torch.uint8,
                                      generator=torch.Generator().manual_seed(0)))
    for open_vocabulary in (True, False):
        result = predictor.run("referring", phrase="the red star", open_vocabulary=open_vocabulary)
        assert isinstance(result, SemanticMap) and result.labels.shape == (24, 40)
        assert result.vocabulary == ("background", "the red star") and set(result.labels.unique().tolist()) <= {0, 1}
    with pytest.raises(ConfigError, match="phrase"):
        predictor.run("referring", phrase="")
