"""The built-in overlays: pictures the input's size that change only where results are, one colour per id stable over
frames, labels and prompts drawn, videos as MP4 that PyAV decodes back to every frame, and the encoder fallbacks
(MPEG-4, then an animated GIF)."""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

import omg_tasks._overlays as overlays
from omg_core.results import Instances, PanopticMap, PromptMasks, PromptTracks, Segment, SemanticMap, Tracks
from omg_core.task_io import Prompts, TaskResult
from omg_tasks._overlays import NEGATIVE_CLICK, PALETTE_SIZE, POSITIVE_CLICK, TINT, colour, omg_render_overlay

VOCABULARY = ("cat", "grass", "sky")
GREY = 100


def grey(height: int, width: int, frames: int | None = None) -> torch.Tensor:
    shape = (3, height, width) if frames is None else (frames, 3, height, width)
    return torch.full(shape, GREY, dtype=torch.uint8)


def render(result: TaskResult, pixels: torch.Tensor, output_dir: Path) -> Path:
    (path,) = omg_render_overlay(task=None, result=result, pixels=pixels, output_dir=output_dir)
    assert not [p for p in output_dir.rglob("*") if p.name.endswith(".partial")]
    return path


def picture(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image.convert("RGB")).astype(int)


def blended(tint: tuple[int, int, int]) -> list[int]:
    return [int(np.floor((1 - TINT) * GREY + TINT * c + 0.5)) for c in tint]


def test_colours_differ_between_neighbouring_ids_and_structured_ids_spread() -> None:
    assert all(colour(key) != colour(key + 1) for key in range(2000))
    assert len({colour(key) for key in range(PALETTE_SIZE)}) == PALETTE_SIZE  # a block of ids: all different
    assert len({colour(category * 1000 + 1) for category in range(20)}) >= 12  # class * 1000 + instance ids


def test_image_overlay_has_the_input_size_and_changes_only_masked_pixels(tmp_path: Path) -> None:
    masks = torch.zeros(2, 96, 128, dtype=torch.bool)
    masks[0, 10:50, 8:100] = True
    masks[1, 60:90, 40:120] = True
    instances = Instances(masks, torch.tensor([0.9, 0.4]), torch.tensor([0, 1]), VOCABULARY)
    path = render(TaskResult("instance", Path("in/photo.jpg"), instances), grey(96, 128), tmp_path)
    assert path == tmp_path / "photo.png"
    drawn = picture(path)
    assert drawn.shape == (96, 128, 3)
    changed = (drawn != GREY).any(-1)
    union = masks.any(0).numpy()
    assert changed[union].mean() > 0.9 and not changed[~union].any()  # labels sit inside their masks here
    assert drawn[40, 90].tolist() == blended(colour(1)) and drawn[80, 110].tolist() == blended(colour(2))
    assert drawn[49, 60].tolist() == list(colour(1))  # the outline, in the object's colour
    # the label at the mask's top-left pixel: a box of the object's colour holding (anti-aliased) text
    box = drawn[10:22, 8:40]
    text = ~(box == colour(1)).all(-1) & ~(box == blended(colour(1))).all(-1)
    assert (box == colour(1)).all(-1).sum() > 20 and text.sum() > 10
    assert not (~(drawn[25:45, 9:99] == blended(colour(1))).all(-1)).any()  # the rest of the mask: tinted only


def test_overlapping_objects_show_the_higher_score_on_top(tmp_path: Path) -> None:
    masks = torch.zeros(2, 40, 60, dtype=torch.bool)
    masks[0, 5:35, 5:55] = True
    masks[1, 20:35, 30:55] = True  # inside object 0, scores higher
    instances = Instances(masks, torch.tensor([0.3, 0.8]), torch.tensor([0, 2]), VOCABULARY)
    drawn = picture(render(TaskResult("instance", Path("o.png"), instances), grey(40, 60), tmp_path))
    # (below object 1's label, which sits at its top-left pixel)
    assert drawn[33, 50].tolist() == blended(colour(2)) and drawn[33, 10].tolist() == blended(colour(1))


def test_semantic_labels_sit_at_the_centre_of_a_class_largest_region(tmp_path: Path) -> None:
    labels = torch.full((60, 80), -1)
    labels[5:15, 5:15] = 1  # small region of class 1
    labels[20:56, 30:78] = 1  # its largest region: centre (x 53.5, y 37.5)
    labels[40:58, 0:20] = 2
    drawn = picture(render(TaskResult("semantic", Path("s.png"), SemanticMap(labels, VOCABULARY)), grey(60, 80),
                           tmp_path))
    assert drawn[38, 54].tolist() == list(colour(1))  # the label box's corner, at the centre
    assert drawn[10, 10].tolist() == blended(colour(1))  # the small region carries no label
    assert (drawn[0:4] == GREY).all()  # unlabelled pixels untouched


def test_panoptic_things_and_stuff_are_labelled(tmp_path: Path) -> None:
    ids = torch.zeros(60, 90, dtype=torch.int64)
    ids[:30] = 4  # stuff (sky) over the top
    ids[35:58, 10:80] = 2001  # a thing with a structured id
    segments = (Segment(4, 2, 0.7, False), Segment(2001, 0, 0.95, True))
    drawn = picture(render(TaskResult("panoptic", Path("p.png"), PanopticMap(ids, segments, VOCABULARY)),
                           grey(60, 90), tmp_path))
    assert drawn[35, 10].tolist() == list(colour(2001))  # the thing's label box at its top-left pixel
    # the stuff's label box at the centre of its region (x 44.5, y 14.5)
    assert drawn[15, 44].tolist() == list(colour(4)) or drawn[14, 44].tolist() == list(colour(4))
    assert drawn[2, 2].tolist() == blended(colour(4))


def test_prompts_are_drawn_clicks_green_and_red_boxes_as_rectangles(tmp_path: Path) -> None:
    masks = torch.zeros(2, 50, 70, dtype=torch.bool)
    masks[0, 20:30, 20:30] = True
    prompts = Prompts(points=torch.tensor([[[25.0, 25.0], [5.0, 45.0]], [[60.0, 5.0], [0.0, 0.0]]]),
                      point_labels=torch.tensor([[1, 0], [1, -1]]),
                      boxes=torch.tensor([[12.0, 12.0, 40.0, 40.0], [50.0, 2.0, 68.0, 20.0]]))
    result = TaskResult("interactive", Path("q.png"), PromptMasks(masks, torch.tensor([0.9, 0.1])), prompts=prompts)
    drawn = picture(render(result, grey(50, 70), tmp_path))
    assert drawn[45, 5].tolist() == list(NEGATIVE_CLICK) and drawn[5, 60].tolist() == list(POSITIVE_CLICK)
    assert drawn[25, 25].tolist() == list(POSITIVE_CLICK)
    assert drawn[35, 12].tolist() == list(colour(1)) and drawn[15, 50].tolist() == list(colour(2))  # box edges
    assert drawn[0, 0].tolist() == [GREY] * 3  # the padding point at (0, 0) is not drawn


NOTHING = {  # every family with no segment, object or prompt: a plugin's filter may leave any of them empty
    "panoptic": lambda: PanopticMap(torch.zeros(12, 16, dtype=torch.int64), (), VOCABULARY),
    "instances": lambda: Instances(torch.zeros(0, 12, 16, dtype=torch.bool), torch.zeros(0),
                                   torch.zeros(0, dtype=torch.long), VOCABULARY),
    "prompt-masks": lambda: PromptMasks(torch.zeros(0, 12, 16, dtype=torch.bool), torch.zeros(0)),
}


@pytest.mark.parametrize("family", sorted(NOTHING))
def test_a_result_with_nothing_leaves_the_picture_as_it_was(family: str, tmp_path: Path) -> None:
    pixels = torch.randint(0, 256, (3, 12, 16), dtype=torch.uint8)
    drawn = picture(render(TaskResult("any", None, NOTHING[family]()), pixels, tmp_path))
    assert (tmp_path / "overlay.png").is_file() and np.array_equal(drawn, pixels.permute(1, 2, 0).numpy())


def test_a_video_with_no_track_is_drawn_as_its_frames(tmp_path: Path) -> None:
    no_tracks = Tracks(torch.zeros(0, 3, 12, 16, dtype=torch.bool), torch.zeros(0), torch.zeros(0, dtype=torch.long),
                       VOCABULARY)
    frames = [np.asarray(frame) for frame in overlays._frames(no_tracks, None, grey(12, 16, frames=3))]
    assert len(frames) == 3 and all((frame == GREY).all() for frame in frames)


def moving_tracks(frames: int, height: int, width: int) -> Tracks:
    """Track 0 moves right a pixel per frame; track 1 is absent from frame 1."""
    masks = torch.zeros(2, frames, height, width, dtype=torch.bool)
    for t in range(frames):
        masks[0, t, 4:20, t % (width - 20): t % (width - 20) + 16] = True
        if t != 1:
            masks[1, t, 24:40, 30:50] = True
    return Tracks(masks, torch.tensor([0.9, 0.6]), torch.tensor([0, 1]), VOCABULARY)


def test_a_track_keeps_its_colour_in_every_frame() -> None:
    tracks = moving_tracks(4, 48, 64)
    frames = [np.array(frame).astype(int) for frame in overlays._frames(tracks, None, grey(48, 64, frames=4))]
    assert len(frames) == 4
    for t, frame in enumerate(frames):
        assert frame[19, t + 8].tolist() == list(colour(1))  # track 0's bottom outline, where it is in frame t
        assert frame[39, 40].tolist() == ([GREY] * 3 if t == 1 else list(colour(2)))


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_video_overlay_is_an_mp4_of_every_frame(tmp_path: Path) -> None:
    path = render(TaskResult("video-instance", Path("clips/walk.mp4"), moving_tracks(7, 48, 64)), grey(48, 64, 7),
                  tmp_path)
    assert path == tmp_path / "walk.mp4"
    frames = decoded_frames(path)
    assert len(frames) == 7 and frames[0].shape == (48, 64, 3)
    # lossy (YUV 4:2:0 halves the colour resolution), but the inside of track 1 is near its tint, the background grey
    assert np.abs(frames[0][38, 45].astype(int) - blended(colour(2))).max() < 40
    assert np.abs(frames[3][46, 2].astype(int) - GREY).max() < 8


def test_odd_sizes_and_one_frame_videos_encode(tmp_path: Path) -> None:
    masks = torch.zeros(1, 1, 33, 45, dtype=torch.bool)
    masks[0, 0, 5:20, 5:20] = True
    prompts = Prompts(points=torch.tensor([[[10.0, 10.0]]]), point_labels=torch.tensor([[1]]))
    path = render(TaskResult("vos", Path("one"), PromptTracks(masks, torch.tensor([0.5])), prompts=prompts),
                  grey(33, 45, 1), tmp_path)
    frames = decoded_frames(path)
    assert len(frames) == 1 and frames[0].shape == (34, 46, 3)  # padded to even sizes for YUV 4:2:0


def test_encoder_fallbacks_mpeg4_then_gif(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tracks, pixels = moving_tracks(5, 48, 64), grey(48, 64, 5)
    monkeypatch.setattr(overlays, "VIDEO_CODECS", ("no-such-encoder", "mpeg4"))
    path = render(TaskResult("video-instance", Path("a"), tracks), pixels, tmp_path)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    assert path.suffix == ".mp4" and len(decoded_frames(path)) == 5
    monkeypatch.setattr(overlays, "VIDEO_CODECS", ("no-such-encoder",))
    path = render(TaskResult("video-instance", Path("b"), tracks), pixels, tmp_path)
    assert path == tmp_path / "b.gif"
    with Image.open(path) as gif:
        assert gif.n_frames == 5 and gif.size == (64, 48)
        gif.seek(2)
        assert np.array(gif.convert("RGB"))[38, 45].tolist() == pytest.approx(blended(colour(2)), abs=12)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.gif"]


def test_drawing_300_frames_at_256_pixels_takes_seconds_not_minutes() -> None:
    frames, side = 300, 256
    masks = torch.zeros(8, frames, side, side, dtype=torch.bool)
    for k in range(8):
        masks[k, :, 30 * k: 30 * k + 40, 20:200] = True
    tracks = Tracks(masks, torch.rand(8), torch.randint(0, 3, (8,)), VOCABULARY)
    pixels = torch.randint(0, 256, (frames, 3, side, side), dtype=torch.uint8)
    start = time.perf_counter()
    count = sum(1 for _ in overlays._frames(tracks, None, pixels))
    elapsed = time.perf_counter() - start
    assert count == frames and elapsed < 10, f"{elapsed:.1f} s"  # about 1 s here; a per-pixel loop takes minutes
