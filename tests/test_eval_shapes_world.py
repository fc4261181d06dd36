"""`omg eval --all` on shapes-world data: every file evaluator reads what `omg data synth` writes.

Predictions are built from the ground truth itself (no trained model is involved): a copy must score exactly 1 on
every headline figure, and a copy with one deliberate mistake must score below 1. A reader and a writer that
disagree on a layout, an id encoding or a frame order fail here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from omg_core.cli import main

SIZE = "40x48"
FRAMES = "9"  # VSPW scores VC8 only in videos longer than 8 frames


def synth(root: Path, format_name: str, num: int) -> Path:
    out = root / "synth" / format_name
    args = ["data", "synth", "--format", format_name, "--num", str(num), "--out", str(out), "--size", SIZE]
    result = CliRunner().invoke(main, [*args, "--frames", FRAMES, "--seed", "4"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def build_tree(root: Path, num: int = 2) -> tuple[Path, Path]:
    """gt/<task> and pred/<task> folders for the seven file evaluators, ``num`` images or videos each, predictions
    equal to the ground truth."""
    gt, pred = root / "gt", root / "pred"

    panoptic = synth(root, "coco-panoptic", num)
    for side in (gt, pred):
        (side / "panoptic").mkdir(parents=True)
        shutil.copy(panoptic / "panoptic.json", side / "panoptic" / "panoptic.json")
        shutil.copytree(panoptic / "panoptic", side / "panoptic" / "panoptic")

    instances = synth(root, "coco-instances", num)
    (gt / "instance").mkdir()
    shutil.copy(instances / "instances.json", gt / "instance" / "instances.json")
    annotations = json.loads((instances / "instances.json").read_text())["annotations"]
    results = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": a["segmentation"], "score": 0.9}
        for a in annotations
        if not a["iscrowd"]
    ]
    (pred / "instance").mkdir()
    (pred / "instance" / "results.json").write_text(json.dumps(results))

    semantic = synth(root, "semantic", num)
    shutil.copytree(semantic / "labels", gt / "semantic")
    shutil.copytree(semantic / "labels", pred / "semantic")
    for path in (pred / "semantic").glob("*.png"):  # a model predicts a class on unlabelled (255) pixels too
        labels = np.array(Image.open(path))
        Image.fromarray(np.where(labels == 255, 0, labels).astype(np.uint8)).save(path)

    vis = synth(root, "youtube-vis", num)
    (gt / "video-instance").mkdir()
    shutil.copy(vis / "instances.json", gt / "video-instance" / "instances.json")
    tracks = json.loads((vis / "instances.json").read_text())["annotations"]
    vis_results = [
        {"video_id": t["video_id"], "category_id": t["category_id"], "segmentations": t["segmentations"], "score": 0.8}
        for t in tracks
    ]
    (pred / "video-instance").mkdir()
    (pred / "video-instance" / "results.json").write_text(json.dumps(vis_results))

    vipseg = synth(root, "vipseg", num)
    for side in (gt, pred):
        shutil.copytree(vipseg / "panomasks", side / "video-panoptic")
    shutil.copy(vipseg / "panoVIPSeg_categories.json", gt / "video-panoptic" / "panoVIPSeg_categories.json")

    vspw = synth(root, "vspw", num)
    shutil.copytree(vspw / "data", gt / "video-semantic")
    for mask in sorted((vspw / "data").glob("*/mask/*.png")):  # raw VSPW label v is class v - 1 (0, 255: void)
        raw = np.array(Image.open(mask)).astype(np.int64)
        classes = np.where((raw == 0) | (raw == 255), 0, raw - 1).astype(np.uint8)
        (pred / "video-semantic" / mask.parent.parent.name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(classes).save(pred / "video-semantic" / mask.parent.parent.name / mask.name)

    davis = synth(root, "davis", num)
    for side in (gt, pred):
        shutil.copytree(davis / "Annotations" / "480p", side / "vos")
    return gt, pred


HEADLINES = {
    "panoptic": [("All", "pq"), ("All", "sq"), ("All", "rq")],
    "instance": [("AP",), ("AP50",), ("AR100",)],
    "semantic": [("mIoU",), ("pACC",), ("fwIoU",)],
    "video-instance": [("AP",), ("AR10",)],
    "video-panoptic": [("vpq@0",), ("vpq",), ("stq",)],
    "video-semantic": [("mIoU",), ("VC8",)],
    "vos": [("J&F-Mean",)],
}


def figure(figures: dict, path: tuple[str, ...]) -> float:
    value = figures
    for key in path:
        matches = [k for k in value if k.lower() == key.lower()]
        assert matches, f"no figure {key!r} among {sorted(value)}"
        value = value[matches[0]]
    return float(value)


def run_all(gt: Path, pred: Path, out: Path) -> dict:
    args = ["eval", "--all", "--predictions", str(pred), "--ground-truth", str(gt), "--output", str(out)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_tree(tmp_path_factory.mktemp("shapes_eval"))


def test_ground_truth_as_prediction_scores_one_on_every_task(tree: tuple[Path, Path], tmp_path: Path) -> None:
    gt, pred = tree
    figures = run_all(gt, pred, tmp_path / "all.json")
    assert sorted(figures) == sorted(HEADLINES)
    for task, paths in HEADLINES.items():
        for path in paths:
            assert figure(figures[task], path) == pytest.approx(1.0, abs=1e-12), (task, path, figures[task])
    # the shapes world's own categories, not VIPSeg's, decide things and stuff
    assert figures["video-panoptic"]["label_space"].endswith("panoVIPSeg_categories.json")
    assert len(figures["video-panoptic"]["per_class_pq@0"]) == 70  # ids 1..69, as lists in the JSON


def add_mistakes(pred: Path) -> None:
    """One deliberate mistake per task in a prediction tree made by :func:`build_tree`."""
    # panoptic: one segment of the first image relabelled to a category it does not have
    panoptic_json = pred / "panoptic" / "panoptic.json"
    panoptic = json.loads(panoptic_json.read_text())
    categories = [c["id"] for c in panoptic["categories"]]
    segment = panoptic["annotations"][0]["segments_info"][0]
    segment["category_id"] = next(c for c in categories if c != segment["category_id"])
    panoptic_json.write_text(json.dumps(panoptic))

    # instance and video instance: the first result dropped
    for name in ("instance", "video-instance"):
        results_json = pred / name / "results.json"
        results_json.write_text(json.dumps(json.loads(results_json.read_text())[1:]))

    # label maps (semantic, video semantic): the left half of one image set to another class
    for path in (
        next(iter(sorted((pred / "semantic").rglob("*.png")))),
        sorted((pred / "video-semantic").rglob("*.png"))[1],
    ):
        labels = np.array(Image.open(path))
        labels[:, : labels.shape[1] // 2] = (labels[:, : labels.shape[1] // 2] + 1) % 4
        Image.fromarray(labels).save(path)

    # video panoptic and vos: one frame's mask shifted down by 6 rows (ids, colours and palette kept)
    for name in ("video-panoptic", "vos"):
        path = sorted((pred / name).rglob("*.png"))[2]
        image = Image.open(path)
        shifted = np.roll(np.array(image), 6, axis=0)
        out = Image.fromarray(shifted)
        if image.mode == "P":
            out.putpalette(image.getpalette())
        out.save(path)


def test_one_mistake_per_task_scores_below_one(tree: tuple[Path, Path], tmp_path: Path) -> None:
    gt, clean = tree
    pred = tmp_path / "pred"
    shutil.copytree(clean, pred)
    add_mistakes(pred)
    figures = run_all(gt, pred, tmp_path / "all.json")
    for task, paths in HEADLINES.items():
        headline = figure(figures[task], paths[0])
        assert 0 <= headline < 1, (task, paths[0], figures[task])
