"""Every built-in task binds a real metric through `omg_create_metric`, and reports the figures its TaskInfo names."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from omg_core.errors import ConfigError
from omg_core.registry import discover_tasks
from omg_eval.figures import headline_figure
from omg_eval.metric import Metric

PANOPTIC_CATEGORIES = [{"id": 1, "name": "red star", "isthing": 1}, {"id": 2, "name": "grass", "isthing": 0}]
OPTIONS: dict[str, dict[str, Any]] = {
    "semantic": {"num_classes": 3},
    "instance": {"category_ids": [1, 2]},
    "panoptic": {"categories": PANOPTIC_CATEGORIES},
    "interactive": {},
    "video-semantic": {"num_classes": 3},
    "video-instance": {"category_ids": [1, 2]},
    "video-panoptic": {"num_classes": 3, "thing_classes": [1], "label_divisor": 1000},
    "ov-seg": {"categories": PANOPTIC_CATEGORIES},
    "ov-interactive": {},
    "ov-vis": {"category_ids": [1, 2]},
}


def feed(task: str, metric: Metric) -> None:
    """One small, non-trivial update in each metric's own input format."""
    labels = torch.tensor([[0, 1, 1], [2, 2, 255]])
    if task in ("semantic",):
        metric.update(torch.tensor([[0, 1, 2], [2, 2, 0]]), labels)
    elif task == "video-semantic":
        clip = torch.randint(0, 3, (17, 4, 4), generator=torch.Generator().manual_seed(0))
        metric.update(clip, clip.clone())
    elif task in ("interactive", "ov-interactive"):
        metric.update(click_ious=[[0.4, 0.88, 0.93]], box_ious=[0.7])
    elif task == "video-panoptic":
        ids = torch.tensor([[[0, 1001], [2000, 1002]]] * 6)
        metric.update(ids, ids.clone())


@pytest.mark.parametrize("task", sorted(OPTIONS))
def test_builtin_task_metric_reports_its_named_figures(task: str) -> None:
    handle = discover_tasks().get(task)
    metric = handle.create_metric(OPTIONS[task])
    assert isinstance(metric, Metric)
    feed(task, metric)
    figures = metric.compute()
    for name in handle.info.metrics:
        value = headline_figure(figures, name)
        assert isinstance(value, (int, float)), f"{task}: {name} is {value!r}"


def test_fed_metrics_give_the_expected_values() -> None:
    registry = discover_tasks()
    semantic = registry.get("ss").create_metric(OPTIONS["semantic"])
    feed("semantic", semantic)
    # class 0: 1 TP (pixel 0,0); class 1: gt 2 px, pred 1 px, 1 TP; class 2: gt 2 px, pred 3 px, 2 TP
    assert semantic.compute()["mIoU"] == pytest.approx((1 / 1 + 1 / 2 + 2 / 3) / 3)
    panoptic = registry.get("vps").create_metric(OPTIONS["video-panoptic"])
    feed("video-panoptic", panoptic)
    assert headline_figure(panoptic.compute(), "VPQ") == pytest.approx(1.0)
    assert headline_figure(panoptic.compute(), "STQ") == pytest.approx(1.0)


def test_metric_options_that_do_not_fit_are_named() -> None:
    with pytest.raises(ConfigError, match=r"task 'semantic': metric options \['classes'\].*it takes: num_classes"):
        discover_tasks().get("semantic").create_metric({"classes": 3})


def test_a_metric_that_does_not_report_what_its_task_names_is_a_plugin_error(plugin_site) -> None:
    from plugin_factory import working_plugin_source, write_distribution

    from omg_core.errors import PluginValidationError

    source = working_plugin_source("bright").replace('metrics=("IoU",)', 'metrics=("IoU", "Dice")')
    write_distribution(plugin_site, "omg-bright", "omg_bright", source, {"bright": "omg_bright"})
    metric = discover_tasks().get("bright").create_metric({})
    metric.update(torch.ones(2, 2, dtype=torch.bool), torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(PluginValidationError, match="names 'Dice', but its metric does not report it .*among IoU"):
        metric.compute()
