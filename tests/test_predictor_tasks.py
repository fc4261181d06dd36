"""OMGPredictor, SamPredictor-style: every task through its plugin on omg-tiny (random weights: plumbing), features
computed once per image, prompts scaled with the test-time resize, typed results at the input size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from omg_core.errors import ConfigError, InputError
from omg_core.model import create_model
from omg_core.model.predictor import OMGPredictor
from omg_core.results import Instances, PanopticMap, PanopticVideo, PromptMasks, SemanticMap, SemanticVideo, Tracks


@pytest.fixture(scope="module")
def predictor() -> OMGPredictor:
    torch.manual_seed(0)
    return OMGPredictor(create_model("omg-tiny"))


def _image(height: int = 40, width: int = 60, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _video(frames: int = 4) -> torch.Tensor:
    return torch.stack([_image(seed=index) for index in range(frames)])


def test_image_tasks_return_typed_results_at_the_input_size(predictor: OMGPredictor) -> None:
    predictor.set_image(_image())
    panoptic = predictor.panoptic()
    assert isinstance(panoptic, PanopticMap) and panoptic.segment_ids.shape == (40, 60)
    assert len(panoptic.vocabulary) == 69 and panoptic.vocabulary[0] == "red circle"  # omg-tiny's shapes-world
    instances = predictor.instance(max_per_image=7)
    assert isinstance(instances, Instances) and instances.masks.shape[1:] == (40, 60) and len(instances) <= 7
    semantic = predictor.semantic()
    assert isinstance(semantic, SemanticMap) and semantic.labels.shape == (40, 60)
    ov = predictor.open_vocabulary(classes=["red star", "blue circle,disc"])
    assert ov.vocabulary == ("red star", "blue circle")
    assert all(segment.label in (0, 1) for segment in ov.segments)


def test_features_are_computed_once_per_image(predictor: OMGPredictor, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = predictor.model.encode_frames
    monkeypatch.setattr(predictor.model, "encode_frames", lambda frames: calls.append(frames.shape) or original(frames))
    predictor.set_image(_image())
    first = predictor.interactive(points=[[[10, 12]]])
    refined = predictor.interactive(points=[[[10, 12], [40, 30]]], point_labels=[[1, 0]])
    predictor.panoptic()
    assert len(calls) == 1  # set_image encoded; the three decodes reused the features
    assert isinstance(first, PromptMasks) and first.masks.shape == (1, 40, 60) and first.labels is None
    assert refined.masks.shape == (1, 40, 60)
    labelled = predictor.interactive(boxes=[[5, 5, 30, 30], [0, 0, 59, 39]], classes=["cat", "dog"])
    assert labelled.masks.shape == (2, 40, 60) and labelled.vocabulary == ("cat", "dog")


def test_test_time_resize_keeps_results_at_the_input_size() -> None:
    torch.manual_seed(0)
    model = create_model("omg-tiny")
    native = OMGPredictor(model, size="native")
    resized = OMGPredictor(model, size=(128, 64))
    assert resized.test_size(40, 60, "image") == (64, 96)  # mmcv: min(128/60, 64/40) = 1.6
    for predictor in (native, resized):
        predictor.set_image(_image())
        assert predictor.panoptic().segment_ids.shape == (40, 60)
        assert predictor.interactive(points=[[[59, 39]]]).masks.shape == (1, 40, 60)


def test_prompt_coordinates_follow_the_resize(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    predictor = OMGPredictor(create_model("omg-tiny"), size=(120, 80))  # 40x60 -> 80x120: twice the size
    seen = {}
    decode = predictor.model.decode

    def spy(features, inputs, num_frames=0):
        seen["points"], seen["boxes"] = inputs.points, inputs.boxes
        return decode(features, inputs, num_frames)

    monkeypatch.setattr(predictor.model, "decode", spy)
    predictor.set_image(_image())
    predictor.interactive(points=[[[10, 20]]], boxes=[[1, 2, 3, 4]])
    assert seen["points"].tolist() == [[[[20.0, 40.0]]]]
    assert seen["boxes"].tolist() == [[[2.0, 4.0, 6.0, 8.0]]]


def test_video_tasks_track_through_tubes(predictor: OMGPredictor) -> None:
    video = _video(7)
    tracks = predictor.track(video)
    assert isinstance(tracks, Tracks) and tracks.masks.shape[1:] == (7, 40, 60)
    ov_tracks = predictor.track(classes=["red star", "green square"])
    assert ov_tracks.vocabulary == ("red star", "green square")
    semantic = predictor.run("video-semantic")
    assert isinstance(semantic, SemanticVideo) and semantic.labels.shape == (7, 40, 60)
    panoptic = predictor.run("video-panoptic", clip_size=3)
    assert isinstance(panoptic, PanopticVideo) and panoptic.segment_ids.shape == (7, 40, 60)


def test_the_video_is_decoded_one_tube_at_a_time(predictor: OMGPredictor, monkeypatch: pytest.MonkeyPatch) -> None:
    frames_per_decode = []
    decode = predictor.model.decode

    def spy(features, inputs, num_frames=0):
        frames_per_decode.append(num_frames)
        return decode(features, inputs, num_frames)

    monkeypatch.setattr(predictor.model, "decode", spy)
    predictor.set_video(_video(17))  # more than small_clip_thr (15) frames: clip_size 5 tubes
    predictor.run("video-instance")
    assert sum(frames_per_decode) == 17 and max(frames_per_decode) <= 5 and len(frames_per_decode) == 4


def test_misuse_is_a_clear_error(predictor: OMGPredictor) -> None:
    predictor.reset()
    with pytest.raises(InputError, match="set_image"):
        predictor.panoptic()
    predictor.set_video(_video(2))
    with pytest.raises(InputError, match="takes a image|set_image"):
        predictor.panoptic()
    with pytest.raises(InputError, match="3 x H x W"):
        predictor.set_image(torch.zeros(40, 60, 3, dtype=torch.uint8))
    with pytest.raises(InputError, match="uint8"):
        predictor.set_image(torch.zeros(3, 40, 60))
    predictor.set_image(_image())
    with pytest.raises(InputError, match="rectangular"):
        predictor.interactive(points=[[[1, 2], [3, 4]], [[5, 6]]])
    with pytest.raises(ConfigError, match="did you mean 'max_per_image'"):
        predictor.instance(max_per_imag=3)


def test_set_image_accepts_files_arrays_and_pil(predictor: OMGPredictor, tmp_path: Path) -> None:
    from PIL import Image

    array = _image().permute(1, 2, 0).numpy()
    Image.fromarray(array).save(tmp_path / "a.png")
    results = []
    for image in (tmp_path / "a.png", str(tmp_path / "a.png"), array, Image.fromarray(array)):
        predictor.set_image(image)
        results.append(predictor.semantic().labels)
    assert all(torch.equal(results[0], other) for other in results[1:])


def test_seen_classes_follow_the_word_overlap_rule_unless_overridden(predictor: OMGPredictor,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # omg-tiny trained on shapes-world-seen: "red star" is seen, "orange star" (held out) and "zebra" are not
    assert predictor.seen_flags(["zebra", "red star", "orange star"]) == [False, True, False]
    used = []
    decode = predictor.model.decode

    def spy(features, inputs, num_frames=0):
        used.append(None if inputs.seen_classes is None else inputs.seen_classes.tolist())
        return decode(features, inputs, num_frames)

    monkeypatch.setattr(predictor.model, "decode", spy)
    predictor.set_image(_image())
    by_rule = predictor.open_vocabulary(classes=["zebra", "red star"])
    overridden = predictor.open_vocabulary(classes=["zebra", "red star"], seen=[True, False])
    closed = predictor.panoptic()
    # omg-tiny ensembles closed tasks too (open_vocabulary.ensemble = "always"), flags by the same rule
    from omg_core.model.vocabulary import load_vocabulary

    closed_flags = predictor.seen_flags(load_vocabulary("shapes-world").texts)
    assert used == [[False, True], [True, False], closed_flags] and 0 < sum(closed_flags) < len(closed_flags)
    assert by_rule.vocabulary == overridden.vocabulary == ("zebra", "red star") and len(closed.vocabulary) == 69


@pytest.mark.parametrize("clip_classifier", ["pooled", "masked-crops"])
def test_the_video_ensemble_pools_clip_features_over_whole_tracks(predictor: OMGPredictor,
                                                                  clip_classifier: str) -> None:
    from omg_core.model.ov_classifier import geometric_ensemble
    from omg_core.task_io import QueryPlan, TaskRequest, VideoTubes

    model = predictor.model
    config = model.config
    model.config = config.model_copy(update={"open_vocabulary": config.open_vocabulary.model_copy(
        update={"clip_classifier": clip_classifier})})
    try:
        video = _video(6)
        seen = torch.tensor([True, False])
        plan = QueryPlan(vocabulary=("red star", "blue circle"), seen_classes=seen,
                         tubes=VideoTubes(clip_size_small=2))
        outputs = predictor(TaskRequest(task="ov-vis", modality="video", pixels=video), plan)
        # by hand: the CLIP classifier's sums over all six frames inside each track's masks (three tubes, matched)
        with torch.inference_mode():
            sums, areas = model.clip_sums(model.encode_frames(video.float()), outputs.mask_logits)
            text = model.encode_vocabulary_prototypes(["red star", "blue circle"])
            clip_logits = model.clip_logits_from_pooled(sums, areas, text)
            ov = model.config.open_vocabulary
            expected = geometric_ensemble(outputs.in_vocab_logits, clip_logits, seen, ov.alpha, ov.beta, areas > 0,
                                          model.clip_voters(torch.tensor([True, True])))
    finally:
        model.config = config
    torch.testing.assert_close(outputs.class_logits, expected, rtol=1e-4, atol=1e-4)
    assert outputs.mask_logits.shape[2] == 6


def test_video_progress_is_reported_tube_by_tube(predictor: OMGPredictor) -> None:
    reported = []
    predictor.on_frames = lambda done, total: reported.append((done, total))
    try:
        predictor.track(_video(7), clip_size_small=3)
    finally:
        predictor.on_frames = None
    assert reported == [(3, 7), (5, 7), (7, 7)]  # official tubes of a 7-frame video: 0-3, 3-5, 5-7
