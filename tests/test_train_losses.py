"""OMG-Seg's training losses: equal to the official head's computation (tests/official_loss_transcription.py) on the
same tensors and the same random points, for images, clips, prompt queries and auxiliary stages; gradients flow;
targets from samples; normalisation across ranks."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from official_loss_transcription import OfficialHead

from omg_core.errors import InputError
from omg_core.model.outputs import AuxiliaryPrediction, OMGOutputs
from omg_core.train.losses import CriterionConfig, SetCriterion
from omg_core.train.targets import SegmentationTargets, targets_from_sample
from omg_data.sample import Category, CategoryList, Sample

K = 5  # classes
STRIDE = 4


@dataclass
class AuxWithIou(AuxiliaryPrediction):
    """An auxiliary stage that also carries its objectness logits, as the official head scores every stage."""

    iou_logits: torch.Tensor | None = None


def _stages(batch: int, queries: int, mask_shape: tuple[int, ...], num_stages: int, seed: int
            ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Leaf tensors per stage: official-layout class scores (K classes + void + iou) and mask logits."""
    generator = torch.Generator().manual_seed(seed)
    scores = [torch.randn(batch, queries, K + 2, generator=generator).requires_grad_() for _ in range(num_stages)]
    masks = [(3 * torch.randn(batch, queries, *mask_shape, generator=generator)).requires_grad_()
             for _ in range(num_stages)]
    return scores, masks


def _outputs(scores: list[torch.Tensor], masks: list[torch.Tensor], num_learned: int, num_frames: int = 0,
             image_size: tuple[int, int] | None = None, aux_iou: bool = True) -> OMGOutputs:
    """Hand-made OMGOutputs: the last stage is final, the others auxiliary."""
    batch, queries = scores[-1].shape[:2]
    padded = (masks[-1].shape[-2] * STRIDE, masks[-1].shape[-1] * STRIDE)
    auxiliary = [AuxWithIou(s[..., :-1], m, s[..., -1:]) if aux_iou else AuxiliaryPrediction(s[..., :-1], m)
                 for s, m in zip(scores[:-1], masks[:-1])]
    return OMGOutputs(
        class_logits=scores[-1][..., :-1], mask_logits=masks[-1], query_embeddings=torch.zeros(batch, queries, 8),
        iou_logits=scores[-1][..., -1:], in_vocab_logits=scores[-1][..., :-1], num_learned_queries=num_learned,
        is_prompt_query=torch.arange(queries) >= num_learned, image_size=image_size or padded, padded_size=padded,
        num_frames=num_frames, auxiliary=auxiliary,
    )


def _targets(counts: list[int], mask_shape: tuple[int, ...], seed: int, prompts: bool = False
             ) -> list[SegmentationTargets]:
    generator = torch.Generator().manual_seed(seed)
    targets = []
    for n in counts:
        labels = torch.randint(0, K, (n,), generator=generator)
        masks = torch.rand(n, *mask_shape, generator=generator) > 0.6
        targets.append(SegmentationTargets(labels, masks, torch.arange(n) if prompts else None))
    return targets


def _official_name(ours: str) -> str:
    """'loss_mask.d2' -> 'd2.loss_mask' (the official key); the prompt infix dropped."""
    name = ours.replace("_prompt", "")
    if "." in name:
        base, stage = name.split(".")
        return f"{stage}.{base}"
    return name


def _assert_equal_to_official(ours: dict[str, torch.Tensor], official: dict[str, torch.Tensor],
                              with_iou: bool = True) -> None:
    """Our terms against the official dict; the official loss_cls includes the objectness (iou) loss."""
    compared = set()
    for name, value in ours.items():
        if "loss_iou" in name:
            continue
        expected = official[_official_name(name)].reshape(())
        if "_cls" in name and with_iou and name.replace("cls", "iou") in ours:
            value = value + ours[name.replace("cls", "iou")]
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-5, msg=name)
        compared.add(_official_name(name))
    assert compared == set(official)


@pytest.mark.parametrize("seed", [0, 1])
def test_image_losses_with_auxiliary_stages_equal_the_official_head(seed: int) -> None:
    scores, masks = _stages(2, 7, (6, 8), num_stages=3, seed=seed)
    targets = _targets([3, 5], (24, 32), seed=seed)
    ours = SetCriterion()(_outputs(scores, masks, num_learned=7), targets, torch.Generator().manual_seed(seed))
    official = OfficialHead(K, 7).loss(scores, masks, [dict(labels=t.labels, masks=t.masks) for t in targets],
                                       generator=torch.Generator().manual_seed(seed))
    assert {"loss_mask.d0", "loss_dice.d1", "loss_cls.d1", "loss_iou.d0", "loss_iou"} <= set(ours.terms)
    _assert_equal_to_official(ours.terms, official)
    torch.testing.assert_close(ours.total, torch.stack(list(ours.terms.values())).sum())


def test_clip_losses_equal_the_official_head() -> None:
    scores, masks = _stages(2, 6, (3, 5, 6), num_stages=2, seed=4)  # T = 3 frames of 5 x 6
    targets = _targets([2, 4], (3, 20, 24), seed=4)
    ours = SetCriterion()(_outputs(scores, masks, num_learned=6, num_frames=3), targets,
                          torch.Generator().manual_seed(9))
    official = OfficialHead(K, 6).loss(scores, masks, [dict(labels=t.labels, masks=t.masks) for t in targets],
                                       is_video=True, generator=torch.Generator().manual_seed(9))
    _assert_equal_to_official(ours.terms, official)


def test_prompt_queries_equal_the_official_sam_branch() -> None:
    # one sample per GPU, as the official training runs; class-agnostic prompt (-1) skipped in the class loss
    scores, masks = _stages(1, 4, (6, 6), num_stages=3, seed=2)
    targets = _targets([4], (24, 24), seed=2, prompts=True)
    targets[0].labels[1] = -1
    ours = SetCriterion()(_outputs(scores, masks, num_learned=0), targets, torch.Generator().manual_seed(1))
    official = OfficialHead(K, 300).loss(scores, masks, [dict(labels=t.labels.clone(), masks=t.masks)
                                                         for t in targets],
                                         is_sam=True, generator=torch.Generator().manual_seed(1))
    assert "loss_iou" not in ours.terms and "loss_prompt_cls.d1" in ours.terms  # the official iou loss is x 0
    _assert_equal_to_official(ours.terms, official)


def test_prompt_masks_are_normalised_by_all_prompts_of_the_batch() -> None:
    """The deliberate differences at more than one sample per GPU (equal at the official one): the official head
    divides prompt masks by the prompts of one sample (mask2former_vid.py:601) and sums the prompt class loss over
    the batch; here masks are divided by all the batch's prompts and the class sum is averaged over samples, so a
    batch of 2b on one rank trains as two ranks of b."""
    scores, masks = _stages(2, 3, (6, 6), num_stages=1, seed=5)
    targets = _targets([3, 3], (24, 24), seed=5, prompts=True)
    ours = SetCriterion()(_outputs(scores, masks, num_learned=0), targets, torch.Generator().manual_seed(0))
    official = OfficialHead(K, 300).loss(scores, masks, [dict(labels=t.labels, masks=t.masks) for t in targets],
                                         is_sam=True, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ours.terms["loss_prompt_cls"] * 2, official["loss_cls"].reshape(()))
    for name in ("mask", "dice"):
        torch.testing.assert_close(ours.terms[f"loss_prompt_{name}"] * 2, official[f"loss_{name}"].reshape(()))


def test_padding_prompts_get_no_loss() -> None:
    # all candidates kept (no random fill): dropping the last prompt leaves the others' points unchanged
    config = CriterionConfig(num_points=400, oversample_ratio=1.0, importance_sample_ratio=1.0)
    scores, masks = _stages(1, 3, (6, 6), num_stages=1, seed=6)
    full = _targets([3], (24, 24), seed=6, prompts=True)[0]
    padded = SegmentationTargets(full.labels, full.masks, torch.tensor([0, 1, -1]))
    with_padding = SetCriterion(config)(_outputs(scores, masks, 0), [padded], torch.Generator().manual_seed(0))
    two = SegmentationTargets(full.labels[:2], full.masks[:2], torch.tensor([0, 1]))
    without = SetCriterion(config)(_outputs([scores[0][:, :2]], [masks[0][:, :2]], 0), [two],
                                   torch.Generator().manual_seed(0))
    for name, value in without.terms.items():
        torch.testing.assert_close(with_padding.terms[name], value, msg=name)
    # prompt_valid False does the same
    outputs = _outputs(scores, masks, 0)
    outputs.prompt_valid = torch.tensor([[True, True, False]])
    invalid = SetCriterion(config)(outputs, [full], torch.Generator().manual_seed(0))
    for name, value in without.terms.items():
        torch.testing.assert_close(invalid.terms[name], value, msg=name)


def test_learned_and_prompt_queries_together() -> None:
    scores, masks = _stages(1, 6, (6, 6), num_stages=1, seed=7)  # 4 learned + 2 prompt queries
    targets = _targets([3], (24, 24), seed=7)
    targets[0].prompt_index = torch.tensor([2, 0])
    both = SetCriterion()(_outputs(scores, masks, num_learned=4), targets, torch.Generator().manual_seed(3))
    learned_only = SetCriterion()(_outputs([scores[0][:, :4]], [masks[0][:, :4]], num_learned=4),
                                  [SegmentationTargets(targets[0].labels, targets[0].masks)],
                                  torch.Generator().manual_seed(3))
    for name, value in learned_only.terms.items():  # learned queries draw first, so their points are the same
        torch.testing.assert_close(both.terms[name], value, msg=name)
    assert {"loss_prompt_cls", "loss_prompt_mask", "loss_prompt_dice"} <= set(both.terms)
    # prompt query 0 is supervised by target 2: its class loss is 2 x CE against label 2's class
    logits = scores[0][0, 4:, :-1]
    expected = 2.0 * torch.nn.functional.cross_entropy(logits, targets[0].labels[[2, 0]], reduction="sum")
    torch.testing.assert_close(both.terms["loss_prompt_cls"], expected)


def test_a_sample_without_targets() -> None:
    scores, masks = _stages(1, 5, (6, 6), num_stages=2, seed=8)
    targets = _targets([0], (24, 24), seed=8)
    ours = SetCriterion()(_outputs(scores, masks, num_learned=5), targets, torch.Generator().manual_seed(0))
    official = OfficialHead(K, 5).loss(scores, masks, [dict(labels=t.labels, masks=t.masks) for t in targets],
                                       generator=torch.Generator().manual_seed(0))
    _assert_equal_to_official(ours.terms, official)
    assert float(ours.terms["loss_mask"].detach()) == 0.0 and float(ours.terms["loss_cls"].detach()) > 0
    ours.total.backward()
    assert masks[-1].grad is not None and torch.all(masks[-1].grad == 0)


def test_auxiliary_stages_without_iou_logits_skip_the_objectness_loss() -> None:
    scores, masks = _stages(1, 5, (6, 6), num_stages=2, seed=9)
    targets = _targets([2], (24, 24), seed=9)
    with_iou = SetCriterion()(_outputs(scores, masks, 5), targets, torch.Generator().manual_seed(0))
    without = SetCriterion()(_outputs(scores, masks, 5, aux_iou=False), targets, torch.Generator().manual_seed(0))
    assert "loss_iou.d0" in with_iou.terms and "loss_iou.d0" not in without.terms and "loss_iou" in without.terms
    for name, value in without.terms.items():
        torch.testing.assert_close(with_iou.terms[name], value, msg=name)


@pytest.mark.parametrize("kind", ["image", "clip", "prompt"])
def test_gradients_flow_to_every_input(kind: str) -> None:
    mask_shape = (2, 5, 5) if kind == "clip" else (5, 5)
    scores, masks = _stages(2, 4, mask_shape, num_stages=2, seed=11)
    target_shape = (2, 20, 20) if kind == "clip" else (20, 20)
    targets = _targets([2, 1], target_shape, seed=11, prompts=kind == "prompt")
    if kind == "prompt":
        for t in targets:
            t.prompt_index = torch.tensor([0, -1, t.num_targets - 1, -1])
    learned = 0 if kind == "prompt" else 4
    losses = SetCriterion(CriterionConfig(num_points=200))(
        _outputs(scores, masks, learned, num_frames=2 if kind == "clip" else 0), targets)
    losses.total.backward()
    for tensor in scores + masks:
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all() and tensor.grad.abs().sum() > 0
    assert torch.isfinite(losses.total)


def test_targets_at_the_image_size_are_padded_like_the_input() -> None:
    scores, masks = _stages(1, 4, (6, 8), num_stages=1, seed=12)  # padded input 24 x 32
    small = _targets([2], (21, 30), seed=12)[0]  # the image before padding
    padded = SegmentationTargets(small.labels, torch.nn.functional.pad(small.masks, (0, 2, 0, 3)))
    outputs = _outputs(scores, masks, 4, image_size=(21, 30))
    a = SetCriterion()(outputs, [small], torch.Generator().manual_seed(0))
    b = SetCriterion()(outputs, [padded], torch.Generator().manual_seed(0))
    for name in a.terms:
        torch.testing.assert_close(a.terms[name], b.terms[name], msg=name)
    with pytest.raises(InputError, match="target masks are 10x10"):
        SetCriterion()(outputs, _targets([1], (10, 10), seed=0))


def test_input_errors_name_the_problem() -> None:
    scores, masks = _stages(1, 3, (6, 6), num_stages=1, seed=13)
    criterion = SetCriterion(CriterionConfig(num_points=50))
    with pytest.raises(InputError, match="4 targets but the model has only 3 learned queries"):
        criterion(_outputs(scores, masks, 3), _targets([4], (24, 24), seed=0))
    with pytest.raises(InputError, match="target labels go up to"):
        criterion(_outputs(scores, masks, 3), [SegmentationTargets(torch.tensor([K]), torch.ones(1, 24, 24).bool())])
    with pytest.raises(InputError, match="2 prompt queries but targets.prompt_index has none"):
        criterion(_outputs(scores, masks, 1), _targets([1], (24, 24), seed=0))
    with pytest.raises(InputError, match="no prompt queries"):
        criterion(_outputs(scores, masks, 3), _targets([1], (24, 24), seed=0, prompts=True))
    with pytest.raises(InputError, match="do not fit"):
        criterion(_outputs(scores, masks, 3), _targets([1], (2, 24, 24), seed=0))
    with pytest.raises(InputError, match="must be bool"):
        criterion(_outputs(scores, masks, 3), [SegmentationTargets(torch.tensor([0]), torch.ones(1, 24, 24))])


def test_targets_from_a_sample_drop_crowd_and_empty_segments() -> None:
    categories = CategoryList([Category(1, "cat", True), Category(7, "grass", False), Category(9, "ufo", True)])
    masks = torch.zeros(4, 1, 6, 6, dtype=torch.bool)
    masks[0, 0, :2], masks[1, 0, 2:], masks[2, 0, 0, 0] = True, True, True  # segment 3 has no pixel
    sample = Sample(
        frames=torch.zeros(1, 3, 6, 6, dtype=torch.uint8), masks=masks, class_ids=torch.tensor([7, 1, 1, 9]),
        is_thing=torch.tensor([False, True, True, True]), instance_ids=torch.tensor([1, 2, 3, 4]),
        is_crowd=torch.tensor([False, False, True, False]), ignore=torch.zeros(1, 6, 6, dtype=torch.bool),
        categories=categories,
    )
    targets = targets_from_sample(sample, {1: 0, 7: 1}, with_prompts=True)
    assert targets.labels.tolist() == [1, 0] and targets.segment_index.tolist() == [0, 1]
    assert targets.masks.shape == (2, 6, 6) and torch.equal(targets.masks[1], masks[1, 0])
    assert targets.prompt_index.tolist() == [0, 1]
    sample.masks[3, 0, 5, 5] = True  # now the ufo has a pixel but no class index
    with pytest.raises(InputError, match=r"category ids \[9\]"):
        targets_from_sample(sample, {1: 0, 7: 1})
    assert targets_from_sample(sample, {1: 0, 7: 1}, drop_unmapped=True).num_targets == 2
    clip = Sample(frames=torch.zeros(2, 3, 6, 6, dtype=torch.uint8), masks=masks.expand(-1, 2, -1, -1).clone(),
                  class_ids=sample.class_ids, is_thing=sample.is_thing, instance_ids=sample.instance_ids,
                  is_crowd=sample.is_crowd, ignore=torch.zeros(2, 6, 6, dtype=torch.bool), categories=categories,
                  is_video=True)
    assert targets_from_sample(clip, {1: 0, 7: 1}, drop_unmapped=True).masks.shape == (2, 2, 6, 6)


# ---- two gloo ranks: the mask and class normalisers are averaged over ranks, as reduce_mean does ----


def _rank_case(rank: int) -> tuple[list[torch.Tensor], list[torch.Tensor], list[SegmentationTargets]]:
    scores, masks = _stages(1, 6, (6, 6), num_stages=1, seed=20 + rank)
    return scores, masks, _targets([2 + 2 * rank], (24, 24), seed=20 + rank)  # 2 targets on rank 0, 4 on rank 1


def _losses(rank: int) -> tuple[dict[str, float], dict[str, float]]:
    scores, masks, targets = _rank_case(rank)
    ours = SetCriterion()(_outputs(scores, masks, 6), targets, torch.Generator().manual_seed(rank))
    official = OfficialHead(K, 6).loss(scores, masks, [dict(labels=t.labels, masks=t.masks) for t in targets],
                                       generator=torch.Generator().manual_seed(rank))
    return ({k: float(v.detach()) for k, v in ours.terms.items()},
            {k: float(v.detach().reshape(())) for k, v in official.items()})


def _rank_worker(rank: int, world_size: int, directory: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{directory}/rendezvous", rank=rank, world_size=world_size)
    try:
        result = _losses(rank)
    finally:
        dist.destroy_process_group()
    Path(directory, f"rank{rank}.pkl").write_bytes(pickle.dumps(result))


def test_normalisers_are_averaged_over_ranks(tmp_path: Path) -> None:
    mp.spawn(_rank_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        ours, official = pickle.loads((tmp_path / f"rank{rank}.pkl").read_bytes())
        assert ours["loss_mask"] == pytest.approx(official["loss_mask"], rel=1e-5)
        assert ours["loss_dice"] == pytest.approx(official["loss_dice"], rel=1e-5)
        assert ours["loss_cls"] + ours["loss_iou"] == pytest.approx(official["loss_cls"], rel=1e-5)
        alone, _ = _losses(rank)  # one process: divided by this rank's own 2 or 4 masks instead of their mean 3
        assert ours["loss_dice"] == pytest.approx(alone["loss_dice"] * (2 + 2 * rank) / 3, rel=1e-5)
