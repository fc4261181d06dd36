"""Binding a built-in task to its metric class in ``omg_eval`` without importing it (and torch) at discovery time."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from omg_core.errors import ConfigError

MetricFactory = Callable[[dict[str, Any]], Any]


def metric_from_options(task_name: str, class_path: str, options: Mapping[str, Any]) -> Any:
    """Instantiate ``module:Class`` with ``options`` as keyword arguments, naming any option it does not take."""
    module_name, _, class_name = class_path.partition(":")
    metric_class = getattr(importlib.import_module(module_name), class_name)
    signature = inspect.signature(metric_class)
    try:
        signature.bind(**options)
    except TypeError as exc:
        accepted = ", ".join(
            f"{name}" + ("" if p.default is inspect.Parameter.empty else f" (default {p.default!r})")
            for name, p in signature.parameters.items()
        )
        raise ConfigError(
            f"task {task_name!r}: metric options {sorted(options)} do not fit {class_name} ({exc}); "
            f"it takes: {accepted}"
        ) from exc
    return metric_class(**options)


def bind_metric(task_name: str, class_path: str) -> MetricFactory:
    """A factory creating ``class_path`` (``"omg_eval.module:Class"``) from the task's metric options."""

    def create(options: dict[str, Any]) -> Any:
        return metric_from_options(task_name, class_path, options)

    return create


def bind_metric_collection(task_name: str, class_paths: Mapping[str, str]) -> MetricFactory:
    """A factory creating several metrics fed the same inputs; ``options`` go to every member."""

    def create(options: dict[str, Any]) -> Any:
        from omg_eval.collection import MetricCollection

        return MetricCollection(
            {name: metric_from_options(task_name, path, options) for name, path in class_paths.items()}
        )

    return create
