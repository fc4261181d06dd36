"""Image-caption pairs from the shapes world: whole scenes, single-thing crops and stuff crops.

Every pair is a pure function of (seed, index): pair `index` draws its kind, crop and caption from its own
generator, and its picture from shapes-world scene `index // pairs_per_scene`, so consecutive pairs share one
rendered scene (rendering is the costly part) while batches stay reproducible in any order or worker layout.

Crop captions fill the ViLD prompt templates that OMG's text classifier uses (plus the bare class name), so the
sentences CLIP is trained on are the sentences it is later asked to match.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from omg_core.errors import InputError
from omg_core.model.config import ModelConfig
from omg_core.model.masked_crops import MASKED_CROP_FILL, MASKED_CROP_MARGIN, crop_resize, mask_box, square_box
from omg_core.model.prompt_templates import VILD_TEMPLATES
from omg_data.sample import Sample
from omg_data.synthetic.classes import shapes_world_categories
from omg_data.synthetic.world import ShapesWorld

# The sentences a crop's class name goes into: OMG's classifier prompts and the bare name ("red star").
CROP_TEMPLATES: tuple[str, ...] = (*VILD_TEMPLATES, "{}")
PAIR_KINDS: tuple[str, ...] = ("scene", "thing", "stuff", "isolated")
ISOLATED_MARGIN = MASKED_CROP_MARGIN  # an isolated thing's crop margin: omg-tiny's masked crops are framed alike
# A tag in the per-pair generator's seed, so pair draws never share a stream with the world's own
# (ShapesWorld seeds images with [seed, 0, index] and videos with [seed, 1, index]).
_PAIR_STREAM = 2
# OMG normalises its input with these ([0, 255] RGB, ImageNet statistics), so CLIP is trained and tested with them.
PIXEL_MEAN: tuple[float, float, float] = ModelConfig.model_fields["pixel_mean"].default
PIXEL_STD: tuple[float, float, float] = ModelConfig.model_fields["pixel_std"].default

@dataclass(frozen=True)
class ClipPair:
    """One training pair.

    Arguments:
      image: 3 x S x S uint8 RGB.
      caption: the sentence paired with the image.
      label: the class name a crop shows ("red star", "grass"); "" for a whole scene.
      kind: "scene", "thing" or "stuff".
    """

    image: torch.Tensor
    caption: str
    label: str
    kind: str

    @property
    def key(self) -> str:
        """What makes two pairs interchangeable in a batch: crops of one class match each other's captions
        whatever the template, a scene matches only its own caption."""
        return self.label or self.caption


@dataclass(frozen=True)
class ClipBatch:
    """Pairs stacked for training.

    Arguments:
      images: B x 3 x S x S uint8 RGB.
      captions: B sentences.
      keys: B positive keys (`ClipPair.key`): equal keys are positives of each other.
      labels: B class names shown by crops ("" for whole scenes).
    """

    images: torch.Tensor
    captions: list[str]
    keys: list[str]
    labels: list[str]


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """B x 3 x H x W uint8 -> B x 3 x H x W float32 normalised as OMG normalises its input."""
    mean = torch.tensor(PIXEL_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() - mean) / std


def thing_rows(sample: Sample, whole_instances: set[int]) -> tuple[list[int], list[int]]:
    """Rows of a sample's non-crowd things: (all of them, those not occluded by another shape)."""
    rows = [r for r in range(len(sample.class_ids)) if bool(sample.is_thing[r]) and not bool(sample.is_crowd[r])]
    whole = [r for r in rows if int(sample.instance_ids[r]) in whole_instances]
    return rows, whole


class ShapesWorldPairs:
    """A deterministic stream of (image, caption) pairs for contrastive training.

    Arguments:
      seed: stream seed; also the shapes world's seed.
      image_size: side S of the returned images.
      world_size: side of the rendered scenes crops are cut from (default 2 S, at least 64, so crops of small
        shapes are enlarged from real detail).
      exclude_held_out: never show the held-out colour x shape classes (an ablation: by default CLIP sees every
        class, only the segmenter trains without the held-out ones).
      mix: weights of a whole scene, a thing crop, a stuff crop and an isolated thing (a thing crop with everything
        but the thing painted one flat grey). The isolated things are a curriculum: among clutter and textured
        backgrounds, or on a background of random grey with random framing, convnext_atto (and a plain CNN) stays
        near chance on shape for hundreds of steps of 64 crops; centred on one flat grey it is at 30% after 200
        steps and climbing. What it learns there carries over to crops in context.
      pairs_per_scene: consecutive pairs cut from one rendered scene.
      margin: range of the crop margin around a thing, as a fraction of its longer side.
      templates: sentences a crop's class name fills (one "{}" each).
      isolated_grey: range of the flat background level of isolated things (one fixed level learns fastest).
    """

    def __init__(
        self,
        seed: int = 0,
        image_size: int = 64,
        world_size: int | None = None,
        exclude_held_out: bool = False,
        mix: tuple[float, ...] = (0.1, 0.35, 0.1, 0.45),
        pairs_per_scene: int = 4,
        margin: tuple[float, float] = (0.1, 0.5),
        templates: tuple[str, ...] = CROP_TEMPLATES,
        isolated_grey: tuple[int, int] = (MASKED_CROP_FILL, MASKED_CROP_FILL),
    ) -> None:
        if image_size < 16:
            raise InputError(f"image_size must be at least 16, got {image_size}; pass a larger --image-size")
        if len(mix) == 3:  # (scene, thing, stuff): no isolated things
            mix = (*mix, 0.0)
        if len(mix) != len(PAIR_KINDS) or any(p < 0 for p in mix) or sum(mix) <= 0:
            raise InputError(f"mix must be four non-negative weights (scene, thing, stuff, isolated), got {mix}")
        if pairs_per_scene < 1:
            raise InputError(f"pairs_per_scene must be at least 1, got {pairs_per_scene}")
        if not templates or any(t.count("{}") != 1 for t in templates):
            raise InputError("every caption template needs exactly one '{}' for the class name")
        self.seed = int(seed)
        self.image_size = int(image_size)
        self.world_size = int(world_size) if world_size is not None else max(64, 2 * self.image_size)
        self.exclude_held_out = exclude_held_out
        self.mix = np.asarray(mix, dtype=np.float64) / float(sum(mix))
        self.pairs_per_scene = int(pairs_per_scene)
        self.margin = margin
        self.templates = tuple(templates)
        self.isolated_grey = isolated_grey
        self.world = ShapesWorld(
            seed=self.seed, image_size=(self.world_size, self.world_size), exclude_held_out=exclude_held_out
        )
        self._cached: tuple[int, Sample, set[int]] | None = None

    def scene(self, scene_index: int) -> tuple[Sample, set[int]]:
        """Shapes-world image `scene_index` and the instance ids of its unoccluded things (cached: the next
        pairs usually come from the same scene)."""
        if self._cached is None or self._cached[0] != scene_index:
            sample, polygons = self.world.image_with_polygons(scene_index)
            self._cached = (scene_index, sample, set(polygons))
        return self._cached[1], self._cached[2]

    def pair(self, index: int) -> ClipPair:
        """Pair `index` (any non-negative integer)."""
        if index < 0:
            raise ValueError(f"pair index must be non-negative, got {index}")
        rng = np.random.default_rng([self.seed, _PAIR_STREAM, index])
        sample, whole = self.scene(index // self.pairs_per_scene)
        kind = PAIR_KINDS[int(rng.choice(len(PAIR_KINDS), p=self.mix))]
        rows, whole_rows = thing_rows(sample, whole)
        if kind in ("thing", "isolated") and rows:
            return self._thing_pair(sample, rows, whole_rows, rng, isolated=kind == "isolated")
        if kind == "scene":
            return self._scene_pair(sample, rng)
        return self._stuff_pair(sample, rng)  # also when a scene happens to keep no thing

    def batch(self, batch_index: int, batch_size: int) -> ClipBatch:
        """Pairs batch_index * batch_size ... (batch_index + 1) * batch_size - 1, stacked."""
        pairs = [self.pair(batch_index * batch_size + i) for i in range(batch_size)]
        return ClipBatch(
            images=torch.stack([p.image for p in pairs]),  # B x 3 x S x S
            captions=[p.caption for p in pairs],
            keys=[p.key for p in pairs],
            labels=[p.label for p in pairs],
        )

    # ------------------------------------------------------------------------------------------ kinds
    def _caption(self, name: str, rng: np.random.Generator) -> str:
        return self.templates[int(rng.integers(len(self.templates)))].format(name)

    def _scene_pair(self, sample: Sample, rng: np.random.Generator) -> ClipPair:
        image = crop_resize(sample.frames[0], (0, 0, self.world_size, self.world_size), self.image_size)
        caption = sample.captions[int(rng.integers(len(sample.captions)))]
        return ClipPair(image=image, caption=caption, label="", kind="scene")

    def _thing_pair(
        self, sample: Sample, rows: list[int], whole_rows: list[int], rng: np.random.Generator, isolated: bool = False
    ) -> ClipPair:
        if whole_rows:
            row = whole_rows[int(rng.integers(len(whole_rows)))]
        else:  # every shape is partly hidden: the most visible one still shows its class best
            row = max(rows, key=lambda r: int(sample.masks[r, 0].sum()))
        name = sample.categories.by_id(int(sample.class_ids[row])).name
        # isolated things are framed alike (fixed margin, centred): the curriculum's point is an easy first signal
        margin = ISOLATED_MARGIN if isolated else float(rng.uniform(*self.margin))
        shift = (0.0, 0.0) if isolated else (float(rng.uniform(-0.1, 0.1)), float(rng.uniform(-0.1, 0.1)))
        mask = sample.masks[row, 0]  # H x W
        box = square_box(mask_box(mask), margin, self.world_size, self.world_size, shift)
        picture = sample.frames[0]
        if isolated:
            grey = int(rng.integers(self.isolated_grey[0], self.isolated_grey[1] + 1))
            picture = torch.where(mask[None], picture, torch.full_like(picture, grey))
        image = crop_resize(picture, box, self.image_size)
        return ClipPair(image=image, caption=self._caption(name, rng), label=name,
                        kind="isolated" if isolated else "thing")

    def _stuff_pair(self, sample: Sample, rng: np.random.Generator) -> ClipPair:
        stuff = [r for r in range(len(sample.class_ids)) if not bool(sample.is_thing[r])]
        row = stuff[int(rng.integers(len(stuff)))]
        mask = sample.masks[row, 0]  # H x W, only where the stuff is visible
        name = sample.categories.by_id(int(sample.class_ids[row])).name
        side = max(8, int(round(rng.uniform(0.25, 0.5) * self.world_size)))
        ys, xs = torch.nonzero(mask, as_tuple=True)
        best, best_fraction = None, -1.0
        # a few windows centred on pixels of the region; keep the one the region fills most
        for pick in rng.integers(len(ys), size=6):
            point = (int(xs[pick]), int(ys[pick]), int(xs[pick]) + 1, int(ys[pick]) + 1)
            box = square_box(point, (side - 1) / 2.0, self.world_size, self.world_size)
            fraction = float(mask[box[1]:box[3], box[0]:box[2]].float().mean())
            if fraction > best_fraction:
                best, best_fraction = box, fraction
        assert best is not None
        image = crop_resize(sample.frames[0], best, self.image_size)
        return ClipPair(image=image, caption=self._caption(name, rng), label=name, kind="stuff")


def thing_class_names() -> list[str]:
    """The 64 colour x shape class names in category-id order."""
    return [c.name for c in shapes_world_categories() if c.is_thing]


def held_out_flags() -> list[bool]:
    """For each of `thing_class_names()`: whether it is a held-out (open-vocabulary test) class."""
    return [c.held_out for c in shapes_world_categories() if c.is_thing]


def training_vocabulary(exclude_held_out: bool = False) -> list[str]:
    """Every shapes-world class name (things then stuff, in category-id order) a crop can be classified as;
    without the held-out ones when they are kept out of training."""
    return [c.name for c in shapes_world_categories() if not (exclude_held_out and c.held_out)]
