"""Captions for CLIP training: "a red star and a blue circle on grass"."""

from __future__ import annotations


def _article(phrase: str) -> str:
    return f"an {phrase}" if phrase[0] in "aeiou" else f"a {phrase}"


def _plural(phrase: str) -> str:
    return phrase + ("es" if phrase.endswith(("s", "x", "sh", "ch")) else "s")


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def caption(things: list[str], crowd: str | None, ground: str | None, sky: bool) -> list[str]:
    """Builds captions of a scene.

    Arguments:
      things: thing class names, most visible first (up to three are mentioned, each once).
      crowd: class name of a crowd group, if any.
      ground: the largest ground stuff class ("grass"), if any.
      sky: whether sky is visible.
    Returns:
      two captions: object-first ("a red star and a blue circle on grass") and scene-first.
    """
    unique = list(dict.fromkeys(things))[:3]
    phrases = [_article(name) for name in unique]
    if crowd is not None:
        phrases.append(f"a group of small {_plural(crowd)}")
    place = f"on {ground}" if ground else ("in the sky" if sky else "")
    if phrases:
        first = f"{_join(phrases)} {place}".strip()
    else:
        first = f"{ground} under the sky" if ground and sky else (ground or "the sky")
    scene = ground or ("sky" if sky else "a scene")
    second = f"{scene} with {_join(phrases)}" if phrases else f"a picture of {scene}"
    return [first, second]
