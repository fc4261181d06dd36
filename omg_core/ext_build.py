"""Lazy, cached building of the project's fused C++/CUDA kernels through ``torch.utils.cpp_extension``.

Every fused op in OMG (deformable attention in ``omg_core.ops``, metric kernels in ``omg_eval``) goes through
:func:`load_extension`, so the policy is the same everywhere:

* the extension is compiled on first use only, into torch's extension cache (``TORCH_EXTENSIONS_DIR``), and reused;
* ``.cu`` sources join the build only when CUDA is usable (``torch.cuda.is_available()`` and ``nvcc`` found);
* when no compiler is available or the build fails, callers get ``None`` and one warning per extension, and fall
  back to their pure-PyTorch reference;
* an environment variable per op family (for example ``OMG_MSDA_BACKEND`` or ``OMG_EVAL_BACKEND``) forces a backend:
  forcing ``fused`` turns a build failure into an error instead of a fallback.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Literal

from omg_core.errors import OMGError

Backend = Literal["fused", "reference"]

_build_lock = threading.Lock()


class ExtensionBuildError(OMGError, RuntimeError):
    """A fused kernel was forced (``<ENV>=fused``) but could not be built or loaded."""


def requested_backend(env_var: str, reference_names: Sequence[str] = ("reference", "torch")) -> Backend | None:
    """Read a backend override from ``env_var``.

    Returns ``"fused"``, ``"reference"``, or ``None`` when unset/``auto``. Any other value is an error that lists the
    accepted spellings, because a typo silently selecting the slow path would go unnoticed.
    """
    raw = os.environ.get(env_var, "").strip().lower()
    if raw in ("", "auto"):
        return None
    if raw == "fused":
        return "fused"
    if raw in reference_names:
        return "reference"
    accepted = ", ".join(["auto", "fused", *reference_names])
    raise ValueError(f"{env_var}={os.environ[env_var]!r} is not a backend; use one of: {accepted}")


def compiler_available() -> bool:
    """Whether a C++ compiler that torch's cpp_extension can drive is on PATH."""
    return any(shutil.which(cxx) for cxx in (os.environ.get("CXX", "c++"), "g++", "clang++"))


def _cpp_extension() -> ModuleType:
    """``torch.utils.cpp_extension``, imported without its "No CUDA runtime is found" log line: on a machine with the
    CUDA toolkit but no GPU that line is printed by every command that loads a kernel, and says nothing actionable
    (the CUDA sources are simply left out of the build)."""
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    import torch.utils.cpp_extension

    return torch.utils.cpp_extension


def cuda_build_available() -> bool:
    import torch

    return bool(torch.cuda.is_available() and _cpp_extension().CUDA_HOME is not None)


@functools.cache
def _load_cached(name: str, sources: tuple[str, ...], with_cuda: bool, extra_cflags: tuple[str, ...]) -> ModuleType:
    cflags = ["-O3", *extra_cflags]
    return _cpp_extension().load(
        name=name,
        sources=list(sources),
        extra_cflags=cflags,
        extra_cuda_cflags=["-O3"] if with_cuda else None,
        with_cuda=with_cuda,
        verbose=bool(os.environ.get("OMG_VERBOSE_BUILD")),
    )


_warned: set[tuple[str, str]] = set()


def load_extension(
    name: str,
    cpp_sources: Sequence[Path],
    cuda_sources: Sequence[Path] = (),
    *,
    env_var: str,
    extra_cflags: Sequence[str] = (),
) -> ModuleType | None:
    """Build (once) and import a fused extension, or return ``None`` to request the reference fallback.

    Arguments:
      name: the extension module name; include a version suffix so a source change never reuses a stale build.
      cpp_sources: C++ sources, always compiled (they hold the CPU kernels and the Python bindings).
      cuda_sources: ``.cu`` sources, compiled only where CUDA is usable; the C++ side must compile without them
        (guard CUDA dispatch with ``#ifdef WITH_CUDA``, which this function defines when it adds them).
      env_var: the override variable of this op family (see :func:`requested_backend`).
      extra_cflags: additional compiler flags for the C++ sources.

    Returns:
      The loaded module, or ``None`` when the reference backend is requested or the build is impossible (one warning).

    Raises:
      ExtensionBuildError: when ``env_var`` forces ``fused`` and building fails.
    """
    backend = requested_backend(env_var)
    if backend == "reference":
        return None
    with_cuda = bool(cuda_sources) and cuda_build_available()
    sources = [str(p) for p in cpp_sources] + ([str(p) for p in cuda_sources] if with_cuda else [])
    cflags = (*extra_cflags, "-fopenmp", *(["-DWITH_CUDA"] if with_cuda else []))
    problem: str | None = None
    if not compiler_available():
        problem = "no C++ compiler found on PATH (install g++ or set CXX)"
    else:
        try:
            with _build_lock:
                return _load_cached(name, tuple(sources), with_cuda, tuple(cflags))
        except Exception as exc:  # a failed build must degrade to the reference, not crash a user's run
            problem = f"building {name} failed: {type(exc).__name__}: {exc}"
    fall_back_to_reference(problem, env_var=env_var, what=name, forced=backend == "fused")
    return None


def fall_back_to_reference(problem: str, *, env_var: str, what: str, forced: bool, stacklevel: int = 3) -> None:
    """Decide what happens when a fused kernel cannot serve a call: an error if ``env_var`` forced ``fused``,
    otherwise one warning per (op, problem) and the caller runs its pure-PyTorch reference."""
    if forced:
        raise ExtensionBuildError(
            f"{env_var}=fused but {what} cannot run fused: {problem}; unset it to allow the reference"
        )
    if (what, problem) in _warned:
        return
    _warned.add((what, problem))
    warnings.warn(
        f"{problem}; using the pure-PyTorch reference for {what} (slower, same results). "
        f"Set {env_var}=reference to silence this warning.",
        RuntimeWarning,
        stacklevel=stacklevel,
    )
