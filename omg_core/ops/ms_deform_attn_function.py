"""The fused multi-scale deformable attention kernel: lazy loading of the C++/CUDA extension and its autograd Function.

The extension (``csrc/ms_deform_attn_*``) is compiled on first use through :func:`omg_common.ext_build.load_extension`,
so a machine without a compiler never pays for it and the dispatcher in :mod:`omg_core.ops.ms_deform_attn` falls back
to the reference.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch.autograd.function import FunctionCtx, once_differentiable

from omg_common.ext_build import ExtensionSpec, load_extension, register_extension

# Bump the suffix whenever the kernel's interface changes, so no stale build is ever imported.
EXTENSION_NAME = "omg_msda_v2"
BACKEND_ENV_VAR = "OMG_MSDA_BACKEND"

_CSRC_DIR = Path(__file__).resolve().parent / "csrc"
CPP_SOURCES = (_CSRC_DIR / "ms_deform_attn_cpu.cpp", _CSRC_DIR / "ms_deform_attn_bindings.cpp")
CUDA_SOURCES = (_CSRC_DIR / "ms_deform_attn_cuda.cu",)
SPEC = register_extension(
    ExtensionSpec(
        name=EXTENSION_NAME,
        cpp_sources=CPP_SOURCES,
        cuda_sources=CUDA_SOURCES,
        env_var=BACKEND_ENV_VAR,
        title="the fused multi-scale deformable attention kernel",
        skip_value="reference",
        build_seconds=35,
    )
)


def load_fused_extension() -> ModuleType | None:
    """Build (once, cached) and return the fused extension, or ``None`` when the reference should be used.

    Returns:
      The extension module with ``forward``, ``backward`` and ``built_with_cuda``; ``None`` when
      ``OMG_MSDA_BACKEND=reference`` or when no compiler is available (one warning).

    Raises:
      omg_common.ext_build.ExtensionBuildError: ``OMG_MSDA_BACKEND=fused`` and the build is impossible or failed.
    """
    return load_extension(SPEC)


class MultiScaleDeformableAttentionFunction(torch.autograd.Function):
    """Autograd wrapper of the fused kernel; gradients flow to value, sampling locations and attention weights.

    Inputs must already be validated and contiguous (see :func:`omg_core.ops.multi_scale_deformable_attention`).
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        extension: ModuleType,
        value: torch.Tensor,  # B x S x heads x C
        spatial_shapes: torch.Tensor,  # L x 2 int64
        level_start_index: torch.Tensor,  # L int64
        sampling_locations: torch.Tensor,  # B x Q x heads x L x P x 2
        attention_weights: torch.Tensor,  # B x Q x heads x L x P
    ) -> torch.Tensor:
        ctx.extension = extension  # type: ignore[attr-defined]
        ctx.save_for_backward(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
        # B x Q x heads*C
        return extension.forward(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        saved = ctx.saved_tensors
        grad_value, grad_locations, grad_weights = ctx.extension.backward(*saved, grad_output.contiguous())
        # One entry per forward input: extension, value, spatial_shapes, level_start_index, locations, weights.
        return None, grad_value, None, None, grad_locations, grad_weights
