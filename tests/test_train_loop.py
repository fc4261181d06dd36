"""The training loop: batches, schedule, per-sample randomness, DDP equivalence, and that every family learns."""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from omg_core.train.batch import collate
from omg_core.train.config import ScheduleConfig, TrainConfig, build_datasets, validate_train_config
from omg_core.train.losses import SetCriterion
from omg_core.train.optim import lr_factor, parameter_groups
from omg_core.train.trainer import Trainer

FAMILIES = ["panoptic", "instance", "semantic", "interactive", "video-instance", "video-panoptic", "video-semantic"]


def tiny_config(tmp_path: Path, families: list[str] = FAMILIES, batch_size: int = 2, **changes) -> TrainConfig:
    options = {"num_samples": 16, "image_size": [64, 64], "max_objects": 3}
    datasets = [{"name": f"shapes-{family}", "kind": "shapes-world", "family": family, "ratio": 1,
                 "options": {**options, **({"num_frames": 2} if family.startswith("video") else {})}}
                for family in families]
    data = {"model": {"name": "omg-tiny"}, "datasets": datasets, "batch_size": batch_size, "steps": 40,
            "optimizer": {"lr": 1e-3}, "schedule": {"warmup_steps": 0}, "output_dir": str(tmp_path / "run"),
            "eval": {"every": 0}, "checkpoint": {"every": 1000}, "seed": 3, **changes}
    return validate_train_config(data, "test config")


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.filterwarnings("ignore", message=".*random weights.*")


# -- pieces ------------------------------------------------------------------------------------------------------


def test_lr_schedule_warms_up_then_steps_or_decays() -> None:
    step = ScheduleConfig(kind="step", warmup_steps=10, warmup_start_factor=0.1, milestones=[50, 80], gamma=0.1)
    assert lr_factor(0, step, 100) == pytest.approx(0.1)
    assert lr_factor(5, step, 100) == pytest.approx(0.55)
    assert lr_factor(10, step, 100) == 1.0 and lr_factor(49, step, 100) == 1.0
    assert lr_factor(50, step, 100) == pytest.approx(0.1) and lr_factor(80, step, 100) == pytest.approx(0.01)
    official = ScheduleConfig(kind="step", warmup_steps=0)
    assert [lr_factor(s, official, 1200) for s in (799, 800, 1099, 1100)] == pytest.approx([1, 0.1, 0.1, 0.01])
    cosine = ScheduleConfig(kind="cosine", warmup_steps=0)
    assert lr_factor(50, cosine, 100) == pytest.approx(0.5) and lr_factor(100, cosine, 100) == pytest.approx(0.0)
    assert lr_factor(25, cosine, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_the_frozen_backbone_is_not_optimised_and_norms_get_no_decay(tmp_path: Path) -> None:
    from omg_core.model.build import create_model

    model = create_model("omg-tiny")
    config = tiny_config(tmp_path).optimizer
    decay, no_decay = parameter_groups(model, config)
    chosen = {id(p) for group in (decay, no_decay) for p in group["params"]}
    assert not any(id(p) in chosen for p in model.backbone.parameters())
    assert chosen == {id(p) for p in model.parameters() if p.requires_grad}
    names = {id(p): name for name, p in model.named_parameters()}
    assert all(p.ndim > 1 and "norm" not in names[id(p)] for p in decay["params"])
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0


def test_collate_pads_images_and_prompts(tmp_path: Path) -> None:
    datasets = build_datasets(tiny_config(tmp_path, ["interactive", "video-panoptic"]))
    interactive, video = datasets
    samples = [interactive.get(i, np.random.default_rng(i)) for i in range(3)]
    batch = collate(samples, interactive)
    most = max(s.num_targets for s in samples)
    assert batch.inputs.boxes.shape == (3, most, 4) and not batch.inputs.use_learned_queries
    assert batch.inputs.points is None
    for sample, target in zip(samples, batch.targets):
        assert target.prompt_index.tolist() == list(range(sample.num_targets)) + [-1] * (most - sample.num_targets)
        assert target.masks.shape[1:] == batch.inputs.images.shape[-2:]
    # SAM-style encoding: the clicks themselves, padding prompts all -1 (what interactive(points=...) feeds)
    clicks = collate(samples, interactive, "sam")
    assert clicks.inputs.boxes is None and clicks.inputs.points.shape[:2] == (3, most)
    for row, sample in enumerate(samples):
        count = sample.num_targets
        assert torch.equal(clicks.inputs.points[row, :count], sample.prompts.points.float())
        assert torch.equal(clicks.inputs.point_labels[row, :count], sample.prompts.point_labels.long())
        assert bool((clicks.inputs.point_labels[row, count:] == -1).all())
    with pytest.raises(ValueError, match="prompt_encoding"):
        collate(samples, interactive, "clicks")
    boxed = [interactive.get(i, np.random.default_rng(i)) for i in range(3)]
    for sample in boxed:
        sample.prompts.is_box[:] = True  # as box_fraction 1 draws them
    with pytest.raises(ValueError, match="box_fraction: 0"):
        collate(boxed, interactive, "sam")
    assert collate(boxed, interactive, "official").inputs.boxes is not None
    clip = collate([video.get(0, np.random.default_rng(0))], video)
    assert clip.inputs.images.shape[:3] == (1, 2, 3) and clip.targets[0].masks.dim() == 4
    assert clip.inputs.class_names == list(video.vocabulary.texts)


def test_box_prompts_for_a_sam_style_model_fail_the_config_check_not_the_first_batch(tmp_path: Path) -> None:
    from omg_core.train.config import TrainConfigError, check_train_config

    config = tiny_config(tmp_path, ["panoptic", "interactive"])
    config.datasets[1].options["box_fraction"] = 0.5
    with pytest.raises(TrainConfigError, match=r"datasets\[1\]\.options\.box_fraction.*set box_fraction: 0"):
        check_train_config(config)
    config.datasets[1].options["box_fraction"] = 0.0
    assert len(check_train_config(config)) == 2


def test_a_sample_gets_the_same_loss_points_in_any_batch(tmp_path: Path) -> None:
    """With a generator per sample, a sample's (un-normalised) mask loss does not depend on its batch companions."""
    from omg_core.model.build import create_model

    torch.manual_seed(0)
    model = create_model("omg-tiny").train()
    (dataset,) = build_datasets(tiny_config(tmp_path, ["panoptic"]))
    samples = [dataset.get(i, np.random.default_rng(i)) for i in range(2)]
    criterion = SetCriterion()

    def summed_mask_loss(chosen: list[int]) -> float:
        batch = collate([samples[i] for i in chosen], dataset)
        with torch.no_grad():
            outputs = model(batch.inputs)
        losses = criterion(outputs, batch.targets, [torch.Generator().manual_seed(100 + i) for i in chosen])
        masks = sum(t.num_targets for t in batch.targets)
        return float(losses.terms["loss_mask"]) * masks

    together = summed_mask_loss([0, 1])
    assert together == pytest.approx(summed_mask_loss([0]) + summed_mask_loss([1]), rel=1e-5)


# -- the loop ----------------------------------------------------------------------------------------------------


def _fixed_batch_losses(trainer: Trainer, batches: dict[str, object]) -> dict[str, float]:
    values = {}
    for family, batch in batches.items():
        with torch.no_grad():
            outputs = trainer.model(batch.inputs)
        generators = [torch.Generator().manual_seed(7 + i) for i in range(len(batch.targets))]
        values[family] = float(trainer.criterion(outputs, batch.targets, generators).total)
    return values


def test_a_few_dozen_steps_lower_the_loss_of_every_family(tmp_path: Path) -> None:
    trainer = Trainer(tiny_config(tmp_path))
    held = {d.family: collate([d.get(14 + i, np.random.default_rng(i)) for i in range(2)], d)
            for d in trainer.datasets}
    before = _fixed_batch_losses(trainer, held)
    records = trainer.fit(max_steps=36)
    after = _fixed_batch_losses(trainer, held)
    assert {name for record in records for name in record.datasets} == {d.name for d in trainer.datasets}
    for family in FAMILIES:
        assert after[family] < 0.9 * before[family], f"{family}: {before[family]:.2f} -> {after[family]:.2f}"
    record = records[-1]
    assert set(record.seconds) >= {"data", "backbone", "head", "matcher", "loss", "backward", "optimizer", "total"}
    assert all(value >= 0 for value in record.seconds.values())
    log = (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()
    assert len(log) == 36 // 20 + 1  # every log.every steps and the last


def _ddp_worker(rank: int, world_size: int, config_json: str, port: int, out: str) -> None:
    import torch.distributed as dist

    warnings.simplefilter("ignore")
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        config = TrainConfig.model_validate_json(config_json)
        trainer = Trainer(config, rank=rank, world_size=world_size)
        records = trainer.fit(max_steps=3)
        if rank == 0:
            torch.save({"params": {n: p.detach().clone() for n, p in trainer.model.named_parameters()},
                        "datasets": [r.datasets for r in records]}, out)
    finally:
        dist.destroy_process_group()


def test_two_ranks_equal_one_rank_with_the_doubled_batch(tmp_path: Path) -> None:
    families = ["panoptic", "interactive", "video-instance"]
    single = Trainer(tiny_config(tmp_path, families, batch_size=2))
    single_records = single.fit(max_steps=3)
    config = tiny_config(tmp_path, families, batch_size=1, output_dir=str(tmp_path / "ddp"))
    out = tmp_path / "ddp.pt"
    port = 29500 + os.getpid() % 1000
    mp.spawn(_ddp_worker, args=(2, config.model_dump_json(), port, str(out)), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=True)
    assert ddp["datasets"] == [r.datasets for r in single_records]
    moved = 0
    initial = Trainer(tiny_config(tmp_path, families, batch_size=2)).model
    for (name, parameter), (_, start) in zip(single.model.named_parameters(), initial.named_parameters()):
        if not parameter.requires_grad:
            continue
        # Adam divides by sqrt(v): where a gradient is ~0, float-order noise of the summed gradients becomes ~1e-6
        # of parameter change; a real mismatch moves a weight by a whole step (lr 1e-3 here), 20x this tolerance
        torch.testing.assert_close(ddp["params"][name], parameter.detach(), rtol=1e-4, atol=5e-5)
        moved += not torch.equal(parameter, start)
    assert moved > 10  # the steps changed the weights, so equality above is not trivial


def test_accumulation_and_bf16_autocast_train(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, ["panoptic", "interactive"], grad_accumulation=2, amp="bfloat16")
    trainer = Trainer(config)
    start = {name: p.detach().clone() for name, p in trainer.model.named_parameters() if p.requires_grad}
    (record,) = trainer.fit(max_steps=1)
    assert len(record.datasets) == 2 and record.samples == 4  # two micro-batches of 2 in one optimizer step
    assert all(math.isfinite(value) for value in record.losses.values())
    changed = [name for name, p in trainer.model.named_parameters() if p.requires_grad and not torch.equal(p, start[name])]
    assert changed


def test_omg_train_refuses_a_bad_config_in_one_line_before_anything_runs(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from omg_core.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets:\n  - {name: a, kind: shapes-world, family: panoptic, ratio: 0}\nsteps: 3\n"
                   f"output_dir: {tmp_path / 'out'}\n")
    result = CliRunner().invoke(main, ["train", "--config", str(bad)])
    assert result.exit_code == 2
    assert "bad.yaml: datasets[0].ratio" in result.output and len(result.output.strip().splitlines()) == 1
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("datasets:\n  - {name: a, kind: imagenet, family: panoptic, ratio: 1}\nsteps: 3\n"
                       f"output_dir: {tmp_path / 'out'}\n")
    result = CliRunner().invoke(main, ["train", "--config", str(unknown)])
    assert result.exit_code == 2 and "imagenet" in result.output and "shapes-world" in result.output
    assert not (tmp_path / "out").exists()


def test_training_on_a_trained_clip_ships_it_inside_the_weights(tmp_path: Path) -> None:
    from omg_core.clip_train.train import build_clip, save_clip_weights
    from omg_core.model.predictor import load_model

    clip, _ = build_clip(seed=11)
    clip_file = tmp_path / "clip.safetensors"
    save_clip_weights(clip, clip_file)
    config = tiny_config(tmp_path, ["panoptic"], steps=1, model={"name": "omg-tiny", "clip_weights": str(clip_file)})
    trainer = Trainer(config)
    torch.testing.assert_close(trainer.model.backbone.stem[0].weight, clip.visual.trunk.stem[0].weight, rtol=0,
                               atol=0)
    trainer.fit()
    clip_file.unlink()  # the shipped file must not need the CLIP file any more
    loaded = load_model(trainer.weights_path)
    assert loaded.config.backbone.clip_weights is None
    torch.testing.assert_close(loaded.backbone.stem[0].weight, clip.visual.trunk.stem[0].weight, rtol=0, atol=0)
    state = dict(trainer.model.state_dict())
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, state[name]), name
