"""``omg train --config FILE``: co-train one model on every dataset of a config, on one process or under torchrun."""

from __future__ import annotations

import os
from pathlib import Path

import click


@click.command("train")
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="training config (YAML), e.g. configs/train/shapes-tiny.yaml")
@click.option("--resume", is_flag=True, help="continue from the newest complete checkpoint in the output folder")
@click.option("--steps", type=int, help="override the config's total steps")
@click.option("--output", "output_dir", type=click.Path(path_type=Path), help="override the config's output_dir")
@click.option("--device", default=None, help="cpu (default) or cuda[:N]; under torchrun each rank takes cuda:LOCAL_RANK")
def train_command(config_path: Path, resume: bool, steps: int | None, output_dir: Path | None,
                  device: str | None) -> None:
    """Train the model a config names on its datasets, writing checkpoints, a JSON-lines log and evaluations to the
    output folder. Under ``torchrun --nproc-per-node N`` the ranks share every batch (DistributedDataParallel: gloo on
    CPU, nccl on GPU)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from omg_core.errors import InputError
    from omg_core.train.config import check_train_config, load_train_config

    config = load_train_config(config_path)
    updates = {key: value for key, value in (("steps", steps), ("output_dir", output_dir)) if value is not None}
    if updates:
        config = config.model_copy(update=updates)
        if steps is not None and steps < 1:
            raise InputError(f"--steps must be >= 1, got {steps}")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    chosen = _device(device, world_size)
    datasets = check_train_config(config, world_size)  # every check before a model is built or a file written
    if not resume and (Path(config.output_dir) / "checkpoints").is_dir() and any(
            (Path(config.output_dir) / "checkpoints").iterdir()):
        raise InputError(f"{config.output_dir} already holds checkpoints; pass --resume to continue that run or "
                         "choose another output folder (--output)")
    console = Console(stderr=True, soft_wrap=True)  # whole lines in logs
    group_started = False
    if world_size > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
            group_started = True
    try:
        from omg_core.train.trainer import Trainer

        with Progress(TextColumn("[bold]train[/]"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TextColumn("{task.fields[status]}"), TimeRemainingColumn(), console=console,
                      disable=rank != 0 or not console.is_terminal) as progress:
            bar = progress.add_task("train", total=config.steps, status="")

            plain = rank == 0 and not console.is_terminal  # logs and pipes get a line per logged step instead

            def show(record) -> None:  # loss and throughput of the step just done
                rate = record.samples * world_size / max(record.seconds["total"], 1e-9)
                status = f"loss {record.losses['loss']:.3f}  {rate:.1f} samples/s"
                progress.update(bar, completed=record.step, status=status)
                if plain and (record.step % config.log.every == 0 or record.step == config.steps):
                    console.print(f"step {record.step}/{config.steps}  {status}", highlight=False)

            if rank == 0:
                console.print(f"training {config.model.name} on {len(datasets)} dataset(s) for {config.steps} steps "
                              f"({world_size} process(es)); writing to {config.output_dir}", highlight=False)

            trainer = Trainer(config, datasets, rank, world_size, chosen, on_step=show)
            if resume and not trainer.resume():
                raise InputError(f"--resume: no complete checkpoint in {trainer.checkpoint_dir}; start without --resume")
            if resume and rank == 0:
                console.print(f"resuming at step {trainer.step} of {config.steps} from the newest checkpoint in "
                              f"{trainer.checkpoint_dir}", highlight=False)
            progress.update(bar, completed=trainer.step)
            trainer.fit()
        if rank == 0:
            click.echo(f"trained {config.steps} steps; checkpoints in {trainer.checkpoint_dir}, log {trainer.log_path}")
    finally:
        if group_started:
            import torch.distributed as dist

            dist.destroy_process_group()


def _device(device: str | None, world_size: int):  # -> torch.device
    import torch

    from omg_core.model.predictor import check_device

    if device is None:
        return torch.device("cpu")
    chosen = check_device(device)
    if chosen.type == "cuda" and world_size > 1 and chosen.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return chosen
