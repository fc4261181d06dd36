"""Splitting an evaluation across processes (``torchrun``): each rank scores its share, then metric states sync.

File evaluators call :func:`items_for_this_rank` on their ordered list of images or videos and ``metric.sync()``
before ``compute``; outside ``torch.distributed`` both are no-ops, so the same code serves one process and many.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypeVar

import torch.distributed as dist

Item = TypeVar("Item")


def items_for_this_rank(items: Sequence[Item]) -> list[Item]:
    """Every ``world_size``-th item starting at this rank's index (all items outside torch.distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(items)
    return list(items[dist.get_rank() :: dist.get_world_size()])


def init_distributed_from_environment() -> bool:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1), with the gloo backend (CPU metrics).

    Returns whether this process is part of a multi-process run.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    dist.init_process_group(backend="gloo")
    return True


def is_main_process() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
