"""The official tools run as programs, for the whole-CLI benchmark (``bench_eval_cli.py``): process start to figures.

    python benchmarks/cli_reference.py panopticapi GT.json PRED.json   # PNG folders beside the JSONs
    python benchmarks/cli_reference.py pycocotools GT.json RESULTS.json

``panopticapi`` runs panopticapi's single-process pipeline (for each image: PIL decode of both PNGs into uint32,
``rgb2id``, ``pq_compute_single_core``'s per-image algorithm transcribed in ``eval_image_data``; then ``pq_average``)
with nothing imported that panopticapi does not import (NumPy, PIL, json). ``pycocotools`` is the official package
itself: ``COCO``, ``loadRes``, ``COCOeval(iouType="segm")``, evaluate / accumulate / summarize. Each prints its
headline figure as JSON on the last line.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path


def panopticapi(gt_json_file: Path, pred_json_file: Path) -> float:
    import numpy as np
    from eval_image_data import CategoryStat, panopticapi_pq_single_core, panopticapi_rgb2id, pq_average
    from PIL import Image

    gt_json = json.loads(gt_json_file.read_text())
    pred_by_image = {a["image_id"]: a for a in json.loads(pred_json_file.read_text())["annotations"]}
    gt_folder, pred_folder = gt_json_file.with_suffix(""), pred_json_file.with_suffix("")
    total: dict[int, CategoryStat] = {}
    for gt_annotation in gt_json["annotations"]:  # one image at a time, as panopticapi's per-core loop
        pred_annotation = pred_by_image[gt_annotation["image_id"]]
        image = {
            "gt": panopticapi_rgb2id(np.array(Image.open(gt_folder / gt_annotation["file_name"]), dtype=np.uint32)),
            "pred": panopticapi_rgb2id(
                np.array(Image.open(pred_folder / pred_annotation["file_name"]), dtype=np.uint32)
            ),
            "gt_segments": gt_annotation["segments_info"],
            "pred_segments": pred_annotation["segments_info"],
        }
        for category, stat in panopticapi_pq_single_core([image], gt_json["categories"]).items():
            mine = total.setdefault(category, CategoryStat())
            mine.iou, mine.tp, mine.fp, mine.fn = (
                mine.iou + stat.iou, mine.tp + stat.tp, mine.fp + stat.fp, mine.fn + stat.fn
            )
    return pq_average(total, gt_json["categories"])


def pycocotools(gt_json_file: Path, results_json_file: Path) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and table
        coco_gt = COCO(str(gt_json_file))
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(str(results_json_file)), iouType="segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0])


if __name__ == "__main__":
    tool, first, second = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    figure = {"panopticapi": panopticapi, "pycocotools": pycocotools}[tool](first, second)
    print(json.dumps({"figure": figure}))
