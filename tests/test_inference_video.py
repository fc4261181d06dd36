"""OMG-Seg's MinVIS video inference on hand-made outputs: tube splits, query matching, tracks, per-frame fusion, the
DAVIS proposal association and the open-vocabulary ensemble on whole tracks, checked against transcriptions of the
official code (seg/models/detectors/mask2former_vid_minvis.py, mmdet's YouTubeVISMetric)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import official_fusion_transcription as official
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from omg_core.inference.panoptic import PanopticSettings, panoptic_fusion
from omg_core.inference.semantic import semantic_labels
from omg_core.inference.video import (
    VIDEO_CLIP_SETTINGS,
    ClipSettings,
    StreamingTrackBuilder,
    TrackBuilder,
    TrackOutputs,
    TubeOutputs,
    associate_proposals,
    match_queries,
    open_vocabulary_track_logits,
    tube_bounds,
    video_instances,
    video_panoptic,
    video_semantic,
    video_split,
)

# --- transcriptions of the official code (only what these tests need) -------------------------------------------


def official_video_split(total: int, tube_size: int, overlap: int = 0) -> list[int]:
    """`video_split` in seg/models/detectors/mask2former_vid_minvis.py, line by line (print dropped)."""
    assert tube_size > overlap
    total -= overlap
    tube_size -= overlap
    if total % tube_size == 0:
        splits = total // tube_size
    else:
        splits = (total // tube_size) + 1
    ind_list = []
    for i in range(splits):
        ind_list.append((i + 1) * tube_size)
    diff = ind_list[-1] - total
    if diff < splits:
        for i in range(diff):
            ind_list[splits - 1 - i] -= diff - i
    else:
        ind_list[splits - 1] -= diff
        assert ind_list[splits - 1] > 0
    for idx in range(len(ind_list)):
        ind_list[idx] += overlap
    return ind_list


def official_match_from_embeds(tgt_embds: torch.Tensor, cur_embds: torch.Tensor) -> list[np.ndarray]:
    """`match_from_embeds`, line by line (B x Q x C inputs)."""
    cur_embds = cur_embds / cur_embds.norm(dim=-1, keepdim=True)
    tgt_embds = tgt_embds / tgt_embds.norm(dim=-1, keepdim=True)
    cos_sim = torch.bmm(cur_embds, tgt_embds.transpose(1, 2))
    C = 1.0 * (1 - cos_sim)
    C = C.cpu()
    indices = []
    for i in range(len(cur_embds)):
        indice = linear_sum_assignment(C[i].transpose(0, 1))  # target x current
        indices.append(indice[1])
    return indices


def official_merge_tubes(tubes: list[TubeOutputs], overlap: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The tube loop of `Mask2formerVideoMinVIS.predict` (batch of one): class logits, masks (Q, T, h, w), iou."""
    cls_list = [t.class_logits[None] for t in tubes]
    mask_list = [tubes[0].mask_logits[None]] + [t.mask_logits[None][:, :, overlap:] for t in tubes[1:]]
    query_list = [t.raw_query_embeddings[None] for t in tubes]
    iou_list = [t.iou_logits[None] for t in tubes]
    out_cls, out_mask, out_embed, ious = [cls_list[0]], [mask_list[0]], [query_list[0]], [iou_list[0]]
    for i in range(1, len(tubes)):
        indices = official_match_from_embeds(out_embed[-1], query_list[i])[0]
        out_cls.append(cls_list[i][:, indices])
        out_mask.append(mask_list[i][:, indices])
        out_embed.append(query_list[i][:, indices])
        ious.append(iou_list[i][:, indices])
    return sum(out_cls)[0] / len(tubes), torch.cat(out_mask, dim=2)[0], sum(ious)[0] / len(tubes)


def official_youtube_vis_tracks(class_logits: torch.Tensor, mask_logits: torch.Tensor, num_things: int
                                ) -> dict[tuple[int, int], tuple[float, int, list[torch.Tensor]]]:
    """Per frame `instance_postprocess` with the averaged logits, instance ids 1..N by position
    (`add_track_pred_to_datasample`), then mmdet YouTubeVISMetric `_format_one_video_preds`: score = mean of the
    per-frame scores, category = bincount argmax. Keyed by (query, label) (the transcription also returns queries)."""
    num_classes = class_logits.shape[1] - 1
    cfg = {"max_per_image": class_logits.shape[0] * num_classes}
    collect: dict[int, dict] = defaultdict(lambda: {"labels": [], "scores": [], "masks": [], "query": set()})
    for frame in range(mask_logits.shape[1]):
        result = official.instance_postprocess(class_logits, mask_logits[:, frame], num_classes, num_things, cfg)
        ids = torch.arange(len(result["bboxes"])) + 1
        for j, track_id in enumerate(ids.tolist()):
            collect[track_id]["labels"].append(int(result["labels"][j]))
            collect[track_id]["scores"].append(float(result["scores"][j]))
            collect[track_id]["masks"].append(result["masks"][j])
            collect[track_id]["query"].add(int(result["query_indices"][j]))
    tracks = {}
    for data in collect.values():
        assert len(data["query"]) == 1  # a position is the same query in every frame
        label = int(np.bincount(np.array(data["labels"])).argmax())
        tracks[(data["query"].pop(), label)] = (float(np.array(data["scores"]).mean()), label, data["masks"])
    return tracks


def official_ensemble(mask_cls: torch.Tensor, clip_logit: torch.Tensor, overlapping: torch.Tensor, alpha: float,
                      beta: float, valid: torch.Tensor) -> torch.Tensor:
    """The formula part of `open_voc_inference` (after the CLIP logits are computed; void column already dropped)."""
    clip_logit = clip_logit.softmax(-1)
    query_logit = mask_cls[..., :-1].softmax(-1)
    valid_masking = valid.float()[..., None]
    alpha_t = torch.ones_like(clip_logit) * alpha * valid_masking
    beta_t = torch.ones_like(clip_logit) * beta * valid_masking
    seen = (query_logit ** (1 - alpha_t) * clip_logit ** alpha_t).log() * overlapping
    unseen = (query_logit ** (1 - beta_t) * clip_logit ** beta_t).log() * (1 - overlapping)
    cls_results = seen + unseen
    is_void_prob = F.softmax(mask_cls, dim=-1)[..., -1:]
    return torch.log(torch.cat([cls_results.softmax(-1) * (1.0 - is_void_prob), is_void_prob], dim=-1) + 1e-8)


def _identity(logits: torch.Tensor) -> torch.Tensor:
    return logits


def _tube(class_logits, masks, embeddings, iou=None, extras=None) -> TubeOutputs:
    q = class_logits.shape[0]
    return TubeOutputs(class_logits, masks, embeddings, iou if iou is not None else torch.zeros(q, 1), extras or {})


def _random_tubes(sizes: list[int], seed: int, queries: int = 12, classes: int = 5) -> list[TubeOutputs]:
    """Tubes of one set of objects whose query order the decoder shuffles from tube to tube."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.randn(queries, 16, generator=generator)
    tubes = []
    for size in sizes:
        shuffle = torch.randperm(queries, generator=generator)
        tubes.append(_tube(torch.randn(queries, classes + 1, generator=generator),
                           torch.randn(queries, size, 4, 4, generator=generator),
                           base[shuffle] + 0.3 * torch.randn(queries, 16, generator=generator),
                           torch.randn(queries, 1, generator=generator),
                           {"clip_sums": torch.randn(queries, 8, generator=generator)}))
    return tubes


# --- tubes ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlap", [0, 1])
def test_video_split_equals_the_official_rule(overlap: int) -> None:
    branches = set()
    for tube_size in range(overlap + 1, 8):
        for frames in range(1, 61):
            if frames <= overlap:  # the official code fails on this (no tube); one tube holds the video here
                assert video_split(frames, tube_size, overlap) == [frames]
                continue
            expected = official_video_split(frames, tube_size, overlap)
            assert video_split(frames, tube_size, overlap) == expected
            step = tube_size - overlap
            splits = -(-(frames - overlap) // step)
            branches.add(splits * step - (frames - overlap) < splits)
    assert branches == {True, False}  # both the spread-out and the "diff >= splits" branch were compared


def test_tube_bounds_use_the_small_size_up_to_the_threshold_and_share_overlap_frames() -> None:
    settings = VIDEO_CLIP_SETTINGS["youtube-vis"]
    short = tube_bounds(settings.small_clip_thr, settings.clip_size, settings.clip_size_small, settings.small_clip_thr)
    long = tube_bounds(settings.small_clip_thr + 1, settings.clip_size, settings.clip_size_small,
                       settings.small_clip_thr)
    assert max(end - start for start, end in short) == settings.clip_size_small  # num_frames > thr picks clip_size
    assert max(end - start for start, end in long) == settings.clip_size
    for bounds, frames in ((short, settings.small_clip_thr), (long, settings.small_clip_thr + 1)):
        assert bounds[0][0] == 0 and bounds[-1][1] == frames
        assert all(b[0] == a[1] for a, b in zip(bounds, bounds[1:]))  # no overlap: tubes tile the video
    overlapping = tube_bounds(20, 5, overlap=2)
    assert all(b[0] == a[1] - 2 for a, b in zip(overlapping, overlapping[1:])) and overlapping[-1][1] == 20
    assert [end for _, end in overlapping] == video_split(20, 5, 2)


@pytest.mark.parametrize("arguments", [dict(clip_size=0), dict(clip_size=5, clip_size_small=0),
                                       dict(clip_size=5, overlap=3), dict(clip_size=5, overlap=-1)])
def test_bad_tube_settings_are_refused(arguments: dict) -> None:
    with pytest.raises(ValueError, match="tube size|overlap"):
        ClipSettings(**arguments)
    with pytest.raises(ValueError, match="tube size|overlap"):
        tube_bounds(30, **arguments)


# --- matching and tracks -------------------------------------------------------------------------------------------


def test_match_queries_recovers_a_permutation_and_keeps_the_official_orientation() -> None:
    generator = torch.Generator().manual_seed(0)
    previous = torch.randn(30, 16, generator=generator)
    shuffle = torch.randperm(30, generator=generator)
    assert not torch.equal(shuffle[shuffle], torch.arange(30))  # not its own inverse: orientation matters
    current = previous[shuffle] + 0.05 * torch.randn(30, 16, generator=generator)
    perm = match_queries(previous, current)
    assert perm.dtype == torch.int64 and torch.equal(shuffle[perm], torch.arange(30))  # current[perm] ~ previous
    # unrelated embeddings (no clear answer): still the official assignment, element for element
    unrelated = torch.randn(30, 16, generator=generator)
    official_perm = official_match_from_embeds(previous[None], unrelated[None])[0]
    assert match_queries(previous, unrelated).tolist() == official_perm.tolist()


@pytest.mark.parametrize("overlap", [0, 1])
def test_track_builder_equals_the_official_tube_loop(overlap: int) -> None:
    sizes = [5, 5, 4, 4] if overlap == 0 else [5, 5, 5, 3]
    tubes = _random_tubes(sizes, seed=overlap)
    builder = TrackBuilder(overlap)
    for tube in tubes:
        builder.add(tube)
    track = builder.finish()
    class_logits, mask_logits, iou_logits = official_merge_tubes(tubes, overlap)
    assert track.num_tubes == len(tubes) and track.num_frames == sum(sizes) - overlap * (len(sizes) - 1)
    torch.testing.assert_close(track.class_logits, class_logits, rtol=0, atol=0)
    torch.testing.assert_close(track.iou_logits, iou_logits, rtol=0, atol=0)
    assert torch.equal(track.mask_logits, mask_logits)
    # the shuffles were recovered: each slot holds the same object's extras, so the sum is of one object's rows
    perms = builder.permutations
    assert torch.equal(perms[0], torch.arange(12)) and len(perms) == len(tubes)
    expected_sum = sum(tube.extras["clip_sums"][perm] for tube, perm in zip(tubes, perms))
    torch.testing.assert_close(track.extras["clip_sums"], expected_sum)


def test_matching_follows_the_previous_tubes_permuted_embeddings() -> None:
    # The decoder's query order drifts: tube 2 is tube 1 shuffled, tube 3 is tube 2 shuffled again. Matching tube 3
    # against tube 2 AFTER its permutation (the official out_embed[-1]) keeps every slot on its object.
    generator = torch.Generator().manual_seed(3)
    objects = torch.randn(6, 8, generator=generator)
    first, second = torch.randperm(6, generator=generator), torch.randperm(6, generator=generator)
    orders = [torch.arange(6), first, first[second]]  # tube i row r is object orders[i][r]
    builder = StreamingTrackBuilder()
    for order in orders:
        label = torch.nn.functional.one_hot(order, 7).float() * 5  # object o predicts class o
        builder.add(_tube(label, torch.zeros(6, 1, 2, 2), objects[order]))
    assert torch.equal(builder.finish().class_logits.argmax(1), torch.arange(6))  # slot o stayed object o


def test_a_track_keeps_its_slot_when_its_object_leaves_and_comes_back() -> None:
    # Two queries; in the second tube the decoder swaps their order. Object A (query 0) is absent from the middle
    # tube (mask all negative) and returns in the third: its slot, and so its id, must stay 0.
    embeddings = torch.tensor([[1.0, 0.0, 0.2], [0.0, 1.0, 0.1]])
    a_present = torch.full((1, 2, 4, 4), 5.0)
    absent = torch.full((1, 2, 4, 4), -5.0)
    b_mask = torch.full((1, 2, 4, 4), 3.0)
    cls = torch.tensor([[4.0, -4.0, 0.0], [-4.0, 4.0, 0.0]])  # A class 0, B class 1 (both things)
    builder = TrackBuilder()
    builder.add(_tube(cls, torch.cat([a_present, b_mask]), embeddings))
    builder.add(_tube(cls.flip(0), torch.cat([b_mask, absent]), embeddings.flip(0)))  # swapped, A absent
    builder.add(_tube(cls, torch.cat([a_present, b_mask]), embeddings))
    track = builder.finish()
    assert track.mask_logits.shape == (2, 6, 4, 4) and track.num_tubes == 3
    assert (track.mask_logits[0, 2:4] < 0).all() and (track.mask_logits[0, 4:] > 0).all()
    assert (track.mask_logits[1] == 3.0).all()
    torch.testing.assert_close(track.class_logits, cls)
    video = video_panoptic(track, _identity, torch.tensor([True, True]), PanopticSettings(), panoptic_fusion,
                           ("a", "b"))
    a_frames = [frame for frame in range(6) if (video.segment_ids[frame] == 1).any()]
    assert a_frames == [0, 1, 4, 5]  # A's id is 1 before and after its absence; B (id 2) holds frames 2, 3 alone
    assert (video.segment_ids[2:4] == 2).all()


def test_offline_and_streaming_agree_on_averages() -> None:
    tubes = _random_tubes([2, 2, 2, 3], seed=1)
    offline, streaming = TrackBuilder(), StreamingTrackBuilder()
    streamed_masks = []
    for tube in tubes:
        offline.add(tube)
        streamed_masks.append(streaming.add(tube).mask_logits)
    a, b = offline.finish(), streaming.finish()
    torch.testing.assert_close(a.class_logits, b.class_logits, rtol=0, atol=0)
    torch.testing.assert_close(a.iou_logits, b.iou_logits, rtol=0, atol=0)
    torch.testing.assert_close(a.extras["clip_sums"], b.extras["clip_sums"], rtol=0, atol=0)
    assert b.mask_logits is None and torch.equal(a.mask_logits, torch.cat(streamed_masks, dim=1))
    with pytest.raises(ValueError, match="no masks"):
        video_semantic(b, _identity, semantic_labels, ("a",) * 5)


def test_builders_refuse_inconsistent_tubes() -> None:
    builder = StreamingTrackBuilder()
    with pytest.raises(ValueError, match="no tube"):
        builder.finish()
    builder.add(_tube(torch.zeros(4, 3), torch.zeros(4, 2, 2, 2), torch.randn(4, 8)))
    with pytest.raises(ValueError, match="first tube's Q, C and K"):
        builder.add(_tube(torch.zeros(5, 3), torch.zeros(5, 2, 2, 2), torch.randn(5, 8)))
    with pytest.raises(ValueError, match="Q=4 rows"):
        builder.add(_tube(torch.zeros(4, 3), torch.zeros(3, 2, 2, 2), torch.randn(4, 8)))


# --- per-frame fusion ----------------------------------------------------------------------------------------------


def test_video_panoptic_ids_stay_with_query_slots_where_the_official_numbers_shift() -> None:
    # classes: 0 thing, 1 stuff. Queries 0, 1, 2 things (columns 0, 1, 2 of the top rows); query 0 is absent in
    # frame 1. Queries 3 and 4 are stuff of class 1 (rows 2 and 3): one merged segment.
    class_logits = torch.full((5, 3), -5.0)
    class_logits[:3, 0] = 5.0
    class_logits[3:, 1] = 5.0
    masks = torch.full((5, 2, 4, 4), -10.0)
    for query in range(3):
        masks[query, :, :2, query] = 10.0
    masks[0, 1] = -10.0
    masks[3, :, 2] = 10.0
    masks[4, :, 3] = 10.0
    track = TrackOutputs(class_logits, torch.zeros(5, 1), masks)
    is_thing = torch.tensor([True, False])
    settings = PanopticSettings()
    video = video_panoptic(track, _identity, is_thing, settings, panoptic_fusion, ("thing", "stuff"))
    ids = video.segment_ids
    assert ids.shape == (2, 4, 4)
    cfg = {"object_mask_thr": settings.object_mask_thr, "iou_thr": settings.iou_thr,
           "filter_low_score": settings.filter_low_score}
    official_maps = [official.panoptic_postprocess(class_logits, masks[:, frame], 2, 1, cfg) for frame in range(2)]
    for frame, official_map in enumerate(official_maps):  # the same partition, other numbers
        pairs = set(zip(ids[frame].flatten().tolist(), official_map.flatten().tolist()))
        assert len(pairs) == len({ours for ours, _ in pairs}) == len({theirs for _, theirs in pairs})
    # query 1's object: official thing number 2 in frame 0, 1 in frame 1; ours id 2 in both
    official_numbers = [int(official_maps[frame][0, 1]) // official.INSTANCE_OFFSET for frame in range(2)]
    assert official_numbers == [2, 1]
    assert ids[0, 0, 1] == ids[1, 0, 1] == 2 and ids[0, 0, 2] == ids[1, 0, 2] == 3
    assert (ids[0, :2, 0] == 1).all() and (ids[1, :2, 0] == 0).all()
    assert (ids[:, 2:] == 5 + 1 + 1).all()  # both stuff queries: one segment, id Q + 1 + class
    assert [(s.id, s.label, s.is_thing) for s in video.segments] == [(1, 0, True), (2, 0, True), (3, 0, True),
                                                                      (7, 1, False)]


def test_video_semantic_labels_every_frame() -> None:
    class_logits = torch.tensor([[5.0, -5.0, -5.0], [-5.0, 5.0, -5.0]])
    masks = torch.full((2, 3, 2, 2), -10.0)
    masks[0, :, 0] = 10.0
    masks[1, :, 1] = 10.0
    masks[1, 2, 0, 0] = 20.0  # frame 2: query 1 takes a pixel of row 0
    video = video_semantic(TrackOutputs(class_logits, torch.zeros(2, 1), masks), _identity, semantic_labels,
                           ("a", "b"))
    assert video.labels.tolist() == [[[0, 0], [1, 1]]] * 2 + [[[1, 0], [1, 1]]]


def test_video_instances_equal_the_official_youtube_vis_tracks() -> None:
    # 3 queries, classes 0 and 1 things, 2 stuff. Object A (query 0, class 0) in all 3 frames; object B (query 1,
    # class 1) leaves in frame 1 and comes back smaller; query 2 is stuff. The per-frame scores vary, the track's
    # score is their mean, an empty frame counting 0.
    class_logits = torch.tensor([[4.0, -1.0, -2.0, 0.0], [-1.0, 3.0, -2.0, 0.5], [-3.0, -3.0, 4.0, 0.0]])
    masks = torch.full((3, 3, 6, 6), -6.0)
    masks[0, :, :3, :3] = torch.tensor([2.0, 3.0, 5.0])[:, None, None]
    masks[1, 0, 3:, 3:] = 4.0
    masks[1, 2, 4:, 4:] = 1.0
    masks[2] = 3.0
    is_thing = torch.tensor([True, True, False])
    tracks = video_instances(TrackOutputs(class_logits, torch.zeros(3, 1), masks), _identity, is_thing,
                             9, ("a", "b", "sky"))
    expected = official_youtube_vis_tracks(class_logits, masks, num_things=2)
    assert len(tracks) == len(expected) == 6  # 3 queries x 2 thing classes
    assert (tracks.scores[:-1] >= tracks.scores[1:]).all()
    for index in range(len(tracks)):
        label = int(tracks.labels[index])
        matches = [key for key, (score, _, official_masks) in expected.items() if key[1] == label and torch.equal(
            torch.stack(official_masks), tracks.masks[index])]
        score = {expected[key][0] for key in matches}
        assert len(score) == 1 and tracks.scores[index].item() == pytest.approx(score.pop(), rel=1e-5)
    best_a = tracks.labels == 0
    assert tracks.masks[best_a][0].flatten(1).any(1).all()  # A's track holds a mask in every frame
    b_track = (tracks.labels == 1).nonzero()[0, 0]
    assert tracks.masks[b_track].flatten(1).any(1).tolist() == [True, False, True]
    assert tracks.boxes[b_track].tolist() == [3.0, 3.0, 6.0, 6.0]  # the union over frames


def test_video_instances_keep_the_official_top_k_before_dropping_stuff() -> None:
    class_logits = torch.tensor([[0.0, 5.0, -5.0], [3.0, 0.0, -5.0]])  # best pair is stuff (query 0, class 1)
    masks = torch.full((2, 2, 2, 2), 4.0)
    tracks = video_instances(TrackOutputs(class_logits, torch.zeros(2, 1), masks), _identity,
                             torch.tensor([True, False]), 2, ("thing", "stuff"))
    # top 2 pairs: (0, stuff) and (1, thing 0); the stuff pair is then dropped, leaving ONE track (not two)
    assert tracks.labels.tolist() == [0] and len(tracks) == 1


def test_associate_proposals_maximises_total_iou_not_greedily() -> None:
    objects = torch.zeros(2, 1, 10, dtype=torch.bool)
    objects[0, 0, :5] = True
    objects[1, 0, 4:] = True
    proposals = torch.zeros(2, 1, 10, dtype=torch.bool)
    proposals[0, 0, 2:7] = True  # overlaps both; greedy would give it object 0 (IoU 3/7) ...
    proposals[1, 0, :4] = True  # ... leaving this one object 1 (IoU 0); Hungarian swaps them
    assert associate_proposals(proposals, objects) == {0: 1, 1: 0}


def test_associate_proposals_equals_the_official_iou_assignment() -> None:
    generator = torch.Generator().manual_seed(5)
    proposals = torch.rand(8, 12, 12, generator=generator) > 0.6
    objects = torch.rand(3, 12, 12, generator=generator) > 0.5
    a, b = proposals.to(torch.int32).flatten(1), objects.to(torch.int32).flatten(1)
    intersection = torch.einsum("nc,mc->nm", a, b)
    union = (a[:, None] + b[None]).clamp(min=0, max=1).sum(-1)
    rows, columns = linear_sum_assignment(-(intersection / union).numpy())
    assert associate_proposals(proposals, objects) == dict(zip(rows.tolist(), columns.tolist()))
    with pytest.raises(ValueError, match="one size"):
        associate_proposals(proposals, objects[:, :6])


# --- open vocabulary -----------------------------------------------------------------------------------------------


def test_open_vocabulary_track_logits_follow_the_official_ensemble() -> None:
    # classes: 0 seen (alpha), 1 unseen (beta); query 0 valid, query 1's mask empty in every frame (CLIP unused)
    class_logits = torch.tensor([[2.0, 0.5, -1.0], [0.3, 1.2, 0.0]])
    clip_logits = torch.tensor([[-1.0, 1.5], [3.0, -3.0]])
    seen = torch.tensor([True, False])
    valid = torch.tensor([True, False])
    result = open_vocabulary_track_logits(class_logits, clip_logits, seen, 0.4, 0.8, valid)
    expected = official_ensemble(class_logits, clip_logits, seen.float(), 0.4, 0.8, valid)
    torch.testing.assert_close(result, expected)
    # by hand for query 0: geometric mean with exponent 0.4 on class 0 and 0.8 on class 1
    q, c = class_logits[0, :2].softmax(-1), clip_logits[0].softmax(-1)
    mixed = torch.stack([q[0] ** 0.6 * c[0] ** 0.4, q[1] ** 0.2 * c[1] ** 0.8])
    void = class_logits[0].softmax(-1)[2]
    torch.testing.assert_close(result[0].exp(), torch.cat([mixed / mixed.sum() * (1 - void), void[None]]) + 1e-8)
    # the invalid query keeps its in-vocabulary probabilities
    torch.testing.assert_close(result[1].exp(), class_logits[1].softmax(-1) + 1e-8)
    assert result[0, 1] > class_logits[0].log_softmax(-1)[1]  # CLIP favours the unseen class and pulls it up


def test_open_vocabulary_track_logits_stay_finite_for_empty_tracks_with_saturated_clip_logits() -> None:
    class_logits = torch.tensor([[2.0, 0.5, -1.0]])
    saturated = torch.tensor([[0.0, 200.0]])  # CLIP softmax underflows to exactly 0 for class 0
    assert saturated.softmax(-1)[0, 0] == 0
    result = open_vocabulary_track_logits(class_logits, saturated, torch.tensor([True, False]), 0.4, 0.8,
                                          torch.tensor([False]))
    expected = official_ensemble(class_logits, saturated, torch.tensor([1.0, 0.0]), 0.4, 0.8, torch.tensor([False]))
    assert torch.isfinite(result).all()
    torch.testing.assert_close(result, expected)
    with pytest.raises(ValueError, match="clip_logits"):
        open_vocabulary_track_logits(class_logits, torch.zeros(1, 3 + 1), torch.tensor([True, False]), 0.4, 0.8,
                                     torch.tensor([True]))
