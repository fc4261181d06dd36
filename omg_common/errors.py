"""The errors OMG raises, and which of them a task plugin raises to report a problem.

Every error OMG raises on purpose derives from :class:`OMGError`; the ``omg`` command prints it as one ``error:`` line
(exit code 2; :class:`TaskNotImplementedError` exits 3) instead of a traceback.

For task plugin authors: a hook (see :mod:`omg_core.hookspecs`) that finds something wrong with what the *user* gave
raises one of these, and the user sees one line, exit code 2::

    from omg_core.errors import ConfigError, InputError

    raise InputError("task 'salient' needs an RGB image; frames/0003.png is grey-scale")
    raise ConfigError("task option 'threshold' must be in (0, 1], got 1.5")

- :class:`InputError`: the input or a command-line value is wrong for the task (file, modality, prompts, vocabulary).
- :class:`ConfigError`: a configuration value (a task option, a config file field) is invalid.
- :class:`TaskNotImplementedError`: the task cannot do this yet (exit code 3).

Any other exception a hook raises (``ValueError``, ``KeyError``, ...) is treated as a bug in the plugin: it is re-raised
as :class:`PluginHookError`, chained from the original, so the traceback stays visible and its last line names the
task and the hook, e.g. ``PluginHookError: task 'salient' hook omg_decode_outputs raised ValueError: ...``.
"""

from __future__ import annotations


class OMGError(Exception):
    """A problem the user can fix; the message says what was wrong and what to do."""


class UnknownTaskError(OMGError, LookupError):
    """The requested task name or alias is not registered."""


class TaskUnavailableError(UnknownTaskError):
    """The requested task's plugin is installed but was left out: it failed to load, or its name collides."""


class DuplicateTaskError(OMGError):
    """Two plugins claim the same task name or alias."""


class PluginValidationError(OMGError):
    """A task plugin does not implement the hook contract (missing hook, wrong signature, wrong return type)."""


class PluginLoadError(OMGError):
    """A task plugin could not be imported."""


class TaskNotImplementedError(OMGError, NotImplementedError):
    """The task is registered, but its query encoding / output decoding is not implemented yet."""


class ConfigError(OMGError, ValueError):
    """A configuration file or value is invalid; the message names the file and the field."""


class InputError(OMGError, ValueError):
    """A command-line or API input is invalid (missing file, wrong kind of input for the task, ...)."""


class PluginHookError(Exception):
    """A task plugin's hook raised an exception that is not an :class:`OMGError`: a bug in the plugin.

    Deliberately not an :class:`OMGError`, so the ``omg`` command shows the traceback (the original exception is the
    ``__cause__``). ``task`` and ``hook`` name where it happened.
    """

    def __init__(self, message: str, task: str, hook: str) -> None:
        super().__init__(message)
        self.task = task
        self.hook = hook
