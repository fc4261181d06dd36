"""OMGModel forward on images, clips and prompts (omg-tiny, random weights, offline)."""

from __future__ import annotations

import pytest
import torch

from omg_core.model import OMGInputs, OMGModel, create_model, get_model_config, list_models

CLASSES = ["cat", "dog", "person, man"]


@pytest.fixture(scope="module")
def model() -> OMGModel:
    torch.manual_seed(0)
    return create_model("omg-tiny")


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(2, 3, 64, 96) * 255


@torch.no_grad()
def test_image_forward_shapes(model: OMGModel, images: torch.Tensor) -> None:
    outputs = model(OMGInputs(images=images, class_names=CLASSES))
    queries = model.config.transformer_decoder.num_queries
    channels = model.config.pixel_decoder.feat_channels
    assert outputs.class_logits.shape == (2, queries, len(CLASSES) + 1)
    assert outputs.mask_logits.shape == (2, queries, 64 // 4, 96 // 4)
    assert outputs.query_embeddings.shape == (2, queries, channels)
    assert outputs.iou_logits.shape == (2, queries, 1)
    assert outputs.num_frames == 0 and outputs.image_size == (64, 96) and outputs.padded_size == (64, 96)
    assert not outputs.is_prompt_query.any() and outputs.prompt_valid is None
    assert outputs.clip_logits is None
    assert torch.equal(outputs.class_logits, outputs.in_vocab_logits)
    assert torch.isfinite(outputs.class_logits).all() and torch.isfinite(outputs.mask_logits).all()


@torch.no_grad()
def test_odd_sizes_are_padded_to_32(model: OMGModel) -> None:
    outputs = model(OMGInputs(images=torch.rand(1, 3, 50, 70) * 255, class_names=CLASSES))
    assert outputs.image_size == (50, 70) and outputs.padded_size == (64, 96)
    assert outputs.mask_logits.shape[-2:] == (16, 24)
    full = outputs.mask_logits_at_image_size()
    assert full.shape == (1, model.config.transformer_decoder.num_queries, 50, 70)
    expected = torch.nn.functional.interpolate(outputs.mask_logits, size=(64, 96), mode="bilinear",
                                               align_corners=False)[..., :50, :70]
    torch.testing.assert_close(full, expected)
    assert outputs.mask_logits_at_image_size(slice(2, 4)).shape == (1, 2, 50, 70)


@torch.no_grad()
def test_precomputed_text_embeddings_match_class_names(model: OMGModel, images: torch.Tensor) -> None:
    by_name = model(OMGInputs(images=images, class_names=CLASSES))
    prototypes = model.encode_vocabulary_prototypes(CLASSES)
    assert prototypes.shape == (3, 2, model.clip_dim)  # "person, man" has two synonyms
    by_embedding = model(OMGInputs(images=images, text_embeddings=prototypes))
    torch.testing.assert_close(by_name.class_logits, by_embedding.class_logits)
    # Without synonyms, one embedding per class is the same vocabulary.
    single = model(OMGInputs(images=images, class_names=CLASSES[:2]))
    flat = model(OMGInputs(images=images, text_embeddings=model.encode_vocabulary(CLASSES[:2])))
    torch.testing.assert_close(single.class_logits, flat.class_logits)


@torch.no_grad()
def test_clip_forward_shapes_and_single_frame_clip_equals_image(model: OMGModel, images: torch.Tensor) -> None:
    clip = torch.stack([images, images.flip(-1)], dim=1)  # B x T x 3 x H x W
    outputs = model(OMGInputs(images=clip, class_names=CLASSES))
    queries = model.config.transformer_decoder.num_queries
    assert outputs.mask_logits.shape == (2, queries, 2, 16, 24)
    assert outputs.class_logits.shape == (2, queries, len(CLASSES) + 1)
    assert outputs.num_frames == 2
    assert all(aux.mask_logits.shape == (2, queries, 2, 16, 24) for aux in outputs.auxiliary)
    full = outputs.mask_logits_at_image_size(torch.tensor([0, 3]))
    assert full.shape == (2, 2, 2, 64, 96)
    torch.testing.assert_close(full[:, 1, 1], torch.nn.functional.interpolate(
        outputs.mask_logits[:, 3, 1][:, None], size=(64, 96), mode="bilinear", align_corners=False)[:, 0])

    # A one-frame clip runs exactly the image path (same positional encoding, same attention).
    single = model(OMGInputs(images=images[:, None], class_names=CLASSES))
    image = model(OMGInputs(images=images, class_names=CLASSES))
    torch.testing.assert_close(single.mask_logits[:, :, 0], image.mask_logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(single.class_logits, image.class_logits, rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_clip_frames_interact(model: OMGModel, images: torch.Tensor) -> None:
    # A query attends over all frames: changing frame 2 must change the prediction on frame 1.
    clip_a = torch.stack([images, images], dim=1)
    clip_b = torch.stack([images, 255 - images], dim=1)
    out_a = model(OMGInputs(images=clip_a, class_names=CLASSES))
    out_b = model(OMGInputs(images=clip_b, class_names=CLASSES))
    assert not torch.allclose(out_a.mask_logits[:, :, 0], out_b.mask_logits[:, :, 0])


def _prompts() -> dict[str, torch.Tensor]:
    points = torch.tensor([[[[10.0, 20.0], [40.0, 30.0]], [[5.0, 5.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]])
    labels = torch.tensor([[[1, 0], [1, -1], [-1, -1]]])
    return {"points": points.repeat(2, 1, 1, 1), "point_labels": labels.repeat(2, 1, 1)}


@torch.no_grad()
def test_prompt_queries_run_with_learned_queries(model: OMGModel, images: torch.Tensor) -> None:
    plain = model(OMGInputs(images=images, class_names=CLASSES))
    prompted = model(OMGInputs(images=images, class_names=CLASSES, **_prompts()))
    queries = model.config.transformer_decoder.num_queries
    assert prompted.mask_logits.shape == (2, queries + 3, 16, 24)
    assert prompted.class_logits.shape == (2, queries + 3, len(CLASSES) + 1)
    assert prompted.is_prompt_query.tolist() == [False] * queries + [True] * 3
    assert prompted.prompt_valid.tolist() == [[True, True, False]] * 2
    assert prompted.prompt_mask_logits.shape == (2, 3, 16, 24)
    # Learned queries never see prompt queries, so their predictions are unchanged.
    torch.testing.assert_close(prompted.mask_logits[:, :queries], plain.mask_logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(prompted.class_logits[:, :queries], plain.class_logits, rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_prompts_are_independent_and_position_matters(model: OMGModel, images: torch.Tensor) -> None:
    prompts = _prompts()
    both = model(OMGInputs(images=images, class_names=CLASSES, **prompts))
    first = model(OMGInputs(images=images, class_names=CLASSES, points=prompts["points"][:, :1],
                            point_labels=prompts["point_labels"][:, :1]))
    torch.testing.assert_close(both.prompt_mask_logits[:, :1], first.prompt_mask_logits, rtol=1e-4, atol=1e-4)
    moved = model(OMGInputs(images=images, class_names=CLASSES, points=prompts["points"][:, :1] + 30,
                            point_labels=prompts["point_labels"][:, :1]))
    assert not torch.allclose(moved.prompt_mask_logits, first.prompt_mask_logits)


@torch.no_grad()
def test_box_and_point_prompts_together(model: OMGModel, images: torch.Tensor) -> None:
    prompts = _prompts()
    boxes = torch.tensor([[[0.0, 0.0, 30.0, 30.0], [10.0, 10.0, 60.0, 50.0], [5.0, 5.0, 20.0, 40.0]]]).repeat(2, 1, 1)
    outputs = model(OMGInputs(images=images, class_names=CLASSES, boxes=boxes, **prompts))
    assert outputs.prompt_mask_logits.shape == (2, 3, 16, 24)
    assert outputs.prompt_valid.all()  # the third prompt has no click but has a box
    boxes_only = model(OMGInputs(images=images, class_names=CLASSES, boxes=boxes))
    assert not torch.allclose(boxes_only.prompt_mask_logits, outputs.prompt_mask_logits)


@torch.no_grad()
def test_open_vocabulary_ensemble_output(model: OMGModel, images: torch.Tensor) -> None:
    seen = torch.tensor([True, False, True])
    outputs = model(OMGInputs(images=images, class_names=CLASSES, seen_classes=seen))
    assert outputs.clip_logits.shape == outputs.in_vocab_logits.shape == (2, model.config.transformer_decoder.num_queries, 4)
    probabilities = outputs.class_logits.exp()
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(probabilities.shape[:2]), atol=1e-5, rtol=0)
    # The void probability of the trained classifier is kept as is.
    torch.testing.assert_close(probabilities[..., -1], outputs.in_vocab_logits.softmax(-1)[..., -1],
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"images": torch.rand(1, 64, 64, 3)}, "B x 3 x H x W"),
        ({"images": torch.zeros(1, 3, 64, 64, dtype=torch.uint8)}, "float"),
        ({"class_names": None}, "no vocabulary"),
        ({"class_names": "cat"}, "list of names"),
        ({"points": torch.zeros(1, 1, 1, 2)}, "point_labels"),
        ({"points": torch.zeros(1, 1, 1, 2), "point_labels": torch.full((1, 1, 1), 2)}, "only hold"),
        ({"boxes": torch.tensor([[[10.0, 10.0, 5.0, 20.0]]])}, "x2 >= x1"),
        ({"boxes": torch.zeros(1, 2, 4), "points": torch.zeros(1, 1, 1, 2), "point_labels": torch.ones(1, 1, 1)},
         "one box per prompt"),
        ({"seen_classes": torch.tensor([True])}, "one flag per class"),
        ({"class_names": None, "text_embeddings": torch.zeros(3, 7)}, "K x 64"),
        ({"class_names": None, "text_embeddings": torch.zeros(3)}, "K x P x 64"),
        ({"class_names": None, "text_embeddings": torch.zeros(0, 64)}, "vocabulary is empty"),
    ],
)
def test_bad_inputs_are_named(model: OMGModel, fields: dict, message: str) -> None:
    arguments = {"images": torch.rand(1, 3, 64, 64) * 255, "class_names": CLASSES} | fields
    with pytest.raises((ValueError, TypeError), match=message):
        model(OMGInputs(**arguments))


def test_model_without_prompt_encoder_rejects_prompts() -> None:
    model = create_model("omg-tiny", enable_prompts=False)
    assert model.prompt_encoder is None
    with pytest.raises(ValueError, match="enable_prompts=False"):
        model(OMGInputs(images=torch.rand(1, 3, 32, 32) * 255, class_names=CLASSES, boxes=torch.zeros(1, 1, 4)))


def test_named_configs_and_errors() -> None:
    assert {"omg-convnext-large", "omg-tiny"} <= set(list_models())
    large = get_model_config("omg-convnext-large")
    assert large.backbone.clip_model_name == "convnext_large_d_320"
    assert large.backbone.pretrained_tag == "laion2b_s29b_b131k_ft_soup"
    assert large.backbone.channels == (192, 384, 768, 1536)
    assert (large.pixel_decoder.num_layers, large.pixel_decoder.ffn_dim, large.pixel_decoder.num_points) == (6, 1024, 4)
    assert (large.transformer_decoder.num_layers, large.transformer_decoder.ffn_dim) == (9, 2048)
    assert large.transformer_decoder.num_queries == 300
    assert large.prompt_encoding == "official" and get_model_config("omg-tiny").prompt_encoding == "sam"
    with pytest.raises(ValueError, match="omg-convnext-large, omg-tiny"):
        create_model("omg-huge")
    with pytest.raises(ValueError, match="num_layerz"):
        get_model_config("omg-tiny", transformer_decoder={"num_layerz": 2})
    assert get_model_config("omg-tiny", transformer_decoder={"num_layers": 2}).transformer_decoder.num_queries == 32


@torch.no_grad()
def test_prompts_on_a_clip(model: OMGModel, images: torch.Tensor) -> None:
    clip = torch.stack([images, images], dim=1)
    boxes = torch.tensor([[[0.0, 0.0, 30.0, 30.0]]]).repeat(2, 1, 1)
    outputs = model(OMGInputs(images=clip, class_names=CLASSES, boxes=boxes))
    assert outputs.prompt_mask_logits.shape == (2, 1, 2, 16, 24)  # one tube per prompt


@torch.no_grad()
def test_bf16_autocast_forward_agrees(model: OMGModel, images: torch.Tensor) -> None:
    reference = model(OMGInputs(images=images, class_names=CLASSES))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(OMGInputs(images=images, class_names=CLASSES))
    agreement = ((low.mask_logits.float() > 0) == (reference.mask_logits > 0)).float().mean()
    assert agreement > 0.9
    assert torch.isfinite(low.class_logits.float()).all()
