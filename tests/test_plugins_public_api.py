"""The task plugins under plugins/ are written against OMG's public API only: no file there reaches a private name
(a module or attribute starting with "_") of the OMG packages, by import, attribute, import_module or a
"module:function" string (how file evaluators name their function)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"
#: The OMG packages whose private names plugins must not use.
OMG_PACKAGES = ("omg_core", "omg_tasks", "omg_eval", "omg_data", "omg_common")
#: Folders that hold build products or caches, not plugin sources.
SKIPPED_FOLDERS = {"__pycache__", "build", "dist", ".venv", ".pytest_cache"}
#: A dotted reference to an OMG module, optionally ":attribute" (entry points, FileEvaluator.function strings).
OMG_REFERENCE = re.compile(rf"^(?:{'|'.join(OMG_PACKAGES)})(?:\.\w+)*(?::\w+(?:\.\w+)*)?$")


def is_private(name: str) -> bool:
    """A leading underscore, dunders (``__version__``, ``__init__``) excepted."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_parts(dotted: str) -> list[str]:
    return [part for part in re.split(r"[.:]", dotted) if is_private(part)]


def is_omg(module: str) -> bool:
    return module.split(".")[0] in OMG_PACKAGES


def private_uses(source: str, filename: str = "<plugin>") -> list[str]:
    """Every use of a private OMG name in Python ``source``, as 'file:line: what'."""
    tree = ast.parse(source, filename)
    found: list[str] = []
    omg_names: set[str] = set()  # local names bound to OMG modules or objects

    def report(node: ast.AST, what: str) -> None:
        found.append(f"{filename}:{getattr(node, 'lineno', 0)}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if is_omg(alias.name):
                    omg_names.add(alias.asname or alias.name.split(".")[0])
                    if private_parts(alias.name):
                        report(node, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and is_omg(node.module):
            for alias in node.names:
                omg_names.add(alias.asname or alias.name)
                if private_parts(node.module) or is_private(alias.name):
                    report(node, f"from {node.module} import {alias.name}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value.strip()
            if OMG_REFERENCE.match(text) and private_parts(text):
                report(node, f"reference {text!r}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in omg_names:
                report(node, f"attribute {ast.unparse(node)}")
    return found


def private_references_in_text(text: str, filename: str) -> list[str]:
    """Private OMG references in quoted strings of a non-Python file (a pyproject's entry points)."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for quoted in re.findall(r"[\"']([^\"']+)[\"']", line):
            if OMG_REFERENCE.match(quoted.strip()) and private_parts(quoted):
                found.append(f"{filename}:{number}: reference {quoted!r}")
    return found


def plugin_files() -> list[Path]:
    files = []
    for path in sorted(PLUGINS.rglob("*")):
        relative = path.relative_to(PLUGINS).parts
        if any(part in SKIPPED_FOLDERS or part.endswith(".egg-info") for part in relative[:-1]):
            continue
        if path.is_file() and (path.suffix == ".py" or path.name == "pyproject.toml"):
            files.append(path)
    return files


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import omg_tasks._builtin", ["import omg_tasks._builtin"]),
        ("from omg_tasks._builtin import BuiltinTask", ["from omg_tasks._builtin import BuiltinTask"]),
        ("from omg_tasks import _writers", ["from omg_tasks import _writers"]),
        ("from omg_core.registry import _describe", ["from omg_core.registry import _describe"]),
        ("import omg_core.registry\nomg_core.registry._x()", ["attribute omg_core.registry._x"]),
        ("from omg_core import results\nresults._check(1)", ["attribute results._check"]),
        ("import importlib\nimportlib.import_module('omg_tasks._builtin')", ["reference 'omg_tasks._builtin'"]),
        ("F = 'omg_tasks._file_evaluators:evaluate_davis'", ["reference 'omg_tasks._file_evaluators:evaluate_davis'"]),
        ("from omg_core import __version__, TaskInfo\nfrom omg_core.results import PromptMasks", []),
        ("from . import _helper\nimport numpy as np\nnp._private = 1\nx = '_not_a_module'", []),
    ],
)
def test_the_checker_finds_private_names_and_only_those(source: str, expected: list[str]) -> None:
    assert [use.split(": ", 1)[1] for use in private_uses(source)] == expected


def test_no_plugin_uses_a_private_omg_name() -> None:
    files = plugin_files()
    distributions = {path.parent.name for path in files if path.name == "pyproject.toml"}
    # the worked example and the two task plugins at least: an empty scan would pass for nothing
    assert {"omg-salient", "omg-task-vos", "omg-task-referring"} <= distributions
    violations = []
    for path in files:
        text = path.read_text()
        name = str(path.relative_to(PLUGINS.parent))
        violations += private_uses(text, name) if path.suffix == ".py" else private_references_in_text(text, name)
    assert violations == [], "plugins must use OMG's public API only:\n" + "\n".join(violations)
