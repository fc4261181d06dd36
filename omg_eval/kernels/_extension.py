"""The lazily built fused extension of the metric kernels (one module for the whole family)."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

from omg_common.ext_build import ExtensionSpec, load_extension, register_extension

EXTENSION_NAME = "omg_eval_kernels_v18"
ENV_VAR = "OMG_EVAL_BACKEND"
_CSRC = Path(__file__).resolve().parent / "csrc"


_loaded: dict[str, ModuleType | None] = {}


def fused_kernels() -> ModuleType | None:
    """The compiled kernels, or None when ``OMG_EVAL_BACKEND=torch`` or no compiler (then one warning).

    Raises:
      omg_common.ext_build.ExtensionBuildError: when ``OMG_EVAL_BACKEND=fused`` and the build fails.
    """
    # remembered per value of the override, so per-image callers do not re-probe the compiler every time
    setting = os.environ.get(ENV_VAR, "")
    if setting not in _loaded:
        _loaded[setting] = _load()
    return _loaded[setting]


SPEC = register_extension(
    ExtensionSpec(
        name=EXTENSION_NAME,
        cpp_sources=(_CSRC / "eval_kernels.cpp",),
        cuda_sources=(_CSRC / "eval_kernels_cuda.cu",),
        env_var=ENV_VAR,
        title="the fused image-metric kernels",
        skip_value="torch",
        build_seconds=40,
    )
)


def _load() -> ModuleType | None:
    return load_extension(SPEC)
