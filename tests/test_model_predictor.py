"""The `omg run` predictor on omg-tiny: requests and query plans in, OMGOutputs out."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from omg_core.config import RunModelConfig
from omg_core.errors import InputError, OMGError
from omg_core.model import create_model
from omg_core.model.predictor import OMGPredictor, build_predictor
from omg_core.model.vocabulary import load_vocabulary
from omg_core.task_io import Prompts, QueryPlan, TaskRequest
from omg_core.weights import save_weights


@pytest.fixture(scope="module")
def predictor() -> OMGPredictor:
    torch.manual_seed(0)
    return OMGPredictor(create_model("omg-tiny"), torch.device("cpu"))


def _image() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8, generator=generator)


def test_default_vocabulary_is_the_models(predictor: OMGPredictor) -> None:
    vocabulary = load_vocabulary("shapes-world")  # omg-tiny's default_vocabulary
    assert len(vocabulary.texts) == 69 and sum(vocabulary.is_thing) == 64
    outputs = predictor(TaskRequest(task="panoptic", modality="image", pixels=_image()), QueryPlan())
    assert outputs.class_logits.shape == (1, 32, len(vocabulary.texts) + 1)
    assert outputs.mask_logits.shape == (1, 32, 16, 16) and outputs.image_size == (40, 60)


def test_coco_vocabulary_names() -> None:
    vocabulary = load_vocabulary("coco_panoptic")
    assert len(vocabulary.texts) == 133 and sum(vocabulary.is_thing) == 80
    assert vocabulary.dataset_names[0] == "person" and vocabulary.dataset_names[-1] == "rug-merged"
    assert load_vocabulary("coco").texts == vocabulary.texts  # coco_panoptic is an alias of coco
    with pytest.raises(InputError, match="did you mean 'coco'"):
        load_vocabulary("cocoo")


def test_plan_vocabulary_prompts_and_prompt_only(predictor: OMGPredictor) -> None:
    request = TaskRequest(task="interactive", modality="image", pixels=_image())
    prompts = Prompts(points=torch.tensor([[[10.0, 12.0]], [[30.0, 20.0]]]), point_labels=torch.tensor([[1], [1]]))
    both = predictor(request, QueryPlan(prompts=prompts, vocabulary=("cat", "dog")))
    assert both.class_logits.shape == (1, 34, 3) and both.num_learned_queries == 32
    only = predictor(request, QueryPlan(False, prompts=prompts, vocabulary=("cat", "dog")))
    assert only.class_logits.shape == (1, 2, 3) and only.num_learned_queries == 0
    assert only.is_prompt_query.all()
    # Prompt queries never look at learned queries: the same predictions with or without them.
    torch.testing.assert_close(only.mask_logits, both.prompt_mask_logits, rtol=1e-4, atol=1e-4)


def test_video_request(predictor: OMGPredictor) -> None:
    pixels = torch.stack([_image(), _image().flip(-1)])
    outputs = predictor(TaskRequest(task="video-instance", modality="video", pixels=pixels),
                        QueryPlan(vocabulary=("cat",), seen_classes=torch.tensor([False])))
    assert outputs.mask_logits.shape == (1, 32, 2, 16, 16) and outputs.clip_logits is not None


def test_omg_tiny_ensembles_closed_requests_too_and_the_official_setting_does_not(predictor: OMGPredictor) -> None:
    from omg_core.model.ov_classifier import geometric_ensemble

    request = TaskRequest(task="panoptic", modality="image", pixels=_image())
    tiny = predictor(request, QueryPlan())  # a closed request: no open_vocabulary, no seen flags
    assert predictor.model.config.open_vocabulary.ensemble == "always" and tiny.clip_logits is not None
    vocabulary = load_vocabulary("shapes-world")
    seen = torch.tensor(predictor.seen_flags(vocabulary.texts))
    assert 0 < int(seen.sum()) < len(seen)  # the held-out classes count as unseen (beta), the rest as seen
    areas = (tiny.mask_logits > 0).flatten(2).sum(-1)
    expected = geometric_ensemble(tiny.in_vocab_logits, tiny.clip_logits, seen, 0.4, 0.8, areas > 0,
                                  torch.tensor(vocabulary.is_thing))
    torch.testing.assert_close(tiny.class_logits, expected)

    torch.manual_seed(0)
    official = OMGPredictor(create_model("omg-tiny", open_vocabulary={"ensemble": "open-vocabulary"}),
                            torch.device("cpu"))
    closed = official(request, QueryPlan())
    assert closed.clip_logits is None
    torch.testing.assert_close(closed.class_logits, closed.in_vocab_logits)
    assert official(request, QueryPlan(open_vocabulary=True)).clip_logits is not None


@pytest.mark.parametrize(
    ("request_pixels", "plan", "message"),
    [
        (torch.zeros(40, 60, 3, dtype=torch.uint8), QueryPlan(), "3 x H x W"),
        (None, QueryPlan(5), "must be True"),
        (None, QueryPlan(prompts=Prompts(masks=torch.zeros(1, 40, 60, dtype=torch.bool))), "mask prompts"),
        (None, QueryPlan(False), "no query to run"),
        (None, QueryPlan(vocabulary=("cat",), seen_classes=torch.tensor([True, False])), "one flag per class"),
    ],
)
def test_bad_requests_are_input_errors(predictor: OMGPredictor, request_pixels: torch.Tensor | None,
                                       plan: QueryPlan, message: str) -> None:
    pixels = _image() if request_pixels is None else request_pixels
    with pytest.raises(InputError, match=message):
        predictor(TaskRequest(task="panoptic", modality="image", pixels=pixels), plan)


def test_build_predictor(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # omg-tiny's packaged weights: no "random weights" warning
        built = build_predictor(RunModelConfig(name="omg-tiny"))
    assert isinstance(built, OMGPredictor)
    torch.manual_seed(5)
    source = create_model("omg-tiny")
    save_weights(source, tmp_path / "tiny.safetensors")
    loaded = build_predictor(RunModelConfig(name="omg-tiny", weights=tmp_path / "tiny.safetensors", dtype="bfloat16"))
    assert torch.equal(loaded.model.transformer_decoder.query_feat.weight, source.transformer_decoder.query_feat.weight)
    outputs = loaded(TaskRequest(task="panoptic", modality="image", pixels=_image()), QueryPlan(vocabulary=("a",)))
    assert outputs.class_logits.shape == (1, 32, 2)
    with pytest.raises(OMGError, match="available models"):
        build_predictor(RunModelConfig(name="omg-huge"))
    with pytest.raises(OMGError, match="does not exist"):
        build_predictor(RunModelConfig(name="omg-tiny", weights=tmp_path / "missing.safetensors"))
    with pytest.raises(OMGError, match="device"):
        build_predictor(RunModelConfig(name="omg-tiny", device="tpu:7"))
