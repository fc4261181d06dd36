"""Overlays are a cross-cutting hook: the built-in plugin draws every result family over its input, a plugin's
tryfirst overlay replaces it, and `omg run --overlays` says when no plugin draws a task's results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from plugin_factory import working_plugin_source, write_distribution

from omg_core.config import RunConfig, TaskConfig
from omg_core.errors import PluginHookError
from omg_core.pipeline import run_task
from omg_core.registry import discover_tasks
from omg_core.results import IGNORE_LABEL, Instances, SemanticMap, Tracks
from omg_core.task_io import TaskResult
from omg_tasks._overlays import TINT, colour

VOCABULARY = ("cat", "grass")
GREY = 100


def grey(height: int = 8, width: int = 10, frames: int | None = None) -> torch.Tensor:
    shape = (3, height, width) if frames is None else (frames, 3, height, width)
    return torch.full(shape, GREY, dtype=torch.uint8)


def test_semantic_overlay_tints_each_class_and_leaves_unlabelled_pixels(tmp_path: Path) -> None:
    labels = torch.full((48, 80), IGNORE_LABEL)
    labels[12:36, 10:70] = 1
    registry = discover_tasks()
    result = TaskResult("semantic", Path("in/photo.jpg"), SemanticMap(labels, VOCABULARY))
    (path,) = registry.render_overlay(registry.get("semantic"), result, grey(48, 80), tmp_path)
    assert path == tmp_path / "photo.png"
    picture = np.asarray(Image.open(path)).astype(int)
    expected = np.round((1 - TINT) * GREY + TINT * np.asarray(colour(1)))
    assert np.array_equal(picture[14, 14], expected)  # inside, away from the outline and the centred class name
    assert np.array_equal(picture[12, 40], colour(1))  # the region's outline
    assert (picture[:8] == GREY).all() and (picture[40:] == GREY).all()  # unlabelled: untouched


def test_instance_and_track_overlays_draw_each_object(tmp_path: Path) -> None:
    masks = torch.zeros(2, 8, 10, dtype=torch.bool)
    masks[0, 1:4, 1:4] = masks[1, 5:8, 6:10] = True
    instances = Instances(masks, torch.tensor([0.9, 0.4]), torch.tensor([0, 1]), VOCABULARY)
    registry = discover_tasks()
    (path,) = registry.render_overlay(registry.get("instance"), TaskResult("instance", None, instances), grey(), tmp_path)
    picture = np.asarray(Image.open(path))
    assert tuple(picture[2, 2]) != (GREY,) * 3 and tuple(picture[6, 8]) != tuple(picture[2, 2])  # two colours
    tracks = Tracks(masks[:, None].repeat(1, 3, 1, 1), torch.tensor([0.9, 0.4]), torch.tensor([0, 1]), VOCABULARY)
    drawn = registry.render_overlay(registry.get("video-instance"), TaskResult("video-instance", Path("clip"), tracks),
                                    grey(frames=3), tmp_path)
    assert drawn in ([tmp_path / "clip.mp4"], [tmp_path / "clip.gif"])  # one video (a GIF without an encoder)


OVERRIDE = '''
from pathlib import Path

from omg_core import hookimpl


@hookimpl(tryfirst=True)
def omg_render_overlay(task, result, pixels, output_dir):
    path = Path(output_dir) / "mine.txt"
    path.write_text(task.name)
    return [path]
'''


def test_a_plugin_overlay_with_tryfirst_replaces_the_builtin(plugin_site: Path, tmp_path: Path) -> None:
    write_distribution(plugin_site, "omg-mine", "omg_mine", OVERRIDE, {"mine": "omg_mine"})
    registry = discover_tasks()
    result = TaskResult("semantic", None, SemanticMap(torch.zeros(8, 10, dtype=torch.int64), VOCABULARY))
    assert registry.render_overlay(registry.get("semantic"), result, grey(), tmp_path) == [tmp_path / "mine.txt"]


def test_a_failing_overlay_plugin_is_named_by_its_own_file_and_line(plugin_site: Path, tmp_path: Path) -> None:
    """Any plugin may answer a cross-cutting hook: the error must point at the code that failed, not only the task."""
    broken = OVERRIDE.replace('    path = Path(output_dir) / "mine.txt"', '    raise ValueError("no palette")')
    write_distribution(plugin_site, "omg-mine", "omg_mine", broken, {"mine": "omg_mine"})
    registry = discover_tasks()
    result = TaskResult("semantic", None, SemanticMap(torch.zeros(8, 10, dtype=torch.int64), VOCABULARY))
    with pytest.raises(PluginHookError) as raised:
        registry.render_overlay(registry.get("semantic"), result, grey(), tmp_path)
    message = str(raised.value)
    assert "drawing an overlay raised ValueError: no palette" in message
    assert f"(at {plugin_site / 'omg_mine' / '__init__.py'}:" in message and "in omg_render_overlay)" in message


def test_run_counts_samples_no_plugin_draws(plugin_site: Path, tmp_path: Path) -> None:
    write_distribution(plugin_site, "omg-bright", "omg_bright", working_plugin_source("bright"), {"bright": "omg_bright"})
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    config = RunConfig(task=TaskConfig(name="bright"), input=tmp_path / "a.png", output=tmp_path / "out", overlays=True)
    summary = run_task(config, discover_tasks(), lambda _: lambda request, plan: request.pixels.float().mean(0))
    assert summary.overlays == () and summary.samples_without_overlay == 1  # its results are no result family


def test_low_scoring_detections_are_not_drawn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    masks = torch.zeros(2, 48, 80, dtype=torch.bool)
    masks[0, 2:20, 2:30] = masks[1, 30:46, 50:78] = True
    instances = Instances(masks, torch.tensor([0.9, 0.1]), torch.tensor([0, 1]), VOCABULARY)
    registry = discover_tasks()
    result = TaskResult("instance", None, instances)
    (path,) = registry.render_overlay(registry.get("instance"), result, grey(48, 80), tmp_path)
    assert tuple(np.asarray(Image.open(path))[44, 76]) == (GREY,) * 3  # 0.1 < OBJECT_MIN_SCORE: left out
    monkeypatch.setenv("OMG_OVERLAY_MIN_SCORE", "0")
    (path,) = registry.render_overlay(registry.get("instance"), result, grey(48, 80), tmp_path)
    assert tuple(np.asarray(Image.open(path))[44, 76]) != (GREY,) * 3
