"""Convert an official OMG-Seg checkpoint (mmdet module names) into this package's safetensors layout.

The key map below is the whole contract: each rule pairs an official name template with ours. `{i}` matches
an integer, `{rest}` the remaining dotted tail. Every official key must match a rule; anything else is an error
that names the keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import torch

from omg_core.errors import InputError, OMGError
from omg_core.weights.io import MISSING_BY_DESIGN, save_weights

# (official template, our template)
KEY_MAP: list[tuple[str, str]] = [
    # Frozen CLIP ConvNeXt (OpenCLIPBackbone): stem, four stages named layer1..layer4, and the CLIP head
    # (head.0 = trunk.head with its LayerNorm2d, head.1 = visual.head projection MLP).
    ("backbone.stem.{rest}", "backbone.stem.{rest}"),
    *[(f"backbone.layer{n}.{{rest}}", f"backbone.stages.{n - 1}.{{rest}}") for n in range(1, 5)],
    ("backbone.head.0.norm.{rest}", "backbone.clip_pooled_norm.{rest}"),
    ("backbone.head.1.{rest}", "backbone.clip_pooled_proj.{rest}"),
    # MSDeformAttnPixelDecoder: ConvModule(conv, gn) -> Sequential(0 conv, 1 GroupNorm).
    ("panoptic_head.pixel_decoder.input_convs.{i}.conv.{rest}", "pixel_decoder.input_projs.{i}.0.{rest}"),
    ("panoptic_head.pixel_decoder.input_convs.{i}.gn.{rest}", "pixel_decoder.input_projs.{i}.1.{rest}"),
    ("panoptic_head.pixel_decoder.level_encoding.weight", "pixel_decoder.level_embed.weight"),
    ("panoptic_head.pixel_decoder.encoder.layers.{i}.self_attn.{rest}",
     "pixel_decoder.encoder.layers.{i}.self_attn.{rest}"),
    ("panoptic_head.pixel_decoder.encoder.layers.{i}.ffn.layers.0.0.{rest}",
     "pixel_decoder.encoder.layers.{i}.linear1.{rest}"),
    ("panoptic_head.pixel_decoder.encoder.layers.{i}.ffn.layers.1.{rest}",
     "pixel_decoder.encoder.layers.{i}.linear2.{rest}"),
    ("panoptic_head.pixel_decoder.encoder.layers.{i}.norms.0.{rest}", "pixel_decoder.encoder.layers.{i}.norm1.{rest}"),
    ("panoptic_head.pixel_decoder.encoder.layers.{i}.norms.1.{rest}", "pixel_decoder.encoder.layers.{i}.norm2.{rest}"),
    ("panoptic_head.pixel_decoder.lateral_convs.{i}.conv.{rest}", "pixel_decoder.lateral_convs.{i}.0.{rest}"),
    ("panoptic_head.pixel_decoder.lateral_convs.{i}.gn.{rest}", "pixel_decoder.lateral_convs.{i}.1.{rest}"),
    ("panoptic_head.pixel_decoder.output_convs.{i}.conv.{rest}", "pixel_decoder.output_convs.{i}.0.{rest}"),
    ("panoptic_head.pixel_decoder.output_convs.{i}.gn.{rest}", "pixel_decoder.output_convs.{i}.1.{rest}"),
    ("panoptic_head.pixel_decoder.mask_feature.{rest}", "pixel_decoder.mask_features.{rest}"),
    # Mask2FormerTransformerDecoder: mmcv MultiheadAttention wraps nn.MultiheadAttention as `.attn`;
    # norms 0/1/2 follow cross-attention, self-attention and the FFN.
    ("panoptic_head.transformer_decoder.layers.{i}.cross_attn.attn.{rest}",
     "transformer_decoder.layers.{i}.cross_attn.{rest}"),
    ("panoptic_head.transformer_decoder.layers.{i}.self_attn.attn.{rest}",
     "transformer_decoder.layers.{i}.self_attn.{rest}"),
    ("panoptic_head.transformer_decoder.layers.{i}.ffn.layers.0.0.{rest}", "transformer_decoder.layers.{i}.linear1.{rest}"),
    ("panoptic_head.transformer_decoder.layers.{i}.ffn.layers.1.{rest}", "transformer_decoder.layers.{i}.linear2.{rest}"),
    ("panoptic_head.transformer_decoder.layers.{i}.norms.0.{rest}", "transformer_decoder.layers.{i}.norm_cross.{rest}"),
    ("panoptic_head.transformer_decoder.layers.{i}.norms.1.{rest}", "transformer_decoder.layers.{i}.norm_self.{rest}"),
    ("panoptic_head.transformer_decoder.layers.{i}.norms.2.{rest}", "transformer_decoder.layers.{i}.norm_ffn.{rest}"),
    ("panoptic_head.transformer_decoder.post_norm.{rest}", "transformer_decoder.decoder_norm.{rest}"),
    ("panoptic_head.query_feat.weight", "transformer_decoder.query_feat.weight"),
    ("panoptic_head.query_embed.weight", "transformer_decoder.query_embed.weight"),
    ("panoptic_head.level_embed.weight", "transformer_decoder.level_embed.weight"),
    ("panoptic_head.mask_embed.{i}.{rest}", "transformer_decoder.mask_embed.{i}.{rest}"),
    ("panoptic_head.iou_embed.{i}.{rest}", "transformer_decoder.iou_embed.{i}.{rest}"),
    # sphere_cls=True classifier: cls_proj MLP into CLIP space and the mask-pooling projection.
    ("panoptic_head.cls_proj.{i}.{rest}", "ov_classifier.query_proj.{i}.{rest}"),
    ("panoptic_head.mask_pooling_proj.{i}.{rest}", "ov_classifier.mask_pool_proj.{i}.{rest}"),
    # Box-query prompts (enable_box_query=True): models built with prompt_encoding="official".
    ("panoptic_head.mask_tokens.weight", "prompt_encoder.mask_tokens.weight"),
    ("panoptic_head.pb_embedding.weight", "prompt_encoder.pb_embedding.weight"),
    ("panoptic_head.pos_linear.{rest}", "prompt_encoder.pos_linear.{rest}"),
]

# The official logit scale (a constant 4.6052 buffer) is not in the checkpoint; ours is a non-persistent buffer
# too (omg_core.model.ov_classifier.OFFICIAL_LOGIT_SCALE), so neither side has a key for it.
# The official void class embedding is an all-zero vector (logit 0); its width is the CLIP width.
VOID_EMBEDDING_KEY = "ov_classifier.void_embedding"
CLIP_PROJ_LAST_LINEAR = "ov_classifier.query_proj.4.weight"  # D x C: gives the CLIP width D

# Our key prefix the official checkpoint lacks by design: the CLIP text tower (taken from open_clip's pretrained
# weights). Checkpoints trained without box queries also lack "prompt_encoder.".
TEXT_TOWER_PREFIX = "backbone.text."
PROMPT_ENCODER_PREFIX = "prompt_encoder."


class UnmappedKeysError(OMGError, KeyError):
    """Official keys that no rule of KEY_MAP maps; the message lists them."""

    def __str__(self) -> str:
        return str(self.args[0])


def _template_regex(template: str) -> re.Pattern[str]:
    pattern = re.escape(template).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{rest\}", r"(?P<rest>.+)")
    return re.compile(f"^{pattern}$")


_RULES = [(_template_regex(official), official, ours, _template_regex(ours)) for official, ours in KEY_MAP]


def official_to_ours(key: str) -> str | None:
    """Our name for an official key, or None when no rule matches."""
    for official_regex, _, ours, _ in _RULES:
        match = official_regex.match(key)
        if match:
            return ours.format(**match.groupdict())
    return None


def ours_to_official(key: str) -> str | None:
    """The official name of one of our keys, or None (keys the official checkpoint does not have)."""
    for _, official, _, ours_regex in _RULES:
        match = ours_regex.match(key)
        if match:
            return official.format(**match.groupdict())
    return None


def to_official_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename our state dict into the official layout (keys without an official counterpart are left out).

    Used to check the converter on models whose official checkpoint cannot be downloaded here.
    """
    renamed = {}
    for key, value in state.items():
        official = ours_to_official(key)
        if official is not None:
            renamed[official] = value
    return renamed


def _unwrap(checkpoint: object) -> dict[str, torch.Tensor]:
    if isinstance(checkpoint, dict) and "state_dict" in checkpoint and isinstance(checkpoint["state_dict"], dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ValueError("the checkpoint is neither a state dict nor a dict with a 'state_dict' entry of tensors")
    return {key.removeprefix("module."): value for key, value in checkpoint.items()}


def convert_official_state_dict(official_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official state dict into ours.

    Arguments:
      official_state: the official tensors by official name.

    Returns:
      Our state dict (plus the official all-zero void embedding).

    Raises:
      UnmappedKeysError listing every official key that no rule maps.
    """
    converted: dict[str, torch.Tensor] = {}
    unmapped = []
    for key, value in official_state.items():
        ours = official_to_ours(key)
        if ours is None:
            unmapped.append(key)
        else:
            converted[ours] = value
    if unmapped:
        raise UnmappedKeysError(f"{len(unmapped)} official key(s) have no mapping in KEY_MAP "
                                f"(omg_core/weights/official.py):\n" + "\n".join(f"  {k}" for k in sorted(unmapped)))
    if CLIP_PROJ_LAST_LINEAR in converted:
        clip_dim = converted[CLIP_PROJ_LAST_LINEAR].shape[0]
        converted.setdefault(VOID_EMBEDDING_KEY, torch.zeros(clip_dim))
    return converted


def _numpy_safe_globals() -> list[Callable | tuple[Callable, str]]:
    """The NumPy reconstruction functions and types an mmengine checkpoint's `meta` may pickle (seeds, arrays,
    dtypes), for torch.load(weights_only=True).

    Only what rebuilds plain values: `_reconstruct` + `ndarray` (arrays, whose bytes are restored by
    ndarray.__setstate__), `scalar` (NumPy scalars from dtype + bytes), `dtype` and its per-type subclasses (BUILD
    checks the instance's exact type). NumPy 1 pickles name the module `numpy.core.multiarray`, NumPy 2
    `numpy._core.multiarray`: both spellings map to the installed functions.
    """
    try:
        import numpy as np
    except ImportError:  # no NumPy: a checkpoint that pickles NumPy values is refused by name below
        return []
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    allowed: list[Callable | tuple[Callable, str]] = [(np.dtype, "numpy.dtype"), (np.ndarray, "numpy.ndarray")]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed.append((multiarray._reconstruct, f"{module}._reconstruct"))
        allowed.append((multiarray.scalar, f"{module}.scalar"))
    dtype_classes = getattr(np, "dtypes", None)  # numpy >= 1.25: every dtype instance has its own class
    if dtype_classes is not None:
        allowed.extend(cls for cls in vars(dtype_classes).values()
                       if isinstance(cls, type) and issubclass(cls, np.dtype))
    return allowed


def load_official_checkpoint(pth_path: str | Path) -> object:
    """torch.load(weights_only=True) of an official `.pth`, with NumPy metadata values allowed; nothing else.

    Raises:
      InputError naming the pickled types that are not allowed (the file is refused, no code is run) or the reason
      torch cannot read the file.
    """
    pth_path = Path(pth_path)
    allowed = _numpy_safe_globals()
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(pth_path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - re-raised with the reason we refuse to go further
        allowed_names = {item[1] if isinstance(item, tuple) else f"{item.__module__}.{item.__qualname__}"
                         for item in allowed}
        try:
            blocked = [name for name in torch.serialization.get_unsafe_globals_in_checkpoint(pth_path)
                       if name not in allowed_names]
        except Exception:  # noqa: BLE001 - not a readable torch zip file; the load error says why
            blocked = []
        if blocked:
            raise InputError(
                f"{pth_path}: refusing to unpickle {', '.join(blocked)}: the checkpoint stores objects other than "
                "tensors, containers and NumPy values, and it is read with torch.load(weights_only=True) only "
                "(pickled code is never run); re-save it as a plain state dict"
            ) from None
        raise InputError(f"{pth_path} cannot be read with torch.load(weights_only=True): {error}") from error


def convert_official_checkpoint(
    pth_path: str | Path, out_path: str | Path, model_name: str = "omg-convnext-large"
) -> Path:
    """Read an official OMG-Seg `.pth` safely (`load_official_checkpoint`) and write our safetensors.

    Arguments:
      pth_path: the official checkpoint, e.g. omg_seg_convl.pth from https://huggingface.co/LXT/OMG_Seg: a raw
        mmengine checkpoint whose `meta` may hold NumPy values.
      out_path: destination .safetensors file.
      model_name: the named config the weights belong to (stored in the metadata; its prompt_encoding must be
        "official" when the checkpoint holds box-query prompt weights).

    Returns:
      out_path.
    """
    pth_path = Path(pth_path)
    if not pth_path.is_file():
        raise FileNotFoundError(f"official checkpoint {pth_path} does not exist")
    checkpoint = load_official_checkpoint(pth_path)
    converted = convert_official_state_dict(_unwrap(checkpoint))
    missing_by_design = [TEXT_TOWER_PREFIX]
    if not any(key.startswith(PROMPT_ENCODER_PREFIX) for key in converted):
        missing_by_design.append(PROMPT_ENCODER_PREFIX)
    metadata = {"source": pth_path.name, "model": model_name, MISSING_BY_DESIGN: ",".join(missing_by_design)}
    return save_weights(converted, out_path, metadata=metadata)
