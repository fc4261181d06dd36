"""Loading annotation JSON against a schema, with errors that name the file and the offending record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from omg_data.errors import DataError
from omg_data.paths import require_file
from omg_data.schemas import describe

ModelT = TypeVar("ModelT", bound=BaseModel)


def read_json(path: str | Path, expected: str = "a JSON file") -> Any:
    """Parses a JSON file.

    Arguments:
      path: the file.
      expected: what the file should be, for the messages ("the ground-truth YouTube-VIS JSON").
    Raises:
      DataError naming the file: missing, a folder, not UTF-8 (with the byte offset), or not valid JSON (with line
      and column).
    """
    path = require_file(path, expected)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark is tolerated, as json.load on a text file in UTF-8
    except UnicodeDecodeError as error:
        raise DataError(
            f"is not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start} cannot be decoded); JSON "
            "files must be UTF-8: re-save it as UTF-8",
            path,
        ) from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"not valid JSON at line {error.lineno} column {error.colno}: {error.msg}", path) from error


def load_validated(path: str | Path, model: type[ModelT] | Any) -> ModelT | Any:
    """Parses a JSON file and validates it against a pydantic model (or any type TypeAdapter accepts).

    Arguments:
      path: the annotation file.
      model: the schema (see `omg_data.schemas`).
    Returns:
      the validated model instance.
    Raises:
      DataError naming the file, the first failing record (with its ids) and the field.
    """
    path = require_file(path, "an annotation JSON file")
    try:
        # pydantic-core parses and validates in one pass, without building Python dicts first: about twice
        # as fast as json.load + validate_python on COCO-sized files
        return TypeAdapter(model).validate_json(path.read_bytes())
    except ValidationError as error:
        # on failure only, parse again with the json module: it reports syntax errors by line and column,
        # and the raw dicts let the message name the failing record by its ids
        raise _describe_validation_error(error, read_json(path), path) from error


def _describe_validation_error(error: ValidationError, raw: Any, path: Path) -> DataError:
    first = error.errors()[0]
    location = first["loc"]
    # Walk down the error location, naming list positions ("annotations[3].segmentations[0]") and
    # remembering the ids of the innermost enclosing record, which is what a user searches the file for.
    record_parts: list[str] = []
    ids = ""
    node: Any = raw
    for part in location:
        if isinstance(node, dict) and describe(node):
            ids = describe(node)
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            record_parts.append(f"[{part}]")
            node = node[part]
        elif isinstance(part, str) and isinstance(node, dict):
            record_parts.append(("." if record_parts else "") + part)
            node = node.get(part)
        else:  # union branch names and the like: not part of the file's structure
            continue
    if isinstance(node, dict) and describe(node):
        ids = describe(node)
    record = "".join(record_parts) or "<top level>"
    if ids:
        record = f"{record} ({ids})"
    count = error.error_count()
    more = f" (and {count - 1} more problems)" if count > 1 else ""
    return DataError(
        f"does not match the expected schema: {first['msg']}{more}; fix the record or check that this"
        " file is the annotation format the reader expects",
        path,
        record,
    )


def write_json(data: Any, path: str | Path) -> None:
    """Writes JSON compactly (annotation files get large), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, separators=(",", ":"))


def check_unique(ids: list[object], section: str, path: str | Path) -> None:
    """Raises DataError naming the first repeated id of a JSON section ("images", "videos", ...).

    A repeated id would otherwise make one record silently shadow the other.
    """
    seen: dict[object, int] = {}
    for index, value in enumerate(ids):
        if value in seen:
            raise DataError(
                f"id {value!r} is used by {section}[{seen[value]}] and {section}[{index}]; ids must be unique",
                path,
                f"{section}[{index}]",
            )
        seen[value] = index
