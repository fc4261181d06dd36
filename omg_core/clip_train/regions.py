"""Whole shapes-world scenes with each segment's mask and class name: how well the CLIP names a segment the way
OMG asks it to, and an optional mask-pooled training loss.

OMG-Seg's out-of-vocabulary classifier pools the stride-32 CLIP features of a whole scene under a predicted mask and
embeds the pooled vector with CLIP's head (omg_core.model.mask_pooling). `region_zero_shot_accuracy` measures that
with ground-truth masks; `masked_crop_zero_shot_accuracy` measures omg-tiny's classifier instead, the CLIP embedding
of each mask's masked crop (omg_core.model.masked_crops).

The region loss trains the pooled question directly: pool the features of a scene under each segment's
ground-truth mask, exactly as OMG pools them, and classify the embedding against every class name. Measured on the
tiny CLIP at 128 px (800 steps from the crop-trained weights), it moved pooled accuracy from 7% to 14% with shape
still near chance, while the crop-trained CLIP already names 78% of masked crops: so omg-tiny uses masked crops and
the shipped CLIP was trained without this loss (`--region-batch-size` 0, the default).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from omg_core.clip_train.data import held_out_flags, normalize_images, thing_class_names
from omg_core.errors import InputError
from omg_core.model.mask_pooling import PoolAt, mask_pooled_sums
from omg_core.model.masked_crops import masked_crops
from omg_data.synthetic.world import ShapesWorld

MASK_STRIDE = 4  # OMG's mask logits are at stride 4; ground-truth masks are pooled at that resolution


@dataclass(frozen=True)
class RegionBatch:
    """Scenes and their segments, padded to the most segments of a scene.

    Arguments:
      images: B x 3 x S x S uint8 RGB.
      mask_logits: B x Q x S/4 x S/4 float, +1 inside a segment, -1 outside and on padding rows.
      names: B lists of the class names of each scene's segments (the padding rows have none).
    """

    images: torch.Tensor
    mask_logits: torch.Tensor
    names: list[list[str]]


def segment_mask_logits(masks: torch.Tensor) -> torch.Tensor:
    """N x H x W bool full-resolution masks -> N x H/4 x W/4 float (+1 / -1) at OMG's mask resolution.

    A stride-4 cell is inside when half its pixels are; a segment too thin for any such cell keeps every cell it
    touches, so no segment disappears.
    """
    coverage = F.avg_pool2d(masks[:, None].float(), MASK_STRIDE)[:, 0]  # N x H/4 x W/4
    inside = coverage >= 0.5
    thin = ~inside.flatten(1).any(dim=1)
    inside[thin] = coverage[thin] > 0
    return inside.float() * 2.0 - 1.0


class ShapesWorldRegions:
    """Deterministic scenes for the region loss: batch b holds scenes b * B ... (b + 1) * B - 1.

    Arguments:
      seed: the shapes world's seed.
      image_size: scene side S (a multiple of 32; OMG's shapes-world inputs are 128).
      exclude_held_out: never show the held-out classes (the CLIP ablation).
    """

    def __init__(self, seed: int = 0, image_size: int = 128, exclude_held_out: bool = False) -> None:
        if image_size < 32 or image_size % 32:
            raise InputError(f"region scenes must be a multiple of 32 pixels wide, got {image_size}")
        self.image_size = int(image_size)
        # a stream of its own (seed + 1): the crop pairs already cut their crops from this seed's scenes
        self.world = ShapesWorld(seed=seed + 1, image_size=(image_size, image_size), exclude_held_out=exclude_held_out)

    def batch(self, batch_index: int, batch_size: int) -> RegionBatch:
        """Scenes batch_index * batch_size ... with every non-crowd segment, things and stuff."""
        return self.scenes(batch_index * batch_size, batch_size)

    def scenes(self, start: int, count: int) -> RegionBatch:
        """Scenes start ... start + count - 1 with every non-crowd segment, things and stuff."""
        images, masks, names = [], [], []
        for index in range(start, start + count):
            sample = self.world.image(index)
            rows = [r for r in range(len(sample.class_ids)) if not bool(sample.is_crowd[r])]
            images.append(sample.frames[0])
            masks.append(segment_mask_logits(sample.masks[rows, 0]))
            names.append([sample.categories.by_id(int(sample.class_ids[r])).name for r in rows])
        most = max(len(m) for m in masks)
        cells = self.image_size // MASK_STRIDE
        padded = torch.full((count, most, cells, cells), -1.0)
        for b, scene_masks in enumerate(masks):
            padded[b, :len(scene_masks)] = scene_masks
        return RegionBatch(images=torch.stack(images), mask_logits=padded, names=names)


def region_embeddings(model: nn.Module, images: torch.Tensor, mask_logits: torch.Tensor,
                      pool_at: PoolAt = "masks") -> tuple[torch.Tensor, torch.Tensor]:
    """CLIP embeddings of mask-pooled scene features, as OMG's out-of-vocabulary classifier computes them.

    Arguments:
      model: an open_clip CLIP with a timm ConvNeXt trunk.
      images: B x 3 x S x S uint8.
      mask_logits: B x Q x h x w (foreground where > 0).
      pool_at: the pooling grid (omg_core.model.mask_pooling).

    Returns:
      (B x Q x D L2-normalised embeddings, B x Q bool: the mask covered some cell; the others are meaningless).
    """
    trunk = model.visual.trunk
    device = next(model.parameters()).device
    features = trunk.stages(trunk.stem(normalize_images(images.to(device))))  # B x C4 x S/32 x S/32, OMG's res5
    sums, areas = mask_pooled_sums(features, mask_logits.to(device, features.dtype), pool_at)
    pooled = sums / (areas[..., None] + 1e-8)  # B x Q x C4
    # the path OMG's backbone.embed_pooled_features takes: the trunk head's LayerNorm2d, then CLIP's projection
    flat = trunk.head.norm(pooled.reshape(-1, pooled.shape[-1], 1, 1)).flatten(1)
    embeddings = model.visual.head(flat).view(*pooled.shape[:2], -1)
    return F.normalize(embeddings.float(), dim=-1), areas > 0


def region_loss(embeddings: torch.Tensor, valid: torch.Tensor, vocabulary_embeddings: torch.Tensor,
                logit_scale: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each pooled region against the whole class vocabulary.

    Arguments:
      embeddings: B x Q x D L2-normalised; valid: B x Q (regions with cells to pool).
      vocabulary_embeddings: K x D L2-normalised.
      logit_scale: the temperature multiplier.
      labels: B x Q indices into the vocabulary, -1 for padding and classes not in it.

    Returns:
      the scalar mean over the labelled regions (0 when there are none).
    """
    keep = valid & (labels >= 0)
    if not bool(keep.any()):
        return embeddings.sum() * 0.0
    logits = logit_scale * embeddings[keep] @ vocabulary_embeddings.T  # R x K
    return F.cross_entropy(logits, labels[keep])


@torch.no_grad()
def region_zero_shot_accuracy(model: nn.Module, tokenizer: object, world_seed: int = 10_000, num_scenes: int = 200,
                              image_size: int = 128, pool_at: PoolAt = "masks",
                              batch_size: int = 32) -> dict[str, float | int]:
    """Classify every whole thing of held-out test scenes by its mask-pooled CLIP embedding among the 64 colour x
    shape classes: the question OMG's out-of-vocabulary classifier asks, with perfect masks.

    Returns:
      `accuracy_figures` over the things (seen / held-out / colour / shape ...).
    """
    from omg_core.clip_train.zero_shot import accuracy_figures, class_text_embeddings

    names = tuple(thing_class_names())
    index = {name: i for i, name in enumerate(names)}
    regions = ShapesWorldRegions(seed=world_seed - 1, image_size=image_size)  # its world seed is world_seed
    was_training = model.training
    model.eval()
    try:
        text = class_text_embeddings(model, tokenizer, names)  # 64 x D
        predictions, labels = [], []
        for start in range(0, num_scenes, batch_size):
            batch = regions.scenes(start, min(batch_size, num_scenes - start))
            embeddings, valid = region_embeddings(model, batch.images, batch.mask_logits, pool_at)
            for s, scene_names in enumerate(batch.names):
                for q, name in enumerate(scene_names):
                    if name in index and bool(valid[s, q]):
                        predictions.append(int((embeddings[s, q] @ text.T).argmax()))
                        labels.append(index[name])
    finally:
        model.train(was_training)
    return accuracy_figures(torch.tensor(predictions), torch.tensor(labels), names, tuple(held_out_flags()))


@torch.no_grad()
def masked_crop_zero_shot_accuracy(model: nn.Module, tokenizer: object, world_seed: int = 10_000,
                                   num_scenes: int = 200, image_size: int = 128, crop_size: int = 64,
                                   batch_size: int = 256) -> dict[str, float | int]:
    """Classify every whole thing of test scenes by the CLIP embedding of its masked crop (the thing alone on flat
    grey, omg_core.model.masked_crops) among the 64 colour x shape classes: omg-tiny's out-of-vocabulary classifier
    with perfect masks. The scenes are those of `region_zero_shot_accuracy` with the same arguments.

    Returns:
      `accuracy_figures` over the things.
    """
    from omg_core.clip_train.zero_shot import accuracy_figures, class_text_embeddings, image_embeddings

    names = tuple(thing_class_names())
    index = {name: i for i, name in enumerate(names)}
    world = ShapesWorldRegions(seed=world_seed - 1, image_size=image_size).world
    crops, labels = [], []
    for scene in range(num_scenes):
        sample = world.image(scene)
        rows = [r for r in range(len(sample.class_ids)) if not bool(sample.is_crowd[r])
                and sample.categories.by_id(int(sample.class_ids[r])).name in index]
        if not rows:
            continue
        scene_crops, valid = masked_crops(sample.frames[0], sample.masks[rows, 0], crop_size)
        for row, crop, shown in zip(rows, scene_crops, valid.tolist()):
            if shown:
                crops.append(crop)
                labels.append(index[sample.categories.by_id(int(sample.class_ids[row])).name])
    was_training = model.training
    model.eval()
    try:
        text = class_text_embeddings(model, tokenizer, names)  # 64 x D
        embeddings = image_embeddings(model, torch.stack(crops), batch_size)  # N x D
    finally:
        model.train(was_training)
    predictions = (embeddings @ text.T).argmax(dim=1).cpu()
    return accuracy_figures(predictions, torch.tensor(labels), names, tuple(held_out_flags()))
