"""The shapes-world CLIP trainer: pair stream, loss, weights round trip, zero-shot evaluation, a short real run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from omg_core.clip_train.data import ShapesWorldPairs, normalize_images, thing_class_names, training_vocabulary
from omg_core.clip_train.regions import (
    ShapesWorldRegions,
    region_embeddings,
    region_loss,
    region_zero_shot_accuracy,
    segment_mask_logits,
)
from omg_core.clip_train.train import (
    TrainSettings,
    build_clip,
    contrastive_loss,
    load_checkpoint,
    lr_at,
    main,
    parameter_groups,
    save_clip_weights,
    train,
    vocabulary_loss,
)
from omg_core.clip_train.zero_shot import accuracy_figures, class_crops, class_text_embeddings, zero_shot_accuracy
from omg_core.errors import InputError
from omg_core.model.backbone import ClipConvNeXtBackbone, backbone_state_dict_from_clip, clip_state_dict_from_backbone
from omg_core.model.mask_pooling import mask_pooled_sums
from omg_data.synthetic.classes import COLOURS, HELD_OUT, STUFF

NAMES = thing_class_names()


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # tiny tensors: one thread avoids OpenMP contention on shared CPUs
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------------------------ data
def test_pairs_are_a_pure_function_of_seed_and_index() -> None:
    stream = ShapesWorldPairs(seed=3, image_size=32)
    later_first = [stream.pair(i) for i in (9, 2, 5)]
    fresh = ShapesWorldPairs(seed=3, image_size=32)
    for index, pair in zip((9, 2, 5), later_first):
        again = fresh.pair(index)
        assert torch.equal(pair.image, again.image) and pair.caption == again.caption and pair.label == again.label
    assert pair.image.shape == (3, 32, 32) and pair.image.dtype == torch.uint8
    other = ShapesWorldPairs(seed=4, image_size=32)
    assert any(not torch.equal(stream.pair(i).image, other.pair(i).image) for i in range(4))
    batch = stream.batch(1, 6)
    assert batch.images.shape == (6, 3, 32, 32) and torch.equal(batch.images[2], fresh.pair(8).image)


def _colour_fraction(image: torch.Tensor, rgb: tuple[int, int, int]) -> float:
    distance = (image.float() - torch.tensor(rgb, dtype=torch.float32).view(3, 1, 1)).abs().amax(dim=0)
    return float((distance < 28).float().mean())  # shading keeps a thing within a few levels of its base colour


def test_crop_captions_name_the_class_the_crop_shows() -> None:
    stream = ShapesWorldPairs(seed=0, image_size=48, mix=(1, 3, 1))
    kinds = set()
    for index in range(120):
        pair = stream.pair(index)
        kinds.add(pair.kind)
        if pair.kind == "thing":
            assert pair.label in NAMES and pair.label in pair.caption and pair.key == pair.label
            colour = pair.label.split(" ")[0]
            # the named colour covers a good part of the crop, more than any other thing colour
            fractions = {name: _colour_fraction(pair.image, rgb) for name, rgb in COLOURS.items()}
            assert fractions[colour] > 0.05, (index, pair.label, fractions)
        elif pair.kind == "stuff":
            assert pair.label in STUFF and pair.label in pair.caption
        else:
            sample, _ = stream.scene(index // stream.pairs_per_scene)
            assert pair.label == "" and pair.caption in sample.captions and pair.key == pair.caption
    assert kinds == {"scene", "thing", "stuff"}


def test_held_out_classes_are_shown_unless_excluded() -> None:
    def labels_and_captions(exclude: bool) -> tuple[set[str], str]:
        stream = ShapesWorldPairs(seed=1, image_size=32, exclude_held_out=exclude, mix=(1, 4, 0))
        pairs = [stream.pair(i) for i in range(400)]
        return {p.label for p in pairs}, " ".join(p.caption for p in pairs)

    labels, _ = labels_and_captions(False)
    assert labels & set(HELD_OUT)
    labels, captions = labels_and_captions(True)
    assert not labels & set(HELD_OUT) and not any(name in captions for name in HELD_OUT)


def test_bad_stream_settings_are_input_errors() -> None:
    with pytest.raises(InputError, match="mix"):
        ShapesWorldPairs(mix=(0, 0, 0))
    with pytest.raises(InputError, match="template"):
        ShapesWorldPairs(templates=("no slot",))


# ------------------------------------------------------------------------------------------------------------ loss
def test_loss_with_distinct_keys_is_clip_loss_and_equal_keys_are_positives() -> None:
    generator = torch.Generator().manual_seed(0)
    images = F.normalize(torch.randn(6, 8, generator=generator), dim=-1)
    texts = F.normalize(torch.randn(6, 8, generator=generator), dim=-1)
    scale = torch.tensor(10.0)
    expected = open_clip.loss.ClipLoss()(images, texts, scale)
    assert torch.allclose(contrastive_loss(images, texts, scale, torch.arange(6)), expected, atol=1e-6)

    # two copies of one pair: as distinct keys each twin row keeps log 2 (half the rows), as one key the loss is 0
    twins = F.normalize(torch.randn(1, 8, generator=generator), dim=-1).repeat(2, 1)
    others = torch.eye(8)[:2]
    embeddings = torch.cat([twins, others])  # 4 x 8, perfectly aligned image and text
    big = torch.tensor(100.0)
    assert float(contrastive_loss(embeddings, embeddings, big, torch.tensor([0, 0, 1, 2]))) < 1e-3
    assert float(contrastive_loss(embeddings, embeddings, big, torch.arange(4))) == pytest.approx(0.5 * math.log(2), abs=1e-5)


def test_vocabulary_loss_classifies_crops_against_every_name_and_skips_scenes() -> None:
    generator = torch.Generator().manual_seed(1)
    vocabulary = F.normalize(torch.randn(5, 8, generator=generator), dim=-1)
    images = F.normalize(torch.randn(3, 8, generator=generator), dim=-1)
    labels = torch.tensor([2, -1, 4])  # the middle pair is a whole scene
    scale = torch.tensor(7.0)
    expected = F.cross_entropy(scale * images[[0, 2]] @ vocabulary.T, torch.tensor([2, 4]))
    assert torch.allclose(vocabulary_loss(images, vocabulary, scale, labels), expected, atol=1e-6)
    # an image equal to its class text, orthogonal to the rest, costs almost nothing; scenes alone cost exactly 0
    orthogonal = torch.eye(5, 8)
    assert float(vocabulary_loss(orthogonal[[3]], orthogonal, torch.tensor(100.0), torch.tensor([3]))) < 1e-6
    assert float(vocabulary_loss(images, vocabulary, scale, torch.full((3,), -1))) == 0.0


def test_training_vocabulary_names_every_class_unless_held_out_are_excluded() -> None:
    everything = training_vocabulary()
    assert len(everything) == 69 and set(NAMES) <= set(everything) and set(STUFF) <= set(everything)
    without = training_vocabulary(exclude_held_out=True)
    assert len(without) == 69 - len(HELD_OUT) and not set(without) & set(HELD_OUT)


def test_batches_carry_the_crops_labels() -> None:
    batch = ShapesWorldPairs(seed=3, image_size=32).batch(0, 12)
    assert len(batch.labels) == 12
    for label, caption, key in zip(batch.labels, batch.captions, batch.keys):
        assert (label == "" and key == caption) or (label in caption and key == label)


def test_schedule_and_decay_groups() -> None:
    assert lr_at(0, 1.0, 10, None) == pytest.approx(0.1) and lr_at(9, 1.0, 10, None) == pytest.approx(1.0)
    assert lr_at(10, 1.0, 10, 110) == pytest.approx(1.0) and lr_at(110, 1.0, 10, 110) == pytest.approx(0.0)
    assert lr_at(60, 1.0, 10, 110) == pytest.approx(0.5)
    model, _ = build_clip(seed=0)
    decay, no_decay = parameter_groups(model, 0.1)
    assert any(p is model.logit_scale for p in no_decay["params"])
    assert any(p is model.token_embedding.weight for p in no_decay["params"])
    assert all(p.ndim >= 2 for p in decay["params"]) and decay["weight_decay"] == 0.1


# ------------------------------------------------------------------------------------------------------- weights
def test_weights_round_trip_and_backbone_layout(tmp_path: Path) -> None:
    model, tokenizer = build_clip(seed=1)
    path = tmp_path / "clip.safetensors"
    save_clip_weights(model, path)
    other, _ = build_clip(seed=2)
    loaded, _ = build_clip(seed=2, weights=path)
    images = torch.randn(2, 3, 64, 64)
    tokens = tokenizer(["a photo of a red star.", "grass"])
    with torch.no_grad():
        assert not torch.equal(model.encode_image(images), other.encode_image(images))
        assert torch.equal(model.encode_image(images), loaded.encode_image(images))
        assert torch.equal(model.encode_text(tokens), loaded.encode_text(tokens))

    # the file loads into OMG's frozen backbone under the renamed keys and gives the same embeddings
    backbone = ClipConvNeXtBackbone("omg-tiny-convnext-atto", None, channels=(40, 80, 160, 320))
    backbone.load_state_dict(backbone_state_dict_from_clip(load_file(str(path))), strict=True)
    backbone.clear_vocabulary_cache()
    with torch.no_grad():
        pooled = backbone(images)["res5"].mean(dim=(2, 3))  # B x 320: the whole image as one mask
        assert torch.allclose(backbone.embed_pooled_features(pooled), model.encode_image(images), atol=1e-5)
        expected = class_text_embeddings(model, tokenizer, ["red star", "blue circle"])
    assert torch.allclose(backbone.encode_vocabulary(["red star", "blue circle"]), expected, atol=1e-5)
    clip_state = load_file(str(path))
    round_trip = clip_state_dict_from_backbone(backbone_state_dict_from_clip(clip_state))
    assert round_trip.keys() == clip_state.keys() and all(torch.equal(round_trip[k], clip_state[k]) for k in clip_state)


def test_clip_weights_may_be_a_trained_omg_file_whose_clip_is_taken(tmp_path: Path) -> None:
    from omg_core.model import create_model
    from omg_core.weights.io import save_weights

    clip, _ = build_clip(seed=3)
    clip_path = tmp_path / "clip.safetensors"
    save_clip_weights(clip, clip_path)
    trained = create_model("omg-tiny", backbone={"clip_weights": str(clip_path)})
    omg_path = save_weights(trained, tmp_path / "model.safetensors")  # backbone.* keys, and the head's
    again = create_model("omg-tiny", backbone={"clip_weights": str(omg_path)})
    for key, value in trained.backbone.state_dict().items():
        assert torch.equal(again.backbone.state_dict()[key], value), key
    assert not torch.equal(create_model("omg-tiny").backbone.stem[0].weight, trained.backbone.stem[0].weight)


# ------------------------------------------------------------------------------------------------------- zero-shot
class _Tokenizer:
    """Sentence -> index of the class name it holds (the longest name found)."""

    def __call__(self, sentences: list[str]) -> torch.Tensor:
        found = [max((name for name in NAMES if name in sentence), key=len) for sentence in sentences]
        return torch.tensor([[NAMES.index(name)] for name in found])  # N x 1


class _PerfectModel(nn.Module):
    """Knows the class of every test crop (by its pixels) and embeds class k as the k-th axis."""

    def __init__(self, crops) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        normalised = normalize_images(crops.images)
        self.table = {row.numpy().tobytes(): int(label) for row, label in zip(normalised, crops.labels)}

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        labels = torch.tensor([self.table[row.numpy().tobytes()] for row in images])
        return F.one_hot(labels, len(NAMES)).float()

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.one_hot(tokens[:, 0], len(NAMES)).float()


class _RandomModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.generator = torch.Generator().manual_seed(0)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return torch.randn(len(images), 32, generator=self.generator)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.randn(len(tokens), 32, generator=self.generator)


def test_zero_shot_gives_100_to_a_perfect_model_and_chance_to_a_random_one() -> None:
    crops = class_crops(123, 5, 32)
    assert len(crops.images) == 64 * 5 and torch.equal(crops.labels.bincount(), torch.full((64,), 5))
    perfect = zero_shot_accuracy(_PerfectModel(crops), _Tokenizer(), world_seed=123, num_per_class=5, image_size=32)
    assert perfect["seen"] == perfect["held_out"] == perfect["colour"] == perfect["shape"] == 1.0
    assert perfect["num_seen"] == 58 * 5 and perfect["num_held_out"] == 6 * 5

    chance = zero_shot_accuracy(_RandomModel(), _Tokenizer(), world_seed=123, num_per_class=5, image_size=32)
    assert chance["all"] < 0.06 and chance["colour"] < 0.25 and chance["shape"] < 0.25
    untrained, tokenizer = build_clip(seed=0)
    figures = zero_shot_accuracy(untrained, tokenizer, world_seed=123, num_per_class=5, image_size=32)
    assert figures["all"] < 0.1 and untrained.training  # the mode it came in


def test_colour_and_shape_accuracy_read_the_words_of_the_prediction() -> None:
    names = ("red circle", "red square", "blue circle", "blue square")
    labels = torch.tensor([0, 1, 2, 3])
    predictions = torch.tensor([0, 0, 3, 0])  # right, right colour, right colour, nothing right
    figures = accuracy_figures(predictions, labels, names, (False, False, False, True))
    assert figures["seen"] == pytest.approx(1 / 3) and figures["held_out"] == 0.0
    assert figures["colour"] == pytest.approx(3 / 4) and figures["shape"] == pytest.approx(1 / 4)


# --------------------------------------------------------------------------------------------------------- regions
def test_segment_masks_go_to_stride_4_and_a_thin_one_keeps_the_cells_it_touches() -> None:
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[0, 0:8, 0:8] = True  # 2 x 2 cells fully inside
    masks[1, 5, 0:16] = True  # a 1-pixel line: no cell is half covered
    logits = segment_mask_logits(masks)
    assert logits.shape == (2, 4, 4)
    assert (logits[0] > 0).sum() == 4 and bool((logits[0, :2, :2] > 0).all())
    assert (logits[1] > 0).sum() == 4 and bool((logits[1, 1] > 0).all())


def test_region_batches_are_deterministic_and_padded() -> None:
    regions = ShapesWorldRegions(seed=3, image_size=64)
    first, again = regions.batch(1, 3), ShapesWorldRegions(seed=3, image_size=64).scenes(3, 3)
    assert torch.equal(first.images, again.images) and torch.equal(first.mask_logits, again.mask_logits)
    assert first.images.shape == (3, 3, 64, 64) and first.mask_logits.shape[-2:] == (16, 16)
    for scene, names in enumerate(first.names):
        assert all((first.mask_logits[scene, q] > 0).any() for q in range(len(names)))
        assert bool((first.mask_logits[scene, len(names):] < 0).all())  # padding rows are empty
    with pytest.raises(InputError, match="multiple of 32"):
        ShapesWorldRegions(image_size=100)


def _clip_and_its_backbone(folder: Path, seed: int) -> tuple[nn.Module, ClipConvNeXtBackbone]:
    """A seeded tiny CLIP (eval mode) and OMG's frozen backbone built from its saved weights."""
    model, _ = build_clip(seed=seed)
    model.eval()
    save_clip_weights(model, folder / "clip.safetensors")
    backbone = ClipConvNeXtBackbone("omg-tiny-convnext-atto", channels=(40, 80, 160, 320),
                                    clip_weights=folder / "clip.safetensors")
    return model, backbone


def test_backbone_embeds_whole_images_as_open_clip_does(tmp_path: Path) -> None:
    # omg-tiny's masked-crop classifier embeds crops through the backbone; the CLIP was trained through open_clip
    clip, backbone = _clip_and_its_backbone(tmp_path, seed=3)
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(backbone.embed_images(images), clip.encode_image(images), atol=1e-5, rtol=1e-4)


def test_region_embeddings_are_what_omg_computes_from_the_same_clip(tmp_path: Path) -> None:
    # what the region loss trains must be what OMG's out-of-vocabulary classifier reads at inference
    model, backbone = _clip_and_its_backbone(tmp_path, seed=2)
    batch = ShapesWorldRegions(seed=4, image_size=64).batch(0, 2)
    with torch.no_grad():
        ours, valid = region_embeddings(model, batch.images, batch.mask_logits, "masks")
        res5 = backbone(normalize_images(batch.images))["res5"]
        sums, areas = mask_pooled_sums(res5, batch.mask_logits, "masks")
        theirs = F.normalize(backbone.embed_pooled_features(sums / (areas[..., None] + 1e-8)), dim=-1)
    assert torch.equal(valid, areas > 0)
    torch.testing.assert_close(ours[valid], theirs[valid], atol=1e-5, rtol=1e-4)


def test_region_loss_classifies_labelled_regions_and_skips_padding() -> None:
    generator = torch.Generator().manual_seed(0)
    embeddings = F.normalize(torch.randn(2, 3, 8, generator=generator), dim=-1)
    vocabulary = F.normalize(torch.randn(5, 8, generator=generator), dim=-1)
    labels = torch.tensor([[0, 4, -1], [2, -1, -1]])
    valid = torch.tensor([[True, True, True], [True, True, False]])
    scale = torch.tensor(10.0)
    expected = F.cross_entropy(10.0 * embeddings[labels >= 0] @ vocabulary.T, labels[labels >= 0])
    torch.testing.assert_close(region_loss(embeddings, valid, vocabulary, scale, labels), expected)
    nothing = region_loss(embeddings, torch.zeros_like(valid), vocabulary, scale, labels)
    assert nothing.item() == 0.0


def test_region_zero_shot_counts_every_thing_and_an_untrained_clip_is_near_chance() -> None:
    untrained, tokenizer = build_clip(seed=0)
    figures = region_zero_shot_accuracy(untrained, tokenizer, world_seed=77, num_scenes=12, image_size=64,
                                        batch_size=5)
    scenes = ShapesWorldRegions(seed=76, image_size=64).scenes(0, 12)
    things = sum(name in NAMES for names in scenes.names for name in names)
    assert figures["num_seen"] + figures["num_held_out"] == things > 12
    assert figures["all"] < 0.2 and untrained.training


# ----------------------------------------------------------------------------------------------------- real runs
def test_short_run_lowers_the_loss_and_writes_safetensors_only(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["--out", str(out), "--minutes", "2", "--steps", "30", "--image-size", "64", "--batch-size", "8",
                 "--warmup-steps", "5", "--lr", "2e-3", "--num-workers", "0", "--log-every", "10",
                 "--eval-per-class", "1", "--seed", "5", "--region-batch-size", "2", "--region-image-size", "64",
                 "--region-eval-scenes", "4"]) == 0
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 3 and losses[-1] < losses[0]
    card = json.loads((out / "clip_card.json").read_text())
    assert card["steps"] == 30 and card["finished_schedule"] and card["seed"] == 5
    assert set(card["zero_shot"]) >= {"seen", "held_out", "colour", "shape"}
    assert set(card["region_zero_shot"]) >= {"seen", "held_out", "colour", "shape", "pool_at"}
    assert set(card["masked_crop_zero_shot"]) >= {"seen", "held_out", "colour", "shape", "crop_size"}
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.safetensors", "clip.safetensors", "clip_card.json",
                                                     "log.jsonl"]
    model, _ = build_clip(weights=out / "clip.safetensors")
    resumed, _ = build_clip(seed=9)
    optimizer = torch.optim.AdamW(parameter_groups(resumed, 0.1))
    step, total, _ = load_checkpoint(out / "checkpoint.safetensors", resumed, optimizer)
    assert (step, total) == (30, 30) and len(optimizer.state) == len(list(resumed.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), resumed.state_dict().values()))
    with pytest.raises(InputError, match="already holds a run"):
        train(TrainSettings(out=str(out), steps=1, batch_size=4))


def test_a_run_is_reproducible_from_its_seed(tmp_path: Path) -> None:
    def run(folder: str, seed: int) -> dict[str, torch.Tensor]:
        train(TrainSettings(out=str(tmp_path / folder), steps=3, seed=seed, image_size=32, batch_size=4,
                            warmup_steps=2, num_workers=0, eval_per_class=1, region_batch_size=1,
                            region_image_size=64, region_eval_scenes=2))
        return load_file(str(tmp_path / folder / "clip.safetensors"))

    first, second, other = run("a", 7), run("b", 7), run("c", 8)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_bad_settings_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="image-size"):
        TrainSettings(out=str(tmp_path), image_size=50).check()
    with pytest.raises(InputError, match="--resume"):
        train(TrainSettings(out=str(tmp_path / "none"), steps=1), resume=True)
    with pytest.raises(InputError, match="--init"):
        TrainSettings(out=str(tmp_path), init=str(tmp_path / "missing.safetensors")).check()
    with pytest.raises(InputError, match="region-image-size"):
        TrainSettings(out=str(tmp_path), region_image_size=100).check()


def test_init_starts_a_second_stage_from_earlier_weights(tmp_path: Path) -> None:
    earlier, _ = build_clip(seed=11)
    save_clip_weights(earlier, tmp_path / "stage1.safetensors")
    train(TrainSettings(out=str(tmp_path / "stage2"), steps=1, lr=1e-12, warmup_steps=1, image_size=32, batch_size=4,
                        num_workers=0, eval_per_class=1, region_batch_size=1, region_image_size=64,
                        region_eval_scenes=2, init=str(tmp_path / "stage1.safetensors")))
    later = load_file(str(tmp_path / "stage2" / "clip.safetensors"))
    # one step at a vanishing learning rate: still the earlier weights, not a fresh initialisation
    for key, value in earlier.state_dict().items():
        torch.testing.assert_close(later[key], value.float(), atol=1e-6, rtol=0)


def test_evaluating_a_weights_file_gives_the_cards_three_figure_sets(tmp_path: Path) -> None:
    from omg_core.clip_train.zero_shot import evaluate_weights

    model, _ = build_clip(seed=4)
    save_clip_weights(model, tmp_path / "clip.safetensors")
    figures = evaluate_weights(tmp_path / "clip.safetensors", world_seed=55, per_class=1, scenes=3, image_size=32,
                               scene_size=64)
    assert set(figures) == {"zero_shot", "masked_crop_zero_shot", "region_zero_shot"}
    crops, pooled = figures["masked_crop_zero_shot"], figures["region_zero_shot"]
    # both classify the same things of the same scenes, one by its masked crop, one by pooled features
    assert crops["num_seen"] + crops["num_held_out"] == pooled["num_seen"] + pooled["num_held_out"] > 3
    assert figures["zero_shot"]["num_seen"] == 58
