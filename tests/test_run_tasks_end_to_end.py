"""`omg run` end to end for all ten tasks on omg-tiny (random weights: the plumbing, formats, overlays, failures and
interruptions; result quality comes with the embedded model)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from omg_core.cli import EXIT_INTERRUPTED, EXIT_SOME_FAILED, EXIT_USER_ERROR, main

warnings.filterwarnings("ignore", message=".*random weights.*")


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _png(path: Path, seed: int, size: tuple[int, int] = (48, 64)) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    _png(folder / "a.png", 0)
    _png(folder / "b.jpg", 1)
    return folder


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clip") / "clip"
    for index in range(4):
        _png(folder / f"{index * 5:05d}.jpg", index)
    return folder


@pytest.fixture(scope="module")
def prompts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "prompts.json"
    path.write_text(json.dumps({"points": [[[10, 12]], [[40, 30]]], "boxes": [[2, 2, 30, 30], [20, 10, 60, 40]]}))
    return path


IMAGE_RUNS = [
    ("panoptic", [], "panoptic.json"),
    ("instance", [], "results.json"),
    ("semantic", [], "a.png"),
    ("ov-seg", ["--vocabulary", "red star;blue circle,disc;sky:stuff"], "panoptic.json"),
]


@pytest.mark.parametrize(("task", "extra", "expected"), IMAGE_RUNS)
def test_image_tasks_write_their_format_and_overlays(task: str, extra: list[str], expected: str, images: Path,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, output = invoke("run", "--task", task, "--input", str(images), "--output", str(out), "--overlays", "--json",
                          *extra)
    assert code == 0, output
    summary = json.loads(output[output.index("{"):])
    assert summary["samples"] == 2 and summary["succeeded"] == 2 and summary["failed"] == []
    assert (out / expected).exists() or (out / "panoptic" / "a.png").exists()
    assert len(summary["overlays"]) == 2 and all(Path(p).exists() for p in summary["overlays"])
    assert not list(out.rglob("*.partial"))


@pytest.mark.parametrize("task", ["interactive", "ov-interactive"])
def test_interactive_tasks_take_prompts(task: str, images: Path, prompts: Path, tmp_path: Path) -> None:
    extra = ["--vocabulary", "cat;dog"] if task == "ov-interactive" else []
    code, output = invoke("run", "--task", task, "--input", str(images / "a.png"), "--output", str(tmp_path / "o"),
                          "--prompts", str(prompts), *extra)
    assert code == 0, output
    assert any((tmp_path / "o").iterdir())


@pytest.mark.parametrize(("task", "extra"), [("video-instance", []), ("video-panoptic", []), ("video-semantic", []),
                                             ("ov-vis", ["--vocabulary", "red star;green square"])])
def test_video_tasks_run_on_a_frame_folder(task: str, extra: list[str], frames: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, output = invoke("run", "--task", task, "--input", str(frames), "--output", str(out), "--overlays", *extra)
    assert code == 0, output
    written = [p for p in out.rglob("*") if p.is_file()]
    assert written and any(p.parent.name == "overlays" for p in written)


def test_a_broken_input_fails_alone(images: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for image in images.iterdir():
        (folder / image.name).write_bytes(image.read_bytes())
    (folder / "c.png").write_text("not an image")
    code, output = invoke("run", "--task", "semantic", "--input", str(folder), "--output", str(tmp_path / "out"))
    assert code == EXIT_SOME_FAILED
    assert "c.png" in output and "not an image" in output and "1 of 3 input(s) failed" in output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "ov-seg", "--vocabulary", "cat;;dog"], "--vocabulary"),
        (["--task", "ov-seg", "--vocabulary", "Cat;cat"], "--vocabulary"),
        (["--task", "ov-seg", "--vocabulary", "cocoo"], "coco"),
        (["--task", "panoptic", "--vocabulary", "cat;dog"], "closed vocabulary"),
        (["--task", "semantic", "--device", "cuda"], "CUDA is not available"),
        (["--task", "semantic", "--size", "big"], "--size"),
        (["--task", "ov-seg", "--vocabulary", "cat;dog", "--seen", "zebra"], "zebra"),
    ],
)
def test_bad_inputs_fail_before_anything_is_created(args: list[str], message: str, images: Path,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, output = invoke("run", "--input", str(images), "--output", str(out), *args)
    assert code == EXIT_USER_ERROR and message in output, output
    assert not out.exists()


def test_prompts_outside_the_image_or_for_a_task_without_prompts(images: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"points": [[[500, 10]]]}))
    code, output = invoke("run", "--task", "interactive", "--input", str(images / "a.png"), "--output",
                          str(tmp_path / "o1"), "--prompts", str(outside))
    assert code == EXIT_USER_ERROR and "outside" in output.lower() and not (tmp_path / "o1").exists()
    code, output = invoke("run", "--task", "semantic", "--input", str(images / "a.png"), "--output",
                          str(tmp_path / "o2"), "--prompts", str(outside))
    assert code == EXIT_USER_ERROR and "takes no prompts" in output


def test_an_output_path_that_is_a_file(images: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    code, output = invoke("run", "--task", "semantic", "--input", str(images), "--output", str(tmp_path / "file"))
    assert code == EXIT_USER_ERROR and "is a file" in output


def test_ctrl_c_keeps_the_finished_samples(images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import omg_core.pipeline as pipeline

    real = pipeline.default_predictor_factory

    def interrupting_factory(model_config):
        predictor = real(model_config)
        calls = []

        def run(request, plan):
            calls.append(request.source)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return predictor(request, plan)

        return run

    monkeypatch.setattr(pipeline, "default_predictor_factory", interrupting_factory)
    code, output = invoke("run", "--task", "panoptic", "--input", str(images), "--output", str(tmp_path / "out"))
    assert code == EXIT_INTERRUPTED and "1 of 2 sample(s) finished" in output
    written = json.loads((tmp_path / "out" / "panoptic.json").read_text())
    assert [image["file_name"] for image in written["images"]] == ["a.png"]
    assert (tmp_path / "out" / "panoptic" / "a.png").exists()
