"""The typed sample model every reader yields and every writer consumes.

One `Sample` holds an image (a clip of one frame) or a video clip, with one entry per segment. A
segment is a thing instance, a stuff region, or a crowd region; in a video it is a track whose
instance id stays the same across frames. Shapes and dtypes (T frames, S segments, P points):

  frames        T x 3 x H x W  uint8   RGB pixels (T == 1 for images)
  masks         S x T x H x W  bool    per-segment masks; all-False in a frame where the segment is absent
  class_ids     S              int64   the dataset's own category ids (look names up in `categories`)
  is_thing      S              bool    thing (countable) or stuff
  instance_ids  S              int64   segment / track ids, unique in the sample and stable across frames
  is_crowd      S              bool    crowd regions (COCO `iscrowd`): evaluated as ignore, not as instances
  ignore        T x H x W      bool    void pixels that carry no label (panoptic id 0, semantic 255, ...)
  scores        S              float32 only for predictions, else None
  prompts       see `SamplePrompts`, only for interactive / VOS tasks, else None
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Category:
    """One dataset category.

    Arguments:
      id: the dataset's category id as written in its files.
      name: a natural phrase ("person", "red star"); it becomes a CLIP vocabulary entry.
      is_thing: countable thing (True) or amorphous stuff (False).
      color: RGB colour the dataset uses to draw it, if any.
      held_out: excluded from segmentation training (open-vocabulary evaluation only).
    """

    id: int
    name: str
    is_thing: bool
    color: tuple[int, int, int] | None = None
    held_out: bool = False


class CategoryList(Sequence[Category]):
    """An ordered category list with look-up by dataset id and contiguous training indices.

    Arguments:
      categories: the dataset's categories in file order; ids must be unique.
    """

    def __init__(self, categories: Iterable[Category]) -> None:
        self._items = list(categories)
        self._by_id: dict[int, Category] = {}
        self._index: dict[int, int] = {}
        for index, category in enumerate(self._items):
            if category.id in self._by_id:
                raise ValueError(f"category id {category.id} appears twice ('{category.name}'); ids must be unique")
            self._by_id[category.id] = category
            self._index[category.id] = index

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, position: int | slice) -> Category | list[Category]:  # type: ignore[override]
        return self._items[position]

    def __iter__(self) -> Iterator[Category]:
        return iter(self._items)

    def __contains__(self, category_id: object) -> bool:
        return category_id in self._by_id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CategoryList) and self._items == other._items

    def __repr__(self) -> str:
        return f"CategoryList({len(self)} categories)"

    def by_id(self, category_id: int) -> Category:
        """Returns the category with dataset id `category_id` (KeyError if unknown)."""
        return self._by_id[category_id]

    def index_of(self, category_id: int) -> int:
        """Returns the contiguous 0-based training index of dataset id `category_id`."""
        return self._index[category_id]

    @property
    def ids(self) -> list[int]:
        """Dataset category ids in order."""
        return [c.id for c in self._items]

    @property
    def names(self) -> list[str]:
        """Category names in order: the vocabulary handed to the CLIP text encoder."""
        return [c.name for c in self._items]


@dataclass
class SamplePrompts:
    """Visual prompts, one row per segment (interactive segmentation and video object segmentation).

    Arguments:
      points: S x P x 2 float32, (x, y) = (column, row) pixel indices of clicks inside each mask.
      point_labels: S x P int64, 1 for a positive (foreground) click, -1 for padding (no click).
      boxes: S x 4 float32, (x0, y0, x1, y1) tight box of each mask, x1/y1 exclusive.
      masks: S x H x W bool first-frame masks (DAVIS semi-supervised VOS), or None.
      frame_index: the frame the prompts refer to.
    """

    points: torch.Tensor
    point_labels: torch.Tensor
    boxes: torch.Tensor
    masks: torch.Tensor | None = None
    frame_index: int = 0


@dataclass(repr=False)
class Sample:
    """One image or video clip with its segments (see the module docstring for shapes and dtypes)."""

    frames: torch.Tensor  # T x 3 x H x W uint8
    masks: torch.Tensor  # S x T x H x W bool
    class_ids: torch.Tensor  # S int64
    is_thing: torch.Tensor  # S bool
    instance_ids: torch.Tensor  # S int64
    is_crowd: torch.Tensor  # S bool
    ignore: torch.Tensor  # T x H x W bool
    categories: CategoryList
    sample_id: str | int = 0
    frame_names: list[str] = field(default_factory=list)
    is_video: bool = False
    prompts: SamplePrompts | None = None
    scores: torch.Tensor | None = None  # S float32, predictions only
    captions: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        # shapes rather than tensor contents: a sample holds megabytes of pixels and masks
        t, c, h, w = self.frames.shape
        parts = [
            f"id={self.sample_id!r}",
            f"frames={t}x{c}x{h}x{w}",
            f"segments={self.num_segments}",
            f"things={int(self.is_thing.sum())}",
            f"crowd={int(self.is_crowd.sum())}",
            f"ignore_pixels={int(self.ignore.sum())}",
            f"categories={len(self.categories)}",
        ]
        if self.prompts is not None:
            parts.append(f"prompts={tuple(self.prompts.points.shape)}")
        if self.scores is not None:
            parts.append("scores")
        return f"Sample({', '.join(parts)})"

    @property
    def image(self) -> torch.Tensor:
        """The 3 x H x W image of a single-frame sample."""
        if self.frames.shape[0] != 1:
            raise ValueError(f"sample {self.sample_id!r} has {self.frames.shape[0]} frames; use .frames for videos")
        return self.frames[0]

    @property
    def num_frames(self) -> int:
        """T."""
        return int(self.frames.shape[0])

    @property
    def num_segments(self) -> int:
        """S."""
        return int(self.masks.shape[0])

    @property
    def height(self) -> int:
        """H."""
        return int(self.frames.shape[-2])

    @property
    def width(self) -> int:
        """W."""
        return int(self.frames.shape[-1])

    def present(self) -> torch.Tensor:
        """Returns S x T bool: whether each segment has any pixel in each frame."""
        return self.masks.flatten(2).any(dim=2)

    def validate(self) -> None:
        """Checks that every field has the documented shape and dtype; raises ValueError naming the field."""
        t, _, h, w = _expect(self.frames, "frames", torch.uint8, 4)
        s = self.masks.shape[0]
        _expect(self.masks, "masks", torch.bool, 4)
        if tuple(self.masks.shape[1:]) != (t, h, w):
            raise ValueError(f"masks must be S x {t} x {h} x {w}, got {tuple(self.masks.shape)}")
        for name, dtype in (
            ("class_ids", torch.int64),
            ("is_thing", torch.bool),
            ("instance_ids", torch.int64),
            ("is_crowd", torch.bool),
        ):
            value = getattr(self, name)
            _expect(value, name, dtype, 1)
            if value.shape[0] != s:
                raise ValueError(f"{name} must have one entry per segment ({s}), got {value.shape[0]}")
        if tuple(self.ignore.shape) != (t, h, w) or self.ignore.dtype != torch.bool:
            raise ValueError(f"ignore must be {t} x {h} x {w} bool, got {tuple(self.ignore.shape)} {self.ignore.dtype}")
        if len(set(self.instance_ids.tolist())) != s:
            raise ValueError(f"instance_ids must be unique within a sample, got {self.instance_ids.tolist()}")
        unknown = [c for c in self.class_ids.tolist() if c not in self.categories]
        if unknown:
            raise ValueError(f"class ids {sorted(set(unknown))} are not in the sample's category list")


def _expect(value: torch.Tensor, name: str, dtype: torch.dtype, ndim: int) -> tuple[int, ...]:
    if not isinstance(value, torch.Tensor) or value.dtype != dtype or value.ndim != ndim:
        got = f"{value.dtype} with {value.ndim} dims" if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{name} must be a {ndim}-d {dtype} tensor, got {got}")
    return tuple(value.shape)


def empty_segments(num_frames: int, height: int, width: int) -> dict[str, torch.Tensor]:
    """Returns the segment fields of a sample with no segments (all with S == 0)."""
    return {
        "masks": torch.zeros(0, num_frames, height, width, dtype=torch.bool),
        "class_ids": torch.zeros(0, dtype=torch.int64),
        "is_thing": torch.zeros(0, dtype=torch.bool),
        "instance_ids": torch.zeros(0, dtype=torch.int64),
        "is_crowd": torch.zeros(0, dtype=torch.bool),
    }


def check_sample(
    sample: Sample, where: object, categories: CategoryList | None = None, single_frame: bool = False
) -> Sample:
    """Validates a sample handed to a writer; raises DataError naming the output and the sample.

    Arguments:
      sample: the sample about to be written.
      where: the output file or folder, for the message.
      categories: the category list the output declares (default: the sample's own).
      single_frame: the format holds images, so a multi-frame clip would lose frames.
    Returns:
      the sample, for use inside generator expressions.
    """
    from omg_data.errors import DataError

    try:
        sample.validate()
    except ValueError as error:
        raise DataError(f"cannot write this sample: {error}", str(where), f"sample {sample.sample_id!r}") from error
    if single_frame and sample.num_frames != 1:
        raise DataError(
            f"sample has {sample.num_frames} frames but this format holds single images; write each frame as its"
            " own sample or use a video format",
            str(where),
            f"sample {sample.sample_id!r}",
        )
    if categories is not None:
        unknown = sorted({c for c in sample.class_ids.tolist() if c not in categories})
        if unknown:
            raise DataError(
                f"class ids {unknown[:10]} are not in the category list written to this file",
                str(where),
                f"sample {sample.sample_id!r}",
            )
    return sample
