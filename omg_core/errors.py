"""Every error OMG raises on purpose derives from :class:`OMGError`, so the CLI can print it without a traceback."""

from __future__ import annotations


class OMGError(Exception):
    """A problem the user can fix; the message says what was wrong and what to do."""


class UnknownTaskError(OMGError, LookupError):
    """The requested task name or alias is not registered."""


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
