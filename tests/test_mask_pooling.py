"""Mask pooling of CLIP features on the official stride-32 grid and on the mask grid."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from omg_core.model import create_model
from omg_core.model.mask_pooling import mask_pooled_sums
from omg_core.model.omg_model import FrameFeatures


def _quadrant_features() -> torch.Tensor:
    # 1 image, 1 channel, a 2 x 2 grid: each cell holds its own value
    return torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])


def test_features_grid_counts_the_cells_whose_resized_logit_is_positive() -> None:
    logits = torch.full((1, 1, 8, 8), -1.0)
    logits[0, 0, :4, :4] = 1.0  # the top-left quadrant: exactly cell (0, 0)
    sums, areas = mask_pooled_sums(_quadrant_features(), logits, "features")
    assert areas.tolist() == [[1.0]] and sums.tolist() == [[[1.0]]]


def test_a_small_mask_between_cell_centres_is_lost_on_the_features_grid_but_not_on_the_masks_grid() -> None:
    features = _quadrant_features()
    logits = torch.full((1, 1, 8, 8), -1.0)
    logits[0, 0, 3:5, 3:5] = 1.0  # 2 x 2 pixels in the middle, between the 4 cell centres (at 2 and 6)
    _, areas = mask_pooled_sums(features, logits, "features")
    assert areas.item() == 0.0
    sums, areas = mask_pooled_sums(features, logits, "masks")
    assert areas.item() == 4.0
    # the middle pixels mix the four cells equally: the pooled value is their mean
    assert (sums / areas[..., None]).item() == pytest.approx(2.5)


def test_masks_grid_pools_the_bilinearly_resized_features_under_the_mask() -> None:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2, 5, 4, 4, generator=generator)
    logits = torch.randn(2, 3, 32, 32, generator=generator)
    sums, areas = mask_pooled_sums(features, logits, "masks")
    resized = F.interpolate(features, size=(32, 32), mode="bilinear", align_corners=False)
    for n in range(2):
        for q in range(3):
            inside = logits[n, q] > 0
            assert areas[n, q].item() == inside.sum().item()
            torch.testing.assert_close(sums[n, q], resized[n][:, inside].sum(dim=1))


def test_bad_pooling_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="pool_at"):
        mask_pooled_sums(torch.zeros(1, 2, 2, 2), torch.zeros(1, 1, 8, 8), "pixels")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="images"):
        mask_pooled_sums(torch.zeros(2, 2, 2, 2), torch.zeros(1, 1, 8, 8))


@pytest.mark.parametrize("pool_at", ["features", "masks"])
def test_model_pools_a_clip_over_its_frames_on_the_configured_grid(pool_at: str) -> None:
    model = create_model("omg-tiny", open_vocabulary={"clip_classifier": "pooled", "pool_at": pool_at})
    generator = torch.Generator().manual_seed(1)
    batch, frames, queries, channels = 2, 3, 4, 320
    res5 = torch.randn(batch * frames, channels, 4, 4, generator=generator)
    mask_logits = torch.randn(batch, queries, frames, 32, 32, generator=generator)
    features = FrameFeatures(res5, torch.zeros(batch * frames, 64, 32, 32), [], (128, 128), (128, 128))
    sums, areas = model.clip_sums(features, mask_logits)
    per_frame = res5.view(batch, frames, channels, 4, 4)
    for b in range(batch):
        expected_sums = torch.zeros(queries, channels)
        expected_areas = torch.zeros(queries)
        for t in range(frames):
            frame_sums, frame_areas = mask_pooled_sums(per_frame[b, t][None], mask_logits[b, :, t][None], pool_at)
            expected_sums += frame_sums[0]
            expected_areas += frame_areas[0]
        torch.testing.assert_close(sums[b], expected_sums)
        torch.testing.assert_close(areas[b], expected_areas)
