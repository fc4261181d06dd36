"""The error classes a task plugin raises and catches: ``from omg_core.errors import InputError, ConfigError``.

They are defined in :mod:`omg_common.errors` (the bottom layer, so that data and evaluation code can raise them too)
and re-exported here, the place plugin authors import them from; see that module for which ones give a one-line error.
"""

from omg_common.errors import (
    ConfigError,
    DuplicateTaskError,
    InputError,
    OMGError,
    PluginHookError,
    PluginLoadError,
    PluginValidationError,
    TaskNotImplementedError,
    TaskUnavailableError,
    UnknownTaskError,
)

__all__ = [
    "ConfigError",
    "DuplicateTaskError",
    "InputError",
    "OMGError",
    "PluginHookError",
    "PluginLoadError",
    "PluginValidationError",
    "TaskNotImplementedError",
    "TaskUnavailableError",
    "UnknownTaskError",
]
