"""Prompt templates that turn a class name into CLIP text (the ViLD set used by FC-CLIP and OMG-Seg)."""

from __future__ import annotations

# Each template holds one "{}" where the class name goes. The text embedding of a class is the mean of the
# normalised embeddings of all its templates, which makes it less sensitive to any single phrasing.
VILD_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "This is a photo of a {}",
    "There is a {} in the scene",
    "There is the {} in the scene",
    "a photo of a {} in the scene",
    "a photo of a small {}.",
    "a photo of a medium {}.",
    "a photo of a large {}.",
    "This is a photo of a small {}.",
    "This is a photo of a medium {}.",
    "This is a photo of a large {}.",
    "There is a small {} in the scene.",
    "There is a medium {} in the scene.",
    "There is a large {} in the scene.",
)


def split_synonyms(class_name: str) -> list[str]:
    """The synonyms of a class name, normalised as OMG-Seg does for its dataset names.

    "," "/" and "_or_" separate synonyms, "_" becomes a space, names are lower-cased
    (e.g. "Person, man" -> ["person", "man"], "wall_or_fence" -> ["wall", "fence"]).
    """
    text = class_name.replace("_or_", ",").replace("/", ",").replace("_", " ").lower()
    synonyms = [name.strip() for name in text.split(",") if name.strip()]
    if not synonyms:
        raise ValueError(f"class name {class_name!r} is empty; give a non-empty name for every class")
    return synonyms


def expand_class_name(class_name: str, templates: tuple[str, ...] = VILD_TEMPLATES) -> list[list[str]]:
    """Fill every template with each synonym of a class name.

    Arguments:
      class_name: a class name, synonyms separated as in `split_synonyms`.
      templates: strings with exactly one "{}".

    Returns:
      One list of len(templates) sentences per synonym.
    """
    return [[template.format(synonym) for template in templates] for synonym in split_synonyms(class_name)]
