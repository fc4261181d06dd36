"""Base class of every OMG metric, torchmetrics-style: ``update`` accumulates, ``compute`` reduces, ``reset`` clears.

A metric declares its accumulators with :meth:`Metric.add_state`, giving each a reduction across processes
(``"sum"``, ``"max"``, ``"min"`` for tensors, ``"cat"`` for lists of tensors); because the reduction is declared
with the state, subclasses never write distributed code.

Syncing follows torchmetrics' ``Metric`` (``sync`` / ``unsync`` / ``sync_context`` / ``_wrap_compute``):

- ``compute`` syncs by itself. When a ``torch.distributed`` process group is initialised, it all-reduces or
  all-gathers every state over the default group, computes on the reduced states, then restores this rank's local
  states. So ``update / compute / update / compute`` gives the global figures over everything seen so far at each
  ``compute`` and never counts a batch twice. ``compute`` is a collective: every rank must call it. Its result is
  not cached; each call computes again from the states.
- The wrapping is done once per class by ``__init_subclass__``: a subclass writes plain ``update`` and ``compute``
  (only reading states) and the base class wraps them. A wrapped ``compute`` on a metric that is already synced
  (inside :meth:`Metric.sync_context`, or after an explicit :meth:`Metric.sync`) computes on those reduced states
  and leaves them in place.
- :meth:`Metric.sync` / :meth:`Metric.unsync` (or the :meth:`Metric.sync_context` context manager) are for callers
  that need the reduced states themselves, for example to read a count. A second ``sync`` before ``unsync`` is a
  no-op: the states are reduced once. ``update`` (and :meth:`Metric.merge_state`) on a synced metric raise, since
  they would add to the reduced states. Outside ``torch.distributed`` syncing moves no data, but the synced flag
  and its checks are the same, so misuse shows in single-process tests too.
"""

from __future__ import annotations

import copy
import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
import torch.distributed as dist

Reduction = Literal["sum", "max", "min", "cat"]


class Metric(ABC):
    """Accumulates statistics with :meth:`update` and turns them into figures with :meth:`compute`.

    Subclasses call :meth:`add_state` in ``__init__`` for every accumulator, implement :meth:`update` (only adds to
    states) and :meth:`compute` (only reads states, returns a ``dict`` of named figures). The base class wraps both
    (see the module docstring): ``compute`` runs on the states reduced over all processes, ``update`` refuses a
    synced metric.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        if "compute" in own and not getattr(own["compute"], "_omg_sync_wrapped", False):
            cls.compute = _compute_on_synced_states(own["compute"])  # type: ignore[method-assign]
        if "update" in own and not getattr(own["update"], "_omg_sync_wrapped", False):
            cls.update = _update_on_local_states(own["update"])  # type: ignore[method-assign]

    def __init__(self) -> None:
        self._defaults: dict[str, torch.Tensor | list[Any]] = {}
        self._reductions: dict[str, Reduction] = {}
        self._synced = False
        self._local_states: dict[str, torch.Tensor | list[Any]] | None = None  # kept while synced, for unsync

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
        """Restore every state to its default, ready for a new evaluation (a synced metric is unsynced too)."""
        for name, default in self._defaults.items():
            setattr(self, name, copy.deepcopy(default))
        self._synced = False
        self._local_states = None

    def state_dict(self) -> dict[str, torch.Tensor | list[Any]]:
        return {name: getattr(self, name) for name in self._defaults}

    def merge_state(self, other_states: dict[str, torch.Tensor | list[Any]]) -> None:
        """Fold another instance's states into this one (the single-process analogue of :meth:`sync`)."""
        self._refuse_when_synced("merge_state")
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

    @property
    def is_synced(self) -> bool:
        """True between :meth:`sync` and :meth:`unsync`: the states then hold the reduction over all processes."""
        return self._synced

    def sync(self, group: Any = None) -> None:
        """Replace every state by its reduction across the processes of ``group``, keeping the local states aside.

        :meth:`compute` does this by itself; call ``sync`` only to read reduced states, and :meth:`unsync` after (or
        use :meth:`sync_context`). A second ``sync`` before ``unsync`` changes nothing. A collective: every rank of
        ``group`` must call it. Tensor states must have the same shape on every rank (declare them with a fixed
        size); list states may differ in length. Outside ``torch.distributed`` no data moves.
        """
        if self._synced:
            return
        if dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1:
            local = {name: getattr(self, name) for name in self._defaults}
            try:
                self._reduce_states(group)
            except BaseException:
                for name, value in local.items():
                    setattr(self, name, value)
                raise
            self._local_states = local
        self._synced = True

    def unsync(self) -> None:
        """Put back this rank's local states after :meth:`sync`, so that later updates add to them (no-op if not synced)."""
        if self._local_states is not None:
            for name, value in self._local_states.items():
                setattr(self, name, value)
        self._local_states = None
        self._synced = False

    @contextmanager
    def sync_context(self, group: Any = None) -> Iterator[Metric]:
        """``with metric.sync_context(): ...`` runs its body on reduced states and restores the local ones after.

        Inside a sync already in force (an outer context or an explicit :meth:`sync`) it leaves that sync alone.
        """
        if self.is_synced:
            yield self
            return
        self.sync(group)
        try:
            yield self
        finally:
            self.unsync()

    def _reduce_states(self, group: Any) -> None:
        """All-reduce (sum / max / min) or all-gather (cat) every state in place of the local one."""
        world_size = dist.get_world_size(group)
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

    def _refuse_when_synced(self, action: str) -> None:
        if self.is_synced:
            raise RuntimeError(
                f"{type(self).__name__}.{action} called on a synced metric: its states hold the reduction over all "
                "processes, so new data would be counted into every rank's share. Call unsync() first, or read "
                "reduced states inside `with metric.sync_context():`"
            )


def _compute_on_synced_states(compute: Callable[..., Any]) -> Callable[..., Any]:
    """``compute`` run inside :meth:`Metric.sync_context` (a no-op wrapper for a metric already synced)."""

    @functools.wraps(compute)
    def wrapped(self: Metric, *args: Any, **kwargs: Any) -> Any:
        with self.sync_context():
            return compute(self, *args, **kwargs)

    wrapped._omg_sync_wrapped = True  # type: ignore[attr-defined]
    return wrapped


def _update_on_local_states(update: Callable[..., Any]) -> Callable[..., Any]:
    """``update`` that refuses a synced metric (it would add to the reduced states)."""

    @functools.wraps(update)
    def wrapped(self: Metric, *args: Any, **kwargs: Any) -> Any:
        self._refuse_when_synced("update")
        return update(self, *args, **kwargs)

    wrapped._omg_sync_wrapped = True  # type: ignore[attr-defined]
    return wrapped
