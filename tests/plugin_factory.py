"""Builds throwaway task-plugin distributions (a package plus a ``.dist-info`` with entry points) in a folder,
so tests exercise the same entry-point discovery a ``pip install``ed third-party plugin goes through."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

# A complete, working third-party task: "bright" marks pixels brighter than a threshold. Its "model outputs" are
# whatever the predictor returns (a logit map), so tests can run it end to end with a stand-in predictor.
WORKING_PLUGIN = '''
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pydantic import Field

from omg_core import TaskInfo, hookimpl
from omg_core.task_info import TaskOptions
from omg_core.errors import ConfigError, InputError  # noqa: F401  (raised by test variants of the hooks)
from omg_core.file_evaluators import FileEvaluator
from omg_core.output_formats import OutputFormat
from omg_core.result_writer import ResultWriter, atomic_path
from omg_core.task_io import QueryPlan, TaskResult
from omg_eval.metric import Metric


class ForegroundIoU(Metric):
    def __init__(self):
        super().__init__()
        self.add_state("intersection", torch.zeros((), dtype=torch.int64), "sum")
        self.add_state("union", torch.zeros((), dtype=torch.int64), "sum")

    def update(self, pred, gt):
        self.intersection += (pred & gt).sum()
        self.union += (pred | gt).sum()

    def compute(self):
        return {"IoU": float(self.intersection) / max(int(self.union), 1)}


class BrightOptions(TaskOptions):
    threshold: float = Field(0.0, description="logit above which a pixel counts as bright")


@hookimpl
def omg_task_info():
    return TaskInfo(name=TASK_NAME, aliases=ALIASES, summary="pixels brighter than a threshold", modality="image",
                    vocabulary="closed", metrics=("IoU",), output_formats=("mask-png",),
                    file_evaluator=TASK_NAME + "-masks", options=BrightOptions)


def evaluate_mask_folders(predictions, ground_truth, progress):
    metric = ForegroundIoU()
    for truth in sorted(Path(ground_truth).glob("*.png")):
        read = lambda path: torch.from_numpy(np.array(Image.open(path)) > 0)
        metric.update(read(Path(predictions) / truth.name), read(truth))
        if progress is not None:
            progress(1)
    return metric.compute()


@hookimpl
def omg_file_evaluators():
    return [FileEvaluator(TASK_NAME + "-masks", "foreground IoU of mask PNGs", "folder of mask PNGs", "folder",
                          "folder of mask PNGs", "folder", evaluate_mask_folders)]


@hookimpl
def omg_encode_queries(request):
    return QueryPlan(learned_queries=True)


@hookimpl
def omg_decode_outputs(request, plan, outputs):
    return TaskResult(task=TASK_NAME, source=request.source, data=outputs > request.options.threshold)


@hookimpl
def omg_create_metric(options):
    return ForegroundIoU()


@hookimpl
def omg_output_formats():
    return [OutputFormat("mask-png", "a PNG per image, 255 where bright", tasks=(TASK_NAME,))]


class MaskPngWriter(ResultWriter):
    def write(self, result, index):
        path = self.output_dir / (self.stem(result, index) + ".png")
        with atomic_path(path) as temporary:
            Image.fromarray(result.data.numpy().astype(np.uint8) * 255).save(temporary, format="PNG")
        return [path]


@hookimpl
def omg_open_writer(task, output_dir, output_format):
    if task.name != TASK_NAME or output_format != "mask-png":
        return None
    return MaskPngWriter(task, output_dir)
'''


def write_distribution(
    root: Path,
    dist_name: str,
    package: str,
    source: str,
    entry_points: dict[str, str],
    version: str = "0.1.0",
) -> None:
    """Write ``package/__init__.py`` and ``<dist>-<version>.dist-info`` declaring ``omg.tasks`` entry points."""
    package_dir = root / package
    package_dir.mkdir(parents=True, exist_ok=True)
    (package_dir / "__init__.py").write_text(textwrap.dedent(source), encoding="utf-8")
    dist_info = root / f"{dist_name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(exist_ok=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[omg.tasks]\n{lines}\n", encoding="utf-8")
    importlib.invalidate_caches()


def working_plugin_source(task_name: str, aliases: tuple[str, ...] = ()) -> str:
    return f"TASK_NAME = {task_name!r}\nALIASES = {aliases!r}\n" + WORKING_PLUGIN


def activate(root: Path) -> None:
    """Put ``root`` on sys.path so importlib.metadata sees its distributions."""
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()


def raising_plugin_source(task_name: str, hook: str, statement: str, aliases: tuple[str, ...] = ()) -> str:
    """The working plugin, except that ``hook`` first runs ``statement`` (say ``raise ValueError("bad")``)."""
    source = working_plugin_source(task_name, aliases)
    marker = f"\ndef {hook}("
    start = source.index(marker)
    body = source.index(":\n", start) + 2
    return source[:body] + f"    {statement}\n" + source[body:]


def line_of(source: str, text: str) -> int:
    """The 1-based line of ``source`` (as written by write_distribution) holding ``text``."""
    return next(number for number, line in enumerate(textwrap.dedent(source).splitlines(), 1) if text in line)
