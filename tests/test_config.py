"""Config files: YAML and JSON, validation errors that name the file and the field, relative paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omg_core.config import RunConfig, RunModelConfig, TaskConfig, load_config, merge_overrides
from omg_core.errors import ConfigError


def test_yaml_and_json_load_to_the_same_config(tmp_path: Path) -> None:
    data = {"task": {"name": "ov-vis", "vocabulary": ["red star", "blue circle"]}, "input": "clip", "output": "out"}
    (tmp_path / "run.json").write_text(json.dumps(data))
    (tmp_path / "run.yaml").write_text("task:\n  name: ov-vis\n  vocabulary: [red star, blue circle]\ninput: clip\noutput: out\n")
    from_json = load_config(tmp_path / "run.json", RunConfig)
    assert from_json == load_config(tmp_path / "run.yaml", RunConfig)
    assert from_json.input == tmp_path / "clip"  # relative to the config file, not the cwd
    assert from_json.model == RunModelConfig()


def test_every_bad_field_is_named_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("task: {name: ss, vocabulary: [cat, cat]}\ninput: x\nmodel: {dtype: fp16, layers: 3}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path, RunConfig)
    message = str(raised.value)
    # (the repeated vocabulary class is checked where the vocabulary is parsed, with every other vocabulary rule:
    # see tests/test_run_tasks_end_to_end.py and tests/test_vocabularies.py)
    assert message.startswith(f"{path}: invalid configuration (3 problem(s))")
    assert "field 'model.dtype'" in message and "field 'model.layers': Extra inputs are not permitted" in message
    assert "field 'output': Field required" in message


def test_unreadable_configs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml", RunConfig)
    (tmp_path / "x.toml").write_text("a = 1")
    with pytest.raises(ConfigError, match="unknown config format '.toml'"):
        load_config(tmp_path / "x.toml", RunConfig)
    (tmp_path / "broken.yaml").write_text("task: [unclosed")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_config(tmp_path / "broken.yaml", RunConfig)
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(tmp_path / "list.json", TaskConfig)


def test_overrides_merge_into_nested_fields() -> None:
    merged = merge_overrides({"task": {"name": "ss"}, "model": {"name": "a"}}, {"model.name": "b", "task.prompts": None})
    assert merged == {"task": {"name": "ss"}, "model": {"name": "b"}}
    with pytest.raises(ConfigError, match="task is not a mapping"):
        merge_overrides({"task": "ss"}, {"task.name": "x"})
