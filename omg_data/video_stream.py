"""Lazy frame streams for `omg run`: a folder of frames or a video file (PyAV), decoded one frame at a time.

Only the frame being handed out (plus the decoder's own small buffer) is in memory, so a long video
never sits in memory whole; `iter_clips` groups frames into bounded clips for clip-wise inference.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import av.container

from omg_common.errors import InputError
from omg_data.errors import DataError
from omg_data.image_io import load_image

# the frame files a folder clip is made of; `omg run` accepts the same suffixes for single images
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class VideoReadError(DataError, InputError):
    """A video or frame folder that cannot be read: a DataError for the dataset readers, an InputError for `omg run`
    (which then fails that one input and goes on with the others)."""


def _natural_key(path: Path) -> list[object]:
    # "frame10" after "frame9": compare digit runs as numbers (re.split alternates text / digits, so types line up)
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_frames(folder: str | Path) -> list[Path]:
    """The frame files of a folder in play order: natural file-name order ("frame9" before "frame10").

    Hidden files are skipped (macOS leaves "._00001.jpg" resource forks next to the real frames when it unpacks an
    archive; they carry an image suffix but are not images). Subfolders are not searched.
    """
    folder = Path(folder)
    return sorted(
        (
            path
            for path in folder.iterdir()
            if not path.name.startswith(".") and path.suffix.lower() in FRAME_SUFFIXES and path.is_file()
        ),
        key=_natural_key,
    )


def ffmpeg_reason(error: Exception) -> str:
    """The reason of a PyAV/FFmpeg error without the file name its ``str()`` repeats (messages name the file once)."""
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def open_video(path: str | Path) -> av.container.InputContainer:
    """Opens a video file with PyAV; a file FFmpeg cannot read or one without a video stream raises VideoReadError.

    The caller closes the container (``with open_video(path) as container: ...``).
    """
    import av

    path = Path(path)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, IndexError) as error:
        raise VideoReadError(
            f"cannot open video ({ffmpeg_reason(error)}); is it a complete video file PyAV/FFmpeg can decode?", path
        ) from error
    if not container.streams.video:
        container.close()
        raise VideoReadError(
            "the video has no frames (the file holds no video stream); re-encode it, or extract its frames", path
        )
    return container


def count_frames(source: str | Path) -> int | None:
    """The number of frames of a frame folder, or of a video file as its container header states it (None when the
    header does not say, e.g. Matroska/WebM). Meant for a progress bar: a truncated file decodes fewer."""
    source = Path(source)
    if source.is_dir():
        return len(list_frames(source))
    with open_video(source) as container:
        frames = int(container.streams.video[0].frames)
    return frames if frames > 0 else None


class FrameStream:
    """Frames of a folder (natural file-name order) or a video file, decoded lazily on iteration.

    Arguments:
      source: a folder of frame images or a video file PyAV can open (mp4, avi, mkv, webm, ...).
    Iterating yields 3 x H x W uint8 RGB tensors. A stream can be iterated more than once
    (each pass re-opens the source). A video with no frames, or one whose decoding fails part-way (a truncated
    download), raises VideoReadError naming the file and the frame where decoding stopped.
    """

    def __init__(self, source: str | Path) -> None:
        self.source = Path(source)
        if not self.source.exists():
            raise VideoReadError("video source not found; pass a folder of frames or a video file", self.source)
        self.is_folder = self.source.is_dir()
        if self.is_folder:
            self._files = list_frames(self.source)
            if not self._files:
                raise VideoReadError(f"folder holds no frames (looked for {', '.join(FRAME_SUFFIXES)})", self.source)

    def __len__(self) -> int:
        """Number of frames: exact for folders, from the container header for video files (0 if unknown)."""
        if self.is_folder:
            return len(self._files)
        return count_frames(self.source) or 0

    @property
    def frame_names(self) -> list[str] | None:
        """File names of a folder's frames (None for video files)."""
        return [p.name for p in self._files] if self.is_folder else None

    def __iter__(self) -> Iterator[torch.Tensor]:
        if self.is_folder:
            for index, path in enumerate(self._files):
                yield load_image(path, f"frame {index}")
            return
        yield from self._decode_video()

    def _open(self) -> av.container.InputContainer:
        return open_video(self.source)

    def _decode_video(self) -> Iterator[torch.Tensor]:
        import av

        container = self._open()
        index = 0  # frames handed out so far = the index of the frame being decoded
        packets = 0
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames_in_header = int(stream.frames)
            is_mov = "mov" in container.format.name  # "mov,mp4,m4a,3gp,3g2,mj2"
            for packet in container.demux(stream):
                packets += packet.size > 0  # demux ends with an empty flush packet
                for frame in packet.decode():
                    yield torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)  # 3 x H x W
                    index += 1
        except (av.error.FFmpegError, OSError, EOFError) as error:
            raise VideoReadError(
                f"video is corrupt: decoding failed at frame {index} ({ffmpeg_reason(error)}); the file is truncated "
                "or damaged, re-download or re-encode it",
                self.source,
            ) from error
        finally:
            container.close()
        if index == 0:
            raise VideoReadError("the video has no frames; re-encode or re-download it", self.source)
        # an MP4/MOV cut short can end silently (MPEG-4 part 2 does): its sample table lists frames the file no longer
        # holds. Other containers' frame counts are estimates or count empty "repeat" packets, so only MOV is checked.
        if is_mov and 0 < packets < frames_in_header:
            raise VideoReadError(
                f"video is truncated: decoding stopped at frame {index}, the file ends after {packets} of the "
                f"{frames_in_header} frames its header lists; re-download or re-encode it",
                self.source,
            )


def iter_clips(frames: FrameStream | Iterator[torch.Tensor], clip_length: int) -> Iterator[torch.Tensor]:
    """Groups a frame stream into consecutive clips of at most `clip_length` frames.

    Arguments:
      frames: a FrameStream or any iterator of 3 x H x W frames.
      clip_length: frames per clip (the last clip may be shorter).
    Returns:
      an iterator of T x 3 x H x W uint8 clips; at most one clip is held at a time.
    """
    if clip_length < 1:
        raise ValueError(f"clip_length must be at least 1, got {clip_length}")
    buffer: list[torch.Tensor] = []
    for frame in frames:
        buffer.append(frame)
        if len(buffer) == clip_length:
            yield torch.stack(buffer)
            buffer = []
    if buffer:
        yield torch.stack(buffer)
