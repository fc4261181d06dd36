"""omg_common.ext_build: the first-use build message, the content-keyed build directory and the reference fallback.

A tiny throwaway extension (the Python C API only, no torch headers: it compiles in about a second) stands in for the
project's kernels, which take a minute each.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
import warnings
from pathlib import Path

import pytest

from omg_common import ext_build
from omg_common.ext_build import ExtensionSpec

TINY_SOURCE = r"""
#include <Python.h>
#include "tiny.h"
#define OMG_CAT(a, b) a##b
#define OMG_INIT(name) OMG_CAT(PyInit_, name)
#define OMG_STR2(x) #x
#define OMG_STR(x) OMG_STR2(x)
static PyObject* answer(PyObject*, PyObject*) { return PyLong_FromLong(TINY_ANSWER); }
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, "the answer"}, {nullptr, nullptr, 0, nullptr}};
static PyModuleDef module_def = {PyModuleDef_HEAD_INIT, OMG_STR(TORCH_EXTENSION_NAME), nullptr, -1, methods};
PyMODINIT_FUNC OMG_INIT(TORCH_EXTENSION_NAME)(void) { return PyModule_Create(&module_def); }
"""

ENV_VAR = "OMG_TINY_BACKEND"

needs_compiler = pytest.mark.skipif(
    not (ext_build.compiler_available() and ext_build.ninja_available()), reason="needs a C++ compiler and ninja"
)


def tiny_spec(source_dir: Path, *, answer: int = 42, source: str = TINY_SOURCE, **fields) -> ExtensionSpec:
    """A fresh extension (a unique name: torch versions a name reloaded with other sources in one process)."""
    source_dir.mkdir(parents=True, exist_ok=True)
    (source_dir / "tiny.cpp").write_text(source)
    (source_dir / "tiny.h").write_text(f"#define TINY_ANSWER {answer}\n")
    return ExtensionSpec(
        name=f"omg_tiny_{uuid.uuid4().hex[:8]}",
        cpp_sources=(source_dir / "tiny.cpp",),
        env_var=ENV_VAR,
        title="the tiny test extension",
        build_seconds=1,
        **fields,
    )


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty extension root and no remembered loads or warnings, as in a new environment."""
    root = tmp_path / "torch_extensions"
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(root))
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setattr(ext_build, "_loaded", {})
    monkeypatch.setattr(ext_build, "_failed", {})
    monkeypatch.setattr(ext_build, "_warned", set())
    return root


LOAD_SCRIPT = """
import sys
from pathlib import Path
from omg_common.ext_build import ExtensionSpec, load_extension
spec = ExtensionSpec(name=sys.argv[1], cpp_sources=(Path(sys.argv[2]),), env_var="OMG_TINY_BACKEND", title="t")
print(load_extension(spec).answer())
"""


@needs_compiler
def test_first_build_is_announced_once_and_a_built_extension_loads_silently(
    tmp_path: Path, fresh_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tiny_spec(tmp_path / "src")
    plan = ext_build.plan_build(spec)
    assert not plan.built and plan.directory.parent == fresh_cache
    assert ext_build.load_extension(spec).answer() == 42
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2, err
    assert err[0].startswith(f"omg: compiling the tiny test extension ({spec.name}), once per environment: about 1 s")
    assert f"reused from {plan.directory} afterwards" in err[0]
    assert f"set {ENV_VAR}=reference to skip it" in err[0]
    assert re.fullmatch(rf"omg: built {spec.name} in \d+\.\d s", err[1]), err[1]
    assert plan.built
    built_at = plan.library.stat().st_mtime_ns

    assert ext_build.load_extension(spec).answer() == 42  # same process: remembered
    ext_build._loaded.clear()
    assert ext_build.load_extension(spec).answer() == 42  # same process, forgotten: loaded from the build
    assert capsys.readouterr().err == ""

    # A new process in the same environment: no message, no compile.
    completed = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, spec.name, str(spec.cpp_sources[0])],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "42" and "omg:" not in completed.stderr, completed.stderr
    assert plan.library.stat().st_mtime_ns == built_at
    assert [p.name for p in fresh_cache.iterdir()] == [plan.directory.name]


@needs_compiler
def test_two_environments_get_two_build_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tiny_spec(tmp_path / "src")
    first = ext_build.plan_build(spec)
    assert ext_build.load_extension(spec) is not None and first.built

    with monkeypatch.context() as patch:  # another virtualenv: its torch is installed elsewhere
        patch.setattr(ext_build, "_torch_install_path", lambda: str(tmp_path / "other-venv" / "torch"))
        other_venv = ext_build.plan_build(spec)
    assert other_venv.directory != first.directory and other_venv.directory.parent == first.directory.parent
    assert not other_venv.built  # its own build, never the first environment's

    with monkeypatch.context() as patch:  # another Python
        patch.setattr(sys, "version", sys.version + " (another interpreter)")
        other_python = ext_build.plan_build(spec)
    assert other_python.directory not in (first.directory, other_venv.directory)

    flagged = ExtensionSpec(**{**spec.__dict__, "extra_cflags": ("-DOMG_OTHER_FLAG",)})
    assert ext_build.plan_build(flagged).directory not in (first.directory, other_venv.directory)
    assert ext_build.plan_build(spec) == first  # the unchanged environment keeps its build


def test_changing_a_source_or_an_included_header_changes_the_key(tmp_path: Path) -> None:
    spec = tiny_spec(tmp_path / "src")
    key = ext_build.plan_build(spec).key
    assert ext_build.plan_build(spec).key == key  # deterministic
    (tmp_path / "src" / "tiny.h").write_text("#define TINY_ANSWER 43\n")
    header_changed = ext_build.plan_build(spec).key
    assert header_changed != key
    source = spec.cpp_sources[0]
    source.write_text(source.read_text() + "\n// a comment\n")
    assert ext_build.plan_build(spec).key not in (key, header_changed)
    assert ext_build.source_files(spec.cpp_sources) == [source.resolve(), (tmp_path / "src" / "tiny.h").resolve()]


@needs_compiler
def test_a_failing_build_falls_back_with_one_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tiny_spec(tmp_path / "src", source="this is not C++;\n")
    with pytest.warns(RuntimeWarning, match=rf"(?s)building {spec.name} failed.*{ENV_VAR}=reference to silence"):
        assert ext_build.load_extension(spec) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same failure again stays silent
        assert ext_build.load_extension(spec) is None
    monkeypatch.setenv(ENV_VAR, "fused")
    with pytest.raises(ext_build.ExtensionBuildError, match=rf"{ENV_VAR}=fused but {spec.name} cannot run fused"):
        ext_build.load_extension(spec)
    monkeypatch.setenv(ENV_VAR, "reference")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ext_build.load_extension(spec) is None  # skipped: nothing compiled, nothing said


def test_no_compiler_falls_back_without_building(
    tmp_path: Path, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(ext_build, "compiler_available", lambda: False)
    spec = tiny_spec(tmp_path / "src")
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler found"):
        assert ext_build.load_extension(spec) is None
    assert capsys.readouterr().err == "" and not fresh_cache.exists()
    assert ext_build.describe_backend(spec) == {"backend": "reference", "reason": "no C++ compiler on PATH (fallback)"}


def test_every_project_extension_is_registered_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from omg_core.ops import ms_deform_attn_function
    from omg_eval.kernels import _extension, video_extension

    specs = ext_build.project_extensions()
    declared = [ms_deform_attn_function.SPEC, _extension.SPEC, video_extension.SPEC]
    assert specs == sorted(declared, key=lambda spec: spec.name)
    assert {spec.name for spec in specs} == {
        ms_deform_attn_function.EXTENSION_NAME,
        _extension.EXTENSION_NAME,
        video_extension.EXTENSION_NAME,
    }
    for spec in specs:
        assert spec.env_var in ("OMG_MSDA_BACKEND", "OMG_EVAL_BACKEND") and spec.title
        assert all(path.is_file() for path in (*spec.cpp_sources, *spec.cuda_sources))
        monkeypatch.setenv(spec.env_var, spec.skip_value)  # the value the first-use message advises
        assert ext_build.requested_backend(spec.env_var) == "reference"


def test_extension_checks_format_their_messages_without_streams() -> None:
    # TORCH_CHECK(ok, "image ", b) inserts b into a std::ostream inside the extension, which segfaulted (instead of
    # raising) where the toolchain linked libstdc++ statically into the .so (GCC 13, Ubuntu 24.04); OMG_CHECK builds
    # the message with std::to_string (omg_common/csrc/omg_check.h)
    root = Path(__file__).resolve().parents[1]
    sources = [path for folder in ("omg_core", "omg_eval", "omg_common", "plugins")
               for pattern in ("*.cpp", "*.cu", "*.h", "*.cuh") for path in (root / folder).rglob(pattern)]
    assert any(path.name == "eval_kernels.cpp" for path in sources)
    offending = [f"{path.relative_to(root)}:{number}" for path in sources
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if re.search(r"\b(TORCH_CHECK\w*|AT_ERROR|C10_THROW_ERROR)\(", line) and "#define" not in line and not line.lstrip().startswith("//")]
    assert not offending, f"use OMG_CHECK / OMG_CHECK_VALUE instead: {offending}"
