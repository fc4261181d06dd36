"""The built-in overlays, a plugin of their own: every result family drawn over its input, for a person to look at.

Each region (a semantic class, a panoptic segment, an instance, a track, a prompt's mask) is filled with its colour
at :data:`TINT` alpha and outlined, and labelled with its class name (and score): things at their top-left-most pixel,
stuff and semantic classes at the centre of their largest connected region. Prompts are drawn too: positive clicks
green, negative red, boxes as rectangles. A colour belongs to an id (track slot, segment id, class), so a track keeps
its colour in every frame of a video.

An image gives ``<input>.png``; a video gives ``<input>.mp4`` (H.264 through PyAV, else MPEG-4 Part 2), or an
animated ``<input>.gif`` when this PyAV has neither encoder. Files are written atomically. A plugin with
``@hookimpl(tryfirst=True)`` on ``omg_render_overlay`` replaces these for the results it draws.
"""

from __future__ import annotations

import colorsys
import functools
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omg_core.hookspecs import hookimpl
from omg_core.result_writer import OverlayStream, atomic_path, temporary_beside, write_bytes_atomic
from omg_core.task_info import TaskInfo

if TYPE_CHECKING:  # torch, NumPy and PIL load when a picture is drawn, not when `omg tasks` discovers this plugin
    import numpy as np
    import torch
    from PIL import Image

    from omg_core.task_io import Prompts, TaskResult

#: How much of a region's colour is mixed into the image.
TINT = 0.5
#: Colours in the palette; ids less than this apart never share one.
PALETTE_SIZE = 64
#: Frame rate of video overlays (the inputs' own rate is not known here).
FPS = 10
#: Video encoders tried in order; with none of them, an animated GIF is written.
VIDEO_CODECS = ("libx264", "h264", "mpeg4")
#: Detections (instances, tracks) scoring below this are not drawn: a top-100 list would bury the picture (as
#: detectron2's demo, which draws scores >= 0.5). Prompt masks are always drawn. Override with
#: OMG_OVERLAY_MIN_SCORE.
OBJECT_MIN_SCORE = 0.3
POSITIVE_CLICK = (0, 220, 0)
NEGATIVE_CLICK = (230, 0, 0)

Colour = tuple[int, int, int]


@functools.cache
def _palette() -> tuple[Colour, ...]:
    """Bright colours whose neighbours are far apart: golden-ratio hue steps, alternating two saturation / value
    levels, so entries j and j + 1 differ in hue by 0.38 of the circle and in shade."""
    colours = []
    for index in range(PALETTE_SIZE):
        saturation, value = ((0.75, 1.0), (0.95, 0.8))[index % 2]
        red, green, blue = colorsys.hsv_to_rgb((index * 0.618033988749895) % 1.0, saturation, value)
        colours.append((round(red * 255), round(green * 255), round(blue * 255)))
    return tuple(colours)


def colour(key: int) -> Colour:
    """The colour of an id (track slot, segment id or class), the same in every frame and picture.

    The palette is indexed by the id's position in its block of :data:`PALETTE_SIZE` ids, shifted by a hash of the
    block: ids closer than PALETTE_SIZE never share a colour and consecutive ids get far-apart colours, while ids
    with structure (class * 1000 + instance) do not line up on one colour.
    """
    block_hash = ((key // PALETTE_SIZE) * 2654435761) >> 7  # Knuth's multiplicative hash of the block number
    return _palette()[(key + block_hash) % PALETTE_SIZE]


@hookimpl
def omg_render_overlay(task: TaskInfo, result: TaskResult, pixels: torch.Tensor, output_dir: Path) -> list[Path] | None:
    from omg_core import results as families

    data = result.data
    image_types = (families.SemanticMap, families.PanopticMap, families.Instances, families.PromptMasks)
    video_types = (families.SemanticVideo, families.PanopticVideo, families.Tracks, families.PromptTracks)
    if not isinstance(data, image_types + video_types):
        return None  # not a result family: the task's own plugin may draw it
    stem = _stem(result)
    frames = _frames(data, result.prompts, pixels)
    if isinstance(data, image_types):
        buffer = io.BytesIO()
        next(frames).save(buffer, format="PNG")
        return [write_bytes_atomic(Path(output_dir) / f"{stem}.png", buffer.getvalue())]
    return [write_video(frames, Path(output_dir) / stem)]


@hookimpl
def omg_open_overlay_stream(task: TaskInfo, output_dir: Path, name: str) -> OverlayStream:
    return _VideoOverlayStream(Path(output_dir) / name)


class _VideoOverlayStream(OverlayStream):
    """A streamed video's overlay: each tube's frames drawn and encoded as the tube arrives."""

    def __init__(self, stem_path: Path) -> None:
        self.encoder = VideoFileEncoder(stem_path)

    def add(self, result: TaskResult, pixels: torch.Tensor) -> None:
        for picture in _frames(result.data, result.prompts, pixels):
            self.encoder.add(picture)

    def close(self) -> list[Path]:
        return [self.encoder.close()]

    def abort(self) -> None:
        self.encoder.abort()


def _stem(result: TaskResult) -> str:
    if result.source is None:
        return "overlay"
    source = Path(result.source)
    return source.name if source.is_dir() else source.stem  # a frame folder "a.b" is named a.b


# -- what to draw ------------------------------------------------------------------------------------------------


@dataclass
class _Layer:
    """What one picture shows over its input.

    region: (H, W) int64, 0 where nothing is drawn, else the row of ``colours`` of the region on top.
    colours: (K + 1, 3) uint8, row k the colour of region k (row 0 unused).
    labels: (text, (x, y) anchor, colour) per labelled region.
    """

    region: np.ndarray
    colours: np.ndarray
    labels: list[tuple[str, tuple[int, int], Colour]] = field(default_factory=list)


def _colour_table(keys: list[int]) -> np.ndarray:
    import numpy as np

    return np.asarray([(0, 0, 0), *(colour(key) for key in keys)], dtype=np.uint8).reshape(-1, 3)


def _top_left(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) of a mask's first pixel in reading order (top row, then leftmost)."""
    import numpy as np

    y, x = divmod(int(np.argmax(mask.reshape(-1))), mask.shape[1])
    return x, y


def _centre(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) of the centroid of ``mask``'s largest 8-connected part, moved to that part's nearest pixel when the
    centroid falls outside it (a ring, a crescent).

    Found on every ``step``-th pixel of each axis (about 64 x 64 samples) when the region shows there: a label needs
    no finer place, and the point found is a pixel of the mask itself.
    """
    import numpy as np
    from scipy import ndimage

    step = max(1, min(mask.shape) // 64)
    sampled = mask[::step, ::step]
    if step > 1 and sampled.any():
        x, y = _centre(sampled)
        return x * step, y * step
    parts, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count > 1:
        largest = 1 + int(np.argmax(np.bincount(parts.reshape(-1))[1:]))
        mask = parts == largest
    ys, xs = np.nonzero(mask)
    y, x = int(round(float(ys.mean()))), int(round(float(xs.mean())))
    if not mask[y, x]:
        nearest = int(np.argmin((ys - y) ** 2 + (xs - x) ** 2))
        y, x = int(ys[nearest]), int(xs[nearest])
    return x, y


def _semantic_layer(labels: np.ndarray, vocabulary: tuple[str, ...]) -> _Layer:
    import numpy as np

    region = np.where(labels >= 0, labels + 1, 0)
    present = [int(c) for c in np.unique(labels) if c >= 0]
    layer = _Layer(region, _colour_table(list(range(len(vocabulary)))))
    for label in present:
        layer.labels.append((vocabulary[label], _centre(labels == label), colour(label)))
    return layer


def _panoptic_layer(segment_ids: np.ndarray, segments: tuple[Any, ...], vocabulary: tuple[str, ...]) -> _Layer:
    import numpy as np

    ordered = sorted(segments, key=lambda segment: segment.id)
    keys = np.asarray([segment.id for segment in ordered], dtype=np.int64)
    position = np.searchsorted(keys, segment_ids).clip(max=max(len(keys) - 1, 0))
    listed = (keys[position] == segment_ids) if len(keys) else np.zeros(segment_ids.shape, dtype=bool)
    region = np.where(listed & (segment_ids != 0), position + 1, 0)
    layer = _Layer(region, _colour_table([int(key) for key in keys]))
    for row in np.unique(region):
        if row == 0:
            continue
        segment = ordered[row - 1]
        mask = region == row
        text = f"{vocabulary[segment.label]} {segment.score:.2f}"
        anchor = _top_left(mask) if segment.is_thing else _centre(mask)
        layer.labels.append((text, anchor, colour(segment.id)))
    return layer


def _objects_layer(masks: np.ndarray, order: list[int], present: np.ndarray, texts: list[str],
                   keys: list[int] | None = None) -> _Layer:
    """Possibly overlapping object masks (N, H, W), painted in ``order`` (the last on top); ``present`` (N,) says
    which have pixels. Object k has colour ``colour(keys[k])`` (default key k + 1)."""
    import numpy as np

    keys = keys if keys is not None else list(range(1, len(masks) + 1))
    region = np.zeros(masks.shape[1:], dtype=np.int64)
    layer = _Layer(region, _colour_table(keys))
    for k in order:
        if present[k]:
            region[masks[k]] = k + 1
    for k in order:  # only the objects painted get a label (not those under the score floor)
        if present[k]:
            layer.labels.append((texts[k], _top_left(masks[k]), colour(keys[k])))
    return layer


def _object_texts(data: Any) -> list[str]:
    if data.labels is None:
        return [f"#{k} {float(score):.2f}" for k, score in enumerate(data.scores)]
    return [f"{data.vocabulary[int(label)]} {float(score):.2f}" for label, score in zip(data.labels, data.scores)]


def _streamed_tracks_layers(data: Any) -> Callable[[int], _Layer]:
    """Layers of a streamed video's tube (TrackFrames): the preview tracks (best so far) scoring at least the
    overlay floor, each frame's masks decoded from its RLEs."""
    import numpy as np
    from pycocotools import mask as mask_utils

    floor = float(os.environ.get("OMG_OVERLAY_MIN_SCORE", OBJECT_MIN_SCORE))
    kept = [k for k, score in enumerate(data.preview_scores.tolist()) if score >= floor]
    slots = [int(data.preview_slots[k]) for k in kept]
    texts = [f"{data.vocabulary[int(data.preview_labels[k])]} {float(data.preview_scores[k]):.2f}" for k in kept]
    scores = [float(data.preview_scores[k]) for k in kept]
    order = sorted(range(len(kept)), key=lambda k: (scores[k], -k))  # the highest score on top
    height, width = data.size

    def layer_of(frame: int) -> _Layer:
        masks = np.zeros((len(kept), height, width), dtype=bool)
        for row, slot in enumerate(slots):
            rle = data.rles[slot][frame]
            if rle is not None:
                masks[row] = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)
        # a track slot keeps its colour from tube to tube, whatever its rank in the preview
        return _objects_layer(masks, order, masks.reshape(len(kept), height * width).any(-1), texts,
                              [slot + 1 for slot in slots])

    return layer_of


def _frames(data: Any, prompts: Prompts | None, pixels: torch.Tensor) -> Iterator[Image.Image]:
    """The pictures of a result, one per frame (one for an image), drawn as they are asked for."""
    from omg_core import results as families

    video = isinstance(data, (*families.VIDEO_RESULTS, families.TrackFrames))
    images = pixels if video else pixels[None]  # T x 3 x H x W uint8
    layer_of: Callable[[int], _Layer]
    if isinstance(data, families.TrackFrames):
        layer_of = _streamed_tracks_layers(data)
    elif isinstance(data, (families.SemanticMap, families.SemanticVideo)):
        labels = data.labels.numpy() if video else data.labels.numpy()[None]
        layer_of = lambda t: _semantic_layer(labels[t], data.vocabulary)  # noqa: E731
    elif isinstance(data, (families.PanopticMap, families.PanopticVideo)):
        ids = data.segment_ids.numpy() if video else data.segment_ids.numpy()[None]
        layer_of = lambda t: _panoptic_layer(ids[t], data.segments, data.vocabulary)  # noqa: E731
    else:  # Instances / Tracks / PromptMasks / PromptTracks: one colour per object (track slot, prompt)
        masks = data.masks.numpy() if video else data.masks.numpy()[:, None]  # N x T x H x W
        present = masks.reshape(*masks.shape[:2], masks.shape[2] * masks.shape[3]).any(-1)  # N x T (N may be 0)
        scores = data.scores.tolist()
        order = sorted(range(len(scores)), key=lambda k: (scores[k], -k))  # the highest score on top
        if isinstance(data, (families.Instances, families.Tracks)):
            floor = float(os.environ.get("OMG_OVERLAY_MIN_SCORE", OBJECT_MIN_SCORE))
            order = [k for k in order if scores[k] >= floor]
        texts = _object_texts(data)
        layer_of = lambda t: _objects_layer(masks[:, t], order, present[:, t], texts)  # noqa: E731
    for t in range(len(images)):
        picture = _blend(images[t].permute(1, 2, 0).numpy(), layer_of(t))
        if prompts is not None and t == 0:  # prompts are given on the image, or on a video's first frame
            _draw_prompts(picture, prompts)
        yield picture


# -- drawing -----------------------------------------------------------------------------------------------------


def _contour(region: np.ndarray, width: int) -> np.ndarray:
    """Pixels of a drawn region within ``width`` pixels (along rows or columns) of a pixel of another region; the
    image's own edge is no border."""
    import numpy as np

    edge = np.zeros(region.shape, dtype=bool)
    for step in range(1, width + 1):
        rows_differ = region[step:] != region[:-step]
        columns_differ = region[:, step:] != region[:, :-step]
        edge[step:] |= rows_differ
        edge[:-step] |= rows_differ
        edge[:, step:] |= columns_differ
        edge[:, :-step] |= columns_differ
    return edge & (region > 0)


@functools.cache
def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable font
    except TypeError:
        return ImageFont.load_default()


def _blend(image: np.ndarray, layer: _Layer) -> Image.Image:
    """``image`` (H, W, 3) uint8 with the layer's regions tinted, outlined and labelled."""
    import numpy as np
    from PIL import Image, ImageDraw

    height, width = layer.region.shape
    fill = layer.colours[layer.region]  # H x W x 3
    covered = (layer.region > 0)[..., None]
    alpha = round(TINT * 256)  # integer blending, rounded: (1 - TINT) * image + TINT * colour
    mixed = ((image.astype(np.uint16) * (256 - alpha) + fill.astype(np.uint16) * alpha + 128) >> 8).astype(np.uint8)
    canvas = np.where(covered, mixed, image)
    edge = _contour(layer.region, 1 if min(height, width) < 256 else 2)
    canvas[edge] = fill[edge]
    picture = Image.fromarray(canvas)
    if layer.labels:
        draw = ImageDraw.Draw(picture)
        font = _font(max(10, min(height, width) // 40))
        for text, (x, y), tint in layer.labels:
            _label(draw, font, text, x, y, tint, width, height)
    return picture


def _label(draw: Any, font: Any, text: str, x: int, y: int, tint: Colour, width: int, height: int) -> None:
    """``text`` on a box of the region's colour, its top-left corner at (x, y), moved inside the image."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    box_width, box_height = right - left + 2, bottom - top + 2
    x = min(max(x, 0), max(width - box_width, 0))
    y = min(max(y, 0), max(height - box_height, 0))
    draw.rectangle((x, y, x + box_width - 1, y + box_height - 1), fill=tint)
    luminance = 0.299 * tint[0] + 0.587 * tint[1] + 0.114 * tint[2]
    draw.text((x + 1 - left, y + 1 - top), text, fill=(0, 0, 0) if luminance > 140 else (255, 255, 255), font=font)


def _draw_prompts(picture: Image.Image, prompts: Prompts) -> None:
    """Clicks as dots (positive green, negative red, padding skipped) and boxes as rectangles in their object's
    colour."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(picture)
    radius = max(2, min(picture.size) // 100)
    if prompts.boxes is not None:
        for k, (x0, y0, x1, y1) in enumerate(prompts.boxes.tolist()):
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=colour(k + 1), width=max(1, radius // 2))
    if prompts.points is not None and prompts.point_labels is not None:
        for points, labels in zip(prompts.points.tolist(), prompts.point_labels.tolist()):
            for (x, y), label in zip(points, labels):
                if label < 0:
                    continue
                dot = POSITIVE_CLICK if label == 1 else NEGATIVE_CLICK
                draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=dot, outline=(0, 0, 0))


# -- video files -------------------------------------------------------------------------------------------------


def write_video(frames: Iterator[Image.Image], stem_path: Path, fps: int = FPS) -> Path:
    """Encode ``frames`` (all one size) as ``<stem_path>.mp4`` with the first of :data:`VIDEO_CODECS` that works, or
    as an animated ``<stem_path>.gif`` when none does; frames are encoded as they come. Returns the file written."""
    encoder = VideoFileEncoder(stem_path, fps)
    try:
        for picture in frames:
            encoder.add(picture)
    except BaseException:
        encoder.abort()
        raise
    return encoder.close()


class VideoFileEncoder:
    """A video file written frame by frame as frames are pushed (a streamed video's overlay grows tube by tube).

    The first frame picks the encoder (the first of :data:`VIDEO_CODECS` this PyAV can use, else an animated GIF). The
    file is written under a temporary name and renamed on :meth:`close`, so a run killed midway leaves no broken file.

    Arguments:
      stem_path: the file's path without suffix (``.mp4`` or ``.gif`` is added).
      fps: frame rate.
    """

    def __init__(self, stem_path: Path, fps: int = FPS) -> None:
        self.stem_path = Path(stem_path)
        self.fps = fps
        self._container: Any = None
        self._stream: Any = None
        self._shape: tuple[int, ...] | None = None
        self._count = 0
        self._gif_frames: list[Image.Image] | None = None  # the GIF fallback holds its (quantized) frames
        self._path: Path | None = None
        self._temporary: Path | None = None

    def add(self, picture: Image.Image) -> None:
        if self._count == 0:
            self._open(picture)
        elif self._gif_frames is not None:
            self._gif_frames.append(_quantized(picture))
        else:
            array = _even(picture)
            if array.shape != self._shape:
                raise ValueError(f"frame {self._count} is {array.shape[1]}x{array.shape[0]}, the video "
                                 f"{self._shape[1]}x{self._shape[0]}")  # type: ignore[index]
            self._container.mux(_encode(self._stream, array, self._count, self.fps))
        self._count += 1

    def close(self) -> Path:
        """Finish the file and give it its final name; returns it."""
        if self._count == 0 or self._path is None:
            raise ValueError("no frame was added")
        if self._gif_frames is not None:
            with atomic_path(self._path) as temporary:
                frames = self._gif_frames
                frames[0].save(temporary, format="GIF", save_all=True, append_images=frames[1:],
                               duration=round(1000 / self.fps), loop=0)
            return self._path
        assert self._temporary is not None
        try:
            self._container.mux(self._stream.encode(None))  # flush the encoder's delayed frames
        finally:
            self._container.close()
        with open(self._temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(self._temporary, self._path)
        return self._path

    def abort(self) -> None:
        """Drop the unfinished file."""
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # already failing: the temporary file goes either way
                pass
        if self._temporary is not None:
            self._temporary.unlink(missing_ok=True)

    def _open(self, first: Image.Image) -> None:
        import av

        first_array = _even(first)
        height, width = first_array.shape[:2]
        for codec in VIDEO_CODECS:
            path = self.stem_path.with_name(f"{self.stem_path.name}.mp4")
            temporary = temporary_beside(path)
            container = av.open(str(temporary), mode="w", format="mp4")
            try:  # everything up to the first encoded frame: a failure here means the encoder is unusable
                stream = container.add_stream(codec, rate=self.fps)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                if codec in ("libx264", "h264"):
                    stream.options = {"preset": "veryfast", "crf": "20"}
                else:
                    stream.bit_rate = max(1_000_000, width * height * self.fps * 2)
                packets = _encode(stream, first_array, 0, self.fps)
            except (av.FFmpegError, ValueError, NotImplementedError):
                container.close()
                temporary.unlink(missing_ok=True)
                continue
            container.mux(packets)
            self._container, self._stream, self._shape = container, stream, first_array.shape
            self._path, self._temporary = path, temporary
            return
        self._path = self.stem_path.with_name(f"{self.stem_path.name}.gif")
        self._gif_frames = [_quantized(first)]


def _quantized(picture: Image.Image) -> Image.Image:
    from PIL import Image

    # each frame reduced to its own 256 colours as it comes (fast octree: PIL's default quantizer is ~200x slower)
    return picture.quantize(256, method=Image.Quantize.FASTOCTREE)


def _even(picture: Image.Image) -> np.ndarray:
    """The frame as (H, W, 3) uint8 with an even width and height (YUV 4:2:0 needs them), the last row / column
    repeated where one is added."""
    import numpy as np

    array = np.asarray(picture.convert("RGB"))
    height, width = array.shape[:2]
    return np.pad(array, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


def _encode(stream: Any, array: np.ndarray, index: int, fps: int) -> list[Any]:
    import av

    frame = av.VideoFrame.from_ndarray(array, format="rgb24")
    frame.pts, frame.time_base = index, Fraction(1, fps)
    return stream.encode(frame)
