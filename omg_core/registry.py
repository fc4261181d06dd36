"""Discovery and lookup of task plugins (pluggy + the ``omg.tasks`` entry-point group).

The core never imports a task by name: :func:`discover_tasks` loads every entry point in the group (unless
``OMG_DISABLE_PLUGIN_AUTOLOAD`` is set), plus the plugins named explicitly (``-p module`` or ``-p entry-point``), and
validates each against :mod:`omg_core.hookspecs`. ``-p no:NAME`` blocks an entry point or task by name, as in pytest.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from omg_core import hookspecs
from omg_core.errors import (
    DuplicateTaskError,
    PluginLoadError,
    PluginValidationError,
    UnknownTaskError,
)
from omg_core.task_info import TaskInfo

if TYPE_CHECKING:  # task_io imports torch; keep `omg tasks` and lookups free of it
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
    """A plugin that could not be loaded; the other tasks still work."""

    origin: PluginOrigin
    error: Exception

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
        result = self._registry._call_task_hook(self.plugin, hook_name, **kwargs)
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
        from omg_core.task_io import TaskResult

        return self._call("omg_decode_outputs", TaskResult, request=request, plan=plan, outputs=outputs)

    def create_metric(self, options: dict[str, Any] | None = None) -> Any:
        from omg_eval.metric import Metric

        return self._call("omg_create_metric", Metric, options=dict(options or {}))

    def write_results(self, results: list[TaskResult], output_dir: Path, output_format: str | None = None) -> list[Path]:
        chosen = output_format or self.info.output_formats[0]
        if chosen not in self.info.output_formats:
            raise PluginValidationError(
                f"task {self.name!r} writes {', '.join(self.info.output_formats)}; {chosen!r} is not one of them"
            )
        return self._call(
            "omg_write_results", list, results=list(results), output_dir=Path(output_dir), output_format=chosen
        )


class TaskRegistry:
    """Holds the registered task plugins and answers lookups by name or alias."""

    def __init__(self) -> None:
        self._plugin_manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._plugin_manager.add_hookspecs(hookspecs)
        self._handles: dict[str, TaskHandle] = {}  # canonical name -> handle
        self._by_name_or_alias: dict[str, TaskHandle] = {}
        self.problems: list[PluginProblem] = []
        self.blocked: set[str] = set()

    # -- registration ------------------------------------------------------------------------------------------
    def register(self, plugin: object, origin: PluginOrigin | None = None) -> TaskHandle:
        """Validate and register one task plugin.

        Raises:
          PluginValidationError: a required hook is missing, a hook has a parameter its spec lacks, a function looks
            like a hook but its name matches no spec, or ``omg_task_info`` does not return a valid TaskInfo.
          DuplicateTaskError: the task's name or an alias is already taken (both origins are named).
        """
        origin = origin or PluginOrigin(module=getattr(plugin, "__name__", type(plugin).__name__))
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
            if info.name in self.blocked or any(alias in self.blocked for alias in info.aliases):
                raise _Blocked(info.name)
            for claimed in info.all_names:
                holder = self._by_name_or_alias.get(claimed)
                if holder is not None:
                    blockers = " or ".join(f"-p no:{o.block_name or info.name}" for o in (holder.origin, origin))
                    raise DuplicateTaskError(
                        f"task name {claimed!r} is claimed twice: by task {holder.name!r} ({holder.origin.describe()}) "
                        f"and by task {info.name!r} ({origin.describe()}). Uninstall one of the two distributions, "
                        f"or block one with {blockers}."
                    )
        except BaseException:
            self._plugin_manager.unregister(plugin)
            raise
        handle = TaskHandle(info, plugin, origin, self)
        self._handles[info.name] = handle
        for claimed in info.all_names:
            self._by_name_or_alias[claimed] = handle
        return handle

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
            raise PluginValidationError(
                f"task plugin ({origin.describe()}): omg_task_info raised {type(exc).__name__}: {exc}"
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
    def load_entry_points(self) -> None:
        """Register every plugin of the ``omg.tasks`` group; a plugin that fails is recorded in :attr:`problems`."""
        for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
            if entry_point.name in self.blocked or entry_point.name in self._loaded_entry_points():
                continue
            self._load_entry_point(entry_point, record_problems=True)

    def _loaded_entry_points(self) -> set[str]:
        return {h.origin.block_name for h in self._handles.values() if h.origin.block_name}

    def _load_entry_point(self, entry_point: EntryPoint, record_problems: bool) -> TaskHandle | None:
        origin = PluginOrigin.from_entry_point(entry_point)
        try:
            try:
                plugin = entry_point.load()
            except Exception as exc:
                raise PluginLoadError(
                    f"task plugin entry point '{entry_point.name} = {entry_point.value}' "
                    f"(distribution {origin.distribution} {origin.version}) failed to import: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            return self.register(plugin, origin)
        except _Blocked:
            return None
        except DuplicateTaskError:
            raise
        except (PluginLoadError, PluginValidationError) as exc:
            if not record_problems:
                raise
            self.problems.append(PluginProblem(origin, exc))
            warnings.warn(f"{exc} (the other tasks still load)", RuntimeWarning, stacklevel=3)
            return None

    def load_plugin(self, spec: str) -> TaskHandle | None:
        """Load one plugin named on the command line (``-p``): an entry-point name of the group, or a module path."""
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            if entry_point.name == spec:
                if spec in self._loaded_entry_points():
                    return self._handles.get(spec)
                return self._load_entry_point(entry_point, record_problems=False)
        module_name, _, attribute = spec.partition(":")
        try:
            plugin = importlib.import_module(module_name)
            if attribute:
                plugin = getattr(plugin, attribute)
        except Exception as exc:
            raise PluginLoadError(
                f"-p {spec}: no '{ENTRY_POINT_GROUP}' entry point has that name and importing it as "
                f"'module' or 'module:attribute' failed: {type(exc).__name__}: {exc}"
            ) from exc
        if any(handle.plugin is plugin for handle in self._handles.values()):
            return None
        try:
            return self.register(plugin, PluginOrigin(module=spec))
        except _Blocked:
            return None

    # -- lookup ------------------------------------------------------------------------------------------------
    def get(self, name: str) -> TaskHandle:
        """Find a task by canonical name or alias; unknown names get the closest suggestions."""
        handle = self._by_name_or_alias.get(name.strip().lower())
        if handle is not None:
            return handle
        names = sorted(self._by_name_or_alias)
        close = difflib.get_close_matches(name.lower(), names, n=3, cutoff=0.5)
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


def _is_task_plugin(plugin: object) -> bool:
    return callable(getattr(plugin, "omg_task_info", None))


def autoload_enabled() -> bool:
    return os.environ.get(AUTOLOAD_ENV, "").strip().lower() in ("", "0", "false", "no")


def discover_tasks(plugins: Sequence[str] = (), autoload: bool | None = None) -> TaskRegistry:
    """Build a registry: entry points (unless autoload is off) plus explicitly named plugins.

    Arguments:
      plugins: ``-p`` values: a module path or entry-point name to load, or ``no:NAME`` to block an entry point or
        task by name.
      autoload: load the ``omg.tasks`` entry points; ``None`` reads ``OMG_DISABLE_PLUGIN_AUTOLOAD``.
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
