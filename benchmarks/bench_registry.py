"""Start-up cost of task discovery (what `omg tasks` and `omg run` pay before any work) against the bare minimum:
reading the entry points and importing their plugins without any validation."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from omg_core.registry import ENTRY_POINT_GROUP, discover_tasks


@pytest.mark.benchmark(group="registry-discovery")
def test_discover_tasks(benchmark) -> None:
    benchmark.extra_info["role"] = "ours"
    registry = benchmark(discover_tasks)
    assert len(registry) >= 10


@pytest.mark.benchmark(group="registry-discovery")
def test_bare_entry_point_loading(benchmark) -> None:
    benchmark.extra_info["role"] = "reference"
    plugins = benchmark(lambda: [ep.load() for ep in entry_points(group=ENTRY_POINT_GROUP)])
    assert len(plugins) >= 10
