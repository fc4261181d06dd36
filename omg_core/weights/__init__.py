"""Weights: safetensors save/load, the official OMG-Seg checkpoint converter, and Hugging Face download."""

from omg_core.weights.io import LoadReport, WeightsMismatchError, load_weights, save_weights
from omg_core.weights.official import UnmappedKeysError, convert_official_checkpoint, convert_official_state_dict

__all__ = [
    "LoadReport",
    "UnmappedKeysError",
    "WeightsMismatchError",
    "convert_official_checkpoint",
    "convert_official_state_dict",
    "load_weights",
    "save_weights",
]


def from_pretrained(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201 - thin lazy alias, see hub.from_pretrained
    """See `omg_core.weights.hub.from_pretrained` (imported lazily: it pulls in huggingface_hub)."""
    from omg_core.weights.hub import from_pretrained as _from_pretrained

    return _from_pretrained(*args, **kwargs)
