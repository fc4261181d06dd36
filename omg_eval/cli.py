"""``omg eval``: evaluate prediction files of any task with its official metric; rich table out, JSON on request."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from omg_core.errors import InputError
from omg_eval.runner import EVALUATORS, evaluate_task


def to_json_ready(value: Any) -> Any:
    """Figures as plain JSON: NumPy/torch scalars to numbers, NaN to null, big arrays (AP curves) left out."""
    if isinstance(value, dict):
        return {str(k): to_json_ready(v) for k, v in value.items() if not isinstance(v, np.ndarray)}
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
        if name.startswith("per_class") or isinstance(value, (np.ndarray, list)):
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


@click.command("eval", help="Evaluate prediction files against the ground truth with the task's official metric.")
@click.option("--task", required=True, type=click.Choice(sorted(EVALUATORS)), help="which task's metric to run")
@click.option(
    "--predictions", required=True, type=click.Path(exists=True, path_type=Path), help="prediction file or folder"
)
@click.option(
    "--ground-truth",
    "ground_truth",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="ground-truth file or folder (not needed for interactive)",
)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="write figures as JSON")
def eval_command(task: str, predictions: Path, ground_truth: Path | None, output: Path | None) -> None:
    console = Console()
    with Progress(
        SpinnerColumn(),
        TextColumn(f"evaluating {task}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        bar = progress.add_task(task, total=None)
        try:
            figures = evaluate_task(task, predictions, ground_truth, lambda n: progress.advance(bar, n))
        except (ValueError, KeyError, FileNotFoundError, TypeError) as error:
            raise InputError(f"{task}: {error.args[0] if error.args else error}") from error
    table = Table(title=f"{task} evaluation", show_lines=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in summary_rows(figures):
        table.add_row(name, value)
    console.print(table)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(to_json_ready(figures), indent=1, sort_keys=True))
        console.print(f"figures written to {output}")
