"""What `omg run --input` accepts (image / video / dataset layouts) and how each bad input or prompt file is reported:
one line naming the file and the fix, before any model is built."""

from __future__ import annotations

import json
import math
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from omg_core.errors import InputError
from omg_core.run_inputs import (
    IMAGE_SUFFIXES,
    InputSource,
    check_prompts_fit,
    check_source,
    frame_names,
    iter_frames,
    plan_inputs,
    read_image,
    read_prompts,
    source_size,
)
from omg_data.video_stream import FRAME_SUFFIXES, count_frames

HEIGHT, WIDTH = 24, 32


def frame_pixels(index: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """H x W x 3 uint8, a different flat colour per index, so frame order shows after lossy coding."""
    return np.full((height, width, 3), (index * 20) % 256, np.uint8)


def write_image(path: Path, index: int = 0, height: int = HEIGHT, width: int = WIDTH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame_pixels(index, height, width)).save(path)
    return path


def write_frames(folder: Path, count: int, names: list[str] | None = None) -> Path:
    for index, name in enumerate(names or [f"{i:05d}.jpg" for i in range(count)]):
        write_image(folder / name, index)
    return folder


def write_video(path: Path, count: int = 6, codec: str = "mpeg4", faststart: bool = False) -> Path:
    """An MP4 of ``count`` frames; ``faststart`` puts the index first, so a cut-short file still opens."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=options) as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        container.start_encoding()
        for index in range(count):
            noise = np.random.default_rng(index).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)  # ~incompressible
            for packet in stream.encode(av.VideoFrame.from_ndarray(noise, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def truncate(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


# ------------------------------------------------------------------------------------------------ accepted shapes


def test_image_file_and_image_folder(tmp_path: Path) -> None:
    image = write_image(tmp_path / "one" / "cat.png")
    assert plan_inputs(image, "image") == [InputSource(image, "image", "cat")]
    folder = tmp_path / "many"
    for name in ("b.jpg", "a.png", "c.webp"):
        write_image(folder / name)
    (folder / "._a.png").write_bytes(b"macOS resource fork")  # hidden: skipped
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub").mkdir()
    write_image(folder / "sub" / "deep.png")  # subfolders are not searched
    sources = plan_inputs(folder, "image")
    assert [(s.path.name, s.name, s.modality) for s in sources] == [
        ("a.png", "a", "image"),
        ("b.jpg", "b", "image"),
        ("c.webp", "c", "image"),
    ]


def test_video_file_and_frame_folder(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4")
    assert plan_inputs(video, "video") == [InputSource(video, "video", "clip")]
    frames = write_frames(tmp_path / "walk", 0, ["frame10.jpg", "frame9.jpg", "frame0.jpg"])
    (source,) = plan_inputs(frames, "video")
    assert source.path == frames and source.name == "walk"
    assert frame_names(source) == ("frame0", "frame9", "frame10")  # play order: numbers compared as numbers
    decoded = list(iter_frames(source))
    assert len(decoded) == 3 and [int(frame[0, 0, 0]) for frame in decoded] == [40, 20, 0]  # frame0 was written third


def test_folder_of_videos_is_one_clip_per_video(tmp_path: Path) -> None:
    for name in ("b.mp4", "a.mp4"):
        write_video(tmp_path / "videos" / name, count=2)
    (tmp_path / "videos" / "README.md").write_text("ignored")
    sources = plan_inputs(tmp_path / "videos", "video")
    assert [(s.path.name, s.name) for s in sources] == [("a.mp4", "a"), ("b.mp4", "b")]


def test_youtube_vis_split_folder(tmp_path: Path) -> None:
    split = tmp_path / "valid"
    for video in ("0b6db1c6fd", "00f88c4f0a", "0a7a2514aa"):
        write_frames(split / "JPEGImages" / video, 2)
    (split / "instances.json").write_text("{}")
    expected = ["00f88c4f0a", "0a7a2514aa", "0b6db1c6fd"]
    for given in (split, split / "JPEGImages"):
        sources = plan_inputs(given, "video")
        assert [s.name for s in sources] == expected
        assert all(s.path == split / "JPEGImages" / s.name for s in sources)


def test_davis_root_jpegimages_or_480p(tmp_path: Path) -> None:
    root = tmp_path / "DAVIS"
    for video in ("dog", "bmx-trees"):
        write_frames(root / "JPEGImages" / "480p" / video, 2)
        write_frames(root / "Annotations" / "480p" / video, 1, ["00000.png"])  # masks: never clips
    (root / "ImageSets" / "2017").mkdir(parents=True)
    for given in (root, root / "JPEGImages", root / "JPEGImages" / "480p"):
        sources = plan_inputs(given, "video")
        assert [s.path for s in sources] == [root / "JPEGImages" / "480p" / v for v in ("bmx-trees", "dog")], given


def test_folder_of_frame_folders_and_videos(tmp_path: Path) -> None:
    root = tmp_path / "clips"
    write_frames(root / "b_frames", 2)
    write_video(root / "a.mp4", count=2)
    write_video(root / "c.mp4", count=2)
    write_frames(root / "480p", 1)  # a clip named like a DAVIS resolution folder, outside JPEGImages
    (root / "empty_folder").mkdir()  # holds no frames: not a clip
    sources = plan_inputs(root, "video")
    assert [s.name for s in sources] == ["480p", "a", "b_frames", "c"]
    assert [s.path.is_dir() for s in sources] == [True, False, True, False]


def test_folder_with_frames_is_one_clip_whatever_else_it_holds(tmp_path: Path) -> None:
    folder = write_frames(tmp_path / "clip", 3)
    write_frames(folder / "nested", 2)
    write_video(folder / "extra.mp4", count=2)
    (source,) = plan_inputs(folder, "video")
    assert source.path == folder
    assert len(list(iter_frames(source))) == 3 and frame_names(source) == ("00000", "00001", "00002")


def test_frame_folders_and_image_folders_take_the_same_suffixes() -> None:
    # plan_inputs decides a folder is a clip by IMAGE_SUFFIXES; FrameStream then reads the FRAME_SUFFIXES files
    assert set(FRAME_SUFFIXES) == IMAGE_SUFFIXES


def test_video_file_frame_names_count_decoded_frames(tmp_path: Path) -> None:
    (source,) = plan_inputs(write_video(tmp_path / "clip.mp4", count=4), "video")
    assert frame_names(source) == ("00000", "00001", "00002", "00003")
    assert frame_names(source, num_frames=2) == ("00000", "00001")
    assert count_frames(source.path) == 4 and count_frames(write_frames(tmp_path / "f", 3)) == 3


def test_good_inputs_pass_the_checks_and_report_their_size(tmp_path: Path) -> None:
    image = write_image(tmp_path / "a.png", height=10, width=7)
    frames = write_frames(tmp_path / "frames", 3)
    video = write_video(tmp_path / "clip.mp4")
    for source, size in (
        (InputSource(image, "image"), (10, 7)),
        (InputSource(frames, "video"), (HEIGHT, WIDTH)),
        (InputSource(video, "video"), (HEIGHT, WIDTH)),
    ):
        assert check_source(source) is None, source
        assert source_size(source) == size
    grey = tmp_path / "grey.png"
    Image.fromarray(np.zeros((5, 6), np.uint8), mode="L").save(grey)
    assert check_source(InputSource(grey, "image")) is None


# ----------------------------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("layout", "modality", "words"),
    [
        ("missing", "video", ["no such file or folder"]),
        ("empty_folder", "video", ["holds no frames", "JPEGImages"]),
        ("text_only_folder", "video", ["holds no frames"]),
        ("empty_folder", "image", ["holds no images"]),
        ("folder_of_folders", "image", ["holds no images", "subfolders are not searched"]),
        ("image_for_video", "video", ["single image, but this is a video task"]),
        ("video_for_image", "image", ["is a video, but this is an image task"]),
        ("duplicate_images", "image", ["a.jpg and a.png", "rename"]),
        ("duplicate_clips", "video", ["a and a.mp4", "rename"]),
    ],
)
def test_unusable_input_paths(tmp_path: Path, layout: str, modality: str, words: list[str]) -> None:
    given = tmp_path / layout
    if layout in ("empty_folder", "text_only_folder", "folder_of_folders", "duplicate_images", "duplicate_clips"):
        given.mkdir()
    if layout == "text_only_folder":
        (given / "notes.txt").write_text("x")
    elif layout == "folder_of_folders":
        write_frames(given / "video1", 1)
    elif layout == "image_for_video":
        given = write_image(tmp_path / "a.png")
    elif layout == "video_for_image":
        given = tmp_path / "a.mp4"
        given.write_bytes(b"")
    elif layout == "duplicate_images":
        write_image(given / "a.png")
        write_image(given / "a.jpg")
    elif layout == "duplicate_clips":
        write_video(given / "a.mp4", count=1)
        write_frames(given / "a", 1)
    with pytest.raises(InputError) as caught:
        plan_inputs(given, modality)
    message = str(caught.value)
    assert "\n" not in message and str(given) in message
    for word in words:
        assert word in message


def test_text_file_named_png_is_not_an_image(tmp_path: Path) -> None:
    fake = tmp_path / "a.png"
    fake.write_text("hello, I am text")
    assert check_source(InputSource(fake, "image")) == (
        "a.png: not an image (cannot identify image file); replace it or move it away"
    )
    with pytest.raises(InputError, match="a.png"):
        source_size(InputSource(fake, "image"))
    with pytest.raises(InputError, match="a.png"):  # decoding it is an InputError too, so `omg run` skips it alone
        read_image(fake)


def test_bad_frame_folders(tmp_path: Path) -> None:
    mixed = write_frames(tmp_path / "mixed", 3)
    write_image(mixed / "00003.jpg", height=HEIGHT + 2)
    reason = check_source(InputSource(mixed, "video"))
    assert reason is not None and reason.startswith("mixed/00003.jpg:")
    assert f"{WIDTH}x{HEIGHT + 2}" in reason and "00000.jpg" in reason and "one size" in reason
    broken = write_frames(tmp_path / "broken", 2)
    (broken / "00001.jpg").write_text("not a jpeg")
    assert check_source(InputSource(broken, "video")) == (
        "broken/00001.jpg: not an image (cannot identify image file); replace it or move it away"
    )
    with pytest.raises(InputError, match=r"00001\.jpg.*frame 1"):
        list(iter_frames(InputSource(broken, "video")))


def test_unreadable_and_empty_video_files(tmp_path: Path) -> None:
    junk = tmp_path / "clip.mp4"
    junk.write_bytes(b"definitely not a video" * 20)
    reason = check_source(InputSource(junk, "video"))
    assert reason is not None and reason.startswith("clip.mp4: not a readable video (")
    assert "\n" not in reason and str(tmp_path) not in reason  # the file is named once, by its name
    with pytest.raises(InputError, match=r"clip\.mp4.*cannot open video"):
        list(iter_frames(InputSource(junk, "video")))
    with pytest.raises(InputError, match=r"clip\.mp4"):
        count_frames(junk)

    empty = tmp_path / "empty.mp4"
    with av.open(str(empty), mode="w") as container:  # header, no frames
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        container.start_encoding()
    reason = check_source(InputSource(empty, "video"))
    assert reason is not None and reason.startswith("empty.mp4: the video has no frames")
    with pytest.raises(InputError, match=r"empty\.mp4.*has no frames"):
        list(iter_frames(InputSource(empty, "video")))


def test_truncated_video_names_the_file_and_the_frame(tmp_path: Path) -> None:
    video = truncate(write_video(tmp_path / "cut.mp4", count=10, codec="libx264", faststart=True), 0.6)
    source = InputSource(video, "video")
    assert check_source(source) is None  # the header and the first frame are fine: only decoding finds the cut
    decoded: list[torch.Tensor] = []
    with pytest.raises(InputError) as caught:
        for frame in iter_frames(source):  # frames arrive one by one until the cut
            decoded.append(frame)
    message = str(caught.value)
    assert 0 < len(decoded) < 10
    assert "cut.mp4" in message and f"frame {len(decoded)}" in message and "truncated" in message
    assert "\n" not in message


def test_silently_truncated_mp4_is_caught_by_its_frame_count(tmp_path: Path) -> None:
    # MPEG-4 part 2 in MP4 ends quietly where the file was cut (no decoding error); the sample table lists every frame
    video = truncate(write_video(tmp_path / "cut.mp4", count=10, codec="mpeg4", faststart=True), 0.5)
    decoded: list[torch.Tensor] = []
    with pytest.raises(InputError, match=r"cut\.mp4.*truncated.*of the 10 frames") as caught:
        for frame in iter_frames(InputSource(video, "video")):
            decoded.append(frame)
    assert 0 < len(decoded) < 10 and f"frame {len(decoded)}" in str(caught.value)


# -------------------------------------------------------------------------------------------------------- prompts


def write_prompts(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "prompts.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_good_prompts_fit(tmp_path: Path) -> None:
    path = write_prompts(
        tmp_path,
        {
            "points": [[[0, 0], [WIDTH, HEIGHT]], [[5.5, 6], [-50, 900]]],  # the -1 padding point may lie anywhere
            "point_labels": [[1, 0], [1, -1]],
            "boxes": [[0, 0, WIDTH, HEIGHT], [1, 2, 3, 4]],
        },
    )
    prompts = read_prompts(path)
    assert prompts.points.shape == (2, 2, 2) and prompts.boxes.shape == (2, 4)
    assert torch.equal(prompts.point_labels, torch.tensor([[1, 0], [1, -1]]))
    check_prompts_fit(prompts, HEIGHT, WIDTH, "a.png", path)  # corners on the border are inside
    bare = read_prompts(write_prompts(tmp_path, {"points": [[[3, 4], [5, 6]]]}))
    assert torch.equal(bare.point_labels, torch.tensor([[1, 1]]))  # bare points are positive clicks
    boxes_only = read_prompts(write_prompts(tmp_path, {"points": [], "boxes": [[1, 2, 3, 4]]}))
    assert boxes_only.kinds == ("boxes",)


@pytest.mark.parametrize(
    ("prompts", "words"),
    [
        ({"points": [[[WIDTH + 1, 3]]]}, ["prompt 1 point 1", f"x={WIDTH + 1}", f"{WIDTH}x{HEIGHT}", "a.png"]),
        ({"points": [[[1, 1]], [[2, -0.5]]]}, ["prompt 2 point 1", "y=-0.5", f"y in [0, {HEIGHT}]"]),
        ({"boxes": [[0, 0, 10, 10], [2, 2, WIDTH, HEIGHT + 5]]}, ["box 2", "outside the image", f"{WIDTH}x{HEIGHT}"]),
    ],
)
def test_prompts_outside_the_image(tmp_path: Path, prompts: dict, words: list[str]) -> None:
    path = write_prompts(tmp_path, prompts)
    with pytest.raises(InputError) as caught:
        check_prompts_fit(read_prompts(path), HEIGHT, WIDTH, "a.png", path)
    message = str(caught.value)
    assert message.startswith(f"--prompts {path}:") and "\n" not in message
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("", ["the file is empty"]),
        ("   \n", ["the file is empty"]),
        ("{not json", ["not valid JSON"]),
        ({}, ["holds no prompts"]),
        ({"points": []}, ["holds no prompts"]),
        ({"point_labels": [[1]]}, ["point_labels without points"]),
        ({"points": [[[1, 2], [3, 4]], [[5, 6]]]}, ["prompt 2 has 1 point, prompt 1 has 2", "pad shorter ones", "-1"]),
        ({"points": [[[1, 2]]], "point_labels": [[2]]}, ["prompt 1 point 1 has label 2", "1 (positive click)"]),
        ({"points": [[[1, 2], [3, 4]]], "point_labels": [[1, "0"]]}, ['prompt 1 point 2 has label "0"']),
        ({"points": [[[1, 2]]], "point_labels": [[True]]}, ["has label true"]),
        ({"points": [[[1, 2], [3, 4]]], "point_labels": [[1]]}, ["prompt 1 has 2 points but 1 labels", "shape"]),
        ({"points": [[[1, 2]]], "point_labels": [[1], [1]]}, ["point_labels has 2 entries", "points has 1 prompt"]),
        ({"points": [[[1, 2]]], "point_labels": [[-1]]}, ["prompt 1 has only padding points"]),
        ({"points": [[["a", 2]]]}, ['prompt 1 point 1 x is "a", not a number']),
        ({"points": [[[1, None]]]}, ["prompt 1 point 1 y is null, not a number"]),
        ({"points": [[[1, 2, 3]]]}, ["prompt 1 point 1 is [1, 2, 3]", "a point is [x, y]"]),
        ({"points": [[1, 2]]}, ["[[[x, y]]]"]),
        ({"points": [[]]}, ["prompt 1 has no points"]),
        ('{"points": [[[NaN, 2]]]}', ["prompt 1 point 1 x is nan", "finite"]),
        ('{"boxes": [[0, 0, Infinity, 5]]}', ["box 1 x1 is inf", "finite"]),
        ({"boxes": [[5, 0, 5, 4]]}, ["box 1 [5, 0, 5, 4]", "x1 > x0"]),
        ({"boxes": [[0, 0, 1]]}, ["box 1 is [0, 0, 1]", "boxes must be (N, 4)"]),
        ({"boxes": [0, 0, 1, 1]}, ["one box is [[x0, y0, x1, y1]]"]),
        ({"points": [[[1, 2]]], "boxes": [[0, 0, 1, 1], [0, 0, 2, 2]]}, ["same number of prompts"]),
        ({"clicks": [[[1, 2]]]}, ["unknown key", "clicks"]),
        ([[[1, 2]]], ["expected an object"]),
    ],
)
def test_bad_prompt_files(tmp_path: Path, content: object, words: list[str]) -> None:
    path = write_prompts(tmp_path, content)
    with pytest.raises(InputError) as caught:
        read_prompts(path)
    message = str(caught.value)
    assert message.startswith(f"--prompts {path}:") and "\n" not in message
    for word in words:
        assert word in message


def test_prompts_built_in_code_are_checked_too() -> None:
    from omg_core.task_io import Prompts

    bad_label = Prompts(points=torch.tensor([[[1.0, 1.0]]]), point_labels=torch.tensor([[3]]))
    with pytest.raises(InputError, match=r"^prompts: prompt 1 point 1 has label 3"):
        check_prompts_fit(bad_label, HEIGHT, WIDTH, "frame")
    not_finite = Prompts(points=torch.tensor([[[math.nan, 1.0]]]), point_labels=torch.tensor([[1]]))
    with pytest.raises(InputError, match="outside the image"):
        check_prompts_fit(not_finite, HEIGHT, WIDTH, "frame")
    flipped = Prompts(boxes=torch.tensor([[4.0, 4.0, 2.0, 8.0]]))
    with pytest.raises(InputError, match=r"box 1 \[4, 4, 2, 8\] needs x1 > x0"):
        check_prompts_fit(flipped, HEIGHT, WIDTH, "frame")


def test_an_image_too_large_to_decode_safely_fails_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow's decompression-bomb guard raises an error that is no OSError: it must fail its file, not the run."""
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4,096 pixels > 2 x 1,000: Pillow refuses to decode it
    assert check_source(InputSource(tmp_path / "huge.png", "image")).startswith(
        "huge.png: too large to decode safely (Image size (4096 pixels) exceeds limit")
    with pytest.raises(InputError, match="too large to decode safely"):
        read_image(tmp_path / "huge.png")


@pytest.mark.parametrize(
    ("mode", "values"),
    [("I;16", np.array([0, 1024, 32768, 65535], np.uint16)), ("F", np.array([0.0, 0.25, 0.5, 1.0], np.float32)),
     ("I", np.array([0, 1024, 32768, 65535], np.int32))],
)
def test_images_of_more_than_8_bits_keep_their_brightness(tmp_path: Path, mode: str, values: np.ndarray) -> None:
    """PIL's convert("RGB") clips them (16-bit to white, 0..1 floats to black); they are scaled to 8 bits instead."""
    path = tmp_path / ("image.png" if mode == "I;16" else "image.tif")
    Image.fromarray(np.tile(values, (2, 1))).save(path)  # uint16: I;16, int32: I, float32: F
    assert Image.open(path).mode == mode
    pixels = read_image(path)
    expected = [0, 4, 128, 255] if mode != "F" else [0, 64, 128, 255]
    assert pixels.shape == (3, 2, 4) and pixels[:, 0].tolist() == [expected] * 3


def test_exif_rotated_photos_are_read_upright_as_a_viewer_shows_them(tmp_path: Path) -> None:
    """Orientation 6 (stored 128 wide x 96 high, shown rotated 90 degrees clockwise): results, overlays and prompt
    checks all use the upright 96 x 128 picture the user sees, as mmcv's cv2 reader does."""
    stored = np.zeros((96, 128, 3), np.uint8)
    stored[:10, :20] = 255  # top-left as stored: top-right once upright
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    image.save(path, exif=exif.tobytes(), quality=95)
    pixels = read_image(path)
    assert pixels.shape == (3, 128, 96) and source_size(InputSource(path, "image")) == (128, 96)
    assert pixels[:, :8, -8:].float().mean() > 200 and pixels[:, :8, :8].float().mean() < 50
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"points": [[[90, 120]]]}))  # inside the upright 96 x 128 picture only
    check_prompts_fit(read_prompts(prompts), *source_size(InputSource(path, "image")), path.name, prompts)
