"""``omg run --video-mode stream``: peak memory must not grow with the video's length.

Group ``video-stream-run`` (ours / reference, same run): ``omg run --task video-instance`` (omg-tiny, 120 x 160
frames, YouTube-VIS JSON) on a 300-frame video file, streamed (ours) and offline (reference). Each mode's peak RSS is
measured in fresh processes on the first 30 and on all 300 frames of the same file; the issue's target is a streamed
300-frame peak within 1.1x of the 30-frame one (asserted here, as the data-stream benchmark does). The offline
figures show the growth streaming removes (the whole video's frames, mask logits and per-track masks are kept).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from pytest_benchmark.fixture import BenchmarkFixture

from omg_data.synthetic import ShapesWorld

FRAMES = 300
SIZE = (120, 160)

# VmHWM (the peak RSS of this address space), measured after the model is built and after the run
_RUN_SCRIPT = textwrap.dedent("""
    import re, sys, warnings
    warnings.simplefilter("ignore")
    from pathlib import Path
    from omg_core.config import RunConfig
    from omg_core.pipeline import run_task, default_predictor_factory
    from omg_core.registry import discover_tasks

    def peak_kib():
        with open("/proc/self/status") as status:
            return int(re.search(r"VmHWM:\\s+(\\d+)", status.read()).group(1))

    video, output, mode, weights = sys.argv[1:5]
    config = RunConfig.model_validate({"task": {"name": "video-instance"}, "input": video, "output": output,
                                       "video_mode": mode, "model": {"weights": weights}})
    registry = discover_tasks()
    built = []
    def factory(model_config):
        predictor = default_predictor_factory(model_config)
        built.append(peak_kib())
        return predictor
    run_task(config, registry, predictor_factory=factory)
    print(built[0], peak_kib())
""")


def _write_video(path: Path, frames: int) -> Path:
    """A shapes-world video (things move through the frames) as MPEG-4."""
    world = ShapesWorld(seed=5, image_size=SIZE)
    clip = world.video(0, num_frames=frames).frames  # T x 3 x H x W
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = SIZE[1], SIZE[0], "yuv420p"
        for frame in clip:
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame.permute(1, 2, 0).numpy()), format="rgb24")
            container.mux(stream.encode(picture))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from omg_core.model.build import create_model
    from omg_core.weights.io import save_weights

    root = tmp_path_factory.mktemp("stream")
    torch.manual_seed(0)
    save_weights(create_model("omg-tiny"), root / "tiny.safetensors")
    return {"long": _write_video(root / "long.mp4", FRAMES), "short": _write_video(root / "short.mp4", 30),
            "weights": root / "tiny.safetensors", "root": root}


def peak_rss(inputs: dict[str, Path], video: str, mode: str) -> tuple[int, int, float]:
    """(peak RSS once the model is built, peak RSS at the end, seconds) of one fresh ``omg run``, in KiB."""
    output = inputs["root"] / f"out-{video}-{mode}-{time.monotonic_ns()}"
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", _RUN_SCRIPT, str(inputs[video]), str(output), mode,
                             str(inputs["weights"])], check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    built, peak = result.stdout.strip().splitlines()[-1].split()
    tracks = json.loads((output / "results.json").read_text())
    assert tracks and len(tracks[0]["segmentations"]) == (FRAMES if video == "long" else 30)
    return int(built), int(peak), seconds


def _run(inputs: dict[str, Path], mode: str) -> None:
    peak_rss(inputs, "short", mode)


@pytest.mark.benchmark(group="video-stream-run")
def test_stream_run_ours(benchmark: BenchmarkFixture, inputs: dict[str, Path]) -> None:
    built_30, peak_30, _ = peak_rss(inputs, "short", "stream")
    built_300, peak_300, seconds_300 = peak_rss(inputs, "long", "stream")
    ratio = peak_300 / peak_30
    benchmark.pedantic(_run, args=(inputs, "stream"), rounds=1, iterations=1)
    benchmark.extra_info.update(role="ours", variant="stream", peak_rss_30_kib=peak_30, peak_rss_300_kib=peak_300,
                                growth_30_kib=peak_30 - built_30, growth_300_kib=peak_300 - built_300,
                                rss_ratio_300_vs_30=ratio, seconds_300_frames=seconds_300)
    assert ratio <= 1.1, f"streamed peak RSS grew {ratio:.2f}x from 30 to 300 frames"


@pytest.mark.benchmark(group="video-stream-run")
def test_stream_run_reference(benchmark: BenchmarkFixture, inputs: dict[str, Path]) -> None:
    built_30, peak_30, _ = peak_rss(inputs, "short", "offline")
    built_300, peak_300, seconds_300 = peak_rss(inputs, "long", "offline")
    benchmark.pedantic(_run, args=(inputs, "offline"), rounds=1, iterations=1)
    benchmark.extra_info.update(role="reference", variant="offline", peak_rss_30_kib=peak_30,
                                peak_rss_300_kib=peak_300, growth_30_kib=peak_30 - built_30,
                                growth_300_kib=peak_300 - built_300, rss_ratio_300_vs_30=peak_300 / peak_30,
                                seconds_300_frames=seconds_300)
