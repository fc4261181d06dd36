"""OMG core: the shared model, the task hook specifications and the plugin registry.

The names a task plugin needs most are re-exported here: ``hookimpl``, ``TaskInfo`` and ``TaskOptions``. The rest of
the plugin API: ``omg_core.task_io`` (TaskRequest, QueryPlan, TaskResult), ``omg_core.results`` (typed results),
``omg_core.postprocess`` (steps on raw outputs), ``omg_core.errors`` (InputError, ConfigError), and for contributions
``omg_core.output_formats.OutputFormat`` and ``omg_core.file_evaluators.FileEvaluator``.
"""

from importlib.metadata import PackageNotFoundError, version

from omg_core.hookspecs import hookimpl
from omg_core.task_info import TaskInfo, TaskOptions

try:
    __version__ = version("omg-seg")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["TaskInfo", "TaskOptions", "__version__", "hookimpl"]
