"""The `omg` command line: version, task listing, run argument validation, and contributed subcommands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from plugin_factory import working_plugin_source, write_distribution

from omg_core import __version__
from omg_core.cli import EXIT_NOT_IMPLEMENTED, EXIT_USER_ERROR, main


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_version() -> None:
    code, output = invoke("--version")
    assert code == 0 and output.strip() == f"omg, version {__version__}"


def test_tasks_table_lists_the_ten_tasks_with_their_columns() -> None:
    code, output = invoke("tasks")
    assert code == 0
    for name in ("semantic", "instance", "panoptic", "interactive", "video-semantic", "video-instance",
                 "video-panoptic", "ov-seg", "ov-interactive", "ov-vis"):
        assert name in output
    assert "OMG tasks (10)" in output and "omg-seg 0.1.0" in output and "not implemented" in output


def test_tasks_json_is_machine_readable() -> None:
    code, output = invoke("tasks", "--json")
    assert code == 0
    payload = json.loads(output)
    by_name = {task["name"]: task for task in payload["tasks"]}
    assert len(by_name) == 10 and payload["problems"] == []
    assert by_name["ov-vis"]["modality"] == "video" and by_name["ov-vis"]["vocabulary"] == "open"
    assert by_name["interactive"]["prompt_kinds"] == ["points", "boxes"]
    assert by_name["semantic"]["distribution"] == "omg-seg" and by_name["semantic"]["version"] == __version__


def test_console_script_lists_a_throwaway_plugin_distribution_installed_beside_it(tmp_path: Path) -> None:
    """The real path a third party takes: a distribution with an entry point, found by a fresh `omg` process."""
    write_distribution(tmp_path, "omg-bright", "omg_bright", working_plugin_source("bright", ("br",)), {"bright": "omg_bright"})
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    completed = subprocess.run(
        [sys.executable, "-m", "omg_core.cli", "tasks", "--json"], env=env, capture_output=True, text=True, check=True
    )
    tasks = {task["name"]: task for task in json.loads(completed.stdout)["tasks"]}
    assert tasks["bright"]["distribution"] == "omg-bright" and tasks["bright"]["aliases"] == ["br"]
    assert len(tasks) == 11


def test_run_of_an_unimplemented_task_says_so_and_writes_nothing(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    code, output = invoke("run", "--task", "ss", "--input", str(image), "--output", str(tmp_path / "out"))
    assert code == EXIT_NOT_IMPLEMENTED
    assert "'semantic' is registered but not implemented yet" in output
    assert not (tmp_path / "out").exists()


def test_run_requires_task_input_and_output() -> None:
    code, output = invoke("run", "--task", "ss")
    assert code == 2 and "missing --input, --output" in output


def test_run_with_unknown_task_suggests(tmp_path: Path) -> None:
    code, output = invoke("run", "--task", "panoptc", "--input", str(tmp_path), "--output", str(tmp_path / "o"))
    assert code == EXIT_USER_ERROR and "Did you mean: panoptic" in output


@pytest.fixture
def bright_plugin(plugin_site: Path) -> str:
    write_distribution(plugin_site, "omg-bright", "omg_bright", working_plugin_source("bright"), {"bright": "omg_bright"})
    return "bright"


def test_run_validates_the_input_against_the_task_modality(tmp_path: Path, bright_plugin: str) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    code, output = invoke("run", "--task", bright_plugin, "--input", str(video), "--output", str(tmp_path / "o"))
    assert code == EXIT_USER_ERROR and "is a video, but this is an image task" in output
    code, output = invoke("run", "--task", bright_plugin, "--input", str(tmp_path / "nope.png"), "--output", "o")
    assert code == EXIT_USER_ERROR and "no such file or folder" in output


def test_run_refuses_a_closed_vocabulary_override(tmp_path: Path, bright_plugin: str) -> None:
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    code, output = invoke("run", "--task", bright_plugin, "--input", str(image), "--output", str(tmp_path / "o"),
                          "--vocabulary", "cat,dog")
    assert code == EXIT_USER_ERROR and "closed vocabulary" in output
    assert not (tmp_path / "o").exists()


def test_run_config_errors_name_the_file_and_field(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("task: {name: ss}\ninput: a.png\noutput: out\nmodel: {dtype: fp16}\n")
    code, output = invoke("run", "--config", str(config))
    assert code == EXIT_USER_ERROR
    assert str(config) in output and "field 'model.dtype'" in output and "'fp16'" in output


def test_eval_says_plainly_when_not_available(monkeypatch: pytest.MonkeyPatch) -> None:
    from omg_core import cli

    monkeypatch.setitem(cli.LAZY_COMMANDS, "eval", ("omg_eval.no_such_module", "eval_command", "evaluate"))
    code, output = invoke("eval", "--task", "panoptic")
    assert code == EXIT_NOT_IMPLEMENTED and "`omg eval` is not implemented yet" in output


def test_plugin_option_loads_explicitly_with_autoload_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMG_DISABLE_PLUGIN_AUTOLOAD", "1")
    code, output = invoke("-p", "ov-vis", "tasks", "--json")
    assert code == 0 and [t["name"] for t in json.loads(output)["tasks"]] == ["ov-vis"]


# Every command's help and `omg tasks` must start at once: none of them may import torch (or torchvision, numpy).
STARTUP_COMMANDS = [
    ["--help"],
    ["tasks"],
    ["tasks", "--json"],
    ["eval", "--help"],
    ["run", "--help"],
    ["data", "--help"],
    ["data", "synth", "--help"],
    ["convert", "--help"],
]


@pytest.mark.parametrize("argv", STARTUP_COMMANDS, ids=" ".join)
def test_help_and_tasks_import_no_torch(argv: list[str]) -> None:
    probe = (
        "import sys\n"
        "from omg_core.cli import main\n"
        f"try:\n    main({argv!r}, prog_name='omg')\n"
        "except SystemExit as exit:\n    assert exit.code in (0, None), exit.code\n"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'numpy', 'scipy') if m in sys.modules)\n"
        "sys.stderr.write('HEAVY=' + ','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.rstrip().endswith("HEAVY="), f"omg {' '.join(argv)} imported {result.stderr}"
