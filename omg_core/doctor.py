"""``omg doctor``: what this environment gives OMG's fused kernels, without building anything (unless ``--build``).

It reports the torch and CUDA versions, whether a C++ compiler, ninja and nvcc are found, and for every fused
extension the project declares (:func:`omg_common.ext_build.project_extensions`): its keyed build directory, whether
that build exists, and the backend its op family will use (the ``OMG_*_BACKEND`` overrides honoured). ``--build``
compiles the missing ones now, as the first ``omg eval`` / ``omg run`` would (useful when preparing an image);
``--json`` prints the same report for machines.

Importing this module imports neither torch nor NumPy (``omg doctor --help`` starts at once); running it imports torch.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from omg_core import __version__


def _first_line(command: list[str]) -> str | None:
    """The first non-empty output line of ``command`` (a version probe), or None when it cannot run."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    return lines[0] if lines else None


def _nvcc_version(nvcc: str) -> str | None:
    try:
        result = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    releases = [line.strip() for line in result.stdout.splitlines() if "release" in line]
    return releases[-1] if releases else None


def _nvcc_path(cuda_home: str | None) -> str | None:
    if cuda_home:
        candidate = Path(cuda_home) / "bin" / "nvcc"
        if candidate.is_file():
            return str(candidate)
    return shutil.which("nvcc")


def _cuda_sources(spec: Any, plan: Any) -> str:
    if not spec.cuda_sources:
        return "none"
    if plan.with_cuda:
        return "included"
    import torch

    return "left out: " + ("no usable GPU" if not torch.cuda.is_available() else "nvcc (CUDA_HOME) not found")


def _extension_rows(build: bool) -> list[dict[str, Any]]:
    from omg_common import ext_build

    rows = []
    for spec in ext_build.project_extensions():
        plan = ext_build.plan_build(spec)
        row: dict[str, Any] = {
            "name": spec.name,
            "title": spec.title,
            "env_var": spec.env_var,
            "env_value": os.environ.get(spec.env_var),
            "skip_with": f"{spec.env_var}={spec.skip_value}",
            "sources": [str(p) for p in (*spec.cpp_sources, *spec.cuda_sources)],
            "cuda_sources": _cuda_sources(spec, plan),
            "build_directory": str(plan.directory),
            "key": plan.key,
            "built": plan.built,
        }
        if build:
            row["build"] = _build(spec, plan)
            plan = ext_build.plan_build(spec)
            row["built"] = plan.built
        row.update(ext_build.describe_backend(spec, plan))
        rows.append(row)
    return rows


def _build(spec: Any, plan: Any) -> str:
    """Build ``spec`` now unless it is built or its family is forced to the reference; what happened, in words."""
    from omg_common import ext_build

    backend = ext_build.describe_backend(spec, plan)
    if backend["backend"] != "fused":
        return f"skipped: {backend['reason']}"
    if plan.built:
        return "already built"
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            module = spec.load()
        except ext_build.ExtensionBuildError as exc:
            return f"failed: {exc}"
    if module is None:
        reasons = "; ".join(str(w.message) for w in caught) or "unknown reason"
        return f"failed: {reasons}"
    return f"built in {time.perf_counter() - started:.0f} s"


def collect_report(build: bool = False) -> dict[str, Any]:
    """The doctor's findings as plain data (``omg doctor --json`` prints exactly this)."""
    from omg_common import ext_build

    cpp_extension = ext_build._cpp_extension()  # imports torch without cpp_extension's "No CUDA runtime" line
    import torch

    compiler = ext_build.compiler_path()
    ninja = shutil.which("ninja")
    cuda_home = cpp_extension.CUDA_HOME
    nvcc = _nvcc_path(cuda_home)
    cuda_available = torch.cuda.is_available()
    return {
        "omg": __version__,
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_path": ext_build._torch_install_path(),
        "torch_cuda": torch.version.cuda,
        "cuda_available": cuda_available,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda_available else [],
        "compiler": compiler,
        "compiler_version": _first_line([compiler, "--version"]) if compiler else None,
        "ninja": ninja,
        "ninja_version": _first_line([ninja, "--version"]) if ninja else None,
        "cuda_home": cuda_home,
        "nvcc": nvcc,
        "nvcc_version": _nvcc_version(nvcc) if nvcc else None,
        "extensions_root": str(ext_build.extensions_root()),
        "torch_extensions_dir_set": bool(os.environ.get("TORCH_EXTENSIONS_DIR")),
        "extensions": _extension_rows(build),
    }


def _found(path: str | None, version: str | None, missing: str) -> str:
    if path is None:
        return f"[red]not found[/] ({missing})"
    return f"{path}" + (f" ({version})" if version else "")


def print_report(report: dict[str, Any], console: Console) -> None:
    environment = Table(title="Environment", show_header=False, title_justify="left")
    environment.add_column("what", style="bold")
    environment.add_column("value", overflow="fold")
    cuda = report["torch_cuda"] or "CPU-only build"
    gpus = ", ".join(report["gpus"]) if report["gpus"] else "no GPU usable"
    rows = [
        ("omg", report["omg"]),
        ("python", f"{report['python']} ({report['python_executable']})"),
        ("torch", f"{report['torch']} ({report['torch_path']})"),
        ("torch CUDA", f"{cuda}; {gpus}"),
        ("C++ compiler", _found(report["compiler"], report["compiler_version"], "install g++ or set CXX")),
        ("ninja", _found(report["ninja"], report["ninja_version"], "pip install ninja")),
        ("nvcc", _found(report["nvcc"], report["nvcc_version"], "only needed for the CUDA kernels")),
        (
            "extension builds",
            report["extensions_root"]
            + ("" if report["torch_extensions_dir_set"] else " (torch's default; set TORCH_EXTENSIONS_DIR to move it)"),
        ),
    ]
    for what, value in rows:
        environment.add_row(what, value)
    console.print(environment)

    extensions = Table(title="Fused extensions", title_justify="left")
    extensions.add_column("extension", no_wrap=True)
    extensions.add_column("override", no_wrap=True)
    extensions.add_column("backend")
    extensions.add_column("built")
    colours = {"fused": "green", "reference": "yellow", "error": "red"}
    for row in report["extensions"]:
        override = f"{row['env_var']}={row['env_value']}" if row["env_value"] else f"{row['env_var']} unset"
        reason = "forced by the override" if row["backend"] == "reference" and row["env_value"] else row["reason"]
        backend = f"[{colours[row['backend']]}]{row['backend']}[/]: {reason}"
        built = "yes" if row["built"] else "no"
        if "build" in row:
            built += f" ({row['build']})"
        extensions.add_row(row["name"], override, backend, built)
    console.print(extensions)
    for row in report["extensions"]:  # whole paths, never folded inside a table cell
        console.print(
            f"{row['name']}: {row['title']}; build directory {row['build_directory']} "
            f"(CUDA sources {row['cuda_sources']})",
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        "A missing build is compiled on first use (once per environment; the command says so on stderr). "
        "`omg doctor --build` compiles them now; each family's override (e.g. OMG_EVAL_BACKEND=torch, "
        "OMG_MSDA_BACKEND=reference) selects the pure-PyTorch path instead.",
        highlight=False,
    )


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON instead of tables")
@click.option(
    "--build", is_flag=True, help="compile the fused extensions that are not built yet (otherwise nothing is built)"
)
def doctor_command(as_json: bool, build: bool) -> None:
    """Show torch/CUDA, the compilers found and every fused C++/CUDA extension: build directory, built or not, and
    the backend each op family will use. Builds nothing unless --build is given."""
    report = collect_report(build=build)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        print_report(report, Console(soft_wrap=False))
    if build and any(str(row.get("build", "")).startswith("failed") for row in report["extensions"]):
        sys.exit(1)
