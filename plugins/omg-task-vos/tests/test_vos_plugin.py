"""The vos plugin, installed as its own distribution: discovered with its evaluator, the first-frame objects matched to
query tracks as OMG-Seg does (top IoU scores, Hungarian IoU, painting order), bad annotations refused by name, J&F
scored by `omg eval --task vos`, and one run of omg-tiny through the predictor."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omg_task_vos import task as vos
from omg_task_vos.tracking import track_first_frame_objects
from PIL import Image

from omg_core.config import RunConfig, TaskConfig
from omg_core.errors import InputError
from omg_core.inference.video import associate_proposals
from omg_core.model.outputs import OMGOutputs
from omg_core.pipeline import run_task
from omg_core.registry import discover_tasks
from omg_core.results import PromptTracks
from omg_core.task_io import QueryPlan, TaskRequest

SIDE = 8  # frames of SIDE x SIDE pixels, run at 4x that size: the 8 x 8 stride-4 mask logits map one-to-one to pixels


def save_ids(ids: np.ndarray, path: Path, mode: str = "P") -> Path:
    """An object-id PNG (palette, as DAVIS annotations are)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(ids.astype(np.uint8), mode="L")
    if mode == "P":
        image = image.convert("P")
    elif mode == "RGB":
        image = image.convert("RGB")
    image.save(path)
    return path


def two_objects() -> np.ndarray:
    """Object 1: the top-left quarter; object 2: the bottom-right quarter."""
    ids = np.zeros((SIDE, SIDE), np.uint8)
    ids[:4, :4] = 1
    ids[4:, 4:] = 2
    return ids


def video_outputs(blocks: torch.Tensor, iou_logits: list[float]) -> OMGOutputs:
    """Outputs of a tracked video whose query q covers, in frame t, the pixels where blocks[q, t] (T x 8 x 8) is True.

    The video ran at 32 x 32 (4x its 8 x 8 frames), so the stride-4 logits are at the frames' size: upsampled to the
    input and resized back, +-20 logits keep their sign pixel for pixel."""
    queries, frames = blocks.shape[:2]
    mask_logits = torch.where(blocks, 20.0, -20.0)[None]  # 1 x Q x T x 8 x 8
    class_logits = torch.zeros(1, queries, 3)
    return OMGOutputs(
        class_logits=class_logits, mask_logits=mask_logits, query_embeddings=torch.zeros(1, queries, 4),
        iou_logits=torch.tensor(iou_logits).view(1, queries, 1), in_vocab_logits=class_logits,
        num_learned_queries=queries, is_prompt_query=torch.zeros(queries, dtype=torch.bool),
        image_size=(4 * SIDE, 4 * SIDE), padded_size=(4 * SIDE, 4 * SIDE), num_frames=frames,
    )


def vos_request(frames: int, source: Path | None = None, **options) -> TaskRequest:
    return TaskRequest(task="vos", modality="video", pixels=torch.zeros(frames, 3, SIDE, SIDE, dtype=torch.uint8),
                       source=source, options=vos.VOSOptions(**options),
                       frame_names=tuple(f"{index:05d}" for index in range(frames)))


def decode(request: TaskRequest, outputs: OMGOutputs) -> PromptTracks:
    result = vos.omg_decode_outputs(request, vos.omg_encode_queries(request), outputs)
    assert result.frame_names == request.frame_names and result.source == request.source
    return result.data


def test_vos_is_discovered_with_its_alias_options_and_evaluator() -> None:
    registry = discover_tasks()
    handle = registry.get("davis")
    assert handle.name == "vos" and handle.origin.distribution == "omg-task-vos"
    assert handle.info.result_family == "prompt-masks" and handle.info.output_formats == ("davis-png",)
    assert registry.file_evaluator_for("vos") == ("vos", vos.DAVIS_JF)
    assert registry.formats_for(handle.info)[0] == "davis-png"
    options = handle.info.model_dump(mode="json")["options"]
    assert options["num_proposals"]["default"] == 25 and options["first_frame_masks"]["default"] is None


@pytest.mark.parametrize("num_proposals", [2, 25])
def test_first_frame_objects_follow_the_best_scored_matching_tracks(tmp_path: Path, num_proposals: int) -> None:
    blocks = torch.zeros(3, 3, 8, 8, dtype=torch.bool)
    blocks[0, 0, :4, :4] = True  # query 0, frame 0: object 1 exactly (IoU 1)
    blocks[1, 0, 4:, 4:6] = True  # query 1, frame 0: half of object 2 (IoU 0.5)
    blocks[2, 0, 4:, 4:] = True  # query 2, frame 0: object 2 exactly (IoU 1), but the lowest IoU score
    for frame in (1, 2):  # later frames: each query moves its own way; the objects must follow their query
        blocks[0, frame, :4, frame : 4 + frame] = True
        blocks[1, frame, 4:, 4 + frame : 6 + frame] = True
        blocks[2, frame, 7 - frame, 7 - frame] = True
    outputs = video_outputs(blocks, iou_logits=[2.0, 1.0, -5.0])
    annotation = save_ids(two_objects(), tmp_path / "00000.png")
    tracks = decode(vos_request(3, first_frame_masks=str(annotation), num_proposals=num_proposals), outputs)

    # with the top 2 IoU scores, query 2 is no proposal and object 2 takes query 1 (IoU 0.5); with all three,
    # Hungarian gives object 2 its exact match, query 2
    second = 1 if num_proposals == 2 else 2
    assert tracks.masks.shape == (2, 3, SIDE, SIDE) and tracks.labels is None and tracks.vocabulary is None
    assert torch.equal(tracks.masks[0], blocks[0]) and torch.equal(tracks.masks[1], blocks[second])
    expected_scores = [1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(-[0.0, 1.0, -5.0][second]))]
    assert tracks.scores.tolist() == pytest.approx(expected_scores)


def test_hungarian_matching_beats_greedy_and_overlaps_go_to_the_higher_score() -> None:
    # a 1 x 20 strip: object X = columns 0..9, object Y = columns 10..18
    objects = torch.zeros(2, 1, 20, dtype=torch.bool)
    objects[0, 0, :10] = True
    objects[1, 0, 10:19] = True
    wide = torch.zeros(1, 20, dtype=torch.bool)
    wide[0, :19] = True  # proposal A: X and Y
    narrow = torch.zeros(1, 20, dtype=torch.bool)
    narrow[0, :5] = True  # proposal B: half of X
    # IoUs: A-X 10/19, A-Y 9/19, B-X 1/2, B-Y 0. Greedy (best pair first) takes A-X then B-Y: 10/19 + 0;
    # Hungarian takes A-Y and B-X: 9/19 + 1/2, the larger sum
    assert associate_proposals(torch.stack([wide, narrow]), objects) == {0: 1, 1: 0}

    mask_logits = torch.where(torch.stack([wide, narrow])[:, None].expand(2, 2, 1, 20), 20.0, -20.0)  # Q x T x 1 x 20
    identity = lambda logits: logits  # noqa: E731 - masks are given at the output size
    for narrow_score, narrow_wins in ((3.0, True), (-3.0, False)):
        tracks = track_first_frame_objects(torch.tensor([[0.0], [narrow_score]]), mask_logits, objects, identity)
        assert tracks.query_indices.tolist() == [1, 0]  # X carried by B, Y by A
        # A and B overlap on columns 0..4: the higher IoU score is painted last, as in OMG-Seg's id map
        assert bool(tracks.masks[0, :, 0, :5].all()) is narrow_wins
        assert bool(tracks.masks[1, :, 0, :5].any()) is not narrow_wins
        assert bool(tracks.masks[1, :, 0, 5:19].all()) and not (tracks.masks[0] & tracks.masks[1]).any()


def test_davis_object_ids_are_kept_when_the_annotation_skips_one(tmp_path: Path) -> None:
    ids = two_objects()
    ids[ids == 2] = 3  # objects 1 and 3: no object 2
    blocks = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    blocks[0, 0, :4, :4] = True
    blocks[1, 0, 4:, 4:] = True
    annotation = save_ids(ids, tmp_path / "00000.png")
    tracks = decode(vos_request(1, first_frame_masks=str(annotation)), video_outputs(blocks, [0.0, 0.0]))
    assert tracks.masks.shape[0] == 3  # track k is object id k + 1
    assert torch.equal(tracks.masks[0, 0], blocks[0, 0]) and torch.equal(tracks.masks[2, 0], blocks[1, 0])
    assert not tracks.masks[1].any() and tracks.scores[1] == 0


def test_the_davis_layout_beside_the_frames_gives_the_first_frame_annotation(tmp_path: Path) -> None:
    frames = tmp_path / "DAVIS" / "JPEGImages" / "480p" / "bear"
    frames.mkdir(parents=True)
    request = vos_request(2, source=frames)
    with pytest.raises(InputError, match=r"Annotations/480p/bear/00000.png is missing.*first_frame_masks"):
        vos.omg_encode_queries(request)
    save_ids(two_objects(), tmp_path / "DAVIS" / "Annotations" / "480p" / "bear" / "00000.png")
    assert vos.first_frame_objects(request).object_ids == (1, 2)
    # a folder of annotation folders serves every video of a run
    given = vos_request(2, source=frames, first_frame_masks=str(tmp_path / "DAVIS" / "Annotations" / "480p"))
    assert vos.first_frame_objects(given).path.parent.name == "bear"


def test_bad_first_frame_masks_are_input_errors_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    rgb = save_ids(two_objects(), tmp_path / "rgb.png", mode="RGB")
    small = save_ids(two_objects()[:4], tmp_path / "small.png")
    empty = save_ids(np.full((SIDE, SIDE), 255, np.uint8), tmp_path / "void.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    cases = [
        (str(tmp_path / "nowhere.png"), r"nowhere.png: no such file or folder; pass --option first_frame_masks"),
        (str(tmp_path), r"no .*00000.png; give the annotation PNG of the first frame"),
        (str(rgb), r"rgb.png: a RGB image is not an object-id map; save .* palette"),
        (str(small), r"small.png is 8x4 but the video's frames are 8x8"),
        (str(empty), r"void.png holds no object"),
        (str(tmp_path / "broken.png"), r"broken.png: cannot read this annotation PNG"),
    ]
    for given, message in cases:
        with pytest.raises(InputError, match=message):
            vos.omg_encode_queries(vos_request(2, first_frame_masks=given))
    with pytest.raises(InputError, match="come with no file; pass --option first_frame_masks"):
        vos.omg_encode_queries(vos_request(2))


def test_a_davis_root_runs_end_to_end_into_davis_pngs_that_omg_eval_scores(tmp_path: Path) -> None:
    root = tmp_path / "DAVIS"
    truth = two_objects()
    for frame in range(3):
        (root / "JPEGImages" / "480p" / "clip").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((SIDE, SIDE, 3), np.uint8)).save(root / "JPEGImages" / "480p" / "clip" / f"{frame:05d}.jpg")
        save_ids(truth, root / "Annotations" / "480p" / "clip" / f"{frame:05d}.png")
    blocks = torch.zeros(3, 3, 8, 8, dtype=torch.bool)
    blocks[0, :, :4, :4] = True  # query 0 tracks object 1 exactly
    blocks[1, :, 4:, 4:6] = True  # query 1: the left half of object 2 in every frame
    blocks[2, :, 0, 7] = True  # query 2: a stray pixel, matched to nothing

    def stand_in_model(model_config):
        def predict(request, plan):
            assert plan.learned_queries and plan.tubes is not None and request.frame_names == ("00000", "00001", "00002")
            return video_outputs(blocks, [1.0, 1.0, 0.0])

        return predict

    config = RunConfig(task=TaskConfig(name="davis"), input=root, output=tmp_path / "out")
    summary = run_task(config, discover_tasks(), stand_in_model)
    assert not summary.failed and (tmp_path / "out" / "clip" / "00002.png").is_file()
    written = np.asarray(Image.open(tmp_path / "out" / "clip" / "00001.png"))
    expected = truth.copy()
    expected[4:, 6:] = 0
    assert np.array_equal(written, expected)  # track k written as DAVIS object id k + 1
    out = tmp_path / "figures.json"
    completed = subprocess.run(
        [sys.executable, "-m", "omg_core.cli", "eval", "--task", "vos", "--predictions", str(tmp_path / "out"),
         "--ground-truth", str(root), "--output", str(out)], capture_output=True, text=True,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(out.read_text())["J-Mean"] == pytest.approx((1 + 0.5) / 2)


def test_the_metric_hook_gives_davis_j_and_f() -> None:
    truth = torch.from_numpy(two_objects()).long()[None].repeat(3, 1, 1)
    metric = vos.omg_create_metric({})
    metric.update(truth.clone(), truth, "clip")
    assert metric.compute()["J&F-Mean"] == pytest.approx(1.0)


def test_omg_tiny_runs_vos_through_the_predictor(tmp_path: Path) -> None:
    from omg_core.model import create_model
    from omg_core.model.predictor import OMGPredictor

    torch.manual_seed(0)
    predictor = OMGPredictor(create_model("omg-tiny"))
    frames = torch.randint(0, 256, (4, 3, SIDE, SIDE), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    predictor.set_video(frames)
    annotation = save_ids(two_objects(), tmp_path / "00000.png")
    tracks = predictor.run("vos", first_frame_masks=str(annotation), num_proposals=5)
    assert isinstance(tracks, PromptTracks) and tracks.masks.shape == (2, 4, SIDE, SIDE)
    assert not (tracks.masks[0] & tracks.masks[1]).any()  # one object per pixel, as a DAVIS id map
    assert ((tracks.scores > 0) & (tracks.scores < 1)).all()  # both objects matched (5 proposals >= 2 objects)
    assert isinstance(vos.omg_encode_queries(vos_request(4, first_frame_masks=str(annotation))), QueryPlan)
