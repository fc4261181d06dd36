"""Every built-in output format, written sample by sample and read back by this repo's evaluators (the written files
as prediction and as ground truth where the formats allow, else against hand-built ground truth) and by the official
readers available here (pycocotools, ytvos' loadRes rules, PIL)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from omg_core.errors import InputError
from omg_core.result_writer import ResultWriter
from omg_core.results import (
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
from omg_core.task_info import TaskInfo
from omg_core.task_io import Prompts, TaskResult
from omg_tasks._writers import VIPSEG_CATEGORIES_FILE, davis_palette, omg_open_writer

VOCABULARY = ("wall", "sky", "car", "person")


def open_writer(output_format: str, tmp_path: Path, modality: str = "image", family: str = "semantic",
                folder: str = "out") -> ResultWriter:
    task = TaskInfo(name="probe", summary="a task for the writers", modality=modality, vocabulary="closed",
                    metrics=("m",), result_family=family, output_formats=(output_format,))
    output_dir = tmp_path / folder
    output_dir.mkdir(parents=True, exist_ok=True)
    writer = omg_open_writer(task=task, output_dir=output_dir, output_format=output_format)
    assert isinstance(writer, ResultWriter)
    return writer


def write_all(writer: ResultWriter, results: list[TaskResult]) -> list[Path]:
    written = [path for index, result in enumerate(results) for path in writer.write(result, index)]
    return [*writer.close(), *written]


def assert_complete(root: Path, written: list[Path]) -> None:
    """Every returned path exists, and no temporary file of an atomic write is left."""
    assert written and all(path.is_file() for path in written)
    assert not [path for path in root.rglob("*") if path.name.endswith(".partial")]


def png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image)


# -- semantic-png ------------------------------------------------------------------------------------------------


def test_semantic_png_reads_back_as_a_perfect_prediction_and_as_ground_truth(tmp_path: Path) -> None:
    from omg_eval.semantic_files import evaluate_semantic_files

    labels = torch.tensor([[0, 0, 1, 1, 3], [2, 2, 1, 1, 3], [2, 2, 0, 0, 0]])
    segments = (Segment(4, 1, 0.9, False), Segment(7, 2, 0.8, True), Segment(9, 3, 0.7, True))  # 9 has no pixel
    panoptic = PanopticMap(torch.tensor([[4, 4, 7], [4, 7, 7]]), segments, VOCABULARY)
    results = [TaskResult("semantic", Path("in/a.jpg"), SemanticMap(labels, VOCABULARY)),
               TaskResult("semantic", Path("other/a.jpg"), SemanticMap(labels.flip(1), VOCABULARY)),  # same stem
               TaskResult("ov-seg", Path("b.png"), panoptic)]
    writer = open_writer("semantic-png", tmp_path)
    written = write_all(writer, results)
    out = tmp_path / "out"
    assert sorted(written) == [out / "a.png", out / "a_1.png", out / "b.png"]
    assert_complete(out, written)
    assert png(out / "a.png").tolist() == labels.tolist() and png(out / "b.png").tolist() == [[1, 1, 2], [1, 2, 2]]
    figures = evaluate_semantic_files(out, out)
    assert figures["mIoU"] == pytest.approx(1.0) and figures["num_images"] == 3

    # unlabelled pixels are 255, which the evaluator skips in the ground truth
    partial = labels.clone()
    partial[0] = IGNORE_LABEL
    gt_writer = open_writer("semantic-png", tmp_path, folder="gt")
    write_all(gt_writer, [TaskResult("semantic", Path("a.jpg"), SemanticMap(partial, VOCABULARY))])
    assert (png(tmp_path / "gt" / "a.png")[0] == 255).all()
    assert evaluate_semantic_files(out, tmp_path / "gt")["mIoU"] == pytest.approx(1.0)


def test_semantic_png_refuses_a_vocabulary_an_8_bit_png_cannot_hold(tmp_path: Path) -> None:
    vocabulary = tuple(f"class {k}" for k in range(256))
    writer = open_writer("semantic-png", tmp_path)
    with pytest.raises(InputError, match="at most 255 classes"):
        writer.write(TaskResult("semantic", Path("a.jpg"), SemanticMap(torch.zeros(2, 2, dtype=torch.int64),
                                                                         vocabulary)), 0)


# -- coco-panoptic -----------------------------------------------------------------------------------------------


def test_coco_panoptic_scores_perfect_against_itself_and_lists_only_painted_segments(tmp_path: Path) -> None:
    from omg_data.image_io import rgb_to_id
    from omg_eval.panoptic_files import evaluate_panoptic_files

    ids = torch.tensor([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 0, 0]])
    segments = (Segment(1, 0, 0.9, False), Segment(2, 2, 0.8, True), Segment(3, 3, 0.7, True),
                Segment(5, 2, 0.6, True))  # 5 is listed but has no pixel
    first = PanopticMap(ids, segments, VOCABULARY)
    empty = PanopticMap(torch.zeros(3, 4, dtype=torch.int64), (), VOCABULARY)  # an image with no segment
    writer = open_writer("coco-panoptic", tmp_path, family="panoptic")
    written = write_all(writer, [TaskResult("panoptic", Path("x/one.jpg"), first),
                                 TaskResult("panoptic", Path("x/two.jpg"), empty)])
    out = tmp_path / "out"
    assert_complete(out, written)
    data = json.loads((out / "panoptic.json").read_text())
    assert [image["file_name"] for image in data["images"]] == ["one.jpg", "two.jpg"]
    one, two = data["annotations"]
    assert [s["id"] for s in one["segments_info"]] == [1, 2, 3] and two["segments_info"] == []
    assert [s["area"] for s in one["segments_info"]] == [4, 4, 2]
    assert [c["isthing"] for c in data["categories"]] == [0, 1, 1, 1]
    # panopticapi's rule: the PNG's ids (0 = void) and the JSON's segments are the same set, per image
    for annotation in data["annotations"]:
        in_png = set(np.unique(rgb_to_id(png(out / "panoptic" / annotation["file_name"])))) - {0}
        assert in_png == {s["id"] for s in annotation["segments_info"]}
    figures = evaluate_panoptic_files(out / "panoptic.json", out / "panoptic.json")
    assert figures["All"]["pq"] == pytest.approx(1.0) and figures["All"]["n"] == 3


# -- coco-results-json -------------------------------------------------------------------------------------------


def coco_ground_truth(path: Path, images: list[dict], masks_by_image: dict[int, list[tuple[torch.Tensor, int]]],
                      num_categories: int) -> Path:
    """A COCO instances JSON of hand-given masks (mask, category id) per image id."""
    annotations = []
    for image_id, masks in masks_by_image.items():
        for mask, category_id in masks:
            rle = mask_utils.encode(np.asfortranarray(mask.numpy().astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category_id,
                                "segmentation": rle, "area": float(mask.sum()), "iscrowd": 0,
                                "bbox": mask_utils.toBbox(rle).tolist()})
    categories = [{"id": k + 1, "name": f"c{k}"} for k in range(num_categories)]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def test_coco_results_json_scores_perfect_and_loads_with_pycocotools(tmp_path: Path) -> None:
    from omg_eval.instance_files import evaluate_instance_files

    masks = torch.zeros(3, 6, 8, dtype=torch.bool)
    masks[0, 1:4, 1:4] = True
    masks[1, 2:6, 4:8] = True  # masks[2] stays empty: a detection without a pixel, scored last
    instances = Instances(masks, torch.tensor([0.9, 0.8, 0.1]), torch.tensor([2, 3, 2]), VOCABULARY)
    nothing = Instances(torch.zeros(0, 6, 8, dtype=torch.bool), torch.zeros(0), torch.zeros(0, dtype=torch.int64),
                        VOCABULARY)
    writer = open_writer("coco-results-json", tmp_path, family="instances")
    written = write_all(writer, [TaskResult("instance", Path("a.jpg"), instances),
                                 TaskResult("instance", Path("b.jpg"), nothing)])
    out = tmp_path / "out"
    assert_complete(out, written)
    detections = json.loads((out / "results.json").read_text())
    assert [(d["image_id"], d["category_id"], d["file_name"]) for d in detections] == [(0, 3, "a.jpg"),
                                                                                        (0, 4, "a.jpg"),
                                                                                        (0, 3, "a.jpg")]
    images = json.loads((out / "images.json").read_text())
    assert images["images"] == [{"id": 0, "file_name": "a.jpg", "height": 6, "width": 8},
                                {"id": 1, "file_name": "b.jpg", "height": 6, "width": 8}]
    gt = coco_ground_truth(tmp_path / "gt.json", images["images"], {0: [(masks[0], 3), (masks[1], 4)]}, 4)
    figures = evaluate_instance_files(gt, out / "results.json")
    assert figures["AP"] == pytest.approx(1.0)
    coco = COCO(str(gt))
    loaded = coco.loadRes(str(out / "results.json"))
    areas = [ann["area"] for ann in loaded.loadAnns(loaded.getAnnIds())]
    assert areas == pytest.approx([9.0, 16.0, 0.0])  # loadRes takes box areas when the first result has a bbox
    decoded = [mask_utils.decode(d["segmentation"]).astype(bool) for d in detections]
    assert all(np.array_equal(decoded[k], masks[k].numpy()) for k in range(3))


def test_coco_results_json_writes_prompt_masks_with_and_without_classes(tmp_path: Path) -> None:
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[0, :2] = masks[1, 2:] = True
    writer = open_writer("coco-results-json", tmp_path, family="prompt-masks")
    write_all(writer, [TaskResult("interactive", Path("p.png"), PromptMasks(masks, torch.tensor([0.7, 0.6])))])
    detections = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [(d["category_id"], d["prompt"]) for d in detections] == [(1, 0), (1, 1)]
    assert json.loads((tmp_path / "out" / "images.json").read_text())["categories"] == [
        {"id": 1, "name": "object", "isthing": 1}]
    assert [d["bbox"] for d in detections] == [[0, 0, 4, 2], [0, 2, 4, 2]]
    labelled = PromptMasks(masks, torch.tensor([0.7, 0.6]), torch.tensor([3, 1]), VOCABULARY)
    writer = open_writer("coco-results-json", tmp_path, family="prompt-masks", folder="labelled")
    write_all(writer, [TaskResult("ov-interactive", Path("p.png"), labelled)])
    assert [d["category_id"] for d in json.loads((tmp_path / "labelled" / "results.json").read_text())] == [4, 2]


# -- interactive-json --------------------------------------------------------------------------------------------


def test_interactive_json_records_each_prompt_and_its_mask(tmp_path: Path) -> None:
    from omg_eval.interactive_files import evaluate_interactive_file

    masks = torch.zeros(2, 5, 5, dtype=torch.bool)
    masks[0, 1:3, 1:3] = True  # masks[1] is empty
    prompts = Prompts(points=torch.tensor([[[1.0, 1.0], [0.0, 0.0]], [[4.0, 4.0], [3.0, 3.0]]]),
                      point_labels=torch.tensor([[1, -1], [1, 0]]),
                      boxes=torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 2.0, 5.0, 5.0]]))
    result = TaskResult("interactive", Path("img.jpg"), PromptMasks(masks, torch.tensor([0.95, 0.2])), prompts=prompts)
    writer = open_writer("interactive-json", tmp_path, family="prompt-masks")
    written = write_all(writer, [result])
    assert_complete(tmp_path / "out", written)
    objects = json.loads((tmp_path / "out" / "interactive.json").read_text())["objects"]
    assert [(o["image_id"], o["file_name"], o["prompt"]) for o in objects] == [(0, "img.jpg", 0), (0, "img.jpg", 1)]
    assert objects[0]["points"] == [[1.0, 1.0]] and objects[0]["point_labels"] == [1]  # padding left out
    assert objects[1]["point_labels"] == [1, 0] and objects[1]["box"] == [2.0, 2.0, 5.0, 5.0]
    assert [o["area"] for o in objects] == [4, 0] and [o["score"] for o in objects] == pytest.approx([0.95, 0.2])
    # the recorded masks against hand-made ground truth give the figures the interactive evaluator reports
    gt = torch.zeros(2, 5, 5, dtype=torch.bool)
    gt[0, 1:3, 1:4] = True  # IoU 4 / 6 with prediction 0
    gt[1, 4, 4] = True  # IoU 0 with the empty prediction 1
    ious = []
    for entry, truth in zip(objects, gt):
        predicted = torch.from_numpy(mask_utils.decode(entry["segmentation"]).astype(bool))
        ious.append(float((predicted & truth).sum() / (predicted | truth).sum()))
    scored = tmp_path / "scored.json"
    scored.write_text(json.dumps({"objects": [{"click_ious": [iou], "box_iou": iou} for iou in ious]}))
    figures = evaluate_interactive_file(scored)
    assert figures["mIoU@1click"] == pytest.approx((4 / 6 + 0) / 2) and figures["num_objects"] == 2


# -- vspw-png ----------------------------------------------------------------------------------------------------


def test_vspw_png_scores_perfect_against_vspw_ground_truth(tmp_path: Path) -> None:
    from omg_eval.video_semantic_files import evaluate_vspw

    labels = torch.tensor([[[0, 1, 1], [2, 2, 1]], [[0, 0, 1], [2, 2, 2]], [[1, 1, 1], [1, 1, 1]]])
    one_frame = torch.tensor([[[3, 3, 0], [0, 3, 3]]])
    segments = (Segment(1, 1, 0.9, False), Segment(2, 3, 0.8, True))
    panoptic = PanopticVideo(torch.tensor([[[1, 1, 2]], [[2, 1, 1]]]), segments, VOCABULARY)
    results = [TaskResult("video-semantic", Path("videos/clip"), SemanticVideo(labels, VOCABULARY),
                          frame_names=("00010", "00015", "00020")),
               TaskResult("video-semantic", Path("videos/short.mp4"), SemanticVideo(one_frame, VOCABULARY)),
               TaskResult("video-panoptic", Path("videos/pan"), panoptic)]
    writer = open_writer("vspw-png", tmp_path, modality="video")
    written = write_all(writer, results)
    out = tmp_path / "out"
    assert_complete(out, written)
    assert sorted(str(p.relative_to(out)) for p in written) == [
        "clip/00010.png", "clip/00015.png", "clip/00020.png", "pan/00000.png", "pan/00001.png", "short/00000.png"]
    assert png(out / "pan" / "00001.png").tolist() == [[3, 1, 1]]
    # VSPW ground truth: <video>/mask/<frame>.png with raw labels = class + 1 (0 = "others")
    gt = tmp_path / "gt"
    for video, frames in (("clip", dict(zip(("00010", "00015", "00020"), labels))), ("short", {"00000": one_frame[0]}),
                          ("pan", {"00000": torch.tensor([[1, 1, 3]]), "00001": torch.tensor([[3, 1, 1]])})):
        (gt / video / "mask").mkdir(parents=True)
        for name, frame in frames.items():
            Image.fromarray((frame + 1).numpy().astype(np.uint8)).save(gt / video / "mask" / f"{name}.png")
    figures = evaluate_vspw(out, gt, num_classes=len(VOCABULARY))
    assert figures["mIoU"] == pytest.approx(1.0) and figures["num_videos"] == 3


# -- vipseg-png --------------------------------------------------------------------------------------------------


def vipseg_video() -> PanopticVideo:
    """Stuff of class 1, two thing tracks of class 2 (id 7 absent from frame 1), a thing of class 0 (whose raw values
    must start at 125), and a last frame with no segment."""
    ids = torch.tensor([
        [[3, 3, 7, 7], [3, 3, 8, 8], [5, 5, 5, 5]],
        [[3, 3, 8, 8], [3, 3, 8, 8], [5, 5, 0, 0]],
        [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
    ])
    segments = (Segment(3, 1, 0.9, False), Segment(7, 2, 0.8, True), Segment(8, 2, 0.7, True),
                Segment(5, 0, 0.6, True))
    return PanopticVideo(ids, segments, VOCABULARY)


def test_vipseg_png_raw_values_score_perfect_against_themselves(tmp_path: Path) -> None:
    from omg_eval.video_panoptic_files import evaluate_vipseg, find_label_space

    one_frame = PanopticVideo(torch.tensor([[[3, 3], [7, 0]]]), (Segment(3, 3, 0.5, False), Segment(7, 2, 0.5, True)),
                              VOCABULARY)
    writer = open_writer("vipseg-png", tmp_path, modality="video", family="panoptic")
    written = write_all(writer, [TaskResult("video-panoptic", Path("v/first"), vipseg_video(),
                                            frame_names=("a", "b", "c")),
                                 TaskResult("video-panoptic", Path("v/second"), one_frame)])
    out = tmp_path / "out"
    assert_complete(out, written)
    raw = png(out / "panomasks" / "first" / "a.png")
    assert raw.dtype == np.uint16
    assert raw.tolist() == [[2, 2, 300, 300], [2, 2, 301, 301], [125, 125, 125, 125]]
    assert (png(out / "panomasks" / "first" / "c.png") == 0).all()
    assert png(out / "panomasks" / "second" / "00000.png").tolist() == [[4, 4], [300, 0]]
    categories = json.loads((out / VIPSEG_CATEGORIES_FILE).read_text())
    assert [(c["id"], c["name"], c["isthing"]) for c in categories] == [(0, "wall", 1), (1, "sky", 0), (2, "car", 1),
                                                                        (3, "person", 0)]
    assert find_label_space(out / "panomasks")[:2] == (4, (0, 2))  # the evaluator finds the categories file
    figures = evaluate_vipseg(out / "panomasks", out / "panomasks", window_sizes=(0, 5), secondary_window_sizes=None,
                              stq_official_numbering=False)
    assert figures["vpq"] == pytest.approx(1.0) and figures["stq"] == pytest.approx(1.0)
    assert figures["num_videos"] == 2


def test_vipseg_png_leaves_the_lowest_scored_tracks_void_beyond_100_per_class(tmp_path: Path) -> None:
    count = 101
    ids = torch.arange(1, count + 1).reshape(1, 1, count)
    segments = tuple(Segment(k, 3, k / 1000, True) for k in range(1, count + 1))  # id 1 scores lowest
    writer = open_writer("vipseg-png", tmp_path, modality="video", family="panoptic")
    with pytest.warns(UserWarning, match="101 tracks of class 3"):
        write_all(writer, [TaskResult("video-panoptic", Path("crowd"), PanopticVideo(ids, segments, VOCABULARY))])
    raw = png(tmp_path / "out" / "panomasks" / "crowd" / "00000.png")[0]
    assert raw[0] == 0 and raw[1:].tolist() == [400 + k for k in range(100)]


# -- youtube-vis-json --------------------------------------------------------------------------------------------


def ytvos_load_res(results: list[dict], videos: list[dict]) -> list[dict]:
    """The checks and derived fields of youtubevos/cocoapi's ``YTVOS.loadRes`` (the fork is not installed here)."""
    by_id = {video["id"]: video for video in videos}
    assert isinstance(results, list) and {r["video_id"] for r in results} <= set(by_id)
    for number, result in enumerate(results):
        assert len(result["segmentations"]) == by_id[result["video_id"]]["length"]  # one entry per frame
        result["areas"] = [float(mask_utils.area(s)) if s else None for s in result["segmentations"]]
        result["bboxes"] = [mask_utils.toBbox(s).tolist() if s else None for s in result["segmentations"]]
        present = [area for area in result["areas"] if area]
        result["avg_area"] = float(np.mean(present)) if present else 0
        result["id"] = number + 1
    return results


def test_youtube_vis_json_scores_perfect_and_follows_loadres(tmp_path: Path) -> None:
    from omg_eval.video_instance_io import evaluate_youtube_vis

    masks = torch.zeros(3, 3, 4, 5, dtype=torch.bool)
    masks[0, :, 0:2, 0:2] = True
    masks[1, 0, 2:4, 2:5] = masks[1, 2, 2:4, 3:5] = True  # absent from frame 1
    # masks[2] never has a pixel
    tracks = Tracks(masks, torch.tensor([0.9, 0.8, 0.05]), torch.tensor([0, 2, 1]), VOCABULARY)
    single = torch.zeros(1, 1, 4, 5, dtype=torch.bool)
    single[0, 0, 1:3, 1:3] = True
    one_frame = Tracks(single, torch.tensor([0.7]), torch.tensor([3]), VOCABULARY)
    writer = open_writer("youtube-vis-json", tmp_path, modality="video", family="instances")
    written = write_all(writer, [TaskResult("video-instance", Path("JPEGImages/0a1b"), tracks,
                                            frame_names=("00000", "00005", "00010")),
                                 TaskResult("video-instance", Path("JPEGImages/ff00"), one_frame)])
    out = tmp_path / "out"
    assert_complete(out, written)
    results = json.loads((out / "results.json").read_text())
    catalogue = json.loads((out / "videos.json").read_text())
    assert [(v["id"], v["name"], v["length"], v["frame_names"]) for v in catalogue["videos"]] == [
        (1, "0a1b", 3, ["00000", "00005", "00010"]), (2, "ff00", 1, ["00000"])]
    assert [(r["video_id"], r["category_id"]) for r in results] == [(1, 1), (1, 3), (1, 2), (2, 4)]
    assert results[1]["segmentations"][1] is None and results[2]["segmentations"] == [None, None, None]
    loaded = ytvos_load_res(json.loads((out / "results.json").read_text()), catalogue["videos"])
    assert loaded[0]["areas"] == [4.0, 4.0, 4.0] and loaded[1]["areas"] == [6.0, None, 4.0]
    assert loaded[2]["avg_area"] == 0
    # ground truth: the non-empty tracks as annotations of the videos videos.json describes
    annotations = []
    for result in results[:2] + results[3:]:
        annotations.append({"id": len(annotations) + 1, "video_id": result["video_id"], "iscrowd": 0,
                            "category_id": result["category_id"], "segmentations": result["segmentations"],
                            "areas": [float(mask_utils.area(s)) if s else None for s in result["segmentations"]]})
    gt = {"videos": catalogue["videos"], "categories": catalogue["categories"], "annotations": annotations}
    figures = evaluate_youtube_vis(out / "results.json", gt)
    assert figures["AP"] == pytest.approx(1.0)


# -- davis-png ---------------------------------------------------------------------------------------------------


def test_davis_png_palette_ids_follow_the_prompts_and_score_perfect(tmp_path: Path) -> None:
    from omg_eval.vos_io import evaluate_davis

    masks = torch.zeros(3, 4, 4, 4, dtype=torch.bool)
    masks[0, :, 0:2, 0:3] = True
    masks[1, :, 1:3, 2:4] = True  # overlaps prompt 0 at (1, 2); it scores higher, so it wins there
    masks[2, 0, 3, 0] = masks[2, 3, 3, 0] = True  # absent from frames 1 and 2
    tracks = PromptTracks(masks, torch.tensor([0.5, 0.9, 0.5]))
    one_frame = PromptTracks(masks[:2, :1], torch.tensor([0.3, 0.3]))  # a tie: the lower prompt number wins
    writer = open_writer("davis-png", tmp_path, modality="video", family="prompt-masks")
    written = write_all(writer, [TaskResult("vos", Path("JPEGImages/480p/bear"), tracks,
                                            frame_names=("00000", "00001", "00002", "00003")),
                                 TaskResult("vos", Path("JPEGImages/480p/dog"), one_frame)])
    out = tmp_path / "out"
    assert_complete(out, written)
    with Image.open(out / "bear" / "00000.png") as image:
        assert image.mode == "P" and bytes(image.getpalette()) == davis_palette()
        ids = np.array(image)
    assert ids.tolist() == [[1, 1, 1, 0], [1, 1, 2, 2], [0, 0, 2, 2], [3, 0, 0, 0]]
    assert png(out / "dog" / "00000.png")[1, 2] == 1
    figures = evaluate_davis(out, out, sequences=["bear"])
    assert figures["J&F-Mean"] == pytest.approx(1.0)


def test_davis_png_refuses_more_objects_than_8_bit_ids_hold(tmp_path: Path) -> None:
    writer = open_writer("davis-png", tmp_path, modality="video", family="prompt-masks")
    many = PromptTracks(torch.ones(255, 1, 1, 1, dtype=torch.bool), torch.ones(255))
    with pytest.raises(InputError, match="254 objects"):
        writer.write(TaskResult("vos", Path("v"), many), 0)


# -- interruption: gathered files describe exactly the samples written ---------------------------------------------


def three_samples(output_format: str) -> tuple[str, str, list[TaskResult]]:
    """(modality, family, three results) for a format whose gathered file lists samples."""
    mask = torch.zeros(1, 3, 3, dtype=torch.bool)
    mask[0, 1, 1] = True
    if output_format == "coco-panoptic":
        make = lambda k: PanopticMap(torch.full((3, 3), k + 1), (Segment(k + 1, 1, 0.5, False),), VOCABULARY)  # noqa: E731
        return "image", "panoptic", [TaskResult("panoptic", Path(f"{k}.jpg"), make(k)) for k in range(3)]
    if output_format == "coco-results-json":
        made = Instances(mask, torch.tensor([0.5]), torch.tensor([1]), VOCABULARY)
        return "image", "instances", [TaskResult("instance", Path(f"{k}.jpg"), made) for k in range(3)]
    if output_format == "interactive-json":
        made = PromptMasks(mask, torch.tensor([0.5]))
        return "image", "prompt-masks", [TaskResult("interactive", Path(f"{k}.jpg"), made) for k in range(3)]
    made = Tracks(mask[:, None], torch.tensor([0.5]), torch.tensor([1]), VOCABULARY)
    return "video", "instances", [TaskResult("video-instance", Path(f"v{k}"), made) for k in range(3)]


def listed_samples(output_format: str, out: Path) -> list[int]:
    if output_format == "coco-panoptic":
        return [a["image_id"] for a in json.loads((out / "panoptic.json").read_text())["annotations"]]
    if output_format == "coco-results-json":
        return [d["image_id"] for d in json.loads((out / "results.json").read_text())]
    if output_format == "interactive-json":
        return [o["image_id"] for o in json.loads((out / "interactive.json").read_text())["objects"]]
    return [r["video_id"] - 1 for r in json.loads((out / "results.json").read_text())]


@pytest.mark.parametrize("output_format", ["coco-panoptic", "coco-results-json", "interactive-json",
                                           "youtube-vis-json"])
def test_close_after_two_of_three_samples_describes_exactly_those_two(output_format: str, tmp_path: Path) -> None:
    modality, family, results = three_samples(output_format)
    writer = open_writer(output_format, tmp_path, modality=modality, family=family)
    for index, result in enumerate(results[:2]):
        writer.write(result, index)
    closed = writer.close()
    out = tmp_path / "out"
    assert_complete(out, closed)
    assert listed_samples(output_format, out) == [0, 1]


# -- which tasks each format serves --------------------------------------------------------------------------------


def test_formats_serve_their_modality_only() -> None:
    from omg_core.registry import discover_tasks

    registry = discover_tasks()
    expected = {"semantic": ["semantic-png"], "video-semantic": ["vspw-png"], "video-instance": ["youtube-vis-json"],
                "video-panoptic": ["vipseg-png", "vspw-png"], "instance": ["coco-results-json"],
                "interactive": ["interactive-json", "coco-results-json"]}
    for task, formats in expected.items():
        assert registry.formats_for(registry.get(task).info) == formats, task
    assert registry.formats_for(registry.get("panoptic").info)[:2] == ["coco-panoptic", "semantic-png"]


def test_writers_pass_on_other_formats_and_refuse_the_wrong_result(tmp_path: Path) -> None:
    task = TaskInfo(name="probe", summary="s", modality="image", vocabulary="closed", metrics=("m",),
                    result_family="semantic", output_formats=("semantic-png",))
    assert omg_open_writer(task=task, output_dir=tmp_path, output_format="someone-elses") is None
    writer = open_writer("semantic-png", tmp_path)
    with pytest.raises(TypeError, match="writes SemanticMap or PanopticMap results, got Instances"):
        writer.write(TaskResult("probe", None, Instances(torch.zeros(0, 2, 2, dtype=torch.bool), torch.zeros(0),
                                                         torch.zeros(0, dtype=torch.int64), VOCABULARY)), 0)
