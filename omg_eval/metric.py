"""Base class of every OMG metric, torchmetrics-style: ``update`` accumulates, ``compute`` reduces, ``reset`` clears.

A metric declares its accumulators with :meth:`Metric.add_state`, giving each a reduction across processes
(``"sum"``, ``"max"``, ``"min"`` for tensors, ``"cat"`` for lists of tensors). :meth:`Metric.sync` all-reduces or
all-gathers them with ``torch.distributed`` so that ``compute`` on every rank sees the whole data set; because the
reduction is declared with the state, subclasses never write distributed code.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Any, Literal

import torch
import torch.distributed as dist

Reduction = Literal["sum", "max", "min", "cat"]


class Metric(ABC):
    """Accumulates statistics with :meth:`update` and turns them into figures with :meth:`compute`.

    Subclasses call :meth:`add_state` in ``__init__`` for every accumulator, implement :meth:`update` (only adds to
    states) and :meth:`compute` (only reads states, returns a ``dict`` of named figures).
    """

    def __init__(self) -> None:
        self._defaults: dict[str, torch.Tensor | list[Any]] = {}
        self._reductions: dict[str, Reduction] = {}
        self._synced = False

    def add_state(self, name: str, default: torch.Tensor | list[Any], dist_reduce_fx: Reduction) -> None:
        """Declare an accumulator ``self.<name>`` with its initial value and its reduction across processes."""
        if dist_reduce_fx not in ("sum", "max", "min", "cat"):
            raise ValueError(f"state {name!r}: dist_reduce_fx must be 'sum', 'max', 'min' or 'cat', not {dist_reduce_fx!r}")
        if isinstance(default, list):
            if default:
                raise ValueError(f"state {name!r}: a list state must start empty")
            if dist_reduce_fx != "cat":
                raise ValueError(f"state {name!r}: a list state can only be reduced with 'cat'")
        elif not isinstance(default, torch.Tensor):
            raise TypeError(f"state {name!r}: default must be a tensor or an empty list, got {type(default).__name__}")
        self._defaults[name] = default
        self._reductions[name] = dist_reduce_fx
        setattr(self, name, copy.deepcopy(default))

    @abstractmethod
    def update(self, *args: Any, **kwargs: Any) -> None:
        """Add one batch of predictions and ground truth to the states."""

    @abstractmethod
    def compute(self) -> dict[str, Any]:
        """Reduce the states into the metric's figures."""

    def reset(self) -> None:
        """Restore every state to its default, ready for a new evaluation."""
        for name, default in self._defaults.items():
            setattr(self, name, copy.deepcopy(default))
        self._synced = False

    def state_dict(self) -> dict[str, torch.Tensor | list[Any]]:
        return {name: getattr(self, name) for name in self._defaults}

    def merge_state(self, other_states: dict[str, torch.Tensor | list[Any]]) -> None:
        """Fold another instance's states into this one (the single-process analogue of :meth:`sync`)."""
        for name, reduction in self._reductions.items():
            mine, theirs = getattr(self, name), other_states[name]
            if reduction == "cat":
                setattr(self, name, list(mine) + list(theirs))
            elif reduction == "sum":
                setattr(self, name, mine + theirs)
            elif reduction == "max":
                setattr(self, name, torch.maximum(mine, theirs))
            else:
                setattr(self, name, torch.minimum(mine, theirs))

    def sync(self, group: Any = None) -> None:
        """Reduce every state across the processes of ``group`` (no-op outside ``torch.distributed``).

        Call once after the last ``update`` on every rank, then ``compute``. Tensor states must have the same shape
        on every rank (declare them with a fixed size); list states may differ in length.
        """
        if self._synced or not (dist.is_available() and dist.is_initialized()):
            return
        world_size = dist.get_world_size(group)
        if world_size == 1:
            self._synced = True
            return
        ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
        for name, reduction in self._reductions.items():
            value = getattr(self, name)
            if reduction == "cat":
                gathered: list[list[Any]] = [[] for _ in range(world_size)]
                dist.all_gather_object(gathered, list(value), group=group)
                setattr(self, name, [item for rank_items in gathered for item in rank_items])
            else:
                reduced = value.clone()
                dist.all_reduce(reduced, op=ops[reduction], group=group)
                setattr(self, name, reduced)
        self._synced = True
