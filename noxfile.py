"""Developer sessions: tests, lint, bench (ratios against a saved baseline) and cuda_build.

All sessions share one project virtualenv (``.venv``): torch with its CUDA libraries is several GB, so one copy is
installed once (by ``.ci/run`` or the first session) instead of once per session.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import nox

ROOT = Path(__file__).parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
BENCH_PEERS = ("torchmetrics", "faster-coco-eval")

nox.options.sessions = ["lint", "tests"]


def project_python(session: nox.Session) -> str:
    """The shared venv's interpreter, creating the venv and installing the project (and plugins/) if needed."""
    if not PYTHON.exists():
        session.run("python3", "-m", "venv", str(VENV), external=True)
    probe = subprocess.run([str(PYTHON), "-c", "import omg_core, pytest"], capture_output=True)
    if probe.returncode != 0:
        plugins = sorted(str(p) for p in (ROOT / "plugins").glob("*/pyproject.toml"))
        session.run(str(PYTHON), "-m", "pip", "install", "-q", "-c", str(ROOT / ".ci" / "constraints.txt"), "-e", ".[dev]",
                    *[f"-e{Path(p).parent}" for p in plugins], external=True)
    return str(PYTHON)


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """Run the test suite (extra pytest arguments after --)."""
    python = project_python(session)
    session.run(python, "-m", "pytest", "-q", *session.posargs, external=True)


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """ruff over the whole tree."""
    python = project_python(session)
    session.run(python, "-m", "ruff", "check", ".", external=True)


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """Benchmarks under benchmarks/: JSON saved to bench-results/, a ratio table, failure on a >20% regression.

    ``nox -s bench -- --update-baseline`` saves this run's ratios as benchmarks/baseline.json.
    """
    python = project_python(session)
    session.run(python, "-m", "pip", "install", "-q", *BENCH_PEERS, external=True)
    results_dir = ROOT / "bench-results"
    results_dir.mkdir(exist_ok=True)
    results = results_dir / "latest.json"
    update = "--update-baseline" in session.posargs
    pytest_args = [a for a in session.posargs if a != "--update-baseline"]
    targets = [] if any(a.startswith("benchmarks") for a in pytest_args) else ["benchmarks"]
    session.run(
        python, "-m", "pytest", *targets, "-p", "no:cacheprovider", "--benchmark-only", "--benchmark-enable",
        f"--benchmark-json={results}", "-q", "-o", "addopts=", "-o", "python_files=bench_*.py", *pytest_args,
        external=True,
    )
    session.run(python, "benchmarks/ratios.py", str(results), *(["--update-baseline"] if update else []), external=True)


@nox.session(venv_backend="none")
def cuda_build(session: nox.Session) -> None:
    """Compile every .cu source with nvcc (no GPU needed) so the CUDA path never rots."""
    python = project_python(session)
    env = {"TORCH_CUDA_ARCH_LIST": os.environ.get("TORCH_CUDA_ARCH_LIST", "9.0")}
    session.run(python, "tools/build_cuda.py", env=env, external=True)
