"""The training config: pydantic models, YAML loading with one-line errors, and the checks that need the datasets.

`load_train_config(path)` reads and validates a YAML (or JSON) file; every mistake becomes ONE line naming the file
and the field path, e.g. ``configs/x.yaml: datasets[1].ratio: must be > 0 (got 0)``. `check_train_config(config)`
then builds the datasets and checks what the schema cannot see (dataset kinds, vocabularies, batch vs dataset size,
model name, a writable output folder), before anything runs. Relative paths in a file are relative to the file's
folder, as for `omg run` configs (omg_core.config).

Defaults follow the official 12-epoch co-training schedule (seg/configs/_base_/schedules/schedule_12e.py): AdamW
lr 1e-4, weight decay 0.05, betas (0.9, 0.999), eps 1e-8; a linear warm-up over 500 iterations from 0.001 x lr;
steps of gamma 0.1 at epochs 8 and 11 of 12 (here at 8/12 and 11/12 of the steps unless milestones are given);
gradient clipping at max norm 0.01.
"""

from __future__ import annotations

import difflib
import json
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from omg_core.config import absolutize_paths
from omg_core.errors import ConfigError, InputError, OMGError
from omg_core.train.datasets import DATASET_BUILDERS, FAMILIES, Family, TrainingDataset

#: Path fields of TrainConfig, as dotted keys (relative values in a file are relative to that file's folder).
TRAIN_PATH_FIELDS: tuple[str, ...] = ("output_dir", "model.init_weights", "model.clip_weights")

# Official epochs 8 and 11 of 12 (schedule_12e.py MultiStepLR), as fractions of the run.
OFFICIAL_MILESTONE_FRACTIONS: tuple[float, ...] = (8 / 12, 11 / 12)


class TrainConfigError(InputError, ConfigError):
    """A training config is invalid; the one-line message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class TrainModelConfig(_Strict):
    """Which network trains."""

    name: str = Field(default="omg-tiny", min_length=1, description="registered model (omg_core.model.list_models)")
    init_weights: Path | None = Field(default=None, description="safetensors file to start from; None: random init")
    clip_weights: Path | None = Field(
        default=None, description="the frozen CLIP's weights (an open_clip safetensors file, e.g. from "
        "omg_core.clip_train); part of the model's config, so a resumed run rebuilds the same backbone")


class DatasetConfig(_Strict):
    """One training dataset."""

    name: str = Field(min_length=1, description="unique name (logs, checkpoints, per-dataset losses)")
    kind: str = Field(min_length=1, description="a key of omg_core.train.datasets.DATASET_BUILDERS")
    ratio: float = Field(gt=0, description="mixing weight; batches pick datasets with probability ratio / sum")
    family: Family = Field(description="what targets it gives: " + ", ".join(FAMILIES))
    vocabulary: Any = Field(
        default=None,
        description="the class texts to classify against: a built-in vocabulary name, a class-list file, inline "
        "classes 'a;b', or a list of class names; None uses the dataset's own categories",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="the builder's options (see its docs)")

    @field_validator("vocabulary")
    @classmethod
    def _vocabulary_spec(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip()):
            return value
        if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
            return value
        raise ValueError("must be a vocabulary name, a file, inline classes, or a non-empty list of class names")


class OptimizerConfig(_Strict):
    """AdamW. The CLIP backbone is frozen (official `fix=True`) and never handed to the optimizer, so its lr
    multiplier (0.1 officially) does not apply; parameters whose name contains one of `no_decay_keys` get no weight
    decay (official paramwise_cfg: query_embed, query_feat, level_embed decay_mult 0, and norm_decay_mult 0)."""

    lr: float = Field(default=1e-4, gt=0)
    weight_decay: float = Field(default=0.05, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(default=1e-8, gt=0)
    no_decay_keys: list[str] = Field(default_factory=lambda: ["query_embed", "query_feat", "level_embed", "norm"])

    @field_validator("betas")
    @classmethod
    def _betas(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in value):
            raise ValueError(f"must be two numbers in [0, 1) (got {list(value)})")
        return value


class ScheduleConfig(_Strict):
    """Learning-rate schedule: linear warm-up, then steps (x gamma at each milestone) or cosine decay to 0."""

    kind: Literal["step", "cosine"] = "step"
    warmup_steps: int = Field(default=500, ge=0)
    warmup_start_factor: float = Field(default=0.001, gt=0, le=1)
    milestones: list[int] | None = Field(default=None, description="step numbers; None: 8/12 and 11/12 of the run")
    gamma: float = Field(default=0.1, gt=0, le=1)

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (any(m < 1 for m in value) or any(b <= a for a, b in zip(value, value[1:]))):
            raise ValueError(f"must be increasing step numbers >= 1 (got {value})")
        return value

    def milestone_steps(self, total_steps: int) -> list[int]:
        """The milestones of a run of `total_steps` (the official fractions when none are given)."""
        if self.milestones is not None:
            return list(self.milestones)
        return [max(1, round(total_steps * fraction)) for fraction in OFFICIAL_MILESTONE_FRACTIONS]


class CheckpointConfig(_Strict):
    every: int = Field(default=1000, ge=1, description="save every this many steps (and at the end)")
    keep_last: int = Field(default=3, ge=1, description="checkpoints kept; older ones are deleted")


class EvalConfig(_Strict):
    every: int = Field(default=1000, ge=0, description="evaluate every this many steps; 0 disables")
    num_samples: int = Field(default=50, ge=1, description="samples per evaluated dataset")


class LogConfig(_Strict):
    every: int = Field(default=20, ge=1, description="log every this many steps")


class LossConfig(_Strict):
    """Loss weights and the points masks are compared at (OMG-Seg's values by default). The official 12,544 points
    suit stride-4 masks of 1024 px inputs (65,536 cells); small inputs can take fewer (the cost of the mask losses
    grows with the points: importance sampling draws oversample_ratio x num_points candidates per mask)."""

    class_weight: float = Field(default=2.0, ge=0)
    mask_weight: float = Field(default=5.0, ge=0)
    dice_weight: float = Field(default=5.0, ge=0)
    objectness_weight: float = Field(default=2.0, ge=0, description="focal loss on the iou (objectness) head")
    no_object_weight: float = Field(default=0.1, ge=0, description="CE weight of the void class")
    num_points: int = Field(default=12544, ge=1)
    oversample_ratio: float = Field(default=3.0, ge=1)
    importance_sample_ratio: float = Field(default=0.75, ge=0, le=1)


class TrainConfig(_Strict):
    """One training run (see the module docstring for the official defaults).

    batch_size is per process: a run on W processes steps on batch_size * W samples, all from one dataset.
    """

    model: TrainModelConfig = Field(default_factory=TrainModelConfig)
    datasets: list[DatasetConfig] = Field(min_length=1)
    batch_size: int = Field(default=2, ge=1)
    steps: int = Field(ge=1)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    grad_clip: float | None = Field(default=0.01, gt=0, description="max gradient L2 norm (official 0.01); null: off")
    grad_accumulation: int = Field(default=1, ge=1)
    amp: Literal["none", "bfloat16"] = "none"
    seed: int = Field(default=0, ge=0)
    # 0 by default: on 2 CPU cores a worker competes with the step's own threads (shapes-tiny: 5.4 steps/s with one
    # worker, 5.8 without); with cores to spare, or a GPU doing the step, workers hide the batch-building time
    data_workers: int = Field(
        default=0, ge=0, description="processes that build batches ahead of the step (0: in the training process); "
        "the batches, and so the run, are the same either way")
    output_dir: Path
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    loss: LossConfig = Field(default_factory=LossConfig)

    _source: str = PrivateAttr(default="train config")

    @model_validator(mode="after")
    def _cross_field(self) -> TrainConfig:
        names = [d.name for d in self.datasets]
        for position, name in enumerate(names):
            if name in names[:position]:
                raise _FieldError(f"datasets[{position}].name", f"dataset name {name!r} is used twice; names must be "
                                  "unique")
        if self.schedule.milestones and self.schedule.milestones[-1] >= self.steps:
            raise _FieldError("schedule.milestones", f"must all be below steps ({self.steps}) (got "
                              f"{self.schedule.milestones})")
        return self

    @property
    def source(self) -> str:
        """The file the config came from (for messages)."""
        return self._source

    def dataset_seed(self, position: int) -> int:
        """The seed a dataset gets unless its options give one: a stable hash of the run seed and its name, so that
        datasets differ from each other and from evaluation worlds seeded with small integers."""
        return zlib.crc32(f"train:{self.seed}:{self.datasets[position].name}".encode())


class _FieldError(ValueError):
    """A cross-field problem raised inside a validator, carrying the field path it belongs to."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# -------------------------------------------------------------------------------------------------- loading


def load_train_config(path: str | Path) -> TrainConfig:
    """Reads and validates a training config file (.yaml, .yml or .json).

    Raises:
      TrainConfigError (an InputError): one line, "<file>: <field path>: <problem> (got <value>)".
    """
    path = Path(path)
    data = _read_mapping(path)
    data = absolutize_paths(data, path.resolve().parent, TRAIN_PATH_FIELDS)
    config = validate_train_config(data, str(path))
    config._source = str(path)
    return config


def validate_train_config(data: dict[str, Any], source: str = "train config") -> TrainConfig:
    """Validates a mapping; errors as for `load_train_config`, naming `source`."""
    try:
        config = TrainConfig.model_validate(data)
    except ValidationError as error:
        raise TrainConfigError(_one_line(error, source)) from None
    config._source = source
    return config


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TrainConfigError(f"{path}: config file not found")
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise TrainConfigError(f"{path}: unknown config format {suffix!r}; use .yaml, .yml or .json")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TrainConfigError(f"{path}: cannot read the file: {error}") from None
    try:
        data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as error:
        raise TrainConfigError(f"{path}: not valid JSON at line {error.lineno}, column {error.colno}: "
                               f"{error.msg}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise TrainConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TrainConfigError(f"{path}: the top level must be a mapping of fields, got {type(data).__name__}")
    return data


def _field_path(location: tuple[Any, ...]) -> str:
    """("datasets", 1, "ratio") -> "datasets[1].ratio"."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _one_line(error: ValidationError, source: str) -> str:
    """The first problem of a ValidationError as one line, "<source>: <field>: <problem> (got <value>)", with a
    count of the others."""
    errors = error.errors()
    first = errors[0]
    context = first.get("ctx") or {}
    kind = first["type"]
    location = tuple(first["loc"])
    given = f" (got {_short(first['input'])})" if "input" in first else ""
    cause = context.get("error")
    if isinstance(cause, _FieldError):
        field, message, given = cause.field, cause.message, ""
    else:
        field = _field_path(location)
        if kind == "missing":
            message, given = "missing; this field is required", ""
        elif kind == "extra_forbidden":
            message, given = _unknown_field_message(location), ""
        elif kind in _BOUNDS:
            bound = next(iter(context.values()))
            if isinstance(bound, float) and bound.is_integer():
                bound = int(bound)  # "> 0", not "> 0.0", for a float field's bound written as 0
            message = f"must be {_BOUNDS[kind]} {bound}"
        else:
            message = first["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{source}: {field}: {message}{given}{more}"


def _unknown_field_message(location: tuple[Any, ...]) -> str:
    """"unknown field; did you mean 'ratio'?" using the model that owns the field."""
    model: Any = TrainConfig
    for part in location[:-1]:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[part].annotation if part in getattr(model, "model_fields", {}) else None
        inner = getattr(annotation, "__args__", None)
        candidate = inner[0] if inner else annotation
        if not (isinstance(candidate, type) and issubclass(candidate, BaseModel)):
            return "unknown field"
        model = candidate
    known = list(model.model_fields)
    close = difflib.get_close_matches(str(location[-1]), known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown field; {hint}known fields: {', '.join(known)}"


# --------------------------------------------------------------------------------------------------- checks


def build_datasets(config: TrainConfig) -> list[TrainingDataset]:
    """Builds the configured datasets in order; errors name the dataset's field (TrainConfigError)."""
    from omg_core.model.vocabulary import parse_vocabulary, vocabulary_from_classes

    datasets = []
    for position, spec in enumerate(config.datasets):
        where = f"{config.source}: datasets[{position}]"
        builder = DATASET_BUILDERS.get(spec.kind)
        if builder is None:
            close = difflib.get_close_matches(spec.kind, list(DATASET_BUILDERS), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise TrainConfigError(f"{where}.kind: unknown dataset kind {spec.kind!r}; {hint}known kinds: "
                                   f"{', '.join(sorted(DATASET_BUILDERS))}")
        vocabulary = None
        if spec.vocabulary is not None:
            option = f"{where}.vocabulary"
            try:
                if isinstance(spec.vocabulary, str):
                    vocabulary = parse_vocabulary(spec.vocabulary, option=option)
                else:
                    vocabulary = vocabulary_from_classes(spec.vocabulary, option=option)
            except OMGError as error:
                raise TrainConfigError(str(error)) from None
        try:
            options = dict(spec.options)
            seed = options.pop("seed", None)  # an explicit seed option wins over the derived one
            dataset = builder(name=spec.name, family=spec.family,
                              seed=seed if seed is not None else config.dataset_seed(position),
                              vocabulary=vocabulary, **options)
        except OMGError as error:
            # builders name their options ("options.image_size: ..."); a vocabulary that misses classes is the
            # vocabulary field's problem
            message = str(error)
            if message.startswith("options."):
                raise TrainConfigError(f"{where}.{message}") from None
            field = ".vocabulary" if "vocabulary" in message else ""
            raise TrainConfigError(f"{where}{field}: {message}") from None
        if dataset.vocabulary is None:
            raise TrainConfigError(f"{where}.vocabulary: dataset {spec.name!r} has no vocabulary of its own; give one "
                                   "(a built-in vocabulary name, a class-list file, or a list of class names)")
        if dataset.family != spec.family:
            raise TrainConfigError(f"{where}.family: the {spec.kind!r} builder made a {dataset.family!r} dataset, "
                                   f"not {spec.family!r}")
        datasets.append(dataset)
    return datasets


def check_train_config(config: TrainConfig, world_size: int = 1) -> list[TrainingDataset]:
    """Everything that can be checked before training starts; returns the built datasets (reuse them).

    Checks: the model is registered and its init weights exist; every dataset kind is known, its options valid
    (interactive boxes only for a model with box-query prompts),
    its vocabulary present and covering its classes, and its first sample loads; the global batch
    (batch_size * world_size) fits in every dataset; the output folder (or, when missing, its nearest existing
    parent) accepts a file.

    Raises:
      TrainConfigError: one line naming the config file and the field.
    """
    from omg_core.model.build import get_model_config, list_models

    source = config.source
    if config.model.name not in list_models():
        close = difflib.get_close_matches(config.model.name, list_models(), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise TrainConfigError(f"{source}: model.name: unknown model {config.model.name!r}; {hint}known models: "
                               f"{', '.join(list_models())}")
    clip = config.model.clip_weights
    if clip is not None and not Path(clip).is_file():
        raise TrainConfigError(f"{source}: model.clip_weights: no such file {str(clip)!r}")
    weights = config.model.init_weights
    if weights is not None and not weights.is_file():
        raise TrainConfigError(f"{source}: model.init_weights: no such file {str(weights)!r}")
    datasets = build_datasets(config)
    prompt_encoding = get_model_config(config.model.name).prompt_encoding
    global_batch = config.batch_size * world_size
    for position, dataset in enumerate(datasets):
        # SAM-style encoding is trained on clicks only (omg_core.train.batch.collate); refuse now, not at the first
        # interactive batch
        if dataset.family == "interactive" and prompt_encoding == "sam" and getattr(dataset, "box_fraction", 0) > 0:
            raise TrainConfigError(f"{source}: datasets[{position}].options.box_fraction: {config.model.name!r} "
                                   "encodes prompts SAM-style and trains on clicks only; set box_fraction: 0")
        if global_batch > len(dataset):
            per_process = f" ({config.batch_size} x {world_size} processes)" if world_size > 1 else ""
            raise TrainConfigError(f"{source}: batch_size: the batch of {global_batch}{per_process} is larger than "
                                   f"dataset {dataset.name!r} (datasets[{position}], {len(dataset)} samples); lower "
                                   "batch_size or enlarge the dataset")
        try:
            dataset.get(0).validate(num_classes=len(dataset.vocabulary or ()))
        except (OMGError, ValueError, OSError) as error:
            raise TrainConfigError(f"{source}: datasets[{position}]: cannot load its first sample: {error}") from None
    _check_writable(config.output_dir, source)
    return datasets


def _check_writable(folder: Path, source: str) -> None:
    """Creates and deletes a probe file in `folder`, or in its nearest existing parent when it does not exist yet
    (so nothing is left behind)."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None:
        raise TrainConfigError(f"{source}: output_dir: {folder} has no existing parent folder")
    if not existing.is_dir():
        what = "is a file" if existing == folder else f"cannot be created: {existing} is a file"
        raise TrainConfigError(f"{source}: output_dir: {folder} {what}; choose a folder path")
    try:
        handle, probe = tempfile.mkstemp(prefix=".omg-write-probe-", dir=existing)
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise TrainConfigError(f"{source}: output_dir: cannot write in {existing} ({reason}); choose a writable "
                               "folder") from None
