"""Reading what a user points ``omg run`` at: images, frame folders, video files, dataset roots and prompt files.

Everything a user can get wrong is caught here before the model is built, each as one line that names the file and the
fix: :func:`plan_inputs` decides which samples a path holds (names only), :func:`check_source` opens each one's headers,
:func:`read_prompts` validates a prompt file on its own and :func:`check_prompts_fit` against an image's size.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from omg_core.errors import InputError
from omg_core.task_info import Modality
from omg_core.task_io import Prompts

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"})
# DAVIS keeps frames under JPEGImages/<resolution>/<video>/; 480p is the resolution its benchmark is scored at
DAVIS_RESOLUTIONS = ("480p", "Full-Resolution")


@dataclass(frozen=True)
class InputSource:
    """One sample to run: an image file, or a clip (a folder of frames or a video file). Holds paths only; pixels are
    decoded when the sample runs.

    Attributes:
      path: the image file, the video file or the frame folder.
      modality: 'image' or 'video'.
      name: what outputs are named after: the file's stem, or the frame folder's name (e.g. a YouTube-VIS video id).
    """

    path: Path
    modality: Modality
    name: str = field(default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        if not self.name:
            object.__setattr__(self, "name", self.path.name if self.path.is_dir() else self.path.stem)


def plan_inputs(path: Path, modality: Modality) -> list[InputSource]:
    """Decide which samples ``path`` holds for a task of ``modality``, from names only (nothing is opened).

    Image tasks take:
      - an image file (one sample);
      - a folder of images, each one sample, sorted by file name (subfolders are not searched).
    Video tasks take:
      - a video file (one clip);
      - a folder of frames (one clip, frames in natural name order: "9.jpg" before "10.jpg");
      - a folder of video files and/or folders of frames, each one clip, sorted by name;
      - a dataset root: YouTube-VIS ``<split>/`` (clips under ``JPEGImages/<video>/``) or DAVIS (clips under
        ``JPEGImages/480p/<video>/``; the root, ``JPEGImages`` or ``JPEGImages/480p`` may be given).
    A folder that holds frames directly is one clip, whatever else it holds: its subfolders and video files are
    ignored. Hidden files and folders (".name") are skipped. Sample names (file stem / folder name) must be unique,
    since outputs are named after them.

    Raises:
      InputError: the path is missing, is the wrong kind of input for the task, or holds nothing usable.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"--input {path}: no such file or folder")
    if modality == "image":
        if path.is_file():
            _check_image_suffix(path)
            return [InputSource(path, "image")]
        images = _files_in(path, IMAGE_SUFFIXES)
        if not images:
            hint = "; subfolders are not searched, give the folder that holds the images" if _subfolders(path) else ""
            raise InputError(f"--input {path}: the folder holds no images ({_names(IMAGE_SUFFIXES)}){hint}")
        return _unique_names([InputSource(image, "image") for image in images], path)
    if path.is_file():
        _check_video_suffix(path)
        return [InputSource(path, "video")]
    return _plan_clips(path)


def _check_image_suffix(path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        raise InputError(f"--input {path} is a video, but this is an image task; extract frames, or pick a video task")
    if suffix not in IMAGE_SUFFIXES:
        raise InputError(f"--input {path}: {suffix or 'no suffix'} is not an image ({_names(IMAGE_SUFFIXES)})")


def _check_video_suffix(path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        raise InputError(
            f"--input {path} is a single image, but this is a video task; give a folder of frames or a video file"
        )
    if suffix not in VIDEO_SUFFIXES:
        raise InputError(f"--input {path}: {suffix or 'no suffix'} is not a video ({_names(VIDEO_SUFFIXES)})")


def _plan_clips(folder: Path) -> list[InputSource]:
    """The clips of a folder given to a video task (see :func:`plan_inputs` for the rules)."""
    if _has_frames(folder):
        return [InputSource(folder, "video")]
    root = folder
    if (root / "JPEGImages").is_dir():  # YouTube-VIS split folder or DAVIS root
        root = root / "JPEGImages"
    # only under JPEGImages: elsewhere a folder named "480p" may be a clip
    resolution = next((name for name in DAVIS_RESOLUTIONS if (root / name).is_dir()), None)
    if root.name == "JPEGImages" and resolution is not None:
        root = root / resolution
    clips = [
        InputSource(entry, "video")
        for entry in sorted(_visible(root), key=lambda entry: entry.name)
        if (entry.is_file() and entry.suffix.lower() in VIDEO_SUFFIXES) or (entry.is_dir() and _has_frames(entry))
    ]
    if not clips:
        raise InputError(
            f"--input {folder}: the folder holds no frames, video files or folders of frames "
            f"(frames: {_names(IMAGE_SUFFIXES)}; videos: {_names(VIDEO_SUFFIXES)}); for a dataset give the folder "
            "that holds JPEGImages/"
        )
    return _unique_names(clips, folder)


def _visible(folder: Path) -> Iterator[Path]:
    return (entry for entry in folder.iterdir() if not entry.name.startswith("."))


def _files_in(folder: Path, suffixes: frozenset[str]) -> list[Path]:
    return sorted(p for p in _visible(folder) if p.suffix.lower() in suffixes and p.is_file())


def _has_frames(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() for p in _visible(folder))


def _subfolders(folder: Path) -> bool:
    return any(entry.is_dir() for entry in _visible(folder))


def _unique_names(sources: list[InputSource], folder: Path) -> list[InputSource]:
    """Outputs are named after the sources: two sources with one name (a.png and a.jpg, a.mp4 and a/) would overwrite
    each other's results."""
    seen: dict[str, Path] = {}
    for source in sources:
        if source.name in seen:
            raise InputError(
                f"--input {folder}: {seen[source.name].name} and {source.path.name} would both write outputs named "
                f"{source.name!r}; rename or move one of them"
            )
        seen[source.name] = source.path
    return sources


def _names(suffixes: frozenset[str]) -> str:
    return ", ".join(sorted(suffixes))


def frame_names(source: InputSource, num_frames: int | None = None) -> tuple[str, ...]:
    """The names of a clip's frames, in the order :func:`iter_frames` yields them.

    Arguments:
      source: a clip (an image source gives its own name).
      num_frames: for a video file, how many frames were decoded; None decodes the video once to count them.
    Returns:
      the frame files' stems for a frame folder; "00000", "00001", ... for a video file (numbered by decoded frame).
    """
    if source.modality == "image":
        return (source.name,)
    if source.path.is_dir():
        from omg_data.video_stream import list_frames

        return tuple(frame.stem for frame in list_frames(source.path))
    if num_frames is None:
        num_frames = sum(1 for _ in _stream_frames(source))
    return tuple(f"{index:05d}" for index in range(num_frames))


def declared_frame_count(source: InputSource) -> int | None:
    """How many frames a clip has, without decoding it: a frame folder's frame files, a video file's count from its
    container (None when the container does not say)."""
    if source.modality == "image":
        return 1
    if source.path.is_dir():
        from omg_data.video_stream import list_frames

        return len(list_frames(source.path))
    import av

    try:
        with av.open(str(source.path)) as container:
            count = int(container.streams.video[0].frames) if container.streams.video else 0
    except (av.error.FFmpegError, OSError, IndexError):
        return None
    return count or None


def check_source(source: InputSource) -> str | None:
    """Why ``source`` cannot be used, as one line naming the file, or None when it looks fine.

    Cheap: image headers (PIL opens a file without decoding its pixels), and for a video file one decoded frame. A frame
    folder's frames must all be images of one size. Damage past the headers (a truncated JPEG, a video cut short) still
    surfaces later, as an InputError from :func:`read_image` / :func:`iter_frames`.
    """
    try:
        if source.modality == "image":
            _image_header(source.path, source.path.name)
        elif source.path.is_dir():
            _frame_folder_size(source)
        else:
            _video_header(source.path, decode_first=True)
    except InputError as error:
        return str(error)
    return None


def source_size(source: InputSource) -> tuple[int, int]:
    """(H, W) of an image or of a clip's frames, from headers. Raises InputError when they cannot be read."""
    if source.modality == "image":
        width, height = _image_header(source.path, source.path.name)
        return height, width
    if source.path.is_dir():
        return _frame_folder_size(source)
    return _video_header(source.path, decode_first=False)


def _image_header(path: Path, label: str) -> tuple[int, int]:
    """(W, H) from an image file's header; InputError ``"<label>: <reason>"`` when it is not a usable image."""
    from PIL import Image, UnidentifiedImageError

    from omg_data.image_io import TRANSPOSING_ORIENTATIONS, exif_orientation

    try:
        with Image.open(path) as image:
            size, mode = image.size, image.mode
            if exif_orientation(image) in TRANSPOSING_ORIENTATIONS:  # decoded upright, so W and H swap
                size = (size[1], size[0])
    except UnidentifiedImageError:
        raise InputError(f"{label}: not an image (cannot identify image file); replace it or move it away") from None
    except Image.DecompressionBombError as error:  # not an OSError: it would escape as a traceback
        raise InputError(f"{label}: too large to decode safely ({error}); downscale it first") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise InputError(f"{label}: not a readable image ({error}); replace it or move it away") from error
    if not _converts_to_rgb(mode):
        raise InputError(f"{label}: {mode} pixels cannot be read as RGB; save the image as 8-bit RGB")
    if min(size) < 1:
        raise InputError(f"{label}: the image is {size[0]}x{size[1]} pixels; it holds no pixels")
    return size


def _converts_to_rgb(mode: str) -> bool:
    # whether PIL has a conversion from this mode to RGB, tried on a 1 x 1 image rather than on the real pixels
    from PIL import Image

    try:
        Image.new(mode, (1, 1)).convert("RGB")
    except (ValueError, OSError):
        return False
    return True


def _frame_folder_size(source: InputSource) -> tuple[int, int]:
    """(H, W) shared by every frame of a folder, from headers; InputError naming the first frame that differs."""
    from omg_data.video_stream import list_frames

    frames = list_frames(source.path)
    if not frames:
        raise InputError(f"{source.name}: the folder holds no frames ({_names(IMAGE_SUFFIXES)})")
    first_size = _image_header(frames[0], f"{source.name}/{frames[0].name}")
    for frame in frames[1:]:
        size = _image_header(frame, f"{source.name}/{frame.name}")
        if size != first_size:
            raise InputError(
                f"{source.name}/{frame.name}: frame is {size[0]}x{size[1]} (W x H), the first frame "
                f"{frames[0].name} {first_size[0]}x{first_size[1]}; all frames of a clip must have one size, resize them"
            )
    return first_size[1], first_size[0]


def _video_header(path: Path, decode_first: bool) -> tuple[int, int]:
    """(H, W) of a video file's stream; with ``decode_first`` also decodes one frame, so a file FFmpeg opens but
    cannot decode, or one without frames, is caught."""
    import av

    from omg_data.video_stream import ffmpeg_reason

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, IndexError) as error:  # IndexError: PyAV on some cut-short MP4s
        raise InputError(f"{path.name}: not a readable video ({ffmpeg_reason(error)}); re-encode it") from error
    with container:
        if not container.streams.video:
            # an MP4 written without frames has no track at all: to the user it is a video without frames
            raise InputError(f"{path.name}: the video has no frames (the file holds no video stream); re-encode it")
        stream = container.streams.video[0]
        height, width = int(stream.codec_context.height), int(stream.codec_context.width)
        if not decode_first and height > 0 and width > 0:
            return height, width
        try:
            first = next(iter(container.decode(stream)), None)
        except (av.error.FFmpegError, OSError, EOFError) as error:
            raise InputError(
                f"{path.name}: not a readable video (frame 0: {ffmpeg_reason(error)}); re-encode it"
            ) from error
        if first is None:
            raise InputError(f"{path.name}: the video has no frames; re-encode or re-download it")
        return int(first.height), int(first.width)


def read_image(path: Path) -> torch.Tensor:
    """Decode one image file into (3, H, W) uint8 RGB; a corrupt file is an InputError naming it."""
    from omg_data.errors import DataError
    from omg_data.image_io import load_image

    try:
        return load_image(path, fix="the file is corrupt or not an image: replace it or move it away")
    except DataError as error:  # the run lists the file itself: say what is wrong with it
        raise InputError(f"{Path(path).name}: {error.problem}") from error


def iter_frames(source: InputSource) -> Iterator[torch.Tensor]:
    """Yield the frames of a clip one at a time, (3, H, W) uint8, so a long video never sits in memory whole.

    Raises:
      InputError: naming the file and the frame, when a frame cannot be decoded (a truncated video, a corrupt frame
        file), when the video has no frames, or when a frame's size differs from the first frame's.
    """
    first_shape = None
    for index, frame in enumerate(_stream_frames(source)):
        if first_shape is None:
            first_shape = frame.shape
        elif frame.shape != first_shape:
            raise InputError(
                f"{source.path}: frame {index} has size {tuple(frame.shape[1:])}, the first frame "
                f"{tuple(first_shape[1:])}; all frames of a clip must have one size"
            )
        yield frame


def _stream_frames(source: InputSource) -> Iterator[torch.Tensor]:
    """FrameStream's frames, with its dataset errors (DataError) turned into InputError for `omg run`."""
    from omg_data.errors import DataError
    from omg_data.video_stream import FrameStream

    try:
        yield from FrameStream(source.path)
    except DataError as error:
        if isinstance(error, InputError):
            raise
        raise InputError(str(error)) from error


# ----------------------------------------------------------------------------------------------------------- prompts

PROMPTS_EXAMPLE = '{"points": [[[120, 80]]], "point_labels": [[1]]}'
POINT_LABELS = {1: "positive click", 0: "negative click", -1: "padding, ignored"}


def read_prompts(path: Path) -> Prompts:
    """Read a prompts JSON file, in pixels of the input image; each outer entry is one prompt (one output mask)::

        {"points": [[[x, y], ...], ...],      # N prompts x P points x (x, y)
         "point_labels": [[1, 0, ...], ...],  # N x P: 1 positive, 0 negative, -1 padding (ignored)
         "boxes": [[x0, y0, x1, y1], ...]}    # N boxes, x1 > x0 and y1 > y0

    Without "point_labels" every point is a positive click. Prompts with fewer points are padded with label -1 points
    (any coordinates) so every prompt has P points. Points and boxes together describe the same N prompts.
    Whether the prompts lie inside the image is checked per input by :func:`check_prompts_fit`.

    Raises:
      InputError: one line starting ``--prompts FILE:`` saying which prompt / point is wrong and how to fix it.
    """
    path = Path(path)
    prefix = f"--prompts {path}:"
    if not path.is_file():
        raise InputError(f"{prefix} no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputError(
            f"{prefix} not a UTF-8 text file ({error.reason}); write JSON such as {PROMPTS_EXAMPLE}"
        ) from error
    if not text.strip():
        raise InputError(f"{prefix} the file is empty; write JSON such as {PROMPTS_EXAMPLE}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{prefix} not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{prefix} expected an object with 'points'/'point_labels'/'boxes', e.g. {PROMPTS_EXAMPLE}")
    unknown = set(data) - {"points", "point_labels", "boxes"}
    if unknown:
        raise InputError(f"{prefix} unknown key(s) {sorted(unknown)}; use points, point_labels, boxes")
    # null or [] is "not given": {"points": [], "boxes": [...]} is a file of boxes
    raw_points, raw_labels, raw_boxes = (
        None if data.get(key) in (None, []) else data[key] for key in ("points", "point_labels", "boxes")
    )
    if raw_labels is not None and raw_points is None:
        raise InputError(f"{prefix} point_labels without points; give the points they label, or drop point_labels")
    if raw_points is None and raw_boxes is None:
        raise InputError(f"{prefix} holds no prompts; write JSON such as {PROMPTS_EXAMPLE}")
    points = _parse_points(raw_points, prefix) if raw_points is not None else None
    labels = None
    if points is not None:
        labels = _parse_labels(raw_labels, points, prefix) if raw_labels is not None else [[1] * len(p) for p in points]
    boxes = _parse_boxes(raw_boxes, prefix) if raw_boxes is not None else None
    if points is not None and boxes is not None and len(points) != len(boxes):
        raise InputError(
            f"{prefix} points hold {_count(len(points), 'prompt')} and boxes {len(boxes)}; points and boxes must "
            "describe the same number of prompts (entry i of each is prompt i)"
        )
    if labels is not None and boxes is None:
        for index, prompt_labels in enumerate(labels, start=1):
            if all(label == -1 for label in prompt_labels):
                raise InputError(
                    f"{prefix} prompt {index} has only padding points (label -1); give it a click labelled 1 or 0, "
                    "or a box"
                )
    return Prompts(
        points=torch.tensor(points, dtype=torch.float32) if points is not None else None,  # N x P x 2
        point_labels=torch.tensor(labels, dtype=torch.int64) if labels is not None else None,  # N x P
        boxes=torch.tensor(boxes, dtype=torch.float32) if boxes is not None else None,  # N x 4
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: Any, where: str, prefix: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{prefix} {where} is {_shown(value)}, not a number; give pixel coordinates as numbers")
    if not math.isfinite(value):
        raise InputError(f"{prefix} {where} is {value}; coordinates must be finite pixel values")
    return float(value)


def _parse_points(raw: Any, prefix: str) -> list[list[list[float]]]:
    """N x P x 2 nested lists from the "points" entry, every prompt with the same number P of points."""
    shape_help = "points is a list of prompts, each a list of [x, y] points: [[[x, y], ...], ...]"
    if not isinstance(raw, list):
        raise InputError(f"{prefix} {shape_help}, not {_shown(raw)}")
    if not isinstance(raw[0], list) or (raw[0] and not isinstance(raw[0][0], list)):
        raise InputError(f"{prefix} {shape_help}; one prompt with one click is [[[x, y]]], not {_shown(raw)}")
    points: list[list[list[float]]] = []
    for prompt_index, prompt in enumerate(raw, start=1):
        if not isinstance(prompt, list):
            raise InputError(f"{prefix} prompt {prompt_index} is {_shown(prompt)}; {shape_help}")
        if not prompt:
            raise InputError(f"{prefix} prompt {prompt_index} has no points; give it an [x, y] click or drop it")
        parsed = []
        for point_index, point in enumerate(prompt, start=1):
            where = f"prompt {prompt_index} point {point_index}"
            if not isinstance(point, list) or len(point) != 2:
                raise InputError(f"{prefix} {where} is {_shown(point)}; a point is [x, y]")
            parsed.append([_number(point[0], f"{where} x", prefix), _number(point[1], f"{where} y", prefix)])
        points.append(parsed)
        if len(parsed) != len(points[0]):
            raise InputError(
                f"{prefix} prompt {prompt_index} has {_count(len(parsed), 'point')}, prompt 1 has {len(points[0])}; "
                "pad shorter ones with label -1 points (e.g. [0, 0] with label -1)"
            )
    return points


def _parse_labels(raw: Any, points: list[list[list[float]]], prefix: str) -> list[list[int]]:
    """N x P labels from the "point_labels" entry, shaped like ``points``, each 1, 0 or -1."""
    meaning = ", ".join(f"{label} ({what})" for label, what in POINT_LABELS.items())
    if not isinstance(raw, list) or len(raw) != len(points):
        given = f"has {len(raw)} entries" if isinstance(raw, list) else f"is {_shown(raw)}"
        raise InputError(
            f"{prefix} point_labels {given} but points has {_count(len(points), 'prompt')}; give one list of "
            "labels per prompt, e.g. [[1, 0], [1, -1]]"
        )
    labels: list[list[int]] = []
    for prompt_index, (prompt_labels, prompt_points) in enumerate(zip(raw, points), start=1):
        if not isinstance(prompt_labels, list) or len(prompt_labels) != len(prompt_points):
            given = f"{len(prompt_labels)}" if isinstance(prompt_labels, list) else _shown(prompt_labels)
            raise InputError(
                f"{prefix} prompt {prompt_index} has {_count(len(prompt_points), 'point')} but {given} labels; "
                "point_labels must have the shape of points, one label per point"
            )
        for point_index, label in enumerate(prompt_labels, start=1):
            if isinstance(label, bool) or not isinstance(label, (int, float)) or label not in POINT_LABELS:
                raise InputError(
                    f"{prefix} prompt {prompt_index} point {point_index} has label {_shown(label)}; labels are {meaning}"
                )
        labels.append([int(label) for label in prompt_labels])
    return labels


def _parse_boxes(raw: Any, prefix: str) -> list[list[float]]:
    """N x 4 boxes (x0, y0, x1, y1) from the "boxes" entry, each with x1 > x0 and y1 > y0."""
    shape_help = "boxes must be (N, 4): one [x0, y0, x1, y1] per prompt"
    if not isinstance(raw, list):
        raise InputError(f"{prefix} {shape_help}, not {_shown(raw)}")
    if raw and not isinstance(raw[0], list):
        raise InputError(f"{prefix} {shape_help}; one box is [[x0, y0, x1, y1]], not {_shown(raw)}")
    boxes = []
    for index, box in enumerate(raw, start=1):
        if not isinstance(box, list) or len(box) != 4:
            raise InputError(f"{prefix} box {index} is {_shown(box)}; {shape_help}")
        x0, y0, x1, y1 = (
            _number(value, f"box {index} {axis}", prefix) for value, axis in zip(box, ("x0", "y0", "x1", "y1"))
        )
        if x1 <= x0 or y1 <= y0:
            raise InputError(
                f"{prefix} box {index} {_shown(box)} has x1 <= x0 or y1 <= y0; every box must have x1 > x0 and "
                "y1 > y0 ([x0, y0, x1, y1]: top-left, then bottom-right corner)"
            )
        boxes.append([x0, y0, x1, y1])
    return boxes


def check_prompts_fit(
    prompts: Prompts, height: int, width: int, source_name: str, prompts_path: str | Path | None = None
) -> None:
    """Raise InputError when a prompt does not fit an input of ``height`` x ``width`` pixels: a point (labels 1 / 0;
    padding is ignored) or box corner outside x in [0, W], y in [0, H], a non-finite value or an unknown label.

    Arguments:
      prompts: the prompts, in pixels of the original input.
      height, width: the input's size (:func:`source_size`).
      source_name: the input, named in the message.
      prompts_path: the prompts file, for the ``--prompts FILE:`` prefix (None: prompts given through the API).
    """
    prefix = f"--prompts {prompts_path}:" if prompts_path is not None else "prompts:"
    bounds = f"{source_name} is {width}x{height} (W x H): x must be in [0, {width}] and y in [0, {height}] pixels"
    if prompts.points is not None and prompts.point_labels is not None:
        points, labels = prompts.points, prompts.point_labels  # N x P x 2, N x P
        unknown = ~((labels == 1) | (labels == 0) | (labels == -1))
        if bool(unknown.any()):
            prompt, point = (int(i) for i in unknown.nonzero()[0])
            raise InputError(
                f"{prefix} prompt {prompt + 1} point {point + 1} has label {int(labels[prompt, point])}; labels are "
                "1 (positive click), 0 (negative click) or -1 (padding, ignored)"
            )
        x, y = points[..., 0], points[..., 1]
        outside = (labels != -1) & ~((x >= 0) & (x <= width) & (y >= 0) & (y <= height))  # NaN counts as outside
        if bool(outside.any()):
            prompt, point = (int(i) for i in outside.nonzero()[0])
            raise InputError(
                f"{prefix} prompt {prompt + 1} point {point + 1} (x={float(x[prompt, point]):g}, "
                f"y={float(y[prompt, point]):g}) is outside the image: {bounds}"
            )
    if prompts.boxes is not None:
        x0, y0, x1, y1 = prompts.boxes.unbind(-1)  # N each
        outside = ~((x0 >= 0) & (x1 <= width) & (y0 >= 0) & (y1 <= height) & (x1 > x0) & (y1 > y0))
        if bool(outside.any()):
            index = int(outside.nonzero()[0, 0])
            box = ", ".join(f"{float(value):g}" for value in prompts.boxes[index])
            if bool(x1[index] > x0[index]) and bool(y1[index] > y0[index]):
                raise InputError(f"{prefix} box {index + 1} [{box}] reaches outside the image: {bounds}")
            raise InputError(f"{prefix} box {index + 1} [{box}] needs x1 > x0 and y1 > y0 (and finite values)")
