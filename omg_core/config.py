"""Configuration as pydantic models, loaded from YAML or JSON with errors that name the file and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from omg_core.errors import ConfigError

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class RunModelConfig(BaseModel):
    """Which network runs and how."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str = Field(default="omg-tiny", min_length=1, description="registered model config (see omg_core.model)")
    weights: Path | None = Field(default=None, description="safetensors file; None uses the bundled default weights")
    device: str = Field(default="cpu", description="torch device string, e.g. 'cpu' or 'cuda:0'")
    dtype: Literal["float32", "bfloat16"] = "float32"
    size: str | None = Field(
        default=None,
        description="test-time resize: 'LONGxSHORT' (e.g. 1333x800), 'native', or None for the model's setting",
    )


class TaskConfig(BaseModel):
    """Which task runs, with its task-specific inputs."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="task name or alias (see `omg tasks`)")
    vocabulary: str | list[str] | None = Field(
        default=None,
        description="open-vocabulary tasks only: a built-in vocabulary (coco, ade20k, ...), a text file (one class per "
        "line, synonyms separated by ','), an inline 'cat,kitty;dog', or a list of class names",
    )
    seen: str | list[str] | None = Field(
        default=None, description="open vocabulary: classes to treat as seen in training ('cat;dog'); the others unseen"
    )
    unseen: str | list[str] | None = Field(
        default=None, description="open vocabulary: classes to treat as unseen in training; the others seen"
    )
    prompts: Path | None = Field(default=None, description="JSON file of point/box prompts (interactive tasks)")
    output_format: str | None = Field(default=None, description="one of the task's output formats; default: first")
    options: dict[str, Any] = Field(default_factory=dict, description="task-specific options (thresholds, top-k)")


class RunConfig(BaseModel):
    """One ``omg run``: model, task, where the inputs are and where results go."""

    model_config = ConfigDict(extra="forbid")

    model: RunModelConfig = Field(default_factory=RunModelConfig)
    task: TaskConfig
    input: Path = Field(description="an image, a folder of images, a folder of frames, or a video file")
    output: Path = Field(description="directory for result files (created if missing)")
    overwrite: bool = Field(default=False, description="allow writing into a non-empty output directory")
    overlays: bool = Field(default=False, description="also draw each result over its input in <output>/overlays")
    video_mode: Literal["auto", "offline", "stream"] = Field(
        default="auto",
        description="offline: decode a video whole (the official results); stream: tube by tube as frames are read, "
        "with flat memory; auto: stream videos longer than stream_min_frames",
    )
    stream_min_frames: int = Field(default=100, ge=1, description="auto video mode: stream videos of more frames")


#: Path fields of RunConfig, as dotted keys; relative values in a file are relative to that file's folder.
RUN_PATH_FIELDS: tuple[str, ...] = ("input", "output", "model.weights", "task.prompts")


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a YAML (``.yaml``/``.yml``) or JSON (``.json``) file into a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    try:
        if suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"{path}: unknown config format {suffix!r}; use .yaml, .yml or .json")
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {suffix[1:].upper()}: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of fields, got {type(data).__name__}")
    return data


def validate_config(data: dict[str, Any], schema: type[ConfigT], source: str) -> ConfigT:
    """Validate ``data`` against ``schema``; errors name ``source`` and each bad field by its dotted path."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from exc


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration ({exc.error_count()} problem(s))"]
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "(top level)"
        given = f" (got {error['input']!r})" if error["type"] != "missing" and "input" in error else ""
        lines.append(f"  field '{field}': {error['msg']}{given}")
    return "\n".join(lines)


def absolutize_paths(data: dict[str, Any], base: Path, dotted_fields: tuple[str, ...]) -> dict[str, Any]:
    """Make the relative path values at ``dotted_fields`` absolute against ``base`` (missing fields are left out)."""
    result = json.loads(json.dumps(data, default=str))
    for dotted in dotted_fields:
        node: Any = result
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(leaf), str) and not Path(node[leaf]).is_absolute():
            node[leaf] = str((base / node[leaf]).resolve())
    return result


def read_run_config_data(path: Path | str) -> dict[str, Any]:
    """Read a run config file, with its relative paths made relative to the file's folder (not the cwd)."""
    path = Path(path)
    return absolutize_paths(read_config_file(path), path.resolve().parent, RUN_PATH_FIELDS)


def load_config(path: Path | str, schema: type[ConfigT]) -> ConfigT:
    """Load and validate a config file (YAML or JSON) against ``schema``."""
    path = Path(path)
    data = read_run_config_data(path) if schema is RunConfig else read_config_file(path)
    return validate_config(data, schema, str(path))


def merge_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge dotted-key overrides (``{"task.name": "ss"}``) into a config mapping; None values are skipped."""
    merged = json.loads(json.dumps(data, default=str))
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = merged
        *parents, leaf = dotted.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"cannot set {dotted}: {part} is not a mapping")
            node = child
        node[leaf] = value
    return merged
