"""Kill-and-resume: a run killed with SIGKILL (during a step or during a save) and resumed ends bit-identical to an
uninterrupted run: the same parameters and the same logged losses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from omg_core.cli import main
from omg_core.weights.io import read_state_dict

STEPS = 8


def write_config(folder: Path, output: Path) -> Path:
    config = {
        "model": {"name": "omg-tiny"},
        "datasets": [
            {"name": "pan", "kind": "shapes-world", "family": "panoptic", "ratio": 2,
             "options": {"num_samples": 8, "image_size": [64, 64], "max_objects": 3}},
            {"name": "sam", "kind": "shapes-world", "family": "interactive", "ratio": 1,
             "options": {"num_samples": 8, "image_size": [64, 64], "max_objects": 3}},
            {"name": "vis", "kind": "shapes-world", "family": "video-instance", "ratio": 1,
             "options": {"num_samples": 8, "image_size": [64, 64], "max_objects": 3, "num_frames": 2}},
        ],
        "batch_size": 2, "steps": STEPS, "optimizer": {"lr": 1e-3}, "schedule": {"warmup_steps": 2},
        "output_dir": str(output), "checkpoint": {"every": 2, "keep_last": 2}, "eval": {"every": 0},
        "log": {"every": 1}, "loss": {"num_points": 256}, "seed": 1,
    }
    path = folder / f"{output.name}.json"
    path.write_text(json.dumps(config))
    return path


def train(config: Path, *extra: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = CliRunner().invoke(main, ["train", "--config", str(config), *extra])
    assert result.exit_code == 0, result.output


def losses(output: Path) -> list[tuple[int, dict]]:
    lines = (output / "train_log.jsonl").read_text().splitlines()
    return [(entry["step"], entry["losses"]) for entry in map(json.loads, lines) if entry["kind"] == "train"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("reference")
    output = folder / "run"
    train(write_config(folder, output))
    return output


# The run in a child process: saves slowed down (a sleep between the files of a checkpoint) so that a kill lands
# inside a save about as often as inside a step.
_CHILD = textwrap.dedent("""
    import sys, time, warnings
    warnings.simplefilter("ignore")
    import omg_core.train.checkpoint as checkpoint
    fsync = checkpoint._fsync_file
    def slow_fsync(path):
        time.sleep(float(sys.argv[2]))
        fsync(path)
    checkpoint._fsync_file = slow_fsync
    from click.testing import CliRunner
    from omg_core.cli import main
    args = ["train", "--config", sys.argv[1]] + sys.argv[3:]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    sys.exit(result.exit_code)
""")


def run_and_kill(config: Path, output: Path, slow_save: float, resume: bool, in_save: bool) -> bool:
    """Start a (resumed) run and SIGKILL it once it has a new checkpoint: right away inside the next save (a folder
    being written, `in_save`) or a moment into the next step. True when it was killed before finishing."""
    args = [sys.executable, "-c", _CHILD, str(config), str(slow_save)] + (["--resume"] if resume else [])
    checkpoints = output / "checkpoints"
    before = set(checkpoints.glob("step_*")) if checkpoints.is_dir() else set()
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while child.poll() is None and time.monotonic() < deadline:
            complete = set(checkpoints.glob("step_*")) - before if checkpoints.is_dir() else set()
            partial = list(checkpoints.glob(".step_*.partial-*")) if checkpoints.is_dir() else []
            if in_save and complete and partial:
                break  # a later checkpoint is being written now
            if not in_save and complete:
                time.sleep(0.3)  # into the next step
                break
            time.sleep(0.01)
        if child.poll() is not None:
            return False
        os.kill(child.pid, signal.SIGKILL)
        return True
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()


@pytest.mark.parametrize("in_save", [False, True], ids=["killed-in-a-step", "killed-in-a-save"])
def test_killed_and_resumed_equals_uninterrupted(in_save: bool, uninterrupted: Path, tmp_path: Path) -> None:
    output = tmp_path / "run"
    config = write_config(tmp_path, output)
    killed = 0
    for _ in range(2):
        resume = (output / "checkpoints").is_dir() and any((output / "checkpoints").glob("step_*"))
        killed += run_and_kill(config, output, 0.3 if in_save else 0.0, resume, in_save)
    assert killed >= 1, "no kill landed"
    train(config, "--resume")
    ours = read_state_dict(output / "model.safetensors")
    reference = read_state_dict(uninterrupted / "model.safetensors")
    assert ours.keys() == reference.keys()
    for name in reference:
        assert torch.equal(ours[name], reference[name]), name
    assert losses(output) == losses(uninterrupted)
    assert [step for step, _ in losses(output)] == list(range(1, STEPS + 1))


def test_resume_refuses_without_checkpoints_and_fresh_runs_refuse_old_ones(uninterrupted: Path,
                                                                           tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path / "empty")
    result = CliRunner().invoke(main, ["train", "--config", str(config), "--resume"])
    assert result.exit_code == 2 and "no complete checkpoint" in result.output
    again = write_config(tmp_path, uninterrupted)
    result = CliRunner().invoke(main, ["train", "--config", str(again)])
    assert result.exit_code == 2 and "--resume" in result.output


@pytest.mark.parametrize("data_workers", [1, 2])
def test_batches_built_ahead_by_workers_train_the_same_run(data_workers: int, uninterrupted: Path,
                                                          tmp_path: Path) -> None:
    """The reference run builds its batches in the training process (the default); one or two workers give the same
    weights, losses and checkpointed sampler positions, although they draw the sampler ahead of the consumed
    batches."""
    output = tmp_path / "run"
    config = write_config(tmp_path, output)
    settings = json.loads(config.read_text())
    config.write_text(json.dumps({**settings, "data_workers": data_workers}))
    train(config)
    ours, reference = read_state_dict(output / "model.safetensors"), read_state_dict(uninterrupted / "model.safetensors")
    assert all(torch.equal(ours[name], reference[name]) for name in reference) and ours.keys() == reference.keys()
    assert losses(output) == losses(uninterrupted)
    for checkpoint in sorted((uninterrupted / "checkpoints").glob("step_*")):
        mine = json.loads((output / "checkpoints" / checkpoint.name / "state.json").read_text())["sampler_state"]
        theirs = json.loads((checkpoint / "state.json").read_text())["sampler_state"]
        assert mine == theirs and mine["step"] == int(checkpoint.name.split("_")[1])
