"""Training benchmarks (issue: training).

Groups (ours / reference, same run):
  train-step-shapes-tiny   one optimizer step of configs/train/shapes-tiny.yaml (omg-tiny, batch 4, 128 px, every
                           family in turn) through Trainer.train_step (data, matching, OMG-Seg losses on every stage,
                           backward, AdamW) vs the bare forward + backward of the same batches with a plain mask BCE
                           (what any trainer pays): the ratio is what our step adds. extra_info: steps/s and the time
                           split (data, backbone, head, matcher, loss, backward, optimizer) with the matcher's share.
  train-memory-convnext-large-512
                           peak RSS growth of one training step of omg-convnext-large at 512 px (one image, 20
                           classes, 300 queries, the losses) with the frozen CLIP backbone run without autograd (ours)
                           vs the same step with the backbone keeping its activations (reference), each in a fresh
                           process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
import torch
from pytest_benchmark.fixture import BenchmarkFixture

ROOT = Path(__file__).resolve().parents[1]
STEPS = 14  # two passes over the seven families at the config's ratios (about)


@pytest.fixture(scope="module")
def trainer(tmp_path_factory: pytest.TempPathFactory):
    from omg_core.train.config import load_train_config
    from omg_core.train.trainer import Trainer

    warnings.filterwarnings("ignore", message=".*random weights.*")
    config = load_train_config(ROOT / "configs" / "train" / "shapes-tiny.yaml")
    config = config.model_copy(update={"output_dir": tmp_path_factory.mktemp("train")})
    trainer = Trainer(config)
    trainer.train_step()  # warm-up: first-call allocations and text embeddings
    return trainer


def _our_steps(trainer) -> list:
    return [trainer.train_step() for _ in range(STEPS)]


def _bare_steps(trainer) -> None:
    """The same kind of batches through forward + a plain BCE on every query's mask + backward + AdamW."""
    for _ in range(STEPS):
        batch, _ = trainer._next_batch()
        outputs = trainer.model(batch.inputs)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(outputs.mask_logits,
                                                                    torch.zeros_like(outputs.mask_logits))
        loss.backward()
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)


@pytest.mark.benchmark(group="train-step-shapes-tiny")
def test_train_step_ours(benchmark: BenchmarkFixture, trainer) -> None:
    records = benchmark.pedantic(_our_steps, args=(trainer,), rounds=1, iterations=1)
    parts = {name: sum(r.seconds[name] for r in records) for name in records[0].seconds}
    total = parts.pop("total")
    benchmark.extra_info.update(
        role="ours", steps=STEPS, steps_per_s=STEPS / total,
        seconds_split={name: round(value, 3) for name, value in parts.items()},
        shares={name: round(value / total, 3) for name, value in parts.items()},
        matcher_share=parts["matcher"] / total,
        slowest_part=max(parts, key=parts.get),
    )
    assert parts["matcher"] < 0.5 * total, "the matcher dominates the step"


@pytest.mark.benchmark(group="train-step-shapes-tiny")
def test_train_step_reference(benchmark: BenchmarkFixture, trainer) -> None:
    benchmark.pedantic(_bare_steps, args=(trainer,), rounds=1, iterations=1)
    benchmark.extra_info.update(role="reference", reference="bare forward + plain mask BCE + backward + AdamW")


_MEMORY_SCRIPT = textwrap.dedent("""
    import re, sys, warnings
    warnings.simplefilter("ignore")
    import torch
    from omg_core.model import OMGInputs, create_model
    from omg_core.model.backbone import ClipConvNeXtBackbone
    from omg_core.train.losses import SetCriterion
    from omg_core.train.targets import SegmentationTargets

    def peak_kib():
        with open("/proc/self/status") as status:
            return int(re.search(r"VmHWM:\\s+(\\d+)", status.read()).group(1))

    keep_activations = sys.argv[1] == "keep"
    torch.manual_seed(0)
    model = create_model("omg-convnext-large").train()
    if keep_activations:  # the backbone as if it were fine-tuned: autograd records its whole forward
        ClipConvNeXtBackbone.forward = ClipConvNeXtBackbone.forward.__wrapped__
        for parameter in model.backbone.parameters():
            parameter.requires_grad_(True)
    texts = torch.nn.functional.normalize(torch.randn(20, model.clip_dim), dim=-1)
    image = torch.rand(1, 3, 512, 512) * 255
    masks = torch.zeros(3, 512, 512, dtype=torch.bool)
    masks[0, :200, :200] = masks[1, 250:, 250:] = masks[2, 100:300, 300:] = True
    targets = [SegmentationTargets(labels=torch.tensor([1, 5, 7]), masks=masks)]
    before = peak_kib()
    outputs = model(OMGInputs(images=image, text_embeddings=texts))
    SetCriterion()(outputs, targets, torch.Generator().manual_seed(0)).total.backward()
    print(before, peak_kib())
""")


def _peak_growth_kib(mode: str) -> int:
    result = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, mode], check=True, capture_output=True, text=True)
    before, after = result.stdout.strip().splitlines()[-1].split()
    return int(after) - int(before)


@pytest.mark.benchmark(group="train-memory-convnext-large-512")
def test_train_memory_frozen_backbone_ours(benchmark: BenchmarkFixture) -> None:
    start = time.perf_counter()
    growth = _peak_growth_kib("frozen")
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    benchmark.stats.stats.data[:] = [time.perf_counter() - start]  # the ratio compares the whole step's wall time
    benchmark.extra_info.update(role="ours", peak_growth_mib=growth / 1024, backbone="no autograd (frozen)")


@pytest.mark.benchmark(group="train-memory-convnext-large-512")
def test_train_memory_frozen_backbone_reference(benchmark: BenchmarkFixture) -> None:
    start = time.perf_counter()
    growth = _peak_growth_kib("keep")
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    benchmark.stats.stats.data[:] = [time.perf_counter() - start]
    benchmark.extra_info.update(role="reference", peak_growth_mib=growth / 1024, backbone="keeps its activations")
