"""The built-in output formats, a plugin of their own: each result family written in its benchmark's standard files.

Registered under the ``omg.tasks`` entry points like every plugin, with no task: a third-party task whose decode hook
returns, say, a ``SemanticMap`` gets ``--format semantic-png`` from here without writing a line of output code, and a
third-party writer with ``@hookimpl(tryfirst=True)`` on ``omg_open_writer`` can replace one of these.

Every writer writes one sample at a time (see :mod:`omg_core.result_writer`): a sample's own files (PNGs) are complete
on disk when ``write`` returns, files that gather every sample (JSON) are written by ``close``, atomically, for the
samples written so far. Each format is exactly what the matching evaluator of ``omg eval`` reads:

    format             result class                  files                                          evaluator
    semantic-png       SemanticMap, PanopticMap      <stem>.png                                     semantic-png
    coco-panoptic      PanopticMap                   panoptic.json + panoptic/<stem>.png            coco-panoptic
    coco-results-json  Instances, PromptMasks        results.json                                   coco-instances
    interactive-json   PromptMasks                   interactive.json                               (see below)
    vspw-png           SemanticVideo                 <video>/<frame>.png                            vspw
    vipseg-png         PanopticVideo                 <video>/<frame>.png + panoVIPSeg_categories.json
                                                     + videos.json                                  vipseg
    youtube-vis-json   Tracks                        results.json + videos.json                     youtube-vis
    davis-png          PromptTracks                  <video>/<frame>.png (palette)                  vos / davis-jf

Which tasks a format serves: a result family covers an image and a video class (``omg_core.results.FAMILIES``), and
``OutputFormat`` scopes by family or task name only. So image formats are declared by family (any task, built-in or
not, producing that family gets them) and video formats by task name (a third-party video task joins one by declaring
the same format name for its own task in its ``omg_output_formats``: the registry unites the scopes). A format opened
for a task of the other modality (``semantic-png`` for ``video-semantic``, which its family makes legal) is refused
by ``omg_open_writer`` with an InputError naming the formats that fit; a writer handed a result of another class than
it writes raises TypeError (a plugin bug).

Files are named after the input (:meth:`ResultWriter.stem`); a video's frames after ``TaskResult.frame_names``
(``00000``, ``00001``, ... when there are none). Class ``k`` of a vocabulary is category id ``k + 1`` in every COCO-style
JSON (COCO keeps 0 for void), and ``index`` (the sample's position in the run) is its image id (``index + 1`` its video
id in YouTube-VIS files, whose ids start at 1).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from omg_core.errors import InputError
from omg_core.hookspecs import hookimpl
from omg_core.output_formats import OutputFormat
from omg_core.result_writer import ResultWriter, write_bytes_atomic, write_text_atomic
from omg_core.task_info import Modality, TaskInfo

if TYPE_CHECKING:  # torch and NumPy load when something is written, not when `omg tasks` discovers this plugin
    import numpy as np
    import torch

    from omg_core.results import PanopticMap, PanopticVideo, SemanticMap, SemanticVideo
    from omg_core.task_io import TaskResult

#: Unlabelled pixels in semantic PNGs, as the semantic evaluators read them.
PNG_IGNORE = 255
#: Object ids of DAVIS PNGs are 8-bit, 0 background and 255 void: at most 254 objects.
DAVIS_MAX_OBJECTS = 254
#: VIPSeg panomasks: a value below this is stuff (category + 1), at or above a thing ((category + 1) * 100 + instance).
VIPSEG_THING_THRESHOLD = 125
#: VIPSeg panomasks are 16-bit PNGs, so (category + 1) * 100 + 99 <= 65535.
VIPSEG_MAX_CLASSES = 655
VIPSEG_CATEGORIES_FILE = "panoVIPSeg_categories.json"

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
    "COCO results: results.json, one {image_id, file_name, category_id, segmentation (RLE), bbox, score} per "
    "instance (per prompt for prompt masks, category 1 when they have no classes)",
    families=("instances", "prompt-masks"),
)
INTERACTIVE_JSON = OutputFormat(
    "interactive-json",
    "interactive.json: {'objects': [...]}, one record per prompt (image, prompt, mask RLE, predicted IoU) in prompt "
    "order, the object list the interactive-json evaluator reads once IoUs are added",
    families=("prompt-masks",),
)
VSPW_PNG = OutputFormat(
    "vspw-png",
    "VSPW predictions: <video>/<frame>.png class indices (255 = unlabelled), one folder per video",
    tasks=("video-semantic",),
)
VIPSEG_PNG = OutputFormat(
    "vipseg-png",
    "VIPSeg panomasks: <video>/<frame>.png 16-bit (stuff = class + 1, things = (class + 1) * 100 + instance), "
    "panoVIPSeg_categories.json and videos.json (segment scores and tracks)",
    tasks=("video-panoptic",),
)
YOUTUBE_VIS_JSON = OutputFormat(
    "youtube-vis-json",
    "YouTube-VIS results: results.json, one {video_id, category_id, segmentations (RLE or null per frame), score} "
    "per track, and videos.json (video ids -> input names, frame names, sizes; categories)",
    tasks=("video-instance", "ov-vis"),
)
DAVIS_PNG = OutputFormat(
    "davis-png",
    "DAVIS semi-supervised results: <video>/<frame>.png palette PNGs, object k (prompt k) = index k + 1, "
    "0 background, overlaps to the higher score",
    tasks=("vos",),
)
FORMATS = (SEMANTIC_PNG, COCO_PANOPTIC, COCO_RESULTS, INTERACTIVE_JSON, VSPW_PNG, VIPSEG_PNG, YOUTUBE_VIS_JSON,
           DAVIS_PNG)


@hookimpl
def omg_output_formats() -> list[OutputFormat]:
    return list(FORMATS)


@hookimpl
def omg_open_writer(task: TaskInfo, output_dir: Path, output_format: str) -> ResultWriter | None:
    writer_class = WRITERS.get(output_format)
    if writer_class is None:
        return None  # another plugin's format
    if task.modality != writer_class.modality:
        fitting = [name for name, other in WRITERS.items()
                   if other.modality == task.modality and task.result_family in other.families]
        raise InputError(
            f"--format {output_format} writes {writer_class.modality} results, but task {task.name!r} gives "
            f"{task.modality} results; use {' or '.join(fitting) or 'a format of a plugin that writes them'}"
        )
    return writer_class(task, Path(output_dir))


# ------------------------------------------------------------------------------------------------------------ helpers


def png_bytes(array: np.ndarray, palette: np.ndarray | None = None) -> bytes:
    """A lossless PNG of ``array``: (H, W) uint8 grey (or palette indices with ``palette``, 256 x 3 uint8),
    (H, W) uint16 16-bit grey, or (H, W, 3) uint8 RGB."""
    import numpy as np
    from PIL import Image

    if array.ndim == 3:
        image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), mode="RGB")
    elif array.dtype == np.uint16:
        image = Image.fromarray(np.ascontiguousarray(array))  # mode I;16
    else:
        image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), mode="L")
        if palette is not None:
            image = image.convert("P")  # keeps the values as palette indices
            image.putpalette(palette.astype(np.uint8).reshape(-1).tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _write_json(path: Path, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data))


def frame_stems(result: TaskResult, num_frames: int) -> tuple[str, ...]:
    """The stem of each frame's file: ``result.frame_names``, or 00000, 00001, ... when it has none."""
    if result.frame_names is None:
        return tuple(f"{frame:05d}" for frame in range(num_frames))
    names = tuple(str(name) for name in result.frame_names)
    if len(names) != num_frames:
        raise ValueError(f"TaskResult.frame_names has {len(names)} names for a {num_frames}-frame result")
    if len(set(names)) != len(names):
        raise ValueError("TaskResult.frame_names names a frame twice; each frame's file needs its own name")
    return names


def _categories(vocabulary: tuple[str, ...], is_thing: dict[int, bool]) -> list[dict[str, Any]]:
    """COCO categories of a vocabulary: id = class index + 1 (COCO keeps 0 for VOID); classes never seen as stuff or
    thing count as things."""
    return [{"id": index + 1, "name": name, "isthing": int(is_thing.get(index, True))}
            for index, name in enumerate(vocabulary)]


def _class_map(result: SemanticMap | SemanticVideo | PanopticMap) -> np.ndarray:
    """Class indices of a semantic map (any number of leading frame dims) or of a panoptic map (each segment
    painted with its class), uint8, PNG_IGNORE where unlabelled."""
    import numpy as np
    import torch

    from omg_core.results import IGNORE_LABEL, PanopticMap

    if len(result.vocabulary) > PNG_IGNORE:
        raise InputError(
            f"a label PNG holds at most {PNG_IGNORE} classes (255 = unlabelled), but the vocabulary has "
            f"{len(result.vocabulary)}; use a smaller vocabulary or a COCO format"
        )
    if isinstance(result, PanopticMap):
        largest = max([int(result.segment_ids.max()) if result.segment_ids.numel() else 0,
                       *(segment.id for segment in result.segments)])
        lookup = torch.full((largest + 1,), IGNORE_LABEL, dtype=torch.int64)  # segment id -> class, 0 (void) unlabelled
        for segment in result.segments:
            lookup[segment.id] = segment.label
        labels = lookup[result.segment_ids.long()].numpy()
    else:
        labels = result.labels.numpy()
    return np.where(labels == IGNORE_LABEL, PNG_IGNORE, labels).astype(np.uint8)


def _result_classes(names: tuple[str, ...]) -> tuple[type, ...]:
    from omg_core import results

    return tuple(getattr(results, name) for name in names)


class _FormatWriter(ResultWriter):
    """A built-in writer: its format, the modality and result classes it writes; checks each result's class."""

    format: ClassVar[OutputFormat]
    modality: ClassVar[Modality]
    families: ClassVar[tuple[str, ...]]
    result_classes: ClassVar[tuple[str, ...]]  # names in omg_core.results, resolved when writing (torch)

    def write(self, result: TaskResult, index: int) -> list[Path]:
        if not isinstance(result.data, _result_classes(self.result_classes)):
            raise TypeError(
                f"format {self.format.name!r} writes {' / '.join(self.result_classes)}, but task "
                f"{self.task.name!r} gave {type(result.data).__name__}"
            )
        return self.write_sample(result, index, self.stem(result, index))

    def write_sample(self, result: TaskResult, index: int, stem: str) -> list[Path]:
        raise NotImplementedError


# ------------------------------------------------------------------------------------------------------ image formats


class SemanticPngWriter(_FormatWriter):
    """``<stem>.png``: class indices, 255 unlabelled (panoptic maps by each segment's class, void unlabelled)."""

    format, modality, families = SEMANTIC_PNG, "image", ("semantic", "panoptic")
    result_classes = ("SemanticMap", "PanopticMap")

    def write_sample(self, result: TaskResult, index: int, stem: str) -> list[Path]:
        return [write_bytes_atomic(self.output_dir / f"{stem}.png", png_bytes(_class_map(result.data)))]


class CocoPanopticWriter(_FormatWriter):
    """``panoptic/<stem>.png`` RGB id maps (id = R + 256 G + 256^2 B) as each sample comes; ``panoptic.json``
    (images, annotations with segments_info, categories = the vocabulary) on close.

    Listed segments without a pixel are left out of segments_info: panopticapi refuses a JSON segment absent from
    its PNG.
    """

    format, modality, families = COCO_PANOPTIC, "image", ("panoptic",)
    result_classes = ("PanopticMap",)

    def __init__(self, task: TaskInfo, output_dir: Path) -> None:
        super().__init__(task, output_dir)
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self.vocabulary: tuple[str, ...] | None = None
        self.is_thing: dict[int, bool] = {}

    def write_sample(self, result: TaskResult, index: int, stem: str) -> list[Path]:
        import numpy as np
        import torch

        from omg_data.image_io import id_to_rgb

        panoptic: PanopticMap = result.data
        if self.vocabulary is None:
            self.vocabulary = panoptic.vocabulary
        elif panoptic.vocabulary != self.vocabulary:
            raise ValueError("coco-panoptic writes one categories list: every result of a run needs the same vocabulary")
        ids = panoptic.segment_ids.long()
        present, areas = torch.unique(ids, return_counts=True)
        area_of = dict(zip(present.tolist(), areas.tolist()))
        boxes = _segment_boxes(ids, [segment.id for segment in panoptic.segments])
        segments_info = []
        for segment, box in zip(panoptic.segments, boxes):
            if segment.id not in area_of:
                continue
            self.is_thing[segment.label] = segment.is_thing
            segments_info.append({"id": segment.id, "category_id": segment.label + 1, "iscrowd": 0,
                                  "area": int(area_of[segment.id]), "bbox": box, "score": float(segment.score)})
        file_name = f"{stem}.png"
        path = write_bytes_atomic(self.output_dir / "panoptic" / file_name,
                                  png_bytes(id_to_rgb(ids.numpy().astype(np.int64))))
        height, width = ids.shape
        self.images.append({"id": index, "file_name": file_name, "height": int(height), "width": int(width)})
        self.annotations.append({"image_id": index, "file_name": file_name, "segments_info": segments_info})
        return [path]

    def close(self) -> list[Path]:
        categories = _categories(self.vocabulary or (), self.is_thing)
        return [_write_json(self.output_dir / "panoptic.json",
                            {"images": self.images, "annotations": self.annotations, "categories": categories})]


def _segment_boxes(ids: torch.Tensor, segment_ids: list[int]) -> list[list[float]]:
    """COCO [x, y, w, h] of each segment id in an (H, W) id map (zeros for an id with no pixel)."""
    import torch

    from omg_data.geometry import mask_boxes_xyxy

    if not segment_ids:
        return []
    masks = ids[None] == torch.tensor(segment_ids, dtype=ids.dtype)[:, None, None]
    return [[x0, y0, x1 - x0, y1 - y0] for x0, y0, x1, y1 in mask_boxes_xyxy(masks).tolist()]


class CocoResultsWriter(_FormatWriter):
    """``results.json`` on close: a COCO results list, one record per instance (per prompt for prompt masks, with
    its ``prompt_index``), ``category_id`` = class + 1 (1 for prompt masks without classes), a compressed RLE,
    ``bbox`` [x, y, w, h] and ``score``; ``image_id`` = the sample's index, ``file_name`` its stem."""

    format, modality, families = COCO_RESULTS, "image", ("instances", "prompt-masks")
    result_classes = ("Instances", "PromptMasks")

    def __init__(self, task: TaskInfo, output_dir: Path) -> None:
        super().__init__(task, output_dir)
        self.detections: list[dict[str, Any]] = []

    def write_sample(self, result: TaskResult, index: int, stem: str) -> list[Path]:
        from omg_core.postprocess import boxes_from_masks, encode_rles
        from omg_core.results import Instances

        data = result.data
        boxes = data.boxes if isinstance(data, Instances) else boxes_from_masks(data.masks)
        labels = data.labels.tolist() if data.labels is not None else [None] * len(data)
        for position, (rle, box, score, label) in enumerate(
            zip(encode_rles(data.masks), boxes.tolist(), data.scores.tolist(), labels)
        ):
            x0, y0, x1, y1 = box
            record = {"image_id": index, "file_name": stem, "category_id": 1 if label is None else int(label) + 1,
                      "segmentation": rle, "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(score)}
            if not isinstance(data, Instances):
                record["prompt_index"] = position
            self.detections.append(record)
        return []

    def close(self) -> list[Path]:
        return [_write_json(self.output_dir / "results.json", self.detections)]


class InteractiveJsonWriter(_FormatWriter):
    """``interactive.json`` on close: ``{"objects": [...]}``, one record per prompt in prompt order, with the
    image (``image_id`` = index, ``file_name``), ``prompt_index``, the prompt (``points`` / ``point_labels`` without
    padding, ``box``), the mask (``segmentation``, compressed RLE), the predicted IoU (``score``) and, with classes,
    ``category_id`` (class + 1) and ``category``.

    The interactive evaluator scores ``click_ious`` / ``box_iou`` per object, IoUs against ground truth that a run
    does not have: a scoring step adds them to these records, in place (the list is the evaluator's ``objects``).
    """

    format, modality, families = INTERACTIVE_JSON, "image", ("prompt-masks",)
    result_classes = ("PromptMasks",)

    def __init__(self, task: TaskInfo, output_dir: Path) -> None:
        super().__init__(task, output_dir)
        self.objects: list[dict[str, Any]] = []

    def write_sample(self, result: TaskResult, index: int, stem: str) -> list[Path]:
        from omg_core.postprocess import encode_rles

        data = result.data
        prompts = result.prompts
        for position, (rle, score) in enumerate(zip(encode_rles(data.masks), data.scores.tolist())):
            record: dict[str, Any] = {"image_id": index, "file_name": stem, "prompt_index": position}
            if prompts is not None and prompts.points is not None and prompts.point_labels is not None:
                labels = prompts.point_labels[position]
                kept = labels >= 0  # -1 pads prompts to one length
                record["points"] = prompts.points[position][kept].tolist()
                record["point_labels"] = labels[kept].tolist()
            if prompts is not None and prompts.boxes is not None:
                record["box"] = prompts.boxes[position].tolist()
            record.update(segmentation=rle, score=float(score))
            if data.labels is not None and data.vocabulary is not None:
                label = int(data.labels[position])
                record.update(category_id=label + 1, category=data.vocabulary[label])
            self.objects.append(record)
        return []

    def close(self) -> list[Path]:
        return [_write_json(self.output_dir / "interactive.json", {"objects": self.objects})]


# ------------------------------------------------------------------------------------------------------ video formats


def _video_record(result: TaskResult, stem: str, frames: tuple[str, ...], size: tuple[int, int]) -> dict[str, Any]:
    return {"name": stem, "source": None if result.source is None else str(result.source), "frame_names": list(frames),
            "length": len(frames), "height": int(size[0]), "width": int(size[1])}


class VspwPngWriter(_FormatWriter):
    """``<video>/<frame>.png`` class indices (255 unlabelled), what the VSPW evaluator reads as predictions."""

    format, modality, families = VSPW_PNG, "video", ("semantic",)
    result_classes = ("SemanticVideo",)

    def write_sample(self, result: TaskResult, index: int, stem: str) -> list[Path]:
        video: SemanticVideo = result.data
        labels = _class_map(video)  # T x H x W
        return [write_bytes_atomic(self.output_dir / stem / f"{frame}.png", png_bytes(labels[t]))
                for t, frame in enumerate(frame_stems(result, video.num_frames))]


class VipsegPngWriter(_FormatWriter):
    """VIPSeg raw panomasks, as the VIPSeg evaluator reads them (``omg_eval.video_panoptic_files``).

    ``<video>/<frame>.png``: 16-bit, 0 void, a stuff segment ``class + 1`` (``(class + 1) * 100`` from class 124 on,
    where ``class + 1`` would read as a thing), a thing track ``(class + 1) * 100 + instance``, instances numbered
    per class and video in segment-id order from 0 (from 25 for class 0, whose lower values read as stuff). Written
    per video; on close ``panoVIPSeg_categories.json`` (``{id = class, name, isthing}``, the evaluator's label space,
    so the folder also serves as ground truth) and ``videos.json`` (per video: frames, size and each segment's id,
    value, class and score, which the PNGs cannot hold).
    """

    format, modality, families = VIPSEG_PNG, "video", ("panoptic",)
    result_classes = ("PanopticVideo",)

    def __init__(self, task: TaskInfo, output_dir: Path) -> None:
        super().__init__(task, output_dir)
        self.videos: list[dict[str, Any]] = []
        self.vocabulary: tuple[str, ...] | None = None
        self.is_thing: dict[int, bool] = {}

    def write_sample(self, result: TaskResult, index: int, stem: str) -> list[Path]:
        import numpy as np
        import torch

        video: PanopticVideo = result.data
        if self.vocabulary is None:
            self.vocabulary = video.vocabulary
        elif video.vocabulary != self.vocabulary:
            raise ValueError("vipseg-png writes one categories list: every result of a run needs the same vocabulary")
        if len(video.vocabulary) > VIPSEG_MAX_CLASSES:
            raise InputError(f"vipseg-png holds at most {VIPSEG_MAX_CLASSES} classes in its 16-bit PNGs, but the "
                             f"vocabulary has {len(video.vocabulary)}; use a smaller vocabulary")
        for segment in video.segments:
            if self.is_thing.setdefault(segment.label, segment.is_thing) != segment.is_thing:
                raise ValueError(f"class {video.vocabulary[segment.label]!r} is a thing in one segment and stuff in "
                                 "another; VIPSeg's categories file gives each class one kind")
        values = self._values(video, stem)
        largest = max([int(video.segment_ids.max()) if video.segment_ids.numel() else 0, *values])
        lookup = torch.zeros(largest + 1, dtype=torch.int64)  # segment id -> raw value, 0 (void) stays 0
        for segment_id, value in values.items():
            lookup[segment_id] = value
        raw = lookup[video.segment_ids.long()].numpy().astype(np.uint16)  # T x H x W
        frames = frame_stems(result, video.num_frames)
        written = [write_bytes_atomic(self.output_dir / stem / f"{frame}.png", png_bytes(raw[t]))
                   for t, frame in enumerate(frames)]
        record = _video_record(result, stem, frames, tuple(video.segment_ids.shape[1:]))
        record["segments"] = [{"id": s.id, "value": values[s.id], "category_id": s.label, "isthing": int(s.is_thing),
                               "score": float(s.score)} for s in video.segments]
        self.videos.append(record)
        return written

    @staticmethod
    def _values(video: PanopticVideo, stem: str) -> dict[int, int]:
        """Each segment id's raw VIPSeg value."""
        values: dict[int, int] = {}
        next_instance: dict[int, int] = {}
        for segment in sorted(video.segments, key=lambda s: s.id):
            label = segment.label
            if not segment.is_thing:
                values[segment.id] = label + 1 if label + 1 < VIPSEG_THING_THRESHOLD else (label + 1) * 100
                continue
            first = VIPSEG_THING_THRESHOLD - 100 if label == 0 else 0
            instance = next_instance.get(label, first)
            if instance > 99:
                raise InputError(
                    f"video {stem!r} has more than {100 - first} objects of class {video.vocabulary[label]!r}; a "
                    "VIPSeg PNG numbers at most that many per class (instance = value % 100): keep fewer objects"
                )
            next_instance[label] = instance + 1
            values[segment.id] = (label + 1) * 100 + instance
        return values

    def close(self) -> list[Path]:
        categories = [{"id": index, "name": name, "isthing": int(self.is_thing.get(index, True))}
                      for index, name in enumerate(self.vocabulary or ())]
        return [_write_json(self.output_dir / VIPSEG_CATEGORIES_FILE, categories),
                _write_json(self.output_dir / "videos.json", {"videos": self.videos})]


class YoutubeVisWriter(_FormatWriter):
    """On close, ``results.json``: one ``{video_id, category_id, segmentations, score}`` per track, a compressed RLE
    per frame (null where the track is absent), as ytvoseval's ``loadRes`` and ``omg_eval.video_instance_io`` read
    them; and ``videos.json``: ``{"videos": [{id, name, source, frame_names, length, height, width}], "categories":
    [{id, name}]}``, the ``videos`` / ``categories`` of a YouTube-VIS annotation file.

    Results join ground truth by ``video_id``: here the sample's index + 1, the id of ``videos.json``'s entry naming
    the input; to score against a data set's annotation file, its ids must be those (or the results remapped by name).
    """

    format, modality, families = YOUTUBE_VIS_JSON, "video", ("instances",)
    result_classes = ("Tracks",)

    def __init__(self, task: TaskInfo, output_dir: Path) -> None:
        super().__init__(task, output_dir)
        self.tracks: list[dict[str, Any]] = []
        self.videos: list[dict[str, Any]] = []
        self.vocabulary: tuple[str, ...] | None = None

    def write_sample(self, result: TaskResult, index: int, stem: str) -> list[Path]:
        from omg_core.postprocess import encode_rles

        tracks = result.data
        if self.vocabulary is None:
            self.vocabulary = tracks.vocabulary
        elif tracks.vocabulary != self.vocabulary:
            raise ValueError("youtube-vis-json writes one categories list: every result of a run needs one vocabulary")
        video_id = index + 1
        present = tracks.masks.flatten(2).any(dim=2)  # N x T
        for track in range(len(tracks)):
            rles = encode_rles(tracks.masks[track])
            self.tracks.append({
                "video_id": video_id, "category_id": int(tracks.labels[track]) + 1, "score": float(tracks.scores[track]),
                "segmentations": [rle if bool(here) else None for rle, here in zip(rles, present[track])],
            })
        record = _video_record(result, stem, frame_stems(result, tracks.num_frames), tuple(tracks.masks.shape[-2:]))
        self.videos.append({"id": video_id, **record})
        return []

    def close(self) -> list[Path]:
        categories = [{"id": index + 1, "name": name} for index, name in enumerate(self.vocabulary or ())]
        return [_write_json(self.output_dir / "results.json", self.tracks),
                _write_json(self.output_dir / "videos.json", {"videos": self.videos, "categories": categories})]


class DavisPngWriter(_FormatWriter):
    """``<video>/<frame>.png``: DAVIS palette PNGs of object ids, prompt k's track = id k + 1, 0 background; where
    tracks overlap the pixel goes to the higher score (the lower prompt on a tie)."""

    format, modality, families = DAVIS_PNG, "video", ("prompt-masks",)
    result_classes = ("PromptTracks",)

    def write_sample(self, result: TaskResult, index: int, stem: str) -> list[Path]:
        import torch

        from omg_data.image_io import davis_palette

        tracks = result.data
        if len(tracks) > DAVIS_MAX_OBJECTS:
            raise InputError(f"davis-png holds at most {DAVIS_MAX_OBJECTS} objects per video (8-bit ids, 255 void), "
                             f"but video {stem!r} has {len(tracks)} prompts; give fewer")
        palette = davis_palette()
        frames = frame_stems(result, tracks.num_frames)
        written = []
        for t, frame in enumerate(frames):
            masks = tracks.masks[:, t]  # P x H x W
            ids = torch.zeros(masks.shape[-2:], dtype=torch.uint8)
            if len(tracks):
                # each pixel's best covering prompt: argmax takes the first of equal scores, so the lower prompt
                per_pixel = torch.where(masks, tracks.scores.double()[:, None, None], -torch.inf)
                best = per_pixel.argmax(dim=0)
                ids = torch.where(masks.any(dim=0), best + 1, 0).to(torch.uint8)
            written.append(write_bytes_atomic(self.output_dir / stem / f"{frame}.png",
                                              png_bytes(ids.numpy(), palette)))
        return written


#: The writer of each built-in format, by name.
WRITERS: dict[str, type[_FormatWriter]] = {
    writer.format.name: writer
    for writer in (SemanticPngWriter, CocoPanopticWriter, CocoResultsWriter, InteractiveJsonWriter, VspwPngWriter,
                   VipsegPngWriter, YoutubeVisWriter, DavisPngWriter)
}
