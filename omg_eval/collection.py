"""Several metrics fed the same inputs and reported together (for example VPQ and STQ for video panoptic).

Syncing follows :mod:`omg_eval.metric`: the collection's ``compute`` syncs every member, computes each on its
reduced states and unsyncs them; ``sync`` / ``unsync`` / ``sync_context`` act on all members at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omg_eval.metric import Metric


class MetricCollection(Metric):
    """Forwards every ``update`` to each member metric and merges their ``compute`` results into one dict.

    Arguments:
      metrics: name -> metric; all members must accept the same ``update`` arguments. Figures that two members
        both report are kept apart as ``"<member name>/<figure>"``; others keep their own names.
    """

    def __init__(self, metrics: Mapping[str, Metric]) -> None:
        super().__init__()
        if not metrics:
            raise ValueError("a MetricCollection needs at least one metric")
        self.metrics = dict(metrics)
        self._synced_members: list[Metric] = []  # the members this collection's sync synced (and unsync restores)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for metric in self.metrics.values():
            metric.update(*args, **kwargs)

    def compute(self) -> dict[str, Any]:
        computed = {name: metric.compute() for name, metric in self.metrics.items()}
        counts: dict[str, int] = {}
        for figures in computed.values():
            for key in figures:
                counts[key] = counts.get(key, 0) + 1
        merged: dict[str, Any] = {}
        for name, figures in computed.items():
            for key, value in figures.items():
                merged[key if counts[key] == 1 else f"{name}/{key}"] = value
        return merged

    def reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset()
        super().reset()
        self._synced_members = []

    def sync(self, group: Any = None) -> None:
        """Sync every member not synced yet (a member synced on its own is left to its owner's ``unsync``)."""
        if self._synced:
            return
        synced: list[Metric] = []
        try:
            for metric in self.metrics.values():
                if not metric.is_synced:
                    metric.sync(group)
                    synced.append(metric)
        except BaseException:
            for metric in synced:
                metric.unsync()
            raise
        self._synced_members = synced
        self._synced = True

    def unsync(self) -> None:
        for metric in self._synced_members:
            metric.unsync()
        self._synced_members = []
        self._synced = False

    def state_dict(self) -> dict[str, Any]:
        return {name: metric.state_dict() for name, metric in self.metrics.items()}

    def merge_state(self, other_states: dict[str, Any]) -> None:
        self._refuse_when_synced("merge_state")
        for name, metric in self.metrics.items():
            metric.merge_state(other_states[name])
