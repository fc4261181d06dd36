"""Lazy, cached building of the project's fused C++/CUDA kernels through ``torch.utils.cpp_extension``.

Every fused op in OMG (deformable attention in ``omg_core.ops``, metric kernels in ``omg_eval``) declares itself once
with :func:`register_extension` and is loaded through :func:`load_extension`, so the policy is the same everywhere:

* the extension is compiled on first use only and reused afterwards; the first build says on stderr what is being
  compiled, that it happens once per environment, about how long it takes and how to skip it, then how long it took
  (loading a finished build prints nothing);
* each build lives in its own directory under torch's extension root (``TORCH_EXTENSIONS_DIR``, else torch's default
  cache), named after the extension and a hash of everything the binary depends on: the sources and the local headers
  they include, the flags, the torch version and install path, the Python version (see :func:`build_key`). Two
  environments sharing the cache therefore never rebuild each other's kernels or wait on each other's build lock,
  and an unchanged environment loads its build without compiling;
* ``.cu`` sources join the build only when CUDA is usable (``torch.cuda.is_available()`` and ``nvcc`` found);
* when no compiler is available or the build fails, callers get ``None`` and one warning per extension, and fall
  back to their pure-PyTorch reference;
* an environment variable per op family (for example ``OMG_MSDA_BACKEND`` or ``OMG_EVAL_BACKEND``) forces a backend:
  forcing ``fused`` turns a build failure into an error instead of a fallback.

``omg doctor`` (:mod:`omg_core.doctor`) lists every registered extension, its build directory and the backend each
path will use, without building anything.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import platform
import re
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from omg_common.errors import OMGError

Backend = Literal["fused", "reference"]

#: Modules that declare the project's fused extensions (each calls :func:`register_extension` when imported).
EXTENSION_MODULES = (
    "omg_core.ops.ms_deform_attn_function",
    "omg_eval.kernels._extension",
    "omg_eval.kernels.video_extension",
)

_build_lock = threading.Lock()


class ExtensionBuildError(OMGError, RuntimeError):
    """A fused kernel was forced (``<ENV>=fused``) but could not be built or loaded."""


@dataclass(frozen=True)
class ExtensionSpec:
    """What a fused extension is made of and how users reach its fallback.

    Attributes:
      name: the extension module name (a version suffix is not needed for correctness: the build directory is keyed
        by the source contents; it still names the interface generation).
      cpp_sources: C++ sources, always compiled (they hold the CPU kernels and the Python bindings).
      cuda_sources: ``.cu`` sources, compiled only where CUDA is usable; the C++ side must compile without them
        (guard CUDA dispatch with ``#ifdef WITH_CUDA``, which is defined when they are added).
      env_var: the override variable of this op family (see :func:`requested_backend`).
      extra_cflags: additional compiler flags for the C++ sources.
      title: what the extension is, for people ("the fused evaluation kernels").
      skip_value: the value of ``env_var`` that selects the pure-PyTorch path, as users of this family spell it.
      build_seconds: a rough C++-only build time on two cores, for the first-use message.
    """

    name: str
    cpp_sources: tuple[Path, ...]
    cuda_sources: tuple[Path, ...] = ()
    env_var: str = ""
    extra_cflags: tuple[str, ...] = ()
    title: str = ""
    skip_value: str = "reference"
    build_seconds: int = 60

    def load(self) -> ModuleType | None:
        """:func:`load_extension` of this spec."""
        return load_extension(self)


_registry: dict[str, ExtensionSpec] = {}


def register_extension(spec: ExtensionSpec) -> ExtensionSpec:
    """Declare a fused extension of the project (so ``omg doctor`` lists it); returns ``spec``."""
    _registry[spec.name] = spec
    return spec


def project_extensions() -> list[ExtensionSpec]:
    """Every extension the project declares: the modules of :data:`EXTENSION_MODULES` are imported (which registers
    them; torch may be imported, nothing is built); sorted by name."""
    for module in EXTENSION_MODULES:
        importlib.import_module(module)
    return sorted(_registry.values(), key=lambda spec: spec.name)


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


def compiler_path() -> str | None:
    """The C++ compiler torch's cpp_extension will drive (``$CXX``, else ``c++``, ``g++``, ``clang++``), or None."""
    for cxx in (os.environ.get("CXX", "c++"), "g++", "clang++"):
        found = shutil.which(cxx)
        if found:
            return found
    return None


def compiler_available() -> bool:
    """Whether a C++ compiler that torch's cpp_extension can drive is on PATH."""
    return compiler_path() is not None


def ninja_available() -> bool:
    """Whether ``ninja``, which torch's cpp_extension builds with, is on PATH."""
    return shutil.which("ninja") is not None


def _cpp_extension() -> ModuleType:
    """``torch.utils.cpp_extension``, imported without its "No CUDA runtime is found" log line: on a machine with the
    CUDA toolkit but no GPU that line is printed by every command that loads a kernel, and says nothing actionable
    (the CUDA sources are simply left out of the build)."""
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    import torch.utils.cpp_extension

    return torch.utils.cpp_extension


def cuda_home() -> str | None:
    """The CUDA toolkit torch's cpp_extension found (``CUDA_HOME``), or None."""
    return _cpp_extension().CUDA_HOME


def cuda_build_available() -> bool:
    import torch

    return bool(torch.cuda.is_available() and cuda_home() is not None)


def extensions_root() -> Path:
    """Where builds live: ``TORCH_EXTENSIONS_DIR``, else torch's default extension cache."""
    configured = os.environ.get("TORCH_EXTENSIONS_DIR")
    if configured:
        return Path(configured)
    return Path(_cpp_extension().get_default_build_root())


def _torch_install_path() -> str:
    import torch

    return str(Path(torch.__file__).resolve().parent)


def environment_fingerprint(with_cuda: bool = False) -> dict[str, str]:
    """What, besides the sources and flags, a compiled extension depends on: the torch build and where it is
    installed (its headers and libraries), the Python version and ABI, the machine, the compiler choice; with CUDA
    also the toolkit and the architecture list."""
    import torch

    fingerprint = {
        "torch": torch.__version__,
        "torch_git": str(getattr(torch.version, "git_version", "")),
        "torch_cuda": str(torch.version.cuda),
        "torch_path": _torch_install_path(),
        "python": sys.version,
        "python_abi": f"{sys.implementation.cache_tag}{getattr(sys, 'abiflags', '')}",
        "machine": platform.machine(),
        "cxx": os.environ.get("CXX", ""),
    }
    if with_cuda:
        fingerprint["cuda_home"] = str(cuda_home())
        fingerprint["cuda_arch_list"] = os.environ.get("TORCH_CUDA_ARCH_LIST", "")
    return fingerprint


_LOCAL_INCLUDE = re.compile(rb'^\s*#\s*include\s*"([^"]+)"', re.MULTILINE)


def source_files(sources: Sequence[str | Path]) -> list[Path]:
    """The sources and, recursively, the local headers they ``#include "..."`` (resolved next to the includer)."""
    seen: dict[Path, None] = {}
    pending = [Path(s).resolve() for s in sources]
    while pending:
        path = pending.pop(0)
        if path in seen:
            continue
        seen[path] = None
        try:
            text = path.read_bytes()
        except OSError:
            continue  # a missing source: the build reports it
        for included in _LOCAL_INCLUDE.findall(text):
            candidate = (path.parent / included.decode(errors="replace")).resolve()
            if candidate.is_file():
                pending.append(candidate)
    return list(seen)


def build_key(
    name: str,
    sources: Sequence[str | Path],
    cflags: Sequence[str],
    cuda_cflags: Sequence[str] | None,
    with_cuda: bool,
) -> str:
    """The hex SHA-256 that names a build directory: the extension name, every source and local header (path and
    contents), the C++ and CUDA flags, and :func:`environment_fingerprint`."""
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            {
                "name": name,
                "cflags": list(cflags),
                "cuda_cflags": list(cuda_cflags or ()),
                "with_cuda": with_cuda,
                "environment": environment_fingerprint(with_cuda),
            },
            sort_keys=True,
        ).encode()
    )
    for path in source_files(sources):
        digest.update(b"\0" + str(path).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<missing>")
    return digest.hexdigest()


@dataclass(frozen=True)
class BuildPlan:
    """How :func:`load_extension` would build ``spec`` in this environment (computing it builds nothing)."""

    spec: ExtensionSpec
    sources: tuple[str, ...]
    with_cuda: bool
    cflags: tuple[str, ...]
    cuda_cflags: tuple[str, ...] | None
    key: str
    directory: Path

    @property
    def library(self) -> Path:
        """The compiled module torch loads (``<directory>/<name>.so``)."""
        suffix = ".pyd" if sys.platform == "win32" else ".so"
        return self.directory / f"{self.spec.name}{suffix}"

    @property
    def built(self) -> bool:
        return self.library.is_file()


def plan_build(spec: ExtensionSpec) -> BuildPlan:
    """The sources, flags and keyed build directory of ``spec`` here (imports torch; builds and creates nothing)."""
    with_cuda = bool(spec.cuda_sources) and cuda_build_available()
    sources = tuple(str(p) for p in (*spec.cpp_sources, *(spec.cuda_sources if with_cuda else ())))
    cflags = ("-O3", *spec.extra_cflags, "-fopenmp", *(["-DWITH_CUDA"] if with_cuda else []))
    cuda_cflags = ("-O3",) if with_cuda else None
    key = build_key(spec.name, sources, cflags, cuda_cflags, with_cuda)
    return BuildPlan(spec, sources, with_cuda, cflags, cuda_cflags, key, extensions_root() / f"{spec.name}-{key[:16]}")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


def _say(line: str) -> None:
    """One status line on stderr (the ``omg`` commands' output stays clean; rich progress bars print it above)."""
    sys.stderr.write(f"omg: {line}\n")
    sys.stderr.flush()


def _announce_build(plan: BuildPlan) -> None:
    spec = plan.spec
    seconds = spec.build_seconds
    estimate = f"{seconds} s" if seconds < 90 else f"{round(seconds / 60)} min"
    cuda = " plus several minutes for the CUDA sources" if plan.with_cuda else ""
    skip = f"; set {spec.env_var}={spec.skip_value} to skip it (pure-PyTorch path: same results, slower)"
    _say(
        f"compiling {spec.title or 'the fused kernels'} ({spec.name}), once per environment: about {estimate} on 2 "
        f"cores{cuda}, reused from {plan.directory} afterwards{skip if spec.env_var else ''}"
    )


_loaded: dict[str, ModuleType] = {}  # build key -> module loaded in this process
_failed: dict[str, str] = {}  # build key -> why its build failed in this process


def _build_and_import(plan: BuildPlan) -> ModuleType:
    """Compile (when this environment has no build yet, saying so on stderr) and import ``plan``'s module."""
    module = _loaded.get(plan.key)
    if module is not None:
        return module
    first_build = not plan.built
    announce = first_build and os.environ.get("LOCAL_RANK", "0") == "0"  # one message per machine under torchrun
    if announce:
        _announce_build(plan)
    plan.directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    module = _cpp_extension().load(
        name=plan.spec.name,
        sources=list(plan.sources),
        extra_cflags=list(plan.cflags),
        extra_cuda_cflags=list(plan.cuda_cflags) if plan.cuda_cflags is not None else None,
        with_cuda=plan.with_cuda,
        build_directory=str(plan.directory),
        verbose=bool(os.environ.get("OMG_VERBOSE_BUILD")),
    )
    if announce:
        _say(f"built {plan.spec.name} in {_duration(time.perf_counter() - started)}")
    _loaded[plan.key] = module
    return module


def _build_or_problem(spec: ExtensionSpec) -> ModuleType | str:
    """The loaded module, or why it cannot be had; a build that failed in this process is not retried."""
    try:
        plan = plan_build(spec)
    except Exception as exc:  # an unreadable source or a broken torch install: fall back as for a failed build
        return f"preparing the build of {spec.name} failed: {type(exc).__name__}: {exc}"
    if plan.key not in _failed:
        try:
            return _build_and_import(plan)
        except Exception as exc:  # a failed build must degrade to the reference, not crash a user's run
            _failed[plan.key] = f"{type(exc).__name__}: {exc}"
    return f"building {spec.name} failed: {_failed[plan.key]}"


_warned: set[tuple[str, str]] = set()


def load_extension(
    spec: ExtensionSpec | str,
    cpp_sources: Sequence[Path] = (),
    cuda_sources: Sequence[Path] = (),
    *,
    env_var: str | None = None,
    extra_cflags: Sequence[str] = (),
) -> ModuleType | None:
    """Build (once per environment) and import a fused extension, or return ``None`` to request the reference.

    Arguments:
      spec: the extension (see :class:`ExtensionSpec`), or its name with the sources and ``env_var`` given here
        (an unregistered extension).
      cpp_sources, cuda_sources, env_var, extra_cflags: as the fields of :class:`ExtensionSpec`, when ``spec`` is a
        name.

    Returns:
      The loaded module, or ``None`` when the reference backend is requested or the build is impossible (one warning).

    Raises:
      ExtensionBuildError: when ``env_var`` forces ``fused`` and building fails.
    """
    if not isinstance(spec, ExtensionSpec):
        if env_var is None:
            raise TypeError("load_extension(name, ...) needs env_var=")
        spec = ExtensionSpec(
            name=spec,
            cpp_sources=tuple(cpp_sources),
            cuda_sources=tuple(cuda_sources),
            env_var=env_var,
            extra_cflags=tuple(extra_cflags),
        )
    backend = requested_backend(spec.env_var)
    if backend == "reference":
        return None
    problem: str | None = None
    if not compiler_available():
        problem = "no C++ compiler found on PATH (install g++ or set CXX)"
    elif not ninja_available():
        problem = "ninja, which torch builds extensions with, is not on PATH (pip install ninja)"
    else:
        with _build_lock:
            loaded = _build_or_problem(spec)
        if isinstance(loaded, ModuleType):
            return loaded
        problem = loaded
    fall_back_to_reference(problem, env_var=spec.env_var, what=spec.name, forced=backend == "fused")
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


def describe_backend(spec: ExtensionSpec, plan: BuildPlan | None = None) -> dict[str, Any]:
    """Which backend a call of ``spec``'s family would use now, and why (for ``omg doctor``; builds nothing).

    Returns ``{"backend": "fused" | "reference" | "error", "reason": str}``.
    """
    try:
        backend = requested_backend(spec.env_var)
    except ValueError as exc:
        return {"backend": "error", "reason": str(exc)}
    if backend == "reference":
        return {"backend": "reference", "reason": f"{spec.env_var}={os.environ.get(spec.env_var, '')}"}
    problem = None
    if not compiler_available():
        problem = "no C++ compiler on PATH"
    elif not ninja_available():
        problem = "ninja not on PATH"
    if problem is not None:
        if backend == "fused":
            return {"backend": "error", "reason": f"{spec.env_var}=fused but {problem}"}
        return {"backend": "reference", "reason": f"{problem} (fallback)"}
    if plan is not None and plan.built:
        return {"backend": "fused", "reason": "built"}
    return {"backend": "fused", "reason": f"compiled on first use (~{_duration(spec.build_seconds)})"}
