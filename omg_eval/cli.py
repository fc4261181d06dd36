"""``omg eval``: evaluate prediction files of any task with its official metric; rich table out, JSON on request.

This module imports neither torch nor NumPy: `omg eval --help` must start at once, and each evaluator imports what it
uses when its task is asked for.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from omg_core.errors import InputError
from omg_core.file_evaluators import FileEvaluator
from omg_eval.anomalies import AnomalyLog, collect_anomalies
from omg_eval.sharding import distributed_from_environment, gather_objects, is_main_process

#: Arrays with more values than this (COCO's precision curves: 10 x 101 x K x 4 x 3) stay out of the JSON file.
MAX_JSON_ARRAY_VALUES = 10_000

stderr = Console(stderr=True, soft_wrap=True)  # warning lines stay whole for grep and tests


def _is_array(value: Any) -> bool:
    """A NumPy array or torch tensor of at least one dimension (duck-typed: neither library is imported here)."""
    return hasattr(value, "tolist") and hasattr(value, "shape") and getattr(value, "ndim", 0) > 0


def _is_large_array(value: Any) -> bool:
    if not _is_array(value):
        return False
    size = value.numel() if callable(getattr(value, "numel", None)) else value.size
    return size > MAX_JSON_ARRAY_VALUES


def to_json_ready(value: Any) -> Any:
    """Figures as plain JSON: NumPy/torch scalars to numbers, small arrays and tensors (per-class / per-video
    figures) to lists, NaN to null; arrays above MAX_JSON_ARRAY_VALUES values (AP curves) left out."""
    if isinstance(value, dict):
        return {str(k): to_json_ready(v) for k, v in value.items() if not _is_large_array(v)}
    if _is_array(value):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [to_json_ready(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def summary_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, value) rows of the headline figures: top-level numbers and one level of groups (e.g. All.pq)."""
    rows = []
    for name, value in figures.items():
        if name.startswith("per_class") or isinstance(value, list) or _is_array(value):
            continue
        if isinstance(value, dict):
            rows.extend((f"{name}.{k}", _format(v)) for k, v in value.items() if isinstance(v, (int, float)))
        elif isinstance(value, (int, float)):
            rows.append((name, _format(value)))
    return rows


def _format(value: float | int) -> str:
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    return "nan" if math.isnan(value) else f"{value:.4f}"


def _registry() -> Any:  # -> omg_core.registry.TaskRegistry, the one of this `omg` invocation
    from omg_core.registry import cached_registry

    root = click.get_current_context().find_root()
    return cached_registry(root.obj if isinstance(root.obj, dict) else {})


def _single_file_in(folder: Path) -> Path:
    """A task folder holding exactly one JSON and no sub-folder stands for that JSON (tasks whose results are one
    file keep it in their folder under --all)."""
    if folder.is_dir():
        candidates = sorted(folder.glob("*.json"))
        if len(candidates) == 1 and not any(p.is_dir() for p in folder.iterdir()):
            return candidates[0]
    return folder


def _all_tasks_with_inputs(
    predictions: Path, ground_truth: Path | None
) -> list[tuple[str, FileEvaluator, Path, Path | None]]:
    """For --all: every registered task with a file evaluator, and every evaluator name, whose predictions/<name>
    exists, with ground-truth/<name>."""
    if not predictions.is_dir():
        raise InputError(
            f"--all needs --predictions to be a folder holding one sub-folder per task; {predictions} is not"
        )
    registry = _registry()
    evaluators = registry.file_evaluators()
    names = sorted({h.name for h in registry if h.info.file_evaluator} | {n for n in evaluators if n not in registry})
    found = []
    for name in names:
        if not (predictions / name).exists():
            continue
        reported, evaluator = registry.file_evaluator_for(name)
        task_truth = None
        if ground_truth is not None and (ground_truth / name).exists():
            task_truth = _single_file_in(ground_truth / name)
        found.append((reported, evaluator, _single_file_in(predictions / name), task_truth))
    if not found:
        raise InputError(
            f"--all found no task folder under {predictions}; name sub-folders after tasks "
            f"(e.g. {predictions / 'panoptic'}) as listed by `omg tasks`"
        )
    return found


@click.command("eval", help="Evaluate prediction files against the ground truth with the task's official metric.")
@click.option(
    "--task",
    default=None,
    help="task name or alias (see `omg tasks`), or a file evaluator's name (e.g. 'vos' for DAVIS J&F)",
)
@click.option(
    "--all",
    "all_tasks",
    is_flag=True,
    help="evaluate every task that has a sub-folder <task> under --predictions (ground truth in the same layout)",
)
@click.option(
    "--predictions", required=True, type=click.Path(exists=True, path_type=Path), help="prediction file or folder"
)
@click.option(
    "--ground-truth",
    "ground_truth",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="ground-truth file or folder (interactive: not needed for a click-simulation log)",
)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="write figures as JSON")
@click.option(
    "--strict",
    is_flag=True,
    help="refuse inputs the official evaluator accepts but are odd (by default they are scored as the official tool "
    "scores them, with one warning line per kind)",
)
def eval_command(
    task: str | None, all_tasks: bool, predictions: Path, ground_truth: Path | None, output: Path | None, strict: bool
) -> None:
    if (task is None) == (not all_tasks):
        raise click.UsageError("give either --task T or --all")
    with distributed_from_environment():  # under torchrun each rank scores a share of the images or videos
        if all_tasks:
            jobs = _all_tasks_with_inputs(predictions, ground_truth)
        else:
            name, evaluator = _registry().file_evaluator_for(task)  # type: ignore[arg-type]
            jobs = [(name, evaluator, predictions, ground_truth)]
        console = Console(quiet=not is_main_process())  # one table, printed by rank 0
        results: dict[str, Any] = {}
        for name, evaluator, task_predictions, task_truth in jobs:
            results[name] = _evaluate_one(console, name, evaluator, task_predictions, task_truth, strict)
        if output is not None and is_main_process():
            output.parent.mkdir(parents=True, exist_ok=True)
            payload = results if all_tasks else next(iter(results.values()))
            output.write_text(json.dumps(to_json_ready(payload), indent=1, sort_keys=True))
            console.print(f"figures written to {output}")


def _evaluate_one(
    console: Console, name: str, evaluator: FileEvaluator, predictions: Path, ground_truth: Path | None, strict: bool
) -> dict[str, Any]:
    with Progress(
        SpinnerColumn(),
        TextColumn(f"evaluating {name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        bar = progress.add_task(name, total=None)
        try:
            with collect_anomalies(strict) as anomalies:
                figures = evaluator.evaluate(predictions, ground_truth, lambda n: progress.advance(bar, n))
        except (ValueError, KeyError, OSError, TypeError) as error:
            raise InputError(f"{name}: {_describe(error)}") from error
    _warn_anomalies(name, anomalies)
    table = Table(title=f"{name} evaluation", show_lines=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for row_name, value in summary_rows(figures):
        table.add_row(row_name, value)
    console.print(table)
    return figures


def _describe(error: Exception) -> str:
    """The message of an evaluator's error, whole (``args[0]`` alone would print 'utf-8' for a decoding error)."""
    if isinstance(error, KeyError) and len(error.args) == 1:
        return str(error.args[0])  # str() of a KeyError adds quotes
    return str(error) or type(error).__name__


def _warn_anomalies(name: str, anomalies: AnomalyLog) -> None:
    """One warning line per kind of anomaly, counted over every rank, printed by rank 0."""
    merged = AnomalyLog()
    for kinds in gather_objects(anomalies.kinds):
        merged.merge(kinds)
    if is_main_process():
        for line in merged.lines(name):
            stderr.print(f"[bold yellow]warning:[/] {escape(line)}", highlight=False)
