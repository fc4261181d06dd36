"""OMG core: the shared model, the task hook specifications and the plugin registry.

The names a task plugin needs are re-exported here: ``hookimpl`` and ``TaskInfo``.
"""

from importlib.metadata import PackageNotFoundError, version

from omg_core.hookspecs import hookimpl
from omg_core.task_info import TaskInfo

try:
    __version__ = version("omg-seg")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["TaskInfo", "__version__", "hookimpl"]
