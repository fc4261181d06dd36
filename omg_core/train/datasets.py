"""Map-style training datasets: a `Sample` source turned into the targets of one training family.

OMG-Seg co-trains one model on several datasets, each classified against its own vocabulary's CLIP text
embeddings. A `TrainingDataset` knows its `name`, its `family` (what kind of targets it gives), its `vocabulary`
(the class texts, in contiguous training-index order, with thing flags) and returns `TrainingSample`s:

  family            targets (one per row of `labels` / `masks`)
  panoptic          every thing instance, and one target per stuff class present (its regions merged)
  instance          thing instances only (stuff pixels are background)
  semantic          one target per class present (the union of its segments)
  interactive       one target per prompt: prompt i (clicks and box drawn from target i's mask) answers target i
  video-instance    thing tracks over a clip: target i is the same object in every frame (empty where absent)
  video-panoptic    thing tracks and one target per stuff class over the clip
  video-semantic    one target per class over the clip

Whatever the family, crowd segments never become targets: their pixels join `ignore`. Segments of held-out
classes (`Category.held_out`, the open-vocabulary test classes) are dropped the same way by default, so the model
never sees them as labelled pixels, and they are left out of the default vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from omg_core.errors import InputError
from omg_core.model.vocabulary import Vocabulary
from omg_data.augment import LargeScaleJitter
from omg_data.prompts import sample_prompts
from omg_data.sample import CategoryList, Sample
from omg_data.synthetic.world import ShapesWorld

Family = Literal[
    "panoptic", "instance", "semantic", "interactive", "video-instance", "video-panoptic", "video-semantic"
]
FAMILIES: tuple[str, ...] = get_args(Family)
VIDEO_FAMILIES: tuple[str, ...] = ("video-instance", "video-panoptic", "video-semantic")

# Official video training clips (seg/configs/_base_/datasets/youtube_vis_2019.py and vipseg.py, VideoClipSample):
# 2 frames, 2 frames apart, from a random start.
OFFICIAL_CLIP_FRAMES = 2
OFFICIAL_FRAME_INTERVAL = 2

# Official COCO-SAM training prompts. seg/configs/m2ov_train/omg_convl_vlm_fix_12e_ov_coco_vid_yt19_vip_city_cocopansam.py
# sets `num_proposals=20, use_point_pseudo_box=True` on OVSAMVideoSegDataPreprocessor
# (seg/models/data_preprocessor/ovsam_preprocessor.py): the objects of an image are repeated until there are at
# least 20 and the first 20 kept; each gets ONE click drawn uniformly from its mask, fed as a box of +-3 pixels
# around the click (prompt type "box" for all), i.e. no true box prompts in training (box fraction 0).
# seg/datasets/coco_pan_sam.py makes every non-crowd panoptic segment, stuff included, an object with its class
# label; the SAM pipeline (coco_panoptic_lsj_sam_720p.py, FilterAnnotationsHB) drops masks under 32 pixels.
OFFICIAL_NUM_PROMPTS = 20
OFFICIAL_POINTS_PER_PROMPT = 1
OFFICIAL_BOX_FRACTION = 0.0
OFFICIAL_MIN_PROMPT_AREA = 32
# Half side of the pseudo box OMG-Seg draws around a click (ovsam_preprocessor.py: points - 3, points + 3).
CLICK_BOX_HALF_SIZE = 3.0


@dataclass
class TrainingPrompts:
    """Interactive prompts, row i for target i.

    Arguments:
      points: N x P x 2 float32 clicks (x, y) = (column, row) pixel indices inside target i's mask.
      point_labels: N x P int64, 1 positive click, -1 padding (a click cropped away).
      boxes: N x 4 float32 tight box (x0, y0, x1, y1) of target i's mask, x1 / y1 exclusive.
      is_box: N bool, True where prompt i is shown to the model as its box, False where as its clicks.
    """

    points: torch.Tensor  # N x P x 2
    point_labels: torch.Tensor  # N x P
    boxes: torch.Tensor  # N x 4
    is_box: torch.Tensor  # N

    def model_boxes(self, click_half_size: float = CLICK_BOX_HALF_SIZE) -> torch.Tensor:
        """The box each prompt is fed as by OMG-Seg's box-query encoding: its mask box for box prompts, a
        (2 * click_half_size) pixel box around the first valid click for click prompts.

        Returns:
          N x 4 float32 (x0, y0, x1, y1).
        """
        valid = self.point_labels == 1  # N x P
        first = valid.float().argmax(dim=1)  # N: first valid click (0 when none is valid)
        click = self.points[torch.arange(self.points.shape[0]), first]  # N x 2
        pseudo = torch.cat([click - click_half_size, click + click_half_size], dim=1)
        return torch.where(self.is_box[:, None], self.boxes, pseudo)


@dataclass
class TrainingSample:
    """One training image or clip with its targets (see the module docstring for what a target is per family).

    Arguments:
      frames: T x 3 x H x W uint8 RGB (T == 1 for image families).
      labels: N int64 contiguous indices into the dataset's vocabulary.
      masks: N x T x H x W bool target masks (all False in frames where a track is absent).
      ignore: T x H x W bool pixels that carry no label (void, crowd, held-out classes, padding).
      target_ids: N int64 the source segment / track id of each target (the smallest one for merged targets).
      prompts: interactive family only; prompt i answers target i.
      dataset: the dataset's name.
      sample_id: the source sample's id.
    """

    frames: torch.Tensor  # T x 3 x H x W
    labels: torch.Tensor  # N
    masks: torch.Tensor  # N x T x H x W
    ignore: torch.Tensor  # T x H x W
    target_ids: torch.Tensor  # N
    prompts: TrainingPrompts | None = None
    dataset: str = ""
    sample_id: str | int = 0

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def num_targets(self) -> int:
        return int(self.labels.shape[0])

    def validate(self, num_classes: int | None = None) -> None:
        """Checks shapes, dtypes and label range; raises ValueError naming the field."""
        if self.frames.dtype != torch.uint8 or self.frames.dim() != 4 or self.frames.shape[1] != 3:
            raise ValueError(f"frames must be T x 3 x H x W uint8, got {tuple(self.frames.shape)} {self.frames.dtype}")
        t, _, h, w = self.frames.shape
        n = self.num_targets
        if self.labels.dtype != torch.int64 or self.labels.dim() != 1:
            raise ValueError(f"labels must be N int64, got {tuple(self.labels.shape)} {self.labels.dtype}")
        if self.masks.dtype != torch.bool or tuple(self.masks.shape) != (n, t, h, w):
            raise ValueError(f"masks must be {n} x {t} x {h} x {w} bool, got {tuple(self.masks.shape)} {self.masks.dtype}")
        if self.ignore.dtype != torch.bool or tuple(self.ignore.shape) != (t, h, w):
            raise ValueError(f"ignore must be {t} x {h} x {w} bool, got {tuple(self.ignore.shape)}")
        if tuple(self.target_ids.shape) != (n,):
            raise ValueError(f"target_ids must be ({n},), got {tuple(self.target_ids.shape)}")
        if num_classes is not None and n and not (0 <= int(self.labels.min()) and int(self.labels.max()) < num_classes):
            raise ValueError(f"labels must lie in [0, {num_classes}), got {self.labels.tolist()}")
        if self.prompts is not None:
            p = self.prompts
            if p.points.shape[0] != n or p.boxes.shape != (n, 4) or p.is_box.shape != (n,):
                raise ValueError(f"prompts must have one row per target ({n})")


class TrainingDataset:
    """Base of the training datasets: subclasses give `__len__` and `load_sample`; this class makes the targets.

    Arguments:
      name: the dataset's name (unique in a training config).
      family: one of FAMILIES.
      categories: the source's category list (dataset ids, names, thing / held-out flags).
      vocabulary: the class texts to classify against; None derives it from `categories` (held-out classes left
        out, stuff left out for instance families). A given vocabulary must name every class the family trains
        (matched case-insensitively on the dataset name or any synonym).
      exclude_held_out: drop held-out classes' segments (their pixels become ignore).
      transform: a Sample -> Sample augmentation (e.g. `LargeScaleJitter`); it draws from torch's RNG, which is
        seeded from the sample's generator, so a sample stays a pure function of (index, rng).
      num_frames: clip length for video families (frames `frame_interval` apart from a random start).
      frame_interval: spacing of clip frames in the source video.
      num_prompts, points_per_prompt, box_fraction, min_prompt_area: interactive family (official values above).
      default_seed: seeds the generator when `get` is given none: (default_seed, index).
    """

    def __init__(
        self,
        name: str,
        family: str,
        categories: CategoryList,
        vocabulary: Vocabulary | None = None,
        exclude_held_out: bool = True,
        transform: Callable[[Sample], Sample] | None = None,
        num_frames: int = OFFICIAL_CLIP_FRAMES,
        frame_interval: int = OFFICIAL_FRAME_INTERVAL,
        num_prompts: int = OFFICIAL_NUM_PROMPTS,
        points_per_prompt: int = OFFICIAL_POINTS_PER_PROMPT,
        box_fraction: float = OFFICIAL_BOX_FRACTION,
        min_prompt_area: int = OFFICIAL_MIN_PROMPT_AREA,
        default_seed: int = 0,
    ) -> None:
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
        if num_frames < 1 or frame_interval < 1 or num_prompts < 1 or points_per_prompt < 1:
            raise ValueError("num_frames, frame_interval, num_prompts and points_per_prompt must be >= 1")
        if not 0.0 <= box_fraction <= 1.0:
            raise ValueError(f"box_fraction must be in [0, 1], got {box_fraction}")
        self.name = name
        self.family = family
        self.categories = categories
        self.exclude_held_out = exclude_held_out
        self.transform = transform
        self.num_frames = num_frames if family in VIDEO_FAMILIES else 1
        self.frame_interval = frame_interval
        self.num_prompts = num_prompts
        self.points_per_prompt = points_per_prompt
        self.box_fraction = box_fraction
        self.min_prompt_area = min_prompt_area
        self.default_seed = default_seed
        self.vocabulary: Vocabulary | None = vocabulary if vocabulary is not None else self._default_vocabulary()
        # dataset category id -> contiguous training index; classes outside the family are absent
        self.class_index: dict[int, int] = self._class_index() if self.vocabulary is not None else {}

    # ---------------------------------------------------------------------------------------- subclass API
    def __len__(self) -> int:
        raise NotImplementedError

    def load_sample(self, index: int) -> Sample:
        """The source Sample `index` (a video may be longer than the clip; `get` picks the clip frames)."""
        raise NotImplementedError

    # -------------------------------------------------------------------------------------------- public
    @property
    def is_video(self) -> bool:
        return self.family in VIDEO_FAMILIES

    def get(self, index: int, rng: np.random.Generator | None = None) -> TrainingSample:
        """Training sample `index`; `rng` draws the clip start, the augmentation and the prompts.

        Arguments:
          index: in [0, len(self)).
          rng: the sample's generator; None uses np.random.default_rng([default_seed, index]).
        Returns:
          the TrainingSample (see the module docstring for its targets).
        """
        if not 0 <= index < len(self):
            raise IndexError(f"dataset {self.name!r} has {len(self)} samples, asked for index {index}")
        if self.vocabulary is None:
            raise InputError(f"dataset {self.name!r} has no vocabulary; give one in its config")
        if rng is None:
            rng = np.random.default_rng([self.default_seed, index])
        sample = self.load_sample(index)
        if self.is_video:
            sample = _select_clip(sample, self.num_frames, self.frame_interval, rng)
        elif sample.num_frames != 1:
            raise ValueError(f"dataset {self.name!r} ({self.family}) got a {sample.num_frames}-frame sample")
        if self.transform is not None:
            seed = int(rng.integers(0, 2**63 - 1))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                sample = self.transform(sample)
        return self._targets(sample, rng)

    def __getitem__(self, index: int, rng: np.random.Generator | None = None) -> TrainingSample:
        """Same as `get(index, rng)` (`dataset[i]` uses the default generator)."""
        return self.get(index, rng)

    # ------------------------------------------------------------------------------------------- helpers
    def _trains_class(self, category_id: int) -> bool:
        category = self.categories.by_id(category_id)
        if self.exclude_held_out and category.held_out:
            return False
        return category.is_thing or self.family not in ("instance", "video-instance")

    def _default_vocabulary(self) -> Vocabulary | None:
        kept = [c for c in self.categories if self._trains_class(c.id)]
        if not kept:
            return None
        names = tuple(c.name for c in kept)
        return Vocabulary(name=self.name, dataset_names=names, texts=names, is_thing=tuple(c.is_thing for c in kept))

    def _class_index(self) -> dict[int, int]:
        assert self.vocabulary is not None
        lookup: dict[str, int] = {}
        for index, (dataset_name, text) in enumerate(zip(self.vocabulary.dataset_names, self.vocabulary.texts)):
            for synonym in [dataset_name, *text.split(",")]:
                lookup.setdefault(synonym.strip().lower(), index)
        mapping, missing = {}, []
        for category in self.categories:
            if not self._trains_class(category.id):
                continue
            index = lookup.get(category.name.strip().lower())
            if index is None:
                missing.append(category.name)
            else:
                mapping[category.id] = index
        if missing:
            shown = ", ".join(repr(n) for n in missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
            raise InputError(f"dataset {self.name!r}: the vocabulary lacks {len(missing)} class(es) it trains: {shown};"
                             " add them or leave the vocabulary out to use the dataset's own")
        return mapping

    def _targets(self, sample: Sample, rng: np.random.Generator) -> TrainingSample:
        masks = sample.masks  # S x T x H x W
        ignore = sample.ignore.clone()
        unknown = sorted({int(c) for c in sample.class_ids.tolist() if c not in self.categories})
        if unknown:
            raise ValueError(f"dataset {self.name!r}: sample {sample.sample_id!r} has class ids {unknown} that are "
                             "not in the dataset's category list")
        held_out = torch.tensor(
            [self.exclude_held_out and self.categories.by_id(int(c)).held_out for c in sample.class_ids.tolist()],
            dtype=torch.bool,
        )
        dropped = sample.is_crowd | held_out
        if dropped.any():
            ignore |= masks[dropped].any(dim=0)
        keep = ~dropped & torch.tensor([self._trains_class(int(c)) for c in sample.class_ids.tolist()], dtype=torch.bool)
        keep &= masks.flatten(1).any(dim=1)  # segments the clip or the crop removed
        rows = keep.nonzero().flatten().tolist()
        class_ids = sample.class_ids.tolist()
        instance_ids = sample.instance_ids.tolist()
        is_thing = sample.is_thing.tolist()

        groups: list[list[int]] = []  # source rows merged into each target
        if self.family in ("semantic", "video-semantic"):
            by_class: dict[int, list[int]] = {}
            for row in rows:
                by_class.setdefault(self.class_index[class_ids[row]], []).append(row)
            groups = [by_class[label] for label in sorted(by_class)]
        elif self.family in ("panoptic", "video-panoptic"):
            groups = [[row] for row in rows if is_thing[row]]
            stuff: dict[int, list[int]] = {}
            for row in rows:
                if not is_thing[row]:
                    stuff.setdefault(self.class_index[class_ids[row]], []).append(row)
            groups += [stuff[label] for label in sorted(stuff)]
        elif self.family == "interactive":
            # every object, stuff included (coco_pan_sam.py), big enough to click (FilterAnnotationsHB)
            groups = [[row] for row in rows if int(masks[row].sum()) >= self.min_prompt_area]
        else:  # instance, video-instance: stuff was left out by _trains_class
            groups = [[row] for row in rows]

        t, _, h, w = sample.frames.shape
        target_masks = torch.stack([masks[g].any(dim=0) for g in groups]) if groups else torch.zeros(
            0, t, h, w, dtype=torch.bool
        )
        labels = torch.tensor([self.class_index[class_ids[g[0]]] for g in groups], dtype=torch.int64)
        target_ids = torch.tensor([min(instance_ids[r] for r in g) for g in groups], dtype=torch.int64)
        prompts = None
        if self.family == "interactive":
            order = self._prompt_order(len(groups), rng)
            target_masks, labels, target_ids = target_masks[order], labels[order], target_ids[order]
            prompts = self._prompts(target_masks[:, 0], rng)
        return TrainingSample(
            frames=sample.frames,
            labels=labels,
            masks=target_masks,
            ignore=ignore,
            target_ids=target_ids,
            prompts=prompts,
            dataset=self.name,
            sample_id=sample.sample_id,
        )

    def _prompt_order(self, count: int, rng: np.random.Generator) -> torch.Tensor:
        """Which target each prompt asks for: all targets repeated up to num_prompts (OMG-Seg's copies), or a
        random num_prompts of them. OMG-Seg keeps the first 20 in annotation order; a random choice keeps large
        scenes from always losing the same objects."""
        if count == 0:
            return torch.zeros(0, dtype=torch.int64)
        if count >= self.num_prompts:
            return torch.from_numpy(np.sort(rng.choice(count, size=self.num_prompts, replace=False)).astype(np.int64))
        return torch.arange(self.num_prompts, dtype=torch.int64) % count

    def _prompts(self, masks: torch.Tensor, rng: np.random.Generator) -> TrainingPrompts:
        """Clicks (uniform inside each N x H x W mask) and boxes; box_fraction of the prompts shown as boxes."""
        count = masks.shape[0]
        drawn = sample_prompts(masks, self.points_per_prompt, rng)
        is_box = torch.from_numpy(rng.random(count) < self.box_fraction) if count else torch.zeros(0, dtype=torch.bool)
        return TrainingPrompts(points=drawn.points, point_labels=drawn.point_labels, boxes=drawn.boxes, is_box=is_box)


def _select_clip(sample: Sample, num_frames: int, interval: int, rng: np.random.Generator) -> Sample:
    """`num_frames` frames `interval` apart from a random start (official VideoClipSample); a video too short for
    that span gets evenly spaced frames instead (repeating frames when it has fewer than num_frames)."""
    total = sample.num_frames
    span = (num_frames - 1) * interval + 1
    if span <= total:
        start = int(rng.integers(0, total - span + 1))
        frames = [start + i * interval for i in range(num_frames)]
    else:
        frames = np.linspace(0, total - 1, num_frames).round().astype(int).tolist()
    if frames == list(range(total)):
        return sample
    index = torch.tensor(frames, dtype=torch.int64)
    return Sample(
        frames=sample.frames[index],
        masks=sample.masks[:, index],
        class_ids=sample.class_ids,
        is_thing=sample.is_thing,
        instance_ids=sample.instance_ids,
        is_crowd=sample.is_crowd,
        ignore=sample.ignore[index],
        categories=sample.categories,
        sample_id=sample.sample_id,
        frame_names=[sample.frame_names[i] for i in frames] if len(sample.frame_names) == total else [],
        is_video=True,
    )


class ShapesWorldDataset(TrainingDataset):
    """Procedural shapes-world images or clips as one training family (random access, no files).

    Item `index` is the world's image / video `index`: the same for a given (seed, index), whatever else runs.

    Arguments:
      family: one of FAMILIES.
      seed: the world seed.
      num_samples: the dataset length (the world has no end; this sets what "one pass" means).
      image_size: (height, width) of images and frames.
      num_frames: clip length of video families (official 2); videos are drawn with
        (num_frames - 1) * frame_interval + 1 frames and every frame_interval-th one is kept.
      exclude_held_out: never draw held-out classes (keep True for segmentation training).
      name: defaults to "shapes-<family>".
      max_objects: most things per scene.
      jitter: (low, high) scale range of large-scale jitter to image_size, or None for none.
      vocabulary, frame_interval, num_prompts, points_per_prompt, box_fraction, min_prompt_area: as
        TrainingDataset.
    """

    def __init__(
        self,
        family: str,
        seed: int = 0,
        num_samples: int = 1000,
        image_size: tuple[int, int] = (128, 128),
        num_frames: int = OFFICIAL_CLIP_FRAMES,
        exclude_held_out: bool = True,
        *,
        name: str | None = None,
        max_objects: int = 6,
        jitter: tuple[float, float] | None = None,
        vocabulary: Vocabulary | None = None,
        frame_interval: int = OFFICIAL_FRAME_INTERVAL,
        num_prompts: int = OFFICIAL_NUM_PROMPTS,
        points_per_prompt: int = OFFICIAL_POINTS_PER_PROMPT,
        box_fraction: float = OFFICIAL_BOX_FRACTION,
        min_prompt_area: int = OFFICIAL_MIN_PROMPT_AREA,
    ) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.world = ShapesWorld(
            seed=seed, image_size=tuple(image_size), max_objects=max_objects, exclude_held_out=exclude_held_out
        )
        self.seed = seed
        self.num_samples = num_samples
        transform = LargeScaleJitter(output_size=tuple(image_size), scale_range=tuple(jitter)) if jitter else None
        super().__init__(
            name=name or f"shapes-{family}",
            family=family,
            categories=self.world.categories,
            vocabulary=vocabulary,
            exclude_held_out=exclude_held_out,
            transform=transform,
            num_frames=num_frames,
            frame_interval=frame_interval,
            num_prompts=num_prompts,
            points_per_prompt=points_per_prompt,
            box_fraction=box_fraction,
            min_prompt_area=min_prompt_area,
            default_seed=seed,
        )

    def __len__(self) -> int:
        return self.num_samples

    def load_sample(self, index: int) -> Sample:
        if self.is_video:
            return self.world.video(index, (self.num_frames - 1) * self.frame_interval + 1)
        return self.world.image(index)


class SampleListDataset(TrainingDataset):
    """Any sequence of Samples (e.g. read from dataset files) as one training family.

    Arguments:
      samples: the Samples; they share one category list (the first sample's unless `categories` is given).
      family: one of FAMILIES.
      name: the dataset's name.
      categories: the category list; None takes samples[0].categories (an empty list means no vocabulary of its
        own: give `vocabulary`).
      **options: the remaining TrainingDataset arguments (vocabulary, transform, num_frames, ...).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        family: str,
        name: str = "samples",
        categories: CategoryList | None = None,
        **options: Any,
    ) -> None:
        if len(samples) == 0 and categories is None:
            raise ValueError("SampleListDataset needs at least one sample (or an explicit category list)")
        self.samples = samples
        categories = categories if categories is not None else samples[0].categories
        super().__init__(name=name, family=family, categories=categories, **options)

    def __len__(self) -> int:
        return len(self.samples)

    def load_sample(self, index: int) -> Sample:
        return self.samples[index]


# ------------------------------------------------------------------------------------------------ registry


class ShapesWorldOptions(BaseModel):
    """The `options` of a "shapes-world" dataset in a training config."""

    model_config = ConfigDict(extra="forbid")

    seed: int | None = Field(default=None, ge=0, description="world seed; None derives one from the run seed and name")
    num_samples: int = Field(default=1000, ge=1)
    image_size: tuple[int, int] = (128, 128)
    num_frames: int = Field(default=OFFICIAL_CLIP_FRAMES, ge=1)
    frame_interval: int = Field(default=OFFICIAL_FRAME_INTERVAL, ge=1)
    exclude_held_out: bool = True
    max_objects: int = Field(default=6, ge=2)
    jitter: tuple[float, float] | None = None
    num_prompts: int = Field(default=OFFICIAL_NUM_PROMPTS, ge=1)
    points_per_prompt: int = Field(default=OFFICIAL_POINTS_PER_PROMPT, ge=1)
    box_fraction: float = Field(default=OFFICIAL_BOX_FRACTION, ge=0.0, le=1.0)
    min_prompt_area: int = Field(default=OFFICIAL_MIN_PROMPT_AREA, ge=1)


def build_shapes_world(
    name: str, family: str, seed: int, vocabulary: Vocabulary | None = None, **options: Any
) -> ShapesWorldDataset:
    """Builder of the "shapes-world" kind; `options` as ShapesWorldOptions (errors name the option)."""
    try:
        parsed = ShapesWorldOptions.model_validate(options)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = first["msg"].replace("Input should be", "must be").replace("Extra inputs are not permitted",
                                                                             "unknown option")
        known = ", ".join(ShapesWorldOptions.model_fields)
        hint = f" (options: {known})" if first["type"] == "extra_forbidden" else f" (got {first.get('input')!r})"
        raise InputError(f"options.{where}: {message}{hint}") from error
    if min(parsed.image_size) < 32:
        raise InputError(f"options.image_size: must be at least 32 x 32 (got {list(parsed.image_size)})")
    if parsed.jitter is not None and not 0 < parsed.jitter[0] <= parsed.jitter[1]:
        raise InputError(f"options.jitter: must be (low, high) with 0 < low <= high (got {list(parsed.jitter)})")
    return ShapesWorldDataset(
        family,
        seed=parsed.seed if parsed.seed is not None else seed,
        num_samples=parsed.num_samples,
        image_size=parsed.image_size,
        num_frames=parsed.num_frames,
        exclude_held_out=parsed.exclude_held_out,
        name=name,
        max_objects=parsed.max_objects,
        jitter=parsed.jitter,
        vocabulary=vocabulary,
        frame_interval=parsed.frame_interval,
        num_prompts=parsed.num_prompts,
        points_per_prompt=parsed.points_per_prompt,
        box_fraction=parsed.box_fraction,
        min_prompt_area=parsed.min_prompt_area,
    )


#: config `kind` -> builder(name=, family=, seed=, vocabulary=, **options) -> TrainingDataset. Builders raise
#: InputError for bad options; register more kinds (file datasets) by adding entries.
DATASET_BUILDERS: dict[str, Callable[..., TrainingDataset]] = {"shapes-world": build_shapes_world}
