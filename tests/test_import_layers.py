"""The packages import in one direction only: omg_common <- omg_data <- omg_eval <- omg_core <- omg_tasks <- CLI.

Every import statement counts, the ones inside functions too (a lazy import is still a dependency). The command-line
modules sit on top and may import anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"omg_common": 0, "omg_data": 1, "omg_eval": 2, "omg_core": 3, "omg_tasks": 4}
CLI_MODULES = {"omg_core.cli", "omg_core.doctor", "omg_core.weights.cli", "omg_data.cli", "omg_eval.cli"}
TOP = max(LAYERS.values()) + 1


def layer_of(module: str) -> int | None:
    if module in CLI_MODULES:
        return TOP
    return LAYERS.get(module.split(".")[0])


def imports_of(path: Path) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
            found.extend((f"{node.module}.{alias.name}", node.lineno) for alias in node.names)  # `from pkg import mod`
    return found


def forbidden_imports() -> list[str]:
    problems = []
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            own = layer_of(module)
            for imported, line in imports_of(path):
                target = layer_of(imported)
                if target is not None and own is not None and target > own:
                    problems.append(f"{path.relative_to(ROOT)}:{line}: {module} (layer {own}) imports {imported}")
    return problems


def test_no_package_imports_a_layer_above_it() -> None:
    problems = forbidden_imports()
    assert not problems, "imports against the layer order:\n" + "\n".join(problems)


def test_the_check_catches_a_lower_layer_importing_a_higher_one(tmp_path: Path) -> None:
    offender = tmp_path / "offender.py"
    offender.write_text("def f():\n    from omg_core.registry import discover_tasks\n")
    assert [layer_of(name) for name, _ in imports_of(offender)] == [LAYERS["omg_core"]] * 2
    assert layer_of("omg_data.rle") < layer_of("omg_core.registry") < layer_of("omg_core.cli")
    assert layer_of("omg_common.errors") == 0 and layer_of("numpy") is None
