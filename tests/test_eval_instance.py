"""COCO mask AP parity with pycocotools ``COCOeval(iouType="segm")``, computed live on awkward synthetic data."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from omg_eval.anomalies import EvaluationAnomalyWarning, StrictAnomalyError, collect_anomalies
from omg_eval.instance import CocoMaskAP
from omg_eval.instance_files import evaluate_instance_files
from omg_eval.instance_masks import mask_areas

# pycocotools' mask.decode trips NumPy 2's copy-keyword deprecation; it is the reference's own code, not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

CATEGORY_IDS = [1, 3, 5, 8]  # 5: no detection at all; 8: detections but no ground truth


def _box_mask(height: int, width: int, y: int, x: int, h: int, w: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[y : y + h, x : x + w] = 1
    return mask


def _rle(mask: np.ndarray) -> dict:
    rle = coco_mask.encode(np.asfortranarray(mask))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _dataset(seed: int, with_boxes: bool) -> tuple[dict, list[dict]]:
    """Ground truth and results with crowd, small/medium/large objects, empty images, > 100 detections in one image,
    tied scores, polygons and RLEs, and categories missing from predictions or ground truth."""
    rng = np.random.default_rng(seed)
    images, annotations, results = [], [], []
    next_annotation_id = 1
    for image_id in (4, 1, 7, 2, 9):  # unsorted ids: images must be taken in id order
        height, width = 120, 130
        images.append({"id": image_id, "height": height, "width": width, "file_name": f"{image_id}.jpg"})
        objects = [] if image_id == 7 else range(int(rng.integers(3, 8)))
        for index in objects:
            category = int(rng.choice([1, 3, 5]))
            size = int(rng.choice([4, 20, 40, 105]))  # small, medium, medium, large
            h, w = min(size + int(rng.integers(0, 6)), height - 1), min(size + int(rng.integers(0, 6)), width - 1)
            y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
            mask = _box_mask(height, width, y, x, h, w)
            crowd = int(index == 0 and image_id in (4, 2))
            if index % 2 and not crowd:
                segmentation = [[x, y, x + w, y, x + w, y + h, x, y + h]]  # polygon
                area = float(coco_mask.area(coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width))))
            else:
                segmentation, area = _rle(mask), float(mask.sum())
            annotations.append(
                {
                    "id": next_annotation_id,
                    "image_id": image_id,
                    "category_id": category,
                    "segmentation": segmentation,
                    "area": area + (0.5 if index == 2 else 0.0),
                    "bbox": [x, y, w, h],
                    "iscrowd": crowd,
                }
            )
            next_annotation_id += 1
            for _ in range(int(rng.integers(0, 3))):  # jittered detections, sometimes the wrong class
                dy, dx = (int(v) for v in rng.integers(-4, 5, size=2))
                yy, xx = int(np.clip(y + dy, 0, height - h)), int(np.clip(x + dx, 0, width - w))
                det_category = category if rng.random() < 0.8 else 8
                if det_category == 5:
                    det_category = 3
                results.append(
                    {
                        "image_id": image_id,
                        "category_id": det_category,
                        "segmentation": _rle(_box_mask(height, width, yy, xx, h, w)),
                        "score": float(np.round(rng.random(), 1)),
                        "bbox": [xx, yy, w, h],
                    }
                )
        if image_id == 9:  # > 100 detections in one image: the maxDets cut and many false positives
            for _ in range(130):
                h, w = (int(v) for v in rng.integers(3, 30, size=2))
                y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
                results.append(
                    {
                        "image_id": image_id,
                        "category_id": int(rng.choice([1, 3])),
                        "segmentation": _rle(_box_mask(height, width, y, x, h, w)),
                        "score": float(np.round(rng.random(), 2)),
                        "bbox": [x, y, w, h],
                    }
                )
    if not with_boxes:
        for result in results:
            del result["bbox"]
            result["area"] = 1.0  # a stale area: loadRes replaces it by the mask area, so must we
    categories = [{"id": c, "name": f"class{c}"} for c in CATEGORY_IDS]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def _pycocotools(gt_path: Path, results_path: Path) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        coco_dt = coco_gt.loadRes(str(results_path))
        evaluator = COCOeval(coco_gt, coco_dt, iouType="segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


@pytest.mark.parametrize("seed,with_boxes,backend", [(0, False, "fused"), (1, True, "fused"), (2, False, "torch")])
def test_mask_ap_equals_pycocotools(
    tmp_path: Path, seed: int, with_boxes: bool, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMG_EVAL_BACKEND", backend)  # "torch": the NumPy matching instead of the C++ kernel
    gt, results = _dataset(seed, with_boxes)
    gt_path, results_path = tmp_path / "gt.json", tmp_path / "results.json"
    gt_path.write_text(json.dumps(gt))
    results_path.write_text(json.dumps(results))
    reference = _pycocotools(gt_path, results_path)
    ours = evaluate_instance_files(gt_path, results_path)
    names = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    np.testing.assert_allclose([ours[n] for n in names], reference.stats, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ours["precision"], reference.eval["precision"])
    np.testing.assert_array_equal(ours["recall"], reference.eval["recall"])
    assert -1 < ours["AP"] < 1  # a non-degenerate data set: figures that could drift


def _crowded_dataset(seed: int) -> tuple[dict, list[dict]]:
    """One image with 300 detections of category 1 (pycocotools' ``area`` overflows at 256 RLEs in one call) plus
    results for category 99, which the ground truth lacks (COCOeval ignores them)."""
    gt, results = _dataset(seed, with_boxes=False)
    rng = np.random.default_rng(seed + 100)
    height, width = 120, 130
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(2, 40, size=2))
        y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
        results.append(
            {
                "image_id": 2,
                "category_id": 1,
                "segmentation": _rle(_box_mask(height, width, y, x, h, w)),
                "score": float(np.round(rng.random(), 3)),
            }
        )
    for image_id, score in ((4, 0.99), (2, 0.5), (9, 0.7)):
        results.append(
            {
                "image_id": image_id,
                "category_id": 99,
                "segmentation": _rle(_box_mask(height, width, 10, 10, 30, 30)),
                "score": score,
            }
        )
    return gt, results


@pytest.mark.parametrize("count", [0, 1, 255, 256, 300, 511, 600])
def test_mask_areas_of_many_rles(count: int) -> None:
    rng = np.random.default_rng(count)
    masks = rng.random((count, 9, 11)) > rng.random((count, 1, 1))
    rles = [coco_mask.encode(np.asfortranarray(m.astype(np.uint8))) for m in masks]
    areas = mask_areas(rles)
    assert areas.dtype == np.int64 and areas.shape == (count,)
    np.testing.assert_array_equal(areas, masks.sum((1, 2)))


@pytest.mark.parametrize("backend", ["fused", "torch"])
def test_crowded_image_and_foreign_category_equal_pycocotools(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMG_EVAL_BACKEND", backend)
    gt, results = _crowded_dataset(6)
    gt_path, results_path = tmp_path / "gt.json", tmp_path / "results.json"
    gt_path.write_text(json.dumps(gt))
    results_path.write_text(json.dumps(results))
    reference = _pycocotools(gt_path, results_path)
    with collect_anomalies() as log:
        ours = evaluate_instance_files(gt_path, results_path)
    names = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    np.testing.assert_allclose([ours[n] for n in names], reference.stats, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ours["precision"], reference.eval["precision"])
    np.testing.assert_array_equal(ours["recall"], reference.eval["recall"])
    assert -1 < ours["AP"] < 1
    assert log.counts() == {"instance-category-not-in-gt": 3}
    anomaly = log.kinds["instance-category-not-in-gt"]
    first = len(results) - 3
    assert anomaly.example == f"result {first} (image 4, category 99)"
    with collect_anomalies(strict=True), pytest.raises(StrictAnomalyError, match="category 99"):
        evaluate_instance_files(gt_path, results_path)
    with pytest.warns(EvaluationAnomalyWarning, match="3 results for categories absent from the ground truth"):
        evaluate_instance_files(gt_path, results_path)


def test_metric_accepts_tensor_masks_and_splits_like_whole(tmp_path: Path) -> None:
    gt, results = _dataset(3, False)
    whole = CocoMaskAP(CATEGORY_IDS)
    halves = [CocoMaskAP(CATEGORY_IDS), CocoMaskAP(CATEGORY_IDS)]
    for position, image in enumerate(sorted(gt["images"], key=lambda i: -i["id"])):
        gts = [a for a in gt["annotations"] if a["image_id"] == image["id"]]
        dets = [
            {
                **{k: v for k, v in r.items() if k != "area"},  # the metric honours a given area; loadRes does not
                "segmentation": torch.from_numpy(coco_mask.decode(r["segmentation"]).astype(bool)),
            }
            for r in results
            if r["image_id"] == image["id"]
        ]
        whole.update(image["id"], image["height"], image["width"], gts, dets)
        halves[position % 2].update(image["id"], image["height"], image["width"], gts, dets)
    halves[0].merge_state(halves[1].state_dict())
    gt_path, results_path = tmp_path / "gt.json", tmp_path / "results.json"
    gt_path.write_text(json.dumps(gt))
    results_path.write_text(json.dumps(results))
    reference = _pycocotools(gt_path, results_path)
    for metric in (whole, halves[0]):
        figures = metric.compute()
        np.testing.assert_array_equal(figures["precision"], reference.eval["precision"])


def test_mask_ap_rejects_user_errors() -> None:
    metric = CocoMaskAP(CATEGORY_IDS)
    mask = torch.zeros(4, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="category_id 2 is not one of"):
        metric.update(1, 4, 4, [], [{"category_id": 2, "segmentation": mask, "score": 0.5}])
    with pytest.raises(ValueError, match="does not match the image size"):
        metric.update(1, 5, 4, [], [{"category_id": 1, "segmentation": mask, "score": 0.5}])
    with pytest.raises(ValueError, match="no 'score'"):
        metric.update(1, 4, 4, [], [{"category_id": 1, "segmentation": mask}])
    metric.reset()
    metric.update(1, 4, 4, [], [])
    metric.update(1, 4, 4, [], [])
    with pytest.raises(ValueError, match="more than once"):
        metric.compute()


def test_eval_command_instance_matches_pycocotools(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from omg_eval.cli import eval_command

    gt, results = _dataset(4, True)
    gt_path, results_path, output = tmp_path / "gt.json", tmp_path / "results.json", tmp_path / "out.json"
    gt_path.write_text(json.dumps(gt))
    results_path.write_text(json.dumps(results))
    args = ["--task", "instance", "--predictions", str(results_path), "--ground-truth", str(gt_path)]
    result = CliRunner().invoke(eval_command, [*args, "--output", str(output)])
    assert result.exit_code == 0, result.output
    written = json.loads(output.read_text())
    assert "precision" not in written  # curves stay out of the JSON
    assert written["AP"] == pytest.approx(_pycocotools(gt_path, results_path).stats[0], abs=1e-12)


MALFORMED_COUNTS = {
    "truncated": ("0a", "truncated"),
    "overflow": ("0" + "o" * 13 + "0", "overflows 64 bits"),
    "short": ("5:", "cover 15 pixels, not the 100"),
    "long": ("5:f2", "cover 101 pixels, not the 100"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_COUNTS))
def test_malformed_compressed_rle_names_image_and_detection(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad prediction file's RLE string is refused by the shared C++ decoder (rle_from_strings), named by image and
    annotation: pycocotools would read past a truncated string and shift its values out of range."""
    monkeypatch.setenv("OMG_EVAL_BACKEND", "fused")
    counts, words = MALFORMED_COUNTS[case]
    gt = {"id": 4, "category_id": 1, "segmentation": _rle(_box_mask(10, 10, 1, 1, 3, 3))}
    good = {"category_id": 3, "segmentation": _rle(_box_mask(10, 10, 2, 2, 3, 3)), "score": 0.9}
    bad = {"id": 12, "category_id": 1, "segmentation": {"size": [10, 10], "counts": counts}, "score": 0.5}
    pattern = rf"image 7: detection 1 \(id 12\): malformed compressed RLE 'counts': .*{re.escape(words)}"
    with pytest.raises(ValueError, match=pattern):
        CocoMaskAP(CATEGORY_IDS).update(7, 10, 10, [gt], [good, bad])
    bad_gt = dict(gt, segmentation=bad["segmentation"])
    with pytest.raises(ValueError, match=r"image 7: ground truth 0 \(id 4\): malformed compressed RLE 'counts'"):
        CocoMaskAP(CATEGORY_IDS).update(7, 10, 10, [bad_gt], [good])


def _annotation_to_rle_officially(segmentation, height: int, width: int) -> dict:
    coco = COCO()
    coco.dataset = {"images": [{"id": 1, "height": height, "width": width}], "annotations": [], "categories": []}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco.annToRLE({"image_id": 1, "segmentation": segmentation})


@pytest.mark.parametrize("backend", ["fused", "torch"])
def test_empty_polygon_list_is_an_error_as_in_pycocotools(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """COCOeval converts every annotation with annToRLE, whose frPyObjects fails on [] (IndexError): our error names
    the image and the annotation instead."""
    monkeypatch.setenv("OMG_EVAL_BACKEND", backend)
    with pytest.raises(IndexError):
        _annotation_to_rle_officially([], 10, 10)
    gt = {"id": 5, "category_id": 1, "segmentation": []}
    det = {"category_id": 1, "segmentation": _rle(_box_mask(10, 10, 1, 1, 3, 3)), "score": 0.5}
    with pytest.raises(ValueError, match=r"image 2: ground truth 0 \(id 5\): an empty polygon list"):
        CocoMaskAP(CATEGORY_IDS).update(2, 10, 10, [gt], [det])
    with pytest.raises(ValueError, match=r"image 2: detection 0: an empty polygon list"):
        CocoMaskAP(CATEGORY_IDS).update(2, 10, 10, [], [dict(det, segmentation=[])])


@pytest.mark.parametrize("backend", ["fused", "torch"])
def test_uncompressed_rle_scored_as_pycocotools(tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ground truth with counts lists (COCO's crowd regions, YouTube-VIS): converted by frPyObjects as annToRLE does
    and scored equal to COCOeval live. loadRes refuses counts lists in a results file (its area() wants a string);
    the metric converts them the same way, so a result scores as its compressed form."""
    monkeypatch.setenv("OMG_EVAL_BACKEND", backend)
    gt, results = _dataset(3, with_boxes=False)
    sizes = {image["id"]: (image["height"], image["width"]) for image in gt["images"]}
    for annotation in gt["annotations"][::2]:
        height, width = sizes[annotation["image_id"]]
        mask = coco_mask.decode(_annotation_to_rle_officially(annotation["segmentation"], height, width))
        flat = mask.T.reshape(-1)
        runs = np.diff(np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])).tolist()
        annotation["segmentation"] = {"size": [height, width], "counts": ([0] if flat[0] else []) + runs}
    gt_path, results_path = tmp_path / "gt.json", tmp_path / "results.json"
    gt_path.write_text(json.dumps(gt))
    results_path.write_text(json.dumps(results))
    reference = _pycocotools(gt_path, results_path)

    ours = evaluate_instance_files(gt_path, results_path)
    np.testing.assert_array_equal(ours["precision"], reference.eval["precision"])
    uncompressed = json.loads(json.dumps(results))
    for result in uncompressed[::3]:
        rle = dict(result["segmentation"], counts=result["segmentation"]["counts"].encode())
        mask = coco_mask.decode(rle)
        flat = mask.T.reshape(-1)
        runs = np.diff(np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])).tolist()
        result["segmentation"] = {"size": list(mask.shape), "counts": ([0] if flat[0] else []) + runs}
    with pytest.raises(TypeError), contextlib.redirect_stdout(io.StringIO()):
        COCO(str(gt_path)).loadRes(json.loads(json.dumps(uncompressed)))
    results_path.write_text(json.dumps(uncompressed))
    np.testing.assert_array_equal(evaluate_instance_files(gt_path, results_path)["precision"], ours["precision"])
    short = dict(uncompressed[0], segmentation={"size": [120, 130], "counts": [5, 10]})
    results_path.write_text(json.dumps([short]))
    with pytest.raises(ValueError, match=r"detection 0: uncompressed RLE counts cover 15 pixels, not the 15600"):
        evaluate_instance_files(gt_path, results_path)
