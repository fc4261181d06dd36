"""What ``omg run`` does: validate the inputs against the task, then encode -> model -> decode -> write."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from omg_core.config import RunConfig, RunModelConfig
from omg_core.errors import InputError, OMGError, TaskNotImplementedError
from omg_core.registry import TaskHandle, TaskRegistry
from omg_core.run_inputs import InputSource, iter_frames, plan_inputs, read_image, read_prompts
from omg_core.task_info import validate_options
from omg_core.task_io import Prompts, QueryPlan, TaskRequest, TaskResult

#: Runs the shared model for one request and its query plan, returning the raw outputs the task decodes.
Predictor = Callable[[TaskRequest, QueryPlan], Any]
PredictorFactory = Callable[[RunModelConfig], Predictor]


@dataclass(frozen=True)
class RunSummary:
    task: str
    num_samples: int
    written: tuple[Path, ...]
    overlays: tuple[Path, ...] = ()
    #: samples no installed plugin drew an overlay for (``--overlays``), so the user can be told
    samples_without_overlay: int = 0


def default_predictor_factory(model_config: RunModelConfig) -> Predictor:
    """Build the shared OMG model named in the config."""
    try:
        from omg_core.model.predictor import build_predictor  # type: ignore[import-not-found]
    except ImportError as exc:
        raise OMGError(
            f"model {model_config.name!r} cannot be built: this installation has no omg_core.model.predictor ({exc})"
        ) from exc
    return build_predictor(model_config)


def check_task_inputs(handle: TaskHandle, prompts: Prompts | None, vocabulary: list[str] | None) -> None:
    """Refuse prompts or vocabularies the task cannot use, and require the ones it needs."""
    info = handle.info
    if info.prompt_kinds and prompts is None:
        raise InputError(
            f"task {info.name!r} needs prompts ({', '.join(info.prompt_kinds)}); pass --prompts FILE.json"
        )
    if prompts is not None:
        if not info.prompt_kinds:
            raise InputError(f"task {info.name!r} takes no prompts; drop --prompts or pick an interactive task")
        unsupported = [kind for kind in prompts.kinds if kind not in info.prompt_kinds]
        if unsupported:
            raise InputError(
                f"task {info.name!r} accepts {', '.join(info.prompt_kinds)} prompts, not {', '.join(unsupported)}"
            )
    if vocabulary is not None and info.vocabulary != "open":
        raise InputError(
            f"task {info.name!r} has a closed vocabulary; --vocabulary is for open-vocabulary tasks "
            "(see the 'vocabulary' column of `omg tasks`)"
        )


def prepare_output_dir(output: Path, overwrite: bool) -> None:
    if output.exists() and not output.is_dir():
        raise InputError(f"--output {output} is a file; give a directory")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise InputError(f"--output {output} is not empty; choose another directory or pass --overwrite")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--output {output}: cannot create the directory ({exc})") from exc


def load_pixels(source: InputSource) -> torch.Tensor:
    """(3, H, W) uint8 for an image source, (T, 3, H, W) uint8 for a clip."""
    if source.modality == "image":
        return read_image(source.path)
    frames = list(iter_frames(source))
    if not frames:
        raise InputError(f"{source.path}: the video has no frames")
    return torch.stack(frames)


def run_task(
    config: RunConfig,
    registry: TaskRegistry,
    predictor_factory: PredictorFactory = default_predictor_factory,
    on_sample: Callable[[int, int], None] | None = None,
    options_source: str = "task options",
) -> RunSummary:
    """Run one task over the configured input and write its results.

    Every check that can fail from the user's inputs (the task's options included) runs before the model is built and
    before anything is written. ``options_source`` names where the options came from, for errors.
    """
    handle = registry.get(config.task.name)
    info = handle.info
    if not info.implemented:
        raise TaskNotImplementedError(
            f"task {info.name!r} is registered but not implemented yet: it cannot produce results, so nothing was "
            "run or written. `omg tasks` shows which tasks are ready."
        )
    output_format = registry.check_format(info, config.task.output_format)
    sources = plan_inputs(config.input, info.modality)
    prompts = read_prompts(config.task.prompts) if config.task.prompts is not None else None
    check_task_inputs(handle, prompts, config.task.vocabulary)
    options = validate_options(info.name, info.options, dict(config.task.options), options_source)
    prepare_output_dir(config.output, config.overwrite)
    predictor = predictor_factory(config.model)
    results: list[TaskResult] = []
    overlays: list[Path] = []
    samples_without_overlay = 0
    overlay_dir = config.output / "overlays"
    if config.overlays:
        overlay_dir.mkdir(exist_ok=True)
    for index, source in enumerate(sources):
        request = TaskRequest(
            task=info.name,
            modality=info.modality,
            pixels=load_pixels(source),
            source=source.path,
            prompts=prompts,
            vocabulary=tuple(config.task.vocabulary) if config.task.vocabulary else None,
            options=options,
        )
        plan = handle.encode_queries(request)
        outputs = predictor(request, plan)
        result = handle.decode_outputs(request, plan, outputs)
        results.append(result)
        if config.overlays:  # drawn now, while the sample's pixels are in memory
            drawn = registry.render_overlay(handle, result, request.pixels, overlay_dir)
            overlays.extend(drawn)
            samples_without_overlay += not drawn
        if on_sample is not None:
            on_sample(index + 1, len(sources))
    written = handle.write_results(results, config.output, output_format)
    return RunSummary(
        task=info.name,
        num_samples=len(results),
        written=tuple(written),
        overlays=tuple(overlays),
        samples_without_overlay=samples_without_overlay,
    )
