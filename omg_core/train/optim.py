"""AdamW over the trainable parameters (the frozen CLIP backbone is never among them) and the learning-rate schedule.

OMG-Seg (mmdet's paramwise_cfg) trains with AdamW, lr 1e-4, weight decay 0.05, no weight decay on the query
embeddings, the level embedding and normalisation layers; a linear warm-up, then x0.1 at 8/12 and 11/12 of the run.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from omg_core.train.config import OptimizerConfig, ScheduleConfig


def parameter_groups(model: nn.Module, config: OptimizerConfig) -> list[dict]:
    """Two AdamW groups of the parameters that require grad: with weight decay, and without it (names containing
    one of ``config.no_decay_keys``, and every 1-d tensor: biases and norm scales)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue  # the frozen CLIP backbone and text tower
        if parameter.ndim <= 1 or any(key in name for key in config.no_decay_keys):
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters")
    return [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, config: OptimizerConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(parameter_groups(model, config), lr=config.lr, betas=config.betas, eps=config.eps)


def lr_factor(step: int, schedule: ScheduleConfig, total_steps: int) -> float:
    """The learning-rate multiplier at ``step`` (0-based): linear warm-up from ``warmup_start_factor`` to 1 over
    ``warmup_steps``, then x``gamma`` at each milestone passed (step) or a cosine decay to 0 at ``total_steps``."""
    if step < schedule.warmup_steps:
        fraction = step / schedule.warmup_steps
        warmup = schedule.warmup_start_factor + (1 - schedule.warmup_start_factor) * fraction
    else:
        warmup = 1.0
    if schedule.kind == "step":
        passed = sum(step >= milestone for milestone in schedule.milestone_steps(total_steps))
        return warmup * schedule.gamma ** passed
    decay_steps = max(total_steps - schedule.warmup_steps, 1)
    progress = min(max(step - schedule.warmup_steps, 0) / decay_steps, 1.0)
    return warmup * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: ScheduleConfig,
                    total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, schedule, total_steps))
