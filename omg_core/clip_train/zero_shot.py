"""Zero-shot classification of single-shape crops among the 64 colour x shape classes.

    python -m omg_core.clip_train.zero_shot CLIP_WEIGHTS [--json OUT]

evaluates a clip.safetensors the way the trainer's card does: crops in context, masked crops of scene things and
mask-pooled scene things (omg_core.clip_train.regions).

The classifier is the one OMG builds from CLIP: each class's text embedding is the normalised mean of its ViLD
prompt embeddings, and a crop takes the class of highest cosine similarity. Figures are reported separately for
the 58 seen and the 6 held-out classes, and for the colour and the shape word alone (read off the 64-way
prediction), which tells a model that confuses shapes from one that confuses colours.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from omg_core.clip_train.data import held_out_flags, normalize_images, thing_class_names, thing_rows
from omg_core.errors import InputError
from omg_core.model.masked_crops import crop_resize, mask_box, square_box
from omg_core.model.prompt_templates import VILD_TEMPLATES
from omg_data.synthetic.world import ShapesWorld

EVAL_MARGIN = 0.25  # crop margin around a shape, fraction of its longer side (training draws 0.1 .. 0.5)


@dataclass(frozen=True)
class ClassCrops:
    """Single-shape test crops.

    Arguments:
      images: N x 3 x S x S uint8 RGB.
      labels: N int64 indices into `names`.
      names: the 64 class names.
      held_out: per name, whether it is a held-out class.
    """

    images: torch.Tensor
    labels: torch.Tensor
    names: tuple[str, ...]
    held_out: tuple[bool, ...]


@functools.lru_cache(maxsize=4)
def class_crops(world_seed: int, num_per_class: int, image_size: int, world_size: int | None = None) -> ClassCrops:
    """`num_per_class` crops of unoccluded shapes of each of the 64 classes, from shapes-world scenes of
    `world_seed` (cached; do not modify the returned tensors).

    Arguments:
      world_seed: the test world's seed (use one the training stream does not use).
      num_per_class: crops per class.
      image_size: crop side S.
      world_size: side of the rendered scenes (default max(64, 2 S), as in training).

    Returns:
      ClassCrops with 64 * num_per_class crops, in the order they were found.
    """
    if num_per_class < 1:
        raise InputError(f"num_per_class must be at least 1, got {num_per_class}")
    names = tuple(thing_class_names())
    index_of = {name: i for i, name in enumerate(names)}
    side = int(world_size) if world_size is not None else max(64, 2 * int(image_size))
    world = ShapesWorld(seed=world_seed, image_size=(side, side))
    counts = [0] * len(names)
    images: list[torch.Tensor] = []
    labels: list[int] = []
    # ~4 things a scene over 64 classes: the last class fills after a few times 16 * num_per_class scenes
    max_scenes = 200 * num_per_class + 1000
    scene = 0
    while min(counts) < num_per_class:
        if scene >= max_scenes:
            raise RuntimeError(f"{max_scenes} scenes did not give {num_per_class} crops of every class")
        sample, polygons = world.image_with_polygons(scene)
        scene += 1
        _, whole = thing_rows(sample, set(polygons))
        for row in whole:
            label = index_of[sample.categories.by_id(int(sample.class_ids[row])).name]
            if counts[label] >= num_per_class:
                continue
            box = square_box(mask_box(sample.masks[row, 0]), EVAL_MARGIN, side, side)
            images.append(crop_resize(sample.frames[0], box, image_size))
            labels.append(label)
            counts[label] += 1
    return ClassCrops(
        images=torch.stack(images),  # N x 3 x S x S
        labels=torch.tensor(labels, dtype=torch.int64),
        names=names,
        held_out=tuple(held_out_flags()),
    )


@torch.no_grad()
def class_text_embeddings(
    model: nn.Module,
    tokenizer: Callable[[list[str]], torch.Tensor],
    names: list[str] | tuple[str, ...],
    templates: tuple[str, ...] = VILD_TEMPLATES,
) -> torch.Tensor:
    """Prompt-ensembled class embeddings, as OMG's backbone builds its vocabulary.

    Arguments:
      model: has `encode_text(tokens) -> N x D`.
      tokenizer: sentences -> N x L token ids.
      names: K class names.
      templates: prompts with one "{}".

    Returns:
      K x D L2-normalised embeddings: the normalised mean of each class's normalised prompt embeddings.
    """
    device = _device_of(model)
    sentences = [template.format(name) for name in names for template in templates]
    encoded = F.normalize(model.encode_text(tokenizer(sentences).to(device)).float(), dim=-1)  # K T x D
    per_class = encoded.view(len(names), len(templates), -1).mean(dim=1)  # K x D
    return F.normalize(per_class, dim=-1)


@torch.no_grad()
def image_embeddings(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """N x 3 x S x S uint8 -> N x D L2-normalised CLIP image embeddings."""
    device = _device_of(model)
    chunks = [
        F.normalize(model.encode_image(normalize_images(images[start:start + batch_size].to(device))).float(), dim=-1)
        for start in range(0, len(images), batch_size)
    ]
    return torch.cat(chunks)


def accuracy_figures(
    predictions: torch.Tensor, labels: torch.Tensor, names: tuple[str, ...], held_out: tuple[bool, ...]
) -> dict[str, float | int]:
    """
    Arguments:
      predictions: N predicted class indices.
      labels: N true class indices.
      names: class names "colour shape".
      held_out: per class, whether it is held out.

    Returns:
      {"seen", "held_out", "all", "colour", "shape"}: top-1 accuracies in [0, 1] (colour and shape over all
      crops: the predicted class has the right colour word / shape word), and "num_seen", "num_held_out" crops.
    """
    colour = [name.split(" ")[0] for name in names]
    shape = [name.split(" ")[-1] for name in names]
    correct = predictions == labels
    is_held_out = torch.tensor(held_out, dtype=torch.bool)[labels]
    pred_list, label_list = predictions.tolist(), labels.tolist()
    colour_ok = [colour[p] == colour[t] for p, t in zip(pred_list, label_list)]
    shape_ok = [shape[p] == shape[t] for p, t in zip(pred_list, label_list)]

    def mean(values: torch.Tensor) -> float:
        return float(values.float().mean()) if values.numel() else float("nan")

    return {
        "seen": mean(correct[~is_held_out]),
        "held_out": mean(correct[is_held_out]),
        "all": mean(correct),
        "colour": sum(colour_ok) / max(1, len(colour_ok)),
        "shape": sum(shape_ok) / max(1, len(shape_ok)),
        "num_seen": int((~is_held_out).sum()),
        "num_held_out": int(is_held_out.sum()),
    }


def zero_shot_accuracy(
    model: nn.Module,
    tokenizer: Callable[[list[str]], torch.Tensor],
    world_seed: int = 10_000,
    num_per_class: int = 10,
    image_size: int = 64,
    batch_size: int = 256,
) -> dict[str, float | int]:
    """Classify single-shape crops among all 64 colour x shape classes by text embedding.

    Arguments:
      model: an open_clip CLIP (or anything with `encode_image` and `encode_text`); left in the mode it came in.
      tokenizer: the model's tokenizer.
      world_seed: seed of the test scenes.
      num_per_class: crops per class (64 * num_per_class crops in all).
      image_size: crop side, normally the training image size.
      batch_size: crops per image-tower call.

    Returns:
      `accuracy_figures` of the predictions.
    """
    crops = class_crops(world_seed, num_per_class, image_size)
    was_training = model.training
    model.eval()
    try:
        text = class_text_embeddings(model, tokenizer, crops.names)  # K x D
        images = image_embeddings(model, crops.images, batch_size)  # N x D
    finally:
        model.train(was_training)
    predictions = (images @ text.T).argmax(dim=1).cpu()  # N
    return accuracy_figures(predictions, crops.labels, crops.names, crops.held_out)


def _device_of(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def zero_shot_figure_sets(model: nn.Module, tokenizer: Callable[[list[str]], torch.Tensor], world_seed: int = 10_000,
                          per_class: int = 10, scenes: int = 200, image_size: int = 64,
                          scene_size: int = 128) -> dict[str, dict[str, float | int | str]]:
    """The three zero-shot figure sets of a CLIP, as its card holds them: "zero_shot" (crops in context),
    "masked_crop_zero_shot" (scene things alone on grey) and "region_zero_shot" (scene things by pooled features).

    Arguments:
      model, tokenizer: the CLIP (left in the mode it came in).
      world_seed: seed of the test scenes; per_class: crops per class; scenes: whole scenes of the other two sets.
      image_size: the CLIP's training crop size; scene_size: side of the whole scenes.
    """
    from omg_core.clip_train.regions import masked_crop_zero_shot_accuracy, region_zero_shot_accuracy

    prompts = "ViLD templates, embeddings averaged"
    return {
        "zero_shot": {"world_seed": world_seed, "per_class": per_class, "prompts": prompts,
                      **zero_shot_accuracy(model, tokenizer, world_seed, per_class, image_size)},
        "masked_crop_zero_shot": {"world_seed": world_seed, "scenes": scenes, "image_size": scene_size,
                                  "crop_size": image_size, "prompts": prompts,
                                  **masked_crop_zero_shot_accuracy(model, tokenizer, world_seed, scenes, scene_size,
                                                                   image_size)},
        "region_zero_shot": {"world_seed": world_seed, "scenes": scenes, "image_size": scene_size, "pool_at": "masks",
                             "prompts": prompts,
                             **region_zero_shot_accuracy(model, tokenizer, world_seed, scenes, scene_size)},
    }


def evaluate_weights(weights: str | Path, world_seed: int = 10_000, per_class: int = 10, scenes: int = 200,
                     image_size: int = 64, scene_size: int = 128) -> dict[str, dict[str, float | int | str]]:
    """`zero_shot_figure_sets` of a clip.safetensors."""
    from omg_core.clip_train.train import build_clip

    model, tokenizer = build_clip(weights=weights)
    model.eval()
    return zero_shot_figure_sets(model, tokenizer, world_seed, per_class, scenes, image_size, scene_size)


def main(argv: Sequence[str] | None = None) -> int:
    """The command-line entry; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m omg_core.clip_train.zero_shot", description=__doc__.split("\n")[0])
    parser.add_argument("weights", type=Path, help="a clip.safetensors from omg_core.clip_train.train")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--world-seed", type=int, default=10_000)
    parser.add_argument("--image-size", type=int, default=64, help="the CLIP's training crop size")
    arguments = parser.parse_args(argv)
    try:
        figures = evaluate_weights(arguments.weights, arguments.world_seed, image_size=arguments.image_size)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    text = json.dumps(figures, indent=2)
    print(text)
    if arguments.json is not None:
        arguments.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
