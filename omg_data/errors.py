"""The one error type every reader and writer raises for bad input."""

from __future__ import annotations

from pathlib import Path

from omg_common.errors import OMGError


class DataError(OMGError, ValueError):
    """Bad dataset input: names the file, the record inside it, the problem and the fix.

    Arguments:
      message: what is wrong and how to fix it.
      path: the file (or folder) that holds the problem.
      record: which record inside the file, e.g. "annotations[3] (image_id=17)".
    """

    def __init__(self, message: str, path: str | Path | None = None, record: str | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.record = record
        self.problem = message
        where = []
        if path is not None:
            where.append(str(path))
        if record is not None:
            where.append(f"record {record}")
        prefix = ": ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
