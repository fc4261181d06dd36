"""`run_task`: inputs are validated before any model is built, and a working plugin runs end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from plugin_factory import raising_plugin_source, working_plugin_source, write_distribution

from omg_core.config import RunConfig, RunModelConfig, TaskConfig
from omg_core.errors import InputError, OMGError, PluginHookError
from omg_core.pipeline import run_task
from omg_core.registry import discover_tasks
from omg_core.run_inputs import plan_inputs, read_prompts


def brightness_predictor(model_config: RunModelConfig):
    # Stands in for the shared model: logits > 0 where the image is bright.
    def predict(request, plan):
        assert plan.learned_queries
        return request.pixels.float().mean(0) - 127.5

    return predict


def save_image(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def registry(plugin_site: Path):
    write_distribution(plugin_site, "omg-bright", "omg_bright", working_plugin_source("bright"), {"bright": "omg_bright"})
    return discover_tasks()


def test_a_third_party_task_runs_end_to_end(tmp_path: Path, registry) -> None:
    images = tmp_path / "images"
    images.mkdir()
    pixels = np.zeros((6, 9, 3), np.uint8)
    pixels[2:4, 3:7] = 255
    save_image(images / "one.png", pixels)
    save_image(images / "two.png", 255 - pixels)
    config = RunConfig(task=TaskConfig(name="bright"), input=images, output=tmp_path / "out")
    progress = []
    summary = run_task(config, registry, brightness_predictor, on_sample=lambda d, t: progress.append((d, t)))
    assert summary.num_samples == 2 and progress == [(1, 2), (2, 2)]
    assert sorted(p.name for p in summary.written) == ["one.png", "two.png"]
    written = np.asarray(Image.open(tmp_path / "out" / "one.png")) > 0
    assert np.array_equal(written, pixels[..., 0] > 0)


def test_inputs_are_checked_before_the_model_is_built(tmp_path: Path, registry) -> None:
    def exploding_factory(model_config):
        raise AssertionError("the model must not be built for invalid inputs")

    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    image = save_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    config = RunConfig(task=TaskConfig(name="bright"), input=image, output=out)
    with pytest.raises(InputError, match="is not empty; choose another directory or pass --overwrite"):
        run_task(config, registry, exploding_factory)
    config = RunConfig(task=TaskConfig(name="bright", output_format="json"), input=image, output=tmp_path / "o2")
    with pytest.raises(InputError, match="writes mask-png"):
        run_task(config, registry, exploding_factory)
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"boxes": [[0, 0, 2, 2]]}))
    config = RunConfig(task=TaskConfig(name="bright", prompts=prompts), input=image, output=tmp_path / "o3")
    with pytest.raises(InputError, match="takes no prompts"):
        run_task(config, registry, exploding_factory)
    assert (out / "old.txt").read_text() == "keep me"


def test_output_that_is_a_file_is_refused(tmp_path: Path, registry) -> None:
    image = save_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "file").write_text("")
    config = RunConfig(task=TaskConfig(name="bright"), input=image, output=tmp_path / "file")
    with pytest.raises(InputError, match="is a file; give a directory"):
        run_task(config, registry, brightness_predictor)


def test_video_tasks_take_frame_folders_and_refuse_single_images(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(3):
        save_image(frames / f"{index:05d}.jpg", np.full((4, 5, 3), index * 40, np.uint8))
    (source,) = plan_inputs(frames, "video")
    from omg_core.pipeline import load_pixels

    clip = load_pixels(source)
    assert clip.shape == (3, 3, 4, 5)
    assert [int(frame.float().mean().round()) for frame in clip] == [0, 40, 80]  # frame order kept
    with pytest.raises(InputError, match="single image, but this is a video task"):
        plan_inputs(frames / "00000.jpg", "video")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no frames"):
        plan_inputs(empty, "video")


def test_frames_of_different_sizes_are_an_error(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    save_image(frames / "0.png", np.zeros((4, 5, 3), np.uint8))
    save_image(frames / "1.png", np.zeros((5, 5, 3), np.uint8))
    from omg_core.pipeline import load_pixels

    with pytest.raises(InputError, match=r"frame 1 has size \(5, 5\), the first frame \(4, 5\)"):
        load_pixels(plan_inputs(frames, "video")[0])


def test_corrupt_image_names_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    from omg_core.run_inputs import read_image

    with pytest.raises(OMGError, match="broken.png"):
        read_image(broken)


def test_prompt_files_are_read_and_validated(tmp_path: Path) -> None:
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps({"points": [[[3, 4], [5, 6]], [[1, 1], [0, 0]]], "point_labels": [[1, 0], [1, -1]]}))
    prompts = read_prompts(path)
    assert prompts.num_prompts == 2 and prompts.kinds == ("points",)
    assert torch.equal(prompts.point_labels, torch.tensor([[1, 0], [1, -1]]))
    path.write_text(json.dumps({"points": [[[3, 4]]]}))
    assert torch.equal(read_prompts(path).point_labels, torch.tensor([[1]]))
    for bad, message in (
        ({"boxes": [[5, 5, 1, 1]]}, "x1 > x0"),
        ({"boxes": [[0, 0, 1]]}, r"boxes must be \(N, 4\)"),
        ({"points": [[[1, 2]]], "boxes": [[0, 0, 1, 1], [0, 0, 2, 2]]}, "same number of prompts"),
        ({"clicks": []}, "unknown key"),
        ({}, "holds no prompts"),
    ):
        path.write_text(json.dumps(bad))
        with pytest.raises(InputError, match=message):
            read_prompts(path)


def test_task_options_are_validated_before_the_model_is_built_and_reach_the_hooks(tmp_path: Path, registry) -> None:
    from omg_core.errors import ConfigError

    def exploding_factory(model_config):
        raise AssertionError("the model must not be built for invalid options")

    image = save_image(tmp_path / "a.png", np.full((4, 4, 3), 255, np.uint8))  # mean - 127.5 = 127.5
    config = RunConfig(task=TaskConfig(name="bright", options={"threshhold": 1}), input=image, output=tmp_path / "o1")
    with pytest.raises(ConfigError, match=r"unknown option 'threshhold' \(did you mean 'threshold'\?\)"):
        run_task(config, registry, exploding_factory, options_source="run.yaml")
    config = RunConfig(task=TaskConfig(name="bright", options={"threshold": "high"}), input=image, output=tmp_path / "o2")
    with pytest.raises(ConfigError, match=r"run.yaml: task 'bright': option 'threshold'.*got 'high'.*default 0.0"):
        run_task(config, registry, exploding_factory, options_source="run.yaml")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
    for threshold, bright in ((100.0, True), (200.0, False)):
        out = tmp_path / f"t{threshold}"
        config = RunConfig(task=TaskConfig(name="bright", options={"threshold": threshold}), input=image, output=out)
        run_task(config, registry, brightness_predictor)
        assert (np.asarray(Image.open(out / "a.png")) > 0).all() == bright


@pytest.mark.parametrize("failing_sample", [0, 1])
def test_a_plugin_bug_leaves_no_empty_results_and_says_what_the_kept_ones_cover(
    plugin_site: Path, tmp_path: Path, failing_sample: int
) -> None:
    statement = f'if request.source.name == "{failing_sample}.png": raise ValueError("bug")'
    source = raising_plugin_source("bright", "omg_decode_outputs", statement)
    write_distribution(plugin_site, "omg-bright", "omg_bright", source, {"bright": "omg_bright"})
    for k in range(3):
        Image.fromarray(np.full((4, 4, 3), 200, np.uint8)).save(tmp_path / f"{k}.png")
    config = RunConfig(task=TaskConfig(name="bright"), input=tmp_path, output=tmp_path / "out")
    with pytest.raises(PluginHookError) as raised:
        run_task(config, discover_tasks(), lambda _: lambda request, plan: request.pixels.float().mean(0))
    if failing_sample == 0:  # nothing finished: no folder of empty files for `omg eval` to score
        assert not (tmp_path / "out").exists() and not getattr(raised.value, "__notes__", [])
    else:
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png"]
        assert raised.value.__notes__ == [f"omg run: 1 of 3 sample(s) finished before this error; {tmp_path / 'out'} "
                                          "holds their results only (the rest were not run)"]


SHRUNK_PLUGIN = '''
from omg_core import TaskInfo, hookimpl
from omg_core.task_io import QueryPlan, TaskResult


@hookimpl
def omg_task_info():
    return TaskInfo(name="shrunk", summary="semantic maps", modality="image", vocabulary="closed",
                    metrics=("mIoU",), result_family=FAMILY, output_formats=("semantic-png",))


@hookimpl
def omg_encode_queries(request):
    return QueryPlan(learned_queries=True)


@hookimpl
def omg_decode_outputs(request, plan, outputs):
    from omg_core.results import SemanticMap

    height, width = request.pixels.shape[-2:]
    labels = outputs[: height // SHRINK, : width // SHRINK].long() * 0  # SHRINK 4: left at the stride-4 mask size
    return TaskResult(task="shrunk", source=request.source, data=SemanticMap(labels, ("a",)))


@hookimpl
def omg_create_metric(options):
    from omg_eval.semantic import SemanticSegmentation

    return SemanticSegmentation(1)
'''


@pytest.mark.parametrize(
    ("family", "shrink", "message"),
    [("semantic", 4, "SemanticMap.labels is 2x3 per frame but the input is 8x12; results are at the input's size"),
     ("panoptic", 1, "returned SemanticMap ('semantic' results) but TaskInfo.result_family is 'panoptic'")],
)
def test_a_decoded_result_that_does_not_fit_the_input_or_the_task_is_named_at_the_hook(
    plugin_site: Path, tmp_path: Path, family: str, shrink: int, message: str
) -> None:
    source = f"FAMILY = {family!r}\nSHRINK = {shrink}\n" + SHRUNK_PLUGIN
    write_distribution(plugin_site, "omg-shrunk", "omg_shrunk", source, {"shrunk": "omg_shrunk"})
    Image.fromarray(np.zeros((8, 12, 3), np.uint8)).save(tmp_path / "a.png")
    config = RunConfig(task=TaskConfig(name="shrunk"), input=tmp_path / "a.png", output=tmp_path / "out",
                       overlays=True)
    with pytest.raises(PluginHookError, match="hook omg_decode_outputs: .*" + re.escape(message)):
        run_task(config, discover_tasks(), lambda _: lambda request, plan: request.pixels.float().mean(0))
    assert not (tmp_path / "out").exists()  # nothing written at the wrong size
