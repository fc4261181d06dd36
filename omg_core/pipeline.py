"""What ``omg run`` does: check everything the user gave, then per sample encode -> model -> decode -> write.

Every check that can fail from the user's inputs (format, inputs, prompts, vocabulary, options, device) runs before
the model is built and before the output folder is created. Samples are then written one by one as they finish
(atomic files), so an interrupted run keeps every finished sample; a sample that fails is reported with its reason
and the others still run.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from omg_core.config import RunConfig, RunModelConfig
from omg_core.errors import InputError, OMGError, TaskNotImplementedError
from omg_core.registry import TaskHandle, TaskRegistry
from omg_core.run_inputs import (
    InputSource,
    declared_frame_count,
    iter_frames,
    plan_inputs,
    read_image,
    read_prompts,
)
from omg_core.task_info import validate_options
from omg_core.task_io import Prompts, QueryPlan, TaskRequest

#: Runs the shared model for one request and its query plan, returning the raw outputs the task decodes.
Predictor = Callable[[TaskRequest, QueryPlan], Any]
PredictorFactory = Callable[[RunModelConfig], Predictor]


@dataclass(frozen=True)
class SampleFailure:
    """An input that produced no result, and why (one line)."""

    source: Path
    reason: str


@dataclass(frozen=True)
class RunSummary:
    task: str
    num_samples: int
    written: tuple[Path, ...]
    overlays: tuple[Path, ...] = ()
    #: samples no installed plugin drew an overlay for (``--overlays``), so the user can be told
    samples_without_overlay: int = 0
    #: inputs that failed (the others were written)
    failed: tuple[SampleFailure, ...] = ()
    #: inputs of the run, in order
    sources: tuple[Path, ...] = field(default=())
    #: samples decoded and written (None: every sample that did not fail)
    finished: int | None = None

    @property
    def num_succeeded(self) -> int:
        return self.finished if self.finished is not None else self.num_samples - len(self.failed)

    def to_json(self) -> dict[str, Any]:
        """What ``omg run --json`` prints."""
        return {
            "task": self.task,
            "samples": self.num_samples,
            "succeeded": self.num_succeeded,
            "failed": [{"input": str(f.source), "reason": f.reason} for f in self.failed],
            "written": [str(path) for path in self.written],
            "overlays": [str(path) for path in self.overlays],
        }


class RunInterrupted(OMGError):
    """Ctrl-C during a run: the finished samples were written; ``summary`` says which."""

    def __init__(self, summary: RunSummary) -> None:
        super().__init__(
            f"interrupted: {summary.num_succeeded} of {summary.num_samples} sample(s) finished and were written to "
            f"the output folder ({len(summary.written)} file(s)); the rest were not run"
        )
        self.summary = summary


def default_predictor_factory(model_config: RunModelConfig) -> Predictor:
    """Build the shared OMG model named in the config."""
    from omg_core.model.predictor import build_predictor

    return build_predictor(model_config)


def check_task_inputs(handle: TaskHandle, prompts: Prompts | None, vocabulary: object | None) -> None:
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


@dataclass(frozen=True)
class RunVocabulary:
    """The class texts, thing flags and (when the user set them) seen flags of an open-vocabulary run."""

    texts: tuple[str, ...]
    thing_classes: tuple[bool, ...]
    seen_classes: tuple[bool, ...] | None


def resolve_run_vocabulary(
    spec: str | list[str] | None, seen: str | list[str] | None = None, unseen: str | list[str] | None = None
) -> RunVocabulary | None:
    """``task.vocabulary`` / ``--vocabulary`` (and ``--seen`` / ``--unseen``) checked; errors name the option."""
    from omg_core.model.vocabulary import parse_class_list, parse_vocabulary, seen_override, vocabulary_from_classes

    if spec is None:
        if seen is not None or unseen is not None:
            raise InputError("--seen / --unseen name classes of --vocabulary; give --vocabulary too")
        return None
    vocabulary = (parse_vocabulary(spec, option="--vocabulary") if isinstance(spec, str)
                  else vocabulary_from_classes(spec, option="--vocabulary"))

    def names(value: str | list[str] | None, option: str) -> list[str] | None:
        return parse_class_list(value, option) if isinstance(value, str) else value

    flags = None
    if seen is not None or unseen is not None:
        flags = tuple(seen_override(vocabulary, names(seen, "--seen"), names(unseen, "--unseen")))
    return RunVocabulary(tuple(vocabulary.texts), tuple(vocabulary.is_thing), flags)


def prepare_output_dir(output: Path, overwrite: bool) -> None:
    """:func:`check_output_dir`, then create the folder."""
    check_output_dir(output, overwrite)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--output {output}: cannot create the directory ({exc})") from exc


def check_output_dir(output: Path, overwrite: bool) -> None:
    """The checks of :func:`prepare_output_dir` that create nothing (run before the model is built)."""
    if output.exists() and not output.is_dir():
        raise InputError(f"--output {output} is a file; give a directory")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise InputError(f"--output {output} is not empty; choose another directory or pass --overwrite")
    existing = next((parent for parent in (output, *output.parents) if parent.exists()), None)
    if existing is not None and not existing.is_dir():
        raise InputError(f"--output {output}: {existing} is a file, so the folder cannot be created")


def load_pixels(source: InputSource) -> torch.Tensor:
    """(3, H, W) uint8 for an image source, (T, 3, H, W) uint8 for a clip."""
    if source.modality == "image":
        return read_image(source.path)
    frames = list(iter_frames(source))
    if not frames:
        raise InputError(f"{source.path}: the video has no frames")
    return torch.stack(frames)


def _check_sources(sources: list[InputSource], prompts: Prompts | None, prompts_path: Path | None,
                   raise_when_all_fail: bool = True) -> list[SampleFailure]:
    """Open every input (headers only) and fit the prompts to each; one unusable input fails alone, but when every
    input is unusable the first reason is the error."""
    from omg_core.run_inputs import check_prompts_fit, check_source, source_size

    failures: list[SampleFailure] = []
    for source in sources:
        reason = check_source(source)
        if reason is None and prompts is not None:
            try:
                height, width = source_size(source)
                check_prompts_fit(prompts, height, width, source.name, prompts_path=prompts_path)
            except InputError as error:
                reason = str(error)
        if reason is not None:
            failures.append(SampleFailure(source.path, reason))
    if raise_when_all_fail and failures and len(failures) == len(sources):
        raise InputError(failures[0].reason if len(sources) == 1 else
                         f"none of the {len(sources)} inputs can be used; the first: {failures[0].reason}")
    return failures


def run_task(
    config: RunConfig,
    registry: TaskRegistry,
    predictor_factory: PredictorFactory | None = None,
    on_sample: Callable[[int, int], None] | None = None,
    options_source: str = "task options",
    on_frames: Callable[[int, int], None] | None = None,
    shard: tuple[int, int] | None = None,
) -> RunSummary:
    """Run one task over the configured input and write its results, sample by sample.

    Arguments:
      config: the validated run config.
      registry: the task registry.
      predictor_factory: builds the model runner from ``config.model`` (called once, after every check passed);
        default :func:`default_predictor_factory`.
      on_sample: called with (samples done, samples in total) after each sample.
      on_frames: called with (frames done, frames in the video) as a video is decoded (when the predictor reports
        it, as OMGPredictor does after each tube).
      options_source: where the task options came from, for errors.
      shard: (rank, world size): this process runs inputs rank, rank + world, ... and ids stay global; default: the
        torch.distributed process group's (``torchrun``), else (0, 1). Under several ranks every rank writes its
        samples' own files, rank 0 gathers every rank's records and writes the gathered files (one JSON for the whole
        run, equal to a single process's) and returns the summary of the whole run.

    Raises:
      InputError / OMGError: a bad input, before anything was built or written.
      RunInterrupted: Ctrl-C; the finished samples are on disk.
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
    vocabulary = resolve_run_vocabulary(config.task.vocabulary, config.task.seen, config.task.unseen)
    options = validate_options(info.name, info.options, dict(config.task.options), options_source)
    if config.model.size is not None:
        from omg_core.inference.test_time_resize import parse_size

        parse_size(config.model.size)
    from omg_core.model.predictor import check_device

    check_device(config.model.device)
    check_output_dir(config.output, config.overwrite)
    _check_video_mode(config, handle)
    rank, world = shard if shard is not None else _current_shard()
    indexed = [(index, source) for index, source in enumerate(sources) if index % world == rank]
    failures = _check_sources([source for _, source in indexed], prompts, config.task.prompts,
                              raise_when_all_fail=world == 1)
    failed_paths = {failure.source for failure in failures}

    predictor = (predictor_factory or default_predictor_factory)(config.model)
    if on_frames is not None and hasattr(predictor, "on_frames"):
        predictor.on_frames = on_frames
    output_existed = config.output.exists()
    if world == 1 or rank == 0:
        prepare_output_dir(config.output, config.overwrite)
    if world > 1:
        _barrier()  # rank 0 made the folder (and checked it was empty) before any rank writes into it
        config.output.mkdir(parents=True, exist_ok=True)
    writer = handle.open_writer(config.output, output_format)
    if world > 1 and not writer.can_shard:  # type: ignore[attr-defined]
        raise OMGError(f"format {output_format!r}: its writer gathers files without naming its records "
                       "(ResultWriter.gathered_records), so ranks cannot merge them; run it in one process")
    can_stream = info.modality == "video" and handle.can_stream and getattr(writer, "streams", False) and hasattr(
        predictor, "stream_video")
    if config.video_mode == "stream" and not can_stream:
        if not output_existed:
            shutil.rmtree(config.output, ignore_errors=True)
        why = (f"format {output_format!r} has no streaming writer" if not getattr(writer, "streams", False)
               else "the model runner cannot stream")
        raise InputError(f"--video-mode stream: {why}; use --video-mode offline")
    written: list[Path] = []
    overlays: list[Path] = []
    samples_without_overlay = 0
    overlay_dir = config.output / "overlays"
    if config.overlays:
        overlay_dir.mkdir(exist_ok=True)

    finished = 0

    def summary() -> RunSummary:
        return RunSummary(task=info.name, num_samples=len(indexed), written=tuple(written), overlays=tuple(overlays),
                          samples_without_overlay=samples_without_overlay, failed=tuple(failures),
                          sources=tuple(source.path for _, source in indexed), finished=finished)

    closed = False
    try:
        for done, (index, source) in enumerate(indexed, start=1):
            if source.path in failed_paths:
                continue
            count = declared_frame_count(source) if can_stream and config.video_mode != "offline" else None
            if can_stream and _streams(config, count):
                try:
                    paths, drawn = _run_streamed(registry, handle, predictor, writer, source, index, count, prompts,
                                                 vocabulary, options, overlay_dir if config.overlays else None)
                except InputError as error:
                    failures.append(SampleFailure(source.path, str(error)))
                    continue
                written.extend(paths)
                finished += 1
                overlays.extend(drawn)
                samples_without_overlay += config.overlays and not drawn
                if on_sample is not None:
                    on_sample(done, len(indexed))
                continue
            try:
                pixels = load_pixels(source)
                request = TaskRequest(
                    task=info.name, modality=info.modality, pixels=pixels, source=source.path,
                    prompts=prompts, vocabulary=vocabulary.texts if vocabulary else None, options=options,
                    thing_classes=vocabulary.thing_classes if vocabulary else None,
                    seen_classes=vocabulary.seen_classes if vocabulary else None,
                    frame_names=_frame_names(source, pixels),
                )
                plan = handle.encode_queries(request)
                result = handle.decode_outputs(request, plan, predictor(request, plan))
            except InputError as error:  # this input is bad; the others still run
                failures.append(SampleFailure(source.path, str(error)))
                continue
            written.extend(writer.write(result, index))
            finished += 1
            if config.overlays:  # drawn now, while the sample's pixels are in memory
                drawn = registry.render_overlay(handle, result, request.pixels, overlay_dir)
                overlays.extend(drawn)
                samples_without_overlay += not drawn
            if on_sample is not None:
                on_sample(done, len(indexed))
        if world > 1:
            closed = True
            return _merge_ranks(writer, summary(), rank)
        if finished == 0 and failures:
            # nothing to keep: no empty result files, and the output folder goes if this run made it
            closed = True
            if not output_existed:
                shutil.rmtree(config.output, ignore_errors=True)
            reason = failures[0].reason
            raise InputError(reason if len(indexed) == 1 else f"all {len(indexed)} inputs failed; the first: {reason}")
        written[:0] = writer.close()
        closed = True
    except KeyboardInterrupt:
        written[:0] = writer.close()
        closed = True
        raise RunInterrupted(summary()) from None
    except Exception as error:  # a crash (a plugin bug, say)
        if not closed and world == 1:
            closed = True
            if finished == 0:  # no empty result files that `omg eval` would score as a real run
                if not output_existed:
                    shutil.rmtree(config.output, ignore_errors=True)
            else:  # keep the finished samples, and say that the files hold only those
                try:
                    writer.close()
                except Exception:  # the original error matters more than a second one while closing
                    pass
                error.add_note(f"omg run: {finished} of {len(indexed)} sample(s) finished before this error; "
                               f"{config.output} holds their results only (the rest were not run)")
        raise
    finally:
        if not closed:  # a crash: still describe the finished samples in the gathered files
            try:
                writer.close()
            except Exception:  # the original error matters more than a second one while closing
                pass
    return summary()


def _check_video_mode(config: RunConfig, handle: TaskHandle) -> None:
    """``--video-mode stream`` needs a video task whose plugin decodes tube by tube."""
    if config.video_mode != "stream":
        return
    info = handle.info
    if info.modality != "video":
        raise InputError(f"--video-mode stream: task {info.name!r} takes images; drop --video-mode")
    if not handle.can_stream:
        raise InputError(f"--video-mode stream: task {info.name!r} decodes videos whole (its plugin has no "
                         "omg_open_video_stream); use --video-mode offline")


def _streams(config: RunConfig, count: int | None) -> bool:
    """Whether a video of ``count`` declared frames runs as a stream: always in stream mode; in auto mode when it is
    longer than ``stream_min_frames`` (or its container does not say how long it is)."""
    if config.video_mode != "auto":
        return config.video_mode == "stream"
    return count is None or count > config.stream_min_frames


def _run_streamed(
    registry: TaskRegistry,
    handle: TaskHandle,
    predictor: Any,
    writer: Any,
    source: InputSource,
    index: int,
    count: int | None,
    prompts: Prompts | None,
    vocabulary: RunVocabulary | None,
    options: Any,
    overlay_dir: Path | None,
) -> tuple[list[Path], list[Path]]:
    """One video decoded and written tube by tube: frames read lazily, each tube's results written (and its overlay
    frames encoded) before the next is read; ``count`` is the frame count the container declares. Returns (files
    written, overlay files)."""
    from omg_core.run_inputs import frame_names, source_size

    info = handle.info
    height, width = source_size(source)
    request = TaskRequest(
        task=info.name, modality=info.modality, pixels=torch.zeros((0, 3, height, width), dtype=torch.uint8),
        source=source.path, prompts=prompts, vocabulary=vocabulary.texts if vocabulary else None, options=options,
        thing_classes=vocabulary.thing_classes if vocabulary else None,
        seen_classes=vocabulary.seen_classes if vocabulary else None,
        frame_names=frame_names(source) if source.path.is_dir() else None,
    )
    plan = handle.encode_queries(request)
    decoder = handle.open_video_stream(request, plan)
    if decoder is None:
        raise InputError(f"{source.name}: task {info.name!r} declined to stream this video; use --video-mode offline")
    overlay = registry.open_overlay_stream(handle, overlay_dir, source.name) if overlay_dir else None
    written: list[Path] = []
    try:
        for chunk in predictor.stream_video(request, plan, iter_frames(source), count, request.frame_names):
            result = decoder.decode_chunk(chunk)
            written.extend(writer.write_chunk(result, index))
            if overlay is not None:
                overlay.add(result, chunk.pixels)
        written.extend(writer.finish_video(decoder.finish(), index))
        drawn = overlay.close() if overlay is not None else []
    except BaseException:
        if overlay is not None:
            overlay.abort()
        raise
    return written, [Path(path) for path in drawn]


def _frame_names(source: InputSource, pixels: torch.Tensor) -> tuple[str, ...] | None:
    """The frame files' stems in play order for a frame folder; 00000, 00001, ... for a video file."""
    if source.modality != "video":
        return None
    from omg_core.run_inputs import frame_names

    return tuple(frame_names(source, num_frames=int(pixels.shape[0])))


def _current_shard() -> tuple[int, int]:
    """(rank, world size) of the torch.distributed process group, (0, 1) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier() -> None:
    import torch.distributed as dist

    dist.barrier()


def _merge_ranks(writer: Any, local: RunSummary, rank: int) -> RunSummary:
    """Every rank's records and counts to rank 0, which writes the gathered files; rank 0 returns the whole run's
    summary, the other ranks their own."""
    from omg_eval.sharding import gather_objects

    shards = gather_objects((writer.shard_records(), local))
    if rank != 0:
        return local
    writer.merge_shard_records([records for records, _ in shards])
    gathered_files = writer.close()
    summaries = [summary for _, summary in shards]
    failed = tuple(failure for summary in summaries for failure in summary.failed)
    finished = sum(summary.num_succeeded for summary in summaries)
    if finished == 0 and failed:
        raise InputError(f"all {len(failed)} inputs failed; the first: {failed[0].reason}")
    return RunSummary(
        task=local.task,
        num_samples=sum(summary.num_samples for summary in summaries),
        written=(*gathered_files, *(path for summary in summaries for path in summary.written)),
        overlays=tuple(path for summary in summaries for path in summary.overlays),
        samples_without_overlay=sum(summary.samples_without_overlay for summary in summaries),
        failed=failed,
        sources=tuple(path for summary in summaries for path in summary.sources),
        finished=finished,
    )
