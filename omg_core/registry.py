"""Discovery and lookup of task plugins (pluggy + the ``omg.tasks`` entry-point group).

The core never imports a task by name: :func:`discover_tasks` loads every entry point in the group (unless
``OMG_DISABLE_PLUGIN_AUTOLOAD`` is set), plus the plugins named explicitly (``-p module`` or ``-p entry-point``), and
validates each against :mod:`omg_core.hookspecs`. ``-p no:NAME`` blocks the entry point NAME (``-p no:DIST:NAME`` the
one of distribution DIST, when two share a name); a NAME that no entry point has blocks the task with that name or
alias.

A discovered plugin that cannot be used is left out and recorded in :attr:`TaskRegistry.problems`, once, while every
other task keeps working:

- it fails to import (the message gives the plugin's own file:line, the innermost traceback frame in its package);
- it breaks the hook contract (missing hook, unknown parameter, bad ``omg_task_info``);
- its task name or an alias is also claimed by another plugin. Then *every* claimant of that name is left out: which
  plugin a name means must not depend on install or sort order, and a plugin must not silently take a name (say
  ``semantic``) from another. The problem names each claimant and the ``-p no:...`` that blocks it.

Asking for such a task (:meth:`TaskRegistry.get`) raises :class:`TaskUnavailableError` saying why.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import os
import sys
import time
import traceback
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from omg_core import hookspecs
from omg_core.errors import (
    DuplicateTaskError,
    OMGError,
    PluginHookError,
    PluginLoadError,
    PluginValidationError,
    TaskUnavailableError,
    UnknownTaskError,
)
from omg_core.result_writer import ResultWriter
from omg_core.task_info import TaskInfo

if TYPE_CHECKING:  # task_io imports torch; keep `omg tasks` and lookups free of it
    from omg_core.file_evaluators import FileEvaluator
    from omg_core.output_formats import OutputFormat
    from omg_core.task_io import QueryPlan, TaskRequest, TaskResult

ENTRY_POINT_GROUP = "omg.tasks"
AUTOLOAD_ENV = "OMG_DISABLE_PLUGIN_AUTOLOAD"
BLOCK_PREFIX = "no:"


@dataclass(frozen=True)
class PluginOrigin:
    """Where a plugin came from, for messages and for ``omg tasks``."""

    entry_point: str | None = None  # "name = module:attr"
    distribution: str | None = None
    version: str | None = None
    module: str | None = None

    @property
    def block_name(self) -> str | None:
        """The name ``-p no:NAME`` takes to block this plugin (its entry-point name)."""
        return self.entry_point.split(" = ")[0] if self.entry_point else None

    def describe(self) -> str:
        parts = []
        if self.distribution:
            parts.append(f"distribution {self.distribution} {self.version or ''}".rstrip())
        if self.entry_point:
            parts.append(f"entry point '{self.entry_point}'")
        elif self.module:
            parts.append(f"module {self.module}")
        return ", ".join(parts) or "registered in code"

    @classmethod
    def from_entry_point(cls, entry_point: EntryPoint) -> PluginOrigin:
        dist = getattr(entry_point, "dist", None)
        return cls(
            entry_point=f"{entry_point.name} = {entry_point.value}",
            distribution=dist.metadata["Name"] if dist is not None else None,
            version=dist.version if dist is not None else None,
            module=entry_point.module,
        )


@dataclass(frozen=True)
class PluginProblem:
    """A plugin left out of the registry; the other tasks still work.

    ``kind`` is ``"import"`` (the plugin failed to import), ``"invalid"`` (it breaks the hook contract) or
    ``"collision"`` (it claims a task name or alias that another plugin claims too; ``claimants`` lists every plugin
    claiming it, all left out). ``names`` are the names ``omg run --task`` would have found (entry-point names,
    task names and aliases); ``fixes`` the ``-p no:...`` options that block one plugin each.
    """

    origin: PluginOrigin
    error: Exception
    kind: str = "import"
    names: tuple[str, ...] = ()
    claimants: tuple[PluginOrigin, ...] = ()
    fixes: tuple[str, ...] = ()

    def __str__(self) -> str:
        return str(self.error)


class TaskHandle:
    """One registered task: its description, where it came from, and typed calls to its hooks."""

    def __init__(self, info: TaskInfo, plugin: object, origin: PluginOrigin, registry: TaskRegistry) -> None:
        self.info = info
        self.plugin = plugin
        self.origin = origin
        self._registry = registry

    @property
    def name(self) -> str:
        return self.info.name

    def __repr__(self) -> str:
        return f"TaskHandle({self.info.name!r}, {self.origin.describe()})"

    def _call(self, hook_name: str, expected: type | tuple[type, ...], **kwargs: Any) -> Any:
        try:
            result = self._registry._call_task_hook(self.plugin, hook_name, **kwargs)
        except OMGError:  # InputError, ConfigError, TaskNotImplementedError, ...: the plugin's one-line message
            raise
        except Exception as exc:  # anything else is a bug in the plugin: keep the traceback, name task and hook
            where = plugin_location(exc, _module_name(self.plugin))
            raise PluginHookError(
                f"task {self.name!r} hook {hook_name} raised {type(exc).__name__}: {exc}"
                + (f" (at {where})" if where else "")
                + f"; a bug in the plugin ({self.origin.describe()}). If it is the user's input the hook cannot "
                "use, it should raise omg_core.errors.InputError (or ConfigError for a bad option) to say so",
                task=self.name,
                hook=hook_name,
            ) from exc
        if not isinstance(result, expected):
            names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
            raise PluginValidationError(
                f"task {self.name!r} ({self.origin.describe()}): {hook_name} returned {type(result).__name__}, "
                f"expected {names}"
            )
        return result

    def encode_queries(self, request: TaskRequest) -> QueryPlan:
        from omg_core.task_io import QueryPlan

        return self._call("omg_encode_queries", QueryPlan, request=request)

    def decode_outputs(self, request: TaskRequest, plan: QueryPlan, outputs: Any) -> TaskResult:
        from omg_core.result_checks import decoded_result_problem
        from omg_core.task_io import TaskResult

        result = self._call("omg_decode_outputs", TaskResult, request=request, plan=plan, outputs=outputs)
        problem = decoded_result_problem(self.info, request.pixels, result.data)
        if problem is not None:  # caught here, where the hook is known, not later in a writer or an overlay
            raise PluginHookError(
                f"task {self.name!r} hook omg_decode_outputs: {problem}; a bug in the plugin ({self.origin.describe()})",
                task=self.name, hook="omg_decode_outputs",
            )
        return result

    @property
    def can_stream(self) -> bool:
        """Whether the task's plugin implements ``omg_open_video_stream`` (decodes videos tube by tube)."""
        hook = self._registry._plugin_manager.hook.omg_open_video_stream
        return any(impl.plugin is self.plugin for impl in hook.get_hookimpls())

    def open_video_stream(self, request: TaskRequest, plan: QueryPlan) -> Any:
        """The task's stream decoder for this video (``omg_open_video_stream``), or None when it decodes videos whole."""
        from omg_core.task_io import VideoStreamDecoder

        return self._call("omg_open_video_stream", (VideoStreamDecoder, type(None)), request=request, plan=plan)

    def create_metric(self, options: dict[str, Any] | None = None) -> Any:
        """The task's metric. Its first ``compute`` checks that every figure ``TaskInfo.metrics`` names is there (a
        metric reporting other names than its task advertises is a plugin bug, named with the figures it gave)."""
        from omg_eval.metric import Metric

        metric = self._call("omg_create_metric", Metric, options=dict(options or {}))
        compute, promised, owner = metric.compute, self.info.metrics, f"task {self.name!r} ({self.origin.describe()})"

        def compute_checked() -> dict[str, Any]:
            from omg_eval.figures import headline_figure

            figures = compute()
            for name in promised:
                try:
                    headline_figure(figures, name)
                except KeyError as exc:
                    raise PluginValidationError(
                        f"{owner}: its TaskInfo.metrics names {name!r}, but its metric does not report it "
                        f"({exc.args[0]}); rename the figure or fix TaskInfo.metrics"
                    ) from None
            metric.compute = compute  # checked once; later computes run as written
            return figures

        metric.compute = compute_checked
        return metric

    def write_results(self, results: list[TaskResult], output_dir: Path, output_format: str | None = None) -> list[Path]:
        """Write results in ``output_format`` (default: the task's first) through whichever plugin writes it."""
        return self._registry.write_results(self, results, output_dir, output_format)

    def open_writer(self, output_dir: Path, output_format: str | None = None) -> ResultWriter:
        """A writer for this task's results, one sample at a time (see :mod:`omg_core.result_writer`)."""
        return self._registry.open_writer(self, output_dir, output_format)


class TaskRegistry:
    """Holds the registered task plugins and answers lookups by name or alias."""

    def __init__(self) -> None:
        self._plugin_manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._plugin_manager.add_hookspecs(hookspecs)
        self._candidates: list[TaskHandle] = []  # every valid plugin found, in load order, left out or not
        self._handles: dict[str, TaskHandle] = {}  # canonical name -> handle, for the tasks in use
        self._by_name_or_alias: dict[str, TaskHandle] = {}
        self._load_problems: list[PluginProblem] = []
        self._collisions: list[PluginProblem] = []
        self._group_entry_points: list[EntryPoint] | None = None
        self._extensions: list[tuple[object, PluginOrigin]] = []  # plugins without a task (writers, evaluators)
        # hook -> ({name: (value, contributor)}, problems met collecting them); filled on first use
        self._contributions: dict[str, tuple[dict[str, tuple[Any, PluginOrigin]], list[PluginProblem]]] = {}
        self.blocked: set[str] = set()
        #: plugins that work but import torch as they load (every command's start-up waits for it), with the fix
        self.slow_imports: list[str] = []

    @property
    def problems(self) -> list[PluginProblem]:
        """Plugins left out: import failures and invalid plugins in load order, then name collisions, then output
        formats and file evaluators that could not be used (once they have been collected)."""
        collecting = [problem for _, problems in self._contributions.values() for problem in problems]
        return [*self._load_problems, *self._collisions, *collecting]

    # -- file evaluators ---------------------------------------------------------------------------------------
    def file_evaluators(self) -> dict[str, FileEvaluator]:
        """Every file evaluator the plugins in use contribute (``omg_file_evaluators``), by name.

        Collected on first call. A plugin whose hook raises or returns something else than FileEvaluators, or an
        evaluator name contributed by two plugins (with different evaluators), is recorded in :attr:`problems` and
        left out; the other evaluators work.
        """
        from omg_core.file_evaluators import FileEvaluator

        return self._contributed("omg_file_evaluators", FileEvaluator)

    def output_formats(self) -> dict[str, OutputFormat]:
        """Every output format the plugins in use contribute (``omg_output_formats``), by name (collected as
        :meth:`file_evaluators`)."""
        from omg_core.output_formats import OutputFormat

        return self._contributed("omg_output_formats", OutputFormat)

    def formats_for(self, task: TaskInfo) -> list[str]:
        """The output formats that can hold ``task``'s results: its own suggestions first, then the others by name."""
        usable = {name for name, output_format in self.output_formats().items() if output_format.writes_for(task)}
        return [*(name for name in task.output_formats if name in usable), *sorted(usable - set(task.output_formats))]

    def check_format(self, task: TaskInfo, output_format: str | None) -> str:
        """The format to write ``task``'s results in: ``output_format``, or the task's first suggestion.

        Raises:
          InputError: no installed plugin writes that format for this task (the message lists those that do, and
            says what to fix in the task's ``TaskInfo`` when the fault is there).
        """
        from omg_core.errors import InputError

        chosen = output_format or task.output_formats[0]
        usable = self.formats_for(task)
        if chosen in usable:
            return chosen
        if output_format is None:  # the user asked for nothing: the task's own description is at fault
            raise InputError(f"task {task.name!r}: {self.default_format_problem(task)}")
        raise InputError(
            f"--format {chosen!r}: task {task.name!r} writes {', '.join(usable) or 'no format'}"
            + ("" if chosen in self.output_formats() else " (no installed plugin declares that format)")
        )

    def default_format_problem(self, task: TaskInfo) -> str | None:
        """Why ``task``'s default format (``TaskInfo.output_formats[0]``) cannot hold its results, with the fix;
        None when it can. `omg tasks` shows it, and `omg run` refuses with it before the model is built."""
        default = task.output_formats[0]
        usable = self.formats_for(task)
        if default in usable:
            return None
        formats = self.output_formats()
        families = sorted({family for output_format in formats.values() for family in output_format.families})
        if not formats:
            cause = (f"no output-format plugin is loaded ({AUTOLOAD_ENV} is set or every writer was blocked): load "
                     "the built-in writers with `omg -p omg-writers ...` (and `-p omg-overlays` for --overlays)")
        elif task.result_family is None:
            cause = ("its TaskInfo sets no result_family, so no family's writer serves it; set result_family to the "
                     f"family of omg_core.results its decode hook returns ({', '.join(families)})")
        elif task.result_family not in families:
            close = difflib.get_close_matches(task.result_family, families, n=1)
            cause = (f"its TaskInfo.result_family {task.result_family!r} is written by no installed format"
                     + (f" (did you mean {close[0]!r}?)" if close else "")
                     + f"; the installed formats write {', '.join(families)}")
        elif default not in formats:
            close = difflib.get_close_matches(default, list(formats), n=1)
            cause = (f"its TaskInfo.output_formats names {default!r}, which no installed plugin declares"
                     + (f" (did you mean {close[0]!r}?)" if close else ""))
        else:
            cause = f"format {default!r} does not write {task.result_family!r} results"
        return (f"its default output format {default!r} cannot hold its results: {cause}"
                + (f". Formats that can: {', '.join(usable)} (pass --format, or list one first in "
                   "TaskInfo.output_formats)" if usable else ""))

    def open_writer(self, handle: TaskHandle, output_dir: Path, output_format: str | None = None) -> ResultWriter:
        """A writer of ``handle``'s results in ``output_format`` (default: the task's first), from the first plugin
        whose ``omg_open_writer`` answers.

        Raises:
          InputError: the format cannot hold this task's results (the message lists those that can).
          PluginValidationError: no plugin writes the format, or a plugin answered with something else than a
            ResultWriter.
        """
        chosen = self.check_format(handle.info, output_format)
        writer = self._call_cross_cutting(
            "omg_open_writer", handle, f"opening a writer for format {chosen!r}", output_dir=Path(output_dir),
            output_format=chosen,
        )
        if writer is None:
            declared_by = self._contributions["omg_output_formats"][0][chosen][1].describe()
            raise PluginValidationError(
                f"format {chosen!r} is declared by {declared_by}, but no plugin's omg_open_writer opened a writer for "
                f"task {handle.name!r}'s results in it"
            )
        if not isinstance(writer, ResultWriter):
            raise PluginValidationError(
                f"omg_open_writer for format {chosen!r} returned {type(writer).__name__}, expected a "
                "omg_core.result_writer.ResultWriter"
            )
        return _CheckedWriter(writer, handle.name, chosen)

    def write_results(
        self, handle: TaskHandle, results: list[TaskResult], output_dir: Path, output_format: str | None = None
    ) -> list[Path]:
        """Write a list of results at once (for Python callers): open a writer, write each, close it."""
        writer = self.open_writer(handle, output_dir, output_format)
        written: list[Path] = []
        try:
            for index, result in enumerate(results):
                written.extend(writer.write(result, index))
        finally:
            closing = writer.close()
        return [*closing, *written]

    def render_overlay(self, handle: TaskHandle, result: TaskResult, pixels: Any, output_dir: Path) -> list[Path]:
        """The pictures of ``result`` drawn over ``pixels`` by the first plugin whose ``omg_render_overlay`` answers;
        an empty list when no installed plugin draws this task's results."""
        drawn = self._call_cross_cutting(
            "omg_render_overlay", handle, "drawing an overlay", result=result, pixels=pixels, output_dir=Path(output_dir)
        )
        return [Path(path) for path in drawn or []]

    def open_overlay_stream(self, handle: TaskHandle, output_dir: Path, name: str) -> Any:
        """The OverlayStream of the first plugin whose ``omg_open_overlay_stream`` answers, or None."""
        from omg_core.result_writer import OverlayStream

        stream = self._call_cross_cutting("omg_open_overlay_stream", handle, "opening a video overlay",
                                          output_dir=Path(output_dir), name=name)
        if stream is not None and not isinstance(stream, OverlayStream):
            raise PluginValidationError(f"omg_open_overlay_stream returned {type(stream).__name__}, expected an "
                                        "omg_core.result_writer.OverlayStream")
        return stream

    def _call_cross_cutting(self, hook_name: str, handle: TaskHandle, doing: str, **kwargs: Any) -> Any:
        """Call a cross-cutting hook for ``handle``'s task: OMG errors pass through (one line for the user), anything
        else is a plugin bug, re-raised as PluginHookError naming the task and what was being done."""
        try:
            return self._cross_cutting(hook_name)(task=handle.info, **kwargs)
        except OMGError:
            raise
        except Exception as exc:
            # any plugin may have answered: the innermost frame says whose code failed (the task's or a writer's)
            frames = traceback.extract_tb(exc.__traceback__)
            where = f" (at {frames[-1].filename}:{frames[-1].lineno}, in {hook_name})" if frames else ""
            raise PluginHookError(
                f"task {handle.name!r}: {doing} raised {type(exc).__name__}: {exc}{where}", task=handle.name,
                hook=hook_name,
            ) from exc

    def _cross_cutting(self, hook_name: str) -> Any:
        """A caller of ``hook_name`` on every plugin in use (task plugins left out by a collision do not take part)."""
        in_use = {id(handle.plugin) for handle in self._handles.values()}
        left_out = [c.plugin for c in self._candidates if id(c.plugin) not in in_use]
        return self._plugin_manager.subset_hook_caller(hook_name, remove_plugins=left_out)

    def _contributed(self, hook_name: str, expected: type) -> dict[str, Any]:
        if hook_name not in self._contributions:
            self._contributions[hook_name] = self._collect(hook_name, expected)
        return {name: value for name, (value, _) in self._contributions[hook_name][0].items()}

    def _collect(
        self, hook_name: str, expected: type
    ) -> tuple[dict[str, tuple[Any, PluginOrigin]], list[PluginProblem]]:
        """Call a contributing hook on each plugin in use; the values by name, and the problems met."""
        contributors = [(h.plugin, h.origin) for h in self] + self._extensions
        collected: dict[str, tuple[Any, PluginOrigin]] = {}
        problems: list[PluginProblem] = []
        for plugin, origin in contributors:
            try:
                answers = self._call_task_hook(plugin, hook_name)
                contributed = [value for answer in answers for value in (answer or [])]
                wrong = [type(value).__name__ for value in contributed if not isinstance(value, expected)]
                if wrong:
                    raise PluginValidationError(
                        f"{hook_name} returned {', '.join(wrong)}; expected a list of {expected.__module__}."
                        f"{expected.__name__}"
                    )
            except Exception as exc:
                where = plugin_location(exc, _module_name(plugin))
                error = PluginValidationError(
                    f"plugin ({origin.describe()}): what its {hook_name} hook contributes is left out: "
                    f"{type(exc).__name__}: {exc}" + (f" (at {where})" if where else "")
                )
                problems.append(PluginProblem(origin, error, kind="invalid"))
                continue
            for value in contributed:
                held = collected.get(value.name)
                if held is None or held[0] == value:
                    collected.setdefault(value.name, (value, origin))
                    continue
                if hasattr(held[0], "merged"):  # output formats: one name, scopes from several plugins
                    collected[value.name] = (held[0].merged(value), held[1])
                    continue
                error = PluginValidationError(
                    f"{expected.__name__} {value.name!r} is contributed by {held[1].describe()} and by "
                    f"{origin.describe()}; the second is left out"
                )
                problems.append(PluginProblem(origin, error, kind="invalid", names=(value.name,)))
        return collected, problems

    def file_evaluator_for(self, name: str) -> tuple[str, FileEvaluator]:
        """(task or evaluator name to report, evaluator) for ``omg eval --task NAME``.

        NAME is a task name or alias (its ``TaskInfo.file_evaluator``), or an evaluator's own name.

        Raises:
          UnknownTaskError / TaskUnavailableError: as :meth:`get`, when NAME is neither.
          PluginValidationError: the task names an evaluator no plugin contributes.
          InputError: the task has no file evaluator.
        """
        from omg_core.errors import InputError

        evaluators = self.file_evaluators()
        key = name.strip().lower()
        if key not in self._by_name_or_alias and key in evaluators:
            return key, evaluators[key]
        handle = self.get(name)
        wanted = handle.info.file_evaluator
        if wanted is None:
            raise InputError(
                f"task {handle.name!r} has no file evaluator (its TaskInfo names none); evaluators: "
                f"{', '.join(sorted(evaluators)) or 'none'}"
            )
        if wanted not in evaluators:
            troubles = [str(p) for p in self.problems if wanted in p.names]
            raise PluginValidationError(
                f"task {handle.name!r} ({handle.origin.describe()}) is scored by file evaluator {wanted!r}, which no "
                f"plugin contributes" + (f": {'; '.join(troubles)}" if troubles else "")
                + f"; contributed: {', '.join(sorted(evaluators)) or 'none'}"
            )
        return handle.name, evaluators[wanted]

    # -- registration ------------------------------------------------------------------------------------------
    def register(self, plugin: object, origin: PluginOrigin | None = None) -> TaskHandle:
        """Validate and register one task plugin given in code.

        Raises:
          PluginValidationError: a required hook is missing, a hook has a parameter its spec lacks, a function looks
            like a hook but its name matches no spec, or ``omg_task_info`` does not return a valid TaskInfo.
          DuplicateTaskError: the task's name or an alias is already claimed (both origins are named); the registry
            is left unchanged. (Discovered plugins record a collision in :attr:`problems` instead.)
        """
        handle = self._validate(plugin, origin)
        for claimed in handle.info.all_names:
            holders = [c for c in self._candidates if claimed in c.info.all_names]
            if holders:
                self._plugin_manager.unregister(plugin)
                raise DuplicateTaskError(self._collision_message((claimed,), [*holders, handle]))
        self._candidates.append(handle)
        self._settle()
        return handle

    def _offer(self, plugin: object, origin: PluginOrigin) -> TaskHandle | None:
        """Validate a discovered plugin and add it; returns its handle, or None when a name collision leaves it out
        or the plugin has no task (it only contributes writers or evaluators)."""
        if not _is_task_plugin(plugin):
            self._add_extension(plugin, origin)
            return None
        for candidate in self._candidates:
            if candidate.plugin is plugin:  # a second way to the same plugin (entry point and -p module)
                return self._handles.get(candidate.name) if candidate in self._handles.values() else None
        handle = self._validate(plugin, origin)
        self._candidates.append(handle)
        self._settle()
        return handle if self._handles.get(handle.name) is handle else None

    def _add_extension(self, plugin: object, origin: PluginOrigin) -> None:
        """Register a plugin without a task: it may implement only the cross-cutting hooks."""
        if any(plugin is known for known, _ in self._extensions):
            return
        self._check_hook_names(plugin, origin)
        # wrappers around a task hook are welcome (they see every task's calls); answering one is a task's job
        task_only = [
            name
            for name in hookspecs.REQUIRED_HOOKS
            if callable(getattr(plugin, name, None)) and not _is_wrapper(getattr(plugin, name))
        ]
        if task_only:
            raise PluginValidationError(
                f"plugin ({origin.describe()}) implements {', '.join(task_only)} but not omg_task_info: a task plugin "
                "implements all of " + ", ".join(hookspecs.REQUIRED_HOOKS) + " (a plugin without a task may only "
                "wrap them, with @hookimpl(wrapper=True))"
            )
        try:
            self._plugin_manager.register(plugin, name=f"{origin.describe()} #{id(plugin)}")
        except pluggy.PluginValidationError as exc:
            raise PluginValidationError(f"plugin ({origin.describe()}) has a wrong hook signature: {exc}") from exc
        if not self._plugin_manager.get_hookcallers(plugin):
            self._plugin_manager.unregister(plugin)
            raise PluginValidationError(
                f"plugin ({origin.describe()}) implements no OMG hook; decorate its hooks with @omg_core.hookimpl "
                "(see omg_core.hookspecs)"
            )
        self._extensions.append((plugin, origin))
        self._contributions.clear()  # a new contributor: collect again on next use

    def _validate(self, plugin: object, origin: PluginOrigin | None) -> TaskHandle:
        origin = origin or PluginOrigin(module=_module_name(plugin))
        self._check_hook_names(plugin, origin)
        try:
            self._plugin_manager.register(plugin, name=f"{origin.describe()} #{id(plugin)}")
        except pluggy.PluginValidationError as exc:
            raise PluginValidationError(f"task plugin ({origin.describe()}) has a wrong hook signature: {exc}") from exc
        try:
            implemented = {caller.name for caller in self._plugin_manager.get_hookcallers(plugin) or []}
            missing = [name for name in hookspecs.REQUIRED_HOOKS if name not in implemented]
            if missing:
                raise PluginValidationError(
                    f"task plugin ({origin.describe()}) does not implement the required hook(s) {', '.join(missing)}; "
                    "define them decorated with @omg_core.hookimpl (see omg_core.hookspecs)"
                )
            info = self._task_info(plugin, origin)
            task_blocks = self.blocked - {ep.name for ep in self._entry_points()} if self.blocked else set()
            if any(name in task_blocks for name in info.all_names):
                raise _Blocked(info.name)
        except BaseException:
            self._plugin_manager.unregister(plugin)
            raise
        return TaskHandle(info, plugin, origin, self)

    def _settle(self) -> None:
        """Put every candidate whose names nobody else claims in use; record each group of contested names once."""
        self._contributions.clear()  # the plugins in use change: collect formats and evaluators again on next use
        claims: dict[str, list[TaskHandle]] = {}
        for candidate in self._candidates:
            for claimed in candidate.info.all_names:
                claims.setdefault(claimed, []).append(candidate)
        contested: dict[tuple[int, ...], list[str]] = {}  # claimants (by position) -> the names they all claim
        for claimed, holders in claims.items():
            if len(holders) > 1:
                contested.setdefault(tuple(self._candidates.index(h) for h in holders), []).append(claimed)
        left_out = {index for indexes in contested for index in indexes}
        in_use = [c for i, c in enumerate(self._candidates) if i not in left_out]
        self._handles = {c.name: c for c in in_use}
        self._by_name_or_alias = {claimed: c for c in in_use for claimed in c.info.all_names}
        self._collisions = []
        for indexes, names in contested.items():
            holders = [self._candidates[i] for i in indexes]
            affected = {n for h in holders for n in (*h.info.all_names, h.origin.block_name) if n}
            self._collisions.append(
                PluginProblem(
                    holders[0].origin,
                    DuplicateTaskError(self._collision_message(tuple(names), holders)),
                    kind="collision",
                    names=tuple(sorted(affected)),
                    claimants=tuple(h.origin for h in holders),
                    fixes=tuple(self._fix_for(h.origin) for h in holders),
                )
            )

    def _collision_message(self, names: tuple[str, ...], holders: Sequence[TaskHandle]) -> str:
        quoted = ", ".join(repr(n) for n in names)
        what = f"task name {quoted} is" if len(names) == 1 else f"task names {quoted} are"
        times = "twice" if len(holders) == 2 else f"{len(holders)} times"
        by = " and ".join(f"by task {h.name!r} ({h.origin.describe()})" for h in holders)
        fixes = " or ".join(self._fix_for(h.origin) for h in holders)
        return (
            f"{what} claimed {times}: {by}. All of them are left out, since OMG cannot tell which one you mean; "
            f"the other tasks work. Keep one: uninstall the other distribution, or block it with {fixes}."
        )

    def _fix_for(self, origin: PluginOrigin) -> str:
        """The command-line option that leaves out exactly this plugin."""
        name = origin.block_name
        if name is None:
            return f"dropping -p {origin.module}" if origin.module else "not registering it"
        if origin.distribution and sum(ep.name == name for ep in self._entry_points()) > 1:
            return f"-p {BLOCK_PREFIX}{origin.distribution}:{name}"
        return f"-p {BLOCK_PREFIX}{name}"

    def _check_hook_names(self, plugin: object, origin: PluginOrigin) -> None:
        known = {name for name in dir(hookspecs) if name.startswith("omg_")}
        for attr_name in dir(plugin):
            if not attr_name.startswith("omg_") or attr_name in known:
                continue
            if callable(getattr(plugin, attr_name, None)):
                close = difflib.get_close_matches(attr_name, sorted(known), n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise PluginValidationError(
                    f"task plugin ({origin.describe()}) defines {attr_name}, which is no OMG hook{hint}"
                )
        for hook_name in known:
            candidate = getattr(plugin, hook_name, None)
            if not callable(candidate):
                continue
            if not hasattr(candidate, f"{hookspecs.PROJECT_NAME}_impl"):
                raise PluginValidationError(
                    f"task plugin ({origin.describe()}) defines {hook_name} without the @omg_core.hookimpl decorator, "
                    "so OMG cannot call it; decorate it"
                )
            offered = list(inspect.signature(getattr(hookspecs, hook_name)).parameters)
            taken = [
                name
                for name, parameter in inspect.signature(candidate).parameters.items()
                if parameter.default is inspect.Parameter.empty
            ]
            unknown = [name for name in taken if name not in offered]
            if unknown:
                raise PluginValidationError(
                    f"task plugin ({origin.describe()}): hook {hook_name} takes parameter(s) {', '.join(unknown)} "
                    f"that its spec does not offer; it may take any of: {', '.join(offered) or '(none)'}"
                )

    def _task_info(self, plugin: object, origin: PluginOrigin) -> TaskInfo:
        try:
            info = self._call_task_hook(plugin, "omg_task_info")
        except Exception as exc:
            where = plugin_location(exc, _module_name(plugin))
            raise PluginValidationError(
                f"task plugin ({origin.describe()}): omg_task_info raised {type(exc).__name__}: {exc}"
                + (f" (at {where})" if where else "")
            ) from exc
        if not isinstance(info, TaskInfo):
            raise PluginValidationError(
                f"task plugin ({origin.describe()}): omg_task_info returned {type(info).__name__}, "
                "expected omg_core.TaskInfo"
            )
        return info

    def _call_task_hook(self, plugin: object, hook_name: str, **kwargs: Any) -> Any:
        # Every task implements every hook: restrict the call to this task's plugin (other non-task plugins,
        # such as hook wrappers, still take part).
        others = [p for p in self._plugin_manager.get_plugins() if p is not plugin and _is_task_plugin(p)]
        caller = self._plugin_manager.subset_hook_caller(hook_name, remove_plugins=others)
        return caller(**kwargs)

    # -- loading -----------------------------------------------------------------------------------------------
    def _entry_points(self) -> list[EntryPoint]:
        if self._group_entry_points is None:
            self._group_entry_points = list(entry_points(group=ENTRY_POINT_GROUP))
        return self._group_entry_points

    def _is_blocked(self, entry_point: EntryPoint) -> bool:
        origin = PluginOrigin.from_entry_point(entry_point)
        return entry_point.name in self.blocked or f"{origin.distribution}:{entry_point.name}" in self.blocked

    def load_entry_points(self) -> None:
        """Register every plugin of the ``omg.tasks`` group; a plugin that cannot be used is recorded in
        :attr:`problems` (see the module docstring) and the others still load."""
        seen = {c.origin for c in self._candidates} | {p.origin for p in self._load_problems}
        for entry_point in sorted(self._entry_points(), key=lambda ep: (ep.name, ep.value)):
            if self._is_blocked(entry_point) or PluginOrigin.from_entry_point(entry_point) in seen:
                continue
            self._load_entry_point(entry_point, record_problems=True)

    def _load_entry_point(self, entry_point: EntryPoint, record_problems: bool) -> TaskHandle | None:
        origin = PluginOrigin.from_entry_point(entry_point)
        try:
            torch_was_loaded = "torch" in sys.modules
            started = time.perf_counter()
            try:
                plugin = entry_point.load()
                if not torch_was_loaded and "torch" in sys.modules:
                    self.slow_imports.append(
                        f"entry point '{entry_point.name} = {entry_point.value}' (distribution {origin.distribution}) "
                        f"imports torch as it loads ({time.perf_counter() - started:.1f} s), so every `omg` command "
                        "waits for it; import torch and the modules that need it (omg_core.results, "
                        "omg_core.postprocess, omg_eval.metric, your metric) inside the hooks"
                    )
            except Exception as exc:
                where = plugin_location(exc, entry_point.module)
                raise PluginLoadError(
                    f"task plugin entry point '{entry_point.name} = {entry_point.value}' "
                    f"(distribution {origin.distribution} {origin.version}) failed to import: "
                    f"{type(exc).__name__}: {exc}" + (f" (at {where})" if where else "")
                ) from exc
            return self._offer(plugin, origin)
        except _Blocked:
            return None
        except (PluginLoadError, PluginValidationError) as exc:
            if not record_problems:
                raise
            kind = "import" if isinstance(exc, PluginLoadError) else "invalid"
            self._load_problems.append(
                PluginProblem(origin, exc, kind=kind, names=(entry_point.name,), fixes=(self._fix_for(origin),))
            )
            return None

    def load_plugin(self, spec: str) -> TaskHandle | None:
        """Load one plugin named on the command line (``-p``): an entry-point name of the group, or a module path.

        Returns its handle, or None when it was blocked or a name collision left it out (see :attr:`problems`).
        """
        for entry_point in self._entry_points():
            if entry_point.name == spec:
                origin = PluginOrigin.from_entry_point(entry_point)
                for candidate in self._candidates:
                    if candidate.origin == origin:
                        return self._handles.get(candidate.name) if candidate in self._handles.values() else None
                return self._load_entry_point(entry_point, record_problems=False)
        module_name, _, attribute = spec.partition(":")
        try:
            plugin = importlib.import_module(module_name)
            if attribute:
                plugin = getattr(plugin, attribute)
        except Exception as exc:
            where = plugin_location(exc, module_name)
            raise PluginLoadError(
                f"-p {spec}: no '{ENTRY_POINT_GROUP}' entry point has that name and importing it as "
                f"'module' or 'module:attribute' failed: {type(exc).__name__}: {exc}"
                + (f" (at {where})" if where else "")
            ) from exc
        try:
            return self._offer(plugin, PluginOrigin(module=spec))
        except _Blocked:
            return None

    # -- lookup ------------------------------------------------------------------------------------------------
    def get(self, name: str) -> TaskHandle:
        """Find a task by canonical name or alias.

        Raises:
          TaskUnavailableError: the name belongs to a plugin that was left out (failed to load, or a name collision);
            the message says why.
          UnknownTaskError: no plugin has that name; the message suggests the closest names.
        """
        key = name.strip().lower()
        handle = self._by_name_or_alias.get(key)
        if handle is not None:
            return handle
        reasons = [p for p in self.problems if key in p.names]
        if reasons:
            raise TaskUnavailableError(f"task {name!r} is unavailable: " + " Also: ".join(_why(p) for p in reasons))
        blocking = sorted(spec for spec in self.blocked if spec.split(":")[-1] == key)
        if blocking:  # the user left this plugin out on purpose: say so instead of suggesting other tasks
            raise TaskUnavailableError(
                f"task {name!r} is unavailable: {', '.join('-p ' + BLOCK_PREFIX + spec for spec in blocking)} blocks "
                "it; drop that option to use it"
            )
        names = sorted(self._by_name_or_alias)
        close = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
        message = f"unknown task {name!r}."
        if close:
            message += f" Did you mean: {', '.join(close)}?"
        message += f" Registered tasks: {', '.join(sorted(self._handles)) or 'none'} (see `omg tasks`)."
        if self.problems:
            message += " Note: " + "; ".join(str(p) for p in self.problems)
        raise UnknownTaskError(message)

    def __iter__(self) -> Iterator[TaskHandle]:
        return iter(sorted(self._handles.values(), key=lambda h: h.name))

    def __len__(self) -> int:
        return len(self._handles)

    def __contains__(self, name: str) -> bool:
        return name in self._by_name_or_alias


class _Blocked(Exception):
    """Internal: the plugin's task was blocked with ``-p no:NAME``."""


def _why(problem: PluginProblem) -> str:
    if problem.kind == "collision":
        return f"a name collision left it out: {problem}"
    fix = f" Fix or uninstall distribution {problem.origin.distribution}" if problem.origin.distribution else " Fix it"
    if problem.fixes:
        fix += f", or leave it out with {problem.fixes[0]}"
    verb = "failed to load" if problem.kind == "import" else "was refused"
    return f"its plugin {verb}: {problem}.{fix}; `omg tasks` lists the tasks that work."


def _is_wrapper(function: Any) -> bool:
    options = getattr(function, f"{hookspecs.PROJECT_NAME}_impl", {}) or {}
    return bool(options.get("wrapper") or options.get("hookwrapper"))


def _is_task_plugin(plugin: object) -> bool:
    return callable(getattr(plugin, "omg_task_info", None))


def _module_name(plugin: object) -> str:
    """The module a plugin object lives in (the module itself for a module plugin)."""
    if isinstance(plugin, types.ModuleType):
        return plugin.__name__
    if isinstance(plugin, type):
        return plugin.__module__
    return type(plugin).__module__


def _package_roots(module: str | None) -> list[Path]:
    """The folder of ``module``'s top-level package (or its file, for a top-level module), without importing it."""
    if not module:
        return []
    top = module.split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return [Path(p).resolve() for p in spec.submodule_search_locations]
    if spec.origin and os.path.isfile(spec.origin):
        return [Path(spec.origin).resolve()]
    return []


def plugin_location(exc: BaseException, module: str | None) -> str | None:
    """``file:line`` of the innermost traceback frame of ``exc`` inside ``module``'s top-level package (for a
    SyntaxError in that package, the line that does not parse); None when no frame is in the package."""
    roots = _package_roots(module)
    if not roots:
        return None

    def inside(filename: str | None) -> bool:
        if not filename or filename.startswith("<"):
            return False
        path = Path(filename).resolve()
        return any(path == root or root in path.parents for root in roots)

    found = None
    for frame, line in traceback.walk_tb(exc.__traceback__):
        if inside(frame.f_code.co_filename):
            found = f"{frame.f_code.co_filename}:{line}"
    if isinstance(exc, SyntaxError) and exc.lineno and inside(exc.filename):
        found = f"{exc.filename}:{exc.lineno}"
    return found


def autoload_enabled() -> bool:
    return os.environ.get(AUTOLOAD_ENV, "").strip().lower() in ("", "0", "false", "no")


def discover_tasks(plugins: Sequence[str] = (), autoload: bool | None = None) -> TaskRegistry:
    """Build a registry: entry points (unless autoload is off) plus explicitly named plugins.

    Arguments:
      plugins: ``-p`` values: a module path or entry-point name to load, or ``no:NAME`` to block the entry point
        NAME (``no:DIST:NAME``: the one of distribution DIST), or, when no entry point is called NAME, the task with
        that name or alias.
      autoload: load the ``omg.tasks`` entry points; ``None`` reads ``OMG_DISABLE_PLUGIN_AUTOLOAD``.

    A discovered plugin that fails to import, breaks the hook contract or claims a name another plugin claims is
    left out and recorded in :attr:`TaskRegistry.problems`; a plugin named with ``-p`` that cannot load raises
    :class:`PluginLoadError` / :class:`PluginValidationError`.
    """
    registry = TaskRegistry()
    registry.blocked = {spec[len(BLOCK_PREFIX) :] for spec in plugins if spec.startswith(BLOCK_PREFIX)}
    explicit = [spec for spec in plugins if not spec.startswith(BLOCK_PREFIX)]
    for spec in explicit:
        if spec in registry.blocked:
            raise PluginLoadError(f"-p {spec} and -p no:{spec} contradict each other; keep one")
    if autoload if autoload is not None else autoload_enabled():
        registry.load_entry_points()
    for spec in explicit:
        registry.load_plugin(spec)
    return registry


def cached_registry(state: dict[str, Any]) -> TaskRegistry:
    """The registry kept in a command line's shared ``state`` (click's root ``ctx.obj``), discovered on first use with
    the ``-p`` plugins listed in ``state["plugins"]``, so every subcommand of one invocation sees the same one."""
    if state.get("registry") is None:
        state["registry"] = discover_tasks(plugins=state.get("plugins", ()))
    return state["registry"]


class _CheckedWriter(ResultWriter):
    """A plugin's ResultWriter with its answers checked and its non-OMG errors named (PluginHookError)."""

    def __init__(self, writer: ResultWriter, task: str, output_format: str) -> None:
        super().__init__(writer.task, writer.output_dir)
        self.writer = writer
        self.task_name = task
        self.output_format = output_format

    def _paths(self, answer: Any, method: str) -> list[Path]:
        if not isinstance(answer, (list, tuple)):
            raise PluginValidationError(
                f"the {self.output_format!r} writer's {method}() returned {type(answer).__name__}, expected a list of "
                "paths"
            )
        return [Path(path) for path in answer]

    def _call(self, method: str, *args: Any) -> list[Path]:
        try:
            answer = getattr(self.writer, method)(*args)
        except OMGError:
            raise
        except Exception as exc:
            raise PluginHookError(
                f"task {self.task_name!r}: writing format {self.output_format!r} ({method}) raised "
                f"{type(exc).__name__}: {exc}", task=self.task_name, hook="omg_open_writer",
            ) from exc
        return self._paths(answer, method)

    def write(self, result: TaskResult, index: int) -> list[Path]:
        return self._call("write", result, index)

    def close(self) -> list[Path]:
        return self._call("close")

    @property
    def streams(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.writer, "streams", False))

    def write_chunk(self, result: TaskResult, index: int) -> list[Path]:
        return self._call("write_chunk", result, index)

    def finish_video(self, result: TaskResult | None, index: int) -> list[Path]:
        return self._call("finish_video", result, index)

    @property
    def can_shard(self) -> bool:
        """Whether runs on several ranks can merge this writer's gathered files: it gathers nothing (the base
        ``close``), or it names the records its ``close`` writes."""
        writer_class = type(self.writer)
        return writer_class.close is ResultWriter.close or bool(writer_class.gathered_records)

    def shard_records(self) -> dict[str, Any]:
        return self.writer.shard_records()

    def merge_shard_records(self, shards: list[dict[str, Any]]) -> None:
        self.writer.merge_shard_records(shards)
