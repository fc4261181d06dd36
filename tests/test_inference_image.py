"""The image inference functions agree with a line-by-line transcription of OMG-Seg's fusion head
(tests/official_fusion_transcription.py), on random outputs and on hand-made cases for each rule."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import official_fusion_transcription as official
import pytest
import torch
import torch.nn.functional as F

from omg_core.errors import InputError
from omg_core.inference import test_time_resize as ttr
from omg_core.inference.instance import instance_inference
from omg_core.inference.panoptic import PanopticSettings, panoptic_fusion, to_official_encoding
from omg_core.inference.prompt_masks import prompt_mask_inference, proposal_inference
from omg_core.inference.semantic import semantic_inference, semantic_labels
from omg_core.postprocess import masks_to_original_size

Resize = Callable[[torch.Tensor], torch.Tensor]


def identity(logits: torch.Tensor) -> torch.Tensor:
    return logits


class RandomOutputs:
    """Model outputs of one image with structure: each object query owns a blocky region (high mask logits there),
    some queries copy another's region at a lower score (they lose the argmax and fail the IoU test), the rest is
    noise; class logits random with some void winners.

    Also the official path: all queries upsampled to the padded input, cropped, resized to the original size."""

    def __init__(
        self,
        seed: int,
        num_queries: int = 24,
        num_classes: int = 7,
        padded: tuple[int, int] = (32, 48),
        image: tuple[int, int] = (29, 45),
        original: tuple[int, int] = (41, 67),
    ) -> None:
        generator = torch.Generator().manual_seed(seed)
        low_h, low_w = padded[0] // 4, padded[1] // 4
        owners = torch.randint(0, num_queries // 2, (1, 1, low_h // 2 + 1, low_w // 2 + 1), generator=generator)
        owners = F.interpolate(owners.float(), scale_factor=2, mode="nearest")[0, 0, :low_h, :low_w].long()
        queries = torch.arange(num_queries)
        # queries in the second half copy a region of the first half
        region = torch.where(queries < num_queries // 2, queries, queries - num_queries // 2)
        self.mask_logits = torch.where(owners[None] == region[:, None, None], 3.0, -3.0)
        self.mask_logits = self.mask_logits + 2.5 * torch.randn(self.mask_logits.shape, generator=generator)
        self.class_logits = 3.0 * torch.randn(num_queries, num_classes + 1, generator=generator)
        self.class_logits[num_queries // 2 :, :-1] -= 1.0  # copies score lower
        self.num_classes = num_classes
        self.padded, self.image, self.original = padded, image, original

    def resize(self, logits: torch.Tensor) -> torch.Tensor:
        return masks_to_original_size(logits, self.padded, self.image, self.original)

    def official_masks(self) -> torch.Tensor:
        upsampled = official.head_predict_upsample(self.mask_logits, self.padded)
        return official.predict_resize(upsampled, self.image, self.original)


# ---------------------------------------------------------------------------------------------------- resize order


def per_channel(resize: Resize) -> Resize:
    """``resize`` applied to one channel at a time: bit-for-bit independent of the batch it is given (PyTorch's CPU
    bilinear kernel rounds the channels of a vector-width group and the leftover ones differently)."""
    return lambda logits: torch.cat([resize(channel[None]) for channel in logits])


def test_selecting_queries_before_resizing_gives_the_official_rows() -> None:
    outputs = RandomOutputs(seed=0)
    full = outputs.official_masks()  # official order: every query resized, then selected
    selected = torch.tensor([17, 2, 9, 0, 23])
    # the same rows up to the last bit of the CPU kernel (values reach ~12, one float32 ulp there is ~1e-6)
    torch.testing.assert_close(outputs.resize(outputs.mask_logits[selected]), full[selected], rtol=0, atol=1e-5)
    assert (outputs.resize(outputs.mask_logits[selected]) - full[selected.flip(0)]).abs().max() > 1.0
    chunks = list(ttr.resized_query_chunks(outputs.mask_logits, selected, outputs.resize, 2))
    assert [(start, len(logits)) for start, logits in chunks] == [(0, 2), (2, 2), (4, 1)]
    torch.testing.assert_close(torch.cat([logits for _, logits in chunks]), full[selected], rtol=0, atol=1e-5)
    # with a resize that is exact per channel, chunking changes nothing, bit for bit
    exact = per_channel(outputs.resize)
    chunked = torch.cat([logits for _, logits in ttr.resized_query_chunks(outputs.mask_logits, selected, exact, 2)])
    assert torch.equal(chunked, exact(outputs.mask_logits)[selected])
    assert ttr.resized_output(outputs.mask_logits, outputs.resize)[:2] == outputs.original


def test_half_precision_logits_are_resized_in_float32() -> None:
    outputs = RandomOutputs(seed=4)
    half = outputs.mask_logits.bfloat16()
    queries = torch.arange(len(half))
    ((_, resized),) = ttr.resized_query_chunks(half, queries, outputs.resize, chunk=100)
    assert resized.dtype == torch.float32
    assert torch.equal(resized, outputs.resize(half.float()))
    with pytest.raises(ValueError, match="chunk"):
        next(ttr.resized_query_chunks(half, queries, outputs.resize, chunk=0))


# -------------------------------------------------------------------------------------------------------- panoptic

SETTINGS = [
    PanopticSettings(),
    PanopticSettings(object_mask_thr=0.8),
    PanopticSettings(filter_low_score=False),
    PanopticSettings(object_mask_thr=0.3, iou_thr=0.5, filter_low_score=False),
]


def official_panoptic(outputs: RandomOutputs, num_things: int, settings: PanopticSettings) -> torch.Tensor:
    test_cfg = {
        "object_mask_thr": settings.object_mask_thr,
        "iou_thr": settings.iou_thr,
        "filter_low_score": settings.filter_low_score,
    }
    return official.panoptic_postprocess(
        outputs.class_logits, outputs.official_masks(), outputs.num_classes, num_things, test_cfg
    )


@pytest.mark.parametrize("settings", SETTINGS)
def test_panoptic_fusion_equals_the_official_map(settings: PanopticSettings) -> None:
    painted_things = painted_stuff = merged = 0
    for seed in range(12):
        outputs = RandomOutputs(seed)
        num_things = 4
        is_thing = torch.arange(outputs.num_classes) < num_things
        fusion = panoptic_fusion(outputs.class_logits, outputs.mask_logits, outputs.resize, is_thing, settings, chunk=5)
        expected = official_panoptic(outputs, num_things, settings)
        assert torch.equal(to_official_encoding(fusion, outputs.num_classes), expected)
        # the same map up to renumbering: one official value per segment id and back
        pairs = set(zip(fusion.segment_ids.flatten().tolist(), expected.flatten().tolist()))
        assert len(pairs) == len({ids for ids, _ in pairs}) == len({value for _, value in pairs})
        assert (fusion.segment_ids == 0).equal(expected == outputs.num_classes)
        assert [segment.id for segment in fusion.segments] == list(range(1, len(fusion.segments) + 1))
        present = set(fusion.segment_ids.unique().tolist()) - {0}
        assert present == {segment.id for segment in fusion.segments}  # every segment has pixels
        probabilities = outputs.class_logits.softmax(-1)
        for segment, queries in zip(fusion.segments, fusion.segment_queries):
            assert segment.score == pytest.approx(float(probabilities[queries[0]].max()))
            assert all(int(probabilities[query].argmax()) == segment.label for query in queries)
            assert segment.is_thing == bool(is_thing[segment.label]) and (len(queries) == 1 or not segment.is_thing)
        painted_things += sum(segment.is_thing for segment in fusion.segments)
        painted_stuff += sum(not segment.is_thing for segment in fusion.segments)
        merged += sum(len(queries) > 1 for queries in fusion.segment_queries)
    assert painted_things > 5 and painted_stuff > 5  # the random outputs exercise both kinds
    if settings.iou_thr == 0.5:
        assert merged > 0


def test_panoptic_chunking_does_not_change_the_map() -> None:
    outputs = RandomOutputs(seed=3)
    is_thing = torch.arange(outputs.num_classes) < 4
    maps = [
        panoptic_fusion(outputs.class_logits, outputs.mask_logits, outputs.resize, is_thing, chunk=size).segment_ids
        for size in (1, 3, 100)
    ]
    assert torch.equal(maps[0], maps[1]) and torch.equal(maps[0], maps[2])


def test_pixel_ties_across_chunks_go_to_the_first_query() -> None:
    # queries 1 and 3 are copies of query 0 (same class logits, same mask): every pixel ties three ways and the
    # official argmax gives it to query 0; resized one query per chunk, the tie crosses chunk borders
    class_logits, mask_logits = hand_made(
        [[2, 2, -1, -3, -3], [-3, -3, 4, 4, 4], [2, 2, -1, -3, -3], [-3, -3, 4, 4, 4]], winners=[0, 2, 0, 2]
    )
    is_thing = torch.tensor([True, True, False])
    expected = official.panoptic_postprocess(
        class_logits, mask_logits, 3, 2, {"object_mask_thr": 0.0, "filter_low_score": True}
    )
    for chunk in (1, 2, 3, 16):
        fusion = panoptic_fusion(class_logits, mask_logits, identity, is_thing, chunk=chunk)
        assert torch.equal(to_official_encoding(fusion, 3), expected)
        assert fusion.segment_queries == [(0,), (1,)]  # the copies win no pixel: area 0, no segment
    assert expected[0].tolist() == [1000, 1000, 2, 2, 2]


def test_is_thing_replaces_the_official_things_first_rule() -> None:
    """Thing classes anywhere in the vocabulary: the official code on the columns reordered things-first gives the
    same map once its class indices are mapped back."""
    for seed in range(6):
        outputs = RandomOutputs(seed)
        is_thing = torch.tensor([False, True, False, True, True, False, True])
        fusion = panoptic_fusion(outputs.class_logits, outputs.mask_logits, outputs.resize, is_thing)
        things_first = torch.cat([is_thing.nonzero().flatten(), (~is_thing).nonzero().flatten()])
        reordered = RandomOutputs(seed)
        reordered.class_logits = outputs.class_logits[:, torch.cat([things_first, torch.tensor([7])])]
        expected = official_panoptic(reordered, int(is_thing.sum()), PanopticSettings())
        classes = torch.where(expected == 7, 7, things_first[(expected % 1000).clamp(max=6).long()])
        expected_original_classes = classes + (expected // 1000) * 1000
        assert torch.equal(to_official_encoding(fusion, 7), expected_original_classes.int())


def hand_made(rows: list[list[float]], winners: list[int], num_classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask logits (Q, 1, W) from rows, class logits giving query q class winners[q] with probability ~0.9
    (-1 = void)."""
    mask_logits = torch.tensor(rows)[:, None, :]
    class_logits = torch.zeros(len(winners), num_classes + 1)
    for query, label in enumerate(winners):
        class_logits[query, label] = 5.0
    return class_logits, mask_logits


def test_area_is_counted_before_the_low_score_filter() -> None:
    # query 0 (thing class 0): sigmoid >= 0.5 on pixels 0-4, but query 1 takes pixels 3-4 from it, and it wins
    # pixels 5-6 with sigmoid 0.38. Argmax area {0,1,2,5,6} / confident area {0..4} = 1: it paints pixels 0-2.
    # Counted after the filter ({0,1,2} / 5 = 0.6 < 0.8) it would be skipped.
    class_logits, mask_logits = hand_made(
        [
            [3, 3, 3, 3, 3, -0.5, -0.5, -3, -3, -3],
            [-3, -3, -3, 5, 5, -3, -3, 5, 5, 5],
        ],
        winners=[0, 1],
    )
    is_thing = torch.tensor([True, True, False])
    fusion = panoptic_fusion(class_logits, mask_logits, identity, is_thing)
    expected = official.panoptic_postprocess(
        class_logits, mask_logits, 3, 2, {"object_mask_thr": 0.0, "filter_low_score": True}
    )
    assert torch.equal(to_official_encoding(fusion, 3), expected)
    first = fusion.segment_ids[0] == 1
    assert first.nonzero().flatten().tolist() == [0, 1, 2]
    painted, confident = int(first.sum()), int((mask_logits[0] >= 0).sum())
    assert painted / confident < 0.8  # so the order of area and filter decides this segment
    assert fusion.segment_queries == [(0,), (1,)]


def test_stuff_queries_of_one_class_merge_into_one_segment() -> None:
    class_logits, mask_logits = hand_made(
        [
            [4, 4, 4, -4, -4, -4, -4, -4],
            [-4, -4, -4, 4, 4, -4, -4, -4],  # thing
            [-4, -4, -4, -4, -4, 4, 4, 4],
        ],
        winners=[2, 0, 2],
    )
    class_logits[2, 2] = 4.0  # lower score than query 0: the segment keeps the first query's score
    is_thing = torch.tensor([True, True, False])
    fusion = panoptic_fusion(class_logits, mask_logits, identity, is_thing)
    assert fusion.segment_ids[0].tolist() == [1, 1, 1, 2, 2, 1, 1, 1]
    assert fusion.segment_queries == [(0, 2), (1,)]
    assert fusion.segments[0].score == pytest.approx(float(class_logits[0].softmax(-1).max()))
    assert fusion.segments[0].score > float(class_logits[2].softmax(-1).max())
    assert [(s.label, s.is_thing) for s in fusion.segments] == [(2, False), (0, True)]
    expected = official.panoptic_postprocess(
        class_logits, mask_logits, 3, 2, {"object_mask_thr": 0.0, "filter_low_score": True}
    )
    assert torch.equal(to_official_encoding(fusion, 3), expected)


def test_query_below_the_iou_threshold_is_skipped() -> None:
    # query 1 is confident everywhere but wins only 2 of 10 pixels: 0.2 < 0.8, those pixels stay void
    class_logits, mask_logits = hand_made(
        [
            [5] * 8 + [-5, -5],
            [2] * 10,
        ],
        winners=[0, 1],
    )
    is_thing = torch.tensor([True, True, False])
    fusion = panoptic_fusion(class_logits, mask_logits, identity, is_thing)
    assert fusion.segment_ids[0].tolist() == [1] * 8 + [0, 0]
    assert fusion.segment_queries == [(0,)]
    loose = panoptic_fusion(class_logits, mask_logits, identity, is_thing, PanopticSettings(iou_thr=0.2))
    assert loose.segment_ids[0].tolist() == [1] * 8 + [2, 2]


def test_thing_painting_nothing_still_uses_an_instance_number() -> None:
    # query 0 (thing): confident on pixels 0-1, which query 1 takes; it wins pixels 2-3 at sigmoid 0.4. It passes the
    # area test (2 / 2), paints nothing after the filter, yet the official code gives query 2 instance number 3.
    class_logits, mask_logits = hand_made(
        [
            [3, 3, -0.4, -0.4, -5, -5],
            [5, 5, -5, -5, -5, -5],
            [-5, -5, -5, -5, 5, 5],
        ],
        winners=[0, 1, 0],
    )
    is_thing = torch.tensor([True, True, False])
    fusion = panoptic_fusion(class_logits, mask_logits, identity, is_thing)
    assert fusion.segment_ids[0].tolist() == [1, 1, 0, 0, 2, 2]
    assert fusion.segment_queries == [(1,), (2,)] and fusion.instance_numbers == [2, 3]
    expected = official.panoptic_postprocess(
        class_logits, mask_logits, 3, 2, {"object_mask_thr": 0.0, "filter_low_score": True}
    )
    assert torch.equal(to_official_encoding(fusion, 3), expected)
    assert set(expected[0].tolist()) == {1 + 2000, 0 + 3000, 3}


def test_no_kept_query_leaves_everything_void() -> None:
    class_logits, mask_logits = hand_made([[5, 5, 5], [5, -5, 5]], winners=[-1, -1])
    is_thing = torch.tensor([True, True, False])
    fusion = panoptic_fusion(class_logits, mask_logits, identity, is_thing)
    assert fusion.segments == [] and fusion.segment_queries == []
    assert fusion.segment_ids.shape == (1, 3) and not fusion.segment_ids.any()
    expected = official.panoptic_postprocess(class_logits, mask_logits, 3, 2, {"object_mask_thr": 0.0})
    assert torch.equal(to_official_encoding(fusion, 3), expected)
    assert (expected == 3).all()


def test_panoptic_rejects_a_wrong_is_thing() -> None:
    class_logits, mask_logits = hand_made([[1.0]], winners=[0])
    with pytest.raises(ValueError, match="is_thing"):
        panoptic_fusion(class_logits, mask_logits, identity, torch.tensor([True, False]))


# -------------------------------------------------------------------------------------------------------- instance


def detections(result: dict[str, torch.Tensor] | object) -> dict[tuple[int, int], tuple]:
    get = result.__getitem__ if isinstance(result, dict) else lambda name: getattr(result, name)
    return {
        (int(query), int(label)): (float(score), mask, box)
        for query, label, score, mask, box in zip(
            get("query_indices"),
            get("labels"),
            get("scores"),
            get("masks"),
            get("boxes" if not isinstance(result, dict) else "bboxes"),
        )
    }


@pytest.mark.parametrize("max_per_image", [100, 20])
def test_instance_inference_equals_the_official_detections(max_per_image: int) -> None:
    dropped_stuff = 0
    for seed in range(8):
        outputs = RandomOutputs(seed, num_classes=7)
        is_thing = torch.arange(7) < 4
        result = instance_inference(
            outputs.class_logits, outputs.mask_logits, outputs.resize, is_thing, max_per_image, chunk=4
        )
        expected = official.instance_postprocess(
            outputs.class_logits, outputs.official_masks(), 7, 4, {"max_per_image": max_per_image}
        )
        flat = outputs.class_logits.softmax(-1)[:, :-1].flatten().sort(descending=True).values
        assert flat[max_per_image - 1] > flat[max_per_image]  # no tie at the cut: the sets are defined
        ours, theirs = detections(result), detections(expected)
        assert ours.keys() == theirs.keys()
        for key, (score, mask, box) in ours.items():
            assert score == pytest.approx(theirs[key][0], rel=1e-6, abs=1e-9)
            assert torch.equal(mask, theirs[key][1]) and torch.equal(box, theirs[key][2])
        assert torch.all(result.scores[:-1] >= result.scores[1:])
        assert result.masks.dtype == torch.bool and result.masks.shape[1:] == outputs.original
        dropped_stuff += max_per_image - len(result.scores)
    assert dropped_stuff > 0


def test_instance_ties_keep_the_lowest_flat_indices_in_order() -> None:
    # every class probability equal and every mask the same: all (query, class) pairs tie
    class_logits = torch.zeros(4, 4)
    mask_logits = torch.tensor([[[2.0, -1.0, 3.0]]]).repeat(4, 1, 1)
    result = instance_inference(class_logits, mask_logits, identity, torch.ones(3, dtype=torch.bool), 5)
    assert result.query_indices.tolist() == [0, 0, 0, 1, 1]
    assert result.labels.tolist() == [0, 1, 2, 0, 1]
    # a better mask moves query 3's pairs first, still in class order; ties after them in flat order
    mask_logits[3] = torch.tensor([[9.0, -1.0, 9.0]])
    result = instance_inference(class_logits, mask_logits, identity, torch.ones(3, dtype=torch.bool), 12)
    assert result.query_indices.tolist() == [3, 3, 3, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert result.labels.tolist() == [0, 1, 2] * 4


def test_instance_drops_stuff_after_the_top_k() -> None:
    # best pairs: (q0, stuff 1), (q1, thing 0), (q0, thing 0): with k = 2 only one thing survives
    class_logits = torch.tensor([[2.0, 4.0, -9.0, -9.0], [3.5, -9.0, -9.0, -9.0]])
    mask_logits = torch.tensor([[[1.0, -1.0]], [[-1.0, 1.0]]])
    is_thing = torch.tensor([True, False, True])
    result = instance_inference(class_logits, mask_logits, identity, is_thing, max_per_image=2)
    assert result.query_indices.tolist() == [1] and result.labels.tolist() == [0]
    expected = official.instance_postprocess(class_logits, mask_logits, 3, 1, {"max_per_image": 2})
    assert expected["query_indices"].tolist() == [1]
    assert result.boxes.tolist() == [[1.0, 0.0, 2.0, 1.0]]


def test_instance_takes_every_pair_when_k_exceeds_queries_times_classes() -> None:
    outputs = RandomOutputs(seed=1, num_queries=6, num_classes=5)
    is_thing = torch.tensor([True, False, True, True, False])
    result = instance_inference(outputs.class_logits, outputs.mask_logits, outputs.resize, is_thing, 1000)
    assert len(result.scores) == 6 * 3
    assert set(zip(result.query_indices.tolist(), result.labels.tolist())) == {
        (query, label) for query in range(6) for label in (0, 2, 3)
    }
    with pytest.raises(RuntimeError):  # the official topk cannot
        official.instance_postprocess(outputs.class_logits, outputs.official_masks(), 5, 3, {"max_per_image": 1000})


# -------------------------------------------------------------------------------------------------------- semantic


def test_semantic_inference_equals_mask2formers_formula() -> None:
    outputs = RandomOutputs(seed=5)
    full = outputs.official_masks()
    expected = torch.einsum("qc,qhw->chw", F.softmax(outputs.class_logits, dim=-1)[..., :-1], full.sigmoid())
    scores = semantic_inference(outputs.class_logits, outputs.mask_logits, outputs.resize, chunk=5)
    torch.testing.assert_close(scores, expected)
    labels = semantic_labels(outputs.class_logits, outputs.mask_logits, outputs.resize)
    top2 = expected.topk(2, dim=0).values
    clear = (top2[0] - top2[1]) > 1e-4  # pixels where float summation order cannot flip the argmax
    assert clear.float().mean() > 0.99
    assert torch.equal(labels[clear], expected.argmax(0)[clear])
    assert labels.dtype == torch.int64 and labels.shape == outputs.original


# -------------------------------------------------------------------------------------------------- prompts, proposals


def test_prompt_masks_equal_the_official_interactive_masks() -> None:
    outputs = RandomOutputs(seed=7, num_queries=5)
    padded_logits = official.head_predict_upsample(outputs.mask_logits, outputs.padded)
    expected = official.inference_sam_masks(padded_logits, outputs.image, outputs.original)
    iou_logits = torch.randn(5, 1, generator=torch.Generator().manual_seed(1))
    result = prompt_mask_inference(outputs.mask_logits, iou_logits, outputs.resize, outputs.class_logits, chunk=2)
    assert torch.equal(result.masks, expected)
    torch.testing.assert_close(result.scores, iou_logits.sigmoid().flatten())
    assert torch.equal(result.labels, outputs.class_logits[:, :-1].argmax(-1))

    no_head = prompt_mask_inference(outputs.mask_logits, None, outputs.resize)
    probabilities = outputs.official_masks().sigmoid()
    mean_inside = torch.stack([p[m].mean() for p, m in zip(probabilities, expected)])
    torch.testing.assert_close(no_head.scores, mean_inside)
    assert no_head.labels is None


def test_prompt_labels_never_pick_void() -> None:
    class_logits = torch.tensor([[1.0, 2.0, 9.0]])  # void is the best column
    result = prompt_mask_inference(torch.zeros(1, 2, 2), None, identity, class_logits)
    assert result.labels.tolist() == [1]


@pytest.mark.parametrize("num_proposals", [4, 10])
def test_proposals_equal_the_official_ones_best_first(num_proposals: int) -> None:
    outputs = RandomOutputs(seed=11, num_queries=10)
    iou_logits = torch.randn(10, 1, generator=torch.Generator().manual_seed(2))
    result = proposal_inference(iou_logits, outputs.mask_logits, outputs.resize, num_proposals, chunk=3)
    expected = official.proposal_postprocess(iou_logits, outputs.official_masks(), {"num_proposals": num_proposals})
    assert torch.equal(result.masks, expected.flip(0))  # official: lowest score first
    assert result.query_indices.tolist() == iou_logits.flatten().argsort(descending=True)[:num_proposals].tolist()
    assert torch.all(result.scores[:-1] > result.scores[1:])
    more = proposal_inference(iou_logits, outputs.mask_logits, outputs.resize, num_proposals=50)
    assert len(more.scores) == 10


# ------------------------------------------------------------------------------------------------- test-time resize


def mmcv_rescale_size(old_size: tuple[int, int], scale: tuple[int, int]) -> tuple[int, int]:
    """mmcv.image.geometric.rescale_size with a tuple scale, written out: (w, h) in, (w, h) out."""
    w, h = old_size
    max_long_edge = max(scale)
    max_short_edge = min(scale)
    scale_factor = min(max_long_edge / max(h, w), max_short_edge / min(h, w))
    return int(w * float(scale_factor) + 0.5), int(h * float(scale_factor) + 0.5)


def test_test_time_size_follows_mmcv_rescale_size() -> None:
    assert ttr.test_time_size(480, 640, ttr.DATASET_TEST_SCALES["coco"]) == (800, 1067)
    assert ttr.test_time_size(512, 683, ttr.DATASET_TEST_SCALES["ade20k"]) == (640, 854)
    assert ttr.test_time_size(1024, 2048, ttr.DATASET_TEST_SCALES["cityscapes"]) == (1024, 2048)
    assert ttr.test_time_size(720, 1280, ttr.DATASET_TEST_SCALES["video"]) == (720, 1280)
    rng = np.random.default_rng(0)
    for height, width in rng.integers(1, 3000, size=(300, 2)).tolist():
        for scale in ttr.DATASET_TEST_SCALES.values():
            new_width, new_height = mmcv_rescale_size((width, height), scale)
            assert ttr.test_time_size(height, width, scale) == (new_height, new_width)


def test_parse_size_reads_the_three_forms() -> None:
    assert ttr.parse_size("1333x800") == (1333, 800)
    assert ttr.parse_size(" 800X1333 ") == (1333, 800)
    assert ttr.parse_size("native") is None
    short_only = ttr.parse_size("800")
    assert short_only is not None and ttr.test_time_size(100, 5000, short_only) == (800, 40000)


@pytest.mark.parametrize("text", ["", "abc", "0", "1333x0", "12x", "-800", "1333*800", "800.5"])
def test_parse_size_errors_name_the_option_and_the_forms(text: str) -> None:
    with pytest.raises(InputError) as error:
        ttr.parse_size(text)
    message = str(error.value)
    assert "--size" in message and "native" in message and "1333x800" in message and "\n" not in message


@pytest.mark.parametrize("text", ["1x1", "16", "99999x99999", "9000x800"])
def test_parse_size_refuses_sides_no_model_input_can_have(text: str) -> None:
    """1x1 gave an empty result and 99999x99999 a 90 GB allocation: both are refused before the model runs."""
    with pytest.raises(InputError, match=r"--size: sides must lie in \[32, 8192\] pixels"):
        ttr.parse_size(text)


def cv2_linear_reference(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """cv2 INTER_LINEAR's coordinate rule (half-pixel centres, clamped at the borders) in float64 numpy."""

    def taps(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        source = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
        low = np.floor(source).astype(int)
        weight = source - low
        weight[low < 0], low[low < 0] = 0.0, 0
        over = low >= in_size - 1
        weight[over], low[over] = 0.0, in_size - 1
        return low, np.minimum(low + 1, in_size - 1), weight

    y0, y1, wy = taps(size[0], image.shape[-2])
    x0, x1, wx = taps(size[1], image.shape[-1])
    values = image.astype(np.float64)
    rows = values[..., y0, :] * (1 - wy)[:, None] + values[..., y1, :] * wy[:, None]
    return rows[..., x0] * (1 - wx) + rows[..., x1] * wx


@pytest.mark.parametrize("size", [(37, 53), (11, 8), (24, 31)])
def test_resize_for_test_is_bilinear_like_cv2(size: tuple[int, int]) -> None:
    pixels = torch.randint(0, 256, (2, 3, 24, 31), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    resized = ttr.resize_for_test(pixels, size)
    assert resized.dtype == torch.float32 and resized.shape == (2, 3, *size)
    reference = cv2_linear_reference(pixels.numpy(), size)
    assert np.abs(resized.numpy() - reference).max() <= 0.5 + 1e-4  # rounded to whole values
    assert torch.equal(ttr.resize_for_test(pixels[1], size), resized[1])
    if size == (24, 31):
        assert torch.equal(resized, pixels.float())


def test_resize_for_test_takes_uint8_only() -> None:
    with pytest.raises(TypeError):
        ttr.resize_for_test(torch.zeros(3, 4, 4), (2, 2))
