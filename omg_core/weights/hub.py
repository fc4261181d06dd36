"""`from_pretrained`: local safetensors files or folders, or the released OMG-Seg weights on Hugging Face."""

from __future__ import annotations

import os
from pathlib import Path

from omg_core.errors import OMGError
from omg_core.model.build import get_model_config, list_models
from omg_core.model.config import ModelConfig, architecture_differences
from omg_core.model.omg_model import OMGModel
from omg_core.weights.io import MISSING_BY_DESIGN, load_weights, read_metadata
from omg_core.weights.official import convert_official_checkpoint

HF_REPO_ID = "LXT/OMG_Seg"
# Named model -> the official checkpoint file in the Hugging Face repository.
RELEASED_CHECKPOINTS: dict[str, str] = {"omg-convnext-large": "omg_seg_convl.pth"}
WEIGHTS_FILE_NAME = "model.safetensors"
#: Models whose weights ship inside the package, in EMBEDDED_DIR: no download, they work offline.
EMBEDDED_WEIGHTS: dict[str, str] = {"omg-tiny": "omg-tiny.safetensors"}
EMBEDDED_DIR = Path(__file__).resolve().parent / "embedded"


def embedded_weights(name: str) -> Path | None:
    """The packaged weights file of model ``name``, or None when this installation has none."""
    file_name = EMBEDDED_WEIGHTS.get(name)
    if file_name is None:
        return None
    path = EMBEDDED_DIR / file_name
    return path if path.is_file() else None


class WeightsNotAvailableError(OMGError, RuntimeError):
    """Weights could not be found or downloaded; the message says which file to get and where to put it."""


def cache_dir() -> Path:
    """Where converted weights are kept: $OMG_CACHE_DIR, else ~/.cache/omg."""
    return Path(os.environ.get("OMG_CACHE_DIR", Path.home() / ".cache" / "omg"))


def _config_from_file(path: Path) -> ModelConfig | None:
    metadata = read_metadata(path)
    if "config" in metadata:
        return ModelConfig.model_validate_json(metadata["config"])
    if metadata.get("model") in list_models():
        return get_model_config(metadata["model"])
    return None


def packaged_config(name: str, path: Path) -> ModelConfig:
    """The config of a model whose weights ship in the package: the registered one (today's inference settings, such
    as the open-vocabulary ensemble's), after checking that the file was trained with that architecture."""
    registered = get_model_config(name)
    recorded = _config_from_file(path)
    differs = architecture_differences(recorded, registered) if recorded is not None else []
    if differs:
        raise WeightsNotAvailableError(
            f"the packaged weights {path} were trained for another {name!r} architecture than the registered one "
            f"(they differ in {', '.join(differs)}): reinstall omg-seg, or re-pack them with tools/pack_embedded.py "
            "from a run of the registered architecture"
        )
    return registered


def _load_local(path: Path, config: ModelConfig | None, strict: bool) -> OMGModel:
    if path.is_dir():
        path = path / WEIGHTS_FILE_NAME
        if not path.is_file():
            raise WeightsNotAvailableError(f"folder {path.parent} has no {WEIGHTS_FILE_NAME}")
    config = config or _config_from_file(path)
    if config is None:
        raise ValueError(f"{path} does not say which model it belongs to; pass config=get_model_config(name)")
    # A converted official checkpoint has no CLIP text tower: take it from open_clip's pretrained weights
    # rather than leaving it random.
    needs_clip = "backbone.text." in read_metadata(path).get(MISSING_BY_DESIGN, "").split(",")
    model = _build(config, load_clip_weights=needs_clip)
    load_weights(model, path, strict=strict)
    return model.eval()


def _build(config: ModelConfig, load_clip_weights: bool) -> OMGModel:
    if not load_clip_weights:
        return OMGModel(config)
    try:
        return OMGModel(config, load_clip_weights=True)
    except Exception as error:  # noqa: BLE001 - open_clip download failures surface with the file to fetch
        raise WeightsNotAvailableError(
            f"could not load the open_clip weights {config.backbone.clip_model_name}/{config.backbone.pretrained_tag} "
            f"({type(error).__name__}: {error}); open_clip fetches them from Hugging Face "
            "(laion/CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft-soup, open_clip_pytorch_model.bin) "
            "into the Hugging Face cache"
        ) from error


def _download_official(name: str) -> Path:
    filename = RELEASED_CHECKPOINTS[name]
    converted = cache_dir() / name / WEIGHTS_FILE_NAME
    if converted.is_file():
        return converted
    try:
        from huggingface_hub import hf_hub_download

        official = hf_hub_download(HF_REPO_ID, filename)
    except Exception as error:  # noqa: BLE001 - any download failure gets the same actionable message
        raise WeightsNotAvailableError(
            f"could not get {filename} from https://huggingface.co/{HF_REPO_ID} ({type(error).__name__}: {error}).\n"
            f"Download {filename} by hand, then either convert it:\n"
            f"  omg convert {filename} {converted}\n"
            f"(that path is where from_pretrained({name!r}) looks first), or put it in the Hugging Face cache "
            f"(huggingface-cli download {HF_REPO_ID} {filename})."
        ) from error
    return convert_official_checkpoint(official, converted, model_name=name)


def from_pretrained(name_or_path: str | os.PathLike[str], config: ModelConfig | None = None,
                    strict: bool = True) -> OMGModel:
    """Build a model and load weights.

    Arguments:
      name_or_path: a safetensors file, a folder holding model.safetensors, a model whose weights ship in the
        package (EMBEDDED_WEIGHTS, offline), or a named model with released weights (omg-convnext-large: converted
        from LXT/OMG_Seg's omg_seg_convl.pth; the CLIP backbone and text tower come from open_clip's
        laion2b_s29b_b131k_ft_soup weights).
      config: the model config; by default read from the file's metadata or the named config.
      strict: see load_weights.

    Returns:
      The model in eval mode.
    """
    path = Path(name_or_path)
    if path.exists():
        return _load_local(path, config, strict)
    name = str(name_or_path)
    packaged = embedded_weights(name)
    if packaged is not None:
        return _load_local(packaged, config or packaged_config(name, packaged), strict)
    if name in EMBEDDED_WEIGHTS:
        raise WeightsNotAvailableError(
            f"{name!r} ships its weights inside the package ({EMBEDDED_DIR / EMBEDDED_WEIGHTS[name]}), but this "
            "installation has no such file: reinstall omg-seg, or train them with "
            "`omg train --config configs/train/shapes-tiny.yaml` and pass --weights OUTPUT/model.safetensors"
        )
    if name not in RELEASED_CHECKPOINTS:
        raise WeightsNotAvailableError(
            f"{name!r} is neither an existing file/folder nor a model with released weights "
            f"({', '.join([*EMBEDDED_WEIGHTS, *RELEASED_CHECKPOINTS])})"
        )
    weights = _download_official(name)
    config = config or get_model_config(name)
    model = _build(config, load_clip_weights=True)
    load_weights(model, weights, strict=strict)
    return model.eval()
