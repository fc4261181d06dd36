"""Lazy loader of the fused video-metric extension (track IoU counting and DAVIS boundary matching).

One extension serves the whole video-metric family so that it compiles once (about a minute on two cores); every
caller asks :func:`video_extension` and falls back to its PyTorch formulation when it returns ``None``.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path
from types import ModuleType

from omg_common.ext_build import ExtensionSpec, load_extension, register_extension

EXTENSION_NAME = "omg_video_eval_v5"
_CSRC = Path(__file__).resolve().parent / "csrc"


def video_extension() -> ModuleType | None:
    """The compiled ``omg_video_eval`` module, or ``None`` for the PyTorch fallback (``OMG_EVAL_BACKEND=torch``, no
    compiler, failed build; one warning). Raises when ``OMG_EVAL_BACKEND=fused`` and the build is impossible."""
    # Metrics ask once per video; the answer only changes with the override variable, so it is memoised on it.
    return _video_extension_for(os.environ.get("OMG_EVAL_BACKEND", ""))


@functools.cache
def _video_extension_for(backend_override: str) -> ModuleType | None:
    del backend_override  # only the cache key; load_extension reads the variable itself
    return load_extension(SPEC)


SPEC = register_extension(
    ExtensionSpec(
        name=EXTENSION_NAME,
        cpp_sources=(_CSRC / "video_eval.cpp",),
        cuda_sources=(_CSRC / "video_eval_cuda.cu",),
        env_var="OMG_EVAL_BACKEND",
        # Hardware popcount is on every x86-64 CPU made since 2008; without the flag gcc emits a slow bit-twiddling
        # loop.
        extra_cflags=("-mpopcnt",) if platform.machine() in ("x86_64", "AMD64") else (),
        title="the fused video-metric kernels",
        skip_value="torch",
        build_seconds=40,
    )
)
