"""Several metrics fed the same inputs and reported together (for example VPQ and STQ for video panoptic)."""

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

    def sync(self, group: Any = None) -> None:
        for metric in self.metrics.values():
            metric.sync(group)

    def state_dict(self) -> dict[str, Any]:
        return {name: metric.state_dict() for name, metric in self.metrics.items()}

    def merge_state(self, other_states: dict[str, Any]) -> None:
        for name, metric in self.metrics.items():
            metric.merge_state(other_states[name])
