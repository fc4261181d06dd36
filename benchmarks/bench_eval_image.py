"""Image-metric benchmarks: each group pairs our evaluator with a reference measured in the same run.

Groups (``nox -s bench`` turns each into the ratio ours / reference):
  pq-memory-panopticapi   PQ of 200 480x640 label maps in memory in the form panopticapi holds them, the decoded PNG
                          arrays (H x W x 3 uint8); reference: panopticapi's per-image algorithm (rgb2id, np.unique
                          pair counting, Python loops), transcribed in eval_image_data.py; ours counts the RGB pixels.
  pq-memory-idmaps-panopticapi  the same images as int32 id maps on both sides (the reference skips rgb2id). Our pass
                          reads the 2 x 4 bytes per pixel at about the speed torch.sum reads them (memory-bound).
  pq-memory-torchmetrics  same images without crowd/VOID (torchmetrics has neither); reference: torchmetrics
                          PanopticQuality.
  pq-files                PNG files in, figures out; reference: panopticapi single-process (PIL decode, rgb2id,
                          per-image algorithm); ours decodes on 2 threads and counts RGB pixels directly.
  mask-ap                 COCO mask AP of a 2000-image result set; reference: faster-coco-eval (C++ COCOeval).
Every group first checks the figures agree.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_image_data import (  # noqa: E402
    CATEGORIES,
    id_map_to_rgb,
    panopticapi_pq_single_core,
    panopticapi_rgb2id,
    pq_average,
    synthetic_instances,
    synthetic_panoptic,
    to_torchmetrics,
)

from omg_eval.instance_files import evaluate_instance_files  # noqa: E402
from omg_eval.panoptic import PanopticQuality  # noqa: E402
from omg_eval.panoptic_files import evaluate_panoptic_files  # noqa: E402

NUM_IMAGES = 200
# torchvision 0.29 marks its PNG decoder deprecated (torchcodec replaces it); ours uses it to decode in parallel
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities of TorchVision")


@pytest.fixture(scope="module")
def panoptic_images() -> list[dict]:
    images = synthetic_panoptic(NUM_IMAGES, seed=0)
    for image in images:
        image["gt_torch"] = torch.from_numpy(image["gt"].astype(np.int32))
        image["pred_torch"] = torch.from_numpy(image["pred"].astype(np.int32))
        image["gt"], image["pred"] = image["gt"].astype(np.uint32), image["pred"].astype(np.uint32)  # as rgb2id gives
    return images


@pytest.fixture(scope="module")
def panoptic_rgb_images(panoptic_images) -> list[dict]:
    """The same images as the decoded PNG arrays (H x W x 3 uint8), numpy for the reference and torch for ours."""
    images = []
    for image in panoptic_images:
        gt, pred = id_map_to_rgb(image["gt"]), id_map_to_rgb(image["pred"])
        images.append(
            {**image, "gt": gt, "pred": pred, "gt_torch": torch.from_numpy(gt), "pred_torch": torch.from_numpy(pred)}
        )
    return images


def _ours_in_memory(images: list[dict]) -> dict:
    metric = PanopticQuality(CATEGORIES)
    metric.update(
        [image["pred_torch"] for image in images],
        [image["pred_segments"] for image in images],
        [image["gt_torch"] for image in images],
        [image["gt_segments"] for image in images],
    )
    return metric.compute()


def _reference_in_memory(benchmark, images: list[dict]) -> None:
    benchmark.extra_info["role"] = "reference"
    expected = pq_average(panopticapi_pq_single_core(images, CATEGORIES), CATEGORIES)
    assert _ours_in_memory(images)["All"]["pq"] == pytest.approx(expected, abs=1e-9)
    benchmark.pedantic(panopticapi_pq_single_core, args=(images, CATEGORIES), rounds=2, iterations=1)


@pytest.mark.benchmark(group="pq-memory-panopticapi")
def test_pq_memory_reference_panopticapi(benchmark, panoptic_rgb_images) -> None:
    _reference_in_memory(benchmark, panoptic_rgb_images)


@pytest.mark.benchmark(group="pq-memory-panopticapi")
def test_pq_memory_ours_vs_panopticapi(benchmark, panoptic_rgb_images) -> None:
    benchmark.extra_info["role"] = "ours"
    benchmark.pedantic(_ours_in_memory, args=(panoptic_rgb_images,), rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="pq-memory-idmaps-panopticapi")
def test_pq_idmaps_reference_panopticapi(benchmark, panoptic_images) -> None:
    _reference_in_memory(benchmark, panoptic_images)


@pytest.mark.benchmark(group="pq-memory-idmaps-panopticapi")
def test_pq_idmaps_ours_vs_panopticapi(benchmark, panoptic_images) -> None:
    benchmark.extra_info["role"] = "ours"
    benchmark.pedantic(_ours_in_memory, args=(panoptic_images,), rounds=5, iterations=1, warmup_rounds=1)


@pytest.fixture(scope="module")
def torchmetrics_images() -> tuple[list[dict], torch.Tensor, torch.Tensor, set[int], set[int]]:
    pytest.importorskip("torchmetrics", reason="peer benchmark: pip install torchmetrics")
    images = synthetic_panoptic(8, seed=1, crowd_and_void=False)  # torchmetrics needs ~1.5 s per image here
    stuff = {c["id"] for c in CATEGORIES if not c["isthing"]}
    things = {c["id"] for c in CATEGORIES if c["isthing"]}
    for image in images:  # torchmetrics merges stuff segments per class: keep one segment per stuff class
        seen: dict[int, int] = {}
        for segment in image["gt_segments"]:
            if segment["category_id"] in stuff:
                if segment["category_id"] in seen:
                    image["gt"][image["gt"] == segment["id"]] = seen[segment["category_id"]]
                else:
                    seen[segment["category_id"]] = segment["id"]
        ids, areas = np.unique(image["gt"], return_counts=True)
        info = {s["id"]: s for s in image["gt_segments"]}
        image["gt_segments"] = [{**info[int(i)], "area": int(a)} for i, a in zip(ids, areas)]
        pred_stuff: dict[int, int] = {}
        for segment in image["pred_segments"]:
            if segment["category_id"] in stuff:
                keep = pred_stuff.setdefault(segment["category_id"], segment["id"])
                image["pred"][image["pred"] == segment["id"]] = keep
        present = set(np.unique(image["pred"]).tolist())
        image["pred_segments"] = [s for s in image["pred_segments"] if s["id"] in present]
    preds = torch.from_numpy(np.stack([to_torchmetrics(i["pred"], i["pred_segments"], stuff) for i in images]))
    targets = torch.from_numpy(np.stack([to_torchmetrics(i["gt"], i["gt_segments"], stuff) for i in images]))
    for image in images:
        image["gt_torch"] = torch.from_numpy(image["gt"].astype(np.int32))
        image["pred_torch"] = torch.from_numpy(image["pred"].astype(np.int32))
    return images, preds, targets, things, stuff


def _torchmetrics_pq(preds: torch.Tensor, targets: torch.Tensor, things: set[int], stuff: set[int]) -> float:
    from torchmetrics.detection import PanopticQuality as TorchmetricsPQ

    metric = TorchmetricsPQ(things=things, stuffs=stuff)
    for start in range(0, len(preds), 10):
        metric.update(preds[start : start + 10], targets[start : start + 10])
    return float(metric.compute())


@pytest.mark.benchmark(group="pq-memory-torchmetrics")
def test_pq_memory_reference_torchmetrics(benchmark, torchmetrics_images) -> None:
    benchmark.extra_info["role"] = "reference"
    images, preds, targets, things, stuff = torchmetrics_images
    theirs = _torchmetrics_pq(preds, targets, things, stuff)
    # torchmetrics divides integer areas into torch's default float32, so each of its IoUs carries float32 rounding
    # (~6e-8 relative) before the float64 sum: 1e-6 is the honest tolerance for this peer
    assert _ours_in_memory(images)["All"]["pq"] == pytest.approx(theirs, abs=1e-6)
    benchmark.pedantic(_torchmetrics_pq, args=(preds, targets, things, stuff), rounds=1, iterations=1)


@pytest.mark.benchmark(group="pq-memory-torchmetrics")
def test_pq_memory_ours_vs_torchmetrics(benchmark, torchmetrics_images) -> None:
    benchmark.extra_info["role"] = "ours"
    benchmark.pedantic(_ours_in_memory, args=(torchmetrics_images[0],), rounds=5, iterations=1, warmup_rounds=1)


@pytest.fixture(scope="module")
def panoptic_files(panoptic_images, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("panoptic")
    for side in ("gt", "pred"):
        (root / side).mkdir()
    gt_annotations, pred_annotations = [], []
    for image in panoptic_images:
        name = f"{image['image_id']:06d}.png"
        Image.fromarray(id_map_to_rgb(image["gt"])).save(root / "gt" / name, compress_level=6)
        Image.fromarray(id_map_to_rgb(image["pred"])).save(root / "pred" / name, compress_level=6)
        gt_annotations.append({"image_id": image["image_id"], "file_name": name, "segments_info": image["gt_segments"]})
        pred_annotations.append(
            {"image_id": image["image_id"], "file_name": name, "segments_info": image["pred_segments"]}
        )
    (root / "gt.json").write_text(json.dumps({"annotations": gt_annotations, "categories": CATEGORIES}))
    (root / "pred.json").write_text(json.dumps({"annotations": pred_annotations}))
    return root


def _panopticapi_files(root: Path) -> float:
    """panopticapi single-process: decode both PNGs with PIL, rgb2id, per-image algorithm."""
    gt_json = json.loads((root / "gt.json").read_text())
    pred_json = {a["image_id"]: a for a in json.loads((root / "pred.json").read_text())["annotations"]}
    images = []
    for annotation in gt_json["annotations"]:
        maps = []
        for side, entry in (("gt", annotation), ("pred", pred_json[annotation["image_id"]])):
            maps.append(panopticapi_rgb2id(np.array(Image.open(root / side / entry["file_name"]), dtype=np.uint32)))
        images.append(
            {
                "gt": maps[0],
                "pred": maps[1],
                "gt_segments": annotation["segments_info"],
                "pred_segments": pred_json[annotation["image_id"]]["segments_info"],
            }
        )
        if len(images) == 16:  # panopticapi holds one image at a time; keep memory flat the same way
            stats = panopticapi_pq_single_core(images, gt_json["categories"])
            images.clear()
            _merge(stats)
    _merge(panopticapi_pq_single_core(images, gt_json["categories"]))
    return pq_average(_merge.pop(), gt_json["categories"])


class _Merger:
    def __init__(self) -> None:
        self.total: dict = {}

    def __call__(self, stats: dict) -> None:
        for key, stat in stats.items():
            if key in self.total:
                mine = self.total[key]
                mine.iou, mine.tp, mine.fp, mine.fn = (
                    mine.iou + stat.iou,
                    mine.tp + stat.tp,
                    mine.fp + stat.fp,
                    mine.fn + stat.fn,
                )
            else:
                self.total[key] = stat

    def pop(self) -> dict:
        total, self.total = self.total, {}
        return total


_merge = _Merger()


def _ours_files(root: Path) -> float:
    return evaluate_panoptic_files(root / "gt.json", root / "pred.json", root / "gt", root / "pred", workers=2)["All"][
        "pq"
    ]


@pytest.mark.benchmark(group="pq-files")
def test_pq_files_reference_panopticapi(benchmark, panoptic_files) -> None:
    benchmark.extra_info["role"] = "reference"
    assert _ours_files(panoptic_files) == pytest.approx(_panopticapi_files(panoptic_files), abs=1e-9)
    benchmark.pedantic(_panopticapi_files, args=(panoptic_files,), rounds=1, iterations=1)


@pytest.mark.benchmark(group="pq-files")
def test_pq_files_ours(benchmark, panoptic_files) -> None:
    benchmark.extra_info["role"] = "ours"
    benchmark.pedantic(_ours_files, args=(panoptic_files,), rounds=3, iterations=1)


@pytest.fixture(scope="module")
def instance_files(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("instances")
    gt, results = synthetic_instances(2000, seed=0)
    (root / "gt.json").write_text(json.dumps(gt))
    (root / "results.json").write_text(json.dumps(results))
    return root / "gt.json", root / "results.json"


def _faster_coco_eval(gt_path: Path, results_path: Path) -> np.ndarray:
    from faster_coco_eval import COCO, COCOeval_faster

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        evaluator = COCOeval_faster(coco_gt, coco_gt.loadRes(str(results_path)), iouType="segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats)


def _ours_ap(gt_path: Path, results_path: Path) -> np.ndarray:
    figures = evaluate_instance_files(gt_path, results_path)
    names = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
    return np.array([figures[name] for name in names])


@pytest.mark.benchmark(group="mask-ap")
def test_mask_ap_reference_faster_coco_eval(benchmark, instance_files) -> None:
    pytest.importorskip("faster_coco_eval", reason="peer benchmark: pip install faster-coco-eval")
    benchmark.extra_info["role"] = "reference"
    np.testing.assert_allclose(_ours_ap(*instance_files), _faster_coco_eval(*instance_files), rtol=0, atol=1e-12)
    benchmark.pedantic(_faster_coco_eval, args=instance_files, rounds=2, iterations=1)


@pytest.mark.benchmark(group="mask-ap")
def test_mask_ap_ours(benchmark, instance_files) -> None:
    benchmark.extra_info["role"] = "ours"
    benchmark.pedantic(_ours_ap, args=instance_files, rounds=2, iterations=1)
