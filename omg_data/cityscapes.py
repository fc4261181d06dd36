"""Cityscapes panoptic, COCO style, as produced by cityscapesscripts' `createPanopticImgs`.

Layout:
  gtFine/cityscapes_panoptic_<split>.json
  gtFine/cityscapes_panoptic_<split>/<city>_<seq>_<frame>_gtFine_panoptic.png
  leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
Image records have id "<city>_<seq>_<frame>" and the image file name; the city is the id's first part.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from omg_data.coco_panoptic import read_coco_panoptic, write_coco_panoptic
from omg_data.sample import CategoryList, Sample
from omg_data.schemas import ImageInfo


def cityscapes_image_path(image_root: Path, info: ImageInfo) -> Path:
    """leftImg8bit/<split>/<city>/<file_name>, the city taken from the image id."""
    city = str(info.id).split("_")[0]
    return image_root / city / info.file_name


def read_cityscapes_panoptic(root: str | Path, split: str = "val") -> Iterator[Sample]:
    """Reads Cityscapes panoptic ground truth; samples as from `read_coco_panoptic`.

    Arguments:
      root: the Cityscapes root holding gtFine/ and leftImg8bit/.
      split: "train", "val" or "test".
    """
    root = Path(root)
    return read_coco_panoptic(
        root / "gtFine" / f"cityscapes_panoptic_{split}.json",
        root / "gtFine" / f"cityscapes_panoptic_{split}",
        root / "leftImg8bit" / split,
        image_path=cityscapes_image_path,
    )


def write_cityscapes_panoptic(
    samples: Iterable[Sample],
    root: str | Path,
    split: str = "val",
    categories: CategoryList | None = None,
    with_images: bool = True,
) -> Path:
    """Writes samples in the Cityscapes panoptic layout (sample ids "<city>_<seq>_<frame>").

    PNGs are named `<id>_gtFine_panoptic.png` and images `leftImg8bit/<split>/<city>/<id>_leftImg8bit.png`.
    """
    root = Path(root)

    def renamed(stream: Iterable[Sample]) -> Iterator[Sample]:
        for sample in stream:
            image_id = str(sample.sample_id)
            if image_id.count("_") < 2:
                raise ValueError(f"Cityscapes sample ids look like 'city_000000_000019', got {image_id!r}")
            yield replace(sample, frame_names=[f"{image_id}_leftImg8bit.png"])

    return write_coco_panoptic(
        renamed(samples),
        root / "gtFine" / f"cityscapes_panoptic_{split}.json",
        root / "gtFine" / f"cityscapes_panoptic_{split}",
        categories,
        image_dir=root / "leftImg8bit" / split if with_images else None,
        png_name_of=lambda sample: f"{sample.sample_id}_gtFine_panoptic.png",
        image_path_of=lambda folder, sample: folder / str(sample.sample_id).split("_")[0] / sample.frame_names[0],
    )
