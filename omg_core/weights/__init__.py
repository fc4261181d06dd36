"""Weights: safetensors save/load, the official OMG-Seg checkpoint converter, and Hugging Face download.

Names load on first use, so that `omg convert --help` (which imports this package) does not import torch.
"""

from __future__ import annotations

from omg_common.lazy_exports import lazy_exports

_EXPORTS: dict[str, str] = {
    "LoadReport": "omg_core.weights.io",
    "WeightsMismatchError": "omg_core.weights.io",
    "load_weights": "omg_core.weights.io",
    "save_weights": "omg_core.weights.io",
    "UnmappedKeysError": "omg_core.weights.official",
    "convert_official_checkpoint": "omg_core.weights.official",
    "convert_official_state_dict": "omg_core.weights.official",
    # pulls in huggingface_hub
    "from_pretrained": "omg_core.weights.hub",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
