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
from plugin_factory import line_of, raising_plugin_source, working_plugin_source, write_distribution

from omg_core import __version__
from omg_core.cli import EXIT_NOT_IMPLEMENTED, EXIT_USER_ERROR, main
from omg_core.registry import discover_tasks

# Every task installed here: the ten built-ins and the plugins/ distributions (omg-salient) when installed.
INSTALLED = len(discover_tasks())


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
    assert f"OMG tasks ({INSTALLED})" in output and "omg-seg 0.1.0" in output and "not implemented" not in output


def test_tasks_json_is_machine_readable() -> None:
    code, output = invoke("tasks", "--json")
    assert code == 0
    payload = json.loads(output)
    by_name = {task["name"]: task for task in payload["tasks"]}
    assert len(by_name) == INSTALLED and payload["problems"] == []
    assert sum(task["distribution"] == "omg-seg" for task in payload["tasks"]) == 10
    assert by_name["ov-vis"]["modality"] == "video" and by_name["ov-vis"]["vocabulary"] == "open"
    assert by_name["interactive"]["prompt_kinds"] == ["points", "boxes"]
    assert by_name["semantic"]["distribution"] == "omg-seg" and by_name["semantic"]["version"] == __version__
    assert by_name["video-instance"]["streams"] and not by_name["semantic"]["streams"]


def test_console_script_lists_a_throwaway_plugin_distribution_installed_beside_it(tmp_path: Path) -> None:
    """The real path a third party takes: a distribution with an entry point, found by a fresh `omg` process."""
    write_distribution(tmp_path, "omg-bright", "omg_bright", working_plugin_source("bright", ("br",)), {"bright": "omg_bright"})
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    completed = subprocess.run(
        [sys.executable, "-m", "omg_core.cli", "tasks", "--json"], env=env, capture_output=True, text=True, check=True
    )
    tasks = {task["name"]: task for task in json.loads(completed.stdout)["tasks"]}
    assert tasks["bright"]["distribution"] == "omg-bright" and tasks["bright"]["aliases"] == ["br"]
    assert len(tasks) == INSTALLED + 1
    threshold = tasks["bright"]["options"]["threshold"]
    assert threshold["default"] == 0.0 and threshold["type"] == "number" and "bright" in threshold["description"]


def test_run_option_flags_are_validated_against_the_task_options_before_the_model(tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_distribution(site, "omg-bright", "omg_bright", working_plugin_source("bright"), {"bright": "omg_bright"})
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    env = {**os.environ, "PYTHONPATH": str(site)}
    base = [sys.executable, "-m", "omg_core.cli", "run", "--task", "bright", "--input", str(tmp_path / "a.png"),
            "--output", str(tmp_path / "out")]
    completed = subprocess.run([*base, "--option", "threshhold=0.5"], env=env, capture_output=True, text=True)
    assert completed.returncode == EXIT_USER_ERROR
    assert "--option: task 'bright': unknown option 'threshhold' (did you mean 'threshold'?)" in completed.stderr
    assert "Traceback" not in completed.stderr and not (tmp_path / "out").exists()
    completed = subprocess.run([*base, "--option", "threshold"], env=env, capture_output=True, text=True)
    assert completed.returncode == 2 and "write KEY=VALUE" in completed.stderr


def test_omg_eval_scores_a_plugin_task_with_the_evaluator_its_distribution_contributes(tmp_path: Path) -> None:
    """A third-party task is scored by `omg eval` exactly like a built-in: through its omg_file_evaluators hook."""
    site = tmp_path / "site"
    write_distribution(site, "omg-bright", "omg_bright", working_plugin_source("bright", ("br",)), {"bright": "omg_bright"})
    truth, pred = np.zeros((4, 6), np.uint8), np.zeros((4, 6), np.uint8)
    truth[:2] = 255  # 12 foreground pixels
    pred[:3] = 255  # 18, of which 12 are right: IoU 12 / 18
    for folder, mask in (("gt", truth), ("pred", pred)):
        (tmp_path / folder).mkdir()
        Image.fromarray(mask).save(tmp_path / folder / "a.png")
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = tmp_path / "figures.json"
    completed = subprocess.run(
        [sys.executable, "-m", "omg_core.cli", "eval", "--task", "br", "--predictions", str(tmp_path / "pred"),
         "--ground-truth", str(tmp_path / "gt"), "--output", str(out)],
        env=env, capture_output=True, text=True,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(out.read_text()) == {"IoU": 12 / 18}
    assert "bright evaluation" in completed.stdout


def test_run_of_an_unimplemented_task_says_so_and_writes_nothing(tmp_path: Path, plugin_site: Path) -> None:
    draft = working_plugin_source("draft").replace("options=BrightOptions)", "options=BrightOptions, implemented=False)")
    write_distribution(plugin_site, "omg-draft", "omg_draft", draft, {"draft": "omg_draft"})
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    code, output = invoke("run", "--task", "draft", "--input", str(image), "--output", str(tmp_path / "out"))
    assert code == EXIT_NOT_IMPLEMENTED
    assert "'draft' is registered but not implemented yet" in output
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


# -- a plugin author's view of the registry: collisions, import failures and hook errors -------------------------


@pytest.fixture
def colliding_plugins(plugin_site: Path) -> Path:
    """'first' and 'second' both claim the alias 'dup'; 'bright' is unrelated and works."""
    write_distribution(plugin_site, "omg-first", "omg_first", working_plugin_source("first", ("dup",)), {"first": "omg_first"})
    write_distribution(plugin_site, "omg-second", "omg_second", working_plugin_source("second", ("dup",)), {"second": "omg_second"})
    write_distribution(plugin_site, "omg-bright", "omg_bright", working_plugin_source("bright"), {"bright": "omg_bright"})
    return plugin_site


def test_tasks_lists_everything_else_when_two_plugins_claim_one_alias(colliding_plugins: Path) -> None:
    code, output = invoke("tasks")
    assert code == 0
    assert f"OMG tasks ({INSTALLED + 1})" in output and "bright" in output and "semantic" in output
    assert output.count("'dup' is claimed twice") == 1
    assert "plugin conflict: task name 'dup' is claimed twice" in output
    assert "omg-first 0.1.0" in output and "omg-second 0.1.0" in output
    assert "block it with -p no:first or -p no:second" in output
    code, output = invoke("tasks", "--json")
    (problem,) = json.loads(output)["problems"]
    assert problem["kind"] == "collision" and problem["fixes"] == ["-p no:first", "-p no:second"]
    assert [p["distribution"] for p in problem["plugins"]] == ["omg-first", "omg-second"]
    assert {"dup", "first", "second"} <= set(problem["names"])


def test_run_of_an_unrelated_task_works_as_before_beside_a_collision(tmp_path: Path, colliding_plugins: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    code, output = invoke("run", "--task", "bright", "--input", str(video), "--output", str(tmp_path / "o"))
    assert code == EXIT_USER_ERROR and "is a video, but this is an image task" in output
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    code, output = invoke("run", "--task", "ss", "--input", str(image), "--output", str(tmp_path / "out"))
    assert code == 0 and (tmp_path / "out" / "a.png").exists(), output
    assert "claimed twice" not in output


def test_run_of_a_colliding_name_says_why_it_is_unavailable(tmp_path: Path, colliding_plugins: Path) -> None:
    for name in ("dup", "second"):
        code, output = invoke("run", "--task", name, "--input", str(tmp_path), "--output", str(tmp_path / "o"))
        assert code == EXIT_USER_ERROR
        assert f"error: task '{name}' is unavailable: a name collision left it out" in output
        assert "'dup' is claimed twice" in output and "-p no:first or -p no:second" in output
        assert "Did you mean" not in output
    code, output = invoke("-p", "no:second", "run", "--task", "dup", "--input", str(tmp_path / "a.mp4"), "--output", "o")
    assert code == EXIT_USER_ERROR and "no such file or folder" in output  # 'dup' is now 'first', an image task


BROKEN_SOURCE = "import os\n\nimport not_a_module_anywhere\n"


def test_import_failure_is_reported_once_with_the_plugin_file_and_line(tmp_path: Path) -> None:
    """A fresh process, so a RuntimeWarning printed by Python's warning machinery would show in stderr."""
    write_distribution(tmp_path, "omg-broken", "omg_broken", BROKEN_SOURCE, {"broken": "omg_broken"})
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    completed = subprocess.run([sys.executable, "-m", "omg_core.cli", "tasks"], env=env, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert f"OMG tasks ({INSTALLED})" in completed.stdout
    assert completed.stderr.count("not_a_module_anywhere") == 1, completed.stderr
    assert "Warning" not in completed.stderr and "registry.py" not in completed.stderr
    assert "plugin failed: task plugin entry point 'broken = omg_broken' (distribution omg-broken 0.1.0)" in completed.stderr
    assert f"(at {tmp_path / 'omg_broken' / '__init__.py'}:3)" in completed.stderr


def test_run_of_a_plugin_that_failed_to_load_names_the_import_error(tmp_path: Path, plugin_site: Path) -> None:
    write_distribution(plugin_site, "omg-broken", "omg_broken", BROKEN_SOURCE, {"broken": "omg_broken"})
    code, output = invoke("run", "--task", "broken", "--input", str(tmp_path), "--output", str(tmp_path / "o"))
    assert code == EXIT_USER_ERROR
    assert "error: task 'broken' is unavailable: its plugin failed to load" in output
    assert "ModuleNotFoundError: No module named 'not_a_module_anywhere'" in output
    assert f"{plugin_site / 'omg_broken' / '__init__.py'}:3" in output
    assert "Did you mean" not in output and "unknown task" not in output


def fake_predictor(model_config):  # stands in for the shared model: a logit map from the pixels
    return lambda request, plan: request.pixels.float().mean(0) - 127.5


def test_hook_raising_input_error_is_one_line_and_exit_2(
    tmp_path: Path, plugin_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import omg_core.model.predictor

    monkeypatch.setattr(omg_core.model.predictor, "build_predictor", fake_predictor)
    source = raising_plugin_source("glow", "omg_decode_outputs", 'raise InputError("glow needs a colour image")')
    write_distribution(plugin_site, "omg-glow", "omg_glow", source, {"glow": "omg_glow"})
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    result = CliRunner().invoke(main, ["run", "--task", "glow", "--input", str(image), "--output", str(tmp_path / "o")])
    assert result.exit_code == EXIT_USER_ERROR
    assert result.output.strip() == "error: glow needs a colour image"


def test_hook_raising_value_error_shows_a_traceback_ending_with_the_task_and_hook(tmp_path: Path) -> None:
    source = raising_plugin_source("glow", "omg_decode_outputs", 'raise ValueError("threshold must be positive")')
    write_distribution(tmp_path, "omg-glow", "omg_glow", source, {"glow": "omg_glow"})
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    script = (
        "import sys\n"
        "import omg_core.model.predictor as predictor\n"
        "predictor.build_predictor = lambda config: (lambda request, plan: request.pixels.float().mean(0) - 127.5)\n"
        "from omg_core.cli import main\n"
        "main(sys.argv[1:], prog_name='omg')\n"
    )
    argv = ["run", "--task", "glow", "--input", str(image), "--output", str(tmp_path / "o")]
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    completed = subprocess.run([sys.executable, "-c", script, *argv], env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 1
    stderr = completed.stderr
    assert "Traceback (most recent call last)" in stderr
    line = line_of(source, "threshold must be positive")
    assert f'omg_glow/__init__.py", line {line}, in omg_decode_outputs' in stderr  # the plugin's own frame
    assert "ValueError: threshold must be positive\n" in stderr
    assert "The above exception was the direct cause of the following exception" in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(
        "omg_common.errors.PluginHookError: task 'glow' hook omg_decode_outputs raised ValueError: "
        "threshold must be positive"
    ), last
    assert f"(at {tmp_path / 'omg_glow' / '__init__.py'}:{line})" in last


def test_doctor_lists_every_fused_extension_and_builds_nothing(tmp_path: Path) -> None:
    """`omg doctor` (table) and `omg doctor --json` report each project extension with its keyed build directory under
    TORCH_EXTENSIONS_DIR, not built there, and leave that directory untouched; `omg doctor --help` imports no torch."""
    from omg_common.ext_build import project_extensions

    test_help_and_tasks_import_no_torch(["doctor", "--help"])
    names = [spec.name for spec in project_extensions()]
    root = tmp_path / "torch_extensions"
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(root), "OMG_EVAL_BACKEND": "torch"}
    env.pop("OMG_MSDA_BACKEND", None)
    run = [sys.executable, "-m", "omg_core.cli", "doctor"]
    report = json.loads(subprocess.run([*run, "--json"], env=env, capture_output=True, text=True, check=True).stdout)
    assert [row["name"] for row in report["extensions"]] == names
    for row in report["extensions"]:
        assert Path(row["build_directory"]).parent == root and Path(row["build_directory"]).name.startswith(row["name"])
        assert row["built"] is False
        expected = "reference" if row["env_var"] == "OMG_EVAL_BACKEND" else "fused"
        assert row["backend"] == expected or not report["compiler"], row
    assert report["torch"] and "compiler" in report and "nvcc" in report
    table = subprocess.run([*run], env={**env, "COLUMNS": "200"}, capture_output=True, text=True, check=True).stdout
    assert all(name in table for name in names) and "OMG_EVAL_BACKEND=torch" in table
    assert not root.exists()  # nothing built, not even a directory made


def test_error_messages_are_printed_literally_even_with_brackets(tmp_path: Path) -> None:
    """A path or value holding rich markup ('[/x]', '[bold]') reaches the user as written, not eaten as styling."""
    weird = tmp_path / "[bold]results[red].json"
    weird.write_text("{not json")
    code, output = invoke("eval", "--task", "interactive", "--predictions", str(weird))
    assert code == EXIT_USER_ERROR and "[bold]results[red].json" in output and "not valid JSON" in output


def test_omg_tasks_names_a_plugin_that_imports_torch_as_it_loads(tmp_path: Path) -> None:
    """`omg tasks` starts without torch; a plugin importing it at module level costs every command seconds."""
    write_distribution(tmp_path, "omg-bright", "omg_bright", working_plugin_source("bright"), {"bright": "omg_bright"})
    command = [sys.executable, "-m", "omg_core.cli", "tasks", "--json"]
    clean = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    assert clean["slow_imports"] == []  # the built-in plugins import torch inside their hooks
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    payload = json.loads(subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout)
    (note,) = payload["slow_imports"]
    assert "'bright = omg_bright'" in note and "imports torch as it loads" in note and "inside the hooks" in note
