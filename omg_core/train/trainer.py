"""The training loop: one model co-trained on every dataset of a config, on one process or many (DDP).

    trainer = Trainer(load_train_config("configs/train/shapes-tiny.yaml"))
    trainer.resume()          # optional: continue from the newest complete checkpoint in output_dir/checkpoints
    trainer.fit()             # steps, logs, periodic evaluation and checkpoints until config.steps

Every random choice of a step comes from the sampler's per-sample seeds (which sample, its augmentation, its prompts,
the points its losses are measured at), so a step's result does not depend on the world size (two ranks of batch b
see exactly what one rank of batch 2b sees) nor on how often the run was stopped and resumed.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from omg_core.model.omg_model import OMGModel
from omg_core.model.outputs import OMGOutputs
from omg_core.train.batch import TrainingBatch
from omg_core.train.batch_source import BatchSource
from omg_core.train.config import TrainConfig, check_train_config
from omg_core.train.datasets import TrainingDataset
from omg_core.train.losses import CriterionConfig, SetCriterion
from omg_core.train.optim import build_optimizer, build_scheduler
from omg_core.train.sampler import CoTrainingSampler

#: The parts a step's time is split into (``StepRecord.seconds``).
STEP_PARTS = ("data", "backbone", "head", "matcher", "loss", "backward", "optimizer")


@dataclass
class StepRecord:
    """What one optimizer step did.

    step: the step number (1-based: the number of optimizer steps done).
    datasets: the dataset of each micro-batch.
    losses: the weighted loss terms and "loss" (their sum), averaged over micro-batches, this rank.
    lr: the learning rate the step used.
    seconds: time per part of the step (STEP_PARTS) and "total".
    samples: samples this rank trained on.
    """

    step: int
    datasets: list[str]
    losses: dict[str, float]
    lr: float
    seconds: dict[str, float]
    samples: int

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "datasets": self.datasets, "lr": self.lr, "losses": self.losses,
                "seconds": self.seconds, "samples": self.samples}


@dataclass
class _Timer:
    """Seconds spent per step part; the backbone's time is taken by hooks on its module, inside the forward."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STEP_PARTS, 0.0))

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start


class Trainer:
    """Trains ``config.model`` on ``config.datasets``.

    Arguments:
      config: the validated training config.
      datasets: the datasets (default: built and checked from the config).
      rank, world_size: this process in a torch.distributed group (world_size > 1: the group must be initialised;
        the model is wrapped in DistributedDataParallel).
      device: where the model trains.
      on_step: called with each StepRecord (progress bars).
    """

    def __init__(
        self,
        config: TrainConfig,
        datasets: list[TrainingDataset] | None = None,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str = "cpu",
        on_step: Callable[[StepRecord], None] | None = None,
    ) -> None:
        from omg_core.model.build import create_model

        self.config = config
        self.rank, self.world_size = rank, world_size
        self.device = torch.device(device)
        self.datasets = datasets if datasets is not None else check_train_config(config, world_size)
        self.on_step = on_step
        torch.manual_seed(config.seed)  # every rank builds the same initial weights
        overrides = ({"backbone": {"clip_weights": str(config.model.clip_weights)}}
                     if config.model.clip_weights is not None else {})
        self.model: OMGModel = create_model(config.model.name, **overrides).to(self.device)
        if config.model.init_weights is not None:
            from omg_core.weights.io import load_weights

            load_weights(self.model, config.model.init_weights)
        self.model.train()
        self.network: nn.Module = self.model
        if world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            # prompt encoders idle in non-interactive batches and learned queries in interactive ones
            self.network = DistributedDataParallel(self.model, find_unused_parameters=True)
        self.optimizer = build_optimizer(self.model, config.optimizer)
        self.scheduler = build_scheduler(self.optimizer, config.schedule, config.steps)
        self.sampler = CoTrainingSampler([len(d) for d in self.datasets], [d.ratio for d in config.datasets],
                                         config.batch_size, config.seed, rank, world_size)
        self.criterion = SetCriterion(CriterionConfig(**config.loss.model_dump()))
        self._source: BatchSource | None = None  # opened on the first batch (after a resume has moved the sampler)
        self._consumed_sampler_state = self.sampler.state_dict()  # what a checkpoint stores: the source runs ahead
        self.step = 0
        self._timer = _Timer()
        self._install_timers()

    # -- the loop ------------------------------------------------------------------------------------------------
    @property
    def output_dir(self) -> Path:
        return Path(self.config.output_dir)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def fit(self, max_steps: int | None = None) -> list[StepRecord]:
        """Train until ``config.steps`` (or ``max_steps`` more steps), logging, evaluating and checkpointing on the
        configured schedule (and a checkpoint at the end). Returns this call's step records."""
        last = self.config.steps if max_steps is None else min(self.config.steps, self.step + max_steps)
        records = []
        if self.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._fit_until(last, records)
        finally:
            self.close_batch_source()
        if self.step == self.config.steps and self.is_main:
            self.save_weights()
        return records

    def _fit_until(self, last: int, records: list[StepRecord]) -> None:
        while self.step < last:
            record = self.train_step()
            records.append(record)
            if self.is_main and (self.step % self.config.log.every == 0 or self.step == last):
                self._log({"kind": "train", **record.to_json()})
            if self.on_step is not None:
                self.on_step(record)
            if self.config.eval.every and self.step % self.config.eval.every == 0:
                self.evaluate()
            if self.step % self.config.checkpoint.every == 0 or self.step == self.config.steps:
                self.save()

    def close_batch_source(self) -> None:
        """Stop the data workers (``fit`` does on return; the next batch asked for opens the source again)."""
        if self._source is not None:
            self._source.close()
            self._source = None
            # the sampler ran ahead of the consumed batches: continue right after the last consumed one
            self.sampler.load_state_dict(self._consumed_sampler_state)

    @property
    def weights_path(self) -> Path:
        return self.output_dir / "model.safetensors"

    def save_weights(self) -> Path:
        """The whole model (frozen backbone included) as one safetensors file that ``omg run --weights`` and
        ``OMGPredictor.from_pretrained`` load."""
        from omg_core.result_writer import atomic_path
        from omg_core.weights.io import save_weights

        # the file holds the backbone's weights itself: its config must not send loaders to this machine's CLIP file
        portable = self.model.config.model_copy(
            update={"backbone": self.model.config.backbone.model_copy(update={"clip_weights": None})})
        with atomic_path(self.weights_path) as temporary:
            save_weights(self.model, temporary, metadata={"trained_steps": str(self.step),
                                                          "config": portable.model_dump_json()})
        return self.weights_path

    def train_step(self) -> StepRecord:
        """One optimizer step over ``grad_accumulation`` micro-batches."""
        config = self.config
        self._timer = _Timer()
        timer = self._timer
        start = time.perf_counter()
        self.model.train()
        lr = self.optimizer.param_groups[0]["lr"]
        totals: dict[str, float] = {}
        names, samples = [], 0
        for micro in range(config.grad_accumulation):
            with timer.part("data"):
                batch, seeds = self._next_batch()
            names.append(batch.dataset)
            samples += len(batch.targets)
            last_micro = micro == config.grad_accumulation - 1
            sync = contextlib.nullcontext() if last_micro or self.world_size == 1 else self.network.no_sync()
            with sync:
                outputs = self._forward(batch)
                generators = [torch.Generator(self.device).manual_seed(seed) for seed in seeds]
                with timer.part("loss"):
                    losses = self.criterion(outputs, batch.targets, generators)
                with timer.part("backward"):
                    (losses.total / config.grad_accumulation).backward()
            for name, value in losses.as_dict().items():
                totals[name] = totals.get(name, 0.0) + float(value.detach()) / config.grad_accumulation
        with timer.part("optimizer"):
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
        self.step += 1
        seconds = {**timer.seconds, "total": time.perf_counter() - start}
        # the backbone runs inside the forward and the matcher inside the loss: give each part its own share
        seconds["head"] = max(seconds["head"] - seconds["backbone"], 0.0)
        seconds["loss"] = max(seconds["loss"] - seconds["matcher"], 0.0)
        return StepRecord(self.step, names, totals, lr, seconds, samples)

    def _next_batch(self) -> tuple[TrainingBatch, list[int]]:
        if self._source is None:
            self._source = BatchSource(self.sampler, self.datasets, self.model.config.prompt_encoding,
                                       self.config.data_workers)
        prepared = self._source.next()
        self._consumed_sampler_state = prepared.sampler_state
        return prepared.batch.to(self.device), prepared.point_seeds

    def _forward(self, batch: TrainingBatch) -> OMGOutputs:
        """The model's forward (the head's time: everything but the backbone, which its hooks time)."""
        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.config.amp == "bfloat16"
                    else contextlib.nullcontext())
        with self._timer.part("head"), autocast:
            return self.network(batch.inputs)

    def _install_timers(self) -> None:
        backbone_start: list[float] = []

        def before(*_: Any) -> None:
            backbone_start.append(time.perf_counter())

        def after(*_: Any) -> None:
            self._timer.seconds["backbone"] += time.perf_counter() - backbone_start.pop()

        self.model.backbone.register_forward_pre_hook(before)
        self.model.backbone.register_forward_hook(after)
        matcher = self.criterion.matcher
        match_films = matcher.match_films

        def timed_match(*args: Any, **kwargs: Any) -> Any:
            with self._timer.part("matcher"):
                return match_films(*args, **kwargs)

        matcher.match_films = timed_match  # type: ignore[method-assign]

    # -- evaluation, checkpoints, logs ----------------------------------------------------------------------------
    def evaluate(self) -> dict[str, dict[str, float]]:
        """Every dataset's task metric on held-out samples (synced across ranks); logged by rank 0."""
        from omg_core.train.evaluate import build_eval_datasets, evaluate

        if not hasattr(self, "_eval_datasets"):
            self._eval_datasets = build_eval_datasets(self.config)
        figures = evaluate(self.model, self._eval_datasets, self.config.eval.num_samples, self.rank,
                           self.world_size, self.device)
        if self.is_main:
            self._log({"kind": "eval", "step": self.step, "figures": figures})
        return figures

    @property
    def checkpoint_dir(self) -> Path:
        return self.output_dir / "checkpoints"

    def save(self) -> Path | None:
        """Write a checkpoint of this step (rank 0; the others wait for it)."""
        from omg_core.train.checkpoint import save_checkpoint

        path = None
        if self.is_main:
            path = save_checkpoint(self.checkpoint_dir, self.step, self.model, self.optimizer, self.scheduler,
                                   self._consumed_sampler_state, keep_last=self.config.checkpoint.keep_last,
                                   config_text=self.config.model_dump_json())
        if self.world_size > 1:
            torch.distributed.barrier()
        return path

    def resume(self, path: Path | None = None) -> bool:
        """Continue from ``path`` or the newest complete checkpoint of the output folder; False when there is none.
        The JSON-lines log is cut back to the checkpoint's step, so a resumed run's log equals an uninterrupted one's."""
        from omg_core.train.checkpoint import latest_checkpoint, load_checkpoint

        found = path if path is not None else latest_checkpoint(self.checkpoint_dir)
        if found is None:
            return False
        state = load_checkpoint(found, self.model, self.optimizer, self.scheduler)
        self.close_batch_source()
        self.sampler.load_state_dict(state.sampler_state)
        self._consumed_sampler_state = self.sampler.state_dict()
        self.step = state.step
        if self.is_main:
            self._truncate_log(self.step)
        return True

    @property
    def log_path(self) -> Path:
        return self.output_dir / "train_log.jsonl"

    def _log(self, entry: dict[str, Any]) -> None:
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")
        self._tensorboard(entry)

    def _truncate_log(self, step: int) -> None:
        if not self.log_path.exists():
            return
        kept = [line for line in self.log_path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line)["step"] <= step]
        self.log_path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def _tensorboard(self, entry: dict[str, Any]) -> None:
        """Scalars to TensorBoard when it is installed (optional)."""
        if not hasattr(self, "_board"):
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._board = SummaryWriter(str(self.output_dir / "tensorboard"))
            except ImportError:  # tensorboard is an optional extra
                self._board = None
        if self._board is None:
            return
        if entry["kind"] == "train":
            for name, value in entry["losses"].items():
                self._board.add_scalar(f"train/{name}", value, entry["step"])
            self._board.add_scalar("train/lr", entry["lr"], entry["step"])
        else:
            for dataset, figures in entry["figures"].items():
                for name, value in figures.items():
                    if isinstance(value, (int, float)):
                        self._board.add_scalar(f"eval/{dataset}/{name}", value, entry["step"])
