"""Vocabularies: the built-in class lists of OMG-Seg's datasets, `--vocabulary` parsing, and seen/unseen flags.

Built-in vocabularies live in omg_core/configs/vocabularies/<name>.json (regenerate them with
tools/gen_vocabularies.py). Each class has a `text` for the CLIP text tower, the official synonym string with
synonyms separated by "," (e.g. "bicycle,bicycles,bike,bikes"), and a thing/stuff flag.

`parse_vocabulary(spec)` accepts, in this order of precedence:
  1. a built-in name (`list_vocabularies()`: coco, ade20k, cityscapes, ytvis2019, ytvis2021, vipseg, the shapes
     world's shapes-world and shapes-world-seen, and the alias coco_panoptic), matched case-insensitively. A file whose name is a built-in name is read as "./coco".
  2. a path to an existing UTF-8 text file (a byte-order mark is allowed): one class per line, synonyms separated by ","; blank lines and lines
     starting with "#" are skipped.
  3. inline classes: classes separated by ";", synonyms within a class by "," ("cat,kitty;zebra;traffic cone").
     A trailing ";" is allowed, so "zebra;" is a one-class vocabulary.
A bare word that is none of these (no ";", no ",", no path separator, no such file) is an error that suggests the
closest built-in name and the "zebra;" spelling, so that a mistyped built-in name never silently becomes a
one-class vocabulary.

Custom classes are things unless marked: a class (file line or inline entry) ending in ":stuff" is a stuff class
("sky,clouds:stuff"); ":thing" is accepted too. Because ":" introduces the marker, a class text cannot contain ":".
Every synonym must be non-empty and unique over the whole vocabulary, compared as the text tower sees it
(lower case, "_" as a space, "/" and "_or_" as synonym separators).
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from omg_core.errors import InputError
from omg_core.model.prompt_templates import split_synonyms

VOCABULARY_DIR = Path(__file__).resolve().parent.parent / "configs" / "vocabularies"

STUFF_MARKER = "stuff"
THING_MARKER = "thing"


@dataclass(frozen=True)
class Vocabulary:
    """name: the vocabulary's name (a built-in name, the file path, or "inline"); dataset_names: K category names as
    the dataset spells them; texts: K names for the CLIP text tower (synonyms separated by ","); is_thing: K flags
    (things vs stuff); test_scale: the official test resize (long side, short side) of a built-in dataset, None for
    custom vocabularies."""

    name: str
    dataset_names: tuple[str, ...]
    texts: tuple[str, ...]
    is_thing: tuple[bool, ...]
    test_scale: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not (len(self.dataset_names) == len(self.texts) == len(self.is_thing)):
            raise ValueError(f"vocabulary {self.name!r}: {len(self.dataset_names)} dataset names, "
                             f"{len(self.texts)} texts and {len(self.is_thing)} thing flags; give one of each per class")
        if not self.texts:
            raise ValueError(f"vocabulary {self.name!r} has no classes")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_things(self) -> int:
        return sum(self.is_thing)


# --------------------------------------------------------------------------------------------------- built-ins


def list_vocabularies() -> list[str]:
    """Names accepted by `load_vocabulary` (aliases included)."""
    return sorted(path.stem for path in VOCABULARY_DIR.glob("*.json"))


def _closest_builtin(name: str) -> str | None:
    close = difflib.get_close_matches(name.lower(), list_vocabularies(), n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown_name_message(name: str) -> str:
    close = _closest_builtin(name)
    hint = f"; did you mean {close!r}?" if close else ""
    return f"unknown built-in vocabulary {name!r}{hint} (built-in vocabularies: {', '.join(list_vocabularies())})"


@cache
def load_vocabulary(name: str) -> Vocabulary:
    """Read omg_core/configs/vocabularies/<name>.json; an alias file returns its target vocabulary.

    Raises:
      InputError for a name that is not a built-in vocabulary (the message lists them and suggests the closest).
    """
    path = VOCABULARY_DIR / f"{name}.json"
    if not name or os.sep in name or "/" in name or not path.is_file():
        raise InputError(_unknown_name_message(name))
    document = json.loads(path.read_text(encoding="utf-8"))
    if "alias_of" in document:
        return load_vocabulary(document["alias_of"])
    classes = document["classes"]
    test_scale = document.get("test_scale")
    return Vocabulary(
        name=name,
        dataset_names=tuple(c["dataset_name"] for c in classes),
        texts=tuple(c["text"] for c in classes),
        is_thing=tuple(bool(c["isthing"]) for c in classes),
        test_scale=(int(test_scale[0]), int(test_scale[1])) if test_scale is not None else None,
    )


# ------------------------------------------------------------------------------------------ --vocabulary parsing


@dataclass(frozen=True)
class _ParsedClass:
    synonyms: tuple[str, ...]  # stripped, as written
    is_thing: bool
    where: str  # where the user wrote it, for errors: "classes.txt line 3" / "class 2"


def _parse_class(entry: str, where: str, option: str) -> _ParsedClass:
    """One class: synonyms separated by ",", optionally ending in ":stuff" / ":thing"."""
    is_thing = True
    if ":" in entry:
        entry, _, marker = entry.rpartition(":")
        marker = marker.strip().lower()
        if marker not in (STUFF_MARKER, THING_MARKER):
            raise InputError(f"{option}: {where}: unknown class marker ':{marker}' (a class may end in ':stuff' or "
                             "':thing'; class names cannot contain ':')")
        is_thing = marker == THING_MARKER
    synonyms = tuple(synonym.strip() for synonym in entry.split(","))
    if not any(synonyms):
        raise InputError(f"{option}: {where} is blank; give a class name (synonyms separated by ',')")
    for synonym in synonyms:
        if not synonym or not _normalized(synonym):
            raise InputError(f"{option}: {where} ({entry.strip()!r}) has a blank synonym; "
                             "separate synonyms with single ','")
    return _ParsedClass(synonyms, is_thing, where)


def _normalized(synonym: str) -> list[str]:
    """The words the text tower embeds for one synonym (lower case, '_' as space, '/' and '_or_' split)."""
    try:
        return split_synonyms(synonym)
    except ValueError:
        return []


def _build_custom(name: str, classes: list[_ParsedClass], option: str) -> Vocabulary:
    first_seen: dict[str, tuple[str, _ParsedClass]] = {}
    for parsed in classes:
        for synonym in parsed.synonyms:
            for word in _normalized(synonym):
                if word in first_seen:
                    other_synonym, other = first_seen[word]
                    place = "in the same class" if other is parsed else f"of {other.where}"
                    raise InputError(f"{option}: {parsed.where}: {synonym!r} repeats {other_synonym!r} {place}; "
                                     "each class and synonym may appear once (case-insensitive)")
                first_seen[word] = (synonym, parsed)
    return Vocabulary(
        name=name,
        dataset_names=tuple(parsed.synonyms[0] for parsed in classes),
        texts=tuple(",".join(parsed.synonyms) for parsed in classes),
        is_thing=tuple(parsed.is_thing for parsed in classes),
    )


def _read_vocabulary_file(path: Path, option: str) -> Vocabulary:
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark is not part of the first class
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise InputError(f"{option}: {path}: line {line} is not UTF-8 text; save the class list as UTF-8") from None
    except OSError as error:
        raise InputError(f"{option}: cannot read {path} ({error.strerror or error})") from None
    classes = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{path} line {number}"
        if ";" in stripped:
            raise InputError(f"{option}: {where}: ';' in a vocabulary file; write one class per line "
                             "(synonyms separated by ',')")
        classes.append(_parse_class(stripped, where, option))
    if not classes:
        raise InputError(f"{option}: {path} has no classes (one class per line; blank and '#' lines are skipped)")
    return _build_custom(str(path), classes, option)


def _parse_inline(spec: str, option: str) -> Vocabulary:
    entries = spec.split(";")
    if len(entries) > 1 and not entries[-1].strip():
        entries = entries[:-1]  # "zebra;" spells a one-class vocabulary
    classes = [_parse_class(entry, f"class {index}", option) for index, entry in enumerate(entries, start=1)]
    return _build_custom("inline", classes, option)


def vocabulary_from_classes(classes: Sequence[str], option: str = "--vocabulary") -> Vocabulary:
    """A custom vocabulary from a list of classes, one per element (synonyms separated by ",", optional
    ":stuff" / ":thing" marker), checked like inline classes. Unlike `parse_vocabulary`, a single element is always
    a class, never a built-in name (["zebra"] and ["coco"] are one-class vocabularies)."""
    if isinstance(classes, str):
        raise TypeError("vocabulary_from_classes takes a list of class names; use parse_vocabulary for a string")
    if not classes:
        raise InputError(f"{option}: empty class list; give at least one class")
    parsed = []
    for index, entry in enumerate(classes, start=1):
        if ";" in entry:
            raise InputError(f"{option}: class {index} ({entry.strip()!r}) contains ';'; give one class per "
                             "list element (synonyms separated by ',')")
        parsed.append(_parse_class(entry, f"class {index}", option))
    return _build_custom("inline", parsed, option)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a long inline class list is not a valid file name (ENAMETOOLONG)
        return False


def parse_vocabulary(spec: str, option: str = "--vocabulary") -> Vocabulary:
    """A built-in name, a class-list file, or inline classes (see the module docstring for the rules).

    Arguments:
      spec: what the user wrote.
      option: the option name errors start with.

    Raises:
      InputError: empty spec, unknown built-in name, unreadable file, blank class or synonym, repeated class or
        synonym (case-insensitive), unknown class marker.
    """
    stripped = spec.strip()
    if not stripped:
        raise InputError(f"{option}: empty vocabulary; give a built-in name ({', '.join(list_vocabularies())}), "
                         "a class-list file, or classes like 'cat;dog,puppy'")
    if stripped.lower() in list_vocabularies():
        return load_vocabulary(stripped.lower())
    path = Path(stripped).expanduser()
    if _is_file(path):
        return _read_vocabulary_file(path, option)
    looks_like_path = os.sep in stripped or "/" in stripped or path.suffix.lower() in (".txt", ".csv", ".list")
    if looks_like_path and ";" not in stripped and "," not in stripped:
        raise InputError(f"{option}: no such file {stripped!r} (inline classes are separated by ';', "
                         "synonyms by ',')")
    if ";" in stripped or "," in stripped:
        return _parse_inline(stripped, option)
    close = _closest_builtin(stripped)
    hint = f" (did you mean {close!r}?)" if close else ""
    raise InputError(f"{option}: {stripped!r} is neither a built-in vocabulary{hint} nor a file; built-in "
                     f"vocabularies: {', '.join(list_vocabularies())}; for a one-class vocabulary write "
                     f"'{stripped};'")


# ------------------------------------------------------------------------------------------------ seen / unseen


def seen_flags(test_vocabulary: Sequence[str], train_vocabulary: Sequence[str]) -> list[bool]:
    """Which test classes count as seen in training: OMG-Seg's word-overlap rule (class_overlapping.py).

    A test class is seen when any of its ","-separated synonyms equals, exactly (case and spaces included), any
    synonym of any training class. The official evaluation passes the training classes as ConcatOVDataset builds
    them (lower case, "_or_" and "/" as ",", "_" as a space), which is how the built-in texts are stored.

    Arguments:
      test_vocabulary: K class texts of the vocabulary being predicted.
      train_vocabulary: class texts the model was trained on.

    Returns:
      K flags, True for seen classes (ensemble exponent alpha), False for unseen ones (beta).
    """
    train_words = {word for text in train_vocabulary for word in text.split(",")}
    return [any(word in train_words for word in text.split(",")) for text in test_vocabulary]


# The datasets the released OMG-Seg weights were trained on, in the order of their ConcatOVDataset
# (configs/_base_/datasets/coco_panoptic_video_yt19_yt21_vip_cityscapes_cocopansam.py; COCO-SAM is class-agnostic).
RELEASED_TRAINING_VOCABULARIES: tuple[str, ...] = ("coco", "ytvis2019", "ytvis2021", "vipseg", "cityscapes")


def merged_training_vocabulary(names: Sequence[str] = RELEASED_TRAINING_VOCABULARIES) -> Vocabulary:
    """The class list OMG-Seg trains on when it concatenates datasets (seg/datasets/concat_dataset.py).

    Things and stuff are merged separately, dataset by dataset: a class joins the list unless one of its synonyms
    is already a synonym of a listed class of the same kind, in which case it maps onto that class and its other
    synonyms are dropped (so they do not count as seen). The result is things then stuff; for the released weights
    it is the 139 things + 101 stuff list of the official demo (demo/configs/names/th139_st101.py).
    """
    merged: dict[bool, list[tuple[str, str]]] = {True: [], False: []}  # is_thing -> [(dataset_name, text)]
    for name in names:
        vocabulary = load_vocabulary(name)
        for dataset_name, text, is_thing in zip(vocabulary.dataset_names, vocabulary.texts, vocabulary.is_thing):
            text = text.replace("_or_", ",").replace("/", ",").replace("_", " ").lower()
            words = set(text.split(","))
            if not any(words & set(other.split(",")) for _, other in merged[is_thing]):
                merged[is_thing].append((dataset_name, text))
    classes = merged[True] + merged[False]
    return Vocabulary(
        name="+".join(names),
        dataset_names=tuple(dataset_name for dataset_name, _ in classes),
        texts=tuple(text for _, text in classes),
        is_thing=(True,) * len(merged[True]) + (False,) * len(merged[False]),
    )


def parse_class_list(spec: str, option: str) -> list[str]:
    """Class references separated by ";" (e.g. the value of --seen "cat;traffic light")."""
    entries = [entry.strip() for entry in spec.split(";")]
    if len(entries) > 1 and not entries[-1]:
        entries = entries[:-1]
    if not entries or not all(entries):
        raise InputError(f"{option}: blank class in {spec!r}; separate class names with single ';'")
    return entries


def _class_index(reference: str, vocabulary: Vocabulary, option: str) -> int:
    """The class a user reference names: its dataset name, its whole text, or one of its synonyms."""
    key = reference.strip().lower()
    matches = [index for index, (name, text) in enumerate(zip(vocabulary.dataset_names, vocabulary.texts))
               if key in (name.lower(), text.lower()) or key in (s.strip().lower() for s in text.split(","))]
    if not matches:
        preview = ", ".join(repr(name) for name in vocabulary.dataset_names[:8])
        more = f", ... ({len(vocabulary)} classes)" if len(vocabulary) > 8 else ""
        close = difflib.get_close_matches(key, [n.lower() for n in vocabulary.dataset_names], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(f"{option}: {reference!r} is not a class of the vocabulary {vocabulary.name!r}{hint} "
                         f"(classes: {preview}{more})")
    if len(matches) > 1:
        names = ", ".join(repr(vocabulary.dataset_names[i]) for i in matches)
        raise InputError(f"{option}: {reference!r} names several classes ({names}); use a class's full text")
    return matches[0]


def seen_override(
    vocabulary: Vocabulary,
    seen: Sequence[str] | None,
    unseen: Sequence[str] | None,
    default: Sequence[bool] | None = None,
    seen_option: str = "--seen",
    unseen_option: str = "--unseen",
) -> list[bool]:
    """Seen flags from user-named classes.

    Classes are named by dataset name, full text or any synonym (case-insensitive). Classes named in neither list
    keep `default` when given; otherwise they are unseen when only `seen` is given and seen when `unseen` is given.

    Arguments:
      vocabulary: the K classes.
      seen, unseen: class references (None: not given).
      default: K flags for the classes named in neither list (e.g. `seen_flags` against the training classes).

    Returns:
      K flags, True for seen.
    """
    if seen is None and unseen is None and default is None:
        raise ValueError("seen_override needs `seen`, `unseen` or `default`")
    if default is not None and len(default) != len(vocabulary):
        raise ValueError(f"default has {len(default)} flags for {len(vocabulary)} classes")
    if default is not None:
        flags = [bool(flag) for flag in default]
    else:
        flags = [seen is None] * len(vocabulary)
    seen_indices = {_class_index(ref, vocabulary, seen_option): ref for ref in seen or ()}
    unseen_indices = {_class_index(ref, vocabulary, unseen_option): ref for ref in unseen or ()}
    both = sorted(set(seen_indices) & set(unseen_indices))
    if both:
        names = ", ".join(repr(vocabulary.dataset_names[i]) for i in both)
        raise InputError(f"{unseen_option}: {names} also given to {seen_option}; name each class in one of them")
    for index in seen_indices:
        flags[index] = True
    for index in unseen_indices:
        flags[index] = False
    return flags
