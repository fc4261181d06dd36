"""ADE20K: panoptic in COCO format (Mask2Former's conversion) and semantic PNGs (0 = other, 255 ignore).

Layout (ADEChallengeData2016):
  images/{training,validation}/ADE_*.jpg
  annotations/{training,validation}/ADE_*.png           semantic, raw values 0..150 (0 = other)
  ade20k_panoptic_{train,val}.json + ade20k_panoptic_{train,val}/*.png   panoptic (COCO style)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from omg_data.coco_panoptic import read_coco_panoptic
from omg_data.sample import Category, CategoryList, Sample
from omg_data.semantic_png import read_semantic_png

_SPLIT_FOLDERS = {"train": "training", "val": "validation"}

# The 150 SceneParsing classes in label order (label k + 1 in the raw PNGs), short names.
ADE20K_CLASS_NAMES: tuple[str, ...] = (
    "wall",
    "building",
    "sky",
    "floor",
    "tree",
    "ceiling",
    "road",
    "bed",
    "windowpane",
    "grass",
    "cabinet",
    "sidewalk",
    "person",
    "earth",
    "door",
    "table",
    "mountain",
    "plant",
    "curtain",
    "chair",
    "car",
    "water",
    "painting",
    "sofa",
    "shelf",
    "house",
    "sea",
    "mirror",
    "rug",
    "field",
    "armchair",
    "seat",
    "fence",
    "desk",
    "rock",
    "wardrobe",
    "lamp",
    "bathtub",
    "railing",
    "cushion",
    "base",
    "box",
    "column",
    "signboard",
    "chest of drawers",
    "counter",
    "sand",
    "sink",
    "skyscraper",
    "fireplace",
    "refrigerator",
    "grandstand",
    "path",
    "stairs",
    "runway",
    "case",
    "pool table",
    "pillow",
    "screen door",
    "stairway",
    "river",
    "bridge",
    "bookcase",
    "blind",
    "coffee table",
    "toilet",
    "flower",
    "book",
    "hill",
    "bench",
    "countertop",
    "stove",
    "palm",
    "kitchen island",
    "computer",
    "swivel chair",
    "boat",
    "bar",
    "arcade machine",
    "hovel",
    "bus",
    "towel",
    "light",
    "truck",
    "tower",
    "chandelier",
    "awning",
    "streetlight",
    "booth",
    "television receiver",
    "airplane",
    "dirt track",
    "apparel",
    "pole",
    "land",
    "bannister",
    "escalator",
    "ottoman",
    "bottle",
    "buffet",
    "poster",
    "stage",
    "van",
    "ship",
    "fountain",
    "conveyer belt",
    "canopy",
    "washer",
    "plaything",
    "swimming pool",
    "stool",
    "barrel",
    "basket",
    "waterfall",
    "tent",
    "bag",
    "minibike",
    "cradle",
    "oven",
    "ball",
    "food",
    "step",
    "tank",
    "trade name",
    "microwave",
    "pot",
    "animal",
    "bicycle",
    "lake",
    "dishwasher",
    "screen",
    "blanket",
    "sculpture",
    "hood",
    "sconce",
    "vase",
    "traffic light",
    "tray",
    "ashcan",
    "fan",
    "pier",
    "crt screen",
    "plate",
    "monitor",
    "bulletin board",
    "shower",
    "radiator",
    "glass",
    "clock",
    "flag",
)


def ade20k_semantic_categories() -> CategoryList:
    """The 150 ADE20K semantic categories with ids 0..149 (the reduced label values)."""
    return CategoryList(Category(id=index, name=name, is_thing=False) for index, name in enumerate(ADE20K_CLASS_NAMES))


def read_ade20k_semantic(
    root: str | Path, split: str = "val", categories: CategoryList | None = None, reduce_zero_label: bool = True
) -> Iterator[Sample]:
    """Reads ADE20K semantic labels (raw PNGs: 0 = other -> ignore, class k stored as k + 1).

    Arguments:
      root: the ADEChallengeData2016 folder.
      split: "train" or "val".
      categories: defaults to the 150 standard classes.
      reduce_zero_label: False for label folders that already store 0..149 with 255 ignore
        (e.g. Mask2Former's `annotations_detectron2`).
    """
    folder = _SPLIT_FOLDERS.get(split, split)
    root = Path(root)
    return read_semantic_png(
        root / "images" / folder,
        root / "annotations" / folder,
        categories or ade20k_semantic_categories(),
        reduce_zero_label=reduce_zero_label,
    )


def read_ade20k_panoptic(root: str | Path, split: str = "val") -> Iterator[Sample]:
    """Reads ADE20K panoptic annotations in COCO format (`ade20k_panoptic_<split>.json` + PNG folder)."""
    root = Path(root)
    return read_coco_panoptic(
        root / f"ade20k_panoptic_{split}.json",
        root / f"ade20k_panoptic_{split}",
        root / "images" / _SPLIT_FOLDERS.get(split, split),
    )
