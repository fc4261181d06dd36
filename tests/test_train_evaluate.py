"""Training-time evaluation: each family's task metric on held-out samples, with the dataset's vocabulary, synced
across ranks."""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from painted_answers import PAINTED_TASKS, painted_answer

from omg_core.model.build import create_model
from omg_core.model.predictor import OMGPredictor, display_name
from omg_core.model.vocabulary import Vocabulary
from omg_core.results import (
    PromptMasks,
)
from omg_core.train.config import build_datasets, validate_train_config
from omg_core.train.datasets import FAMILIES, SampleListDataset, ShapesWorldDataset, TrainingSample
from omg_core.train.evaluate import (
    FAMILY_TASKS,
    HEADLINE_FIGURES,
    TaskRunner,
    build_eval_datasets,
    evaluate,
    evaluate_dataset,
    object_prompts,
)
from omg_data.sample import Category, CategoryList, Sample

IMAGE_FAMILIES = ("panoptic", "instance", "semantic", "interactive")


# -------------------------------------------------------------------------------------------- a fake predictor


@dataclass
class GroundTruthPredictor:
    """Answers every task with the sample's ground truth, except: targets in `mislabel` get another class (an empty
    mask for interactive prompts), the target `spill` also covers rows 12-15, cols 8-15, and, with `mislabel_odd`,
    target 0 of samples with an odd number of targets gets class (label + 1) % K."""

    mislabel: dict[int, int] = field(default_factory=dict)
    spill: int | None = None
    mislabel_odd: bool = False

    def __call__(self, task: str, sample: TrainingSample, vocabulary: Vocabulary) -> Any:
        names = tuple(display_name(text) for text in vocabulary.texts)
        labels = sample.labels.clone()
        for row, label in self.mislabel.items():
            labels[row] = label
        if self.mislabel_odd and sample.num_targets % 2:
            labels[0] = (labels[0] + 1) % len(names)
        masks = sample.masks.clone()  # N x T x H x W
        if self.spill is not None:
            masks[self.spill, :, 12:16, 8:16] = True  # the hand scene's ignore pixels (see hand_dataset)
        scores = torch.linspace(1.0, 0.5, max(sample.num_targets, 1))[: sample.num_targets]
        # maps are painted in row order: the spilled target last, so that it keeps the pixels it took
        order = [row for row in range(sample.num_targets) if row != self.spill] + (
            [self.spill] if self.spill is not None else [])
        if task in PAINTED_TASKS:
            return painted_answer(task, masks, labels, scores, names, vocabulary.is_thing, order)
        if task == "interactive":
            rows, _ = object_prompts(sample)
            answer = masks[rows, 0]
            for position, row in enumerate(rows.tolist()):
                if row in self.mislabel:
                    answer[position] = False
            return PromptMasks(answer, torch.ones(len(rows)))
        raise AssertionError(task)


# --------------------------------------------------------------------------------------------- a hand-made scene

CATEGORIES = CategoryList([Category(1, "cat", True), Category(2, "dog", True), Category(3, "sky", False)])


def hand_dataset(family: str, with_ignore: bool = True) -> SampleListDataset:
    """One 16 x 16 scene (two frames for video families): a cat (rows 0-3, cols 0-7, 32 px), a dog (rows 8-11,
    cols 0-7, 32 px), sky elsewhere, and 32 ignore pixels (rows 12-15, cols 8-15) unless `with_ignore` is False
    (then they are sky). Targets: cat, dog(, sky)."""
    frames = 2 if family.startswith("video") else 1
    cat = torch.zeros(frames, 16, 16, dtype=torch.bool)
    cat[:, 0:4, 0:8] = True
    dog = torch.zeros_like(cat)
    dog[:, 8:12, 0:8] = True
    ignore = torch.zeros_like(cat)
    if with_ignore:
        ignore[:, 12:16, 8:16] = True
    sky = ~(cat | dog | ignore)
    sample = Sample(
        frames=torch.zeros(frames, 3, 16, 16, dtype=torch.uint8),
        masks=torch.stack([cat, dog, sky]),
        class_ids=torch.tensor([1, 2, 3]),
        is_thing=torch.tensor([True, True, False]),
        instance_ids=torch.tensor([1, 2, 3]),
        is_crowd=torch.zeros(3, dtype=torch.bool),
        ignore=ignore,
        categories=CATEGORIES,
        sample_id=7,
        is_video=frames > 1,
    )
    return SampleListDataset([sample], family, name=f"hand-{family}", num_frames=frames)


def headline(figures: dict[str, float], family: str) -> float:
    return figures[HEADLINE_FIGURES[family][0]]


@pytest.mark.parametrize("family", FAMILIES)
def test_ground_truth_answers_give_perfect_figures(family: str) -> None:
    figures = evaluate_dataset(GroundTruthPredictor(), hand_dataset(family), [0])
    for name in HEADLINE_FIGURES[family]:
        assert figures[name] == pytest.approx(100.0), f"{family} {name}: {figures}"
    assert all(isinstance(value, float) for value in figures.values())


# One object wrong, by hand. Classes cat, dog, sky; the dog is answered as a cat (interactive: an empty dog mask).
#  PQ: cat TP 1 + FP 1 -> 2/3, dog FN -> 0, sky 1: (2/3 + 0 + 1) / 3 = 5/9.
#  mIoU: cat 32 / 64, dog 0, sky 1 -> 1/2.   AP: cat 1 (its true detection scores higher), dog 0 -> 1/2.
#  interactive: IoUs 1, 0, 1 -> 2/3.   VPQ: every window as PQ -> 5/9.
#  STQ: AQ 1 (association ignores classes), SQ = mIoU 1/2 -> sqrt(1/2).
WRONG_DOG = {
    "panoptic": {"PQ": 500 / 9, "PQ_th": 100 / 3, "PQ_st": 100.0},
    "instance": {"AP": 50.0, "AP50": 50.0, "APs": 50.0},
    "semantic": {"mIoU": 50.0},
    "interactive": {"mIoU": 200 / 3},
    "video-instance": {"AP": 50.0, "AP50": 50.0},
    "video-panoptic": {"VPQ": 500 / 9, "STQ": 100 * math.sqrt(0.5), "AQ": 100.0},
    "video-semantic": {"mIoU": 50.0},
}


@pytest.mark.parametrize("family", FAMILIES)
def test_one_wrong_object_lowers_the_figures_by_the_hand_computed_amount(family: str) -> None:
    figures = evaluate_dataset(GroundTruthPredictor(mislabel={1: 0}), hand_dataset(family), [0])
    for name, expected in WRONG_DOG[family].items():
        assert figures[name] == pytest.approx(expected), f"{family} {name}: {figures}"


@pytest.mark.parametrize("family", FAMILIES)
def test_predictions_on_ignore_pixels_do_not_count(family: str) -> None:
    spilled = evaluate_dataset(GroundTruthPredictor(spill=1), hand_dataset(family), [0])
    assert headline(spilled, family) == pytest.approx(100.0), spilled
    # the same answer where those pixels are labelled sky costs: the spill is really scored when not ignored
    labelled = evaluate_dataset(GroundTruthPredictor(spill=1), hand_dataset(family, with_ignore=False), [0])
    assert headline(labelled, family) < 99.0, labelled


def test_interactive_scores_each_object_once_with_its_own_click() -> None:
    dataset = hand_dataset("interactive")
    sample = dataset.get(0)
    assert sample.num_targets == 20  # objects repeated up to the official 20 prompts
    rows, prompts = object_prompts(sample)
    assert sorted(sample.target_ids[rows].tolist()) == [1, 2, 3]
    assert prompts.points.shape == (3, 1, 2) and bool((prompts.point_labels == 1).all())
    for row, click in zip(rows.tolist(), prompts.points[:, 0]):
        x, y = click.long().tolist()
        assert bool(sample.masks[row, 0, y, x])  # the click lies on its object


# -------------------------------------------------------------------------------------------- held-out datasets


def shapes_config(tmp_path: Path, families: tuple[str, ...] = FAMILIES, **extra: Any) -> Any:
    datasets = [{"name": f"shapes-{f}", "kind": "shapes-world", "family": f, "ratio": 1,
                 "options": {"num_samples": 4, "image_size": [64, 64], "jitter": [0.8, 1.2], **extra}}
                for f in families]
    return validate_train_config({"datasets": datasets, "steps": 1, "output_dir": str(tmp_path)})


def test_eval_datasets_hold_other_scenes_with_the_same_vocabulary_and_no_jitter(tmp_path: Path) -> None:
    config = shapes_config(tmp_path, ("panoptic", "video-instance"))
    training, held_out = build_datasets(config), build_eval_datasets(config)
    assert [d.name for d in held_out] == [d.name for d in training]
    for train, test in zip(training, held_out):
        assert test.family == train.family and test.vocabulary == train.vocabulary
        assert train.transform is not None and test.transform is None
        test_scenes = [test.get(i).frames for i in range(len(test))]
        for i in range(len(train)):
            scene = train.get(i).frames
            assert not any(scene.shape == other.shape and torch.equal(scene, other) for other in test_scenes)
    assert not torch.equal(build_eval_datasets(config, seed_offset=7)[0].get(0).frames, held_out[0].get(0).frames)


def test_an_explicit_seed_option_is_moved_too(tmp_path: Path) -> None:
    config = shapes_config(tmp_path, ("semantic",), seed=5)
    test = build_eval_datasets(config, seed_offset=11)[0]
    assert test.seed == 16
    assert not torch.equal(test.get(0).frames, ShapesWorldDataset("semantic", seed=5, image_size=(64, 64)).get(0).frames)


# ------------------------------------------------------------------------------------------------ the real model


def test_tasks_classify_against_the_dataset_vocabulary() -> None:
    torch.manual_seed(0)
    runner = TaskRunner(OMGPredictor(create_model("omg-tiny")))
    default_size = len(runner.predictor.default_vocabulary.texts)
    for family in ("panoptic", "video-instance", "semantic"):
        dataset = ShapesWorldDataset(family, seed=3, num_samples=1, image_size=(64, 64))
        assert len(dataset.vocabulary.texts) != default_size
        result = runner(FAMILY_TASKS[family], dataset.get(0), dataset.vocabulary)
        assert result.vocabulary == tuple(display_name(t) for t in dataset.vocabulary.texts)


def test_evaluate_restores_each_module_mode_and_runs_in_inference_mode() -> None:
    torch.manual_seed(0)
    model = create_model("omg-tiny")
    model.train()
    model.backbone.train(False)  # a frozen part kept in eval mode during training
    before = [m.training for m in model.modules()]
    assert any(before) and not all(before)
    seen: list[tuple[bool, bool]] = []
    model.register_forward_pre_hook(lambda module, args: seen.append((module.training,
                                                                      torch.is_inference_mode_enabled())))
    model.pixel_decoder.register_forward_pre_hook(
        lambda module, args: seen.append((module.training, torch.is_inference_mode_enabled())))
    datasets = [ShapesWorldDataset(f, seed=1, num_samples=1, image_size=(64, 64)) for f in ("panoptic", "interactive")]
    figures = evaluate(model, datasets, num_samples=1)
    assert set(figures) == {"shapes-panoptic", "shapes-interactive"}
    assert seen and all(not training and inference for training, inference in seen)
    assert [m.training for m in model.modules()] == before


def test_every_family_runs_on_omg_tiny() -> None:
    torch.manual_seed(0)
    model = create_model("omg-tiny")
    datasets = [ShapesWorldDataset(f, seed=2, num_samples=2, image_size=(64, 64), name=f) for f in FAMILIES]
    figures = evaluate(model, datasets, num_samples=2)
    for family in FAMILIES:
        for name in HEADLINE_FIGURES[family]:
            value = figures[family][name]
            assert isinstance(value, float) and (math.isnan(value) or 0.0 <= value <= 100.0), (family, name, value)


# ---------------------------------------------------------------------------------------------------- two ranks

NUM_SAMPLES = 6


def _datasets() -> list[ShapesWorldDataset]:
    return [ShapesWorldDataset(f, seed=40 + i, num_samples=NUM_SAMPLES, image_size=(64, 64), name=f)
            for i, f in enumerate(FAMILIES)]


def _all_figures(rank: int = 0, world_size: int = 1, indices: range | None = None) -> dict[str, dict[str, float]]:
    predictor = GroundTruthPredictor(mislabel_odd=True)
    return {d.name: evaluate_dataset(predictor, d, indices or range(NUM_SAMPLES), rank, world_size)
            for d in _datasets()}


def _rank_worker(rank: int, world_size: int, port: int, out: str) -> None:
    import torch.distributed as dist

    warnings.simplefilter("ignore")
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        torch.save(_all_figures(rank, world_size), f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def _same(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> bool:
    return a.keys() == b.keys() and all(
        a[k].keys() == b[k].keys() and all(x == y or (math.isnan(x) and math.isnan(y))
                                           for x, y in zip(a[k].values(), b[k].values()))
        for k in a)


def test_two_gloo_ranks_give_the_one_rank_figures(tmp_path: Path) -> None:
    single = _all_figures()
    # one rank's share alone differs, so equality below needs the sync
    assert not _same(_all_figures(indices=range(0, NUM_SAMPLES, 2)), single)
    assert any(0 < headline(single[f], f) < 100 for f in FAMILIES)
    out = tmp_path / "figures"
    port = 29600 + os.getpid() % 1000
    mp.spawn(_rank_worker, args=(2, port, str(out)), nprocs=2, join=True)
    for rank in range(2):
        assert _same(torch.load(f"{out}.{rank}", weights_only=False), single)


def test_a_world_without_a_process_group_is_refused() -> None:
    with pytest.raises(ValueError, match="process group"):
        evaluate_dataset(GroundTruthPredictor(), hand_dataset("semantic"), [0], rank=0, world_size=2)
