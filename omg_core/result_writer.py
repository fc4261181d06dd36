"""Writing results sample by sample, so that an interrupted run keeps every sample it finished.

``omg run`` asks the plugins for a writer of the chosen format once (hook ``omg_open_writer``), hands it each sample's
result as soon as it is decoded, and closes it at the end, or when the run is interrupted (Ctrl-C, a failing
sample, a crash), so files that gather all samples (a COCO JSON) still describe every finished sample.

    writer = registry.open_writer(task, output_dir, "coco-panoptic")
    try:
        for index, result in enumerate(results):
            writer.write(result, index)  # this sample's own files, complete on disk when it returns
    finally:
        writer.close()                   # the gathered files (panoptic.json), for the samples written

A file is never seen half-written: :func:`atomic_path` writes under a temporary name in the same folder and renames it
when complete (after fsync), so a kill leaves either the whole file or none.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from omg_common.file_modes import give_ordinary_mode

if TYPE_CHECKING:
    from omg_core.task_info import TaskInfo
    from omg_core.task_io import TaskResult


def temporary_beside(final: Path) -> Path:
    """Create an empty temporary file in ``final``'s folder (created if needed) for writing ``final`` atomically.

    mkstemp creates files readable by their owner only (0600); the file gets the mode an ordinary ``open`` would
    give (0666 less the umask), so results renamed into place can be read by whoever could read a plain file.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent)
    os.close(handle)
    return give_ordinary_mode(name)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error, the file written there is synced
    and renamed to ``path`` (replacing it). On error it is removed and ``path`` is left as it was.

    Parent folders are created. Example::

        with atomic_path(out / "panoptic.json") as tmp:
            tmp.write_text(json.dumps(data))
    """
    final = Path(path)
    temporary = temporary_beside(final)
    try:
        yield temporary
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); return the path."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_path`); return the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


class ResultWriter:
    """Writes one run's results in one output format, one sample at a time. Subclass it in a writer plugin.

    Attributes:
      task: the task whose results are written (``task.result_family`` says which result class arrives).
      output_dir: an existing, writable directory (``omg run --output``).
    """

    def __init__(self, task: TaskInfo, output_dir: Path) -> None:
        self.task = task
        self.output_dir = Path(output_dir)
        self._stems: set[str] = set()

    def write(self, result: TaskResult, index: int) -> list[Path]:
        """Write one sample's own files, completely (use :func:`atomic_path`), and keep what :meth:`close` needs.

        Called once per sample, in input order, right after it is decoded. Keep only small records between calls
        (RLEs, segment lists), not whole masks, so memory does not grow with the number of samples.

        :param result: the decoded result; ``result.source`` names the input, for naming files (see :meth:`stem`).
        :param index: the sample's position among all inputs of the run (0-based; under torchrun, the global
            position, so ids written by different ranks never collide): use it for image ids.
        :return: the paths written for this sample (may be empty when everything goes into gathered files).
        """
        raise NotImplementedError

    def close(self) -> list[Path]:
        """Write the files that gather every sample written so far (for example one JSON); called exactly once, at
        the end of the run or when it is interrupted. The default writes nothing.

        :return: the paths written.
        """
        return []

    #: Whether this writer takes videos tube by tube (:meth:`write_chunk` and :meth:`finish_video`), as
    #: ``omg run --video-mode stream`` hands them over. A format whose writer does not is run offline, or refused when
    #: stream mode was asked for explicitly.
    streams: ClassVar[bool] = False

    def write_chunk(self, result: TaskResult, index: int) -> list[Path]:
        """Write some frames of a streamed video (``--video-mode stream``), completely, as they come.

        Called for each tube of video ``index`` in order; ``result.data`` covers the tube's frames only and
        ``result.frame_names`` names them (a stream decoder's :meth:`~omg_core.task_io.VideoStreamDecoder.decode_chunk`
        result). Keep only small per-video state between calls. Set :attr:`streams` when you implement it.

        :return: the paths written.
        """
        raise NotImplementedError(f"{type(self).__name__} does not write streamed videos")

    def finish_video(self, result: TaskResult | None, index: int) -> list[Path]:
        """End streamed video ``index``: ``result`` is its decoder's ``finish()`` (None when it has nothing to add);
        record what :meth:`close` needs. The default records nothing.

        :return: the paths written.
        """
        return []

    #: Attributes holding what :meth:`close` writes (e.g. ``("images", "annotations")``: record lists, dicts or
    #: single values, all picklable). Under
    #: ``torchrun`` every rank writes its samples' own files, then rank 0 gathers these lists from all ranks and closes
    #: once for the whole run, so the gathered files equal a single-process run's. A writer whose ``close`` writes
    #: something must list them (``omg run`` refuses to shard a format whose writer gathers but names no records).
    gathered_records: ClassVar[tuple[str, ...]] = ()

    def shard_records(self) -> dict[str, Any]:
        """This rank's gathered records (picklable), by attribute name."""
        return {name: getattr(self, name) for name in self.gathered_records}

    def merge_shard_records(self, shards: list[dict[str, Any]]) -> None:
        """Take every rank's records (rank 0, before :meth:`close`): lists become the records of all ranks in sample
        order (see :meth:`record_order`), dicts are merged (the lowest rank wins a key), other values take the first
        rank's that is not None."""
        for name in self.gathered_records:
            values = [shard[name] for shard in shards]
            if all(isinstance(value, list) for value in values):
                merged: Any = sorted((record for value in values for record in value), key=self.record_order)
            elif all(isinstance(value, dict) for value in values):
                merged = {}
                for value in values:  # the first rank to see a key decides it, as the first sample would
                    for key, item in value.items():
                        merged.setdefault(key, item)
            else:  # a single value (the vocabulary): the first rank that has one
                merged = next((value for value in values if value is not None), None)
            setattr(self, name, merged)

    @staticmethod
    def record_order(record: Any) -> Any:
        """Sort key of a gathered record: the sample position it carries (``image_id``, ``video_id``, ``id`` or
        ``index``), so merged lists come in input order; records without one keep rank order."""
        if isinstance(record, dict):
            for key in ("image_id", "video_id", "id", "index"):
                if isinstance(record.get(key), int):
                    return record[key]
        return 0

    def stem(self, result: TaskResult, index: int) -> str:
        """A file stem for ``result`` from its input's name (``index`` when it has none), unique within the run."""
        stem = Path(result.source).stem if result.source is not None else f"{index:06d}"
        if stem in self._stems:
            stem = f"{stem}_{index}"
        self._stems.add(stem)
        return stem


class OverlayStream:
    """The overlay of one streamed video, drawn tube by tube (``omg_open_overlay_stream``): :meth:`add` draws a
    tube's frames and encodes them at once (nothing is kept), :meth:`close` finishes the file."""

    def add(self, result: TaskResult, pixels: Any) -> None:
        """Draw ``result`` (a stream decoder's chunk result) over ``pixels`` (t, 3, H, W) uint8, the tube's frames."""
        raise NotImplementedError

    def close(self) -> list[Path]:
        """Finish the picture files; returns them."""
        raise NotImplementedError

    def abort(self) -> None:
        """Drop unfinished files (the video failed or the run was interrupted)."""
