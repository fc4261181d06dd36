"""Reading the released mmengine checkpoint safely (NumPy metadata allowed, nothing else) and the official constant
logit scale of the open-vocabulary classifier."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from omg_core.errors import InputError
from omg_core.model.config import OpenVocabularyConfig
from omg_core.model.ov_classifier import OFFICIAL_LOGIT_SCALE, OpenVocabularyClassifier
from omg_core.weights.io import read_state_dict
from omg_core.weights.official import convert_official_checkpoint, load_official_checkpoint

# A few tensors under official (mmdet) names, enough to exercise the key map.
OFFICIAL_STATE = {
    "panoptic_head.query_feat.weight": torch.randn(4, 8),
    "panoptic_head.cls_proj.4.weight": torch.randn(16, 8),
    "panoptic_head.transformer_decoder.layers.0.norms.2.bias": torch.randn(8),
    "backbone.layer1.blocks.0.conv_dw.weight": torch.randn(8, 1, 7, 7),
}
NUMPY_META = {"seed": np.int64(3), "np_array": np.arange(3), "dtype": np.dtype("float32"), "epoch": 12,
              "mmengine_version": "0.10", "lr": np.float64(1e-4), "classes": np.array(["cat", "dog"])}


def _check_converted(path: Path) -> None:
    converted = read_state_dict(path)
    torch.testing.assert_close(converted["transformer_decoder.query_feat.weight"],
                               OFFICIAL_STATE["panoptic_head.query_feat.weight"])
    torch.testing.assert_close(converted["transformer_decoder.layers.0.norm_ffn.bias"],
                               OFFICIAL_STATE["panoptic_head.transformer_decoder.layers.0.norms.2.bias"])
    assert torch.equal(converted["ov_classifier.void_embedding"], torch.zeros(16))
    assert not any("logit_scale" in key for key in converted)  # a constant, not a weight


def test_mmengine_checkpoint_with_numpy_meta_converts(tmp_path: Path) -> None:
    torch.save({"state_dict": OFFICIAL_STATE, "meta": NUMPY_META}, tmp_path / "official.pth")
    # The premise: plain weights-only loading refuses these NumPy values.
    with pytest.raises(Exception, match="numpy"):
        torch.load(tmp_path / "official.pth", weights_only=True)
    checkpoint = load_official_checkpoint(tmp_path / "official.pth")
    assert checkpoint["meta"]["seed"] == 3 and isinstance(checkpoint["meta"]["seed"], np.int64)
    assert checkpoint["meta"]["np_array"].tolist() == [0, 1, 2]
    assert checkpoint["meta"]["dtype"] == np.dtype("float32")
    assert checkpoint["meta"]["classes"].tolist() == ["cat", "dog"]
    _check_converted(convert_official_checkpoint(tmp_path / "official.pth", tmp_path / "out.safetensors"))


def test_numpy_1_spelling_of_the_reconstruction_functions(tmp_path: Path) -> None:
    # NumPy 1 pickles name `numpy.core.multiarray`; write one by renaming the module in a legacy-format file (a plain
    # pickle stream, so the rename needs no zip surgery).
    legacy = tmp_path / "legacy.pth"
    torch.save({"state_dict": OFFICIAL_STATE, "meta": NUMPY_META}, legacy, _use_new_zipfile_serialization=False)
    data = legacy.read_bytes()
    assert b"numpy._core.multiarray" in data
    legacy.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    checkpoint = load_official_checkpoint(legacy)
    assert checkpoint["meta"]["np_array"].tolist() == [0, 1, 2] and checkpoint["meta"]["seed"] == 3
    _check_converted(convert_official_checkpoint(legacy, tmp_path / "out.safetensors"))


class _CreatesFileWhenUnpickled:
    """Unpickling this calls open(marker, "w"): it would create the marker file if pickled code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return open, (str(self.marker), "w")


class _MmengineLikeConfig:
    """An arbitrary class instance in the metadata."""

    def __init__(self) -> None:
        self.work_dir = "work_dirs/omg"


def test_checkpoint_with_code_in_meta_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    checkpoint = tmp_path / "unsafe.pth"
    torch.save({"state_dict": OFFICIAL_STATE, "meta": {"seed": np.int64(3), "hook": _CreatesFileWhenUnpickled(marker)}},
               checkpoint)
    with pytest.raises(InputError, match="refusing to unpickle") as error:
        convert_official_checkpoint(checkpoint, tmp_path / "out.safetensors")
    message = str(error.value)
    assert ".open" in message and "weights_only=True" in message
    assert "numpy" not in message  # the allowed NumPy values are not what blocks
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()
    # The payload is live: an unrestricted load (never done by the converter) does create the file.
    torch.load(checkpoint, weights_only=False)
    assert marker.exists()


def test_arbitrary_class_instance_in_meta_is_refused_by_name(tmp_path: Path) -> None:
    torch.save({"state_dict": OFFICIAL_STATE, "meta": {"cfg": _MmengineLikeConfig()}}, tmp_path / "cfg.pth")
    with pytest.raises(InputError, match=r"refusing to unpickle \S*_MmengineLikeConfig"):
        convert_official_checkpoint(tmp_path / "cfg.pth", tmp_path / "out.safetensors")


def test_unreadable_file_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="weights_only=True"):
        convert_official_checkpoint(tmp_path / "garbage.pth", tmp_path / "out.safetensors")


# ------------------------------------------------------------------------------------------------ logit scale


def test_classifier_logits_use_the_official_constant_scale() -> None:
    torch.manual_seed(0)
    classifier = OpenVocabularyClassifier(embed_dim=8, clip_dim=16)
    assert OpenVocabularyConfig().logit_scale == OFFICIAL_LOGIT_SCALE == 4.6052
    assert classifier.logit_scale.item() == pytest.approx(4.6052, abs=1e-6)  # float32 of 4.6052, not ln(100)
    assert abs(classifier.logit_scale.item() - math.log(100)) > 1e-5
    assert not any(name.endswith("logit_scale") for name, _ in classifier.named_parameters())
    assert "logit_scale" not in classifier.state_dict()

    queries = torch.randn(2, 5, 16)  # B x N x D class embeddings before normalisation
    prototypes = F.normalize(torch.randn(7, 3, 16), dim=-1)  # K x P x D
    logits = classifier.logits(queries, prototypes)

    # Official forward_logit: cls_embed = [text prototypes; zero background token] as D x (K + 1) x P,
    # einsum('bnc,ckp->bnkp'), max over prototypes, times logit_scale.exp() with logit_scale = 4.6052.
    cls_embed = torch.cat([prototypes, torch.zeros(1, 3, 16)]).permute(2, 0, 1)
    official = torch.einsum("bnc,ckp->bnkp", F.normalize(queries, dim=-1), cls_embed).max(-1).values
    official = torch.tensor(4.6052, dtype=torch.float32).exp() * official
    torch.testing.assert_close(logits, official)
    # The same scale on the K x D (one embedding per class) path used for the CLIP logits.
    flat = classifier.logits(queries, prototypes[:, 0])
    torch.testing.assert_close(flat[..., :-1], math.exp(4.6052) * F.normalize(queries, dim=-1) @ prototypes[:, 0].T)


def test_logit_scale_follows_the_module_dtype_and_is_not_trained() -> None:
    classifier = OpenVocabularyClassifier(embed_dim=8, clip_dim=16).to(torch.float64)
    assert classifier.logit_scale.dtype == torch.float64
    logits = classifier.logits(torch.randn(3, 16, dtype=torch.float64, requires_grad=True),
                               F.normalize(torch.randn(2, 16, dtype=torch.float64), dim=-1))
    logits.sum().backward()
    assert classifier.logit_scale.grad is None and not classifier.logit_scale.requires_grad
