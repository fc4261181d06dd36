"""`--video-mode stream`: a video decoded and written tube by tube.

Instance tracks must equal the offline ones (they are chosen from the whole video's class average in both modes);
semantic / panoptic frames are fused with the average so far, equal to offline when the video is one tube.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from omg_core.cli import main
from omg_core.inference.video import TrackOutputs, select_track_pairs, video_instances
from omg_core.inference.video_stream import StreamedInstances
from omg_core.model.build import create_model
from omg_core.model.predictor import OMGPredictor, _video_tubes
from omg_core.postprocess import encode_rles
from omg_core.registry import discover_tasks
from omg_core.task_io import QueryPlan, TaskRequest, VideoTubes
from omg_core.weights.io import save_weights

VOCABULARY = "red circle;blue square;green triangle"


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model("omg-tiny")
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_weights(model, path)
    return path


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from omg_data.synthetic.world import ShapesWorld

    video = ShapesWorld(seed=3, image_size=(64, 80)).video(0, num_frames=18)
    folder = tmp_path_factory.mktemp("video") / "clip"
    folder.mkdir()
    for index, frame in enumerate(video.frames):
        Image.fromarray(frame.permute(1, 2, 0).numpy()).save(folder / f"{index:05d}.png")
    return folder


def run(*args: str) -> str:
    result = CliRunner().invoke(main, ["run", *args])
    assert result.exit_code == 0, result.output
    return result.output


def run_fails(*args: str) -> str:
    result = CliRunner().invoke(main, ["run", *args])
    assert result.exit_code != 0
    return result.output


# -- tubes read lazily -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("declared, actual", [(23, 23), (23, 17), (23, 30), (None, 12), (4, 4), (16, 16)])
def test_tubes_follow_video_split_and_survive_a_wrong_count(declared: int | None, actual: int) -> None:
    from omg_core.inference.video import tube_bounds

    plan = QueryPlan(tubes=VideoTubes(clip_size=5))
    pixels = torch.arange(actual, dtype=torch.uint8)[:, None, None, None].expand(actual, 3, 2, 2)
    read = list(_video_tubes(iter(pixels), declared, plan))
    starts = [start for start, _, _ in read]
    sizes = [len(tube) for _, tube, _ in read]
    assert sum(sizes) == actual and [last for _, _, last in read] == [False] * (len(read) - 1) + [True]
    assert torch.equal(torch.cat([tube for _, tube, _ in read]), pixels)  # every frame once, in order
    assert starts == [sum(sizes[:i]) for i in range(len(sizes))]
    if declared == actual:
        assert [(s, s + n) for s, n in zip(starts, sizes)] == tube_bounds(actual, 5)


def test_tubes_are_read_lazily() -> None:
    taken: list[int] = []

    def frames():
        for index in range(40):
            taken.append(index)
            yield torch.zeros(3, 2, 2, dtype=torch.uint8)

    tubes = _video_tubes(frames(), 40, QueryPlan(tubes=VideoTubes(clip_size=5)))
    next(tubes)
    assert len(taken) <= 10  # the first tube and the one read ahead, not the video


# -- instance tracks equal offline -------------------------------------------------------------------------------


def test_streamed_instances_equal_video_instances_on_hand_made_logits() -> None:
    generator = torch.Generator().manual_seed(1)
    queries, classes, frames = 12, 4, 7
    class_logits = torch.randn(queries, classes + 1, generator=generator)
    masks = torch.randn(queries, frames, 6, 8, generator=generator) * 3
    masks[3] = -1.0  # a slot with no pixel anywhere
    is_thing = torch.tensor([True, True, False, True])

    def resize(logits: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(logits[None], size=(12, 16), mode="bilinear", align_corners=False)[0]

    offline = video_instances(TrackOutputs(class_logits, class_logits[:, :1], masks), resize, is_thing, 20,
                              ["a", "b", "c", "d"])
    state = StreamedInstances(is_thing, 20, ["a", "b", "c", "d"], chunk=5)
    chunks = [state.add(class_logits, masks[:, start:start + 3], resize, start) for start in (0, 3, 6)]
    selection = state.finish(class_logits)
    assert torch.equal(selection.labels, offline.labels)
    assert torch.allclose(selection.scores, offline.scores, atol=1e-6)
    assert torch.equal(selection.boxes, offline.boxes)
    for track, slot in enumerate(selection.slots.tolist()):
        rles = [rle for chunk in chunks for rle in chunk.rles[slot]]
        expected = encode_rles(offline.masks[track])
        assert [rle if rle is not None else None for rle in rles] == [
            rle if bool(offline.masks[track, t].any()) else None for t, rle in enumerate(expected)]
    queries_chosen, _, _ = select_track_pairs(class_logits, is_thing, 20)
    assert set(selection.slots.tolist()) == set(queries_chosen.tolist())


@pytest.mark.parametrize("task", ["video-instance", "ov-vis"])
def test_streamed_tracks_equal_offline_through_omg_run(task: str, weights: Path, frames: Path, tmp_path: Path) -> None:
    extra = ["--vocabulary", VOCABULARY] if task == "ov-vis" else []
    for mode in ("offline", "stream"):
        run("--task", task, "--input", str(frames), "--output", str(tmp_path / mode), "--weights", str(weights),
            "--video-mode", mode, *extra)
    offline = json.loads((tmp_path / "offline" / "results.json").read_text())
    streamed = json.loads((tmp_path / "stream" / "results.json").read_text())
    assert len(offline) > 0
    assert [(r["category_id"], r["segmentations"]) for r in streamed] == [
        (r["category_id"], r["segmentations"]) for r in offline]
    assert np.allclose([r["score"] for r in streamed], [r["score"] for r in offline], atol=1e-6)
    assert (tmp_path / "stream" / "videos.json").read_text() == (tmp_path / "offline" / "videos.json").read_text()
    assert not (tmp_path / "stream" / ".omg-stream").exists()  # the spilled RLEs are gone


def test_last_chunk_carries_the_whole_video_average(weights: Path) -> None:
    from omg_core.model.predictor import load_model

    predictor = OMGPredictor(load_model(weights, "omg-tiny"))
    pixels = torch.randint(0, 256, (13, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    registry = discover_tasks()
    handle = registry.get("ov-vis")
    from omg_core.task_info import validate_options

    request = TaskRequest(task="ov-vis", modality="video", pixels=pixels, vocabulary=("red circle", "blue square"),
                          options=validate_options("ov-vis", handle.info.options, {}, "options"))
    plan = handle.encode_queries(request)
    offline = predictor(request, plan)
    stream_request = TaskRequest(task="ov-vis", modality="video", pixels=pixels[:0], vocabulary=request.vocabulary,
                                 options=request.options)
    chunks = list(predictor.stream_video(stream_request, plan, iter(pixels), 13))
    assert [chunk.is_last for chunk in chunks] == [False] * (len(chunks) - 1) + [True]
    assert torch.allclose(chunks[-1].outputs.class_logits, offline.class_logits, atol=1e-6)
    streamed_masks = torch.cat([chunk.outputs.mask_logits for chunk in chunks], dim=2)
    assert torch.equal(streamed_masks, offline.mask_logits)
    assert not torch.allclose(chunks[0].outputs.class_logits, offline.class_logits)  # the first: an average so far


# -- semantic / panoptic -----------------------------------------------------------------------------------------


def test_one_tube_video_streams_to_the_offline_labels(weights: Path, frames: Path, tmp_path: Path) -> None:
    for mode in ("offline", "stream"):
        run("--task", "video-semantic", "--input", str(frames), "--output", str(tmp_path / mode), "--weights",
            str(weights), "--video-mode", mode, "--option", "clip_size=20", "--option", "clip_size_small=20")
    names = sorted(path.name for path in (tmp_path / "offline" / "clip").glob("*.png"))
    assert len(names) == 18
    for name in names:
        assert np.array_equal(np.array(Image.open(tmp_path / "offline" / "clip" / name)),
                              np.array(Image.open(tmp_path / "stream" / "clip" / name)))


def test_streamed_vipseg_values_keep_a_track_over_tubes(weights: Path, frames: Path, tmp_path: Path) -> None:
    run("--task", "video-panoptic", "--input", str(frames), "--output", str(tmp_path), "--weights", str(weights),
        "--video-mode", "stream", "--overlays")
    pngs = sorted((tmp_path / "panomasks" / "clip").glob("*.png"))
    assert len(pngs) == 18
    values = np.stack([np.array(Image.open(path)) for path in pngs])
    things = values[values >= 125]
    assert things.size == 0 or (things % 100 < 100).all()
    assert (tmp_path / "overlays" / "clip.mp4").exists() or (tmp_path / "overlays" / "clip.gif").exists()
    assert json.loads((tmp_path / "panoVIPSeg_categories.json").read_text())


# -- overlays, auto mode, errors ---------------------------------------------------------------------------------


def test_streamed_overlay_has_every_frame(weights: Path, frames: Path, tmp_path: Path) -> None:
    import av

    run("--task", "ov-vis", "--input", str(frames), "--output", str(tmp_path), "--weights", str(weights),
        "--video-mode", "stream", "--overlays", "--vocabulary", VOCABULARY)
    (video,) = (tmp_path / "overlays").iterdir()
    if video.suffix == ".mp4":
        with av.open(str(video)) as container:
            assert sum(1 for _ in container.decode(video=0)) == 18
    assert not [path for path in (tmp_path / "overlays").iterdir() if path.name.endswith(".partial")]


def test_auto_mode_streams_long_videos_only(weights: Path, frames: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = OMGPredictor.stream_video

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(OMGPredictor, "stream_video", counting)
    run("--task", "video-instance", "--input", str(frames), "--output", str(tmp_path / "a"), "--weights", str(weights))
    assert calls == []  # 18 frames <= 100: offline
    run("--task", "video-instance", "--input", str(frames), "--output", str(tmp_path / "b"), "--weights", str(weights),
        "--stream-min-frames", "10")
    assert calls == [1]


def test_stream_errors_name_the_fix(weights: Path, frames: Path, tmp_path: Path) -> None:
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(image)
    output = run_fails("--task", "panoptic", "--input", str(image), "--output", str(tmp_path / "x"),
                       "--video-mode", "stream")
    assert "takes images; drop --video-mode" in output
    output = run_fails("--task", "video-instance", "--input", str(frames), "--output", str(tmp_path / "y"),
                       "--video-mode", "sideways")
    assert "sideways" in output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_task_without_a_stream_decoder_is_refused_in_stream_mode(frames: Path, tmp_path: Path) -> None:
    registry = discover_tasks()
    handle = registry.get("vos") if "vos" in [h.name for h in registry] else None
    if handle is None:
        pytest.fail("the omg-task-vos plugin is installed by .ci/run; install plugins/omg-task-vos")
    assert not handle.can_stream
    output = run_fails("--task", "vos", "--input", str(frames), "--output", str(tmp_path / "z"),
                       "--video-mode", "stream")
    assert "decodes videos whole" in output and "--video-mode offline" in output
