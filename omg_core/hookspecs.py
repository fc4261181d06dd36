"""The task extension API of OMG: the hooks a task plugin implements.

A plugin is a module (or object) registered under the entry-point group ``omg.tasks``; it implements these hooks with
the :data:`hookimpl` marker. A task plugin's own hooks answer for its task alone; the cross-cutting ones below answer
for any task.

The hooks in :data:`REQUIRED_HOOKS` are required of a task plugin and called on the task's own plugin only. The
others (:func:`omg_output_formats`, :func:`omg_open_writer`, :func:`omg_render_overlay`, :func:`omg_file_evaluators`)
are cross-cutting: any plugin may implement them, including a plugin with no task of its own (one that only adds an
output format, say), and they are called on every plugin. The registry refuses a plugin that misses a required hook,
names a parameter a spec does not have, or returns the wrong type from :func:`omg_task_info`. A hook implementation
may accept any subset of the parameters documented for its spec (pluggy passes only the ones it names).

Example (a whole plugin module)::

    from omg_core import hookimpl, TaskInfo

    @hookimpl
    def omg_task_info():
        return TaskInfo(name="my-task", summary="...", modality="image", vocabulary="closed",
                        metrics=("mIoU",), result_family="semantic", output_formats=("semantic-png",))

``result_family`` (the :mod:`omg_core.results` family the decode hook returns: ``semantic``, ``panoptic``,
``instances`` or ``prompt-masks``) is what lets the built-in writers serve the task; ``omg tasks`` flags a task whose
default format cannot hold its results.

    @hookimpl
    def omg_encode_queries(request): ...
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import torch

    from omg_core.file_evaluators import FileEvaluator
    from omg_core.model.outputs import OMGOutputs
    from omg_core.output_formats import OutputFormat
    from omg_core.result_writer import OverlayStream, ResultWriter
    from omg_core.task_info import TaskInfo
    from omg_core.task_io import QueryPlan, TaskRequest, TaskResult, VideoStreamDecoder
    from omg_eval.metric import Metric

PROJECT_NAME = "omg"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

#: Hooks every task plugin must implement, and only a task's own plugin answers (a plugin without a task may only wrap
#: them); the others are optional and any plugin, with or without a task, may implement them.
REQUIRED_HOOKS: tuple[str, ...] = (
    "omg_task_info",
    "omg_encode_queries",
    "omg_decode_outputs",
    "omg_create_metric",
)


@hookspec(firstresult=True)
def omg_task_info() -> TaskInfo:
    """Describe the task.

    Called once when the plugin is registered; the answer is validated and cached by the registry, which uses it
    for name/alias lookup, for ``omg tasks``, and to validate ``omg run`` inputs (modality, prompts, vocabulary).

    :return: a :class:`omg_core.task_info.TaskInfo`. Its ``name`` and ``aliases`` must not collide with another
        registered task's.
    """


@hookspec(firstresult=True)
def omg_encode_queries(request: TaskRequest) -> QueryPlan:
    """Turn a user's request into what the shared decoder runs: learned queries, prompt queries, a vocabulary.

    Called once per sample before the model runs.

    :param request: the sample's pixels, prompts (for interactive tasks), vocabulary (for open-vocabulary tasks)
        and task options, already validated against the task's :class:`TaskInfo`.
    :return: a :class:`omg_core.task_io.QueryPlan`.
    :raises omg_core.errors.TaskNotImplementedError: when the task is a placeholder.
    """


@hookspec(firstresult=True)
def omg_decode_outputs(request: TaskRequest, plan: QueryPlan, outputs: OMGOutputs) -> TaskResult:
    """Decode the shared model's raw outputs into the task's typed result.

    Called once per sample after the model has run on the plan from :func:`omg_encode_queries`.

    :param request: the same request given to :func:`omg_encode_queries`.
    :param plan: the plan that request produced.
    :param outputs: this sample's :class:`omg_core.model.outputs.OMGOutputs`. **The batch axis stays** (size 1), so
        index ``[0]``: ``class_logits`` 1 x Q x (K + 1) over the plan's vocabulary plus void (last column);
        ``mask_logits`` 1 x Q x h x w (1 x Q x T x h x w for video) at stride 4 of the padded input;
        ``query_embeddings`` 1 x Q x C; ``iou_logits`` 1 x Q x 1. The learned queries come first
        (``outputs.num_learned_queries`` of them), then one query per prompt, in prompt order. ``image_size`` /
        ``padded_size`` give the test-time-resized input before and after padding; the original size is
        ``request.pixels.shape[-2:]`` (``request.pixels`` is the input as read, 3 x H x W or T x 3 x H x W uint8), so
        ``postprocess.masks_to_original_size(logits, outputs.padded_size, outputs.image_size,
        request.pixels.shape[-2:])`` gives masks at the input's size. The class columns stand for
        ``outputs.class_names`` (the plan's vocabulary, or the model's default one for a closed-vocabulary task),
        with ``outputs.thing_classes`` flagging things. The tensors are on the device the model ran on (``--device cuda``: the
        GPU); the result classes move what they are given to the CPU, so a hook may build its result on either.
        For a video the query slots are already tracks: each tube's queries were matched to the previous tube's
        (MinVIS), so slot q is one object over all T frames, and ``class_logits`` are averaged over the tubes.
    :return: a :class:`omg_core.task_io.TaskResult` whose ``data`` holds the task's payload (a result class of
        :mod:`omg_core.results`) at the input's size: the registry refuses a result of another family than
        ``TaskInfo.result_family``, an image class for a video task (or the reverse), or masks of another H x W (or
        frame count) than ``request.pixels``, naming this hook.
    """


@hookspec(firstresult=True)
def omg_open_video_stream(request: TaskRequest, plan: QueryPlan) -> VideoStreamDecoder | None:
    """Decode a video tube by tube instead of whole (optional; a video task's own plugin answers).

    ``omg run --video-mode stream`` (the default for videos longer than ``run.stream_min_frames``) reads a long video
    a tube at a time so memory stays flat: the model decodes each tube, and the decoder returned here turns it into
    results that are written at once. A task that does not implement this hook runs its videos whole (offline), and
    asking it for ``--video-mode stream`` is an error naming the task.

    :param request: the video request; in stream mode ``request.pixels`` is (0, 3, H, W): no frames, only the frame
        size (the frames come in each :class:`omg_core.task_io.VideoChunk`).
    :param plan: the plan :func:`omg_encode_queries` gave for the request.
    :return: an :class:`omg_core.task_io.VideoStreamDecoder` for this one video, or None to run it offline.
    """


@hookspec(firstresult=True)
def omg_create_metric(options: dict[str, Any]) -> Metric:
    """Create a fresh metric object for the task (``update`` / ``compute`` / ``reset``, synced across processes).

    Called by training loops and by Python callers once per evaluation
    (``discover_tasks().get("my-task").create_metric(options)``); ``omg eval`` scores result files with the task's
    file evaluator instead (see :func:`omg_file_evaluators`), which may use the same metric class.

    The metric's contract:

    - ``update(...)`` takes whatever one sample's prediction and ground truth are for this task (the built-in
      semantic metric takes ``update(pred_labels, gt_labels)``, two H x W class maps); say so in its docstring.
      It only adds to the states declared with ``add_state``.
    - ``compute()`` returns a dict of figures as fractions in [0, 1] (``omg eval`` prints them so; the README's tables
      show percent), and must report
      every name in ``TaskInfo.metrics`` as a top-level key (matched ignoring case; panopticapi's nested
      ``{"All": {"pq": ...}}`` also counts). The registry checks this on the first ``compute`` and names the missing
      figure.
    - The module defining a :class:`omg_eval.metric.Metric` subclass imports torch, so import it inside this hook
      (``omg tasks`` imports every plugin and starts without torch).

    :param options: the task's own metric options (the built-in tasks take, for example, ``categories`` for
        panoptic, ``category_ids`` for instance, ``num_classes`` / ``ignore_index`` for semantic); ``{}`` must work.
    :return: an :class:`omg_eval.metric.Metric`.
    """


@hookspec
def omg_output_formats() -> list[OutputFormat]:
    """Contribute output formats (optional; any plugin, with or without a task).

    Called once per plugin when the registry first needs formats; the answers of every plugin are collected. A format
    names the result families (or tasks) it writes; ``omg run --format F`` is accepted for a task when some format F
    writes that task's ``TaskInfo.result_family`` (or names the task). Write the files in
    :func:`omg_open_writer`.

    :return: a list of :class:`omg_core.output_formats.OutputFormat`; a name several plugins declare is one format
        whose families and tasks are the union of theirs.
    """


@hookspec(firstresult=True)
def omg_open_writer(task: TaskInfo, output_dir: Path, output_format: str) -> ResultWriter | None:
    """Open a writer for a run's results in one output format (optional; any plugin, with or without a task).

    Called by ``omg run`` once, before the first sample, on every plugin in pluggy's order (``tryfirst`` /
    ``trylast`` on your hookimpl move it); the first answer that is not None wins. Return None for any format or task
    you do not write, so that another plugin can. ``omg run`` then calls the writer's ``write(result, index)`` as
    soon as each sample is decoded and its ``close()`` once at the end, or when the run is interrupted, so every
    finished sample stays on disk (see :mod:`omg_core.result_writer`; write files with its ``atomic_path``).

    :param task: the task whose results will arrive (its ``result_family`` says which result class ``data`` holds).
    :param output_dir: an existing, writable directory.
    :param output_format: the format asked for, one that some plugin's :func:`omg_output_formats` declares for the task.
    :return: an :class:`omg_core.result_writer.ResultWriter`, or None to pass.
    """


@hookspec(firstresult=True)
def omg_render_overlay(task: TaskInfo, result: TaskResult, pixels: torch.Tensor, output_dir: Path) -> list[Path] | None:
    """Draw one sample's result over its input, for a person to look at (optional; any plugin, with or without a task).

    Called by ``omg run --overlays`` once per sample, right after decoding, on every plugin in pluggy's order
    (``tryfirst`` / ``trylast`` honoured); the first answer that is not None wins. Return None for results you do not
    draw. The built-in overlays (``omg_tasks/_overlays.py``) draw every result family of :mod:`omg_core.results`.

    :param task: the task that produced the result (``task.result_family`` says which class ``result.data`` is).
    :param result: the decoded result; ``result.source`` names the input, for naming the picture.
    :param pixels: the input as the task saw it: (3, H, W) uint8 for an image, (T, 3, H, W) uint8 for a video.
    :param output_dir: an existing, writable directory for the pictures.
    :return: the pictures written, or None to pass.
    """


@hookspec(firstresult=True)
def omg_open_overlay_stream(task: TaskInfo, output_dir: Path, name: str) -> OverlayStream | None:
    """Open the overlay of one streamed video (optional; any plugin, with or without a task).

    Called by ``omg run --overlays --video-mode stream`` once per video before its first tube, on every plugin in
    pluggy's order; the first answer that is not None wins. ``omg run`` then hands the returned
    :class:`omg_core.result_writer.OverlayStream` each tube's chunk result and frames (``add``) and closes it after
    the last. The built-in overlays answer for every result family, including streamed tracks
    (:class:`omg_core.results.TrackFrames`, drawn with the best guess so far of each track's class).

    :param task: the task whose results will arrive.
    :param output_dir: an existing, writable directory for the pictures.
    :param name: the video's name (the input's stem), for naming the file.
    :return: an OverlayStream, or None to pass.
    """


@hookspec
def omg_file_evaluators() -> list[FileEvaluator]:
    """Contribute ways of scoring result files with ``omg eval`` (optional).

    Called once per plugin when the registry first needs evaluators; the answers of every plugin are collected. A task
    names the evaluator that scores its result files in ``TaskInfo.file_evaluator``, so a task may use an evaluator
    another plugin contributes (the open-vocabulary tasks use their closed twins'). ``omg eval --task T`` scores
    with T's evaluator; an evaluator's own name works too, for files no task writes (``omg eval --task vos``).

    :return: a list of :class:`omg_core.file_evaluators.FileEvaluator`; each name must be unique among all plugins
        (a name contributed twice by different plugins is reported as a plugin problem and left out).
    """
