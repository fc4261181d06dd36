"""Writers are cross-cutting hooks: any plugin writes any task's results of a family it understands, the first answer
wins, tryfirst overrides the built-in writers, and a plugin with no task of its own can add a format."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from plugin_factory import working_plugin_source, write_distribution

from omg_core.cli import main
from omg_core.errors import InputError
from omg_core.registry import discover_tasks
from omg_core.results import PanopticMap, Segment, SemanticMap
from omg_core.task_io import TaskResult

VOCABULARY = ("cat", "grass", "sky")

# A plugin with no task: it adds the "semantic-npz" format to every task whose results are semantic maps.
NPZ_WRITER = '''
from pathlib import Path

import numpy as np

from omg_core import hookimpl
from omg_core.output_formats import OutputFormat
from omg_core.result_writer import ResultWriter, atomic_path


@hookimpl
def omg_output_formats():
    return [OutputFormat("semantic-npz", "class indices as .npz", families=("semantic",))]


class NpzWriter(ResultWriter):
    """Gathers every sample into one .npz, written when the run closes."""

    def __init__(self, task, output_dir):
        super().__init__(task, output_dir)
        self.labels = {}

    def write(self, result, index):
        self.labels[self.stem(result, index)] = result.data.labels.numpy()
        return []

    def close(self):
        path = self.output_dir / "labels.npz"
        with atomic_path(path) as temporary:
            with open(temporary, "wb") as file:
                np.savez(file, **self.labels)
        return [path]


@hookimpl
def omg_open_writer(task, output_dir, output_format):
    if output_format != "semantic-npz":
        return None
    return NpzWriter(task, output_dir)
'''

# Another writer-only plugin that takes over the built-in semantic-png format with tryfirst.
PNG_OVERRIDE = '''
from pathlib import Path

from omg_core import hookimpl


from omg_core.result_writer import ResultWriter, write_text_atomic


class OverrideWriter(ResultWriter):
    def write(self, result, index):
        return [write_text_atomic(self.output_dir / "override.txt", self.task.name)]


@hookimpl(tryfirst=True)
def omg_open_writer(task, output_dir, output_format):
    if output_format != "semantic-png":
        return None
    return OverrideWriter(task, output_dir)
'''


def semantic_result(source: str) -> TaskResult:
    labels = torch.tensor([[0, 1, 2], [-1, 2, 2]])
    return TaskResult(task="semantic", source=Path(source), data=SemanticMap(labels, VOCABULARY))


def test_builtin_writers_serve_every_task_of_their_family(tmp_path: Path) -> None:
    registry = discover_tasks()
    assert registry.formats_for(registry.get("semantic").info) == ["semantic-png"]
    written = registry.get("semantic").write_results([semantic_result("in/a.jpg")], tmp_path)
    assert written == [tmp_path / "a.png"]
    assert np.asarray(Image.open(tmp_path / "a.png")).tolist() == [[0, 1, 2], [255, 2, 2]]
    # panoptic results (ov-seg produces them) as semantic PNGs: each segment painted with its class, void unlabelled
    segments = (Segment(5, 1, 0.9, False), Segment(9, 0, 0.8, True))
    panoptic = PanopticMap(torch.tensor([[5, 5, 9], [0, 9, 9]]), segments, VOCABULARY)
    out = tmp_path / "ov"
    out.mkdir()
    registry.get("ov-seg").write_results([TaskResult("ov-seg", Path("b.png"), panoptic)], out, "semantic-png")
    assert np.asarray(Image.open(out / "b.png")).tolist() == [[1, 1, 0], [255, 0, 0]]
    registry.get("ov-seg").write_results([TaskResult("ov-seg", Path("b.png"), panoptic)], out, "coco-panoptic")
    written_json = json.loads((out / "panoptic.json").read_text())
    assert [s["category_id"] for s in written_json["annotations"][0]["segments_info"]] == [2, 1]
    assert [c["name"] for c in written_json["categories"]] == list(VOCABULARY)


def test_a_plugin_without_a_task_adds_a_format_to_a_builtin_task(plugin_site: Path, tmp_path: Path) -> None:
    write_distribution(plugin_site, "omg-npz", "omg_npz", NPZ_WRITER, {"npz": "omg_npz"})
    registry = discover_tasks()
    assert not registry.problems and "npz" not in registry  # no task added
    semantic = registry.get("semantic")
    assert registry.formats_for(semantic.info) == ["semantic-png", "semantic-npz"]
    assert "semantic-npz" not in registry.formats_for(registry.get("panoptic").info)  # not its family
    (path,) = semantic.write_results([semantic_result("x/frame.png")], tmp_path, "semantic-npz")
    assert np.load(path)["frame"].tolist() == [[0, 1, 2], [-1, 2, 2]]
    with pytest.raises(InputError, match="task 'panoptic' writes coco-panoptic, semantic-png"):
        registry.get("panoptic").write_results([], tmp_path, "semantic-npz")


def test_tryfirst_overrides_a_builtin_writer(plugin_site: Path, tmp_path: Path) -> None:
    write_distribution(plugin_site, "omg-override", "omg_override", PNG_OVERRIDE, {"override": "omg_override"})
    registry = discover_tasks()
    assert registry.get("semantic").write_results([semantic_result("a.png")], tmp_path) == [tmp_path / "override.txt"]
    assert not (tmp_path / "a.png").exists()


def test_a_writer_only_plugin_may_not_implement_task_hooks(plugin_site: Path) -> None:
    source = NPZ_WRITER + "\n\n@hookimpl\ndef omg_encode_queries(request):\n    return None\n"
    write_distribution(plugin_site, "omg-half", "omg_half", source, {"half": "omg_half"})
    registry = discover_tasks()
    (problem,) = registry.problems
    assert "implements omg_encode_queries but not omg_task_info" in str(problem)
    assert "semantic-npz" not in registry.output_formats()


# A writer-only plugin that wraps hooks (pluggy's wrapper=True): it sees every call, of the owner-only decode hook of a
# task plugin and of the cross-cutting writer, without answering either.
WRAPPER = """
from omg_core import hookimpl

SEEN = []


@hookimpl(wrapper=True)
def omg_decode_outputs(request, plan, outputs):
    SEEN.append(("decode", request.task))
    return (yield)


@hookimpl(wrapper=True)
def omg_open_writer(task, output_dir, output_format):
    writer = yield
    SEEN.append(("open writer", task.name, output_format, type(writer).__name__ != "NoneType"))
    return writer
"""


def test_hook_wrappers_of_a_plugin_without_a_task_take_part(plugin_site: Path, tmp_path: Path) -> None:
    from plugin_factory import working_plugin_source

    write_distribution(plugin_site, "omg-wrap", "omg_wrap", WRAPPER, {"wrap": "omg_wrap"})
    write_distribution(plugin_site, "omg-bright", "omg_bright", working_plugin_source("bright"), {"bright": "omg_bright"})
    registry = discover_tasks()
    assert not registry.problems
    from omg_core.task_io import QueryPlan, TaskRequest

    request = TaskRequest(task="bright", modality="image", pixels=torch.zeros(3, 2, 2, dtype=torch.uint8),
                          options=registry.get("bright").info.options())
    registry.get("bright").decode_outputs(request, QueryPlan(), torch.ones(2, 2))
    registry.get("semantic").write_results([semantic_result("a.png")], tmp_path)
    import omg_wrap

    assert omg_wrap.SEEN == [("decode", "bright"), ("open writer", "semantic", "semantic-png", True)]


def test_atomically_written_files_get_an_ordinary_files_mode(tmp_path: Path) -> None:
    # mkstemp makes 0600 files: results renamed from them were unreadable to anyone but their writer
    from omg_core.result_writer import atomic_path
    from omg_tasks._overlays import write_video

    previous = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.json") as temporary:
            temporary.write_text("{}")
        video = write_video(iter([Image.new("RGB", (16, 16))] * 2), tmp_path / "clip")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE(video.stat().st_mode) == 0o644
    assert not list(tmp_path.glob(".*partial"))


def test_safetensors_weights_and_checkpoints_get_an_ordinary_files_mode(tmp_path: Path) -> None:
    # safetensors' save_file writes 0600 whatever the umask
    from omg_core.weights.io import save_weights

    previous = os.umask(0o022)
    try:
        path = save_weights({"w": torch.zeros(2)}, tmp_path / "w.safetensors")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def _with_formats(task_name: str, info_fields: str) -> str:
    """The working plugin with its own format left out and ``info_fields`` in place of its output_formats."""
    source = working_plugin_source(task_name).replace('output_formats=("mask-png",)', info_fields)
    return source[: source.index("@hookimpl\ndef omg_output_formats")]


@pytest.mark.parametrize(
    ("info_fields", "cause"),
    [
        ('output_formats=("semantic-png",)', "sets no result_family"),
        ('output_formats=("coco-results-json",), result_family="instance"', "did you mean 'instances'?"),
        ('output_formats=("coco-result-json",), result_family="instances"', "did you mean 'coco-results-json'?"),
    ],
)
def test_a_task_whose_default_format_cannot_hold_its_results_is_named_with_the_fix(
    plugin_site: Path, info_fields: str, cause: str
) -> None:
    write_distribution(plugin_site, "omg-lost", "omg_lost", _with_formats("lost", info_fields), {"lost": "omg_lost"})
    registry = discover_tasks()
    lost = registry.get("lost").info
    assert cause in registry.default_format_problem(lost)
    assert registry.default_format_problem(registry.get("semantic").info) is None
    with pytest.raises(InputError, match=f"task 'lost': its default output format .*{cause.replace('?', '[?]')}"):
        registry.check_format(lost, None)  # what `omg run` asks before building the model
    listing = CliRunner().invoke(main, ["tasks"])
    assert listing.exit_code == 0 and "no writer" in listing.output
    assert "task 'lost' cannot write results" in listing.stderr and cause in " ".join(listing.stderr.split())


def test_without_any_writer_loaded_the_error_says_how_to_load_them(plugin_site: Path) -> None:
    write_distribution(plugin_site, "omg-lone", "omg_lone",
                       _with_formats("lone", 'output_formats=("semantic-png",), result_family="semantic"'),
                       {"lone": "omg_lone"})
    registry = discover_tasks(plugins=["lone"], autoload=False)
    with pytest.raises(InputError, match="no output-format plugin is loaded.*-p omg-writers"):
        registry.check_format(registry.get("lone").info, None)
    assert discover_tasks(plugins=["lone", "omg-writers"], autoload=False).check_format(
        registry.get("lone").info, None) == "semantic-png"
