"""Checks that a path a user gave is the kind of thing expected (file or folder), with errors that say what it is."""

from __future__ import annotations

from pathlib import Path

from omg_data.errors import DataError


class MissingPathError(DataError, FileNotFoundError):
    """A path the user gave does not exist (a DataError, and a FileNotFoundError for callers that catch OS errors)."""


def _what_it_is(path: Path) -> str:
    if path.is_dir():
        return "a folder"
    if path.is_file():
        return "a file"
    return "neither a file nor a folder" if path.exists() else "missing"


def require_file(path: str | Path, expected: str = "a file") -> Path:
    """``path`` itself when it is a file.

    Arguments:
      path: the path the user gave.
      expected: what it should be, for the message ("a COCO panoptic JSON").
    Raises:
      MissingPathError: the path does not exist.
      DataError: "is a folder" when a folder was given where a file is expected.
    """
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise MissingPathError(f"does not exist; expected {expected}", path)
    raise DataError(f"is {_what_it_is(path)}; expected {expected}", path)


def require_folder(path: str | Path, expected: str = "a folder") -> Path:
    """``path`` itself when it is a folder; otherwise a DataError saying what it is instead (see require_file)."""
    path = Path(path)
    if path.is_dir():
        return path
    if not path.exists():
        raise MissingPathError(f"does not exist; expected {expected}", path)
    raise DataError(f"is {_what_it_is(path)}; expected {expected}", path)
