"""omg-tiny's masked-crop CLIP classifier: the crops, their embeddings, and their sums over a clip's frames."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from omg_core.clip_train.data import ISOLATED_MARGIN, ShapesWorldPairs
from omg_core.model import create_model
from omg_core.model.build import get_model_config
from omg_core.model.masked_crops import MASKED_CROP_FILL, MASKED_CROP_MARGIN, masked_crops
from omg_core.model.omg_model import FrameFeatures


def test_a_crop_is_the_mask_box_with_margin_on_grey_and_an_empty_mask_gives_none() -> None:
    pixels = torch.zeros(3, 40, 40, dtype=torch.uint8)
    pixels[0] = 200  # a red picture
    masks = torch.zeros(2, 40, 40, dtype=torch.bool)
    masks[0, 10:20, 10:20] = True  # a 10 px square: a 14 px crop with margin 0.2
    crops, valid = masked_crops(pixels, masks, size=14, margin=0.2, fill=100)
    assert valid.tolist() == [True, False] and crops.shape == (2, 3, 14, 14) and crops.dtype == torch.uint8
    expected = torch.full((3, 14, 14), 100, dtype=torch.uint8)
    expected[:, 2:12, 2:12] = torch.tensor([200, 0, 0], dtype=torch.uint8)[:, None, None]
    assert torch.equal(crops[0], expected)  # same size: no resampling, the mask's pixels and grey around
    assert not crops[1].any()
    floats, _ = masked_crops(pixels.float(), masks, size=14, margin=0.2, fill=100)
    assert torch.equal(floats, crops)


def test_the_classifier_frames_things_as_the_clip_saw_them_in_training() -> None:
    # a drift here would show the CLIP a kind of picture it was not trained on
    config = get_model_config("omg-tiny").open_vocabulary
    pairs = ShapesWorldPairs()
    assert config.clip_classifier == "masked-crops"
    assert config.crop_size == pairs.image_size
    assert config.crop_margin == MASKED_CROP_MARGIN == ISOLATED_MARGIN
    assert config.crop_fill == MASKED_CROP_FILL and pairs.isolated_grey == (MASKED_CROP_FILL, MASKED_CROP_FILL)
    assert get_model_config("omg-convnext-large").open_vocabulary.clip_classifier == "pooled"


def test_crop_sums_weigh_each_frames_crop_embedding_by_its_mask_area() -> None:
    torch.manual_seed(0)
    model = create_model("omg-tiny")
    generator = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (2, 3, 64, 64), generator=generator).float()  # one clip of 2 frames
    mask_logits = torch.full((1, 3, 2, 16, 16), -5.0)
    mask_logits[0, 0, 0, 2:6, 2:6] = 5.0  # query 0: in frame 0 only
    mask_logits[0, 1, :, 8:14, 4:12] = 5.0  # query 1: in both frames; query 2: nowhere
    features = FrameFeatures(torch.zeros(2, 320, 2, 2), torch.zeros(2, 64, 16, 16), [], (64, 64), (64, 64), frames)
    sums, areas = model.clip_sums(features, mask_logits)
    assert sums.shape == (1, 3, model.clip_dim) and areas[0, 2] == 0 and not sums[0, 2].any()
    masks = F.interpolate(mask_logits[0].transpose(0, 1), size=(64, 64), mode="bilinear", align_corners=False) > 0
    expected = torch.zeros(3, model.clip_dim)
    for t in range(2):
        crops, valid = masked_crops(frames[t], masks[t], 64)
        normalized = (crops.float() - model.pixel_mean) / model.pixel_std
        embedded = F.normalize(model.backbone.embed_images(normalized), dim=-1)
        expected += embedded * (masks[t].flatten(1).sum(dim=1) * valid)[:, None]
    torch.testing.assert_close(sums[0], expected, atol=1e-4, rtol=1e-4)
    assert areas[0].tolist() == [float(masks[:, q].sum()) for q in range(3)]
    without_pixels = FrameFeatures(features.res5, features.mask_features, [], (64, 64), (64, 64), None)
    with pytest.raises(ValueError, match="pixels"):
        model.clip_sums(without_pixels, mask_logits)


def test_masked_crop_logits_are_the_averaged_embeddings_against_the_texts() -> None:
    torch.manual_seed(0)
    model = create_model("omg-tiny")
    text = F.normalize(torch.randn(4, model.clip_dim), dim=-1)
    embedding = F.normalize(torch.randn(model.clip_dim), dim=-1)
    sums, areas = (embedding * 30.0)[None, None], torch.tensor([[30.0]])
    logits = model.clip_logits_from_pooled(sums, areas, text)
    # omg-tiny scores its CLIP at the temperature the CLIP learned (clip_temperature = "clip")
    assert model.config.open_vocabulary.clip_temperature == "clip"
    with torch.no_grad():
        model.backbone.text.logit_scale.fill_(torch.tensor(20.0).log())
    torch.testing.assert_close(model.clip_logits_from_pooled(sums, areas, text)[0, 0, :4], 20.0 * (text @ embedding))
    official = create_model("omg-tiny", open_vocabulary={"clip_temperature": "classifier"})
    logits = official.clip_logits_from_pooled(sums, areas, text)
    torch.testing.assert_close(logits[0, 0, :4], official.ov_classifier.logit_scale.exp() * (text @ embedding))
    assert abs(float(official.ov_classifier.logit_scale.exp()) - 100.0) < 0.01  # OMG-Seg's fixed temperature
