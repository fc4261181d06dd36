"""Atomic, resumable training checkpoints: safetensors and JSON only (never pickle), bit-exact on resume.

    path = save_checkpoint(run / "checkpoints", step, model, optimizer, scheduler, sampler.state_dict())
    found = latest_checkpoint(run / "checkpoints")          # None when there is no complete checkpoint
    state = load_checkpoint(found, model, optimizer, scheduler)
    sampler.load_state_dict(state.sampler_state)

A checkpoint is the folder ``<directory>/step_<step:08d>/`` holding

  model.safetensors      the model's trainable parameters and buffers (frozen parameters too with include_frozen);
  optimizer.safetensors  every tensor of the optimizer state, keyed "state.<param index>.<name>" (and any tensor the
                         scheduler, sampler state, metrics or extra hold, under "scheduler.", "sampler." ... keys);
  state.json             the step, the optimizer's param groups and non-tensor state, the scheduler state, the sampler
                         state, every RNG state (omg_core.train.rng), the config text and its hash, metrics, extra,
                         and the byte size of both tensor files.

Why a kill at any moment is harmless: the folder is written under a hidden temporary name
(``.step_<n>.partial-XXXX``), every file and the folder are fsynced, and only then is it renamed to its final name
(a rename is atomic); the ``latest`` pointer file is then replaced the same way (temp file, fsync, rename). A reader
sees either the previous complete checkpoint or the new one; hidden leftovers are never read and the next save
removes them. ``latest_checkpoint`` also checks that the folder ``latest`` names is complete and otherwise falls back
to the newest complete one, so even a lost pointer costs nothing but the steps since that checkpoint.

The model's frozen parameters (the CLIP backbone) are left out by default: they never change during training and the
trainer rebuilds them identically (seeded initialisation or the same init weights), so saving them every time would
only cost disk and time. The state records their names, so loading still checks the model's keys strictly.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from omg_common.file_modes import give_ordinary_mode
from omg_core.errors import ConfigError, OMGError
from omg_core.result_writer import temporary_beside
from omg_core.train.rng import Generator, capture_rng_state, restore_rng_state

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
LATEST_FILE = "latest"

_FORMAT = "omg-train-checkpoint"
_VERSION = 1
_STEP_FOLDER = re.compile(r"step_(\d{8,})")
# what an interrupted save leaves behind: the folder being written, a displaced older copy of the same step, a folder
# being pruned, a pointer being written
_LEFTOVER = re.compile(r"\.(step_\d{8,}\.(partial|old|deleting)-.+|latest\.tmp-.+|latest\..+\.partial)")
_TAGS = ("__tensor__", "__tuple__", "__dict__")


@dataclass
class TrainState:
    """What a checkpoint holds besides the model weights (the model, optimizer and scheduler are restored in place).

    step: optimizer steps done when it was saved.
    sampler_state: the data sampler's position (opaque; `CoTrainingSampler.load_state_dict` takes it).
    scheduler_state: the scheduler's state_dict (None when saved without a scheduler).
    optimizer_state: the optimizer's state_dict (None when saved without an optimizer).
    rng_state: every RNG state (omg_core.train.rng.capture_rng_state).
    config_text, config_hash: the run's config text and its SHA-256 (None when not given).
    metrics: the metrics history given to save_checkpoint.
    extra: the extra mapping given to save_checkpoint.
    path: the step folder it was loaded from.
    """

    step: int
    sampler_state: dict[str, Any]
    scheduler_state: dict[str, Any] | None
    optimizer_state: dict[str, Any] | None
    rng_state: dict[str, Any]
    config_text: str | None
    config_hash: str | None
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path = Path()


# ---------------------------------------------------------------------------------------------------------- saving
def save_checkpoint(
    directory: str | os.PathLike[str],
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any | None,
    sampler_state: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
    keep_last: int = 3,
    *,
    metrics: Mapping[str, Any] | None = None,
    config_text: str | None = None,
    extra_generators: Mapping[str, Generator] | None = None,
    include_frozen: bool = False,
) -> Path:
    """Writes ``<directory>/step_<step:08d>/`` atomically, points ``latest`` at it and prunes older checkpoints.

    Arguments:
      directory: the run's checkpoint folder (created when missing).
      step: optimizer steps done (>= 0). Saving a step that already has a checkpoint replaces it.
      model: the bare model (not a DistributedDataParallel wrapper, whose keys carry a "module." prefix).
      optimizer, scheduler: saved by their state_dict (None: not saved).
      sampler_state: the data sampler's position, JSON values (tensors allowed).
      extra: more JSON values to keep (returned as TrainState.extra).
      keep_last: complete checkpoints kept, this one included (>= 1); older ones are deleted after the save.
      metrics: a small JSON-able metrics history (returned as TrainState.metrics).
      config_text: the run's config text; its SHA-256 is stored next to it.
      extra_generators: generator objects the loop owns, by name (torch / numpy / random), restored by
        load_checkpoint(generators=...).
      include_frozen: also save parameters with requires_grad=False.

    Returns:
      The checkpoint folder.
    """
    if not isinstance(keep_last, int) or keep_last < 1:
        raise ConfigError(f"keep_last must be an integer >= 1 (got {keep_last!r}): a save keeps at least the "
                          "checkpoint it just wrote")
    if not isinstance(step, (int, np.integer)) or isinstance(step, bool) or step < 0:
        raise ValueError(f"step must be an integer >= 0, got {step!r}")
    step = int(step)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(directory)

    # captured first, and nothing below draws random numbers: the resumed run continues from this exact state
    rng_state = capture_rng_state(extra_generators)
    model_tensors, frozen = _model_tensors(model, include_frozen)
    tensors: dict[str, torch.Tensor] = {}
    state: dict[str, Any] = {
        "format": _FORMAT,
        "version": _VERSION,
        "step": step,
        "torch_version": torch.__version__,
        "model": {"keys": list(model_tensors), "skipped_frozen": frozen},
        "optimizer": None if optimizer is None else _pack(optimizer.state_dict(), [], tensors),
        "scheduler": None if scheduler is None else _pack(scheduler.state_dict(), ["scheduler"], tensors),
        "sampler_state": _pack(dict(sampler_state), ["sampler"], tensors),
        "rng": rng_state,
        "config": None if config_text is None else {"text": config_text, "sha256": _sha256(config_text)},
        "metrics": _pack(dict(metrics or {}), ["metrics"], tensors),
        "extra": _pack(dict(extra or {}), ["extra"], tensors),
    }

    name = _folder_name(step)
    final = directory / name
    partial = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=directory))
    give_ordinary_mode(partial)  # mkdtemp makes 0700 folders
    displaced: Path | None = None
    try:
        save_file(model_tensors, partial / MODEL_FILE)
        give_ordinary_mode(partial / MODEL_FILE)
        _fsync_file(partial / MODEL_FILE)
        save_file(_storable(tensors), partial / OPTIMIZER_FILE)
        give_ordinary_mode(partial / OPTIMIZER_FILE)
        _fsync_file(partial / OPTIMIZER_FILE)
        state["files"] = {file: (partial / file).stat().st_size for file in (MODEL_FILE, OPTIMIZER_FILE)}
        _write_durably(partial / STATE_FILE, json.dumps(state))
        _fsync_dir(partial)
        if final.exists():
            # a rename cannot replace a non-empty folder: move the old copy aside first (the next save removes it,
            # or puts it back if a kill came between the two renames)
            displaced = directory / f".{name}.old-{os.getpid()}-{time.monotonic_ns()}"
            os.replace(final, displaced)
        os.replace(partial, final)
    except BaseException:
        if displaced is not None and not final.exists():
            os.replace(displaced, final)
            displaced = None
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _fsync_dir(directory)
    _write_pointer(directory, name)
    if displaced is not None:
        shutil.rmtree(displaced, ignore_errors=True)
    _prune(directory, keep_last, final)
    return final


def _model_tensors(model: nn.Module, include_frozen: bool) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The state_dict tensors to save (CPU, contiguous, unaliased) and the frozen parameter keys left out."""
    tensors, frozen = {}, []
    for key, value in model.state_dict(keep_vars=True).items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"model.state_dict() entry {key!r} is a {type(value).__name__}; checkpoints hold "
                             "tensors only")
        if isinstance(value, nn.Parameter) and not value.requires_grad and not include_frozen:
            frozen.append(key)
            continue
        tensors[key] = value.detach()
    return _storable(tensors), frozen


def _storable(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors safetensors accepts: on the CPU, contiguous, each owning its whole storage. Tied weights, views and
    slices share storage, which safetensors refuses; they are cloned (CPU tensors that need nothing stay as they are,
    so a CPU run copies no weights)."""
    result: dict[str, torch.Tensor] = {}
    kept_storages: set[int] = set()
    for key, tensor in tensors.items():
        if tensor.device.type != "cpu":
            tensor = tensor.to("cpu")  # a fresh copy, aliasing nothing
        storage = tensor.untyped_storage()
        alone = (
            tensor.is_contiguous()
            and tensor.storage_offset() == 0
            and storage.nbytes() == tensor.nbytes
            and storage.data_ptr() not in kept_storages
        )
        if alone:
            if tensor.nbytes:
                kept_storages.add(storage.data_ptr())
        else:
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        result[key] = tensor
    return result


def _pack(value: Any, path: list[str], tensors: dict[str, torch.Tensor]) -> Any:
    """JSON for a state_dict-like value; each tensor goes to ``tensors`` under its dotted path. Tuples and dicts with
    non-string keys (the optimizer's parameter indices) are tagged, so `_unpack` gives back the very same structure."""
    if isinstance(value, torch.Tensor):
        key = ".".join(path)
        if key in tensors:
            raise ValueError(f"two tensors of the checkpoint state would be stored under {key!r}")
        tensors[key] = value.detach()
        return {"__tensor__": key}
    if isinstance(value, Mapping):
        if all(isinstance(key, str) and key not in _TAGS for key in value):
            return {key: _pack(item, [*path, key], tensors) for key, item in value.items()}
        return {"__dict__": [[_pack_key(key, path), _pack(item, [*path, str(key)], tensors)]
                             for key, item in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_pack(item, [*path, str(i)], tensors) for i, item in enumerate(value)]}
    if isinstance(value, list):
        return [_pack(item, [*path, str(i)], tensors) for i, item in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{'.'.join(path) or 'state'}: a {type(value).__name__} cannot go into a checkpoint (JSON values "
                    "and torch tensors only)")


def _pack_key(key: Any, path: list[str]) -> Any:
    found: dict[str, torch.Tensor] = {}
    packed = _pack(key, [*path, "<key>"], found)
    if found:
        raise TypeError(f"{'.'.join(path)}: a tensor cannot be a dict key in a checkpoint")
    return packed


def _unpack(value: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            (tag, inner), = value.items()
            if tag == "__tensor__":
                return tensors[inner]
            if tag == "__tuple__":
                return tuple(_unpack(item, tensors) for item in inner)
            if tag == "__dict__":
                return {_unpack(key, tensors): _unpack(item, tensors) for key, item in inner}
        return {key: _unpack(item, tensors) for key, item in value.items()}
    if isinstance(value, list):
        return [_unpack(item, tensors) for item in value]
    return value


# ------------------------------------------------------------------------------------------------- durable writes
def _fsync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_dir(path: Path) -> None:
    """Makes renames and new names inside ``path`` durable (POSIX; Windows cannot open a folder)."""
    if os.name != "posix":
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_durably(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())


def _write_pointer(directory: Path, name: str) -> None:
    temporary = temporary_beside(directory / LATEST_FILE)
    try:
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(name + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, directory / LATEST_FILE)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_dir(directory)


def _remove_leftovers(directory: Path) -> None:
    """Removes what interrupted saves left; a displaced copy whose replacement never arrived is put back."""
    for entry in sorted(directory.iterdir()):
        match = _LEFTOVER.fullmatch(entry.name)
        if match is None:
            continue
        if match.group(2) == "old":
            original = directory / entry.name[1:].split(".old-")[0]
            if not original.exists():
                os.replace(entry, original)
                continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _prune(directory: Path, keep_last: int, keep: Path) -> None:
    """Deletes all but the newest ``keep_last`` complete checkpoints, never ``keep``; renamed to a hidden name
    first, so a kill halfway through a deletion leaves no half-deleted folder that looks like a checkpoint."""
    others = [(step, path) for step, path in _step_folders(directory) if path != keep and _problem(path) is None]
    others.sort(reverse=True)
    for _, path in others[keep_last - 1:]:
        doomed = directory / f".{path.name}.deleting-{os.getpid()}-{time.monotonic_ns()}"
        os.replace(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)


# --------------------------------------------------------------------------------------------------------- finding
def latest_checkpoint(directory: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint of ``directory``: the one ``latest`` names when it is complete, else (with a
    warning when ``latest`` exists) the complete step folder with the highest step; None when there is none.

    Complete means: state.json parses and is of this format, its step matches the folder name, and both tensor files
    are present with the sizes state.json records.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return None
    pointer = directory / LATEST_FILE
    named: str | None = None
    if pointer.is_file():
        named = pointer.read_text(encoding="utf-8", errors="replace").strip()
        if _STEP_FOLDER.fullmatch(named) and _problem(directory / named) is None:
            return directory / named
    for _, path in sorted(_step_folders(directory), reverse=True):
        if _problem(path) is None:
            if named is not None:
                warnings.warn(f"{pointer} names {named!r}, which is not a complete checkpoint; using {path.name}",
                              RuntimeWarning, stacklevel=2)
            return path
    return None


def _step_folders(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for entry in directory.iterdir():
        match = _STEP_FOLDER.fullmatch(entry.name)
        if match is not None and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return found


def _folder_name(step: int) -> str:
    return f"step_{step:08d}"


def _problem(folder: Path) -> str | None:
    """Why ``folder`` is not a complete checkpoint (None when it is)."""
    try:
        state = _read_state(folder)
    except OMGError as error:
        return str(error)
    for file, size in state["files"].items():
        path = folder / file
        if not path.is_file():
            return f"{path} is missing"
        if path.stat().st_size != size:
            return f"{path} has {path.stat().st_size} bytes, state.json expects {size}"
    return None


def _read_state(folder: Path) -> dict[str, Any]:
    path = folder / STATE_FILE
    if not path.is_file():
        raise OMGError(f"{path} is missing")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise OMGError(f"{path} does not parse ({error})") from None
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise OMGError(f"{path} is not an OMG training checkpoint")
    if state.get("version") != _VERSION:
        raise OMGError(f"{path} has checkpoint version {state.get('version')!r}; this OMG reads version {_VERSION}")
    match = _STEP_FOLDER.fullmatch(folder.name)
    if match is not None and int(match.group(1)) != state.get("step"):
        raise OMGError(f"{path} is for step {state.get('step')!r}, not the folder's {int(match.group(1))}")
    if set(state.get("files", {})) != {MODEL_FILE, OPTIMIZER_FILE}:
        raise OMGError(f"{path} does not list {MODEL_FILE} and {OPTIMIZER_FILE}")
    return state


# --------------------------------------------------------------------------------------------------------- loading
def load_checkpoint(
    directory_or_step_folder: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    generators: Mapping[str, Generator] | None = None,
) -> TrainState:
    """Restores a checkpoint in place: the model (strict keys), the optimizer (its state tensors go to the
    parameters' devices), the scheduler, and every RNG state.

    Arguments:
      directory_or_step_folder: a step_<n> folder, or a checkpoint directory (its `latest_checkpoint` is loaded).
      model: the bare model, built as the saved run built it.
      optimizer, scheduler: restored when given.
      generators: generator objects saved by name with save_checkpoint(extra_generators=...), restored in place.

    Returns:
      The TrainState (step, sampler_state, ...), for the caller to restore its sampler and step counter.
    """
    folder = _resolve(Path(directory_or_step_folder))
    state = _read_state(folder)
    model_path, optimizer_path = folder / MODEL_FILE, folder / OPTIMIZER_FILE

    weights = load_file(model_path, device="cpu")
    _check_model_keys(model, weights, set(state["model"]["skipped_frozen"]), model_path)
    model.load_state_dict(weights, strict=False)  # the keys were checked strictly just above

    tensors = load_file(optimizer_path, device="cpu")
    optimizer_state = None if state["optimizer"] is None else _unpack(state["optimizer"], tensors)
    if optimizer is not None:
        if optimizer_state is None:
            raise OMGError(f"{folder / STATE_FILE} holds no optimizer state; resume from a checkpoint saved with one")
        try:
            optimizer.load_state_dict(optimizer_state)
        except (ValueError, KeyError) as error:
            raise OMGError(f"{optimizer_path}: the optimizer state does not fit this optimizer ({error}); resume "
                           "with the parameter groups of the saved run") from None
    scheduler_state = None if state["scheduler"] is None else _unpack(state["scheduler"], tensors)
    if scheduler is not None:
        if scheduler_state is None:
            raise OMGError(f"{folder / STATE_FILE} holds no scheduler state; resume from a checkpoint saved with one")
        scheduler.load_state_dict(scheduler_state)
    try:
        restore_rng_state(state["rng"], generators)
    except (KeyError, TypeError, ValueError) as error:
        raise OMGError(f"{folder / STATE_FILE}: cannot restore the RNG state ({error}); pass the generators the run "
                       "was saved with") from None
    config = state["config"] or {}
    return TrainState(
        step=int(state["step"]),
        sampler_state=_unpack(state["sampler_state"], tensors),
        scheduler_state=scheduler_state,
        optimizer_state=optimizer_state,
        rng_state=state["rng"],
        config_text=config.get("text"),
        config_hash=config.get("sha256"),
        metrics=_unpack(state["metrics"], tensors),
        extra=_unpack(state["extra"], tensors),
        path=folder,
    )


def _resolve(path: Path) -> Path:
    """The step folder to load: ``path`` itself when it is one, else the newest complete checkpoint inside it."""
    if not path.exists():
        raise OMGError(f"{path} does not exist; pass a checkpoint directory or one of its step_<n> folders")
    if (path / STATE_FILE).exists() or _STEP_FOLDER.fullmatch(path.name):
        problem = _problem(path)
        if problem is not None:
            raise OMGError(f"{path} is not a complete checkpoint ({problem}); resume from {path.parent} (its newest "
                           "complete checkpoint) or another step_<n> folder")
        return path
    found = latest_checkpoint(path)
    if found is None:
        leftovers = sorted(entry.name for entry in path.iterdir() if _LEFTOVER.fullmatch(entry.name)
                           or _STEP_FOLDER.fullmatch(entry.name))
        detail = f" (found only partial folders: {', '.join(leftovers)})" if leftovers else ""
        raise OMGError(f"--resume {path}: no complete checkpoint in {path}{detail}; start without --resume")
    return found


def _check_model_keys(model: nn.Module, weights: Mapping[str, torch.Tensor], skipped: set[str], path: Path) -> None:
    """One line naming the missing and unexpected keys, or the first shape / dtype that differs."""
    expected = {key: value for key, value in model.state_dict().items() if key not in skipped}
    missing = [key for key in expected if key not in weights]
    unexpected = [key for key in weights if key not in expected]
    if missing or unexpected:
        parts = [f"{label} {_some(keys)}" for label, keys in (("missing", missing), ("unexpected", unexpected))
                 if keys]
        raise OMGError(f"{path} does not fit the model: {'; '.join(parts)}; resume with the model the run was "
                       "saved with")
    for key, target in expected.items():
        tensor = weights[key]
        if not isinstance(target, torch.Tensor) or target.shape != tensor.shape or target.dtype != tensor.dtype:
            described = (f"{tuple(target.shape)} {target.dtype}" if isinstance(target, torch.Tensor)
                         else type(target).__name__)
            raise OMGError(f"{path}: {key!r} is {tuple(tensor.shape)} {tensor.dtype} in the checkpoint but "
                           f"{described} in the model; resume with the model the run was saved with")


def _some(keys: list[str], shown: int = 5) -> str:
    more = f" (+{len(keys) - shown} more)" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
