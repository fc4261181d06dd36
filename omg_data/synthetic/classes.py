"""The shapes world's vocabulary: colour x shape thing classes, stuff classes, and the held-out classes.

Names are natural phrases ("red star", "grass") because they become CLIP text prompts.
Category ids: things 1..64 in colour-major order, then stuff 65..69 (COCO's things-then-stuff order).
"""

from __future__ import annotations

from omg_data.sample import Category, CategoryList

# RGB base colours of thing classes (the shading noise stays within a few levels of these).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 35, 35),
    "orange": (245, 140, 20),
    "yellow": (240, 215, 30),
    "green": (30, 175, 70),
    "blue": (30, 70, 220),
    "purple": (130, 50, 180),
    "pink": (240, 120, 185),
    "white": (250, 250, 250),
}

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "hexagon", "cross", "diamond", "heart")

# Base colours of stuff textures.
STUFF: dict[str, tuple[int, int, int]] = {
    "sky": (115, 170, 235),
    "grass": (75, 145, 55),
    "water": (40, 90, 170),
    "sand": (215, 190, 130),
    "snow": (232, 236, 244),
}

# Classes never drawn when a world excludes held-out classes: the open-vocabulary test set. Each
# colour and each shape still appears in other seen classes, so recognising these is compositional.
HELD_OUT: tuple[str, ...] = (
    "purple triangle",
    "orange star",
    "pink hexagon",
    "yellow cross",
    "white diamond",
    "green heart",
)


def thing_name(colour: str, shape: str) -> str:
    """The class name of a coloured shape: "red star"."""
    return f"{colour} {shape}"


def shapes_world_categories() -> CategoryList:
    """All categories of the shapes world (things 1..64, stuff 65..69), held-out ones flagged."""
    categories = []
    for colour, rgb in COLOURS.items():
        for shape in SHAPES:
            name = thing_name(colour, shape)
            categories.append(
                Category(id=len(categories) + 1, name=name, is_thing=True, color=rgb, held_out=name in HELD_OUT)
            )
    for name, rgb in STUFF.items():
        categories.append(Category(id=len(categories) + 1, name=name, is_thing=False, color=rgb))
    return CategoryList(categories)
