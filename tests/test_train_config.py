"""The training config: loading, one-line errors naming the file and the field, and the dataset-level checks."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from omg_core.errors import InputError
from omg_core.train import datasets as train_datasets
from omg_core.train.config import (
    TrainConfigError,
    check_train_config,
    load_train_config,
    validate_train_config,
)
from omg_core.train.datasets import FAMILIES, SampleListDataset
from omg_data.sample import CategoryList, Sample, empty_segments

ROOT = Path(__file__).resolve().parents[1]
SHAPES_TINY = ROOT / "configs" / "train" / "shapes-tiny.yaml"

BASE: dict[str, Any] = {
    "model": {"name": "omg-tiny"},
    "datasets": [
        {"name": "pan", "kind": "shapes-world", "family": "panoptic", "ratio": 2,
         "options": {"num_samples": 8, "image_size": [48, 48]}},
        {"name": "vis", "kind": "shapes-world", "family": "video-instance", "ratio": 1,
         "options": {"num_samples": 8, "image_size": [48, 48]}},
    ],
    "batch_size": 2,
    "steps": 10,
    "output_dir": "out",
}


def write(tmp_path: Path, data: dict[str, Any] | str, name: str = "x.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def changed(**edits: Any) -> dict[str, Any]:
    """BASE with dotted-path edits ("datasets.1.ratio": 0); a value of ... deletes the key."""
    data = copy.deepcopy(BASE)
    for dotted, value in edits.items():
        *parents, leaf = dotted.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        key: Any = int(leaf) if leaf.isdigit() else leaf
        if value is ...:
            del node[key]
        else:
            node[key] = value
    return data


def load_error(tmp_path: Path, data: dict[str, Any] | str) -> str:
    path = write(tmp_path, data)
    with pytest.raises(InputError) as caught:
        load_train_config(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: "), message
    return message.removeprefix(f"{path}: ")


def check_error(tmp_path: Path, data: dict[str, Any], world_size: int = 1) -> str:
    path = write(tmp_path, data)
    config = load_train_config(path)
    with pytest.raises(TrainConfigError) as caught:
        check_train_config(config, world_size=world_size)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: "), message
    return message.removeprefix(f"{path}: ")


def test_shapes_tiny_loads_and_passes_the_checks() -> None:
    config = load_train_config(SHAPES_TINY)
    datasets = check_train_config(config)
    assert sorted(d.family for d in datasets) == sorted(FAMILIES)  # every family the shapes world gives
    assert [d.name for d in datasets] == [d.name for d in config.datasets]
    assert config.model.name == "omg-tiny" and config.grad_clip == 0.01 and config.optimizer.lr == 2e-4
    assert config.model.clip_weights is not None and config.model.clip_weights.name == "omg-tiny.safetensors"
    for dataset in datasets:
        sample = dataset.get(1)
        assert sample.frames.shape[-2:] == (128, 128)
        assert sample.num_frames == (2 if dataset.is_video else 1)  # official 2-frame clips
    assert config.output_dir == (ROOT / "runs" / "shapes-tiny").resolve()  # relative to the file
    assert len({config.dataset_seed(i) for i in range(len(datasets))}) == len(datasets)


def test_defaults_are_the_official_schedule() -> None:
    config = validate_train_config(changed(steps=1200))
    assert (config.optimizer.lr, config.optimizer.weight_decay, config.grad_clip) == (1e-4, 0.05, 0.01)
    assert (config.schedule.kind, config.schedule.warmup_steps, config.schedule.gamma) == ("step", 500, 0.1)
    assert config.schedule.milestone_steps(1200) == [800, 1100]  # epochs 8 and 11 of 12
    assert validate_train_config(changed(grad_clip=None)).grad_clip is None  # null disables clipping


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        ({"datasets.1.ratio": 0}, "datasets[1].ratio: must be > 0 (got 0)"),
        ({"datasets.0.ratoi": 1}, "datasets[0].ratoi: unknown field; did you mean 'ratio'? known fields: name, kind,"),
        ({"steps": ...}, "steps: missing; this field is required"),
        ({"datasets.0.family": "pano"}, "datasets[0].family: must be 'panoptic', 'instance',"),
        ({"amp": "fp16"}, "amp: must be 'none' or 'bfloat16' (got 'fp16')"),
        ({"grad_accumulation": 0}, "grad_accumulation: must be >= 1 (got 0)"),
        ({"grad_clip": -1}, "grad_clip: must be > 0 (got -1)"),
        ({"optimizer.lr": 0}, "optimizer.lr: must be > 0 (got 0)"),
        ({"schedule.kind": "poly"}, "schedule.kind: must be 'step' or 'cosine' (got 'poly')"),
        ({"schedule.milestones": [8, 4]}, "schedule.milestones: must be increasing step numbers >= 1 (got [8, 4])"),
        ({"schedule.milestones": [5, 10]}, "schedule.milestones: must all be below steps (10) (got [5, 10])"),
        ({"datasets.1.name": "pan"}, "datasets[1].name: dataset name 'pan' is used twice; names must be unique"),
        ({"datasets": []}, "datasets: List should have at least 1 item after validation, not 0"),
        ({"datasets.0.vocabulary": []}, "datasets[0].vocabulary: must be a vocabulary name, a file, inline classes"),
        ({"checkpoint.every": 0}, "checkpoint.every: must be >= 1 (got 0)"),
        ({"seed": -1}, "seed: must be >= 0 (got -1)"),
    ],
)
def test_schema_errors_are_one_line_naming_file_and_field(tmp_path: Path, edits: dict[str, Any], expected: str) -> None:
    assert load_error(tmp_path, changed(**edits)).startswith(expected)


def test_file_level_errors(tmp_path: Path) -> None:
    assert load_error(tmp_path, "datasets: [\n  {name: a\nsteps: 3\n").startswith("not valid YAML at line 3")
    assert load_error(tmp_path, "- a\n- b\n") == "the top level must be a mapping of fields, got list"
    two = changed(steps=0, batch_size=0)
    assert load_error(tmp_path, two).endswith("(and 1 more problem(s))")
    with pytest.raises(TrainConfigError, match="config file not found"):
        load_train_config(tmp_path / "missing.yaml")
    json_file = tmp_path / "x.json"
    json_file.write_text('{"steps": 1,', encoding="utf-8")
    with pytest.raises(TrainConfigError, match=r"x\.json: not valid JSON at line 1"):
        load_train_config(json_file)


def test_check_unknown_kind_lists_the_known_ones(tmp_path: Path) -> None:
    message = check_error(tmp_path, changed(**{"datasets.1.kind": "shapes-wrld"}))
    assert message == ("datasets[1].kind: unknown dataset kind 'shapes-wrld'; did you mean 'shapes-world'? "
                       "known kinds: shapes-world")


def test_check_bad_options_and_vocabularies(tmp_path: Path) -> None:
    assert check_error(tmp_path, changed(**{"datasets.0.options.image_sz": 3})).startswith(
        "datasets[0].options.image_sz: unknown option")
    assert check_error(tmp_path, changed(**{"datasets.0.vocabulary": ["red circle", "sky:stuff"]})).startswith(
        "datasets[0].vocabulary: dataset 'pan': the vocabulary lacks")
    assert check_error(tmp_path, changed(**{"datasets.0.vocabulary": "cocoo"})).startswith(
        "datasets[0].vocabulary: 'cocoo' is neither a built-in vocabulary (did you mean 'coco'?)")


def _unlabelled_builder(name: str, family: str, seed: int, vocabulary: Any = None, **options: Any) -> SampleListDataset:
    """A file-like dataset whose files carry no category list (so no vocabulary of its own)."""
    sample = Sample(frames=torch.zeros(1, 3, 32, 32, dtype=torch.uint8), **empty_segments(1, 32, 32),
                    ignore=torch.zeros(1, 32, 32, dtype=torch.bool), categories=CategoryList([]))
    return SampleListDataset([sample] * 4, family, name=name, vocabulary=vocabulary)


def test_check_missing_vocabulary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(train_datasets.DATASET_BUILDERS, "unlabelled", _unlabelled_builder)
    message = check_error(tmp_path, changed(**{"datasets.1.kind": "unlabelled"}))
    assert message.startswith("datasets[1].vocabulary: dataset 'vis' has no vocabulary of its own; give one")
    path = write(tmp_path, changed(**{"datasets.1.kind": "unlabelled", "datasets.1.vocabulary": "cat;dog"}))
    datasets = check_train_config(load_train_config(path))
    assert datasets[1].vocabulary.texts == ("cat", "dog")


def test_check_batch_larger_than_a_dataset(tmp_path: Path) -> None:
    message = check_error(tmp_path, changed(**{"datasets.1.options.num_samples": 3, "batch_size": 4}))
    assert message.startswith("batch_size: the batch of 4 is larger than dataset 'vis' (datasets[1], 3 samples)")
    # per process: 2 ranks of batch 2 need 4 samples
    message = check_error(tmp_path, changed(**{"datasets.1.options.num_samples": 3}), world_size=2)
    assert message.startswith("batch_size: the batch of 4 (2 x 2 processes) is larger than dataset 'vis'")


def test_check_output_folder_must_be_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    message = check_error(tmp_path, changed(output_dir=str(blocker / "run")))
    assert message == f"output_dir: {blocker / 'run'} cannot be created: {blocker} is a file; choose a folder path"
    assert check_error(tmp_path, changed(output_dir=str(blocker))).startswith(f"output_dir: {blocker} is a file")
    # /proc takes no new files, even for root
    message = check_error(tmp_path, changed(output_dir="/proc/omg-train-check/run"))
    assert message.startswith("output_dir: cannot write in /proc (")
    # a writable missing folder passes and nothing is left behind
    path = write(tmp_path, changed(output_dir="new/run"))
    check_train_config(load_train_config(path))
    assert not (tmp_path / "new").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "x.yaml"]


def test_check_model_name_and_init_weights(tmp_path: Path) -> None:
    assert check_error(tmp_path, changed(**{"model.name": "omg-tinny"})).startswith(
        "model.name: unknown model 'omg-tinny'; did you mean 'omg-tiny'? known models:")
    assert check_error(tmp_path, changed(**{"model.init_weights": "w.safetensors"})) == (
        f"model.init_weights: no such file '{tmp_path / 'w.safetensors'}'")


def test_an_explicit_dataset_seed_option_is_used(tmp_path) -> None:
    from omg_core.train.config import build_datasets, validate_train_config

    def config(seed_options: dict) -> object:
        return validate_train_config({
            "datasets": [{"name": "a", "kind": "shapes-world", "family": "panoptic", "ratio": 1,
                          "options": {"num_samples": 4, "image_size": [64, 64], **seed_options}}],
            "steps": 2, "output_dir": str(tmp_path)})

    first = build_datasets(config({"seed": 5}))[0].get(0)
    again = build_datasets(config({"seed": 5}))[0].get(0)
    other = build_datasets(config({"seed": 6}))[0].get(0)
    assert torch.equal(first.frames, again.frames) and not torch.equal(first.frames, other.frames)
