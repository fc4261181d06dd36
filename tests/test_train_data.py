"""Training datasets (targets per family, crowd / held-out handling, prompts, clips) and the co-training sampler."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch

from omg_core.errors import InputError
from omg_core.model.vocabulary import vocabulary_from_classes
from omg_core.train.datasets import (
    DATASET_BUILDERS,
    FAMILIES,
    SampleListDataset,
    ShapesWorldDataset,
    TrainingSample,
)
from omg_core.train.sampler import CoTrainingSampler
from omg_data.sample import Category, CategoryList, Sample
from omg_data.synthetic.classes import HELD_OUT
from omg_data.synthetic.world import ShapesWorld

# ----------------------------------------------------------------------------------------------- fixtures

CATEGORIES = CategoryList(
    [
        Category(1, "red circle", True),
        Category(2, "blue square", True),
        Category(3, "purple triangle", True, held_out=True),
        Category(10, "sky", False),
        Category(11, "grass", False),
    ]
)


def _box(t: int, h: int, w: int, y0: int, y1: int, x0: int, x1: int, frames: tuple[int, ...] = (0,)) -> torch.Tensor:
    mask = torch.zeros(t, h, w, dtype=torch.bool)
    for f in frames:
        mask[f, y0:y1, x0:x1] = True
    return mask


def handmade_sample(num_frames: int = 1) -> Sample:
    """32 x 32: sky (top rows, two regions), grass (bottom), two red circles, a blue square, a crowd of red
    circles, a held-out purple triangle, a void strip. Segments do not overlap."""
    t, h, w = num_frames, 32, 32
    frames = tuple(range(t))
    rows = [
        # (instance id, class id, thing, crowd, mask)
        (1, 1, True, False, _box(t, h, w, 12, 20, 0, 8, frames)),  # red circle A
        (2, 1, True, False, _box(t, h, w, 12, 20, 10, 18, frames)),  # red circle B
        (3, 2, True, False, _box(t, h, w, 12, 20, 20, 28, frames[:1])),  # blue square, first frame only
        (4, 1, True, True, _box(t, h, w, 22, 26, 0, 8, frames)),  # crowd of red circles
        (5, 3, True, False, _box(t, h, w, 22, 26, 10, 18, frames)),  # held-out class
        (6, 10, False, False, _box(t, h, w, 0, 6, 0, 32, frames)),  # sky, region 1
        (7, 10, False, False, _box(t, h, w, 6, 12, 0, 16, frames)),  # sky, region 2 (same class)
        (8, 11, False, False, _box(t, h, w, 26, 32, 0, 32, frames)),  # grass
    ]
    ignore = _box(t, h, w, 6, 12, 16, 32, frames)  # void
    generator = torch.Generator().manual_seed(0)
    return Sample(
        frames=torch.randint(0, 256, (t, 3, h, w), dtype=torch.uint8, generator=generator),
        masks=torch.stack([r[4] for r in rows]),
        class_ids=torch.tensor([r[1] for r in rows]),
        is_thing=torch.tensor([r[2] for r in rows]),
        instance_ids=torch.tensor([r[0] for r in rows]),
        is_crowd=torch.tensor([r[3] for r in rows]),
        ignore=ignore,
        categories=CATEGORIES,
        sample_id="handmade",
        is_video=t > 1,
    )


def _segment(sample: Sample, instance_id: int) -> torch.Tensor:
    return sample.masks[int((sample.instance_ids == instance_id).nonzero()[0, 0])]


def _assert_same(a: TrainingSample, b: TrainingSample) -> None:
    for field in ("frames", "labels", "masks", "ignore", "target_ids"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert (a.prompts is None) == (b.prompts is None)
    if a.prompts is not None:
        assert torch.equal(a.prompts.points, b.prompts.points) and torch.equal(a.prompts.is_box, b.prompts.is_box)


# ------------------------------------------------------------------------------------------- the families


def test_panoptic_keeps_things_merges_stuff_per_class_and_sends_crowd_and_held_out_to_ignore() -> None:
    sample = handmade_sample()
    dataset = SampleListDataset([sample], "panoptic", name="hand")
    assert dataset.vocabulary.texts == ("red circle", "blue square", "sky", "grass")  # held-out class left out
    assert dataset.vocabulary.is_thing == (True, True, False, False)
    out = dataset.get(0)
    out.validate(num_classes=4)
    assert out.labels.tolist() == [0, 0, 1, 2, 3]  # circle A, circle B, square, sky (merged), grass
    assert out.target_ids.tolist() == [1, 2, 3, 6, 8]
    assert torch.equal(out.masks[3], _segment(sample, 6) | _segment(sample, 7))
    crowd, held_out = _segment(sample, 4), _segment(sample, 5)
    assert torch.equal(out.ignore, sample.ignore | crowd | held_out)
    assert not (out.masks & (crowd | held_out)).any()


def test_instance_has_things_only_and_semantic_unions_segments_of_a_class() -> None:
    sample = handmade_sample()
    instance = SampleListDataset([sample], "instance").get(0)
    assert SampleListDataset([sample], "instance").vocabulary.texts == ("red circle", "blue square")
    assert instance.labels.tolist() == [0, 0, 1] and instance.target_ids.tolist() == [1, 2, 3]

    semantic = SampleListDataset([sample], "semantic").get(0)
    assert semantic.labels.tolist() == [0, 1, 2, 3]  # one target per class present
    assert torch.equal(semantic.masks[0], _segment(sample, 1) | _segment(sample, 2))  # crowd not included
    assert torch.equal(semantic.masks[2], _segment(sample, 6) | _segment(sample, 7))
    assert torch.equal(semantic.ignore, sample.ignore | _segment(sample, 4) | _segment(sample, 5))


def test_interactive_prompts_lie_inside_their_targets_and_repeat_up_to_the_official_count() -> None:
    sample = handmade_sample()
    dataset = SampleListDataset([sample], "interactive", min_prompt_area=1)
    out = dataset.get(0, np.random.default_rng(3))
    out.validate(num_classes=len(dataset.vocabulary))
    assert out.num_targets == 20  # OMG-Seg repeats the 6 objects (things and stuff, no crowd) up to 20 prompts
    assert sorted(set(out.target_ids.tolist())) == [1, 2, 3, 6, 7, 8]
    assert out.target_ids.tolist()[:6] == out.target_ids.tolist()[6:12]
    prompts = out.prompts
    assert prompts.points.shape == (20, 1, 2) and (prompts.point_labels == 1).all() and not prompts.is_box.any()
    for i in range(20):
        x, y = prompts.points[i, 0].long().tolist()
        assert out.masks[i, 0, y, x], f"click {i} outside its target"
        ys, xs = out.masks[i, 0].nonzero(as_tuple=True)
        assert prompts.boxes[i].tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
    # click prompts are fed as +-3 pixel boxes around the click (OMG-Seg's pseudo box)
    assert torch.equal(prompts.model_boxes(), torch.cat([prompts.points[:, 0] - 3, prompts.points[:, 0] + 3], 1))


def test_interactive_subsamples_many_objects_drops_tiny_ones_and_mixes_boxes() -> None:
    sample = handmade_sample()
    few = SampleListDataset([sample], "interactive", num_prompts=4, min_prompt_area=1).get(0)
    assert few.num_targets == 4 and len(set(few.target_ids.tolist())) == 4  # distinct objects when there are more
    # objects under the minimum area (official 32 px) get no prompt
    areas = {i: int(_segment(sample, i).sum()) for i in (1, 2, 3, 6, 7, 8)}
    big = SampleListDataset([sample], "interactive", min_prompt_area=65).get(0)
    assert set(big.target_ids.tolist()) == {i for i, a in areas.items() if a >= 65}
    mixed = SampleListDataset([sample], "interactive", box_fraction=0.5, min_prompt_area=1).get(0)
    is_box = mixed.prompts.is_box
    assert 0 < int(is_box.sum()) < 20
    assert torch.equal(mixed.prompts.model_boxes()[is_box], mixed.prompts.boxes[is_box])


def test_video_clips_keep_tracks_stable_and_pick_frames_interval_apart() -> None:
    sample = handmade_sample(num_frames=6)
    sample.frames[:, 0, 0, 0] = torch.arange(6, dtype=torch.uint8)  # frame number in a pixel
    dataset = SampleListDataset([sample], "video-instance", num_frames=2, frame_interval=2)
    starts = set()
    for seed in range(12):
        out = dataset.get(0, np.random.default_rng(seed))
        picked = out.frames[:, 0, 0, 0].tolist()
        assert picked[1] - picked[0] == 2 and out.masks.shape[1] == 2
        starts.add(picked[0])
        for row, track in enumerate(out.target_ids.tolist()):
            assert torch.equal(out.masks[row], _segment(sample, track)[picked])
        # the blue square is only in frame 0: a track only when frame 0 is picked
        assert (3 in out.target_ids.tolist()) == (picked[0] == 0)
    assert starts == {0, 1, 2, 3}  # every start that fits the 3-frame span

    semantic = SampleListDataset([sample], "video-semantic", num_frames=6, frame_interval=1).get(0)
    assert semantic.masks.shape == (4, 6, 32, 32) and semantic.labels.tolist() == [0, 1, 2, 3]
    assert torch.equal(semantic.masks[0], _segment(sample, 1) | _segment(sample, 2))
    # a video shorter than the clip span gets evenly spaced frames
    short = SampleListDataset([sample], "video-instance", num_frames=3, frame_interval=4).get(0)
    assert short.frames[:, 0, 0, 0].tolist() == [0, 2, 5]


def test_a_given_vocabulary_sets_the_label_order_and_must_cover_the_classes() -> None:
    sample = handmade_sample()
    vocabulary = vocabulary_from_classes(["grass:stuff", "sky,heavens:stuff", "blue square", "Red Circle"])
    out = SampleListDataset([sample], "panoptic", vocabulary=vocabulary).get(0)
    assert out.labels.tolist() == [3, 3, 2, 0, 1]  # things in segment order, then stuff in vocabulary order
    assert out.target_ids.tolist() == [1, 2, 3, 8, 6]
    with pytest.raises(InputError, match="lacks 1 class.*'grass'"):
        SampleListDataset([sample], "panoptic", vocabulary=vocabulary_from_classes(["red circle", "blue square",
                                                                                     "sky:stuff"]))
    # instance families need only the things
    SampleListDataset([sample], "instance", vocabulary=vocabulary_from_classes(["red circle", "blue square"]))


# ------------------------------------------------------------------------------------------- shapes world


def test_shapes_world_dataset_is_deterministic_and_matches_the_world() -> None:
    a = ShapesWorldDataset("panoptic", seed=5, num_samples=10, image_size=(64, 64))
    b = ShapesWorldDataset("panoptic", seed=5, num_samples=10, image_size=(64, 64))
    _assert_same(a.get(3), b.get(3))
    _assert_same(a[3], a.get(3, np.random.default_rng([5, 3])))
    assert not torch.equal(a.get(3).frames, a.get(4).frames)
    assert not torch.equal(a.get(3).frames, ShapesWorldDataset("panoptic", seed=6, image_size=(64, 64)).get(3).frames)
    raw = ShapesWorld(seed=5, image_size=(64, 64), exclude_held_out=True).image(3)
    assert torch.equal(a.get(3).frames, raw.frames)
    with pytest.raises(IndexError):
        a.get(10)

    jittered = ShapesWorldDataset("interactive", seed=5, num_samples=10, image_size=(64, 64), jitter=(0.5, 2.0))
    before = torch.random.get_rng_state()
    first = jittered.get(2, np.random.default_rng(11))
    assert torch.equal(torch.random.get_rng_state(), before)  # augmentation leaves the global RNG alone
    _assert_same(first, jittered.get(2, np.random.default_rng(11)))
    assert not torch.equal(first.frames, jittered.get(2, np.random.default_rng(12)).frames)
    for i in range(first.num_targets):  # clicks drawn after the jitter, inside the jittered masks
        x, y = first.prompts.points[i, 0].long().tolist()
        assert first.masks[i, 0, y, x]


def test_shapes_world_crowds_become_ignore_in_every_family() -> None:
    world = ShapesWorld(seed=1, image_size=(64, 64), exclude_held_out=True)
    index = next(i for i in range(100) if world.image(i).is_crowd.any())
    raw = world.image(index)
    crowd = raw.masks[raw.is_crowd].any(dim=0)
    for family in ("panoptic", "instance", "semantic", "interactive"):
        out = ShapesWorldDataset(family, seed=1, num_samples=100, image_size=(64, 64)).get(index)
        assert torch.equal(out.ignore, raw.ignore | crowd), family
        assert not (out.masks & crowd).any(), family


def test_shapes_world_video_tracks_follow_the_world_video() -> None:
    dataset = ShapesWorldDataset("video-panoptic", seed=2, num_samples=5, image_size=(64, 64), num_frames=3,
                                 frame_interval=2)
    out = dataset.get(1)
    raw = ShapesWorld(seed=2, image_size=(64, 64), exclude_held_out=True).video(1, 5)  # span (3 - 1) * 2 + 1
    assert torch.equal(out.frames, raw.frames[[0, 2, 4]])
    things = [i for i, thing in enumerate(out.target_ids.tolist()) if dataset.vocabulary.is_thing[out.labels[i]]]
    assert things
    for row in things:
        assert torch.equal(out.masks[row], _segment(raw, out.target_ids[row].item())[[0, 2, 4]])


def test_held_out_classes_never_become_targets_or_vocabulary_entries() -> None:
    names = list(ShapesWorld().categories.names)
    held_out = {names.index(n) for n in HELD_OUT}
    for family in FAMILIES:
        dataset = ShapesWorldDataset(family, seed=0, num_samples=30, image_size=(48, 48))
        assert not set(HELD_OUT) & set(dataset.vocabulary.texts), family
    # a world that draws held-out classes: their segments are dropped and their pixels ignored
    world = ShapesWorld(seed=3, image_size=(64, 64), exclude_held_out=False)
    samples = [world.image(i) for i in range(40)]
    with_held_out = [s for s in samples if any(names.index(s.categories.by_id(c).name) in held_out
                                                for c in s.class_ids.tolist())]
    assert with_held_out, "the unrestricted world should draw some held-out classes in 40 images"
    dataset = SampleListDataset(with_held_out, "panoptic")
    for position, sample in enumerate(with_held_out):
        out = dataset.get(position)
        labelled = {dataset.vocabulary.texts[i] for i in out.labels.tolist()}
        assert not labelled & set(HELD_OUT)
        hidden = torch.tensor([s.held_out for s in (sample.categories.by_id(c) for c in sample.class_ids.tolist())])
        assert out.ignore[sample.masks[hidden].any(dim=0)].all()


def test_registry_builds_shapes_world_with_checked_options() -> None:
    dataset = DATASET_BUILDERS["shapes-world"](name="x", family="semantic", seed=4, num_samples=7,
                                               image_size=[40, 48])
    assert len(dataset) == 7 and dataset.get(0).frames.shape == (1, 3, 40, 48) and dataset.name == "x"
    with pytest.raises(InputError, match=r"^options\.image_sz: unknown option"):
        DATASET_BUILDERS["shapes-world"](name="x", family="semantic", seed=4, image_sz=[40, 48])
    with pytest.raises(InputError, match=r"^options\.num_samples: must be greater than or equal to 1 \(got 0\)"):
        DATASET_BUILDERS["shapes-world"](name="x", family="semantic", seed=4, num_samples=0)


# ---------------------------------------------------------------------------------------------- the sampler


def _stream(sampler: CoTrainingSampler, count: int) -> list[tuple[int, list[int], list[int]]]:
    return [(b.dataset, list(b.indices), list(b.seeds)) for b in (next(sampler) for _ in range(count))]


def test_sampler_is_deterministic_and_batches_come_from_one_dataset() -> None:
    sizes, ratios = [10, 25, 6], [3.0, 1.0, 2.0]
    a = _stream(CoTrainingSampler(sizes, ratios, batch_size=3, seed=7), 200)
    assert a == _stream(CoTrainingSampler(sizes, ratios, batch_size=3, seed=7), 200)
    assert a != _stream(CoTrainingSampler(sizes, ratios, batch_size=3, seed=8), 200)
    batch = next(CoTrainingSampler(sizes, ratios, batch_size=3, seed=7))
    dataset, indices = batch  # a plain 2-tuple when unpacked
    assert (dataset, indices) == (batch.dataset, batch.indices) and batch.step == 0
    for dataset, indices, seeds in a:
        assert len(indices) == 3 and len(seeds) == 3 and all(0 <= i < sizes[dataset] for i in indices)
    # each pass over a dataset visits every sample once, in a fresh order per pass
    per_dataset = [i for d, indices, _ in a if d == 0 for i in indices]
    passes = [per_dataset[k : k + 10] for k in range(0, len(per_dataset) - 9, 10)]
    assert len(passes) >= 3 and all(sorted(p) == list(range(10)) for p in passes)
    assert len({tuple(p) for p in passes}) == len(passes)


def test_sampler_follows_the_ratios() -> None:
    ratios = [4.0, 1.0, 2.0]
    counts = Counter(d for d, _, _ in _stream(CoTrainingSampler([50, 50, 5], ratios, batch_size=2, seed=0), 20000))
    for dataset, ratio in enumerate(ratios):
        assert abs(counts[dataset] / 20000 - ratio / sum(ratios)) < 0.015, counts


def test_two_ranks_see_exactly_what_one_process_with_twice_the_batch_sees() -> None:
    sizes, ratios = [9, 14, 5], [1.0, 2.0, 1.0]
    single = _stream(CoTrainingSampler(sizes, ratios, batch_size=4, seed=3), 60)
    rank0 = _stream(CoTrainingSampler(sizes, ratios, batch_size=2, seed=3, rank=0, world_size=2), 60)
    rank1 = _stream(CoTrainingSampler(sizes, ratios, batch_size=2, seed=3, rank=1, world_size=2), 60)
    for whole, first, second in zip(single, rank0, rank1, strict=True):
        assert first[0] == second[0] == whole[0]
        assert first[1] + second[1] == whole[1] and first[2] + second[2] == whole[2]


def test_resuming_from_the_state_continues_with_the_same_batches() -> None:
    sizes, ratios = [7, 12], [1.0, 3.0]
    reference = _stream(CoTrainingSampler(sizes, ratios, batch_size=3, seed=11), 80)
    first = CoTrainingSampler(sizes, ratios, batch_size=3, seed=11)
    assert _stream(first, 33) == reference[:33]
    state = json.loads(json.dumps(first.state_dict()))  # a checkpoint stores it as JSON
    resumed = CoTrainingSampler(sizes, ratios, batch_size=3, seed=11)
    resumed.load_state_dict(state)
    assert _stream(resumed, 47) == reference[33:]
    # the state is global: resuming on 3 ranks of batch 1 continues the same global batches
    shards = [CoTrainingSampler(sizes, ratios, batch_size=1, seed=11, rank=r, world_size=3) for r in range(3)]
    for shard in shards:
        shard.load_state_dict(state)
    streams = [_stream(shard, 10) for shard in shards]
    for step in range(10):
        assert sum((s[step][1] for s in streams), []) == reference[33 + step][1]
    with pytest.raises(ValueError, match="ratios"):
        CoTrainingSampler(sizes, [1.0, 2.0], batch_size=3, seed=11).load_state_dict(state)
    with pytest.raises(ValueError, match="global_batch_size"):
        CoTrainingSampler(sizes, ratios, batch_size=2, seed=11).load_state_dict(state)


def test_sampler_rejects_bad_arguments() -> None:
    for args in (([5], [0.0], 1, 0), ([5, 3], [1.0], 1, 0), ([0], [1.0], 1, 0), ([5], [1.0], 0, 0)):
        with pytest.raises(ValueError):
            CoTrainingSampler(*args)
    with pytest.raises(ValueError):
        CoTrainingSampler([5], [1.0], 1, 0, rank=2, world_size=2)
