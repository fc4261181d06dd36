"""`omg eval` scores what `omg run` writes: interactive.json against COCO instances, and a YouTube-VIS run's
results.json + videos.json against an annotation file whose videos are in another order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from omg_core.cli import EXIT_USER_ERROR, main
from omg_core.errors import InputError
from omg_core.registry import discover_tasks
from omg_core.results import PromptMasks, Tracks
from omg_core.task_io import Prompts, TaskResult
from omg_data.rle import decode_segmentation, encode_mask
from omg_eval.anomalies import EvaluationAnomalyWarning
from omg_eval.interactive_files import evaluate_interactive_file
from omg_eval.video_instance_io import evaluate_youtube_vis

HEIGHT, WIDTH = 8, 10


# -- interactive ---------------------------------------------------------------------------------------------------


def object_masks() -> dict[int, torch.Tensor]:
    """Ground-truth objects by annotation id: 11 a car, 12 a person (given as a polygon), 13 a crowd."""
    car = torch.zeros(HEIGHT, WIDTH, dtype=torch.bool)
    car[1:5, 1:5] = True
    person = torch.from_numpy(decode_segmentation([[5, 4, 9, 4, 9, 7, 5, 7]], HEIGHT, WIDTH))
    crowd = torch.zeros(HEIGHT, WIDTH, dtype=torch.bool)
    crowd[6:8, 0:3] = True
    return {11: car, 12: person, 13: crowd}


def coco_instances() -> dict:
    """COCO instances of two images; the prompted one is listed under a sub-folder and with category ids the run's
    vocabulary does not share."""
    masks = object_masks()
    annotations = [
        {"id": 11, "image_id": 7, "category_id": 3, "segmentation": encode_mask(masks[11]), "iscrowd": 0},
        {"id": 12, "image_id": 7, "category_id": 5, "segmentation": [[5, 4, 9, 4, 9, 7, 5, 7]], "iscrowd": 0,
         "bbox": [5, 4, 4, 3]},
        {"id": 13, "image_id": 7, "category_id": 5, "segmentation": encode_mask(masks[13]), "iscrowd": 1},
        {"id": 21, "image_id": 9, "category_id": 3, "segmentation": encode_mask(masks[11]), "iscrowd": 0},
    ]
    return {
        "images": [{"id": 7, "file_name": "val/img.png", "height": HEIGHT, "width": WIDTH},
                   {"id": 9, "file_name": "other.png", "height": HEIGHT, "width": WIDTH}],
        "annotations": annotations,
        "categories": [{"id": 3, "name": "car"}, {"id": 5, "name": "person"}],
    }


def run_interactive(tmp_path: Path, masks: torch.Tensor, prompts: Prompts, labels: torch.Tensor | None = None,
                    task: str = "interactive") -> tuple[Path, Path]:
    """(interactive.json written by the real writer, ground-truth JSON)."""
    vocabulary = ("person", "car") if labels is not None else None
    data = PromptMasks(masks, torch.full((len(masks),), 0.9), labels, vocabulary)
    out = tmp_path / "out"
    discover_tasks().get(task).write_results(
        [TaskResult(task, source=Path("img.png"), data=data, prompts=prompts)], out, "interactive-json")
    gt = tmp_path / "instances.json"
    gt.write_text(json.dumps(coco_instances()))
    return out / "interactive.json", gt


def test_perfect_prompt_masks_score_one_per_prompt_kind(tmp_path: Path) -> None:
    masks = object_masks()
    points = Prompts(points=torch.tensor([[[2.0, 2.0], [0.0, 0.0]], [[3.5, 1.2], [6.0, 5.0]]]),
                     point_labels=torch.tensor([[1, -1], [1, 0]]))
    predictions, gt = run_interactive(tmp_path, torch.stack([masks[11], masks[11]]), points)
    figures = evaluate_interactive_file(predictions, gt)
    assert figures == {"mIoU@1click": 1.0, "mIoU@2clicks": 1.0, "mIoU": 1.0, "num_objects": 2, "num_unmatched": 0}
    boxes = Prompts(boxes=torch.tensor([[5.0, 4.0, 9.0, 7.0], [0.5, 0.5, 5.0, 5.0]]))
    predictions, gt = run_interactive(tmp_path / "boxes", torch.stack([masks[12], masks[11]]), boxes)
    figures = evaluate_interactive_file(predictions, gt)
    assert figures["mIoU@box"] == 1.0 and figures["num_objects"] == 2


def test_wrong_mask_scores_its_iou_and_a_prompt_on_no_object_is_reported_and_scored_zero(tmp_path: Path) -> None:
    masks = object_masks()
    shifted = torch.zeros(HEIGHT, WIDTH, dtype=torch.bool)
    shifted[2:6, 2:7] = True  # over the car, spilling right and down
    car = masks[11]
    expected_iou = float((shifted & car).sum()) / float((shifted | car).sum())
    assert 0 < expected_iou < 1
    # prompt 1 clicks the background: (x=8, y=1) lies in no object (the crowd region is never a prompt's object)
    prompts = Prompts(points=torch.tensor([[[1.0, 4.0]], [[8.0, 1.0]], [[1.0, 7.0]]]),
                      point_labels=torch.tensor([[1], [1], [1]]))
    predictions, gt = run_interactive(tmp_path, torch.stack([shifted, car, masks[13]]), prompts)
    with pytest.warns(EvaluationAnomalyWarning, match=r"2 prompts on no ground-truth object \(.*first: object 1 "
                                                      r"\(image 'img.png', prompt 1"):
        figures = evaluate_interactive_file(predictions, gt)
    assert figures["mIoU@1click"] == pytest.approx(expected_iou / 3, abs=1e-12)
    assert figures["num_unmatched"] == 2 and figures["num_objects"] == 3


def test_class_accuracy_compares_names_not_the_runs_category_ids(tmp_path: Path) -> None:
    masks = object_masks()
    prompts = Prompts(boxes=torch.tensor([[1.0, 1.0, 5.0, 5.0], [5.0, 4.0, 9.0, 7.0], [5.0, 4.0, 9.0, 7.0]]))
    # vocabulary ("person", "car"): label 1 is "car" (run category 2, ground-truth category 3)
    predictions, gt = run_interactive(tmp_path, torch.stack([masks[11], masks[12], masks[12]]), prompts,
                                      labels=torch.tensor([1, 1, 0]), task="ov-interactive")
    records = json.loads(predictions.read_text())["objects"]
    assert [(r["category_id"], r["category"]) for r in records] == [(2, "car"), (2, "car"), (1, "person")]
    figures = evaluate_interactive_file(predictions, gt)
    assert figures["acc"] == pytest.approx(2 / 3) and figures["mIoU@box"] == 1.0


def test_annotation_id_in_a_record_overrides_the_location(tmp_path: Path) -> None:
    masks = object_masks()
    prompts = Prompts(points=torch.tensor([[[2.0, 2.0]]]), point_labels=torch.tensor([[1]]))
    predictions, gt = run_interactive(tmp_path, masks[11][None], prompts)
    assert evaluate_interactive_file(predictions, gt)["mIoU"] == 1.0  # the click is on the car
    data = json.loads(predictions.read_text())
    data["objects"][0]["annotation_id"] = 12  # ... but the record says it was the person's prompt
    predictions.write_text(json.dumps(data))
    expected = float((masks[11] & masks[12]).sum()) / float((masks[11] | masks[12]).sum())
    assert evaluate_interactive_file(predictions, gt)["mIoU"] == pytest.approx(expected, abs=1e-12)
    data["objects"][0]["annotation_id"] = 21  # an object of another image
    predictions.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="annotation_id 21 is an object of 'other.png'"):
        evaluate_interactive_file(predictions, gt)


def test_overlapping_objects_are_told_apart_by_the_other_clicks(tmp_path: Path) -> None:
    masks = object_masks()
    gt_data = coco_instances()
    inner = torch.zeros(HEIGHT, WIDTH, dtype=torch.bool)
    inner[1:3, 1:3] = True  # a small object on top of the car
    gt_data["annotations"].append({"id": 14, "image_id": 7, "category_id": 5, "segmentation": encode_mask(inner),
                                   "iscrowd": 0})
    # both prompts click (2, 2), in both objects; prompt 1 adds a second click (4, 4) on the car only
    prompts = Prompts(points=torch.tensor([[[2.0, 2.0], [0.0, 0.0]], [[2.0, 2.0], [4.0, 4.0]]]),
                      point_labels=torch.tensor([[1, -1], [1, 1]]))
    predictions, gt = run_interactive(tmp_path, torch.stack([inner, masks[11]]), prompts)
    gt.write_text(json.dumps(gt_data))
    figures = evaluate_interactive_file(predictions, gt)
    assert figures["mIoU@1click"] == 1.0 and figures["mIoU@2clicks"] == 1.0  # the smallest, then the car


def test_errors_name_ground_truth_missing_images_and_keep_click_logs_working(tmp_path: Path) -> None:
    masks = object_masks()
    predictions, gt = run_interactive(tmp_path, masks[11][None], Prompts(boxes=torch.tensor([[1.0, 1.0, 5.0, 5.0]])))
    with pytest.raises(InputError, match="--ground-truth"):
        evaluate_interactive_file(predictions)
    renamed = coco_instances()
    renamed["images"][0]["file_name"] = "val/elsewhere.png"
    gt.write_text(json.dumps(renamed))
    with pytest.raises(ValueError, match="image 'img.png', which the ground truth does not list"):
        evaluate_interactive_file(predictions, gt)
    log = tmp_path / "log.json"
    log.write_text(json.dumps({"objects": [{"click_ious": [0.5, 0.9], "box_iou": 0.75}, {"click_ious": [0.25]}]}))
    for truth in (None, gt):
        figures = evaluate_interactive_file(log, truth)
        assert figures["mIoU@1click"] == pytest.approx(0.375) and figures["mIoU@box"] == 0.75


def test_omg_eval_task_interactive_scores_a_runs_file(tmp_path: Path) -> None:
    masks = object_masks()
    prompts = Prompts(points=torch.tensor([[[2.0, 2.0]], [[6.0, 5.0]]]), point_labels=torch.tensor([[1], [1]]))
    predictions, gt = run_interactive(tmp_path, torch.stack([masks[11], masks[12]]), prompts)
    out = tmp_path / "figures.json"
    runner = CliRunner()
    result = runner.invoke(main, ["eval", "--task", "interactive", "--predictions", str(predictions),
                                  "--ground-truth", str(gt), "--output", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["mIoU@1click"] == 1.0
    result = runner.invoke(main, ["eval", "--task", "int", "--predictions", str(predictions)],
                           catch_exceptions=False)
    assert result.exit_code == EXIT_USER_ERROR and "--ground-truth" in result.output


# -- YouTube-VIS ---------------------------------------------------------------------------------------------------

VOCABULARY = ("cat", "dog")


def video_tracks(seed: int, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, T, H, W) bool masks of two objects moving through a video, and their (N,) class indices."""
    masks = torch.zeros(2, num_frames, HEIGHT, WIDTH, dtype=torch.bool)
    for frame in range(num_frames):
        masks[0, frame, seed : seed + 3, frame : frame + 3] = True
        masks[1, frame, 5:8, 6 - seed : 9 - seed] = True
    return masks, torch.tensor([seed % 2, 1 - seed % 2])


def youtube_vis_annotations(videos: list[tuple[int, str, int, int]]) -> dict:
    """An annotation file of (id, name, seed, frames) videos, with JPEGImages/<name>/<frame>.jpg file names."""
    records, annotations = [], []
    for video_id, name, seed, num_frames in videos:
        records.append({"id": video_id, "height": HEIGHT, "width": WIDTH, "length": num_frames,
                        "file_names": [f"JPEGImages/{name}/{5 * t:05d}.jpg" for t in range(num_frames)]})
        masks, labels = video_tracks(seed, num_frames)
        for track, (mask, label) in enumerate(zip(masks, labels.tolist())):
            annotations.append({"id": video_id * 10 + track, "video_id": video_id, "category_id": label + 1,
                                "segmentations": [encode_mask(frame) for frame in mask],
                                "areas": [float(frame.sum()) for frame in mask], "iscrowd": 0})
    categories = [{"id": index + 1, "name": name} for index, name in enumerate(VOCABULARY)]
    return {"videos": records, "annotations": annotations, "categories": categories}


def run_videos(tmp_path: Path, videos: list[tuple[str, int, int]]) -> Path:
    """The folder `omg run --format youtube-vis-json` writes for perfect tracks of (name, seed, frames) videos."""
    results = []
    for name, seed, num_frames in videos:
        masks, labels = video_tracks(seed, num_frames)
        results.append(TaskResult("video-instance", source=Path("JPEGImages") / name,
                                  data=Tracks(masks, torch.tensor([0.9, 0.8]), labels, VOCABULARY)))
    out = tmp_path / "run"
    discover_tasks().get("video-instance").write_results(results, out, "youtube-vis-json")
    return out


def test_youtube_vis_run_is_joined_by_video_name_whatever_its_order(tmp_path: Path) -> None:
    gt = tmp_path / "valid.json"
    gt.write_text(json.dumps(youtube_vis_annotations([(1, "0a2b", 0, 3), (2, "1c3d", 1, 3)])))
    out = run_videos(tmp_path, [("1c3d", 1, 3), ("0a2b", 0, 3)])  # run ids: 1c3d = 1, 0a2b = 2
    assert evaluate_youtube_vis(out / "results.json", gt)["AP"] == 1.0
    _, evaluator = discover_tasks().file_evaluator_for("video-instance")
    assert evaluator.evaluate(out, gt)["AP"] == 1.0  # the run's folder, as `omg eval --task video-instance` gets it
    (out / "videos.json").unlink()  # without it the run's ids are taken as the annotation file's: videos swap
    assert evaluate_youtube_vis(out / "results.json", gt)["AP"] < 0.5


def test_youtube_vis_videos_the_run_left_out_are_reported(tmp_path: Path) -> None:
    gt = tmp_path / "valid.json"
    gt.write_text(json.dumps(youtube_vis_annotations([(4, "0a2b", 0, 3), (5, "ffff", 2, 2), (6, "1c3d", 1, 3)])))
    out = run_videos(tmp_path, [("1c3d", 1, 3), ("0a2b", 0, 3)])
    with pytest.warns(EvaluationAnomalyWarning, match=r"1 annotation videos the run did not cover .*video 5 "):
        figures = evaluate_youtube_vis(out, gt)
    assert figures["AR100"] < 1.0  # the left-out video's objects are missed


def test_youtube_vis_unknown_video_or_other_frame_count_is_a_clear_error(tmp_path: Path) -> None:
    gt = tmp_path / "valid.json"
    gt.write_text(json.dumps(youtube_vis_annotations([(1, "0a2b", 0, 3)])))
    out = run_videos(tmp_path / "missing", [("0a2b", 0, 3), ("9z9z", 1, 3)])
    with pytest.raises(ValueError, match=r"run video 2 \('9z9z'.* is not in the annotation file.*evaluate against"):
        evaluate_youtube_vis(out, gt)
    out = run_videos(tmp_path / "short", [("0a2b", 0, 2)])
    with pytest.raises(ValueError, match=r"'0a2b'.* has 2 frames but annotation video 1 has 3; run the video's"):
        evaluate_youtube_vis(out, gt)
