"""The lazily built fused extension of the metric kernels (one module for the whole family)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from omg_core.ext_build import load_extension

EXTENSION_NAME = "omg_eval_kernels_v6"
ENV_VAR = "OMG_EVAL_BACKEND"
_CSRC = Path(__file__).resolve().parent / "csrc"


def fused_kernels() -> ModuleType | None:
    """The compiled kernels, or None when ``OMG_EVAL_BACKEND=torch`` or no compiler (then one warning).

    Raises:
      omg_core.ext_build.ExtensionBuildError: when ``OMG_EVAL_BACKEND=fused`` and the build fails.
    """
    return load_extension(
        EXTENSION_NAME,
        [_CSRC / "eval_kernels.cpp"],
        [_CSRC / "eval_kernels_cuda.cu"],
        env_var=ENV_VAR,
    )
