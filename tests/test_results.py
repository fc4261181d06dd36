"""Typed results: valid payloads construct, and each plugin mistake is a ValueError naming the class and field."""

from __future__ import annotations

import pytest
import torch

from omg_core.results import (
    FAMILIES,
    IGNORE_LABEL,
    Instances,
    PanopticMap,
    PanopticVideo,
    PromptMasks,
    PromptTracks,
    Segment,
    SemanticMap,
    SemanticVideo,
    Tracks,
)

VOCABULARY = ("cat", "grass", "sky")


def test_valid_results_of_every_family_construct() -> None:
    semantic = SemanticMap(torch.tensor([[0, 2], [IGNORE_LABEL, 1]]), list(VOCABULARY))
    assert semantic.vocabulary == VOCABULARY  # lists become tuples
    assert SemanticVideo(torch.zeros(3, 2, 2, dtype=torch.int64), VOCABULARY).num_frames == 3
    segments = (Segment(1, 0, 0.9, True), Segment(2, 1, 0.8, False), Segment(7, 2, 0.5, False))  # 7 has no pixel
    PanopticMap(torch.tensor([[1, 2], [0, 2]]), segments, VOCABULARY)
    assert PanopticVideo(torch.tensor([[[1, 2]], [[2, 2]]]), segments, VOCABULARY).num_frames == 2
    masks = torch.zeros(2, 4, 5, dtype=torch.bool)
    masks[0, 1:3, 2:4] = True
    instances = Instances(masks, torch.tensor([0.9, 0.1]), torch.tensor([0, 0]), VOCABULARY)
    assert instances.boxes.tolist() == [[2.0, 1.0, 4.0, 3.0], [0.0, 0.0, 0.0, 0.0]]  # from the masks
    track_masks = torch.zeros(1, 2, 4, 5, dtype=torch.bool)
    track_masks[0, 0, 0, 0] = track_masks[0, 1, 3, 4] = True
    tracks = Tracks(track_masks, torch.tensor([0.7]), torch.tensor([2]), VOCABULARY)
    assert tracks.boxes.tolist() == [[0.0, 0.0, 5.0, 4.0]] and tracks.num_frames == 2  # union over frames
    assert len(PromptMasks(masks, torch.tensor([0.5, 0.6]))) == 2
    PromptTracks(track_masks, torch.tensor([0.5]), torch.tensor([1]), VOCABULARY)


def test_image_and_video_classes_of_a_family_are_not_mistaken_for_each_other() -> None:
    tracks = Tracks(torch.zeros(1, 2, 3, 3, dtype=torch.bool), torch.tensor([0.5]), torch.tensor([0]), VOCABULARY)
    assert not isinstance(tracks, Instances) and tracks.family == Instances.family == "instances"
    assert all(len(classes) == 2 for classes in FAMILIES.values())
    assert {cls.family for classes in FAMILIES.values() for cls in classes} == set(FAMILIES)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SemanticMap(torch.zeros(2, 2), VOCABULARY), "SemanticMap.labels must be integer"),
        (lambda: SemanticMap(torch.zeros(1, 2, 2, dtype=torch.int64), VOCABULARY), r"shape \(H, W\), got \(1, 2, 2\)"),
        (lambda: SemanticMap(torch.tensor([[3]]), VOCABULARY), r"class indices must lie in \[-1, 2\]"),
        (lambda: PanopticMap(torch.tensor([[1, 5]]), (Segment(1, 0, 1.0, True),), VOCABULARY), r"ids \[5\]"),
        (lambda: PanopticMap(torch.tensor([[1]]), (Segment(1, 0, 1.0, True),) * 2, VOCABULARY), "id twice"),
        (lambda: PanopticMap(torch.tensor([[0]]), (Segment(0, 0, 1.0, True),), VOCABULARY), "ids must be > 0"),
        (lambda: Instances(torch.zeros(2, 3, 3), torch.ones(2), torch.zeros(2, dtype=torch.int64), VOCABULARY),
         "Instances.masks must be bool"),
        (lambda: Instances(torch.zeros(2, 3, 3, dtype=torch.bool), torch.ones(3), torch.zeros(2, dtype=torch.int64),
                           VOCABULARY), r"Instances.scores must have shape 2"),
        (lambda: Instances(torch.zeros(1, 3, 3, dtype=torch.bool), torch.ones(1), torch.tensor([-1]), VOCABULARY),
         r"lie in \[0, 2\]"),
        (lambda: Tracks(torch.zeros(1, 3, 3, dtype=torch.bool), torch.ones(1), torch.tensor([0]), VOCABULARY),
         r"Tracks.masks must have shape \(N, T, H, W\)"),
        (lambda: PromptMasks(torch.zeros(1, 3, 3, dtype=torch.bool), torch.ones(1), torch.tensor([0])),
         "labels and vocabulary come together"),
        (lambda: PromptMasks([[True]], torch.ones(1)), "PromptMasks.masks must be a torch.Tensor"),
    ],
)
def test_mistakes_name_the_class_and_field(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()
