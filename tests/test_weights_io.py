"""safetensors round trip, official-layout conversion, strict loading errors, CLI, from_pretrained."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from omg_core.model import OMGInputs, OMGModel, create_model
from omg_core.weights import (
    UnmappedKeysError,
    WeightsMismatchError,
    convert_official_checkpoint,
    hub,
    load_weights,
    save_weights,
)
from omg_core.weights.cli import convert_command
from omg_core.weights.official import official_to_ours, to_official_state_dict

CLASSES = ["cat", "dog"]


def _forward(model: OMGModel, **prompt: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(3)
    with torch.no_grad():
        outputs = model(OMGInputs(images=torch.rand(1, 3, 64, 64) * 255, class_names=CLASSES, **prompt))
    return torch.cat([outputs.class_logits.flatten(), outputs.mask_logits.flatten()])


def _fresh(seed: int, **overrides: object) -> OMGModel:
    torch.manual_seed(seed)
    return create_model("omg-tiny", **overrides)


def test_safetensors_round_trip(tmp_path: Path) -> None:
    source, target = _fresh(0), _fresh(1)
    boxes = torch.tensor([[[4.0, 4.0, 40.0, 50.0]]])
    assert not torch.allclose(_forward(source, boxes=boxes), _forward(target, boxes=boxes))
    path = save_weights(source, tmp_path / "tiny.safetensors")
    report = load_weights(target, path)
    assert report.ok and not report.missing_by_design
    torch.testing.assert_close(_forward(target, boxes=boxes), _forward(source, boxes=boxes))


def test_strict_loading_names_missing_unexpected_and_misshaped_keys(tmp_path: Path) -> None:
    state = _fresh(0).state_dict()
    del state["transformer_decoder.query_feat.weight"]
    state["transformer_decoder.extra.weight"] = torch.zeros(2)
    state["pixel_decoder.mask_features.bias"] = torch.zeros(5)
    path = save_weights(state, tmp_path / "broken.safetensors")
    model = _fresh(1)
    with pytest.raises(WeightsMismatchError) as error:
        load_weights(model, path)
    message = str(error.value)
    assert "transformer_decoder.query_feat.weight" in message
    assert "transformer_decoder.extra.weight" in message
    assert "pixel_decoder.mask_features.bias: file (5,) vs model (64,)" in message
    report = load_weights(model, path, strict=False)
    assert report.missing == ["transformer_decoder.query_feat.weight"]
    assert report.unexpected == ["transformer_decoder.extra.weight"]
    assert torch.equal(model.transformer_decoder.level_embed.weight, state["transformer_decoder.level_embed.weight"])


def test_official_layout_round_trip(tmp_path: Path) -> None:
    # A tiny model (with OMG-Seg's box-query prompts) written under the official mmdet names, as in the .pth.
    source = _fresh(0, prompt_encoding="official")
    official = to_official_state_dict(source.state_dict())
    assert "panoptic_head.transformer_decoder.layers.0.cross_attn.attn.in_proj_weight" in official
    assert "panoptic_head.pixel_decoder.input_convs.0.conv.weight" in official
    assert "panoptic_head.pixel_decoder.level_encoding.weight" in official
    assert "backbone.layer4.blocks.0.conv_dw.weight" in official
    assert "backbone.head.0.norm.weight" in official and "backbone.head.1.mlp.fc1.weight" in official
    assert "panoptic_head.pos_linear.weight" in official and "panoptic_head.mask_tokens.weight" in official
    assert not any(key.startswith("backbone.text") for key in official)
    torch.save({"meta": {"epoch": 12}, "state_dict": official}, tmp_path / "official.pth")
    converted = convert_official_checkpoint(tmp_path / "official.pth", tmp_path / "converted.safetensors",
                                            model_name="omg-tiny")

    target = _fresh(1, prompt_encoding="official")
    # The text tower is not in official checkpoints (OMG-Seg takes it from open_clip): give the target the same
    # text weights, as loading the open_clip pretrained weights would.
    text_state = {k: v for k, v in source.state_dict().items() if k.startswith("backbone.text.")}
    target.load_state_dict(text_state, strict=False)
    with pytest.warns(UserWarning, match="backbone.text."):
        report = load_weights(target, converted, strict=True)
    assert report.ok
    assert report.missing_by_design and all(k.startswith("backbone.text.") for k in report.missing_by_design)
    boxes = torch.tensor([[[4.0, 4.0, 40.0, 50.0]]])
    torch.testing.assert_close(_forward(target, boxes=boxes), _forward(source, boxes=boxes))

    # from_pretrained on the converted file: config from its metadata, CLIP text tower from open_clip (omg-tiny
    # has no pretrained tag, so it stays random here), everything else from the file.
    with pytest.warns(UserWarning, match="backbone.text."):
        reloaded = hub.from_pretrained(converted, config=target.config)
    assert torch.equal(reloaded.prompt_encoder.pos_linear.weight, source.prompt_encoder.pos_linear.weight)

    # A SAM-style model cannot take the box-query weights: strict loading names them.
    with pytest.raises(WeightsMismatchError, match="prompt_encoder.pos_linear.weight"):
        load_weights(_fresh(2), converted)


def test_checkpoint_without_prompt_weights_converts(tmp_path: Path) -> None:
    source = _fresh(0, enable_prompts=False)
    torch.save(to_official_state_dict(source.state_dict()), tmp_path / "official.pth")
    converted = convert_official_checkpoint(tmp_path / "official.pth", tmp_path / "converted.safetensors",
                                            model_name="omg-tiny")
    with pytest.warns(UserWarning, match="prompt_encoder."):
        report = load_weights(_fresh(1), converted)
    assert any(key.startswith("prompt_encoder.") for key in report.missing_by_design)


def test_unmapped_official_keys_are_listed(tmp_path: Path) -> None:
    official = to_official_state_dict(_fresh(0, enable_prompts=False).state_dict())
    official["panoptic_head.some_new_head.weight"] = torch.zeros(1)
    official["neck.conv.weight"] = torch.zeros(1)
    torch.save(official, tmp_path / "official.pth")
    with pytest.raises(UnmappedKeysError) as error:
        convert_official_checkpoint(tmp_path / "official.pth", tmp_path / "out.safetensors")
    assert "panoptic_head.some_new_head.weight" in str(error.value) and "neck.conv.weight" in str(error.value)
    assert official_to_ours("panoptic_head.transformer_decoder.layers.8.norms.2.bias") == \
        "transformer_decoder.layers.8.norm_ffn.bias"
    assert official_to_ours("backbone.layer1.downsample.0.weight") == "backbone.stages.0.downsample.0.weight"


def test_converter_refuses_pickled_code(tmp_path: Path) -> None:
    torch.save({"state_dict": {"x": torch.zeros(1)}, "object": _Pickled()}, tmp_path / "unsafe.pth")
    with pytest.raises(ValueError, match="weights_only=True"):
        convert_official_checkpoint(tmp_path / "unsafe.pth", tmp_path / "out.safetensors")


class _Pickled:
    """Not a tensor: torch.load(weights_only=True) must refuse it."""


def test_convert_command(tmp_path: Path) -> None:
    official = to_official_state_dict(_fresh(0, enable_prompts=False).state_dict())
    torch.save(official, tmp_path / "official.pth")
    runner = CliRunner()
    result = runner.invoke(convert_command, [str(tmp_path / "official.pth"), str(tmp_path / "out.safetensors"),
                                             "--model", "omg-tiny"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.safetensors").is_file()
    official["unknown.key"] = torch.zeros(1)
    torch.save(official, tmp_path / "bad.pth")
    result = runner.invoke(convert_command, [str(tmp_path / "bad.pth"), str(tmp_path / "bad.safetensors")])
    assert result.exit_code != 0 and "unknown.key" in result.output


def test_from_pretrained_local_file_and_folder(tmp_path: Path) -> None:
    source = _fresh(0)
    save_weights(source, tmp_path / "folder" / "model.safetensors")
    for location in (tmp_path / "folder", tmp_path / "folder" / "model.safetensors"):
        loaded = hub.from_pretrained(location)
        assert loaded.config == source.config
        torch.testing.assert_close(_forward(loaded), _forward(source))
    loaded = create_model("omg-tiny", pretrained=str(tmp_path / "folder"))
    torch.testing.assert_close(_forward(loaded), _forward(source))


def test_from_pretrained_offline_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    def offline(*args: object, **kwargs: object) -> str:
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    monkeypatch.setenv("OMG_CACHE_DIR", str(tmp_path))
    with pytest.raises(hub.WeightsNotAvailableError) as error:
        hub.from_pretrained("omg-convnext-large")
    message = str(error.value)
    assert "omg_seg_convl.pth" in message and "LXT/OMG_Seg" in message
    assert str(tmp_path / "omg-convnext-large" / "model.safetensors") in message
    assert "omg convert omg_seg_convl.pth" in message
    with pytest.raises(hub.WeightsNotAvailableError, match="released weights"):
        hub.from_pretrained("no-such-model")


def test_packaged_weights_load_offline_by_name(tmp_path, monkeypatch) -> None:
    import warnings

    import omg_core.weights.hub as hub
    from omg_core.model.build import create_model
    from omg_core.model.predictor import load_model
    from omg_core.weights.io import save_weights

    torch.manual_seed(4)
    shipped = create_model("omg-tiny")
    monkeypatch.setattr(hub, "EMBEDDED_DIR", tmp_path)
    with pytest.raises(hub.WeightsNotAvailableError, match="ships its weights inside the package"):
        create_model("omg-tiny", pretrained=True)
    save_weights(shipped, tmp_path / "omg-tiny.safetensors")
    for model in (create_model("omg-tiny", pretrained=True), load_model("omg-tiny")):
        for name, value in shipped.state_dict().items():
            assert torch.equal(model.state_dict()[name], value), name
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "random weights" warning once weights ship
        load_model("omg-tiny")


def test_packaged_weights_take_todays_inference_settings_but_refuse_another_architecture(tmp_path, monkeypatch) -> None:
    import omg_core.weights.hub as hub
    from omg_core.model.build import create_model, get_model_config
    from omg_core.model.predictor import load_model
    from omg_core.weights.io import save_weights

    monkeypatch.setattr(hub, "EMBEDDED_DIR", tmp_path)
    registered = get_model_config("omg-tiny")
    # packed before the ensemble and crop settings changed: the weights load with the registered ones
    older = get_model_config("omg-tiny", open_vocabulary={"clip_classifier": "pooled", "ensemble": "open-vocabulary",
                                                          "alpha": 0.3}, default_vocabulary="coco_panoptic")
    save_weights(create_model("omg-tiny"), tmp_path / "omg-tiny.safetensors",
                 metadata={"config": older.model_dump_json()})
    assert load_model("omg-tiny").config == registered
    assert hub.from_pretrained(tmp_path / "omg-tiny.safetensors").config == older  # a file given by path: its own
    # trained with other pixel statistics and another classifier temperature: refused, naming the fields and the fix
    other = get_model_config("omg-tiny", open_vocabulary={"logit_scale": 3.0}, pixel_std=(1.0, 1.0, 1.0))
    save_weights(create_model("omg-tiny"), tmp_path / "omg-tiny.safetensors",
                 metadata={"config": other.model_dump_json()})
    with pytest.raises(hub.WeightsNotAvailableError,
                       match=r"differ in pixel_std, open_vocabulary.logit_scale\): reinstall omg-seg, or re-pack"):
        load_model("omg-tiny")


def test_a_file_that_is_not_safetensors_names_the_fix(tmp_path: Path) -> None:
    """An official .pth checkpoint given to --weights: one error pointing at `omg convert`, no safetensors traceback."""
    from omg_core.errors import InputError
    from omg_core.weights.io import read_metadata, read_state_dict

    fake = tmp_path / "omg_seg_convl.pth"
    fake.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)  # what a zip-based torch.save file starts with
    for read in (read_state_dict, read_metadata):
        with pytest.raises(InputError, match=r"omg_seg_convl.pth is not a safetensors weights file .*omg convert"):
            read(fake)
