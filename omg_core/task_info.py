"""The pydantic model a task plugin returns from ``omg_task_info`` to describe itself."""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator

from omg_core.errors import ConfigError

TASK_NAME_PATTERN = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"

Modality = Literal["image", "video"]
PromptKind = Literal["points", "boxes", "masks"]
Vocabulary = Literal["closed", "open"]


class TaskOptions(BaseModel):
    """Base of a task's options: subclass it with one field per option, each with a default and a description.

    ``omg run --option KEY=VALUE`` and the ``task.options`` mapping of a run config are validated against it before
    the model is built; the hooks receive the validated instance as ``request.options``. Unknown keys are errors
    (a misspelt option must not be ignored), and options are read-only.

        class SalientOptions(TaskOptions):
            threshold: float = Field(0.5, ge=0, le=1, description="mask probability above which a pixel is salient")
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


def describe_options(options: type[TaskOptions]) -> dict[str, dict[str, Any]]:
    """Each option's JSON-schema type, default and description (what `omg tasks --json` shows)."""
    schema = options.model_json_schema()
    required = set(schema.get("required", ()))
    described = {}
    for name, field_schema in schema.get("properties", {}).items():
        entry = {key: value for key, value in field_schema.items() if key != "title"}
        entry["required"] = name in required
        described[name] = entry
    return described


def validate_options(task: str, options: type[TaskOptions], given: dict[str, Any], source: str) -> TaskOptions:
    """``given`` validated against a task's options model.

    Raises:
      ConfigError: naming ``source`` (the config file or the command line), each bad option, and the options the task
        takes with their defaults.
    """
    try:
        return options.model_validate(given)
    except ValidationError as exc:
        problems = "; ".join(_describe_option_error(error, options) for error in exc.errors())
        accepted = ", ".join(
            f"{name}" + ("" if field.is_required() else f" (default {field.default!r})")
            + (f": {field.description}" if field.description else "")
            for name, field in options.model_fields.items()
        )
        raise ConfigError(
            f"{source}: task {task!r}: {problems}. It takes: {accepted or 'no options'} (see `omg tasks --json`)"
        ) from exc


def _describe_option_error(error: Any, options: type[TaskOptions]) -> str:
    name = ".".join(str(part) for part in error["loc"]) or "(all)"
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(name, list(options.model_fields), n=1)
        return f"unknown option {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    given = f" (got {error['input']!r})" if error["type"] != "missing" else ""
    return f"option {name!r}: {error['msg']}{given}"


class TaskInfo(BaseModel):
    """What a task is: the registry, the CLI (``omg tasks``) and ``omg run``'s input validation read it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=TASK_NAME_PATTERN, description="canonical name, lower-case words joined by '-'")
    aliases: tuple[str, ...] = Field(default=(), description="short names accepted wherever the name is")
    summary: str = Field(min_length=1, description="one line saying what the task produces")
    modality: Modality = Field(description="'image' tasks take one image per sample, 'video' tasks a clip of frames")
    prompt_kinds: tuple[PromptKind, ...] = Field(
        default=(), description="prompt kinds the task requires from the user; empty means learned queries only"
    )
    vocabulary: Vocabulary = Field(
        description="'closed': the dataset's own classes; 'open': any class names the user gives"
    )
    metrics: tuple[str, ...] = Field(min_length=1, description="names of the figures its metric reports, e.g. 'PQ'")
    result_family: str | None = Field(
        default=None,
        description="the family of omg_core.results the decode hook returns ('semantic', 'panoptic', 'instances', "
        "'prompt-masks'); any plugin's writer for that family can write the task's results",
    )
    output_formats: tuple[str, ...] = Field(
        min_length=1, description="the formats the task suggests, the first being the default of `omg run`"
    )
    options: type[TaskOptions] = Field(
        default=TaskOptions,
        description="the pydantic model (a TaskOptions subclass) of the task's options; `omg tasks --json` shows each "
        "option's type, default and description",
    )
    file_evaluator: str | None = Field(
        default=None,
        description="name of the file evaluator that scores the task's result files with `omg eval` (contributed by "
        "any plugin's omg_file_evaluators hook); None: the task's files have no evaluator",
    )
    implemented: bool = Field(
        default=True, description="False while the task's encode/decode hooks are placeholders that refuse to run"
    )

    @field_validator("aliases")
    @classmethod
    def _aliases_are_names(cls, aliases: tuple[str, ...]) -> tuple[str, ...]:
        import re

        for alias in aliases:
            if not re.match(TASK_NAME_PATTERN, alias):
                raise ValueError(f"alias {alias!r} must be lower-case words joined by '-' (like 'vis' or 'ov-vis')")
        if len(set(aliases)) != len(aliases):
            raise ValueError(f"aliases {aliases} repeat a name")
        return aliases

    @field_serializer("options")
    def _options_as_schema(self, options: type[TaskOptions]) -> dict[str, dict[str, Any]]:
        return describe_options(options)

    @property
    def all_names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)
