"""Save and load model weights as safetensors, reporting every missing or unexpected key by name."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import save_file

from omg_common.file_modes import give_ordinary_mode
from omg_core.errors import InputError, OMGError

FORMAT_TAG = "omg-seg"
# Metadata key: comma-separated key prefixes that a file deliberately lacks (e.g. the CLIP text tower of a
# converted official checkpoint, which comes from open_clip instead).
MISSING_BY_DESIGN = "missing_by_design"


class WeightsMismatchError(OMGError, RuntimeError):
    """The file's keys or shapes do not match the model's; the message lists every offending key."""


@dataclass
class LoadReport:
    """What `load_weights` did. Keys are listed by name."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    missing_by_design: list[str] = field(default_factory=list)
    shape_mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.shape_mismatches)

    def describe(self) -> str:
        lines = []
        for title, keys in (("missing from the file", self.missing), ("unexpected in the file", self.unexpected),
                            ("shape mismatch", self.shape_mismatches)):
            if keys:
                lines.append(f"{len(keys)} key(s) {title}:")
                lines.extend(f"  {key}" for key in keys)
        return "\n".join(lines) if lines else "all keys matched"


def save_weights(model: nn.Module | dict[str, torch.Tensor], path: str | Path,
                 metadata: dict[str, str] | None = None) -> Path:
    """Write a model's state dict (or a state dict) to a safetensors file.

    Arguments:
      model: the module or its state dict.
      path: destination file (parent folders are created).
      metadata: extra string metadata stored in the header.

    Returns:
      The path written.
    """
    state = model.state_dict() if isinstance(model, nn.Module) else model
    # safetensors refuses views that share storage; contiguous copies are independent.
    tensors = {key: value.detach().to("cpu").contiguous().clone() for key, value in state.items()}
    header = {"format": FORMAT_TAG, **(metadata or {})}
    if isinstance(model, nn.Module) and hasattr(model, "config"):
        header.setdefault("config", model.config.model_dump_json())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={key: str(value) for key, value in header.items()})
    return give_ordinary_mode(path)


def _open_safetensors(path: str | Path, device: str | torch.device = "cpu"):  # -> safe_open
    """safetensors' reader, with one error naming the file and the fix when it is not a safetensors file (an
    official ``.pth`` checkpoint is the usual case)."""
    from safetensors import SafetensorError

    try:
        return safe_open(str(path), framework="pt", device=str(device))
    except SafetensorError as error:
        raise InputError(
            f"{path} is not a safetensors weights file ({error}); an official OMG-Seg checkpoint (.pth) must be "
            "converted first: omg convert --help"
        ) from None


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors file."""
    with _open_safetensors(path) as handle:
        return dict(handle.metadata() or {})


#: The learned logit scale of files written before it became a constant.
LEGACY_LOGIT_SCALE_KEY = "ov_classifier.logit_scale"


def read_state_dict(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file."""
    with _open_safetensors(path, device) as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}


def load_weights(model: nn.Module, path: str | Path, strict: bool = True) -> LoadReport:
    """Load a safetensors file into a model.

    Arguments:
      model: the module to fill.
      path: a safetensors file written by `save_weights` or `convert_official_checkpoint`.
      strict: raise WeightsMismatchError listing every missing / unexpected / wrongly shaped key. Keys under the
        prefixes the file declares as missing by design (metadata "missing_by_design") are allowed to be
        missing; they keep the model's current values and are reported in `missing_by_design`.

    Returns:
      A LoadReport.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    metadata = read_metadata(path)
    allowed_prefixes = tuple(p for p in metadata.get(MISSING_BY_DESIGN, "").split(",") if p)
    state = read_state_dict(path)
    # Files written before the logit scale became OMG-Seg's fixed constant hold it as a learned value (ln 100 =
    # 4.60517, the constant to 4 decimals); it is no longer a weight, so it is not loaded.
    legacy_scale = state.pop(LEGACY_LOGIT_SCALE_KEY, None)
    if legacy_scale is not None and abs(float(legacy_scale) - 4.6052) > 1e-3:
        warnings.warn(f"{path.name} holds a learned logit scale {float(legacy_scale):.4f}; OMG uses the fixed "
                      "constant 4.6052, so class scores may differ from the model that wrote it", stacklevel=2)
    expected = model.state_dict()
    report = LoadReport()
    for key in expected:
        if key not in state:
            (report.missing_by_design if key.startswith(allowed_prefixes) else report.missing).append(key)
    report.unexpected = [key for key in state if key not in expected]
    report.shape_mismatches = [
        f"{key}: file {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in state if key in expected and state[key].shape != expected[key].shape
    ]
    if strict and not report.ok:
        raise WeightsMismatchError(f"cannot load {path} strictly:\n{report.describe()}")
    if report.missing_by_design:
        prefixes = sorted({p for p in allowed_prefixes if any(k.startswith(p) for k in report.missing_by_design)})
        warnings.warn(
            f"{path.name} has no weights for {len(report.missing_by_design)} key(s) under {', '.join(prefixes)} "
            "(by design: they come from elsewhere, e.g. open_clip's pretrained text tower); those keep the "
            "model's current values",
            stacklevel=2,
        )
    loadable = {key: value for key, value in state.items()
                if key in expected and value.shape == expected[key].shape}
    model.load_state_dict(loadable, strict=False)
    backbone = getattr(model, "backbone", None)
    if backbone is not None and hasattr(backbone, "clear_vocabulary_cache"):
        backbone.clear_vocabulary_cache()  # cached text embeddings came from the old text tower
    return report
