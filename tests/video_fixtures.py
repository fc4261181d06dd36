"""Loading of the stored video-metric parity fixtures (videos.npz + expected.json, written by make_fixture.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

FIXTURES = Path(__file__).parent / "fixtures" / "eval"


def load_video_fixture(name: str) -> tuple[dict, list[tuple[torch.Tensor, torch.Tensor]]]:
    """(expected figures from the official tool, [(pred, gt) id maps per video]) of ``fixtures/eval/<name>``."""
    folder = FIXTURES / name
    expected = json.loads((folder / "expected.json").read_text())
    arrays = np.load(folder / "videos.npz")
    count = sum(key.startswith("gt_") for key in arrays.files)
    videos = [(torch.from_numpy(arrays[f"pred_{i}"]), torch.from_numpy(arrays[f"gt_{i}"])) for i in range(count)]
    return expected, videos
