"""Splitting an evaluation across processes (``torchrun``): each rank scores its share, then metric states sync.

File evaluators call :func:`items_for_this_rank` on their ordered list of images or videos and ``metric.sync()``
before ``compute``; outside ``torch.distributed`` both are no-ops, so the same code serves one process and many.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

import torch.distributed as dist

Item = TypeVar("Item")


def items_for_this_rank(items: Sequence[Item]) -> list[Item]:
    """Every ``world_size``-th item starting at this rank's index (all items outside torch.distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(items)
    return list(items[dist.get_rank() :: dist.get_world_size()])


@contextmanager
def distributed_from_environment() -> Iterator[None]:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1) with the gloo backend (CPU metrics) for the
    duration of the block, then wait for every rank and leave it.

    Leaving matters: a rank that exits while gloo's threads still run dies with ``std::terminate``. A group that was
    already initialised by the caller is left alone.
    """
    created = False
    if dist.is_available() and not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group(backend="gloo")
        created = True
    try:
        yield
        if created:
            dist.barrier()  # only on success: a failed rank must not wait for peers that are still evaluating
    finally:
        if created:
            dist.destroy_process_group()


def is_main_process() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
