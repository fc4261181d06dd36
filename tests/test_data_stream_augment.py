"""Lazy video streaming (folders and PyAV files) and clip-consistent large-scale jitter."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from omg_data.augment import LargeScaleJitter
from omg_data.errors import DataError
from omg_data.geometry import mask_boxes_xyxy
from omg_data.image_io import save_image
from omg_data.prompts import sample_prompts
from omg_data.synthetic import ShapesWorld
from omg_data.video_stream import FrameStream, iter_clips


def write_video(path: Path, frames: torch.Tensor, codec: str = "ffv1") -> None:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height = frames.shape[-1], frames.shape[-2]
        stream.pix_fmt = "bgr0" if codec == "ffv1" else "yuv420p"
        for frame in frames:
            image = av.VideoFrame.from_ndarray(frame.permute(1, 2, 0).numpy(), format="rgb24")
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return ShapesWorld(seed=0, image_size=(32, 48)).video(0, num_frames=7).frames


def test_folder_stream_natural_order(tmp_path: Path, clip: torch.Tensor) -> None:
    for index, frame in enumerate(clip):
        save_image(frame, tmp_path / f"frame{index}.png")  # frame10 would sort before frame2 lexically
    save_image(clip[0], tmp_path / "frame10.png")
    stream = FrameStream(tmp_path)
    assert len(stream) == 8 and stream.frame_names[-1] == "frame10.png"
    frames = list(stream)
    assert all(torch.equal(a, b) for a, b in zip(frames[:7], clip, strict=True))
    assert list(stream)  # a second pass works


def test_video_file_stream_lossless(tmp_path: Path, clip: torch.Tensor) -> None:
    write_video(tmp_path / "clip.mkv", clip)  # FFV1 is lossless: frames must come back exactly
    stream = FrameStream(tmp_path / "clip.mkv")
    frames = list(stream)
    assert len(frames) == 7 and all(torch.equal(a, b) for a, b in zip(frames, clip, strict=True))
    clips = list(iter_clips(stream, 3))
    assert [c.shape[0] for c in clips] == [3, 3, 1]
    assert torch.equal(torch.cat(clips), clip)


def test_stream_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        FrameStream(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no frames"):
        FrameStream(tmp_path / "empty")
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(DataError, match=r"junk\.mp4.*cannot open video"):
        list(FrameStream(tmp_path / "junk.mp4"))
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "0001.jpg").write_bytes(b"\xff\xd8broken")
    with pytest.raises(DataError, match=r"0001\.jpg.*record frame 0.*cannot decode"):
        list(FrameStream(tmp_path / "frames"))


def test_lsj_output_and_clip_consistency() -> None:
    video = ShapesWorld(seed=1, image_size=(64, 80)).video(2, num_frames=3)
    # identical frames and masks across time: any per-frame parameter difference would show
    still = replace(
        video,
        frames=video.frames[:1].repeat(3, 1, 1, 1),
        masks=video.masks[:, :1].repeat(1, 3, 1, 1),
        ignore=video.ignore[:1].repeat(3, 1, 1),
    )
    jitter = LargeScaleJitter(output_size=(48, 48), scale_range=(0.3, 2.0))
    for seed in range(6):
        torch.manual_seed(seed)
        out = jitter(still)
        out.validate()
        assert out.frames.shape == (3, 3, 48, 48)
        assert torch.equal(out.frames[0], out.frames[1]) and torch.equal(out.frames[1], out.frames[2])
        assert torch.equal(out.masks[:, 0], out.masks[:, 2])
        coverage = out.masks[:, 0].sum(dim=0) + out.ignore[0].long()
        assert coverage.eq(1).all()  # still a partition: resize of masks is nearest, padding is ignore
        assert out.masks.flatten(1).any(dim=1).all()  # cropped-away segments were removed


def test_lsj_scale_range_and_padding() -> None:
    sample = ShapesWorld(seed=0, image_size=(100, 100)).image(0)
    torch.manual_seed(0)
    small = LargeScaleJitter(output_size=(100, 100), scale_range=(0.25, 0.25), flip_probability=0.0)(sample)
    # a quarter-size image inside a padded 100 x 100 canvas: 75% of the canvas is padding (ignore)
    valid = ~small.ignore[0]
    assert abs(valid.float().mean().item() - 0.0625) < 0.01
    assert small.frames[0][:, ~valid].eq(0).all()


def test_lsj_masks_follow_pixels_and_prompts() -> None:
    world = ShapesWorld(seed=3, image_size=(64, 64))
    sample = world.image(1)
    sample.prompts = sample_prompts(sample.masks[:, 0], 4, np.random.default_rng(0))
    jitter = LargeScaleJitter(output_size=(64, 64), scale_range=(0.8, 1.6))
    for seed in range(4):
        torch.manual_seed(seed)
        out = jitter(sample)
        # each thing's pixels keep its colour: masks were transformed with the same parameters as the image
        for mask, class_id, thing in zip(out.masks[:, 0], out.class_ids, out.is_thing, strict=True):
            if not thing or mask.sum() < 30:
                continue
            colour = torch.tensor(out.categories.by_id(int(class_id)).color, dtype=torch.float32)
            inner = (
                mask
                & torch.roll(mask, 1, 0)
                & torch.roll(mask, -1, 0)
                & torch.roll(mask, 1, 1)
                & torch.roll(mask, -1, 1)
            )
            pixels = out.frames[0][:, inner].float().T
            assert (pixels - colour).abs().mean() < 25
        prompts = out.prompts
        assert prompts.points.shape[0] == prompts.boxes.shape[0] == out.num_segments
        assert (prompts.boxes >= 0).all() and (prompts.boxes <= 64).all()  # clamped to the canvas
        # resampling (nearest masks, scaled click coordinates) moves a click by under a pixel; a mis-mapped
        # transform (wrong flip, crop offset or scale) would land it several pixels from its mask
        kept = 0
        for mask, points, labels in zip(out.masks[:, 0], prompts.points, prompts.point_labels, strict=True):
            rows, cols = mask.nonzero(as_tuple=True)
            for (x, y), label in zip(points.tolist(), labels.tolist(), strict=True):
                if label == 1:
                    kept += 1
                    distance = ((cols - x) ** 2 + (rows - y) ** 2).float().sqrt().min()
                    assert distance <= 1.5, (x, y)
        assert kept > 0


def test_lsj_flip_maps_clicks_exactly() -> None:
    sample = ShapesWorld(seed=3, image_size=(64, 64)).image(1)
    sample.prompts = sample_prompts(sample.masks[:, 0], 4, np.random.default_rng(0))
    out = LargeScaleJitter(output_size=(64, 64), scale_range=(1.0, 1.0), flip_probability=1.0)(sample)
    assert torch.equal(out.masks, sample.masks.flip(-1))
    assert torch.equal(out.prompts.points[..., 0], 63 - sample.prompts.points[..., 0])
    # box prompts travel as tv_tensors.BoundingBoxes: flipped, they are still the masks' tight boxes
    assert torch.equal(out.prompts.boxes, mask_boxes_xyxy(out.masks[:, 0]))
    for mask, points in zip(out.masks[:, 0], out.prompts.points.long(), strict=True):
        assert mask[points[:, 1], points[:, 0]].all()


def test_lsj_overlapping_masks_match_the_label_map_path() -> None:
    # instance masks may overlap (COCO, YouTube-VIS): they take the per-mask path, which must agree with the
    # single-label-map path used for partitions
    sample = ShapesWorld(seed=2, image_size=(48, 64)).video(0, num_frames=2)
    union = sample.masks[sample.is_thing].any(dim=0, keepdim=True)  # overlaps every thing
    overlapping = replace(
        sample,
        masks=torch.cat([sample.masks, union]),
        class_ids=torch.cat([sample.class_ids, sample.class_ids[:1]]),
        is_thing=torch.cat([sample.is_thing, torch.tensor([True])]),
        instance_ids=torch.cat([sample.instance_ids, torch.tensor([999])]),
        is_crowd=torch.cat([sample.is_crowd, torch.tensor([True])]),
    )
    jitter = LargeScaleJitter(output_size=(40, 40), scale_range=(0.5, 1.5))
    for seed in range(3):
        torch.manual_seed(seed)
        partition = jitter(sample)
        torch.manual_seed(seed)
        overlapped = jitter(overlapping)
        assert torch.equal(partition.frames, overlapped.frames)
        keep = overlapped.instance_ids != 999
        assert torch.equal(overlapped.masks[keep], partition.masks)
        assert torch.equal(overlapped.instance_ids[keep], partition.instance_ids)
        assert torch.equal(overlapped.masks[~keep][0], partition.masks[partition.is_thing].any(dim=0))
