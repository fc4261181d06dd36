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

from omg_data.errors import DataError
from omg_data.image_io import load_image

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _natural_key(path: Path) -> list[object]:
    # "frame10" after "frame9": compare digit runs as numbers
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


class FrameStream:
    """Frames of a folder (natural file-name order) or a video file, decoded lazily on iteration.

    Arguments:
      source: a folder of frame images or a video file PyAV can open (mp4, avi, mkv, webm, ...).
    Iterating yields 3 x H x W uint8 RGB tensors. A stream can be iterated more than once
    (each pass re-opens the source).
    """

    def __init__(self, source: str | Path) -> None:
        self.source = Path(source)
        if not self.source.exists():
            raise DataError("video source not found; pass a folder of frames or a video file", self.source)
        self.is_folder = self.source.is_dir()
        if self.is_folder:
            self._files = sorted(
                (p for p in self.source.iterdir() if p.suffix.lower() in FRAME_SUFFIXES), key=_natural_key
            )
            if not self._files:
                raise DataError(f"folder holds no frames (looked for {', '.join(FRAME_SUFFIXES)})", self.source)

    def __len__(self) -> int:
        """Number of frames: exact for folders, from the container header for video files (0 if unknown)."""
        if self.is_folder:
            return len(self._files)
        with self._open() as container:
            return int(container.streams.video[0].frames)

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
        import av

        try:
            container = av.open(str(self.source))
        except av.error.FFmpegError as error:
            raise DataError(
                f"cannot open video ({error}); is it a video file PyAV/FFmpeg can decode?", self.source
            ) from error
        if not container.streams.video:
            container.close()
            raise DataError("file has no video stream", self.source)
        return container

    def _decode_video(self) -> Iterator[torch.Tensor]:
        import av

        container = self._open()
        index = 0
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                yield torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)  # 3 x H x W
                index += 1
        except av.error.FFmpegError as error:
            raise DataError(
                f"video is corrupt: decoding failed after {index} frames ({error})", self.source, f"frame {index}"
            ) from error
        finally:
            container.close()


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
