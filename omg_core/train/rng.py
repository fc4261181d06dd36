"""Capture and restore every random-number generator a training step may draw from, as plain JSON.

A resumed run is bit-exact only if each generator continues from exactly where it stopped: Python's `random`, NumPy's
global generator, torch's CPU generator, every CUDA device's generator, and any generator object the loop owns
(a `torch.Generator`, a `numpy.random.Generator` or a `random.Random`, passed by name). The state is JSON (lists,
strings, numbers) so a checkpoint never needs pickle: byte states are base64, NumPy arrays are typed lists.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

#: A generator object a caller can pass by name.
Generator = torch.Generator | np.random.Generator | random.Random

_VERSION = 1


def capture_rng_state(generators: Mapping[str, Generator] | None = None) -> dict[str, Any]:
    """Every generator's state, JSON-able.

    Arguments:
      generators: generator objects the caller owns, by name (restored by the same names).

    Returns:
      {"version", "python", "numpy", "torch", "cuda" (one state per device, or None without CUDA), "generators"}.
    """
    version, internal, gauss_next = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    cuda = None
    if torch.cuda.is_available():
        # the states live on the host (seed and offset), so reading them opens no context on other devices
        cuda = [_bytes_to_text(state) for state in torch.cuda.get_rng_state_all()]
    return {
        "version": _VERSION,
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "numpy": _numpy_to_json(numpy_state),
        "torch": _bytes_to_text(torch.get_rng_state()),
        "cuda": cuda,
        "generators": {name: _capture_generator(name, generator) for name, generator in (generators or {}).items()},
    }


def restore_rng_state(state: Mapping[str, Any], generators: Mapping[str, Generator] | None = None) -> None:
    """Puts every generator back where `capture_rng_state` found it.

    Arguments:
      state: a `capture_rng_state` result (after a JSON round trip or not).
      generators: generator objects to restore, by the names they were captured under; each name must be in the
        state (a saved generator that is not passed here is left alone).

    CUDA states are restored when CUDA is available: on min(saved, present) devices, so a run moved to a machine with
    another GPU count still loads (it is then no longer bit-exact, which nothing could make it).
    """
    if state.get("version") != _VERSION:
        raise ValueError(f"RNG state version {state.get('version')!r} is not {_VERSION}")
    saved = state.get("generators", {})
    missing = [name for name in (generators or {}) if name not in saved]
    if missing:
        raise KeyError(f"no saved state for generator(s) {', '.join(missing)}; saved: {', '.join(saved) or 'none'}")
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss_next"]))
    np.random.set_state(_numpy_from_json(state["numpy"]))
    torch.set_rng_state(_text_to_bytes(state["torch"]))
    if state.get("cuda") is not None and torch.cuda.is_available():
        for device, text in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(_text_to_bytes(text), device)
    for name, generator in (generators or {}).items():
        _restore_generator(name, generator, saved[name])


def _capture_generator(name: str, generator: Generator) -> dict[str, Any]:
    if isinstance(generator, torch.Generator):
        return {"kind": "torch", "device": str(generator.device), "state": _bytes_to_text(generator.get_state())}
    if isinstance(generator, np.random.Generator):
        return {"kind": "numpy", "state": _numpy_to_json(generator.bit_generator.state)}
    if isinstance(generator, random.Random):
        version, internal, gauss_next = generator.getstate()
        return {"kind": "python", "state": {"version": version, "internal": list(internal), "gauss_next": gauss_next}}
    raise TypeError(f"generator {name!r} is a {type(generator).__name__}; expected torch.Generator, "
                    "numpy.random.Generator or random.Random")


def _restore_generator(name: str, generator: Generator, saved: Mapping[str, Any]) -> None:
    kinds = {"torch": torch.Generator, "numpy": np.random.Generator, "python": random.Random}
    if not isinstance(generator, kinds.get(saved["kind"], ())):
        raise TypeError(f"generator {name!r} was saved as a {saved['kind']} generator but a "
                        f"{type(generator).__name__} was passed")
    if saved["kind"] == "torch":
        generator.set_state(_text_to_bytes(saved["state"]))
    elif saved["kind"] == "numpy":
        state = _numpy_from_json(saved["state"])
        current = generator.bit_generator.state["bit_generator"]
        if state["bit_generator"] != current:
            raise TypeError(f"generator {name!r} was saved with bit generator {state['bit_generator']} but uses "
                            f"{current}")
        generator.bit_generator.state = state
    else:
        python = saved["state"]
        generator.setstate((python["version"], tuple(python["internal"]), python["gauss_next"]))


def _bytes_to_text(state: torch.Tensor) -> str:
    return base64.b64encode(state.cpu().numpy().tobytes()).decode("ascii")


def _text_to_bytes(text: str) -> torch.Tensor:
    # a writable copy: torch warns about (and must not alias) the immutable bytes object
    return torch.from_numpy(np.frombuffer(base64.b64decode(text), dtype=np.uint8).copy())


def _numpy_to_json(value: Any) -> Any:
    """NumPy bit-generator states hold arrays (MT19937 keys, Philox counters): typed lists, exact for uint32/64."""
    if isinstance(value, dict):
        return {key: _numpy_to_json(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return {"ndarray": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _numpy_from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"ndarray", "dtype"}:
            return np.asarray(value["ndarray"], dtype=np.dtype(value["dtype"]))
        return {key: _numpy_from_json(item) for key, item in value.items()}
    return value
