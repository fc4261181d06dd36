"""Named vocabularies shipped with omg_core (class names in dataset order, and the text given to CLIP)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

VOCABULARY_DIR = Path(__file__).resolve().parent.parent / "configs" / "vocabularies"


@dataclass(frozen=True)
class Vocabulary:
    """name: the vocabulary's name; dataset_names: K category names as the dataset spells them; texts: K names
    for the CLIP text tower (synonyms separated by ","); is_thing: K flags (things vs stuff)."""

    name: str
    dataset_names: tuple[str, ...]
    texts: tuple[str, ...]
    is_thing: tuple[bool, ...]


def list_vocabularies() -> list[str]:
    """Names accepted by `load_vocabulary`."""
    return sorted(path.stem for path in VOCABULARY_DIR.glob("*.json"))


@cache
def load_vocabulary(name: str) -> Vocabulary:
    """Read omg_core/configs/vocabularies/<name>.json."""
    path = VOCABULARY_DIR / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"unknown vocabulary {name!r}; available: {', '.join(list_vocabularies())}")
    classes = json.loads(path.read_text())["classes"]
    return Vocabulary(
        name=name,
        dataset_names=tuple(c["dataset_name"] for c in classes),
        texts=tuple(c["text"] for c in classes),
        is_thing=tuple(bool(c["isthing"]) for c in classes),
    )
