"""Compile every CUDA source of the project (and the C++ bindings with CUDA dispatch on), without needing a GPU.

No machine here has a GPU, so the CUDA kernels can only rot silently; this script (``nox -s cuda_build``) keeps them
compiling. Each ``.cu`` is compiled to an object with nvcc for ``TORCH_CUDA_ARCH_LIST`` (default 9.0); each C++ file
next to a ``.cu`` is syntax-checked with ``-DWITH_CUDA`` so its CUDA dispatch path compiles too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("omg_common", "omg_core", "omg_eval", "omg_data", "omg_tasks")


def gencode_flags(arch_list: str) -> list[str]:
    flags = []
    for arch in arch_list.replace(",", ";").replace(" ", ";").split(";"):
        if not arch:
            continue
        digits = arch.replace(".", "").replace("+PTX", "")
        flags += ["-gencode", f"arch=compute_{digits},code=sm_{digits}"]
    return flags


def main() -> int:
    from torch.utils.cpp_extension import CUDA_HOME, include_paths

    nvcc = shutil.which("nvcc") or (str(Path(CUDA_HOME) / "bin" / "nvcc") if CUDA_HOME else None)
    if nvcc is None or not Path(nvcc).exists():
        print("error: nvcc not found (install the CUDA toolkit or set CUDA_HOME)", file=sys.stderr)
        return 2
    cuda_sources = sorted(p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.cu"))
    if not cuda_sources:
        print("no .cu sources found")
        return 0
    try:
        includes = include_paths(device_type="cuda")
    except TypeError:  # older torch spells it cuda=True
        includes = include_paths(cuda=True)
    # ATen/cuda headers need cuBLAS/cuSPARSE headers, which the pip CUDA wheels keep inside site-packages.
    wheel_includes = [str(p) for p in Path(sysconfig.get_paths()["purelib"]).glob("nvidia/*/include") if p.is_dir()]
    include_flags = [f"-I{path}" for path in [*includes, sysconfig.get_paths()["include"], *wheel_includes]]
    arch_flags = gencode_flags(os.environ.get("TORCH_CUDA_ARCH_LIST", "9.0"))
    failures = 0
    with tempfile.TemporaryDirectory() as build_dir:
        for source in cuda_sources:
            command = [nvcc, "-c", str(source), "-o", str(Path(build_dir) / (source.stem + ".o")), "-std=c++20",
                       "-O3", "--expt-relaxed-constexpr", "-Xcompiler", "-fPIC", *arch_flags, *include_flags]
            failures += _run(f"nvcc {source.relative_to(ROOT)}", command)
        for binding in sorted({cpp for source in cuda_sources for cpp in source.parent.glob("*.cpp")}):
            command = ["c++", "-fsyntax-only", "-std=c++20", "-DWITH_CUDA", "-fopenmp", str(binding), *include_flags]
            failures += _run(f"c++ -DWITH_CUDA {binding.relative_to(ROOT)}", command)
    print(f"{len(cuda_sources)} CUDA source(s), {failures} failure(s)")
    return 1 if failures else 0


def _run(label: str, command: list[str]) -> int:
    print(f"compiling: {label}", flush=True)
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        print(completed.stdout + completed.stderr, file=sys.stderr)
        print(f"FAILED: {label}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
