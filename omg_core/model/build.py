"""Named model configurations and `create_model`, timm style."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omg_core.model.config import ModelConfig
from omg_core.model.omg_model import OMGModel

_MODEL_CONFIGS: dict[str, Callable[[], dict[str, Any]]] = {}


def register_model_config(name: str) -> Callable[[Callable[[], dict[str, Any]]], Callable[[], dict[str, Any]]]:
    """Decorator registering a function that returns the config fields of a named model."""

    def wrap(function: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        if name in _MODEL_CONFIGS:
            raise ValueError(f"model config {name!r} is already registered")
        _MODEL_CONFIGS[name] = function
        return function

    return wrap


@register_model_config("omg-convnext-large")
def _omg_convnext_large() -> dict[str, Any]:
    # The official OMG-Seg sizes (m2_convl_300q): ConvNeXt-L CLIP, 6 deformable layers, 9 decoder layers, 300 q,
    # and OMG-Seg's box-query prompts so the released weights cover interactive segmentation too.
    # Test sizes of the official test pipelines: seg/configs/m2ov_val/datasets/coco.py (1333, 800) and y19.py /
    # vipseg.py (1280, 736).
    return {"name": "omg-convnext-large", "prompt_encoding": "official", "test_scale_image": (1333, 800),
            "test_scale_video": (1280, 736), "training_vocabulary": "omg-seg-joint"}


@register_model_config("omg-tiny")
def _omg_tiny() -> dict[str, Any]:
    # The embedded default, sized for the shapes world: a convnext_atto CLIP trained here (omg_core.clip_train),
    # 2 deformable layers and 6 decoder layers of width 64, and 32 queries (a scene holds at most 6 things, a
    # crowd and 5 stuff regions: 12 segments, so 32 leaves the ~2.5x margin the official 300 leave over COCO's
    # ~100). Its weights ship under omg_core/weights/embedded/ (see MODEL_CARD.md there).
    return {
        "name": "omg-tiny",
        "backbone": {"clip_model_name": "omg-tiny-convnext-atto", "pretrained_tag": "",
                     "channels": (40, 80, 160, 320)},
        "pixel_decoder": {"feat_channels": 64, "mask_channels": 64, "num_layers": 2, "num_heads": 4,
                          "num_points": 4, "ffn_dim": 256, "num_groups": 8},
        "transformer_decoder": {"num_layers": 6, "num_heads": 4, "ffn_dim": 256, "num_queries": 32},
        # The tiny CLIP's dense features carry colour but not shape at 128 px (omg_core.model.masked_crops). Its
        # masked crops name things' shapes better than the trained classifier does, so every task ensembles (as
        # FC-CLIP does; official alpha/beta were best on a validation world), at the temperature the CLIP learned.
        "open_vocabulary": {"clip_classifier": "masked-crops", "ensemble": "always", "clip_temperature": "clip"},
        "default_vocabulary": "shapes-world",
        "training_vocabulary": "shapes-world-seen",
    }


def list_models() -> list[str]:
    """Names accepted by `create_model`."""
    return sorted(_MODEL_CONFIGS)


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def get_model_config(name: str, **overrides: Any) -> ModelConfig:
    """The validated config of a named model, with overrides (nested dicts merge, e.g.
    transformer_decoder={"num_layers": 2})."""
    if name not in _MODEL_CONFIGS:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(list_models())}")
    return ModelConfig(**_merge(_MODEL_CONFIGS[name](), overrides))


def create_model(name: str, pretrained: bool | str = False, **overrides: Any) -> OMGModel:
    """Build a named OMG model.

    Arguments:
      name: one of `list_models()`.
      pretrained: False for random weights (offline). True loads the released weights for `name` (Hugging Face
        download + conversion, plus the open_clip CLIP weights); a path loads that safetensors file or directory.
      overrides: config fields to change (see ModelConfig).

    Returns:
      The model in eval mode.
    """
    config = get_model_config(name, **overrides)
    if pretrained:
        from omg_core.weights.hub import from_pretrained

        return from_pretrained(name if pretrained is True else pretrained, config=config)
    return OMGModel(config).eval()
