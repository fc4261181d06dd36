"""`omg eval` under torchrun: two ranks each score a share of the files and the synced figures equal one process."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def write_inputs(root: Path) -> None:
    rng = np.random.default_rng(7)
    for index in range(5):  # odd count: the two ranks get different shares
        gt = rng.integers(0, 4, size=(8, 9)).astype(np.uint8)
        gt[0, :3] = 255
        pred = np.where(rng.random(gt.shape) < 0.6, gt, rng.integers(0, 4, size=gt.shape)).astype(np.uint8)
        pred[gt == 255] = 1  # predictions name a class at every pixel
        for kind, labels in (("gt", gt), ("pred", pred)):
            (root / kind / "semantic").mkdir(parents=True, exist_ok=True)
            Image.fromarray(labels).save(root / kind / "semantic" / f"{index}.png")
    (root / "pred" / "interactive").mkdir(parents=True)
    objects = [{"click_ious": rng.uniform(0.3, 1.0, size=int(n)).tolist(), "box_iou": float(rng.uniform())}
               for n in rng.integers(1, 6, size=7)]
    (root / "pred" / "interactive" / "results.json").write_text(json.dumps({"objects": objects}))


def close(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=0, abs_tol=1e-12)
    return a == b


def eval_alone_and_on_two_ranks(
    predictions: Path, ground_truth: Path, out_dir: Path
) -> tuple[dict, dict, list[str], list[str]]:
    """The figures of `omg eval --all` run in one process and under torchrun with two ranks, then the `warning:`
    lines each printed."""
    args = ["eval", "--all", "--predictions", str(predictions), "--ground-truth", str(ground_truth)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single, sharded = out_dir / "single.json", out_dir / "sharded.json"
    alone = subprocess.run([sys.executable, "-m", "omg_core.cli", *args, "--output", str(single)], check=True,
                           env=env, capture_output=True, text=True)
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "omg_core.cli",
         *args, "--output", str(sharded)], env=env, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]

    def warnings(stderr: str) -> list[str]:
        return [line for line in stderr.splitlines() if line.startswith("warning:")]

    return (json.loads(single.read_text()), json.loads(sharded.read_text()), warnings(alone.stderr),
            warnings(completed.stderr))


def test_torchrun_two_ranks_equal_one_process(tmp_path: Path) -> None:
    write_inputs(tmp_path)
    single_figures, sharded_figures, _, _ = eval_alone_and_on_two_ranks(tmp_path / "pred", tmp_path / "gt", tmp_path)
    assert sorted(single_figures) == ["interactive", "semantic"]
    assert 0 < single_figures["semantic"]["mIoU"] < 1
    # NoF counts failures: a rank scoring every object instead of its share would double it
    assert single_figures["interactive"]["NoF@90"] > 0
    assert close(single_figures, sharded_figures), (single_figures, sharded_figures)


def test_items_are_split_by_rank_without_overlap(monkeypatch) -> None:
    import torch.distributed as dist

    from omg_eval import sharding

    assert sharding.items_for_this_rank([1, 2, 3]) == [1, 2, 3]  # not distributed: everything
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)
    shares = []
    for rank in (0, 1):
        monkeypatch.setattr(dist, "get_rank", lambda group=None, rank=rank: rank)
        shares.append(sharding.items_for_this_rank(list("abcde")))
    assert shares == [["a", "c", "e"], ["b", "d"]]


def test_torchrun_shards_every_file_evaluator(tmp_path: Path) -> None:
    """The seven file evaluators on a shapes-world tree (three images or videos each, one mistake per task): two
    torchrun ranks give the single-process figures."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_eval_shapes_world import HEADLINES, add_mistakes, build_tree, figure

    gt, pred = build_tree(tmp_path / "tree", num=3)
    add_mistakes(pred)
    single_figures, sharded_figures, _, _ = eval_alone_and_on_two_ranks(pred, gt, tmp_path)
    assert sorted(single_figures) == sorted(HEADLINES)
    for task, paths in HEADLINES.items():
        assert 0 <= figure(single_figures[task], paths[0]) < 1, task  # the mistakes show: shares matter
    assert close(single_figures, sharded_figures), (single_figures, sharded_figures)
    # ratios would survive every rank scoring everything; the synced video counts would not
    assert sharded_figures["video-panoptic"]["num_videos"] == sharded_figures["video-semantic"]["num_videos"] == 3


def test_anomalies_are_counted_over_every_rank_and_printed_once(tmp_path: Path) -> None:
    """Five images, each with one result of a category the ground truth lacks: two ranks see 3 and 2 of them; the
    one warning line (printed by rank 0) counts all five, as one process does."""
    from pycocotools import mask as coco_mask

    square = np.zeros((8, 8), np.uint8)
    square[1:5, 2:7] = 1
    encoded = coco_mask.encode(np.asfortranarray(square))
    rle = {"size": encoded["size"], "counts": encoded["counts"].decode("ascii")}
    images = [{"id": i, "height": 8, "width": 8} for i in range(1, 6)]
    annotations = [{"id": i, "image_id": i, "category_id": 1, "segmentation": rle, "area": 20.0,
                    "bbox": [2, 1, 5, 4], "iscrowd": 0} for i in range(1, 6)]
    results = [{"image_id": i, "category_id": c, "segmentation": rle, "score": 0.9} for i in range(1, 6) for c in (1, 42)]
    for side, name, data in (("gt", "gt.json", {"images": images, "annotations": annotations,
                                                 "categories": [{"id": 1, "name": "box"}]}),
                             ("pred", "results.json", results)):
        (tmp_path / side / "instance").mkdir(parents=True)
        (tmp_path / side / "instance" / name).write_text(json.dumps(data))
    single_figures, sharded_figures, single_warnings, sharded_warnings = eval_alone_and_on_two_ranks(
        tmp_path / "pred", tmp_path / "gt", tmp_path
    )
    assert close(single_figures, sharded_figures)
    assert len(single_warnings) == 1 and "instance: 5 results for categories absent" in single_warnings[0]
    assert len(sharded_warnings) == 1 and "instance: 5 results for categories absent" in sharded_warnings[0]
