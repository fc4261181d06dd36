"""The Hungarian matcher: known optimal assignments, ties, empty targets, too many targets, clips matched once over all
frames, and the same assignments and costs as the official OMG-Seg code (tests/official_loss_transcription.py)."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F
from official_loss_transcription import OfficialHead, point_sample

from omg_core.errors import InputError
from omg_core.train.matcher import HungarianMatcher
from omg_core.train.point_sampling import uniform_points
from omg_core.train.targets import SegmentationTargets

K = 4  # classes


def _confident(labels: list[int]) -> torch.Tensor:
    """Class logits that put nearly all probability on each given label."""
    logits = torch.full((len(labels), K + 1), -8.0)
    logits[torch.arange(len(labels)), torch.tensor(labels)] = 8.0
    return logits


def _logits_from_masks(masks: torch.Tensor) -> torch.Tensor:
    return (masks.float() * 2 - 1) * 10.0


def test_the_optimal_assignment_is_found() -> None:
    generator = torch.Generator().manual_seed(0)
    targets = torch.rand(3, 16, 16, generator=generator) > 0.5
    labels = torch.tensor([2, 0, 3])
    # query 4 predicts target 0, query 1 target 1, query 2 target 2; queries 0 and 3 predict noise of another class
    masks = torch.randn(5, 16, 16, generator=generator)
    masks[4], masks[1], masks[2] = (_logits_from_masks(targets[i]) for i in range(3))
    class_logits = _confident([1, 0, 3, 1, 2])
    matcher = HungarianMatcher(num_points=2000)
    assignment = matcher.match(class_logits, masks, labels, targets, generator=torch.Generator().manual_seed(1))
    assert assignment.query_index.tolist() == [1, 2, 4]  # sorted by query
    assert assignment.target_index.tolist() == [1, 2, 0]


def test_assignment_and_costs_equal_the_official_code() -> None:
    for seed in range(4):
        generator = torch.Generator().manual_seed(seed)
        num_queries, num_targets = 9, 1 + seed * 2
        class_logits = torch.randn(num_queries, K + 2, generator=generator)  # official layout: + iou column
        masks = torch.randn(num_queries, 8, 12, generator=generator)
        labels = torch.randint(0, K, (num_targets,), generator=generator)
        targets = torch.rand(num_targets, 32, 48, generator=generator) > 0.6  # full resolution, stride-4 predictions
        official = OfficialHead(K, num_queries, num_points=3000)
        queries, rows = official.match(class_logits, masks, dict(labels=labels, masks=targets),
                                       torch.Generator().manual_seed(seed))
        matcher = HungarianMatcher(num_points=3000)
        assignment = matcher.match(class_logits[:, :-1], masks, labels, targets, torch.Generator().manual_seed(seed))
        assert assignment.query_index.tolist() == queries.tolist()
        assert assignment.target_index.tolist() == rows.tolist()
        # the cost matrix itself, on shared points
        coords = uniform_points(1, 3000, torch.device("cpu"), torch.Generator().manual_seed(seed))
        ours = matcher.cost_matrix(class_logits[:, :-1], masks, labels, targets.float(), coords)
        pred_points = point_sample(masks.unsqueeze(1), coords.repeat(num_queries, 1, 1)).squeeze(1)
        gt_points = point_sample(targets.unsqueeze(1).float(), coords.repeat(num_targets, 1, 1)).squeeze(1)
        theirs = torch.stack([
            cost(dict(scores=class_logits, masks=pred_points), dict(labels=labels, masks=gt_points))
            for cost in official.assigner.match_costs
        ]).sum(0)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_ties_give_target_n_to_the_nth_interchangeable_query() -> None:
    matcher = HungarianMatcher(num_points=500)
    targets = torch.zeros(3, 8, 8, dtype=torch.bool)
    targets[0, :4], targets[1, 4:], targets[2, :, :4] = True, True, True
    labels = torch.tensor([0, 1, 2])
    # all queries identical: every assignment costs the same; the solver gives target n to query n
    same = matcher.match(torch.zeros(6, K + 1), torch.zeros(6, 8, 8), labels, targets)
    assert same.query_index.tolist() == [0, 1, 2] and same.target_index.tolist() == [0, 1, 2]
    # query 0 is worse than the others, queries 1..5 identical: targets 0, 1, 2 go to queries 1, 2, 3
    class_logits = torch.zeros(6, K + 1)
    class_logits[0, K] = 10.0  # confidently void: a higher class cost for every target
    tied = matcher.match(class_logits, torch.zeros(6, 8, 8), labels, targets)
    assert tied.query_index.tolist() == [1, 2, 3] and tied.target_index.tolist() == [0, 1, 2]


def test_no_targets_give_an_empty_assignment_and_draw_the_same_points() -> None:
    matcher = HungarianMatcher(num_points=100)
    generator = torch.Generator().manual_seed(5)
    assignment = matcher.match(torch.randn(4, K + 1), torch.randn(4, 8, 8), torch.zeros(0, dtype=torch.int64),
                               torch.zeros(0, 32, 32, dtype=torch.bool), generator)
    assert assignment.query_index.numel() == 0 and assignment.target_index.numel() == 0
    assert assignment.query_index.dtype == torch.int64
    # the points were drawn anyway (as the official head does), keeping the random stream aligned
    reference = torch.Generator().manual_seed(5)
    uniform_points(1, 100, torch.device("cpu"), reference)
    assert torch.equal(torch.rand(3, generator=generator), torch.rand(3, generator=reference))


def test_more_targets_than_queries_are_refused() -> None:
    matcher = HungarianMatcher(num_points=100)
    with pytest.raises(InputError, match="3 targets but the model has only 2 learned queries"):
        matcher.match(torch.randn(2, K + 1), torch.randn(2, 8, 8), torch.tensor([0, 1, 2]),
                      torch.ones(3, 8, 8, dtype=torch.bool))


def test_labels_outside_the_vocabulary_are_refused() -> None:
    matcher = HungarianMatcher(num_points=100)
    with pytest.raises(InputError, match=r"class indices in \[0, 4\)"):
        matcher.match(torch.randn(3, K + 1), torch.randn(3, 8, 8), torch.tensor([0, 4]),
                      torch.ones(2, 8, 8, dtype=torch.bool))
    with pytest.raises(InputError, match="prompt queries"):
        matcher.match(torch.randn(3, K + 1), torch.randn(3, 8, 8), torch.tensor([-1]),
                      torch.ones(1, 8, 8, dtype=torch.bool))


def test_a_clip_is_matched_once_over_all_frames() -> None:
    # two tracks that swap sides between the frames; query 1 predicts "left in both frames", which is the best
    # match of target 0 in frame 0 and of target 1 in frame 1, but neither track over the clip
    left = torch.zeros(8, 8, dtype=torch.bool)
    left[:, :4] = True
    right = ~left
    targets = torch.stack([torch.stack([left, right]), torch.stack([right, left])])  # 2 x T=2 x 8 x 8
    masks = torch.stack([
        _logits_from_masks(targets[0]),
        _logits_from_masks(torch.stack([left, left])),
        _logits_from_masks(targets[1]),
    ])  # 3 x 2 x 8 x 8
    class_logits = _confident([0, 0, 0])
    labels = torch.tensor([0, 0])
    matcher = HungarianMatcher(num_points=2000)
    clip = matcher.match(class_logits, masks, labels, targets, torch.Generator().manual_seed(0))
    assert clip.query_index.tolist() == [0, 2] and clip.target_index.tolist() == [0, 1]
    # frame by frame, query 1 would take a target in each frame (what one assignment over the clip avoids)
    frame0 = matcher.match(class_logits[1:], masks[1:, 0], labels, targets[:, 0])
    assert 0 in frame0.query_index.tolist()  # query 1 (index 0 here) is matched in frame 0
    # the official head flattens a clip to a film and matches it as one image: the same assignment
    official = OfficialHead(K, 3, num_points=2000)
    queries, rows = official.match(torch.cat([class_logits, torch.zeros(3, 1)], 1), masks.flatten(1, 2),
                                   dict(labels=labels, masks=targets.flatten(1, 2)), torch.Generator().manual_seed(0))
    assert queries.tolist() == [0, 2] and rows.tolist() == [0, 1]


def test_random_clips_match_the_official_film_matching() -> None:
    for seed in range(3):
        generator = torch.Generator().manual_seed(10 + seed)
        class_logits = torch.randn(6, K + 2, generator=generator)
        masks = torch.randn(6, 3, 8, 8, generator=generator)
        labels = torch.randint(0, K, (4,), generator=generator)
        targets = torch.rand(4, 3, 32, 32, generator=generator) > 0.5
        queries, rows = OfficialHead(K, 6, num_points=1000).match(
            class_logits, masks.flatten(1, 2), dict(labels=labels, masks=targets.flatten(1, 2)),
            torch.Generator().manual_seed(seed))
        ours = HungarianMatcher(num_points=1000).match(class_logits[:, :-1], masks, labels, targets,
                                                       torch.Generator().manual_seed(seed))
        assert ours.query_index.tolist() == queries.tolist() and ours.target_index.tolist() == rows.tolist()


def test_a_full_resolution_target_matches_its_stride_four_prediction() -> None:
    generator = torch.Generator().manual_seed(3)
    coarse = torch.rand(4, 8, 8, generator=generator) > 0.5
    full = F.interpolate(coarse[:, None].float(), scale_factor=4, mode="nearest")[:, 0] > 0.5  # 4 x 32 x 32
    masks = _logits_from_masks(coarse[[2, 0, 3, 1]])  # query q predicts target order [2, 0, 3, 1]
    assignment = HungarianMatcher(num_points=3000).match(_confident([0] * 4), masks, torch.zeros(4, dtype=torch.int64),
                                                         full, torch.Generator().manual_seed(0))
    assert assignment.target_index.tolist() == [2, 0, 3, 1]


def test_matching_is_deterministic_given_a_generator() -> None:
    generator = torch.Generator().manual_seed(0)
    class_logits = torch.randn(2, 20, K + 1, generator=generator)
    masks = torch.randn(2, 20, 8, 8, generator=generator)
    targets = [SegmentationTargets(torch.randint(0, K, (n,), generator=generator), torch.rand(n, 8, 8) > 0.5)
               for n in (5, 0)]
    matcher = HungarianMatcher(num_points=50)  # few points: the draw matters
    first = matcher(class_logits, masks, targets, torch.Generator().manual_seed(7))
    again = matcher(class_logits, masks, targets, torch.Generator().manual_seed(7))
    assert [a.query_index.tolist() for a in first] == [a.query_index.tolist() for a in again]
    assert [a.target_index.tolist() for a in first] == [a.target_index.tolist() for a in again]
    assert first[1].query_index.numel() == 0
    with pytest.raises(InputError, match="got 1 targets for a batch of 2"):
        matcher(class_logits, masks, targets[:1])


def test_one_match_at_training_size_is_fast() -> None:
    """Q=100, 20 targets, 12,544 points, stride-4 predictions of a 512 px input (loose bound for slow machines)."""
    generator = torch.Generator().manual_seed(0)
    class_logits = torch.randn(100, 81, generator=generator)
    masks = torch.randn(100, 128, 128, generator=generator)
    labels = torch.randint(0, 80, (20,), generator=generator)
    targets = torch.rand(20, 512, 512, generator=generator) > 0.5
    matcher = HungarianMatcher()
    matcher.match(class_logits, masks, labels, targets, generator)  # warm-up
    start = time.perf_counter()
    matcher.match(class_logits, masks, labels, targets, generator)
    assert time.perf_counter() - start < 2.0
