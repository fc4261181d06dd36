"""Fused multi-scale deformable attention vs the grid_sample reference: values, gradients, dispatch and errors."""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Iterator

import pytest
import torch

from omg_common import ext_build
from omg_core.ops import ms_deform_attn as dispatcher
from omg_core.ops.ms_deform_attn import multi_scale_deformable_attention
from omg_core.ops.ms_deform_attn_function import MultiScaleDeformableAttentionFunction, load_fused_extension
from omg_core.ops.ms_deform_attn_reference import ms_deform_attn_reference

FUSED_GRAD_FN = f"{MultiScaleDeformableAttentionFunction.__name__}Backward"


@dataclasses.dataclass(frozen=True)
class Case:
    """One input geometry; ``spread`` pushes sampling locations that far outside [0, 1] on each side."""

    level_shapes: tuple[tuple[int, int], ...]
    batch: int = 2
    queries: int = 6
    heads: int = 2
    channels: int = 4
    points: int = 3
    spread: float = 0.3


CASES = {
    # non-square levels of different aspect ratios, points partly outside the maps
    "non_square": Case(((7, 5), (3, 11))),
    # the degenerate attention of one level and one point per head
    "single_level_one_point": Case(((4, 6),), batch=1, queries=5, heads=3, channels=8, points=1),
    # the pixel decoder's layout in miniature: three levels, 4 points, 32 channels (a full warp on CUDA)
    "decoder_like": Case(((8, 8), (4, 4), (2, 2)), queries=10, heads=2, channels=32, points=4, spread=0.05),
    # one (batch, head) slice with enough work that the CPU backward splits the queries across threads (each split
    # writes its own grad_value copy, summed at the end)
    "one_slice": Case(((5, 3), (2, 2)), batch=1, queries=4100, heads=1, channels=64, points=4),
}


def make_inputs(case: Case, dtype: torch.dtype = torch.float32, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    spatial_shapes = torch.tensor(case.level_shapes, dtype=torch.int64)
    sizes = spatial_shapes.prod(1)
    level_start_index = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    levels = len(case.level_shapes)
    # B x S x heads x C
    value = torch.randn(case.batch, int(sizes.sum()), case.heads, case.channels, generator=generator, dtype=dtype)
    # B x Q x heads x L x P x 2, uniform over [-spread, 1 + spread]
    location_shape = (case.batch, case.queries, case.heads, levels, case.points, 2)
    sampling_locations = torch.rand(location_shape, generator=generator, dtype=dtype) * (1 + 2 * case.spread)
    sampling_locations -= case.spread
    # B x Q x heads x L x P, softmaxed over the L * P samples of a head as the model does
    logits = torch.randn(location_shape[:-3] + (levels * case.points,), generator=generator, dtype=dtype)
    attention_weights = logits.softmax(-1).view(location_shape[:-1])
    return {
        "value": value,
        "spatial_shapes": spatial_shapes,
        "level_start_index": level_start_index,
        "sampling_locations": sampling_locations,
        "attention_weights": attention_weights,
    }


def run_reference(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    return ms_deform_attn_reference(
        inputs["value"], inputs["spatial_shapes"], inputs["sampling_locations"], inputs["attention_weights"]
    )


def gradients(output: torch.Tensor, inputs: dict[str, torch.Tensor], seed: int = 1) -> list[torch.Tensor]:
    # drawn in float32 then cast: torch.randn's bfloat16 stream differs between torch builds and CPU vector paths
    upstream = torch.randn(output.shape, generator=torch.Generator().manual_seed(seed)).to(output.dtype)
    wrt = [inputs[name] for name in ("value", "sampling_locations", "attention_weights")]
    return list(torch.autograd.grad(output, wrt, upstream))


def with_grad(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    differentiable = ("value", "sampling_locations", "attention_weights")
    return {k: v.clone().requires_grad_(k in differentiable) for k, v in inputs.items()}


@pytest.fixture
def fused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the fused backend: a build failure is a test failure here, never a silent fallback."""
    monkeypatch.setenv("OMG_MSDA_BACKEND", "fused")
    assert load_fused_extension() is not None


@pytest.fixture(params=["best", "baseline"])
def cpu_kernels(request: pytest.FixtureRequest, fused: None) -> Iterator[str]:
    """Run a test with the CPU kernels the machine would pick (AVX2 where available) and with the SSE2 baseline."""
    extension = load_fused_extension()
    extension.select_cpu_kernels(baseline_only=request.param == "baseline")
    yield request.param
    extension.select_cpu_kernels(baseline_only=False)


@pytest.mark.parametrize("case_name", list(CASES))
def test_forward_matches_reference(cpu_kernels: str, case_name: str) -> None:
    inputs = with_grad(make_inputs(CASES[case_name]))
    output = multi_scale_deformable_attention(**inputs)
    assert type(output.grad_fn).__name__ == FUSED_GRAD_FN
    expected = run_reference(inputs)
    assert output.shape == expected.shape
    torch.testing.assert_close(output, expected, rtol=0, atol=1e-5)


def test_points_on_pixel_borders_match_reference(fused: None) -> None:
    """Locations exactly on the map edge, on pixel centres and exactly one pixel outside (the zero boundary)."""
    inputs = with_grad(make_inputs(CASES["non_square"], seed=7))
    widths_heights = inputs["spatial_shapes"].flip(-1).to(torch.float32)  # L x 2 as (W, H), matching (x, y)
    exact = torch.stack(
        [
            torch.zeros(2, 2),  # the top-left corner of the map: half a pixel before the first centre
            torch.ones(2, 2),  # the bottom-right corner
            0.5 / widths_heights,  # the first pixel centre
            -0.5 / widths_heights,  # one pixel before the first centre: nothing left to sample
            1 + 0.5 / widths_heights,  # one pixel past the last centre
            torch.full((2, 2), 0.5),
        ]
    )  # 6 x L x 2
    locations = inputs["sampling_locations"].detach().clone()
    picks = torch.randint(0, len(exact), locations.shape[:-1], generator=torch.Generator().manual_seed(0))
    locations = exact[picks, torch.arange(locations.shape[3]).view(1, 1, 1, -1, 1)]
    inputs["sampling_locations"] = locations.requires_grad_()
    output = multi_scale_deformable_attention(**inputs)
    torch.testing.assert_close(output, run_reference(inputs), rtol=0, atol=1e-5)
    fused_grads = gradients(output, inputs)
    reference_grads = gradients(run_reference(inputs), inputs)
    # Location gradients are left out: bilinear sampling has kinks exactly at these points, where either one-sided
    # derivative is a valid answer.
    for name, ours, theirs in zip(("value", "weights"), fused_grads[::2], reference_grads[::2]):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"grad {n}: {m}")


@pytest.mark.parametrize("case_name", list(CASES))
def test_gradients_match_reference(cpu_kernels: str, case_name: str) -> None:
    inputs = with_grad(make_inputs(CASES[case_name]))
    output = multi_scale_deformable_attention(**inputs)
    assert type(output.grad_fn).__name__ == FUSED_GRAD_FN
    fused_grads = gradients(output, inputs)
    reference_grads = gradients(run_reference(inputs), inputs)
    for name, ours, theirs in zip(("value", "locations", "weights"), fused_grads, reference_grads):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4, msg=lambda m, n=name: f"grad {n}: {m}")


@pytest.mark.parametrize("threads", [1, 3])
def test_backward_is_independent_of_thread_count(fused: None, threads: int) -> None:
    inputs = with_grad(make_inputs(CASES["one_slice"], dtype=torch.float64))
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        fused_grads = gradients(multi_scale_deformable_attention(**inputs), inputs)
    finally:
        torch.set_num_threads(previous)
    reference_grads = gradients(run_reference(inputs), inputs)
    for ours, theirs in zip(fused_grads, reference_grads):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


def test_gradcheck_double(cpu_kernels: str) -> None:
    case = Case(((3, 2), (2, 3)), batch=2, queries=3, heads=2, channels=3, points=2, spread=0.4)
    inputs = with_grad(make_inputs(case, dtype=torch.float64, seed=3))

    def attend(value: torch.Tensor, locations: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return multi_scale_deformable_attention(
            value, inputs["spatial_shapes"], inputs["level_start_index"], locations, weights
        )

    differentiable = (inputs["value"], inputs["sampling_locations"], inputs["attention_weights"])
    assert type(attend(*differentiable).grad_fn).__name__ == FUSED_GRAD_FN
    assert torch.autograd.gradcheck(attend, differentiable, eps=1e-6, atol=1e-6)


def test_points_outside_the_map_contribute_nothing(fused: None) -> None:
    inputs = with_grad(make_inputs(CASES["non_square"], seed=5))
    locations = inputs["sampling_locations"].detach().clone()
    # far outside in x, just outside in y (the last row's corners are all past the border), far out in both
    locations[:, :, :, 0, 0] = torch.tensor([-0.5, 0.5])
    locations[:, :, :, 1, 1] = torch.tensor([0.5, 1.0 + 0.5 / 3 + 1e-3])
    locations[:, :, :, 1, 2] = torch.tensor([3.0, -2.0])
    inputs["sampling_locations"] = locations.requires_grad_()
    output = multi_scale_deformable_attention(**inputs)
    # The same attention with those points' weights zeroed must give the same output.
    weights_without = inputs["attention_weights"].detach().clone()
    weights_without[:, :, :, 0, 0] = 0
    weights_without[:, :, :, 1, 1:] = 0
    torch.testing.assert_close(
        output, multi_scale_deformable_attention(**{**inputs, "attention_weights": weights_without})
    )
    torch.testing.assert_close(output, run_reference(inputs), rtol=0, atol=1e-5)
    _, grad_locations, grad_weights = gradients(output, inputs)
    assert grad_weights[:, :, :, 0, 0].abs().max() == 0 and grad_weights[:, :, :, 1, 1:].abs().max() == 0
    assert grad_locations[:, :, :, 0, 0].abs().max() == 0 and grad_locations[:, :, :, 1, 1:].abs().max() == 0
    assert grad_weights[:, :, :, 0, 1:].abs().max() > 0  # the points inside still receive gradient


def test_all_points_outside_gives_zeros(fused: None) -> None:
    inputs = with_grad(make_inputs(CASES["decoder_like"]))
    inputs["sampling_locations"] = (inputs["sampling_locations"].detach() + 2.5).requires_grad_()
    output = multi_scale_deformable_attention(**inputs)
    assert output.abs().max() == 0
    assert all(grad.abs().max() == 0 for grad in gradients(output, inputs))


def test_non_contiguous_inputs_give_the_same_result(fused: None) -> None:
    inputs = make_inputs(CASES["non_square"])
    expected = multi_scale_deformable_attention(**inputs)
    # Same values in other memory layouts: value stored heads-first, locations stored (x, y)-first.
    value = inputs["value"].permute(0, 2, 1, 3).contiguous().permute(0, 2, 1, 3)
    locations = inputs["sampling_locations"].movedim(-1, 0).contiguous().movedim(0, -1)
    assert not value.is_contiguous() and not locations.is_contiguous()
    output = multi_scale_deformable_attention(**{**inputs, "value": value, "sampling_locations": locations})
    torch.testing.assert_close(output, expected, rtol=0, atol=0)


def test_empty_queries(fused: None) -> None:
    inputs = make_inputs(dataclasses.replace(CASES["non_square"], queries=0))
    output = multi_scale_deformable_attention(**inputs)
    assert output.shape == (2, 0, 2 * 4)


def _broken(inputs: dict[str, torch.Tensor], name: str, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
    return {**inputs, name: tensor}


INVALID = {
    "value_not_4d": (lambda x: _broken(x, "value", x["value"].flatten(2)), "value must be (batch, S, heads, channels)"),
    "S_does_not_match_levels": (
        lambda x: _broken(x, "value", x["value"][:, :-1]),
        "spatial_shapes [(7, 5), (3, 11)] sum to 68",
    ),
    "location_dtype": (
        lambda x: _broken(x, "sampling_locations", x["sampling_locations"].double()),
        "cast it with .to(value.dtype)",
    ),
    "float_spatial_shapes": (
        lambda x: _broken(x, "spatial_shapes", x["spatial_shapes"].float()),
        "convert it with .long()",
    ),
    "wrong_level_start_index": (
        lambda x: _broken(x, "level_start_index", torch.tensor([0, 34])),
        "expected the exclusive cumulative sum of H*W, [0, 35]",
    ),
    "heads_mismatch": (
        lambda x: _broken(x, "sampling_locations", x["sampling_locations"][:, :, :1]),
        "require (2, 6, 2, 2, 3, 2)",
    ),
    "weights_mismatch": (
        lambda x: _broken(x, "attention_weights", x["attention_weights"][..., :2]),
        "attention_weights has shape (2, 6, 2, 2, 2), expected (2, 6, 2, 2, 3)",
    ),
    "location_not_xy": (
        lambda x: _broken(x, "sampling_locations", x["sampling_locations"][..., :1]),
        "sampling_locations must be (batch, queries, heads, levels, points, 2)",
    ),
}


@pytest.mark.parametrize("problem", list(INVALID))
def test_invalid_inputs_raise_clear_errors(problem: str) -> None:
    breaker, message = INVALID[problem]
    with pytest.raises(ValueError, match=re.escape(message)):
        multi_scale_deformable_attention(**breaker(make_inputs(CASES["non_square"])))


def test_extension_rejects_inconsistent_layouts_itself(fused: None) -> None:
    """Direct calls into the extension skip the dispatcher; the kernel must still refuse to index out of bounds."""
    inputs = make_inputs(CASES["non_square"])
    extension = load_fused_extension()
    assert extension is not None
    broken = {**inputs, "attention_weights": inputs["attention_weights"][..., :2].contiguous()}
    with pytest.raises(RuntimeError, match="attention_weights must be sampling_locations' shape"):
        extension.forward(*broken.values())


def test_non_tensor_input_raises_type_error() -> None:
    inputs = make_inputs(CASES["non_square"])
    with pytest.raises(TypeError, match="spatial_shapes must be a torch.Tensor, got list"):
        multi_scale_deformable_attention(**{**inputs, "spatial_shapes": [[7, 5], [3, 11]]})


def test_env_reference_selects_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMG_MSDA_BACKEND", "reference")
    inputs = with_grad(make_inputs(CASES["non_square"]))
    output = multi_scale_deformable_attention(**inputs)
    assert type(output.grad_fn).__name__ != FUSED_GRAD_FN
    torch.testing.assert_close(output, run_reference(inputs), rtol=0, atol=0)


def test_env_fused_selects_the_fused_kernel(fused: None) -> None:
    inputs = with_grad(make_inputs(CASES["non_square"]))
    assert type(multi_scale_deformable_attention(**inputs).grad_fn).__name__ == FUSED_GRAD_FN


def test_env_rejects_unknown_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMG_MSDA_BACKEND", "fast")
    with pytest.raises(ValueError, match="OMG_MSDA_BACKEND='fast' is not a backend"):
        multi_scale_deformable_attention(**make_inputs(CASES["non_square"]))


@pytest.fixture
def fresh_dispatch() -> Iterator[None]:
    """Forget the loaded extension before and after the test, as a fresh process would, so that a fallback
    decided under a monkeypatched compiler never leaks into later tests."""
    dispatcher.cached_fused_extension.cache_clear()
    yield
    dispatcher.cached_fused_extension.cache_clear()


@pytest.mark.usefixtures("fresh_dispatch")
def test_no_compiler_falls_back_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMG_MSDA_BACKEND", raising=False)
    monkeypatch.setattr(ext_build, "compiler_available", lambda: False)
    monkeypatch.setattr(ext_build, "_warned", set())
    inputs = with_grad(make_inputs(CASES["non_square"]))
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler found.*OMG_MSDA_BACKEND=reference"):
        output = multi_scale_deformable_attention(**inputs)
    assert type(output.grad_fn).__name__ != FUSED_GRAD_FN
    torch.testing.assert_close(output, run_reference(inputs), rtol=0, atol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second call must stay silent
        multi_scale_deformable_attention(**inputs)


@pytest.mark.usefixtures("fresh_dispatch")
def test_no_compiler_with_fused_forced_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMG_MSDA_BACKEND", "fused")
    monkeypatch.setattr(ext_build, "compiler_available", lambda: False)
    with pytest.raises(ext_build.ExtensionBuildError, match="OMG_MSDA_BACKEND=fused"):
        multi_scale_deformable_attention(**make_inputs(CASES["non_square"]))


def test_half_precision_inputs_run_in_float32(fused: None) -> None:
    inputs = make_inputs(CASES["non_square"])
    half = with_grad({k: (v.bfloat16() if v.is_floating_point() else v) for k, v in inputs.items()})
    output = multi_scale_deformable_attention(**half)
    assert output.dtype == torch.bfloat16
    # the same bfloat16 numbers, attended in float32 by the reference, then rounded once
    exact = with_grad({k: (v.detach().float() if v.is_floating_point() else v) for k, v in half.items()})
    torch.testing.assert_close(output, run_reference(exact).bfloat16())
    grads = gradients(output, half)
    assert [grad.dtype for grad in grads] == [torch.bfloat16] * 3
    expected_grads = gradients(run_reference(exact), exact)
    for ours, theirs in zip(grads, expected_grads):  # equal up to bfloat16 rounding of the upstream gradient
        torch.testing.assert_close(ours, theirs.bfloat16(), atol=1e-3, rtol=1.6e-2)


# CUDA kernels: these run only where a GPU is present (the extension then compiles the .cu source). They cover every
# channel-reduction mode of the CUDA backward: C dividing 32 (shuffles within a warp), C a multiple of 32 (a warp per
# 32 channels), and C neither (per-thread atomics).
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA_CASES = {**CASES, "odd_channels": Case(((7, 5), (3, 11)), channels=3)}


def to_cuda(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return with_grad({name: tensor.detach().cuda() for name, tensor in inputs.items()})


@requires_cuda
@pytest.mark.parametrize("case_name", list(CUDA_CASES))
def test_cuda_matches_reference(fused: None, case_name: str) -> None:
    inputs = with_grad(make_inputs(CUDA_CASES[case_name]))
    on_gpu = to_cuda(inputs)
    output = multi_scale_deformable_attention(**on_gpu)
    assert type(output.grad_fn).__name__ == FUSED_GRAD_FN
    expected = run_reference(inputs)
    torch.testing.assert_close(output.cpu(), expected, rtol=0, atol=1e-5)
    upstream = torch.randn(output.shape, generator=torch.Generator().manual_seed(1))
    wrt = ("value", "sampling_locations", "attention_weights")
    cuda_grads = torch.autograd.grad(output, [on_gpu[name] for name in wrt], upstream.cuda())
    cpu_grads = torch.autograd.grad(expected, [inputs[name] for name in wrt], upstream)
    for name, ours, theirs in zip(wrt, cuda_grads, cpu_grads):
        torch.testing.assert_close(ours.cpu(), theirs, rtol=1e-4, atol=1e-4, msg=lambda m, n=name: f"grad {n}: {m}")


@requires_cuda
def test_cuda_gradcheck_double(fused: None) -> None:
    case = Case(((3, 2), (2, 3)), batch=2, queries=3, heads=2, channels=3, points=2, spread=0.4)
    inputs = to_cuda(make_inputs(case, dtype=torch.float64, seed=3))

    def attend(value: torch.Tensor, locations: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return multi_scale_deformable_attention(
            value, inputs["spatial_shapes"], inputs["level_start_index"], locations, weights
        )

    differentiable = (inputs["value"], inputs["sampling_locations"], inputs["attention_weights"])
    # atomicAdd makes the summation order, hence the last bits of the backward, vary from call to call
    assert torch.autograd.gradcheck(attend, differentiable, eps=1e-6, atol=1e-6, nondet_tol=1e-10)
