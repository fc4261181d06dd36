"""Write-then-read round trips: every writer's output, read by the real reader, gives back the same masks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

from omg_data.ade20k import read_ade20k_panoptic, read_ade20k_semantic
from omg_data.cityscapes import read_cityscapes_panoptic
from omg_data.coco_instances import read_coco_instances, read_coco_results, write_coco_results
from omg_data.coco_panoptic import read_coco_panoptic
from omg_data.coco_sam import read_coco_sam
from omg_data.davis import read_davis, write_davis_results
from omg_data.errors import DataError
from omg_data.image_io import load_label_png
from omg_data.sample import Sample
from omg_data.semantic_png import IGNORE_VALUE, class_map_from_sample, read_semantic_png
from omg_data.synthetic import ShapesWorld
from omg_data.vipseg import read_vipseg, read_vipseg_categories, read_vipseg_raw, write_vipseg
from omg_data.vspw import read_vspw, write_vspw_predictions
from omg_data.youtube_vis import read_youtube_vis, read_youtube_vis_results, write_youtube_vis_results

NUM = 4
FRAMES = 5


@pytest.fixture(scope="module")
def world() -> ShapesWorld:
    # high crowd / void rates so the awkward cases (crowd, ignore) appear in a handful of samples
    return ShapesWorld(seed=7, image_size=(48, 64), crowd_probability=0.6, void_probability=0.6)


@pytest.fixture(scope="module")
def images(world: ShapesWorld) -> list[Sample]:
    return [world.image(i) for i in range(NUM)]


@pytest.fixture(scope="module")
def videos(world: ShapesWorld) -> list[Sample]:
    return [world.video(i, FRAMES) for i in range(NUM)]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, world: ShapesWorld) -> Path:
    out = tmp_path_factory.mktemp("synth")
    for name in (
        "coco-panoptic",
        "coco-instances",
        "semantic",
        "ade20k",
        "cityscapes",
        "youtube-vis",
        "vipseg",
        "vspw",
        "davis",
    ):
        world.write_dataset(name, out / name, NUM, num_frames=FRAMES)
    return out


def by_instance(sample: Sample) -> dict[int, tuple[int, bool, bool, torch.Tensor]]:
    return {
        int(i): (int(c), bool(t), bool(k), m)
        for i, c, t, k, m in zip(
            sample.instance_ids, sample.class_ids, sample.is_thing, sample.is_crowd, sample.masks, strict=True
        )
    }


def things_only(sample: Sample) -> Sample:
    """What the instance formats hold: things, with file-wide ids (sample id * 1000 + instance id), no void."""
    keep = sample.is_thing
    return replace(
        sample,
        masks=sample.masks[keep],
        class_ids=sample.class_ids[keep],
        is_thing=sample.is_thing[keep],
        instance_ids=int(sample.sample_id) * 1000 + sample.instance_ids[keep],
        is_crowd=sample.is_crowd[keep],
        ignore=torch.zeros_like(sample.ignore),
    )


def assert_same_segments(read: Sample, expected: Sample) -> None:
    got, want = by_instance(read), by_instance(expected)
    assert got.keys() == want.keys()
    for key, (class_id, thing, crowd, mask) in want.items():
        assert got[key][:3] == (class_id, thing, crowd), key
        assert torch.equal(got[key][3], mask), f"mask of segment {key} differs"
    assert torch.equal(read.ignore, expected.ignore)


def test_awkward_cases_present(images: list[Sample], videos: list[Sample]) -> None:
    # the round trips below are only meaningful if crowd, void and absent-in-frame segments occur
    assert any(s.is_crowd.any() for s in images)
    assert any(s.ignore.any() for s in images)
    assert any((~v.present()).any() for v in videos)


def test_coco_panoptic(root: Path, images: list[Sample]) -> None:
    base = root / "coco-panoptic"
    read = list(read_coco_panoptic(base / "panoptic.json", base / "panoptic", base / "images"))
    assert [s.sample_id for s in read] == [s.sample_id for s in images]
    for got, want in zip(read, images, strict=True):
        got.validate()
        assert_same_segments(got, want)
        assert got.categories == want.categories  # names, thing flags, colours and held-out flags survive
        # JPEG is lossy: pixels close, not equal
        assert (got.frames.float() - want.frames.float()).abs().mean() < 8


def test_coco_instances_matches_pycocotools(root: Path, images: list[Sample]) -> None:
    base = root / "coco-instances"
    read = list(read_coco_instances(base / "instances.json", base / "images"))
    coco = COCO(str(base / "instances.json"))
    kinds = set()
    for got, want in zip(read, images, strict=True):
        expected = things_only(want)
        assert_same_segments(got, expected)
        for annotation in coco.loadAnns(coco.getAnnIds(imgIds=[got.sample_id])):
            row = int((got.instance_ids == annotation["id"]).nonzero()[0, 0])
            assert np.array_equal(coco.annToMask(annotation).astype(bool), got.masks[row, 0].numpy())
            segmentation = annotation["segmentation"]
            kinds.add(
                "polygon"
                if isinstance(segmentation, list)
                else "uncompressed"
                if isinstance(segmentation["counts"], list)
                else "rle"
            )
    assert kinds == {"polygon", "uncompressed", "rle"}  # all three encodings were exercised


def test_coco_sam_prompts_inside_masks(root: Path, images: list[Sample]) -> None:
    base = root / "coco-instances"
    first = list(read_coco_sam(base / "instances.json", base / "images", num_points=3, seed=1))
    second = list(read_coco_sam(base / "instances.json", base / "images", num_points=3, seed=1))
    for sample, again, original in zip(first, second, images, strict=True):
        assert torch.equal(sample.prompts.points, again.prompts.points)  # reproducible
        assert sample.class_ids.eq(1).all() and sample.categories.names == ["object"]
        expected_objects = int((original.is_thing & ~original.is_crowd).sum())
        assert sample.num_segments == expected_objects
        assert sample.prompts.points.shape == (expected_objects, 3, 2)
        for mask, points, box in zip(sample.masks[:, 0], sample.prompts.points, sample.prompts.boxes, strict=True):
            xs, ys = points[:, 0].long(), points[:, 1].long()
            assert mask[ys, xs].all()
            rows, cols = mask.nonzero(as_tuple=True)
            assert box.tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
        crowd = original.masks[original.is_crowd & original.is_thing].any(dim=0)
        assert torch.equal(sample.ignore, crowd)


def test_semantic_png(root: Path, images: list[Sample]) -> None:
    base = root / "semantic"
    read = list(read_semantic_png(base / "images", base / "labels", images[0].categories))
    for got, want in zip(read, images, strict=True):
        expected = class_map_from_sample(want, 0, "expected")
        assert np.array_equal(class_map_from_sample(got, 0, "read"), expected)
        assert torch.equal(got.ignore[0], torch.from_numpy(expected == IGNORE_VALUE))


def test_ade20k_semantic_reduce_zero_label_and_panoptic(root: Path, images: list[Sample]) -> None:
    base = root / "ade20k"
    raw = load_label_png(base / "annotations" / "validation" / "ADE_val_00000001.png")
    expected = class_map_from_sample(images[0], 0, "expected")
    assert np.array_equal(raw, np.where(expected == IGNORE_VALUE, 0, expected + 1))  # stored as k + 1, 0 = other
    semantic = list(read_ade20k_semantic(base, "val", categories=images[0].categories))
    panoptic = list(read_ade20k_panoptic(base, "val"))
    for sem, pan, want in zip(semantic, panoptic, images, strict=True):
        assert np.array_equal(class_map_from_sample(sem, 0, "read"), class_map_from_sample(want, 0, "want"))
        assert_same_segments(pan, want)


def test_cityscapes_panoptic(root: Path, images: list[Sample]) -> None:
    base = root / "cityscapes"
    assert (base / "leftImg8bit" / "val" / "synth" / "synth_000000_000001_leftImg8bit.png").is_file()
    read = list(read_cityscapes_panoptic(base, "val"))
    for got, want in zip(read, images, strict=True):
        assert got.sample_id == f"synth_000000_{int(want.sample_id):06d}"
        assert_same_segments(got, want)
        assert torch.equal(got.frames, want.frames)  # PNG images are lossless


def test_youtube_vis_gt_and_results(root: Path, videos: list[Sample], tmp_path: Path) -> None:
    base = root / "youtube-vis"
    read = list(read_youtube_vis(base / "instances.json", base / "JPEGImages"))
    for got in read:
        got.validate()
        assert got.is_video and got.num_frames == FRAMES
    # the JSON holds null exactly where a track is absent
    import json

    data = json.loads((base / "instances.json").read_text())
    nulls = sum(s is None for a in data["annotations"] for s in a["segmentations"])
    assert nulls == sum(int((~v.present()).sum()) for v in videos)
    for got, want in zip(read, videos, strict=True):
        assert_same_segments(got, things_only(want))
    # predictions: results JSON -> read back
    predictions = [replace(v, scores=torch.linspace(0.9, 0.1, v.num_segments)) for v in videos]
    write_youtube_vis_results(predictions, tmp_path / "results.json")
    back = read_youtube_vis_results(tmp_path / "results.json", videos[0].categories)
    for prediction in predictions:
        got = back[prediction.sample_id]
        assert torch.equal(got.masks, prediction.masks)
        assert torch.equal(got.class_ids, prediction.class_ids)
        assert torch.allclose(got.scores, prediction.scores)


def test_coco_results_round_trip(images: list[Sample], tmp_path: Path) -> None:
    predictions = [
        replace(s, scores=torch.rand(s.num_segments, generator=torch.Generator().manual_seed(0))) for s in images
    ]
    write_coco_results(predictions, tmp_path / "results.json")
    back = read_coco_results(tmp_path / "results.json", images[0].categories)
    for prediction in predictions:
        got = back[prediction.sample_id]
        assert torch.equal(got.masks, prediction.masks)
        assert torch.equal(got.class_ids, prediction.class_ids)
        assert torch.allclose(got.scores, prediction.scores)


def test_vipseg_coco_style_and_raw(root: Path, videos: list[Sample], tmp_path: Path) -> None:
    base = root / "vipseg"
    read = list(read_vipseg(base / "panoptic_gt_VIPSeg.json", base / "panomasksRGB", base / "images"))
    for got, want in zip(read, videos, strict=True):
        got.validate()
        assert got.sample_id == f"video_{int(want.sample_id):05d}"
        assert_same_segments(got, want)
    categories = read_vipseg_categories(base / "panoVIPSeg_categories.json")
    raw = list(read_vipseg_raw(base / "panomasks", base / "images", categories))
    for got, want in zip(raw, videos, strict=True):
        # raw values renumber instances (class * 100 + k) and carry no crowd flag: compare as a partition
        got_parts = sorted((int(c), m.numpy().tobytes()) for c, m in zip(got.class_ids, got.masks, strict=True))
        want_parts = sorted((int(c), m.numpy().tobytes()) for c, m in zip(want.class_ids, want.masks, strict=True))
        assert got_parts == want_parts
        assert torch.equal(got.ignore, want.ignore)
        assert (got.instance_ids[got.is_thing] >= 125).all() and (got.instance_ids[~got.is_thing] < 125).all()
    # predictions in the evaluator layout (pred.json + pan_pred/) read back the same way
    write_vipseg(read, tmp_path / "pred.json", tmp_path / "pan_pred")
    again = list(read_vipseg(tmp_path / "pred.json", tmp_path / "pan_pred", base / "images"))
    for got, want in zip(again, read, strict=True):
        assert_same_segments(got, want)


def test_vspw(root: Path, videos: list[Sample], tmp_path: Path) -> None:
    base = root / "vspw"
    assert (base / "val.txt").read_text().split() == [f"video_{i + 1:05d}" for i in range(NUM)]
    raw = load_label_png(base / "data" / "video_00001" / "mask" / "00000.png")
    expected = class_map_from_sample(videos[0], 0, "expected")
    assert np.array_equal(raw, np.where(expected == IGNORE_VALUE, 0, expected + 1))  # k + 1, 0 = "others"
    read = list(read_vspw(base, "val", videos[0].categories))
    for got, want in zip(read, videos, strict=True):
        for frame in range(FRAMES):
            assert np.array_equal(class_map_from_sample(got, frame, "got"), class_map_from_sample(want, frame, "want"))
    # predictions label every pixel: give the void pixels to the first segment
    predictions = []
    for sample in read:
        masks = sample.masks.clone()
        masks[0] |= sample.ignore
        predictions.append(replace(sample, masks=masks, ignore=torch.zeros_like(sample.ignore)))
    write_vspw_predictions(predictions, tmp_path)
    for prediction in predictions:
        for frame in range(FRAMES):
            written = load_label_png(tmp_path / str(prediction.sample_id) / f"{frame:05d}.png")
            assert np.array_equal(written, class_map_from_sample(prediction, frame, "prediction"))  # k, not k + 1
    assert any(sample.ignore.any() for sample in read)
    with pytest.raises(DataError, match="without a class"):
        write_vspw_predictions([next(s for s in read if s.ignore.any())], tmp_path / "bad")


def test_davis(root: Path, videos: list[Sample], tmp_path: Path) -> None:
    base = root / "davis"
    read = list(read_davis(base, "val", num_points=2, seed=3))
    for got, want in zip(read, videos, strict=True):
        objects = want.is_thing & ~want.is_crowd & want.masks[:, 0].flatten(1).any(dim=1)
        assert got.num_segments == int(objects.sum())
        assert torch.equal(got.masks, want.masks[objects])
        assert torch.equal(got.prompts.masks, got.masks[:, 0])
        assert got.instance_ids.tolist() == list(range(1, got.num_segments + 1))
        raw = load_label_png(base / "Annotations" / "480p" / str(got.sample_id) / "00000.png")
        assert raw.max() == got.num_segments  # palette indices are the object ids
    write_davis_results(read, tmp_path)
    for got in read:
        for frame in range(FRAMES):
            written = load_label_png(tmp_path / str(got.sample_id) / f"{frame:05d}.png")
            expected = (got.masks[:, frame].long() * got.instance_ids[:, None, None]).sum(0).numpy()
            assert np.array_equal(written, expected)


def test_youtube_vis_uncompressed_rle_and_polygons(root: Path, videos: list[Sample], tmp_path: Path) -> None:
    # YouTube-VIS 2019 train ships uncompressed RLE (counts as a list); polygons are legal COCO too
    import json
    import shutil

    from pycocotools import mask as mask_utils

    base = tmp_path / "ytvis"
    shutil.copytree(root / "youtube-vis", base)
    data = json.loads((base / "instances.json").read_text())
    annotation = data["annotations"][0]
    frame = next(i for i, s in enumerate(annotation["segmentations"]) if s is not None)
    mask = mask_utils.decode(
        {
            "size": annotation["segmentations"][frame]["size"],
            "counts": annotation["segmentations"][frame]["counts"].encode(),
        }
    )
    flat = mask.T.reshape(-1)
    runs = np.diff(np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])).tolist()
    annotation["segmentations"][frame] = {"size": list(mask.shape), "counts": ([0] if flat[0] else []) + runs}
    height, width = mask.shape
    second = next(i for i in range(len(annotation["segmentations"])) if i != frame)
    annotation["segmentations"][second] = [[1.0, 1.0, 9.0, 1.0, 9.0, 7.0, 1.0, 7.0]]  # a rectangle polygon
    (base / "instances.json").write_text(json.dumps(data))
    got = next(read_youtube_vis(base / "instances.json", base / "JPEGImages"))
    row = int((got.instance_ids == annotation["id"]).nonzero()[0, 0])
    assert np.array_equal(got.masks[row, frame].numpy(), mask.astype(bool))
    expected = mask_utils.decode(
        mask_utils.merge(mask_utils.frPyObjects(annotation["segmentations"][second], height, width))
    ).astype(bool)
    assert expected.sum() > 0 and np.array_equal(got.masks[row, second].numpy(), expected)


def test_public_api_resolves() -> None:
    import omg_data

    for name in omg_data.__all__:
        assert getattr(omg_data, name) is not None
    with pytest.raises(AttributeError):
        omg_data.read_nothing  # noqa: B018


def test_coco_results_scored_by_cocoeval(root: Path, tmp_path: Path) -> None:
    # the official evaluator accepts our results file: ground truth submitted as predictions scores AP 1,
    # and dropping one prediction lowers it (crowd regions are ignored by COCOeval, so they are not submitted)
    from pycocotools.cocoeval import COCOeval

    base = root / "coco-instances"
    gt = COCO(str(base / "instances.json"))
    predictions = []
    for sample in read_coco_instances(base / "instances.json", base / "images"):
        keep = ~sample.is_crowd
        predictions.append(
            replace(
                sample,
                masks=sample.masks[keep],
                class_ids=sample.class_ids[keep],
                is_thing=sample.is_thing[keep],
                instance_ids=sample.instance_ids[keep],
                is_crowd=sample.is_crowd[keep],
                scores=torch.ones(int(keep.sum())),
            )
        )

    def average_precision(samples: list[Sample], name: str) -> float:
        write_coco_results(samples, tmp_path / name)
        evaluator = COCOeval(gt, gt.loadRes(str(tmp_path / name)), iouType="segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
        return float(evaluator.stats[0])

    assert average_precision(predictions, "perfect.json") == pytest.approx(1.0)
    first = predictions[0]
    fewer = [
        replace(
            first,
            masks=first.masks[1:],
            class_ids=first.class_ids[1:],
            is_thing=first.is_thing[1:],
            instance_ids=first.instance_ids[1:],
            is_crowd=first.is_crowd[1:],
            scores=first.scores[1:],
        )
    ]
    assert average_precision(fewer + predictions[1:], "fewer.json") < 1.0


def test_coco_sam_prompts_file_round_trip(world: ShapesWorld, tmp_path: Path) -> None:
    base = world.write_dataset("coco-sam", tmp_path / "sam", NUM)
    sampled = list(read_coco_sam(base / "instances.json", base / "images", num_points=1, seed=world.seed))
    fixed = list(read_coco_sam(base / "instances.json", base / "images", prompts_path=base / "prompts.json"))
    for a, b in zip(sampled, fixed, strict=True):
        assert torch.equal(a.prompts.points, b.prompts.points)
        assert torch.equal(a.prompts.point_labels, b.prompts.point_labels)
        assert torch.equal(a.prompts.boxes, b.prompts.boxes)
    # fixed prompts do not depend on the sampling seed
    other = next(read_coco_sam(base / "instances.json", base / "images", seed=99, prompts_path=base / "prompts.json"))
    assert torch.equal(other.prompts.points, fixed[0].prompts.points)


def test_segmentation_forms_convert_as_pycocotools_ann_to_rle() -> None:
    """One conversion (omg_data.rle.segmentation_to_rle) for readers and evaluators, compared with COCO.annToRLE live:
    uncompressed RLE, odd or short polygon parts are converted as it converts them; what it refuses is a ValueError
    naming the record."""
    import contextlib
    import io

    from pycocotools import mask as mask_utils

    from omg_data.rle import decode_segmentation, segmentation_to_rle

    height, width = 10, 12
    coco = COCO()
    coco.dataset = {"images": [{"id": 1, "height": height, "width": width}], "annotations": [], "categories": []}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()

    def official(segmentation):
        return coco.annToRLE({"image_id": 1, "segmentation": segmentation})

    accepted = [
        {"size": [height, width], "counts": [5, 10, 20, 1, height * width - 36]},  # uncompressed RLE
        {"size": [height, width], "counts": [0, height * width]},  # all set, leading empty run
        [[1.0, 1.0, 9.0, 1.0, 9.0, 7.0, 1.0, 7.0]],
        [[1, 1, 9, 1, 9, 7, 3], [2, 2, 4]],  # an odd coordinate count and a short later part: pycocotools takes both
    ]
    for segmentation in accepted:
        ours, reference = segmentation_to_rle(segmentation, height, width), official(segmentation)
        assert ours["counts"] == reference["counts"]
        assert np.array_equal(decode_segmentation(segmentation, height, width), mask_utils.decode(reference) > 0)
    refused = [
        ([], IndexError, "an empty polygon list"),
        ([[]], Exception, "cannot rasterise"),  # an empty polygon
        ([[1, 1, 5, 5]], TypeError, "cannot rasterise"),  # four numbers: frPyObjects takes them for a box, and fails
        ({"size": [height, width], "counts": [5, -1, 116]}, OverflowError, "from 0 to 2"),  # a negative count
    ]
    for segmentation, error, words in refused:
        with pytest.raises(error):
            official(segmentation)
        with pytest.raises(ValueError, match=f"annotation 7: .*{words}"):
            segmentation_to_rle(segmentation, height, width, where="annotation 7")
    # counts not covering the image: pycocotools accepts them and decodes garbage (uninitialised or overrun memory)
    short = {"size": [height, width], "counts": [5, 10, 100]}
    assert official(short)["counts"]
    with pytest.raises(ValueError, match="cover 115 pixels, not the 120"):
        segmentation_to_rle(short, height, width)


def test_youtube_vis_empty_polygon_list_is_an_absent_frame(root: Path, tmp_path: Path) -> None:
    # ytvoseval tests `if seg`: [] is absent like null (an empty polygon list is an error only for a COCO image)
    import json
    import shutil

    base = tmp_path / "ytvis"
    shutil.copytree(root / "youtube-vis", base)
    data = json.loads((base / "instances.json").read_text())
    annotation = data["annotations"][0]
    frame = next(i for i, s in enumerate(annotation["segmentations"]) if s is not None)
    annotation["segmentations"][frame] = []
    (base / "instances.json").write_text(json.dumps(data))
    got = next(read_youtube_vis(base / "instances.json", base / "JPEGImages"))
    row = int((got.instance_ids == annotation["id"]).nonzero()[0, 0])
    assert not got.masks[row, frame].any()
