"""The built-in output formats, a plugin of their own: they write results by family, for any task that produces them.

Registered under the ``omg.tasks`` entry points like every plugin, with no task: a third-party task whose decode hook
returns, say, a ``SemanticMap`` gets ``--format semantic-png`` from here without writing a line of output code, and a
third-party writer with ``@hookimpl(tryfirst=True)`` can replace one of these.

Each format is what the matching ``omg eval`` evaluator (and the data set's official tool) reads as predictions::

    format              results                        files (under --output)
    semantic-png        SemanticMap, PanopticMap       <stem>.png class indices, 255 unlabelled
    coco-panoptic       PanopticMap                    panoptic/<stem>.png (RGB ids) + panoptic.json
    coco-results-json   Instances, PromptMasks         results.json (COCO results) + images.json (id -> file)
    interactive-json    PromptMasks                    interactive.json {"objects": [one per prompt]}
    vspw-png            SemanticVideo, PanopticVideo   <video>/<frame>.png class indices, 255 unlabelled
    vipseg-png          PanopticVideo                  panomasks/<video>/<frame>.png raw VIPSeg values (16-bit)
                                                       + panoVIPSeg_categories.json
    youtube-vis-json    Tracks                         results.json (YouTube-VIS results) + videos.json (id -> video)
    davis-png           PromptTracks                   <video>/<frame>.png palette ids: prompt k = k + 1, 0 background

Writers write each sample's own files as soon as it is decoded and the gathered JSON files on close (see
:mod:`omg_core.result_writer`); every file is written atomically.
"""

from __future__ import annotations

import io
import json
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omg_core.errors import InputError
from omg_core.hookspecs import hookimpl
from omg_core.output_formats import OutputFormat
from omg_core.result_writer import ResultWriter, write_bytes_atomic, write_text_atomic
from omg_core.task_info import Modality, TaskInfo

if TYPE_CHECKING:  # torch and NumPy load when something is written, not when `omg tasks` discovers this plugin
    import numpy as np
    import torch

    from omg_core.results import PanopticMap, PanopticVideo, SemanticMap, SemanticVideo
    from omg_core.task_io import Prompts, TaskResult

#: Unlabelled pixels in semantic PNGs, as the semantic evaluators read them.
PNG_IGNORE = 255
#: VIPSeg panomasks: a value below this is stuff (category + 1), at or above a thing ((category + 1) * 100 + instance).
VIPSEG_THING_THRESHOLD = 125
#: The file of categories VIPSeg ships beside ``panomasks/`` (where the VIPSeg evaluator looks for the label space).
VIPSEG_CATEGORIES_FILE = "panoVIPSeg_categories.json"
#: Where streamed videos' per-slot RLEs wait until the tracks are chosen (removed when the run ends).
STREAM_SPILL_DIR = ".omg-stream"
#: DAVIS masks are 8-bit ids and 255 is void, so at most 254 objects.
DAVIS_MAX_OBJECTS = 254


@dataclass(frozen=True)
class ModalOutputFormat(OutputFormat):
    """An output format for image results or for video results only.

    A family (``semantic``) covers both a ``SemanticMap`` and a ``SemanticVideo``, but a format holds one of them:
    ``semantic-png`` images, ``vspw-png`` videos. ``modality`` keeps a format out of the other modality's tasks
    (``omg run --format`` and ``formats_for`` consult :meth:`writes_for`).
    """

    modality: Modality | None = None

    def writes_for(self, task: TaskInfo) -> bool:
        return (self.modality is None or task.modality == self.modality) and super().writes_for(task)

    def merged(self, other: OutputFormat) -> OutputFormat:
        joined = super().merged(other)
        return ModalOutputFormat(joined.name, joined.summary, joined.families, joined.tasks, self.modality)


SEMANTIC_PNG = ModalOutputFormat(
    "semantic-png",
    "one PNG of class indices per image (255 = unlabelled), named after the input; panoptic results by segment class",
    families=("semantic", "panoptic"), modality="image",
)
COCO_PANOPTIC = ModalOutputFormat(
    "coco-panoptic",
    "COCO panoptic: panoptic.json (segments_info, categories = the vocabulary) and panoptic/<input>.png id maps",
    families=("panoptic",), modality="image",
)
COCO_RESULTS = ModalOutputFormat(
    "coco-results-json",
    "COCO results: results.json, one {image_id, file_name, category_id, segmentation (RLE), bbox, score} per mask "
    "(prompt masks without classes: category 1), and images.json mapping image ids to input files",
    families=("instances", "prompt-masks"), modality="image",
)
INTERACTIVE_JSON = ModalOutputFormat(
    "interactive-json",
    "interactive.json: {objects: [one per prompt: image_id, file_name, prompt, points/point_labels/box, "
    "segmentation (RLE), score]}",
    families=("prompt-masks",), modality="image",
)
VSPW_PNG = ModalOutputFormat(
    "vspw-png",
    "VSPW: <video>/<frame>.png class indices (255 = unlabelled) per frame; panoptic results by segment class",
    families=("semantic", "panoptic"), modality="video",
)
VIPSEG_PNG = ModalOutputFormat(
    "vipseg-png",
    "VIPSeg: panomasks/<video>/<frame>.png 16-bit raw values (stuff = class + 1, things = (class + 1) * 100 + "
    "instance) and panoVIPSeg_categories.json",
    families=("panoptic",), modality="video",
)
YOUTUBE_VIS_JSON = ModalOutputFormat(
    "youtube-vis-json",
    "YouTube-VIS results: results.json, one {video_id, category_id, segmentations (RLE or null per frame), score} "
    "per track (video_id = input position + 1), and videos.json mapping video ids to inputs and frames",
    families=("instances",), modality="video",
)
DAVIS_PNG = ModalOutputFormat(
    "davis-png",
    "DAVIS semi-supervised results: <video>/<frame>.png palette PNGs, prompt k = object k + 1, 0 = background",
    families=("prompt-masks",), modality="video",
)
FORMATS = (SEMANTIC_PNG, COCO_PANOPTIC, COCO_RESULTS, INTERACTIVE_JSON, VSPW_PNG, VIPSEG_PNG, YOUTUBE_VIS_JSON,
           DAVIS_PNG)


@hookimpl
def omg_output_formats() -> list[OutputFormat]:
    return list(FORMATS)


@hookimpl
def omg_open_writer(task: TaskInfo, output_dir: Path, output_format: str) -> ResultWriter | None:
    writer_class = _WRITERS.get(output_format)
    if writer_class is None:
        return None  # another plugin's format
    return writer_class(task, Path(output_dir))


# -- shared pieces -----------------------------------------------------------------------------------------------


def _png_bytes(array: np.ndarray, palette: bytes | None = None) -> bytes:
    """A lossless PNG of an (H, W) uint8 / uint16 array (palette indices when ``palette`` is given) or an (H, W, 3)
    uint8 RGB array, encoded in memory so that it can be written atomically."""
    import numpy as np
    from PIL import Image

    if array.dtype == np.uint16:
        image = Image.fromarray(array)  # 16-bit grey ("I;16")
    else:
        image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
        if palette is not None:
            image = image.convert("P")
            image.putpalette(palette)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _write_json(path: Path, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data))


def _expect(result: TaskResult, classes: tuple[type, ...], output_format: str) -> Any:
    """``result.data``, refused (TypeError) unless it is one of ``classes``: the task declared a family whose
    results this format writes, but its decode hook returned something else."""
    if not isinstance(result.data, classes):
        names = " or ".join(cls.__name__ for cls in classes)
        raise TypeError(f"format {output_format!r} writes {names} results, got {type(result.data).__name__} "
                        f"from task {result.task!r}")
    return result.data


def _categories(vocabulary: Sequence[str], is_thing: dict[int, bool]) -> list[dict[str, Any]]:
    """COCO-style categories of a vocabulary: id = class index + 1 (COCO keeps 0 for VOID); classes never seen in a
    segment count as things."""
    return [{"id": index + 1, "name": name, "isthing": int(is_thing.get(index, True))}
            for index, name in enumerate(vocabulary)]


def _check_vocabulary(held: tuple[str, ...] | None, vocabulary: tuple[str, ...], output_format: str) -> None:
    if held is not None and held != vocabulary:
        raise ValueError(f"{output_format} writes one categories list: every result of a run needs the same "
                         f"vocabulary ({len(held)} classes first, then {len(vocabulary)})")


def _class_map(labels: torch.Tensor, vocabulary: Sequence[str], output_format: str) -> np.ndarray:
    """(..., H, W) uint8 class indices of an integer label map, IGNORE_LABEL written as PNG_IGNORE."""
    import numpy as np

    from omg_core.results import IGNORE_LABEL

    if len(vocabulary) > PNG_IGNORE:
        raise InputError(f"--format {output_format} holds at most {PNG_IGNORE} classes in 8-bit PNGs (255 = "
                         f"unlabelled); this vocabulary has {len(vocabulary)}: choose a smaller vocabulary")
    array = labels.numpy()
    return np.where(array == IGNORE_LABEL, PNG_IGNORE, array).astype(np.uint8)


def _panoptic_classes(result: PanopticMap | PanopticVideo) -> torch.Tensor:
    """Segment ids painted with their segments' classes; void (0) and ids no segment describes become IGNORE_LABEL."""
    import torch

    from omg_core.results import IGNORE_LABEL

    largest = max([int(result.segment_ids.max()) if result.segment_ids.numel() else 0,
                   *(segment.id for segment in result.segments)])
    lookup = torch.full((largest + 1,), IGNORE_LABEL, dtype=torch.int64)  # segment id -> class
    for segment in result.segments:
        lookup[segment.id] = segment.label
    return lookup[result.segment_ids.long()]


def _semantic_labels(data: SemanticMap | SemanticVideo | PanopticMap | PanopticVideo) -> torch.Tensor:
    from omg_core.results import SemanticMap, SemanticVideo

    return data.labels if isinstance(data, (SemanticMap, SemanticVideo)) else _panoptic_classes(data)


def _file_name(result: TaskResult, stem: str) -> str:
    """The input's file name (what COCO's ``images[].file_name`` holds), or the stem when there is no input file."""
    return Path(result.source).name if result.source is not None else stem


# -- image formats -----------------------------------------------------------------------------------------------


class SemanticPngWriter(ResultWriter):
    """``<stem>.png`` per image: class indices, 255 unlabelled (panoptic maps painted with their segments' classes)."""

    def write(self, result: TaskResult, index: int) -> list[Path]:
        from omg_core.results import PanopticMap, SemanticMap

        data = _expect(result, (SemanticMap, PanopticMap), "semantic-png")
        classes = _class_map(_semantic_labels(data), data.vocabulary, "semantic-png")
        return [write_bytes_atomic(self.output_dir / f"{self.stem(result, index)}.png", _png_bytes(classes))]


class CocoPanopticWriter(ResultWriter):
    """``panoptic/<stem>.png`` (id = R + 256 G + 256^2 B) per image; ``panoptic.json`` on close.

    Image ids are the inputs' positions (a run cannot know the data set's ids); ``omg eval`` joins the images to the
    ground truth's by ``images[].file_name``, the input's name. Segments listed without a pixel are left out of
    ``segments_info``: panopticapi refuses a JSON segment missing from the PNG.
    """

    gathered_records = ("images", "annotations", "is_thing", "vocabulary")

    def __init__(self, task: TaskInfo, output_dir: Path) -> None:
        super().__init__(task, output_dir)
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self.is_thing: dict[int, bool] = {}
        self.vocabulary: tuple[str, ...] | None = None

    def write(self, result: TaskResult, index: int) -> list[Path]:
        import numpy as np
        import torch

        from omg_core.results import PanopticMap
        from omg_data.geometry import mask_boxes_xyxy
        from omg_data.image_io import id_to_rgb

        panoptic: PanopticMap = _expect(result, (PanopticMap,), "coco-panoptic")
        _check_vocabulary(self.vocabulary, panoptic.vocabulary, "coco-panoptic")
        self.vocabulary = panoptic.vocabulary
        stem = self.stem(result, index)
        ids = panoptic.segment_ids.long()
        listed = [segment for segment in panoptic.segments]
        masks = ids[None] == torch.tensor([segment.id for segment in listed], dtype=torch.int64)[:, None, None]
        areas = masks.flatten(1).sum(1).tolist() if listed else []
        boxes = mask_boxes_xyxy(masks).tolist() if listed else []
        segments_info = []
        for segment, area, (x0, y0, x1, y1) in zip(listed, areas, boxes):
            if area == 0:
                continue
            self.is_thing.setdefault(segment.label, segment.is_thing)
            segments_info.append({"id": segment.id, "category_id": segment.label + 1, "iscrowd": 0, "area": int(area),
                                  "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(segment.score)})
        file_name = f"{stem}.png"
        path = write_bytes_atomic(self.output_dir / "panoptic" / file_name,
                                  _png_bytes(id_to_rgb(ids.numpy().astype(np.int64))))
        height, width = ids.shape
        self.images.append({"id": index, "file_name": _file_name(result, stem), "height": height, "width": width})
        self.annotations.append({"image_id": index, "file_name": file_name, "segments_info": segments_info})
        return [path]

    def close(self) -> list[Path]:
        data = {"images": self.images, "annotations": self.annotations,
                "categories": _categories(self.vocabulary or (), self.is_thing)}
        return [_write_json(self.output_dir / "panoptic.json", data)]


class CocoResultsWriter(ResultWriter):
    """``results.json`` (COCO results: one detection per mask) and ``images.json`` (image id -> input file, size and
    the categories) on close. Image ids are the inputs' positions (``omg eval`` joins each detection to the ground
    truth's image by its ``file_name``, the input's name); category id = class index + 1, or 1 for prompt masks
    without classes (each detection of prompt masks also says which ``prompt`` it answers)."""

    gathered_records = ("detections", "images", "vocabulary")

    def __init__(self, task: TaskInfo, output_dir: Path) -> None:
        super().__init__(task, output_dir)
        self.detections: list[dict[str, Any]] = []
        self.images: list[dict[str, Any]] = []
        self.vocabulary: tuple[str, ...] | None = None

    def write(self, result: TaskResult, index: int) -> list[Path]:
        from omg_core.postprocess import boxes_from_masks, encode_rles
        from omg_core.results import Instances, PromptMasks

        data = _expect(result, (Instances, PromptMasks), "coco-results-json")
        vocabulary = data.vocabulary if data.labels is not None else ("object",)
        _check_vocabulary(self.vocabulary, vocabulary, "coco-results-json")
        self.vocabulary = vocabulary
        stem = self.stem(result, index)
        file_name = _file_name(result, stem)
        boxes = data.boxes if isinstance(data, Instances) else boxes_from_masks(data.masks)
        labels = data.labels.tolist() if data.labels is not None else [0] * len(data)
        for number, (rle, (x0, y0, x1, y1), score, label) in enumerate(
            zip(encode_rles(data.masks), boxes.tolist(), data.scores.tolist(), labels)
        ):
            detection = {"image_id": index, "file_name": file_name, "category_id": int(label) + 1,
                         "segmentation": rle, "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(score)}
            if isinstance(data, PromptMasks):
                detection["prompt"] = number
            self.detections.append(detection)
        height, width = data.masks.shape[-2:]
        self.images.append({"id": index, "file_name": file_name, "height": int(height), "width": int(width)})
        return []

    def close(self) -> list[Path]:
        images = {"images": self.images, "categories": _categories(self.vocabulary or (), {})}
        return [_write_json(self.output_dir / "results.json", self.detections),
                _write_json(self.output_dir / "images.json", images)]


def _prompt_record(prompts: Prompts | None, number: int) -> dict[str, Any]:
    """What prompt ``number`` was: its points (padding left out) and labels, and its box."""
    if prompts is None or number >= prompts.num_prompts:
        return {}
    record: dict[str, Any] = {}
    if prompts.points is not None and prompts.point_labels is not None:
        used = prompts.point_labels[number] >= 0
        record["points"] = prompts.points[number][used].tolist()
        record["point_labels"] = prompts.point_labels[number][used].tolist()
    if prompts.boxes is not None:
        record["box"] = prompts.boxes[number].tolist()
    return record


class InteractiveJsonWriter(ResultWriter):
    """``interactive.json`` on close: ``{"objects": [...]}``, one object per prompt of every image, in order, with
    ``image_id`` (the input's position), ``file_name``, ``prompt`` (its number), the prompt itself (``points`` and
    ``point_labels`` without padding, ``box``), the mask as a COCO RLE ``segmentation`` with its ``area`` and
    ``bbox`` [x, y, w, h], the predicted IoU ``score``, and ``category_id`` / ``category`` when the masks are
    classified. ``omg eval --task interactive --ground-truth GT.json`` (COCO instances) scores it: each prompt is
    joined to its object (by ``annotation_id`` or by where it points) and scored by mask IoU."""

    gathered_records = ("objects",)

    def __init__(self, task: TaskInfo, output_dir: Path) -> None:
        super().__init__(task, output_dir)
        self.objects: list[dict[str, Any]] = []

    def write(self, result: TaskResult, index: int) -> list[Path]:
        from omg_core.postprocess import boxes_from_masks, encode_rles
        from omg_core.results import PromptMasks

        data: PromptMasks = _expect(result, (PromptMasks,), "interactive-json")
        file_name = _file_name(result, self.stem(result, index))
        areas = data.masks.flatten(1).sum(1).tolist()
        for number, (rle, area, (x0, y0, x1, y1), score) in enumerate(
            zip(encode_rles(data.masks), areas, boxes_from_masks(data.masks).tolist(), data.scores.tolist())
        ):
            entry: dict[str, Any] = {"image_id": index, "file_name": file_name, "prompt": number,
                                     **_prompt_record(result.prompts, number), "segmentation": rle, "area": int(area),
                                     "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(score)}
            if data.labels is not None and data.vocabulary is not None:
                label = int(data.labels[number])
                entry.update(category_id=label + 1, category=data.vocabulary[label])
            self.objects.append(entry)
        return []

    def close(self) -> list[Path]:
        return [_write_json(self.output_dir / "interactive.json", {"objects": self.objects})]


# -- video formats -----------------------------------------------------------------------------------------------


class VideoResultWriter(ResultWriter):
    """A writer of one video per sample: names its folder after the input (a frame folder's whole name) and its
    per-frame files after ``result.frame_names`` (00000, 00001, ... when there are none)."""

    def stem(self, result: TaskResult, index: int) -> str:
        if result.source is not None and Path(result.source).is_dir():  # a frame folder: "a.b" is a name, not a.b
            stem = Path(result.source).name
            if stem in self._stems:
                stem = f"{stem}_{index}"
            self._stems.add(stem)
            return stem
        return super().stem(result, index)

    def __init__(self, task: TaskInfo, output_dir: Path) -> None:
        super().__init__(task, output_dir)
        self._video_stems: dict[int, str] = {}  # streamed videos in progress: index -> stem

    def video_stem(self, result: TaskResult, index: int) -> str:
        """The stem of streamed video ``index``: chosen at its first tube, the same for every later one."""
        if index not in self._video_stems:
            self._video_stems[index] = self.stem(result, index)
        return self._video_stems[index]

    def finish_video(self, result: TaskResult | None, index: int) -> list[Path]:
        self._video_stems.pop(index, None)
        return []

    @staticmethod
    def frame_stems(result: TaskResult, num_frames: int) -> list[str]:
        if result.frame_names is None:
            return [f"{frame:05d}" for frame in range(num_frames)]
        if len(result.frame_names) != num_frames:
            raise ValueError(f"the result of {result.source} has {num_frames} frames but {len(result.frame_names)} "
                             f"frame names")
        return [Path(name).stem for name in result.frame_names]


class VspwPngWriter(VideoResultWriter):
    """``<video>/<frame>.png`` class indices (0 .. K-1, 255 unlabelled), the predictions the VSPW evaluator reads."""

    def write(self, result: TaskResult, index: int) -> list[Path]:
        return self._write_frames(result, self.stem(result, index))

    streams = True

    def write_chunk(self, result: TaskResult, index: int) -> list[Path]:
        return self._write_frames(result, self.video_stem(result, index))

    def _write_frames(self, result: TaskResult, video: str) -> list[Path]:
        from omg_core.results import PanopticVideo, SemanticVideo

        data = _expect(result, (SemanticVideo, PanopticVideo), "vspw-png")
        classes = _class_map(_semantic_labels(data), data.vocabulary, "vspw-png")  # T x H x W
        folder = self.output_dir / video
        return [write_bytes_atomic(folder / f"{name}.png", _png_bytes(frame))
                for name, frame in zip(self.frame_stems(result, data.num_frames), classes)]


def _vipseg_first_number(label: int) -> int:
    # VIPSeg reads a raw value v >= 125 as a thing ((class + 1) * 100 + n): class 0's tracks start at n = 25
    return 25 if label == 0 else 0


def _vipseg_thing_capacity(label: int) -> int:
    """How many tracks of class `label` one VIPSeg mask can number."""
    return 100 - _vipseg_first_number(label)


def _vipseg_thing_value(label: int, number: int) -> int:
    """The raw VIPSeg value of the `number`-th (0-based) track of thing class `label`."""
    return (label + 1) * 100 + _vipseg_first_number(label) + number


class VipsegPngWriter(VideoResultWriter):
    """``panomasks/<video>/<frame>.png``: 16-bit raw VIPSeg values, as the data set's panomasks and our VIPSeg
    evaluator read them: 0 void, a stuff segment of class c is c + 1, the n-th thing track of class c in the video is
    (c + 1) * 100 + n; on close ``panoVIPSeg_categories.json`` ({id = class, name, isthing}) beside ``panomasks/``.

    Instance numbers count each class's thing tracks in segment-id order, so a track keeps its value in every frame.
    The encoding holds 100 instances per class and video (75 for class 0, whose values 100..124 would read as stuff):
    beyond that the lowest-scored tracks are left void, with a warning.
    """

    gathered_records = ("is_thing", "vocabulary")

    def __init__(self, task: TaskInfo, output_dir: Path) -> None:
        super().__init__(task, output_dir)
        self.is_thing: dict[int, bool] = {}
        self.vocabulary: tuple[str, ...] | None = None
        # streamed videos: per video, (segment id, class) -> raw value and per class the tracks numbered so far
        self._streamed: dict[int, tuple[dict[tuple[int, int], int], dict[int, int]]] = {}

    def write(self, result: TaskResult, index: int) -> list[Path]:
        from omg_core.results import PanopticVideo

        data: PanopticVideo = _expect(result, (PanopticVideo,), "vipseg-png")
        _check_vocabulary(self.vocabulary, data.vocabulary, "vipseg-png")
        self.vocabulary = data.vocabulary
        video = self.stem(result, index)
        return self._write_frames(result, data, video, self._raw_values(data, video))

    streams = True

    def write_chunk(self, result: TaskResult, index: int) -> list[Path]:
        """A streamed video's tube: a thing track keeps the value it got in the first tube it appeared in (values are
        handed out in order of appearance; a slot whose class changes between tubes becomes a new track)."""
        from omg_core.results import PanopticVideo

        data: PanopticVideo = _expect(result, (PanopticVideo,), "vipseg-png")
        _check_vocabulary(self.vocabulary, data.vocabulary, "vipseg-png")
        self.vocabulary = data.vocabulary
        video = self.video_stem(result, index)
        state = self._streamed.setdefault(index, ({}, {}))
        return self._write_frames(result, data, video, self._streamed_values(data, video, *state))

    def finish_video(self, result: TaskResult | None, index: int) -> list[Path]:
        self._streamed.pop(index, None)
        return super().finish_video(result, index)

    def _streamed_values(self, data: PanopticVideo, video: str, values: dict[tuple[int, int], int],
                         counts: dict[int, int]) -> dict[int, int]:
        """Raw values of a tube's segments from the video's running (segment id, class) -> value table."""
        chunk_values: dict[int, int] = {}
        for segment in data.segments:
            self.is_thing.setdefault(segment.label, segment.is_thing)
            if not segment.is_thing:
                chunk_values[segment.id] = self._stuff_value(segment, data)
                continue
            key = (segment.id, segment.label)
            if key not in values:
                self._check_thing_class(segment, data)
                number = counts.get(segment.label, 0)
                counts[segment.label] = number + 1
                capacity = _vipseg_thing_capacity(segment.label)
                if number == capacity:
                    warnings.warn(f"vipseg-png: video {video!r} has more than {capacity} tracks of class "
                                  f"{segment.label} ({data.vocabulary[segment.label]!r}); VIPSeg masks hold "
                                  f"{capacity}, so the later ones are left void", stacklevel=2)
                values[key] = 0 if number >= capacity else _vipseg_thing_value(segment.label, number)
            if values[key]:
                chunk_values[segment.id] = values[key]
        return chunk_values

    def _write_frames(self, result: TaskResult, data: PanopticVideo, video: str, values: dict[int, int]) -> list[Path]:
        import numpy as np
        import torch

        ids = data.segment_ids.long()
        largest = max([int(ids.max()) if ids.numel() else 0, *values])
        lookup = torch.zeros(largest + 1, dtype=torch.int64)  # segment id -> raw value; void and dropped ids stay 0
        for segment_id, value in values.items():
            lookup[segment_id] = value
        raw = lookup[ids].numpy().astype(np.uint16)  # T x H x W
        folder = self.output_dir / "panomasks" / video
        return [write_bytes_atomic(folder / f"{name}.png", _png_bytes(frame))
                for name, frame in zip(self.frame_stems(result, data.num_frames), raw)]

    def _raw_values(self, data: PanopticVideo, video: str) -> dict[int, int]:
        """Each segment id's raw VIPSeg value (segments that cannot be written are left out)."""
        values: dict[int, int] = {}
        things: dict[int, list[Any]] = {}
        for segment in data.segments:
            self.is_thing.setdefault(segment.label, segment.is_thing)
            if segment.is_thing:
                self._check_thing_class(segment, data)
                things.setdefault(segment.label, []).append(segment)
            else:
                values[segment.id] = self._stuff_value(segment, data)
        for label, segments in things.items():
            capacity = _vipseg_thing_capacity(label)
            if len(segments) > capacity:
                kept = sorted(segments, key=lambda segment: -segment.score)[:capacity]
                warnings.warn(f"vipseg-png: video {video!r} has {len(segments)} tracks of class {label} "
                              f"({data.vocabulary[label]!r}); VIPSeg masks hold {capacity}, so the "
                              f"{len(segments) - capacity} lowest-scored are left void", stacklevel=2)
                segments = [segment for segment in segments if segment in kept]
            for number, segment in enumerate(sorted(segments, key=lambda segment: segment.id)):
                values[segment.id] = _vipseg_thing_value(label, number)
        return values

    @staticmethod
    def _check_thing_class(segment: Any, data: PanopticVideo) -> None:
        if (segment.label + 1) * 100 + 99 > 0xFFFF:
            raise InputError(f"--format vipseg-png holds thing classes up to 654 in 16-bit PNGs; class "
                             f"{segment.label} ({data.vocabulary[segment.label]!r}) is beyond: use fewer classes")

    @staticmethod
    def _stuff_value(segment: Any, data: PanopticVideo) -> int:
        if segment.label + 1 >= VIPSEG_THING_THRESHOLD:
            raise InputError(f"--format vipseg-png holds stuff classes 0..{VIPSEG_THING_THRESHOLD - 2} (raw "
                             f"values below {VIPSEG_THING_THRESHOLD}); class {segment.label} "
                             f"({data.vocabulary[segment.label]!r}) is beyond: use fewer classes")
        return segment.label + 1

    def close(self) -> list[Path]:
        categories = [{"id": index, "name": name, "isthing": int(self.is_thing.get(index, True))}
                      for index, name in enumerate(self.vocabulary or ())]
        return [_write_json(self.output_dir / VIPSEG_CATEGORIES_FILE, categories)]


class YouTubeVisWriter(VideoResultWriter):
    """``results.json``: one ``{video_id, category_id, segmentations, score}`` per track, a COCO RLE per frame or
    null where the track has no pixel, as ytvoseval's ``loadRes`` reads it; ``videos.json``: each video's id, name,
    source, frame names and size, and the categories (id = class index + 1), to join the ids to an annotation file.

    Video ids are the inputs' positions + 1; ``omg eval`` joins them to an annotation file by video name through
    ``videos.json``, so the order a run covered the videos in does not matter.
    """

    gathered_records = ("tracks", "videos", "vocabulary")

    def __init__(self, task: TaskInfo, output_dir: Path) -> None:
        super().__init__(task, output_dir)
        self.tracks: list[dict[str, Any]] = []
        self.videos: list[dict[str, Any]] = []
        self.vocabulary: tuple[str, ...] | None = None
        self._streamed: dict[int, dict[str, Any]] = {}  # streamed videos in progress: index -> stem, frame names

    def write(self, result: TaskResult, index: int) -> list[Path]:
        from omg_core.postprocess import encode_rles
        from omg_core.results import Tracks

        data: Tracks = _expect(result, (Tracks,), "youtube-vis-json")
        _check_vocabulary(self.vocabulary, data.vocabulary, "youtube-vis-json")
        self.vocabulary = data.vocabulary
        video_id = index + 1
        present = data.masks.flatten(2).any(2)  # N x T
        for track, (score, label) in enumerate(zip(data.scores.tolist(), data.labels.tolist())):
            rles = encode_rles(data.masks[track])
            segmentations = [rle if bool(here) else None for rle, here in zip(rles, present[track])]
            self.tracks.append({"video_id": video_id, "category_id": int(label) + 1, "segmentations": segmentations,
                                "score": float(score)})
        height, width = data.masks.shape[-2:]
        self.videos.append({"id": video_id, "name": self.stem(result, index),
                            "source": str(result.source) if result.source is not None else None,
                            "frame_names": self.frame_stems(result, data.num_frames), "length": data.num_frames,
                            "height": int(height), "width": int(width)})
        return []

    # -- streamed videos: every slot's RLEs spill to a file per video; the chosen tracks are read back at the end
    streams = True

    def _spill_path(self, index: int) -> Path:
        return self.output_dir / STREAM_SPILL_DIR / f"{index:08d}.jsonl"

    def write_chunk(self, result: TaskResult, index: int) -> list[Path]:
        from omg_core.results import TrackFrames

        data: TrackFrames = _expect(result, (TrackFrames,), "youtube-vis-json")
        _check_vocabulary(self.vocabulary, data.vocabulary, "youtube-vis-json")
        self.vocabulary = data.vocabulary
        state = self._streamed.setdefault(index, {"frame_names": []})
        state["stem"] = self.video_stem(result, index)
        state["frame_names"].extend(self.frame_stems(result, data.num_frames))
        spill = self._spill_path(index)
        spill.parent.mkdir(exist_ok=True)
        with open(spill, "a", encoding="utf-8") as file:  # one line per tube: slot -> its frames' RLEs (or null)
            file.write(json.dumps({"first_frame": data.first_frame, "rles": data.rles}) + "\n")
        return []

    def finish_video(self, result: TaskResult | None, index: int) -> list[Path]:
        from omg_core.results import TrackSelection

        state = self._streamed.pop(index, None)
        if result is None or state is None:
            raise ValueError(f"video {index}: finish_video needs the TrackSelection of a video written by write_chunk")
        data: TrackSelection = _expect(result, (TrackSelection,), "youtube-vis-json")
        chosen = {int(slot) for slot in data.slots}
        frames: dict[int, list[dict[str, Any] | None]] = {slot: [] for slot in chosen}
        spill = self._spill_path(index)
        with open(spill, encoding="utf-8") as file:  # only the chosen slots' RLEs are kept
            for line in file:
                rles = json.loads(line)["rles"]
                for slot in chosen:
                    frames[slot].extend(rles[slot])
        spill.unlink()
        video_id = index + 1
        for slot, score, label in zip(data.slots.tolist(), data.scores.tolist(), data.labels.tolist()):
            self.tracks.append({"video_id": video_id, "category_id": int(label) + 1,
                                "segmentations": frames[slot], "score": float(score)})
        height, width = data.size
        self.videos.append({"id": video_id, "name": state["stem"],
                            "source": str(result.source) if result.source is not None else None,
                            "frame_names": state["frame_names"], "length": data.num_frames,
                            "height": int(height), "width": int(width)})
        return super().finish_video(result, index)

    def close(self) -> list[Path]:
        shutil.rmtree(self.output_dir / STREAM_SPILL_DIR, ignore_errors=True)  # an interrupted stream's spill
        videos = {"videos": self.videos, "categories": _categories(self.vocabulary or (), {})}
        return [_write_json(self.output_dir / "results.json", self.tracks),
                _write_json(self.output_dir / "videos.json", videos)]


def davis_palette() -> bytes:
    """The 256-colour palette of DAVIS masks (PASCAL VOC's bit-interleaved colour map: 0 black, 1 red, 2 green...)."""
    colours = bytearray()
    for index in range(256):
        red = green = blue = 0
        value = index
        for shift in range(7, -1, -1):
            red |= (value & 1) << shift
            green |= ((value >> 1) & 1) << shift
            blue |= ((value >> 2) & 1) << shift
            value >>= 3
        colours += bytes((red, green, blue))
    return bytes(colours)


class DavisPngWriter(VideoResultWriter):
    """``<video>/<frame>.png``: DAVIS semi-supervised results, one palette PNG per frame whose index is the object:
    prompt k's track is k + 1, 0 background. Where tracks overlap, the higher-scored one wins (the lower prompt number
    on a tie)."""

    def write(self, result: TaskResult, index: int) -> list[Path]:
        import numpy as np
        import torch

        from omg_core.results import PromptTracks

        data: PromptTracks = _expect(result, (PromptTracks,), "davis-png")
        if len(data) > DAVIS_MAX_OBJECTS:
            raise InputError(f"--format davis-png holds {DAVIS_MAX_OBJECTS} objects per video (8-bit ids, 255 void); "
                             f"{result.source} has {len(data)} prompts: give fewer")
        ids = torch.zeros(data.masks.shape[1:], dtype=torch.uint8)  # T x H x W
        scores = data.scores.tolist()
        for number in sorted(range(len(data)), key=lambda k: (scores[k], -k)):  # the highest score is painted last
            ids[data.masks[number]] = number + 1
        folder = self.output_dir / self.stem(result, index)
        palette = davis_palette()
        return [write_bytes_atomic(folder / f"{name}.png", _png_bytes(frame, palette))
                for name, frame in zip(self.frame_stems(result, data.num_frames), ids.numpy().astype(np.uint8))]


_WRITERS: dict[str, type[ResultWriter]] = {
    "semantic-png": SemanticPngWriter,
    "coco-panoptic": CocoPanopticWriter,
    "coco-results-json": CocoResultsWriter,
    "interactive-json": InteractiveJsonWriter,
    "vspw-png": VspwPngWriter,
    "vipseg-png": VipsegPngWriter,
    "youtube-vis-json": YouTubeVisWriter,
    "davis-png": DavisPngWriter,
}
