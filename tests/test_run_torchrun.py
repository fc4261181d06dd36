"""`omg run` under torchrun (2 gloo ranks): each rank runs its share of the inputs and writes its samples' files, rank
0 gathers the records and writes the JSON files; the whole output equals a single process's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from omg_core.model import create_model
from omg_core.weights import save_weights


def _inputs(root: Path) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(0)
    images = root / "images"
    images.mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(images / f"{name}.png")
    videos = root / "videos"
    for clip in ("v1", "v2", "v3"):
        (videos / clip).mkdir(parents=True)
        for frame in range(3):
            Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(videos / clip / f"{frame:05d}.jpg")
    torch.manual_seed(4)
    model = create_model("omg-tiny")
    with torch.no_grad():  # sharper random masks: several segments and tracks, so the merge has work to do
        model.transformer_decoder.mask_embed[-1].weight.mul_(30)
    weights = save_weights(model, root / "tiny.safetensors")
    return images, videos, weights


def _run(args: list[str], ranks: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
                if ranks > 1 else [sys.executable])
    completed = subprocess.run([*launcher, "-m", "omg_core.cli", "run", *args], env=env, capture_output=True,
                               text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


def _files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize(("task", "kind", "gathered"), [("panoptic", "images", "panoptic.json"),
                                                         ("video-instance", "videos", "results.json")])
def test_two_ranks_write_what_one_process_writes(tmp_path: Path, task: str, kind: str, gathered: str) -> None:
    images, videos, weights = _inputs(tmp_path)
    source = images if kind == "images" else videos
    common = ["--task", task, "--input", str(source), "--weights", str(weights), "--json"]
    alone = _run([*common, "--output", str(tmp_path / "alone")], ranks=1)
    sharded = _run([*common, "--output", str(tmp_path / "sharded")], ranks=2)
    single_files, sharded_files = _files(tmp_path / "alone"), _files(tmp_path / "sharded")
    assert sorted(single_files) == sorted(sharded_files)
    assert json.loads(sharded_files[gathered]) == json.loads(single_files[gathered])
    assert sharded_files == single_files
    summary = json.loads(sharded.stdout[sharded.stdout.index("{"):])  # rank 0 reports the whole run
    assert summary["samples"] == 3 and summary["succeeded"] == 3
    assert json.loads(alone.stdout[alone.stdout.index("{"):])["samples"] == 3
    gathered_json = json.loads(single_files[gathered])
    if task == "panoptic":
        assert [image["file_name"] for image in gathered_json["images"]] == ["a.png", "b.png", "c.png"]
    else:
        assert sorted({track["video_id"] for track in gathered_json}) == [1, 2, 3]
