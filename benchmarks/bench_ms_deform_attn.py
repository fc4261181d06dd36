"""Fused multi-scale deformable attention ("ours") vs the grid_sample reference, forward + backward.

Groups (one reference each):
  * ``encoder_512``: the pixel decoder's encoder self-attention for a 512 x 512 image: levels 64x64, 32x32, 16x16
    (S = 5376 queries, one per position), 8 heads x 32 channels, 4 points, batch 1.
  * ``decoder_100q``: the same value maps attended by 100 queries (decoder-style cross attention).
  * ``tiny``: a few queries on two small maps, where fixed per-call overheads dominate.
  * ``encoder_512_forward``: the encoder shape, forward only (inference).

Sampling locations are made the way Deformable-DETR makes them: a reference point per query (the query's own pixel
centre for the encoder, a random point for the decoder) plus offsets of about two pixels of each level, some of them
past the border. Every benchmark first checks that both backends give the same output and gradients.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch

from omg_core.ops.ms_deform_attn import multi_scale_deformable_attention
from omg_core.ops.ms_deform_attn_reference import ms_deform_attn_reference


@dataclasses.dataclass(frozen=True)
class Shape:
    level_shapes: tuple[tuple[int, int], ...]
    queries: int
    heads: int
    channels: int
    points: int
    batch: int
    rounds: int  # timing rounds of the reference (ours gets twice as many; it is faster)
    queries_on_grid: bool = False  # encoder self-attention: one query per value position, at that pixel's centre


PYRAMID_512 = ((64, 64), (32, 32), (16, 16))  # strides 8, 16, 32 of a 512 x 512 image
SHAPES = {
    "encoder_512": Shape(
        PYRAMID_512,
        queries=64 * 64 + 32 * 32 + 16 * 16,
        heads=8,
        channels=32,
        points=4,
        batch=1,
        rounds=4,
        queries_on_grid=True,
    ),
    "decoder_100q": Shape(PYRAMID_512, queries=100, heads=8, channels=32, points=4, batch=1, rounds=20),
    "tiny": Shape(((8, 8), (4, 4)), queries=16, heads=2, channels=8, points=2, batch=2, rounds=200),
}

Inputs = dict[str, torch.Tensor]


def reference_points(shape: Shape, generator: torch.Generator) -> torch.Tensor:
    """B x Q x 2 normalised (x, y): pixel centres of every level for the encoder, random points otherwise."""
    if not shape.queries_on_grid:
        return torch.rand(shape.batch, shape.queries, 2, generator=generator)
    centres = []
    for height, width in shape.level_shapes:
        ys, xs = torch.meshgrid(
            (torch.arange(height) + 0.5) / height, (torch.arange(width) + 0.5) / width, indexing="ij"
        )
        centres.append(torch.stack([xs, ys], -1).reshape(-1, 2))
    return torch.cat(centres).expand(shape.batch, -1, -1)


def make_inputs(shape: Shape) -> Inputs:
    generator = torch.Generator().manual_seed(0)
    spatial_shapes = torch.tensor(shape.level_shapes, dtype=torch.int64)
    sizes = spatial_shapes.prod(1)
    levels = len(shape.level_shapes)
    location_shape = (shape.batch, shape.queries, shape.heads, levels, shape.points, 2)
    # B x S x heads x C
    value = torch.randn(shape.batch, int(sizes.sum()), shape.heads, shape.channels, generator=generator)
    # B x Q x heads x L x P x 2: reference point + offsets of ~2 pixels of each level (normalised by its W, H)
    pixel_size = 1 / spatial_shapes.flip(-1).to(torch.float32)  # L x 2 as (1/W, 1/H), matching (x, y)
    offsets = torch.randn(location_shape, generator=generator) * 2 * pixel_size[:, None, :]
    locations = reference_points(shape, generator)[:, :, None, None, None, :] + offsets
    logits = torch.randn(location_shape[:3] + (levels * shape.points,), generator=generator)
    return {
        "value": value.requires_grad_(),
        "spatial_shapes": spatial_shapes,
        "level_start_index": torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]]),
        "sampling_locations": locations.requires_grad_(),
        "attention_weights": logits.softmax(-1).view(location_shape[:-1]).requires_grad_(),
    }


def run_ours(inputs: Inputs) -> torch.Tensor:
    return multi_scale_deformable_attention(**inputs)


def run_reference(inputs: Inputs) -> torch.Tensor:
    return ms_deform_attn_reference(
        inputs["value"], inputs["spatial_shapes"], inputs["sampling_locations"], inputs["attention_weights"]
    )


def forward_backward(run: Callable[[Inputs], torch.Tensor], inputs: Inputs, upstream: torch.Tensor) -> list:
    output = run(inputs)
    wrt = [inputs["value"], inputs["sampling_locations"], inputs["attention_weights"]]
    return [output, *torch.autograd.grad(output, wrt, upstream)]


def check_agreement(inputs: Inputs, upstream: torch.Tensor) -> None:
    """Both backends agree to float32 accuracy relative to each tensor's magnitude: location gradients reach ~1e3
    (they scale with the map size) and the reference's float32 error there is ~1e-3 (ours is ~10x closer to float64).
    """
    ours = forward_backward(run_ours, inputs, upstream)
    reference = forward_backward(run_reference, inputs, upstream)
    for name, mine, theirs in zip(("output", "grad value", "grad locations", "grad weights"), ours, reference):
        atol = 1e-5 * max(1.0, theirs.abs().max().item())
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=atol, msg=lambda m, n=name: f"{n}: {m}")


def bench(benchmark, shape_name: str, role: str, backward: bool = True) -> None:
    """Time one backend on one shape after checking both backends agree there."""
    shape = SHAPES[shape_name]
    inputs = make_inputs(shape)
    upstream = torch.randn(shape.batch, shape.queries, shape.heads * shape.channels)
    check_agreement(inputs, upstream)
    run = run_ours if role == "ours" else run_reference
    benchmark.extra_info["role"] = role
    benchmark.extra_info["shape"] = dataclasses.asdict(shape)
    rounds = shape.rounds * (2 if role == "ours" else 1)
    if backward:
        benchmark.pedantic(forward_backward, args=(run, inputs, upstream), rounds=rounds, iterations=1, warmup_rounds=1)
    else:
        with torch.no_grad():
            benchmark.pedantic(run, args=(inputs,), rounds=rounds, iterations=1, warmup_rounds=1)


@pytest.fixture(autouse=True)
def force_fused(monkeypatch: pytest.MonkeyPatch) -> None:
    """ "ours" must time the fused kernel: a failed build is an error here, never a silent fallback."""
    monkeypatch.setenv("OMG_MSDA_BACKEND", "fused")


@pytest.mark.benchmark(group="ms_deform_attn-fwd_bwd-encoder_512")
def test_encoder_512_ours(benchmark) -> None:
    bench(benchmark, "encoder_512", "ours")


@pytest.mark.benchmark(group="ms_deform_attn-fwd_bwd-encoder_512")
def test_encoder_512_reference(benchmark) -> None:
    bench(benchmark, "encoder_512", "reference")


@pytest.mark.benchmark(group="ms_deform_attn-fwd-encoder_512")
def test_encoder_512_forward_ours(benchmark) -> None:
    bench(benchmark, "encoder_512", "ours", backward=False)


@pytest.mark.benchmark(group="ms_deform_attn-fwd-encoder_512")
def test_encoder_512_forward_reference(benchmark) -> None:
    bench(benchmark, "encoder_512", "reference", backward=False)


@pytest.mark.benchmark(group="ms_deform_attn-fwd_bwd-decoder_100q")
def test_decoder_100q_ours(benchmark) -> None:
    bench(benchmark, "decoder_100q", "ours")


@pytest.mark.benchmark(group="ms_deform_attn-fwd_bwd-decoder_100q")
def test_decoder_100q_reference(benchmark) -> None:
    bench(benchmark, "decoder_100q", "reference")


@pytest.mark.benchmark(group="ms_deform_attn-fwd_bwd-tiny")
def test_tiny_ours(benchmark) -> None:
    bench(benchmark, "tiny", "ours")


@pytest.mark.benchmark(group="ms_deform_attn-fwd_bwd-tiny")
def test_tiny_reference(benchmark) -> None:
    bench(benchmark, "tiny", "reference")
