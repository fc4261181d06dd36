"""Contrastive training of the tiny open_clip model "omg-tiny-convnext-atto" on shapes-world pairs.

    python -m omg_core.clip_train.train --out DIR --minutes M --seed S [--image-size 64 --batch-size 64 ...]

Symmetric InfoNCE with open_clip's learnable logit scale (clamped at 100), plus a vocabulary loss: each crop is
also classified against the text embeddings of every class name (one caption template per step). In a batch of
64 random pairs colour alone tells most captions apart, so InfoNCE barely teaches shape; the whole vocabulary puts
all eight shapes of a colour side by side as negatives on every step. An optional region loss
(omg_core.clip_train.regions, off by default) classifies segments of whole scenes by their mask-pooled features;
`--init` starts a run from an earlier run's weights. AdamW without weight decay on norms,
biases, embeddings and the scale, linear warm-up then cosine decay to 0. A run is a pure function of its seed and
its total step count: with --minutes alone the total is fixed from the speed of the first warm-up steps (the
warm-up does not depend on it) and recorded, so `--steps N` repeats the run. Weights are written with safetensors
only: DIR/clip.safetensors holds the open_clip model's own state_dict keys (what `open_clip.create_model(...)
.load_state_dict` takes), DIR/checkpoint.safetensors adds the AdamW moments for --resume, DIR/log.jsonl has one
JSON record per logged step, DIR/clip_card.json the settings and zero-shot figures.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset

from omg_common.file_modes import give_ordinary_mode
from omg_core.clip_train.data import (
    CROP_TEMPLATES,
    PIXEL_MEAN,
    PIXEL_STD,
    ShapesWorldPairs,
    normalize_images,
    training_vocabulary,
)
from omg_core.clip_train.regions import (
    ShapesWorldRegions,
    region_embeddings,
    region_loss,
    region_zero_shot_accuracy,
)
from omg_core.clip_train.zero_shot import zero_shot_accuracy, zero_shot_figure_sets
from omg_core.errors import InputError
from omg_core.model.backbone import register_open_clip_configs

CLIP_MODEL_NAME = "omg-tiny-convnext-atto"
WEIGHTS_FILE = "clip.safetensors"
CHECKPOINT_FILE = "checkpoint.safetensors"
CARD_FILE = "clip_card.json"
LOG_FILE = "log.jsonl"
MAX_LOGIT_SCALE = math.log(100.0)  # CLIP's clamp of the learned temperature
CALIBRATION_STEPS = 20  # at most this many warm-up steps time the run when only --minutes is given


@dataclass(frozen=True)
class TrainSettings:
    """Everything a run depends on (written into the card and the checkpoint).

    Arguments:
      out: output folder.
      minutes: wall-clock budget of the training loop (the final evaluation and saving come after it).
      steps: total optimiser steps; None fixes it from the measured speed and `minutes`.
      seed: model initialisation and data stream seed.
      image_size: training image side.
      batch_size: pairs per step.
      lr: peak learning rate.
      weight_decay: AdamW decay of the matrices.
      warmup_steps: linear warm-up steps.
      world_size: side of the rendered scenes crops come from (None: data default).
      exclude_held_out: ablation: train without the held-out classes' images.
      bf16: bfloat16 autocast.
      device: "cpu", "cuda", ...; None picks cuda when available.
      num_workers: data-loader processes (0: in the training process).
      log_every: steps between log records.
      eval_every: steps between zero-shot evaluations during training (0: only at the end).
      eval_per_class: test crops per class.
      eval_world_seed: seed of the test scenes (keep it away from `seed`).
      checkpoint_minutes: minutes between resumable checkpoints.
      threads: torch CPU threads (None: torch's default).
      vocabulary_loss_weight: weight of the crops' classification against every class name (0: InfoNCE only).
      region_batch_size: whole scenes per step for the region loss (0: none, the default). Each segment's mask
        pools the scene's stride-32 features as OMG's out-of-vocabulary classifier does, and the pooled embedding
        is classified against every class name (omg_core.clip_train.regions).
      region_image_size: side of those scenes and of the evaluation's whole scenes (OMG's shapes-world inputs are 128).
      region_loss_weight: weight of the region loss.
      region_eval_scenes: test scenes of the mask-pooled zero-shot figures (200 hold about 770 things).
      init: a clip.safetensors file to start from instead of random weights (a second stage of training).
    """

    out: str
    minutes: float = 5.0
    steps: int | None = None
    seed: int = 0
    image_size: int = 64
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 50
    world_size: int | None = None
    exclude_held_out: bool = False
    bf16: bool = False
    device: str | None = None
    num_workers: int = 1
    log_every: int = 10
    eval_every: int = 0
    eval_per_class: int = 10
    eval_world_seed: int = 10_000
    checkpoint_minutes: float = 10.0
    threads: int | None = None
    vocabulary_loss_weight: float = 1.0
    region_batch_size: int = 0
    region_image_size: int = 128
    region_loss_weight: float = 1.0
    region_eval_scenes: int = 200
    init: str | None = None

    def check(self) -> None:
        """Raises InputError naming the first impossible setting."""
        if self.minutes <= 0:
            raise InputError(f"--minutes must be positive, got {self.minutes}")
        if self.steps is not None and self.steps < 1:
            raise InputError(f"--steps must be at least 1, got {self.steps}")
        if self.batch_size < 2:
            raise InputError(f"--batch-size must be at least 2 (a contrastive loss needs negatives), got {self.batch_size}")
        if self.image_size < 32 or self.image_size % 32:
            raise InputError(f"--image-size must be a multiple of 32 (the ConvNeXt stride), got {self.image_size}")
        if self.steps is None and min(self.warmup_steps, CALIBRATION_STEPS) < 5:
            raise InputError("with --warmup-steps below 5 the run cannot time itself; give --steps")
        if self.vocabulary_loss_weight < 0:
            raise InputError(f"--vocabulary-loss-weight must be non-negative, got {self.vocabulary_loss_weight}")
        if self.region_batch_size < 0 or self.region_loss_weight < 0:
            raise InputError("--region-batch-size and --region-loss-weight must be non-negative")
        if self.region_eval_scenes < 1:
            raise InputError(f"--region-eval-scenes must be at least 1, got {self.region_eval_scenes}")
        if self.region_image_size < 32 or self.region_image_size % 32:
            raise InputError(f"--region-image-size must be a multiple of 32, got {self.region_image_size}")
        if self.init is not None and not Path(self.init).is_file():
            raise InputError(f"--init {self.init} does not exist; give a clip.safetensors file from an earlier run")
        if self.lr <= 0 or self.weight_decay < 0:
            raise InputError("--lr must be positive and --weight-decay non-negative")


# ---------------------------------------------------------------------------------------------- model and weights
@contextlib.contextmanager
def _quiet_creation() -> Iterator[None]:
    # open_clip warns on the root logger (and with warnings) whenever no pretrained tag is given: here on purpose
    class _Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not record.getMessage().startswith("No pretrained weights loaded")

    drop = _Drop()
    logging.getLogger().addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.getLogger().removeFilter(drop)


def build_clip(seed: int | None = None, weights: str | Path | None = None) -> tuple[nn.Module, object]:
    """The tiny open_clip model and its tokenizer.

    Arguments:
      seed: initialise from this torch seed (None: the current global RNG state).
      weights: a clip.safetensors file to load (strictly) after building.

    Returns:
      (open_clip CLIP model on the CPU, tokenizer: list[str] -> N x 16 token ids).
    """
    register_open_clip_configs()
    with _quiet_creation():
        if seed is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = open_clip.create_model(CLIP_MODEL_NAME)
        else:
            model = open_clip.create_model(CLIP_MODEL_NAME)
    if weights is not None:
        load_clip_weights(model, weights)
    return model, open_clip.get_tokenizer(CLIP_MODEL_NAME)


def save_clip_weights(model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Writes the model's state_dict (open_clip key layout, float32) to a safetensors file."""
    state = {key: value.detach().to("cpu", torch.float32).contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt", "model": CLIP_MODEL_NAME, **(metadata or {})})
    give_ordinary_mode(path)


def load_clip_weights(model: nn.Module, path: str | Path) -> None:
    """Loads a `save_clip_weights` file into an open_clip model of the same config (every key must match)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"CLIP weights {path} do not exist; train them with python -m omg_core.clip_train.train")
    model.load_state_dict(load_file(str(path)), strict=True)


# ------------------------------------------------------------------------------------------------ loss and schedule
def contrastive_loss(
    image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, logit_scale: torch.Tensor, keys: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE where pairs with equal keys are all positives of each other.

    With a 64-class vocabulary a batch often holds two crops of one class; counting the other one's caption as a
    negative would push apart what should match. With all keys distinct this is exactly CLIP's loss.

    Arguments:
      image_embeddings: B x D L2-normalised.
      text_embeddings: B x D L2-normalised.
      logit_scale: the temperature multiplier exp(t) (a scalar).
      keys: B int64 ids; equal ids mark interchangeable pairs.

    Returns:
      the scalar loss: mean over rows of -log(softmax mass on the positives), averaged over both directions.
    """
    logits = logit_scale * image_embeddings @ text_embeddings.T  # B x B, images as rows
    positive = keys[:, None] == keys[None, :]  # B x B, symmetric

    def one_direction(rows: torch.Tensor) -> torch.Tensor:
        on_positives = torch.logsumexp(rows.masked_fill(~positive, float("-inf")), dim=1)
        return (torch.logsumexp(rows, dim=1) - on_positives).mean()

    return 0.5 * (one_direction(logits) + one_direction(logits.T))


def vocabulary_loss(
    image_embeddings: torch.Tensor, vocabulary_embeddings: torch.Tensor, logit_scale: torch.Tensor,
    labels: torch.Tensor,
) -> torch.Tensor:
    """Cross-entropy of each crop against the whole class vocabulary (scenes, label -1, are left out).

    Arguments:
      image_embeddings: B x D L2-normalised.
      vocabulary_embeddings: K x D L2-normalised, one per class name.
      logit_scale: the temperature multiplier exp(t) (a scalar).
      labels: B int64 indices into the vocabulary, -1 for pairs that are not a single-class crop.

    Returns:
      the scalar mean over crops (0 when the batch has none).
    """
    crops = labels >= 0
    if not bool(crops.any()):
        return image_embeddings.sum() * 0.0
    logits = logit_scale * image_embeddings[crops] @ vocabulary_embeddings.T  # C x K
    return F.cross_entropy(logits, labels[crops])


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on matrices and convolutions, none on biases, norms, embeddings and the logit scale."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        keep = parameter.ndim < 2 or "embedding" in name or "logit_scale" in name
        (no_decay if keep else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int | None) -> float:
    """Linear warm-up over `warmup_steps` then cosine decay to 0 at `total_steps` (step is 0-based).
    total_steps may be None only inside the warm-up."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if total_steps is None:
        raise ValueError("the cosine phase needs total_steps")
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------------------------------- batches
class _BatchStream(Dataset):
    """Batch b of the pair stream, tokenised, with its keys as small integers and its crops' indices into
    `vocabulary` (-1 for scenes), built in the loader workers."""

    def __init__(self, pairs: ShapesWorldPairs, batch_size: int, tokenizer: object, vocabulary: list[str],
                 regions: ShapesWorldRegions | None = None, region_batch_size: int = 0) -> None:
        self.pairs = pairs
        self.batch_size = batch_size
        self.regions = regions
        self.region_batch_size = region_batch_size
        self.tokenizer = tokenizer
        self.vocabulary_index = {name: i for i, name in enumerate(vocabulary)}

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        batch = self.pairs.batch(index, self.batch_size)
        ids = {key: i for i, key in enumerate(dict.fromkeys(batch.keys))}
        keys = torch.tensor([ids[key] for key in batch.keys], dtype=torch.int64)  # B
        labels = torch.tensor([self.vocabulary_index.get(label, -1) for label in batch.labels], dtype=torch.int64)
        if self.regions is None or self.region_batch_size == 0:
            empty = torch.zeros(0, dtype=torch.uint8)
            return batch.images, self.tokenizer(batch.captions), keys, labels, empty, empty.float(), empty.long()
        scenes = self.regions.batch(index, self.region_batch_size)
        region_labels = torch.full(scenes.mask_logits.shape[:2], -1, dtype=torch.int64)  # R x Q
        for r, names in enumerate(scenes.names):
            region_labels[r, :len(names)] = torch.tensor([self.vocabulary_index.get(n, -1) for n in names],
                                                         dtype=torch.int64)
        # B x 3 x S x S, B x L, B, B; R x 3 x S' x S', R x Q x S'/4 x S'/4, R x Q
        return (batch.images, self.tokenizer(batch.captions), keys, labels, scenes.images, scenes.mask_logits,
                region_labels)


def _batches(stream: _BatchStream, start: int, num_workers: int) -> Iterator[tuple[torch.Tensor, ...]]:
    """An iterator over batches start, start + 1, ...; dropping it stops the loader workers."""
    # batch_size=None: every dataset item already is a batch; the sampler starts where a resumed run stopped
    loader = DataLoader(stream, batch_size=None, sampler=range(start, 2**62), num_workers=num_workers,
                        prefetch_factor=4 if num_workers else None)
    return iter(loader)


# ----------------------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, step: int,
                    total_steps: int | None, settings: TrainSettings, elapsed_s: float) -> None:
    """Model weights ("model." + state_dict key) and AdamW moments ("adamw.<param name>.<moment>") in one
    safetensors file; the step, total and settings in its metadata. Written to a temporary name first."""
    names = {id(p): n for n, p in model.named_parameters()}
    state = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for parameter, moments in optimizer.state.items():
        for moment, value in moments.items():
            state[f"adamw.{names[id(parameter)]}.{moment}"] = torch.as_tensor(value).detach().cpu().contiguous()
    metadata = {"step": str(step), "total_steps": str(total_steps if total_steps is not None else ""),
                "elapsed_s": f"{elapsed_s:.3f}", "settings": json.dumps(dataclasses.asdict(settings))}
    temporary = path.with_suffix(".tmp")
    save_file(state, str(temporary), metadata=metadata)
    give_ordinary_mode(temporary)
    temporary.replace(path)


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[int, int | None, float]:
    """Restores a `save_checkpoint` file; returns (next step, total steps, elapsed seconds)."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    state = load_file(str(path))
    model.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}, strict=True)
    device = next(model.parameters()).device
    for name, parameter in model.named_parameters():
        moments = {k.rsplit(".", 1)[1]: v for k, v in state.items()
                   if k.startswith(f"adamw.{name}.") and k.count(".") == name.count(".") + 2}
        if moments:
            optimizer.state[parameter] = {
                k: (v if k == "step" else v.to(device)) for k, v in moments.items()
            }
    total = metadata.get("total_steps", "")
    return int(metadata["step"]), (int(total) if total else None), float(metadata.get("elapsed_s", "0"))


# ------------------------------------------------------------------------------------------------------- the run
def _device(name: str | None) -> torch.device:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: no CUDA device here; use --device cpu")
    return device


def train(settings: TrainSettings, resume: bool = False) -> dict:
    """Runs (or resumes) a training run and writes the weights, checkpoint, log and card into `settings.out`.

    Returns:
      the card (also written to DIR/clip_card.json).
    """
    settings.check()
    out = Path(settings.out)
    if not resume and ((out / WEIGHTS_FILE).exists() or (out / CHECKPOINT_FILE).exists()):
        raise InputError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if resume and not (out / CHECKPOINT_FILE).is_file():
        raise InputError(f"--resume: {out / CHECKPOINT_FILE} does not exist; start without --resume")
    out.mkdir(parents=True, exist_ok=True)
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    device = _device(settings.device)

    model, tokenizer = build_clip(settings.seed, settings.init)
    model.to(device).train()
    optimizer = torch.optim.AdamW(parameter_groups(model, settings.weight_decay), lr=settings.lr,
                                  betas=(0.9, 0.98), eps=1e-6)
    step, total_steps, previous_s = 0, settings.steps, 0.0
    if resume:
        step, saved_total, previous_s = load_checkpoint(out / CHECKPOINT_FILE, model, optimizer)
        total_steps = settings.steps or saved_total
    pairs = ShapesWorldPairs(seed=settings.seed, image_size=settings.image_size, world_size=settings.world_size,
                             exclude_held_out=settings.exclude_held_out)
    vocabulary = training_vocabulary(settings.exclude_held_out)
    regions = (ShapesWorldRegions(settings.seed, settings.region_image_size, settings.exclude_held_out)
               if settings.region_batch_size else None)
    stream = _BatchStream(pairs, settings.batch_size, tokenizer, vocabulary, regions, settings.region_batch_size)
    budget_s = settings.minutes * 60.0
    calibrate_until = min(settings.warmup_steps, CALIBRATION_STEPS)
    log = (out / LOG_FILE).open("a", encoding="utf-8")

    def write(record: dict) -> None:
        log.write(json.dumps(record) + "\n")
        log.flush()

    first_step = step
    started = time.perf_counter()
    last_checkpoint = started
    window_start, window_loss, window_steps, window_wait = started, 0.0, 0, 0.0
    calibration_start: float | None = None
    batches = _batches(stream, step, settings.num_workers)
    try:
        while total_steps is None or step < total_steps:
            now = time.perf_counter()
            if now - started >= budget_s:
                break
            if step == first_step + 2:
                calibration_start = now  # the first steps pay for worker start-up and allocator warm-up
            if total_steps is None and step >= calibrate_until:
                per_step = (now - (calibration_start or started)) / max(1, step - first_step - 2)
                total_steps = step + max(1, int(0.97 * (budget_s - (now - started)) / per_step))
                write({"event": "calibrated", "step": step, "seconds_per_step": per_step, "total_steps": total_steps})
            images, tokens, keys, labels, region_images, region_masks, region_labels = next(batches)
            use_regions = settings.region_batch_size > 0 and settings.region_loss_weight > 0
            window_wait += time.perf_counter() - now
            lr = lr_at(step, settings.lr, settings.warmup_steps, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=settings.bf16):
                image_embeddings = model.encode_image(normalize_images(images.to(device)), normalize=True)
                text_embeddings = model.encode_text(tokens.to(device), normalize=True)
                if settings.vocabulary_loss_weight > 0 or use_regions:
                    # one template per step, in turn, so every sentence form is used as a classifier
                    template = CROP_TEMPLATES[step % len(CROP_TEMPLATES)]
                    vocabulary_tokens = tokenizer([template.format(name) for name in vocabulary])
                    vocabulary_embeddings = model.encode_text(vocabulary_tokens.to(device), normalize=True)
                if use_regions:
                    pooled, pooled_valid = region_embeddings(model, region_images, region_masks)
            loss = contrastive_loss(image_embeddings.float(), text_embeddings.float(), model.logit_scale.exp(),
                                    keys.to(device))
            if settings.vocabulary_loss_weight > 0:
                loss = loss + settings.vocabulary_loss_weight * vocabulary_loss(
                    image_embeddings.float(), vocabulary_embeddings.float(), model.logit_scale.exp(),
                    labels.to(device))
            if use_regions:
                loss = loss + settings.region_loss_weight * region_loss(
                    pooled.float(), pooled_valid, vocabulary_embeddings.float(), model.logit_scale.exp(),
                    region_labels.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0.0, MAX_LOGIT_SCALE)
            step += 1
            window_loss += float(loss.detach())
            window_steps += 1
            if step % settings.log_every == 0 or step == total_steps:
                now = time.perf_counter()
                write({"step": step, "loss": window_loss / window_steps, "lr": lr,
                       "logit_scale": float(model.logit_scale.detach().exp()), "elapsed_s": round(now - started, 3),
                       "steps_per_s": window_steps / max(now - window_start, 1e-9),
                       "data_wait_fraction": window_wait / max(now - window_start, 1e-9)})
                window_start, window_loss, window_steps, window_wait = now, 0.0, 0, 0.0
            if settings.eval_every and step % settings.eval_every == 0:
                figures = zero_shot_accuracy(model, tokenizer, settings.eval_world_seed, settings.eval_per_class,
                                             settings.image_size)
                write({"event": "zero_shot", "step": step, **figures})
                if settings.region_batch_size:
                    figures = region_zero_shot_accuracy(model, tokenizer, settings.eval_world_seed,
                                                        settings.region_eval_scenes, settings.region_image_size)
                    write({"event": "region_zero_shot", "step": step, **figures})
            if time.perf_counter() - last_checkpoint >= settings.checkpoint_minutes * 60.0:
                save_checkpoint(out / CHECKPOINT_FILE, model, optimizer, step, total_steps, settings,
                                previous_s + time.perf_counter() - started)
                last_checkpoint = time.perf_counter()
    finally:
        del batches  # stops the loader workers
    train_s = time.perf_counter() - started
    model.eval()
    figure_sets = zero_shot_figure_sets(model, tokenizer, settings.eval_world_seed, settings.eval_per_class,
                                        settings.region_eval_scenes, settings.image_size, settings.region_image_size)
    for event, figures in figure_sets.items():
        write({"event": event, "step": step, **figures})
    log.close()
    save_checkpoint(out / CHECKPOINT_FILE, model, optimizer, step, total_steps, settings, previous_s + train_s)
    save_clip_weights(model, out / WEIGHTS_FILE, {"seed": str(settings.seed), "steps": str(step),
                                                  "image_size": str(settings.image_size)})
    card = {
        "model": CLIP_MODEL_NAME,
        "weights": WEIGHTS_FILE,
        "key_layout": "open_clip CLIP state_dict (open_clip.create_model(model).load_state_dict); "
                      "backbone_state_dict_from_clip renames it for ClipConvNeXtBackbone",
        "seed": settings.seed,
        "steps": step,
        "total_steps": total_steps,
        "finished_schedule": total_steps is not None and step >= total_steps,
        "minutes": round((previous_s + train_s) / 60.0, 3),
        "steps_per_s": round((step - first_step) / max(train_s, 1e-9), 3),
        "image_size": settings.image_size,
        "batch_size": settings.batch_size,
        "pixel_mean": list(PIXEL_MEAN),
        "pixel_std": list(PIXEL_STD),
        "exclude_held_out": settings.exclude_held_out,
        "device": str(device),
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        **figure_sets,
        "settings": dataclasses.asdict(settings),
    }
    (out / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card


def _parser() -> argparse.ArgumentParser:
    defaults = TrainSettings(out="")
    parser = argparse.ArgumentParser(prog="python -m omg_core.clip_train.train", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--minutes", type=float, required=True, help="wall-clock budget of the training loop")
    parser.add_argument("--steps", type=int, default=None, help="total steps (default: fit the budget)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--image-size", type=int, default=defaults.image_size)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    parser.add_argument("--world-size", type=int, default=None, help="side of the rendered scenes")
    parser.add_argument("--exclude-held-out", action="store_true", help="ablation: no held-out class images")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    parser.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda when available)")
    parser.add_argument("--num-workers", type=int, default=defaults.num_workers)
    parser.add_argument("--log-every", type=int, default=defaults.log_every)
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every)
    parser.add_argument("--eval-per-class", type=int, default=defaults.eval_per_class)
    parser.add_argument("--eval-world-seed", type=int, default=defaults.eval_world_seed)
    parser.add_argument("--checkpoint-minutes", type=float, default=defaults.checkpoint_minutes)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--vocabulary-loss-weight", type=float, default=defaults.vocabulary_loss_weight,
                        help="weight of classifying each crop against every class name (0: InfoNCE only)")
    parser.add_argument("--region-batch-size", type=int, default=defaults.region_batch_size,
                        help="whole scenes per step for the mask-pooled region loss (0: none)")
    parser.add_argument("--region-image-size", type=int, default=defaults.region_image_size)
    parser.add_argument("--region-loss-weight", type=float, default=defaults.region_loss_weight)
    parser.add_argument("--region-eval-scenes", type=int, default=defaults.region_eval_scenes)
    parser.add_argument("--init", default=None, help="start from this clip.safetensors (a second training stage)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command-line entry; returns the exit status."""
    arguments = vars(_parser().parse_args(argv))
    resume = arguments.pop("resume")
    try:
        card = train(TrainSettings(**arguments), resume=resume)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    figures = card["zero_shot"]
    print(f"{card['steps']} steps in {card['minutes']:.2f} min; zero-shot seen {figures['seen']:.3f} "
          f"held-out {figures['held_out']:.3f} colour {figures['colour']:.3f} shape {figures['shape']:.3f}; "
          f"masked crops of scene things: seen {card['masked_crop_zero_shot']['seen']:.3f} "
          f"held-out {card['masked_crop_zero_shot']['held_out']:.3f}; "
          f"weights {Path(card['settings']['out']) / WEIGHTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
