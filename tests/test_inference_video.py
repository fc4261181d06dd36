"""OMG-Seg's MinVIS video inference on hand-made outputs: tube splits, query matching, tracks, per-frame fusion."""

from __future__ import annotations

import pytest
import torch

from omg_core.inference.panoptic import PanopticSettings, panoptic_fusion
from omg_core.inference.semantic import semantic_labels
from omg_core.inference.video import (
    StreamingTrackBuilder,
    TrackBuilder,
    TubeOutputs,
    associate_proposals,
    match_queries,
    tube_bounds,
    video_instances,
    video_panoptic,
    video_semantic,
    video_split,
)


def official_video_split(total: int, tube_size: int, overlap: int = 0) -> list[int]:
    """A line-by-line transcription of `video_split` in seg/models/detectors/mask2former_vid_minvis.py."""
    assert tube_size > overlap
    total -= overlap
    tube_size -= overlap
    splits = total // tube_size if total % tube_size == 0 else total // tube_size + 1
    ind_list = [(i + 1) * tube_size for i in range(splits)]
    diff = ind_list[-1] - total
    if diff < splits:
        for i in range(diff):
            ind_list[splits - 1 - i] -= diff - i
    else:
        ind_list[splits - 1] -= diff
        assert ind_list[splits - 1] > 0
    return [index + overlap for index in ind_list]


@pytest.mark.parametrize("overlap", [0, 1])
def test_video_split_equals_the_official_rule(overlap: int) -> None:
    for tube_size in range(overlap + 1, 8):
        for frames in range(overlap + 1, 61):
            assert video_split(frames, tube_size, overlap) == official_video_split(frames, tube_size, overlap)


def test_tube_bounds_cover_the_video_and_use_the_small_size_for_short_videos() -> None:
    assert tube_bounds(15, 5) == [(0, 3), (3, 6), (6, 9), (9, 12), (12, 15)]  # <= 15 frames: clip_size_small 3
    bounds = tube_bounds(17, 5)
    assert bounds[0] == (0, 5) and bounds[-1][1] == 17 and all(b[0] == a[1] for a, b in zip(bounds, bounds[1:]))
    assert [end - start for start, end in bounds] == [5, 4, 4, 4]  # the official rule shortens the last tubes
    with pytest.raises(ValueError, match="tube sizes"):
        tube_bounds(10, 0)


def test_match_queries_recovers_a_permutation() -> None:
    generator = torch.Generator().manual_seed(0)
    previous = torch.randn(30, 16, generator=generator)
    shuffle = torch.randperm(30, generator=generator)
    current = previous[shuffle] + 0.05 * torch.randn(30, 16, generator=generator)
    perm = match_queries(previous, current)
    assert torch.equal(shuffle[perm], torch.arange(30))  # current[perm] is previous, slot by slot


def _tube(class_logits, masks, embeddings, iou=None, extras=None) -> TubeOutputs:
    q = class_logits.shape[0]
    return TubeOutputs(class_logits, masks, embeddings, iou if iou is not None else torch.zeros(q, 1), extras or {})


def test_a_track_keeps_its_slot_when_its_object_leaves_and_comes_back() -> None:
    # Two queries; in the second tube the decoder swaps their order. Object A (query 0) is absent from the middle
    # tube (mask all negative) and returns in the third: its slot, and so its id, must stay 0.
    embeddings = torch.tensor([[1.0, 0.0, 0.2], [0.0, 1.0, 0.1]])
    a_present = torch.full((1, 2, 4, 4), 5.0)
    absent = torch.full((1, 2, 4, 4), -5.0)
    b_mask = torch.full((1, 2, 4, 4), 3.0)
    cls = torch.tensor([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    builder = TrackBuilder()
    builder.add(_tube(cls, torch.cat([a_present, b_mask]), embeddings))
    builder.add(_tube(cls.flip(0), torch.cat([b_mask, absent]), embeddings.flip(0)))  # swapped, A absent
    builder.add(_tube(cls, torch.cat([a_present, b_mask]), embeddings))
    track = builder.finish()
    assert track.mask_logits.shape == (2, 6, 4, 4) and track.num_tubes == 3
    assert (track.mask_logits[0, 2:4] < 0).all() and (track.mask_logits[0, 4:] > 0).all()
    assert (track.mask_logits[1] == 3.0).all()
    torch.testing.assert_close(track.class_logits, cls)


def test_offline_and_streaming_agree_on_averages() -> None:
    generator = torch.Generator().manual_seed(1)
    tubes = [_tube(torch.randn(5, 4, generator=generator), torch.randn(5, 2, 3, 3, generator=generator),
                   torch.randn(5, 8, generator=generator), torch.randn(5, 1, generator=generator),
                   {"sums": torch.randn(5, 6, generator=generator)}) for _ in range(4)]
    offline, streaming = TrackBuilder(), StreamingTrackBuilder()
    streamed_masks = []
    for tube in tubes:
        offline.add(tube)
        streamed_masks.append(streaming.add(tube).mask_logits)
    a, b = offline.finish(), streaming.finish()
    torch.testing.assert_close(a.class_logits, b.class_logits)
    torch.testing.assert_close(a.iou_logits, b.iou_logits)
    torch.testing.assert_close(a.extras["sums"], b.extras["sums"])
    assert b.mask_logits is None and torch.equal(a.mask_logits, torch.cat(streamed_masks, dim=1))


def _identity(logits: torch.Tensor) -> torch.Tensor:
    return logits


def test_video_panoptic_ids_follow_query_slots_and_stuff_merges() -> None:
    # classes: 0 thing, 1 stuff; queries: 0 thing (left), 1 thing (right, absent in frame 1), 2 and 3 stuff (rows).
    class_logits = torch.full((4, 3), -5.0)
    class_logits[0, 0] = class_logits[1, 0] = 5.0
    class_logits[2, 1] = class_logits[3, 1] = 5.0
    masks = torch.full((4, 2, 4, 4), -10.0)
    masks[0, :, :2, :2] = 10.0
    masks[1, 0, :2, 2:] = 10.0
    masks[2, :, 2:3, :] = 10.0
    masks[3, :, 3:, :] = 10.0
    from omg_core.inference.video import TrackOutputs

    track = TrackOutputs(class_logits, torch.zeros(4, 1), masks)
    video = video_panoptic(track, _identity, torch.tensor([True, False]), PanopticSettings(), panoptic_fusion,
                           ("thing", "stuff"))
    ids = video.segment_ids
    assert ids.shape == (2, 4, 4)
    assert (ids[:, :2, :2] == 1).all()  # query 0 -> id 1 in both frames
    assert (ids[0, :2, 2:] == 2).all() and (ids[1, :2, 2:] == 0).all()  # query 1 -> id 2, gone in frame 1
    assert (ids[:, 2:, :] == 4 + 1 + 1).all()  # both stuff queries: one segment of class 1
    assert [(s.id, s.label, s.is_thing) for s in video.segments] == [(1, 0, True), (2, 0, True), (6, 1, False)]


def test_video_semantic_labels_every_frame() -> None:
    from omg_core.inference.video import TrackOutputs

    class_logits = torch.tensor([[5.0, -5.0, -5.0], [-5.0, 5.0, -5.0]])
    masks = torch.full((2, 3, 2, 2), -10.0)
    masks[0, :, 0] = 10.0
    masks[1, :, 1] = 10.0
    video = video_semantic(TrackOutputs(class_logits, torch.zeros(2, 1), masks), _identity, semantic_labels,
                           ("a", "b"))
    assert video.labels.tolist() == [[[0, 0], [1, 1]]] * 3


def test_video_instances_score_is_class_times_mean_mask_quality() -> None:
    from omg_core.inference.video import TrackOutputs

    class_logits = torch.tensor([[3.0, -3.0, 0.0], [-3.0, 3.0, 0.0]])  # 2 queries, classes 0 (thing), 1 (stuff)
    masks = torch.full((2, 2, 3, 3), -4.0)
    masks[0, 0, 0, 0] = 2.0  # frame 0: one pixel with sigmoid(2)
    masks[0, 1, :, :] = 4.0  # frame 1: every pixel with sigmoid(4)
    tracks = video_instances(TrackOutputs(class_logits, torch.zeros(2, 1), masks), _identity,
                             torch.tensor([True, False]), 100, ("thing", "stuff"))
    assert set(tracks.labels.tolist()) == {0}  # the stuff class never becomes a track
    first = tracks.scores.argmax()
    probability = torch.softmax(class_logits[0], -1)[0]
    expected = probability * (torch.sigmoid(torch.tensor(2.0)) + torch.sigmoid(torch.tensor(4.0))) / 2
    torch.testing.assert_close(tracks.scores[first], expected, rtol=1e-5, atol=1e-6)
    assert tracks.masks[first, 0].sum() == 1 and tracks.masks[first, 1].all()
    assert (tracks.scores[1:] <= tracks.scores[first]).all() and len(tracks) == 2  # query 1 with class 0 too


def test_associate_proposals_maximises_total_iou_not_greedily() -> None:
    objects = torch.zeros(2, 1, 10, dtype=torch.bool)
    objects[0, 0, :5] = True
    objects[1, 0, 4:] = True
    proposals = torch.zeros(2, 1, 10, dtype=torch.bool)
    proposals[0, 0, 2:7] = True  # overlaps both; greedy would give it object 0 (IoU 3/7) ...
    proposals[1, 0, :4] = True  # ... leaving this one object 1 (IoU 0); Hungarian swaps them
    assert associate_proposals(proposals, objects) == {0: 1, 1: 0}
