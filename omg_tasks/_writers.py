"""The built-in output formats, a plugin of their own: they write results by family, for any task that produces them.

Registered under the ``omg.tasks`` entry points like every plugin, with no task: a third-party task whose decode hook
returns, say, a ``SemanticMap`` gets ``--format semantic-png`` from here without writing a line of output code, and a
third-party writer with ``@hookimpl(tryfirst=True)`` can replace one of these.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from omg_core.hookspecs import hookimpl
from omg_core.output_formats import OutputFormat
from omg_core.task_info import TaskInfo

if TYPE_CHECKING:  # torch and NumPy load when something is written, not when `omg tasks` discovers this plugin
    import numpy as np

    from omg_core.results import Instances, PanopticMap, SemanticMap
    from omg_core.task_io import TaskResult

#: Unlabelled pixels in semantic PNGs, as the semantic evaluators read them.
PNG_IGNORE = 255

SEMANTIC_PNG = OutputFormat(
    "semantic-png",
    "one PNG of class indices per image (255 = unlabelled), named after the input; panoptic results by segment class",
    families=("semantic", "panoptic"),
)
COCO_PANOPTIC = OutputFormat(
    "coco-panoptic",
    "COCO panoptic: panoptic.json (segments_info, categories = the vocabulary) and panoptic/<input>.png id maps",
    families=("panoptic",),
)
COCO_RESULTS = OutputFormat(
    "coco-results-json",
    "COCO results: results.json, one {image_id, file_name, category_id, segmentation (RLE), bbox, score} per instance",
    families=("instances",),
)
FORMATS = (SEMANTIC_PNG, COCO_PANOPTIC, COCO_RESULTS)


@hookimpl
def omg_output_formats() -> list[OutputFormat]:
    return list(FORMATS)


@hookimpl
def omg_write_results(
    task: TaskInfo, results: list[TaskResult], output_dir: Path, output_format: str
) -> list[Path] | None:
    from omg_core.results import Instances, PanopticMap, SemanticMap

    writers = {"semantic-png": _write_semantic_png, "coco-panoptic": _write_coco_panoptic,
               "coco-results-json": _write_coco_results}
    image_classes = (SemanticMap, PanopticMap, Instances)
    if output_format not in writers or not all(isinstance(r.data, image_classes) for r in results):
        return None  # another plugin's format, or results (video tracks, ...) these writers do not take
    return writers[output_format](results, Path(output_dir))


def _stems(results: list[TaskResult]) -> list[str]:
    """A file stem per result from its input's name (``index`` where there is none), unique within the run."""
    stems: list[str] = []
    for index, result in enumerate(results):
        stem = Path(result.source).stem if result.source is not None else f"{index:06d}"
        stems.append(stem if stem not in stems else f"{stem}_{index}")
    return stems


def _class_map(result: SemanticMap | PanopticMap) -> np.ndarray:
    """(H, W) class indices, PNG_IGNORE where unlabelled; panoptic segments painted with their classes."""
    import numpy as np
    import torch

    from omg_core.results import IGNORE_LABEL, SemanticMap

    if len(result.vocabulary) > PNG_IGNORE:
        raise ValueError(
            f"semantic-png holds at most {PNG_IGNORE} classes (255 = unlabelled), not {len(result.vocabulary)}"
        )
    if isinstance(result, SemanticMap):
        labels = result.labels.numpy()
    else:
        largest = max([int(result.segment_ids.max()) if result.segment_ids.numel() else 0,
                       *(segment.id for segment in result.segments)])
        lookup = torch.full((largest + 1,), IGNORE_LABEL, dtype=torch.int64)  # segment id -> class, 0 (void) unlabelled
        for segment in result.segments:
            lookup[segment.id] = segment.label
        labels = lookup[result.segment_ids.long()].numpy()
    return np.where(labels == IGNORE_LABEL, PNG_IGNORE, labels).astype(np.uint8)


def _write_semantic_png(results: list[TaskResult], output_dir: Path) -> list[Path]:
    from omg_data.image_io import save_png

    written = []
    for stem, result in zip(_stems(results), results):
        path = output_dir / f"{stem}.png"
        save_png(_class_map(result.data), path)
        written.append(path)
    return written


def _categories(vocabulary: tuple[str, ...], is_thing: dict[int, bool]) -> list[dict]:
    """COCO categories of a vocabulary: id = class index + 1 (COCO keeps 0 for VOID)."""
    return [{"id": index + 1, "name": name, "isthing": int(is_thing.get(index, True))}
            for index, name in enumerate(vocabulary)]


def _write_coco_panoptic(results: list[TaskResult], output_dir: Path) -> list[Path]:
    import numpy as np

    from omg_data.geometry import coco_bbox
    from omg_data.image_io import id_to_rgb, save_png

    annotations, is_thing, written = [], {}, []
    vocabulary = results[0].data.vocabulary if results else ()
    for image_id, (stem, result) in enumerate(zip(_stems(results), results)):
        panoptic: PanopticMap = result.data
        if panoptic.vocabulary != vocabulary:
            raise ValueError("coco-panoptic writes one categories list: every result of a run needs the same vocabulary")
        ids = panoptic.segment_ids.numpy().astype(np.int64)
        segments_info = []
        for segment in panoptic.segments:
            mask = ids == segment.id
            is_thing[segment.label] = segment.is_thing
            segments_info.append({"id": segment.id, "category_id": segment.label + 1, "iscrowd": 0,
                                  "area": int(mask.sum()), "bbox": coco_bbox(mask), "score": segment.score})
        path = output_dir / "panoptic" / f"{stem}.png"
        save_png(id_to_rgb(ids), path)
        written.append(path)
        annotations.append({"image_id": image_id, "file_name": path.name, "segments_info": segments_info})
    json_path = output_dir / "panoptic.json"
    images = [{"id": a["image_id"], "file_name": a["file_name"]} for a in annotations]
    json_path.write_text(json.dumps({"images": images, "annotations": annotations,
                                     "categories": _categories(vocabulary, is_thing)}))
    return [json_path, *written]


def _write_coco_results(results: list[TaskResult], output_dir: Path) -> list[Path]:
    from omg_core.postprocess import encode_rles

    detections = []
    for image_id, (stem, result) in enumerate(zip(_stems(results), results)):
        instances: Instances = result.data
        for rle, box, score, label in zip(encode_rles(instances.masks), instances.boxes.tolist(),
                                          instances.scores.tolist(), instances.labels.tolist()):
            x0, y0, x1, y1 = box
            detections.append({"image_id": image_id, "file_name": stem, "category_id": int(label) + 1,
                               "segmentation": rle, "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(score)})
    path = output_dir / "results.json"
    path.write_text(json.dumps(detections))
    return [path]
