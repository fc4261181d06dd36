"""Weights in the official OMG-Seg key layout (random values, NumPy values in the checkpoint's meta) -> `omg convert`
-> OMGPredictor; our panoptic and instance tasks then equal a transcription of the official post-processing
(`omgseg_fusionhead.py`: head upsampling, padding crop, resize to the original size, fusion) on the same raw outputs,
test-time resize included."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from official_fusion_transcription import (
    head_predict_upsample,
    instance_postprocess,
    panoptic_postprocess,
    predict_resize,
)

from omg_core.model import create_model
from omg_core.model.predictor import OMGPredictor
from omg_core.registry import discover_tasks
from omg_core.task_io import TaskRequest
from omg_core.weights.cli import convert_command
from omg_core.weights.io import load_weights
from omg_core.weights.official import to_official_state_dict

OFFICIAL_TEST_CFG = {"object_mask_thr": 0.0, "iou_thr": 0.8, "filter_low_score": True, "max_per_image": 100}
# omg-tiny at OMG-Seg's settings: official prompts, pooled CLIP, and closed tasks on the trained classifier alone
OFFICIAL_SETTINGS = {"prompt_encoding": "official", "default_vocabulary": "coco_panoptic",
                     "open_vocabulary": {"clip_classifier": "pooled", "ensemble": "open-vocabulary"}}


@pytest.fixture(scope="module")
def converted_predictor(tmp_path_factory: pytest.TempPathFactory) -> OMGPredictor:
    folder = tmp_path_factory.mktemp("official")
    torch.manual_seed(1)  # a seed whose random masks leave several segments after the fusion
    source = create_model("omg-tiny", **OFFICIAL_SETTINGS)
    with torch.no_grad():  # sharper random masks, so that several queries win pixels and become segments
        source.transformer_decoder.mask_embed[-1].weight.mul_(30)
    torch.save({"state_dict": to_official_state_dict(source.state_dict()),
                "meta": {"seed": np.int64(3), "hist": np.arange(3), "dtype": np.dtype("float32"), "epoch": 12}},
               folder / "omg_seg_tiny.pth")
    result = CliRunner().invoke(convert_command, [str(folder / "omg_seg_tiny.pth"), str(folder / "tiny.safetensors"),
                                                  "--model", "omg-tiny"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    torch.manual_seed(1)
    target = create_model("omg-tiny", **OFFICIAL_SETTINGS)
    # official checkpoints hold no text tower (OMG-Seg takes it from open_clip): copy the source's
    target.load_state_dict({k: v for k, v in source.state_dict().items() if k.startswith("backbone.text.")},
                           strict=False)
    with pytest.warns(UserWarning, match="backbone.text."):
        load_weights(target, folder / "tiny.safetensors")
    return OMGPredictor(target, size=(120, 80))  # 45 x 70 -> 77 x 120 (padded 96 x 128): every resize step runs


def _request(task: str, **options: object) -> TaskRequest:
    pixels = torch.randint(0, 256, (3, 45, 70), dtype=torch.uint8, generator=torch.Generator().manual_seed(7))
    registry = discover_tasks()
    return TaskRequest(task=task, modality="image", pixels=pixels, options=registry.get(task).info.options(**options))


def _official_masks(outputs, original: tuple[int, int]) -> torch.Tensor:
    upsampled = head_predict_upsample(outputs.mask_logits[0].float(), outputs.padded_size)
    return predict_resize(upsampled, outputs.image_size, original)


def test_panoptic_equals_the_official_fusion(converted_predictor: OMGPredictor) -> None:
    handle = discover_tasks().get("panoptic")
    request = _request("panoptic", iou_thr=OFFICIAL_TEST_CFG["iou_thr"])
    plan = handle.encode_queries(request)
    outputs = converted_predictor(request, plan)
    assert outputs.image_size == (77, 120) and outputs.padded_size == (96, 128)
    ours = handle.decode_outputs(request, plan, outputs).data
    num_classes = outputs.class_logits.shape[-1] - 1
    num_things = sum(outputs.thing_classes)
    assert outputs.thing_classes == tuple([True] * num_things + [False] * (num_classes - num_things))  # COCO order
    official = panoptic_postprocess(outputs.class_logits[0].float(), _official_masks(outputs, (45, 70)), num_classes,
                                    num_things, OFFICIAL_TEST_CFG)
    # same class at every pixel, and the same partition into segments (ids are numbered differently)
    label_of = {segment.id: segment.label for segment in ours.segments}
    our_classes = torch.tensor([[label_of.get(int(i), num_classes) for i in row] for row in ours.segment_ids])
    assert torch.equal(our_classes, official % 1000)
    pairs = set(zip(ours.segment_ids.flatten().tolist(), official.flatten().tolist()))
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})  # a bijection
    assert len(ours.segments) >= 2  # the comparison covers several segments


def test_instances_equal_the_official_postprocess(converted_predictor: OMGPredictor) -> None:
    handle = discover_tasks().get("instance")
    request = _request("instance")
    plan = handle.encode_queries(request)
    outputs = converted_predictor(request, plan)
    ours = handle.decode_outputs(request, plan, outputs).data
    num_classes = outputs.class_logits.shape[-1] - 1
    official = instance_postprocess(outputs.class_logits[0].float(), _official_masks(outputs, (45, 70)), num_classes,
                                    sum(outputs.thing_classes), OFFICIAL_TEST_CFG)
    assert len(ours) == len(official["scores"]) > 0
    # the same detections: order ours by score like the official ones, then compare one to one
    order = torch.argsort(official["scores"], descending=True, stable=True)
    torch.testing.assert_close(ours.scores, official["scores"][order], rtol=1e-5, atol=1e-6)
    for score, label, mask, box in zip(ours.scores, ours.labels, ours.masks, ours.boxes):
        same = [i for i in range(len(official["scores"])) if int(official["labels"][i]) == int(label)
                and torch.equal(official["masks"][i], mask) and abs(float(official["scores"][i] - score)) < 1e-5]
        assert same, "a detection the official post-processing does not make"
        torch.testing.assert_close(box, official["bboxes"][same[0]].float())
