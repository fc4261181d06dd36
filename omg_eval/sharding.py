"""Splitting an evaluation across processes (``torchrun``): each rank scores its share, then metric states sync.

File evaluators call :func:`items_for_this_rank` on their ordered list of images or videos; ``metric.compute()`` then
syncs the states across ranks by itself (see ``omg_eval.metric``). Outside ``torch.distributed`` both are no-ops, so
the same code serves one process and many.

torch is imported only once a process group is wanted (``WORLD_SIZE`` > 1) or already exists: a single-process
``omg eval --help`` must not pay for importing it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any, TypeVar

Item = TypeVar("Item")


def _process_group() -> ModuleType | None:
    """``torch.distributed`` when a process group is initialised, else None (without importing torch)."""
    if "torch" not in sys.modules:  # nobody imported torch, so no group can exist
        return None
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def items_for_this_rank(items: Sequence[Item]) -> list[Item]:
    """Every ``world_size``-th item starting at this rank's index (all items outside torch.distributed)."""
    dist = _process_group()
    if dist is None:
        return list(items)
    return list(items[dist.get_rank() :: dist.get_world_size()])


def gather_objects(value: Any) -> list[Any]:
    """``value`` of every rank, in rank order (``[value]`` outside torch.distributed); picklable values only."""
    dist = _process_group()
    if dist is None:
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


@contextmanager
def distributed_from_environment() -> Iterator[None]:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1) with the gloo backend (CPU metrics) for the
    duration of the block, then wait for every rank and leave it.

    Leaving matters: a rank that exits while gloo's threads still run dies with ``std::terminate``. A group that was
    already initialised by the caller is left alone.
    """
    dist = None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch.distributed

        if torch.distributed.is_available() and not torch.distributed.is_initialized():
            dist = torch.distributed
            dist.init_process_group(backend="gloo")
    try:
        yield
        if dist is not None:
            dist.barrier()  # only on success: a failed rank must not wait for peers that are still evaluating
    finally:
        if dist is not None:
            dist.destroy_process_group()


def is_main_process() -> bool:
    dist = _process_group()
    return dist is None or dist.get_rank() == 0
