"""`omg eval` scores what `omg run` writes: interactive.json against COCO instances, a YouTube-VIS run's
results.json + videos.json against an annotation file whose videos are in another order, and the whole chain
`omg data synth` -> `omg run` -> `omg eval` for panoptic, instance, video-instance and interactive runs, whose
images a run numbers by input position and the ground truth by the data set's ids."""

from __future__ import annotations

import json
import shutil
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
from omg_eval.instance_files import evaluate_instance_files
from omg_eval.interactive_files import evaluate_interactive_file
from omg_eval.panoptic_files import evaluate_panoptic_files
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


# -- the whole chain: `omg data synth` -> `omg run` -> `omg eval` ---------------------------------------------------
# A run numbers its images by input position (0..N-1) and the ground truth by the data set's ids (synth: 1..N); the
# evaluators pair them by file name, so a run's files score against the data set they were made from.

SYNTH_SIZE = "64x64"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def synth_and_run(root: Path, data_format: str, task: str, *extra: str, num: int = 3) -> tuple[Path, Path]:
    """(the synthetic data set's folder, the folder `omg run --task task` wrote on its images)."""
    data, out = root / "data", root / "run"
    code, output = invoke("data", "synth", "--format", data_format, "--num", str(num), "--size", SYNTH_SIZE,
                          "--frames", "2", "--out", str(data))
    assert code == 0, output
    inputs = data if data_format == "youtube-vis" else data / "images"
    code, output = invoke("run", "--task", task, "--input", str(inputs), "--output", str(out), *extra)
    assert code == 0, output
    return data, out


def eval_figures(tmp_path: Path, task: str, predictions: Path, ground_truth: Path) -> dict:
    out = tmp_path / f"figures-{len(list(tmp_path.glob('figures-*')))}.json"
    code, output = invoke("eval", "--task", task, "--predictions", str(predictions), "--ground-truth",
                          str(ground_truth), "--output", str(out))
    assert code == 0, output
    return json.loads(out.read_text())


def renumbered(records: list[dict], key: str, order: list[int], ids: dict) -> list[dict]:
    """``records`` in ``order`` with ``key`` replaced through ``ids``: what a run given the inputs in that order
    writes."""
    return [{**records[index], key: ids[records[index][key]]} for index in order]


@pytest.fixture(scope="module")
def panoptic_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return synth_and_run(tmp_path_factory.mktemp("panoptic"), "coco-panoptic", "panoptic")


def test_panoptic_run_scores_against_the_synthetic_ground_truth_in_any_order(
    panoptic_run: tuple[Path, Path], tmp_path: Path
) -> None:
    data, run = panoptic_run
    gt = data / "panoptic.json"
    predictions = json.loads((run / "panoptic.json").read_text())
    assert [image["id"] for image in predictions["images"]] == [0, 1, 2]  # positions; the ground truth has 1, 2, 3
    figures = eval_figures(tmp_path, "ps", run / "panoptic.json", gt)
    assert figures["All"]["n"] > 0 and 0 < figures["All"]["pq"] <= 1
    # the same predictions as a run given the images in reverse order writes them: the same figures
    shuffled = tmp_path / "shuffled"
    shutil.copytree(run / "panoptic", shuffled / "panoptic")
    ids = {0: 2, 1: 1, 2: 0}
    (shuffled / "panoptic.json").write_text(json.dumps({
        "images": renumbered(predictions["images"], "id", [2, 1, 0], ids),
        "annotations": renumbered(predictions["annotations"], "image_id", [2, 1, 0], ids),
        "categories": predictions["categories"]}))
    assert eval_figures(tmp_path, "ps", shuffled / "panoptic.json", gt) == figures
    # the ground truth itself, numbered as a run numbers it (reversed): every image with its own ground truth
    truth = json.loads(gt.read_text())
    perfect = tmp_path / "perfect"
    shutil.copytree(data / "panoptic", perfect / "panoptic")
    ids = {1: 2, 2: 1, 3: 0}
    (perfect / "panoptic.json").write_text(json.dumps({
        "images": renumbered(truth["images"], "id", [2, 1, 0], ids),
        "annotations": renumbered(truth["annotations"], "image_id", [2, 1, 0], ids),
        "categories": truth["categories"]}))
    assert eval_figures(tmp_path, "ps", perfect / "panoptic.json", gt)["All"]["pq"] == pytest.approx(1.0)


def test_panoptic_names_the_ground_truth_lacks_or_shares_are_clear_errors(
    panoptic_run: tuple[Path, Path], tmp_path: Path
) -> None:
    data, run = panoptic_run
    predictions = json.loads((run / "panoptic.json").read_text())
    predictions["images"][1]["file_name"] = "elsewhere.jpg"
    foreign = tmp_path / "foreign"
    shutil.copytree(run / "panoptic", foreign / "panoptic")
    (foreign / "panoptic.json").write_text(json.dumps(predictions))
    code, output = invoke("eval", "--task", "ps", "--predictions", str(foreign / "panoptic.json"),
                          "--ground-truth", str(data / "panoptic.json"))
    flat = " ".join(output.split())
    assert code == EXIT_USER_ERROR
    assert "prediction annotation 1 of" in flat and "is for image 'elsewhere.jpg', which ground truth" in flat
    assert "panoptic.json does not hold" in flat and "evaluate against the ground truth of the images" in flat
    truth = json.loads((data / "panoptic.json").read_text())
    truth["images"][2]["file_name"] = "other/" + truth["images"][0]["file_name"]  # two images named alike
    shared = tmp_path / "shared"
    shutil.copytree(data / "panoptic", shared / "panoptic")
    (shared / "panoptic.json").write_text(json.dumps(truth))
    with pytest.raises(ValueError, match=r"prediction annotation 0 of .* is for image '000000000001.jpg', but 2 "
                                         r"images of ground truth .*shared/panoptic.json have that file name \(ids "
                                         r"1, 3\).*give those ground-truth images distinct file names"):
        evaluate_panoptic_files(shared / "panoptic.json", run / "panoptic.json")


def test_panoptic_predictions_without_file_names_pair_by_image_id_as_panopticapi(
    panoptic_run: tuple[Path, Path], tmp_path: Path
) -> None:
    data, run = panoptic_run
    predictions = json.loads((run / "panoptic.json").read_text())
    official = tmp_path / "official"
    shutil.copytree(run / "panoptic", official / "panoptic")
    (official / "panoptic.json").write_text(json.dumps({"annotations": predictions["annotations"]}))
    with pytest.raises(ValueError, match=r"^no prediction for image 3; every ground-truth image needs a prediction"):
        evaluate_panoptic_files(data / "panoptic.json", official / "panoptic.json")  # ids 0..2: as pq_compute


@pytest.fixture(scope="module")
def instance_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return synth_and_run(tmp_path_factory.mktemp("instance"), "coco-instances", "instance")


def test_instance_run_scores_against_the_synthetic_ground_truth_in_any_order(
    instance_run: tuple[Path, Path], tmp_path: Path
) -> None:
    data, run = instance_run
    gt = data / "instances.json"
    results = json.loads((run / "results.json").read_text())
    assert {result["image_id"] for result in results} <= {0, 1, 2}  # positions; the ground truth has 1, 2, 3
    figures = eval_figures(tmp_path, "instance", run / "results.json", gt)
    assert 0 < figures["AP"] <= 1
    # the same detections as a run given the images in reverse order writes them: the same figures
    ids = {0: 2, 1: 1, 2: 0}
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    order = sorted(range(len(results)), key=lambda k: (ids[results[k]["image_id"]], k))
    (shuffled / "results.json").write_text(json.dumps(renumbered(results, "image_id", order, ids)))
    assert eval_figures(tmp_path, "instance", shuffled / "results.json", gt)["AP"] == figures["AP"]
    # the ground truth itself, numbered as a run numbers it (reversed), scores 1
    truth = json.loads(gt.read_text())
    names = {image["id"]: image["file_name"] for image in truth["images"]}
    ids = {1: 2, 2: 1, 3: 0}
    perfect = [{"image_id": ids[a["image_id"]], "file_name": names[a["image_id"]], "category_id": a["category_id"],
                "segmentation": a["segmentation"], "bbox": a["bbox"], "score": 1.0} for a in truth["annotations"]]
    (tmp_path / "perfect.json").write_text(json.dumps(perfect))
    assert eval_figures(tmp_path, "instance", tmp_path / "perfect.json", gt)["AP"] == pytest.approx(1.0)
    for result in perfect:  # without file names the ids are taken as the ground truth's, as pycocotools takes them
        del result["file_name"]
    (tmp_path / "official.json").write_text(json.dumps(perfect))
    with pytest.raises(ValueError, match="is for image 0, which is not in the ground truth"):
        evaluate_instance_files(gt, tmp_path / "official.json")


def test_instance_names_the_ground_truth_lacks_or_shares_and_mixed_results_are_clear_errors(
    instance_run: tuple[Path, Path], tmp_path: Path
) -> None:
    data, run = instance_run
    gt = data / "instances.json"
    results = json.loads((run / "results.json").read_text())
    folder = tmp_path / "foreign"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps([{**results[0], "file_name": "elsewhere.jpg"}, *results[1:]]))
    code, output = invoke("eval", "--task", "instance", "--predictions", str(folder / "results.json"),
                          "--ground-truth", str(gt))
    flat = " ".join(output.split())
    assert code == EXIT_USER_ERROR
    assert "result 0 of" in flat and "is for image 'elsewhere.jpg', which ground truth" in flat
    assert "instances.json does not hold" in flat
    # an image of the run without a detection is checked through its images.json
    catalogue = json.loads((run / "images.json").read_text())
    catalogue["images"].append({"id": 3, "file_name": "ghost.jpg", "height": 64, "width": 64})
    shutil.copy(run / "results.json", folder / "results.json")
    (folder / "images.json").write_text(json.dumps(catalogue))
    with pytest.raises(ValueError, match=r"image 3 of the run's .*images.json is for image 'ghost.jpg', which "
                                         r"ground truth .*instances.json does not hold"):
        evaluate_instance_files(gt, folder / "results.json")
    truth = json.loads(gt.read_text())
    truth["images"][2]["file_name"] = "other/" + truth["images"][0]["file_name"]
    (tmp_path / "shared.json").write_text(json.dumps(truth))
    with pytest.raises(ValueError, match=r"is for image '000000000001.jpg', but 2 images of ground truth "
                                         r".*shared.json have that file name \(ids 1, 3\)"):
        evaluate_instance_files(tmp_path / "shared.json", run / "results.json")
    mixed = [results[0], {k: v for k, v in results[1].items() if k != "file_name"}]
    (tmp_path / "mixed.json").write_text(json.dumps(mixed))
    with pytest.raises(ValueError, match=r"result 1 has no 'file_name' but result 0 has one; give every result"):
        evaluate_instance_files(gt, tmp_path / "mixed.json")


@pytest.fixture(scope="module")
def video_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return synth_and_run(tmp_path_factory.mktemp("video"), "youtube-vis", "video-instance", num=2)


def test_video_instance_run_scores_against_the_synthetic_ground_truth(
    video_run: tuple[Path, Path], tmp_path: Path
) -> None:
    data, run = video_run
    gt = data / "instances.json"
    figures = eval_figures(tmp_path, "video-instance", run, gt)
    assert 0 <= figures["AP"] <= 1 and figures["AP"] > 0
    # the run's videos.json, renumbered as a run given the videos in reverse order writes it: the same figures
    results, catalogue = json.loads((run / "results.json").read_text()), json.loads((run / "videos.json").read_text())
    ids = {1: 2, 2: 1}
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    order = sorted(range(len(results)), key=lambda k: (ids[results[k]["video_id"]], k))
    (shuffled / "results.json").write_text(json.dumps(renumbered(results, "video_id", order, ids)))
    (shuffled / "videos.json").write_text(json.dumps({**catalogue, "videos": renumbered(catalogue["videos"], "id",
                                                                                        [1, 0], ids)}))
    assert eval_figures(tmp_path, "video-instance", shuffled, gt)["AP"] == figures["AP"]


def test_video_instance_names_the_annotation_file_lacks_or_shares_are_clear_errors(
    video_run: tuple[Path, Path], tmp_path: Path
) -> None:
    data, run = video_run
    truth = json.loads((data / "instances.json").read_text())
    first, second = truth["videos"]
    second["file_names"] = [name.replace("video_00002", "video_00009") for name in second["file_names"]]
    (tmp_path / "renamed.json").write_text(json.dumps(truth))
    code, output = invoke("eval", "--task", "video-instance", "--predictions", str(run), "--ground-truth",
                          str(tmp_path / "renamed.json"))
    flat = " ".join(output.split())
    assert code == EXIT_USER_ERROR
    assert "run video 2 ('video_00002'" in flat and "is not in the annotation file" in flat
    assert "renamed.json (no video whose frames are in a folder named 'video_00002'" in flat
    second["file_names"] = list(first["file_names"])  # two annotation videos of one name
    (tmp_path / "shared.json").write_text(json.dumps(truth))
    with pytest.raises(ValueError, match=r"run video 1 \('video_00001'.*: 2 videos of the annotation file "
                                         r".*shared.json have that name \(ids 1, 2\).*distinct folder names"):
        evaluate_youtube_vis(run, tmp_path / "shared.json")


def test_interactive_run_scores_against_the_synthetic_ground_truth(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"boxes": [[4, 4, 40, 40]]}))
    data, run = synth_and_run(tmp_path, "coco-instances", "interactive", "--prompts", str(prompts),
                              "--format", "interactive-json", num=2)
    figures = eval_figures(tmp_path, "interactive", run / "interactive.json", data / "instances.json")
    assert figures["num_objects"] == 2 and 0 < figures["mIoU@box"] <= 1
