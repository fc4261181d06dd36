"""Multi-scale deformable attention: one entry point that validates inputs and picks the fused kernel or the reference.

Backend choice, in order: ``OMG_MSDA_BACKEND=reference`` -> reference; otherwise the fused C++/CUDA kernel, built
lazily on first use. Without a compiler (or when the build fails) the reference is used with one warning, unless
``OMG_MSDA_BACKEND=fused`` forces the kernel, which then raises instead.
"""

from __future__ import annotations

import functools
from types import ModuleType

import torch

from omg_common.ext_build import fall_back_to_reference, requested_backend
from omg_core.ops.ms_deform_attn_function import (
    BACKEND_ENV_VAR,
    MultiScaleDeformableAttentionFunction,
    load_fused_extension,
)
from omg_core.ops.ms_deform_attn_reference import ms_deform_attn_reference

# Dtypes the fused kernels are compiled for; other floating inputs (float16, bfloat16, e.g. under autocast) are
# computed in float32 and the result cast back, which is also more accurate than sampling in half precision.
FUSED_DTYPES = (torch.float32, torch.float64)


@functools.cache
def cached_fused_extension() -> ModuleType | None:
    """The fused extension as first loaded in this process (``None``: fallback); call ``cache_clear()`` to retry.

    Cached here because :func:`load_fused_extension` probes the compiler on every call, which would cost more than
    the kernel itself on small inputs.
    """
    return load_fused_extension()


def multi_scale_deformable_attention(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention (Deformable-DETR), dispatched to the fastest available backend.

    Arguments:
      value: (B, S, heads, C), all levels flattened and concatenated (S = sum of H_l * W_l).
      spatial_shapes: (L, 2) integer (H_l, W_l) per level.
      level_start_index: (L,) integer offset of each level in S (the exclusive cumulative sum of H_l * W_l).
      sampling_locations: (B, Q, heads, L, P, 2) normalised (x, y); [0, 1] covers the map, points outside it
        sample zeros (grid_sample's ``padding_mode="zeros"``, ``align_corners=False``).
      attention_weights: (B, Q, heads, L, P).

    Returns:
      (B, Q, heads * C).

    Raises:
      TypeError: when an input is not a tensor.
      ValueError: on inconsistent shapes, dtypes or devices (the message names the fix).
      omg_common.ext_build.ExtensionBuildError: ``OMG_MSDA_BACKEND=fused`` but the fused kernel cannot serve the call.
    """
    spatial_shapes, level_start_index = _validate_inputs(
        value, spatial_shapes, level_start_index, sampling_locations, attention_weights
    )
    value = value.contiguous()
    sampling_locations = sampling_locations.contiguous()
    attention_weights = attention_weights.contiguous()
    extension = _fused_extension_for(value)
    if extension is None:
        return ms_deform_attn_reference(value, spatial_shapes, sampling_locations, attention_weights)
    if value.dtype in FUSED_DTYPES:
        return MultiScaleDeformableAttentionFunction.apply(
            extension, value, spatial_shapes, level_start_index, sampling_locations, attention_weights
        )
    output = MultiScaleDeformableAttentionFunction.apply(
        extension,
        value.float(),
        spatial_shapes,
        level_start_index,
        sampling_locations.float(),
        attention_weights.float(),
    )
    return output.to(value.dtype)


def _fused_extension_for(value: torch.Tensor) -> ModuleType | None:
    """The fused extension if it can serve ``value``'s device, else ``None`` (reference)."""
    backend = requested_backend(BACKEND_ENV_VAR)
    if backend == "reference":
        return None
    extension = cached_fused_extension()
    if extension is None and backend == "fused":
        extension = load_fused_extension()  # not cached: raises ExtensionBuildError naming why the build failed
    if extension is None:
        return None
    problem: str | None = None
    if value.device.type == "cuda" and not extension.built_with_cuda():
        problem = "the fused kernel was built without CUDA (no usable nvcc/GPU when it was compiled)"
    elif value.device.type not in ("cpu", "cuda"):
        problem = f"the fused kernel has no {value.device.type} implementation"
    if problem is None:
        return extension
    fall_back_to_reference(
        problem,
        env_var=BACKEND_ENV_VAR,
        what="multi-scale deformable attention",
        forced=backend == "fused",
        stacklevel=4,
    )
    return None


def _validate_inputs(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check every input against the others; return spatial_shapes and level_start_index as int64 on value's device.

    Raises:
      TypeError: when an input is not a tensor.
      ValueError: naming the offending input, what was expected and what was given.
    """
    named_inputs = {
        "value": value,
        "spatial_shapes": spatial_shapes,
        "level_start_index": level_start_index,
        "sampling_locations": sampling_locations,
        "attention_weights": attention_weights,
    }
    for name, given in named_inputs.items():
        if not isinstance(given, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(given).__name__}; wrap it with torch.as_tensor")
    if value.dim() != 4:
        raise ValueError(f"value must be (batch, S, heads, channels), got shape {tuple(value.shape)}")
    if sampling_locations.dim() != 6 or sampling_locations.shape[-1] != 2:
        raise ValueError(
            "sampling_locations must be (batch, queries, heads, levels, points, 2), "
            f"got shape {tuple(sampling_locations.shape)}"
        )
    if attention_weights.dim() != 5:
        raise ValueError(
            f"attention_weights must be (batch, queries, heads, levels, points), got shape {tuple(attention_weights.shape)}"
        )
    if spatial_shapes.dim() != 2 or spatial_shapes.shape[1] != 2:
        raise ValueError(
            f"spatial_shapes must be (levels, 2) holding (H, W) rows, got shape {tuple(spatial_shapes.shape)}"
        )
    for name, tensor in (("spatial_shapes", spatial_shapes), ("level_start_index", level_start_index)):
        if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
            raise ValueError(f"{name} must hold integers (int64), got {tensor.dtype}; convert it with .long()")
    if not value.is_floating_point():
        raise ValueError(f"value must be a floating-point tensor, got {value.dtype}")
    for name, tensor in (("sampling_locations", sampling_locations), ("attention_weights", attention_weights)):
        if tensor.dtype != value.dtype:
            raise ValueError(f"{name} is {tensor.dtype} but value is {value.dtype}; cast it with .to(value.dtype)")
        if tensor.device != value.device:
            raise ValueError(
                f"{name} is on {tensor.device} but value is on {value.device}; move it with .to(value.device)"
            )

    batch, total_positions, heads, _ = value.shape
    levels = spatial_shapes.shape[0]
    expected_locations = (batch, sampling_locations.shape[1], heads, levels, sampling_locations.shape[4], 2)
    if tuple(sampling_locations.shape) != expected_locations:
        raise ValueError(
            f"sampling_locations has shape {tuple(sampling_locations.shape)} but value (batch={batch}, heads={heads}) "
            f"and spatial_shapes (levels={levels}) require {expected_locations}"
        )
    expected_weights = expected_locations[:-1]
    if tuple(attention_weights.shape) != expected_weights:
        raise ValueError(
            f"attention_weights has shape {tuple(attention_weights.shape)}, expected {expected_weights} "
            "to match sampling_locations without its last (x, y) dimension"
        )
    if level_start_index.shape != (levels,):
        raise ValueError(
            f"level_start_index must have shape ({levels},) (one offset per level), got {tuple(level_start_index.shape)}"
        )

    shape_rows = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
    if any(h < 1 or w < 1 for h, w in shape_rows):
        raise ValueError(f"every level needs a positive height and width, got spatial_shapes {shape_rows}")
    sizes = [h * w for h, w in shape_rows]
    if sum(sizes) != total_positions:
        raise ValueError(
            f"value has S={total_positions} positions but spatial_shapes {shape_rows} sum to {sum(sizes)}; "
            "value must hold every level's H*W positions, concatenated in spatial_shapes order"
        )
    expected_starts = [sum(sizes[:level]) for level in range(levels)]
    if level_start_index.tolist() != expected_starts:
        raise ValueError(
            f"level_start_index {level_start_index.tolist()} does not match spatial_shapes {shape_rows}; "
            f"expected the exclusive cumulative sum of H*W, {expected_starts}"
        )
    as_index = {"dtype": torch.int64, "device": value.device}
    return spatial_shapes.to(**as_index).contiguous(), level_start_index.to(**as_index).contiguous()
