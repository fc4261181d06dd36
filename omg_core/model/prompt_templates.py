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


def expand_class_name(class_name: str, templates: tuple[str, ...] = VILD_TEMPLATES) -> list[str]:
    """Fill every template with one class name.

    Arguments:
      class_name: a class name; synonyms may be given separated by "," (e.g. "person, man") and each synonym
        is expanded, so the class embedding averages over synonyms and templates together.
      templates: strings with exactly one "{}".

    Returns:
      The list of filled-in sentences, len(synonyms) * len(templates) long.
    """
    synonyms = [name.strip() for name in class_name.split(",") if name.strip()]
    if not synonyms:
        raise ValueError(f"class name {class_name!r} is empty; give a non-empty name for every class")
    return [template.format(synonym) for synonym in synonyms for template in templates]
