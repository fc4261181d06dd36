"""Data-pipeline benchmarks: reading + decoding + augmenting COCO-size samples, and streaming memory.

Groups (ours / reference, measured in the same run):
  data-read-decode          read_coco_panoptic (image + panoptic PNG -> Sample with masks)
                            vs. plain PIL decode of the same image and PNG (the unavoidable I/O floor)
  data-read-decode-augment  the same reader plus LSJ to 1024 x 1024 (torchvision v2) vs. the PIL floor
  data-video-stream         lazy FrameStream over a 300-frame video vs. a naive eager reader that decodes
                            every frame into a list first; also records peak RSS of reading
                            300 vs. 30 frames in fresh subprocesses (must stay within 1.1x)
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from pytest_benchmark.fixture import BenchmarkFixture

from omg_data.augment import LargeScaleJitter
from omg_data.coco_panoptic import read_coco_panoptic
from omg_data.synthetic import ShapesWorld
from omg_data.video_stream import FrameStream

COCO_SIZE = (480, 640)
NUM_IMAGES = 6
VIDEO_FRAMES = 300


@pytest.fixture(scope="module")
def coco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("coco")
    ShapesWorld(seed=0, image_size=COCO_SIZE).write_dataset("coco-panoptic", root, NUM_IMAGES)
    return root


def read_ours(root: Path) -> list:
    return list(read_coco_panoptic(root / "panoptic.json", root / "panoptic", root / "images"))


def read_pil(root: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    pairs = []
    for image in sorted((root / "images").glob("*.jpg")):
        pixels = np.asarray(Image.open(image).convert("RGB"))
        png = np.asarray(Image.open(root / "panoptic" / f"{image.stem}.png").convert("RGB"))
        pairs.append((pixels, png))
    return pairs


def check_agree(root: Path) -> None:
    ours, floor = read_ours(root), read_pil(root)
    assert len(ours) == len(floor) == NUM_IMAGES
    for sample, (pixels, png) in zip(ours, floor, strict=True):
        assert np.array_equal(sample.image.permute(1, 2, 0).numpy(), pixels)
        png = png.astype(np.int64)
        ids = png[..., 0] + 256 * png[..., 1] + 65536 * png[..., 2]
        painted = (sample.masks[:, 0].long() * sample.instance_ids[:, None, None]).sum(0).numpy()
        assert np.array_equal(painted, ids)


@pytest.mark.benchmark(group="data-read-decode")
def test_read_decode_ours(benchmark: BenchmarkFixture, coco: Path) -> None:
    check_agree(coco)
    samples = benchmark.pedantic(read_ours, args=(coco,), rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(
        role="ours",
        variant="read_coco_panoptic",
        images=len(samples),
        samples_per_s=len(samples) / benchmark.stats.stats.mean,
        size=list(COCO_SIZE),
    )


@pytest.mark.benchmark(group="data-read-decode")
def test_read_decode_reference(benchmark: BenchmarkFixture, coco: Path) -> None:
    pairs = benchmark.pedantic(read_pil, args=(coco,), rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(
        role="reference",
        reference="plain PIL decode of image + panoptic PNG, no masks",
        samples_per_s=len(pairs) / benchmark.stats.stats.mean,
    )


@pytest.mark.benchmark(group="data-read-decode-augment")
def test_read_decode_augment_ours(benchmark: BenchmarkFixture, coco: Path) -> None:
    check_agree(coco)
    jitter = LargeScaleJitter(output_size=(1024, 1024), scale_range=(0.1, 2.0))

    def run() -> list:
        torch.manual_seed(0)
        return [
            jitter(sample) for sample in read_coco_panoptic(coco / "panoptic.json", coco / "panoptic", coco / "images")
        ]

    # one intra-op thread, as inside a DataLoader worker (PyTorch sets that there); restored afterwards
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        samples = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    finally:
        torch.set_num_threads(threads)
    assert all(s.frames.shape[-2:] == (1024, 1024) for s in samples)
    benchmark.extra_info.update(
        role="ours",
        variant="read_coco_panoptic + LSJ 1024 (tv2)",
        samples_per_s=len(samples) / benchmark.stats.stats.mean,
        torch_threads=1,
    )


@pytest.mark.benchmark(group="data-read-decode-augment")
def test_read_decode_augment_reference(benchmark: BenchmarkFixture, coco: Path) -> None:
    pairs = benchmark.pedantic(read_pil, args=(coco,), rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(
        role="reference",
        reference="plain PIL decode of image + panoptic PNG, no augmentation",
        samples_per_s=len(pairs) / benchmark.stats.stats.mean,
    )


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    clip = ShapesWorld(seed=0, image_size=COCO_SIZE).video(0, num_frames=10).frames
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = COCO_SIZE[1], COCO_SIZE[0], "yuv420p"
        for index in range(VIDEO_FRAMES):
            frame = av.VideoFrame.from_ndarray(clip[index % 10].permute(1, 2, 0).numpy(), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def consume_lazy(path: Path) -> tuple[int, float]:
    count, total = 0, 0.0
    for frame in FrameStream(path):
        total += float(frame[0, ::64, ::64].float().mean())  # touch each frame like a consumer would
        count += 1
    return count, total


def consume_eager(path: Path) -> tuple[int, float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # same decoder settings as FrameStream: only retention differs
        # every frame kept (as the same 3 x H x W views FrameStream yields), none copied into one tensor:
        # the difference to the lazy stream is retention, not an extra copy
        frames = [torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1) for f in container.decode(stream)]
    total = sum(float(frame[0, ::64, ::64].float().mean()) for frame in frames)
    return len(frames), total


# VmHWM (the peak RSS of this address space) rather than ru_maxrss: after fork + exec, ru_maxrss still
# carries the forking pytest process's peak, which would hide the child's own growth.
_RSS_SCRIPT = textwrap.dedent("""
    import re, sys
    import torch
    from omg_data.video_stream import FrameStream

    def peak_kib():
        with open("/proc/self/status") as status:
            return int(re.search(r"VmHWM:\\s+(\\d+)", status.read()).group(1))

    limit = int(sys.argv[2])
    stream = FrameStream(sys.argv[1])
    baseline = peak_kib()  # interpreter + torch + PyAV
    for index, frame in enumerate(stream):
        frame.float().mean()
        if index + 1 == limit:
            break
    print(baseline, peak_kib())
""")


def peak_rss_kib(path: Path, frames: int) -> tuple[int, int]:
    """(peak RSS after imports, peak RSS after reading `frames` frames) of a fresh process, in KiB."""
    result = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(path), str(frames)], check=True, capture_output=True, text=True
    )
    baseline, peak = result.stdout.strip().splitlines()[-1].split()
    return int(baseline), int(peak)


@pytest.mark.benchmark(group="data-video-stream")
def test_video_stream_ours(benchmark: BenchmarkFixture, video: Path) -> None:
    lazy, eager = consume_lazy(video), consume_eager(video)
    assert lazy[0] == eager[0] == VIDEO_FRAMES and abs(lazy[1] - eager[1]) < 1e-3
    (base_30, rss_30), (base_300, rss_300) = peak_rss_kib(video, 30), peak_rss_kib(video, 300)
    ratio = rss_300 / rss_30
    # what 300 retained frames would add (~264 MiB) is well above 10% of the ~0.55 GiB baseline
    frames_bytes_kib = VIDEO_FRAMES * COCO_SIZE[0] * COCO_SIZE[1] * 3 // 1024
    benchmark.pedantic(consume_lazy, args=(video,), rounds=2, iterations=1)
    benchmark.extra_info.update(
        role="ours",
        variant="lazy FrameStream (PyAV)",
        frames=VIDEO_FRAMES,
        size=list(COCO_SIZE),
        rss_after_import_kib=base_30,
        growth_30_kib=rss_30 - base_30,
        growth_300_kib=rss_300 - base_300,
        retained_300_frames_would_add_kib=frames_bytes_kib,
        peak_rss_30_kib=rss_30,
        peak_rss_300_kib=rss_300,
        rss_ratio_300_vs_30=ratio,
    )
    assert ratio <= 1.1, f"peak RSS grew {ratio:.2f}x from 30 to 300 frames: frames are being retained"


@pytest.mark.benchmark(group="data-video-stream")
def test_video_stream_reference(benchmark: BenchmarkFixture, video: Path) -> None:
    benchmark.pedantic(consume_eager, args=(video,), rounds=2, iterations=1)
    benchmark.extra_info.update(
        role="reference", reference="naive eager reader: decode all frames into a list, then consume"
    )
