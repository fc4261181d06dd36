"""The pydantic model a task plugin returns from ``omg_task_info`` to describe itself."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

TASK_NAME_PATTERN = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"

Modality = Literal["image", "video"]
PromptKind = Literal["points", "boxes", "masks"]
Vocabulary = Literal["closed", "open"]


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
    output_formats: tuple[str, ...] = Field(min_length=1, description="result file formats; the first is the default")
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

    @property
    def all_names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)
