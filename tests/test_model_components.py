"""Backbone freezing, decoder stages, masked-attention rule, OV ensemble, mask pooling, text cache."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from omg_core.model import OMGInputs, OMGModel, create_model
from omg_core.model.box_query_encoder import BoxQueryPromptEncoder, box_sine_encoding
from omg_core.model.ov_classifier import geometric_ensemble, mask_pool
from omg_core.model.position_encoding import SinePositionEncoding
from omg_core.model.prompt_templates import VILD_TEMPLATES, expand_class_name, split_synonyms
from omg_core.model.transformer_decoder import (
    attention_mask_from_masks,
    multi_head_attention,
    prompt_self_attention_mask,
)

CLASSES = ["cat", "dog"]


@pytest.fixture(scope="module")
def model() -> OMGModel:
    torch.manual_seed(0)
    return create_model("omg-tiny")


def test_backbone_is_frozen_and_stays_eval(model: OMGModel) -> None:
    model.train()
    try:
        assert model.training and model.pixel_decoder.training
        assert not model.backbone.training
        assert not any(module.training for module in model.backbone.modules())
        assert not any(parameter.requires_grad for parameter in model.backbone.parameters())
        outputs = model(OMGInputs(images=torch.rand(1, 3, 64, 64) * 255, class_names=CLASSES))
        loss = outputs.mask_logits.sigmoid().mean() + outputs.class_logits.logsumexp(-1).mean()
        loss = loss + sum(aux.mask_logits.mean() for aux in outputs.auxiliary)
        loss.backward()
        assert all(parameter.grad is None for parameter in model.backbone.parameters())
        assert model.pixel_decoder.mask_features.weight.grad is not None
        assert model.transformer_decoder.layers[0].cross_attn.in_proj_weight.grad is not None
        assert model.ov_classifier.query_proj[0].weight.grad is not None
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


def test_backbone_feature_strides(model: OMGModel) -> None:
    features = model.backbone(torch.zeros(1, 3, 64, 96))
    assert [tuple(f.shape) for f in features.values()] == [
        (1, 40, 16, 24), (1, 80, 8, 12), (1, 160, 4, 6), (1, 320, 2, 3)
    ]
    assert not features["res5"].requires_grad


@torch.no_grad()
def test_one_prediction_per_decoder_stage() -> None:
    for num_layers in (1, 4):
        model = create_model("omg-tiny", transformer_decoder={"num_layers": num_layers})
        assert model.transformer_decoder.num_layers == num_layers
        outputs = model(OMGInputs(images=torch.rand(1, 3, 64, 64) * 255, class_names=CLASSES))
        # The initial prediction plus one per layer; the last one is the main output.
        assert len(outputs.auxiliary) == num_layers
        shapes = {tuple(aux.mask_logits.shape) for aux in outputs.auxiliary}
        assert shapes == {tuple(outputs.mask_logits.shape)}
        assert not torch.allclose(outputs.auxiliary[0].mask_logits, outputs.mask_logits)


def test_masked_attention_unmasks_rows_that_would_block_everything() -> None:
    logits = torch.tensor([
        [[-1.0, -2.0], [-3.0, -0.5]],  # query 0: empty mask -> row fully blocked -> unblocked instead
        [[-1.0, 4.0], [-2.0, -1.0]],  # query 1: only pixel (0, 1) is foreground
        [[0.0, 1.0], [2.0, 3.0]],  # query 2: logit 0 is sigmoid 0.5, which is not < 0.5 -> attend
    ])[None, :, None]  # B=1 x Q=3 x T=1 x 2 x 2
    blocked = attention_mask_from_masks(logits, (2, 2))
    assert blocked.shape == (1, 3, 4)
    expected = torch.tensor([
        [False, False, False, False],
        [True, False, True, True],
        [False, False, False, False],
    ])
    assert torch.equal(blocked[0], expected)


def test_masked_attention_over_frames_uses_the_whole_tube() -> None:
    logits = torch.full((1, 1, 2, 2, 2), -5.0)
    logits[0, 0, 1, 0, 0] = 5.0  # foreground only in frame 2
    blocked = attention_mask_from_masks(logits, (2, 2))
    assert blocked.shape == (1, 1, 8)
    assert blocked[0, 0].tolist() == [True] * 4 + [False, True, True, True]


def test_prompt_self_attention_mask() -> None:
    blocked = prompt_self_attention_mask(2, 2, torch.device("cpu"))
    assert blocked.tolist() == [
        [False, False, True, True],
        [False, False, True, True],
        [True, True, False, True],
        [True, True, True, False],
    ]


def test_geometric_ensemble_on_hand_numbers() -> None:
    # Trained classifier: p(cat, dog, void) = 0.6, 0.2, 0.2 -> over classes 0.75 / 0.25, void 0.2.
    in_vocab = torch.log(torch.tensor([[0.6, 0.2, 0.2]]))
    out_vocab = torch.log(torch.tensor([[0.5, 0.5]]))  # CLIP: 0.5 / 0.5
    seen = torch.tensor([True, False])  # cat seen (a = 0.4), dog unseen (b = 0.8)
    result = geometric_ensemble(in_vocab, out_vocab, seen, alpha=0.4, beta=0.8).exp()[0]
    cat = 0.75 ** 0.6 * 0.5 ** 0.4
    dog = 0.25 ** 0.2 * 0.5 ** 0.8
    expected = [cat / (cat + dog) * 0.8, dog / (cat + dog) * 0.8, 0.2]
    assert result.tolist() == pytest.approx(expected, abs=1e-6)

    # A query whose mask is empty at CLIP resolution keeps the trained classifier only.
    invalid = geometric_ensemble(in_vocab, out_vocab, seen, valid_queries=torch.tensor([False])).exp()[0]
    assert invalid.tolist() == pytest.approx([0.6, 0.2, 0.2], abs=1e-6)

    with pytest.raises(ValueError, match="one flag per class"):
        geometric_ensemble(in_vocab, out_vocab, torch.tensor([True]))


def test_geometric_ensemble_lets_the_clip_vote_on_some_classes_only() -> None:
    # classes: cat (thing, seen), dog (thing, unseen), grass (stuff, seen); the CLIP votes on the things only
    in_vocab = torch.log(torch.tensor([[0.4, 0.2, 0.2, 0.2]]))  # over classes 0.5 / 0.25 / 0.25, void 0.2
    out_vocab = torch.log(torch.tensor([[0.2, 0.2, 0.6]]))  # its grass opinion must not count
    seen, things = torch.tensor([True, False, True]), torch.tensor([True, True, False])
    result = geometric_ensemble(in_vocab, out_vocab, seen, alpha=0.4, beta=0.8, clip_classes=things).exp()[0]
    clip_over_things = [0.5, 0.5]  # softmax over the voters only
    cat = 0.5 ** 0.6 * clip_over_things[0] ** 0.4
    dog = 0.25 ** 0.2 * clip_over_things[1] ** 0.8
    grass = 0.25  # exponent 0: the trained classifier's probability
    total = cat + dog + grass
    assert result.tolist() == pytest.approx([cat / total * 0.8, dog / total * 0.8, grass / total * 0.8, 0.2],
                                            abs=1e-6)
    with pytest.raises(ValueError, match="clip_classes"):
        geometric_ensemble(in_vocab, out_vocab, seen, clip_classes=torch.tensor([True]))


def test_mask_pool_averages_inside_masks_and_empty_masks_give_zero() -> None:
    features = torch.arange(8.0).view(1, 2, 2, 2)  # channel 0: 0..3, channel 1: 4..7
    masks = torch.tensor([[[1.0, -1.0], [1.0, -1.0]], [[-1.0, -1.0], [-1.0, -1.0]]])[None]
    pooled = mask_pool(features, masks)
    assert pooled[0, 0].tolist() == pytest.approx([1.0, 5.0])  # mean of pixels (0,0) and (1,0)
    assert pooled[0, 1].tolist() == [0.0, 0.0]


def test_void_embedding_starts_as_constant_zero_logit(model: OMGModel) -> None:
    logits = model.ov_classifier.logits(torch.randn(3, model.clip_dim), F.normalize(torch.randn(2, model.clip_dim)))
    assert logits.shape == (3, 3)
    assert torch.equal(logits[:, -1], torch.zeros(3))
    assert float(model.ov_classifier.logit_scale) == pytest.approx(4.6052)  # OMG-Seg's constant, not learned


def test_position_encoding_matches_detr_formula() -> None:
    encoding = SinePositionEncoding(4, normalize=True)(1, 2, 3)  # 1 x 8 x 2 x 3
    y_positions = torch.tensor([1.0, 2.0]) / (2 + 1e-6) * 2 * math.pi
    x_positions = torch.tensor([1.0, 2.0, 3.0]) / (3 + 1e-6) * 2 * math.pi
    frequencies = torch.tensor([1.0, 1.0, 100.0, 100.0])  # 10000 ** (2 * (i // 2) / 4)
    for row in range(2):
        for col in range(3):
            y = y_positions[row] / frequencies
            x = x_positions[col] / frequencies
            expected = torch.stack([y[0].sin(), y[1].cos(), y[2].sin(), y[3].cos(),
                                    x[0].sin(), x[1].cos(), x[2].sin(), x[3].cos()])
            torch.testing.assert_close(encoding[0, :, row, col], expected)


def test_text_embeddings_average_templates_and_are_cached(model: OMGModel) -> None:
    backbone = model.backbone
    backbone.clear_vocabulary_cache()
    calls = []
    original = backbone.encode_texts

    def counting(texts: list[str]) -> torch.Tensor:
        calls.append(len(texts))
        return original(texts)

    backbone.encode_texts = counting
    try:
        first = model.encode_vocabulary_prototypes(["cat", "Dog/Puppy"])
        again = model.encode_vocabulary_prototypes(["cat", "Dog/Puppy"])
        assert again is first
        assert calls == [3 * len(VILD_TEMPLATES)]  # every template of the 3 synonyms in one batch, once
        other = model.encode_vocabulary(["cat", "Dog/Puppy"])
        assert calls == [3 * len(VILD_TEMPLATES)]  # the K x D form reuses the cached prototypes
    finally:
        del backbone.encode_texts

    def template_mean(name: str) -> torch.Tensor:
        return F.normalize(original([t.format(name) for t in VILD_TEMPLATES]).mean(0), dim=-1)

    assert first.shape == (2, 2, model.clip_dim)
    torch.testing.assert_close(first.norm(dim=-1), torch.ones(2, 2))
    torch.testing.assert_close(first[0, 0], template_mean("cat"))
    torch.testing.assert_close(first[0, 1], first[0, 0])  # padding repeats the first synonym
    torch.testing.assert_close(first[1, 0], template_mean("dog"))
    torch.testing.assert_close(first[1, 1], template_mean("puppy"))
    torch.testing.assert_close(other[1], F.normalize(template_mean("dog") + template_mean("puppy"), dim=-1))
    torch.testing.assert_close(other[0], template_mean("cat"))


def test_class_name_synonyms() -> None:
    assert split_synonyms("Person, man") == ["person", "man"]
    assert split_synonyms("wall_or_fence/door_stuff") == ["wall", "fence", "door stuff"]
    assert expand_class_name("a, b")[1][0] == VILD_TEMPLATES[0].format("b")
    with pytest.raises(ValueError, match="empty"):
        split_synonyms(" , ")


def test_prototype_logits_take_the_best_synonym(model: OMGModel) -> None:
    text = F.normalize(torch.randn(2, 3, model.clip_dim), dim=-1)
    query = torch.randn(4, model.clip_dim)
    logits = model.ov_classifier.logits(query, text)
    scale = model.ov_classifier.logit_scale.exp()
    expected = (F.normalize(query, dim=-1) @ text.flatten(0, 1).T).view(4, 2, 3).amax(-1) * scale
    torch.testing.assert_close(logits[:, :2], expected)
    with pytest.raises(ValueError, match="empty"):
        model.encode_vocabulary([])


def test_box_sine_encoding_order_and_values() -> None:
    box = torch.tensor([[0.5, 0.25, 0.1, 0.2]])  # cx, cy, w, h
    encoding = box_sine_encoding(box, num_feats=2)  # 1 x 8: y, x, w, h blocks of (sin, cos)
    angles = box[0] * 2 * math.pi  # frequencies 10000 ** (2 * (i // 2) / 2) = 1 for i in (0, 1)
    expected = torch.stack([angles[1].sin(), angles[1].cos(), angles[0].sin(), angles[0].cos(),
                            angles[2].sin(), angles[2].cos(), angles[3].sin(), angles[3].cos()])
    torch.testing.assert_close(encoding[0], expected)


def test_box_query_prompts_follow_omg_seg() -> None:
    torch.manual_seed(0)
    encoder = BoxQueryPromptEncoder(8)
    # A click becomes the 6-pixel box around it, normalised by the image size.
    click = encoder((100, 200), points=torch.tensor([[[[50.0, 20.0], [0.0, 0.0]]]]),
                    point_labels=torch.tensor([[[1, -1]]]))
    box = encoder((100, 200), boxes=torch.tensor([[[47.0, 17.0, 53.0, 23.0]]]))
    torch.testing.assert_close(click[1], box[1])
    torch.testing.assert_close(click[0], box[0])
    expected_pos = encoder.pos_linear(box_sine_encoding(torch.tensor([[[0.25, 0.2, 0.03, 0.06]]]), 4))
    torch.testing.assert_close(box[1], expected_pos)
    torch.testing.assert_close(box[0][0, 0], encoder.pb_embedding.weight[0] + encoder.mask_tokens.weight[0])
    with pytest.raises(ValueError, match="negative clicks"):
        encoder((100, 200), points=torch.zeros(1, 1, 2, 2), point_labels=torch.tensor([[[1, 0]]]))
    with pytest.raises(ValueError, match="exactly one positive click"):
        encoder((100, 200), points=torch.zeros(1, 1, 2, 2), point_labels=torch.tensor([[[1, 1]]]))


@torch.no_grad()
def test_official_prompt_encoding_model_forward() -> None:
    model = create_model("omg-tiny", prompt_encoding="official")
    outputs = model(OMGInputs(images=torch.rand(1, 3, 64, 64) * 255, class_names=CLASSES,
                              boxes=torch.tensor([[[4.0, 4.0, 40.0, 50.0], [10.0, 10.0, 20.0, 20.0]]]),
                              use_learned_queries=False))
    assert outputs.mask_logits.shape == (1, 2, 16, 16) and outputs.is_prompt_query.all()


def test_multi_head_attention_matches_torch_with_per_head_masks() -> None:
    torch.manual_seed(0)
    attention = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    query, key, value = torch.randn(2, 5, 16), torch.randn(2, 7, 16), torch.randn(2, 7, 16)
    blocked = torch.rand(2, 5, 7) > 0.5
    blocked[:, :, 0] = False  # every row keeps one key
    ours = multi_head_attention(attention, query, key, value, blocked)
    reference = attention(query, key, value, attn_mask=blocked.repeat_interleave(4, dim=0), need_weights=False)[0]
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    square = prompt_self_attention_mask(3, 2, torch.device("cpu"))
    ours = multi_head_attention(attention, query, query, query, square)
    reference = attention(query, query, query, attn_mask=square, need_weights=False)[0]
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(multi_head_attention(attention, query, key, value),
                               attention(query, key, value, need_weights=False)[0], rtol=1e-5, atol=1e-5)


def test_ensemble_of_an_empty_mask_stays_finite_when_clip_underflows() -> None:
    from omg_core.model.ov_classifier import geometric_ensemble

    in_vocab = torch.tensor([[1.0, 0.0, 0.5]])
    clip = torch.tensor([[0.0, 200.0]])  # softmax underflows to exactly 0 for class 0
    out = geometric_ensemble(in_vocab, clip, torch.tensor([True, False]), valid_queries=torch.tensor([False]))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.log(in_vocab.softmax(-1) + 1e-8))  # exponent 0: the trained classifier


def test_sam_prompt_content_is_the_mean_feature_under_positive_clicks_and_box_centre() -> None:
    from omg_core.model.prompt_encoder import features_at_prompts

    # 2 x 3 cells at stride 4 (an 8 x 12 padded image); each cell's feature is (its index, 1)
    cells = torch.arange(6, dtype=torch.float32).view(1, 1, 2, 3)
    features = torch.cat([cells, torch.ones_like(cells)], dim=1)  # 1 x 2 x 2 x 3
    points = torch.tensor([[[[1.5, 1.5], [9.5, 5.5]], [[5.5, 5.5], [0.0, 0.0]]]])  # cell centres (0,0), (2,1), (1,1)
    labels = torch.tensor([[[1, 1], [1, -1]]])  # the second prompt's second click is padding
    content = features_at_prompts(features, points, labels, None)
    torch.testing.assert_close(content, torch.tensor([[[2.5, 1.0], [4.0, 1.0]]]))
    boxes = torch.tensor([[[0.0, 0.0, 3.0, 3.0], [8.0, 0.0, 11.0, 3.0]]])  # centres in cells 0 and 2
    torch.testing.assert_close(features_at_prompts(features, None, None, boxes), torch.tensor([[[0.0, 1.0], [2.0, 1.0]]]))
    negative_only = features_at_prompts(features, points[:, :1, :1], torch.tensor([[[0]]]), None)
    assert torch.equal(negative_only, torch.zeros(1, 1, 2))  # no positive click: no content from the features
