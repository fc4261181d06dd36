"""Bad input gets a DataError that names the file and the record: never a silent skip."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from omg_data.coco_instances import read_coco_instances, write_coco_instances
from omg_data.coco_panoptic import read_coco_panoptic, write_coco_panoptic
from omg_data.davis import read_davis
from omg_data.errors import DataError
from omg_data.image_io import id_to_rgb, load_label_png, rgb_to_id, save_png
from omg_data.semantic_png import read_semantic_png, write_semantic_png
from omg_data.synthetic import ShapesWorld
from omg_data.vipseg import read_vipseg
from omg_data.vspw import read_vspw
from omg_data.youtube_vis import read_youtube_vis


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pristine")
    world = ShapesWorld(seed=3, image_size=(32, 48))
    for name in ("coco-panoptic", "coco-instances", "semantic", "youtube-vis", "vipseg", "vspw", "davis"):
        world.write_dataset(name, out / name, 2, num_frames=3)
    return out


@pytest.fixture
def data(pristine: Path, tmp_path: Path) -> Path:
    shutil.copytree(pristine, tmp_path / "data")
    return tmp_path / "data"


def edit_json(path: Path, edit) -> None:
    content = json.loads(path.read_text())
    edit(content)
    path.write_text(json.dumps(content))


def panoptic(base: Path) -> list:
    return list(read_coco_panoptic(base / "panoptic.json", base / "panoptic", base / "images"))


def test_missing_image_names_file_and_record(data: Path) -> None:
    base = data / "coco-panoptic"
    (base / "images" / "000000000002.jpg").unlink()
    with pytest.raises(DataError, match=r"000000000002\.jpg.*record annotations\[1\] \(image_id=2\).*not found"):
        panoptic(base)


def test_corrupt_image(data: Path) -> None:
    base = data / "coco-instances"
    image = base / "images" / "000000000001.jpg"
    image.write_bytes(image.read_bytes()[:200])  # truncated download
    with pytest.raises(DataError, match=r"000000000001\.jpg.*record images\[0\].*cannot decode image") as error:
        list(read_coco_instances(base / "instances.json", base / "images"))
    assert error.value.path == image


def test_json_not_matching_schema_names_record(data: Path) -> None:
    base = data / "coco-panoptic"
    edit_json(base / "panoptic.json", lambda d: d["annotations"][1]["segments_info"][0].pop("category_id"))
    with pytest.raises(DataError, match=r"panoptic\.json.*annotations\[1\]\.segments_info\[0\].*category_id") as error:
        panoptic(base)
    assert "schema" in str(error.value)


def test_json_syntax_error_has_position(data: Path) -> None:
    base = data / "youtube-vis"
    (base / "instances.json").write_text('{"videos": [')
    with pytest.raises(DataError, match=r"instances\.json.*not valid JSON at line 1"):
        list(read_youtube_vis(base / "instances.json", base / "JPEGImages"))


def test_unknown_category_panoptic(data: Path) -> None:
    base = data / "coco-panoptic"
    edit_json(base / "panoptic.json", lambda d: d["annotations"][0]["segments_info"][0].update(category_id=999))
    with pytest.raises(DataError, match=r"annotations\[0\].*unknown category_id 999"):
        panoptic(base)


def test_unknown_category_instances_and_youtube_vis(data: Path) -> None:
    base = data / "coco-instances"
    edit_json(base / "instances.json", lambda d: d["annotations"][2].update(category_id=0))
    with pytest.raises(DataError, match=r"instances\.json.*annotations\[2\].*unknown category_id 0"):
        list(read_coco_instances(base / "instances.json", base / "images"))
    base = data / "youtube-vis"
    edit_json(base / "instances.json", lambda d: d["annotations"][0].update(category_id=77))
    with pytest.raises(DataError, match=r"annotations\[0\].*unknown category_id 77"):
        list(read_youtube_vis(base / "instances.json", base / "JPEGImages"))


def test_panoptic_png_id_absent_from_json(data: Path) -> None:
    base = data / "coco-panoptic"
    png = base / "panoptic" / "000000000001.png"
    ids = rgb_to_id(load_label_png(png))
    ids[0, 0] = 4242
    save_png(id_to_rgb(ids), png)
    with pytest.raises(DataError, match=r"000000000001\.png.*segment ids \[4242\].*not in the JSON"):
        panoptic(base)


def test_json_segment_absent_from_png(data: Path) -> None:
    base = data / "coco-panoptic"
    extra = {"id": 4243, "category_id": 1, "area": 5, "bbox": [0, 0, 1, 1], "iscrowd": 0}
    edit_json(base / "panoptic.json", lambda d: d["annotations"][0]["segments_info"].append(extra))
    with pytest.raises(DataError, match=r"JSON segments \[4243\] have no pixels in the PNG"):
        panoptic(base)


def test_duplicate_segment_id_in_json(data: Path) -> None:
    base = data / "coco-panoptic"

    def duplicate(content: dict) -> None:
        segments = content["annotations"][0]["segments_info"]
        segments.append(dict(segments[0]))

    edit_json(base / "panoptic.json", duplicate)
    with pytest.raises(DataError, match=r"listed twice"):
        panoptic(base)


def test_overlapping_segments_rejected_by_writers(tmp_path: Path) -> None:
    sample = ShapesWorld(seed=0, image_size=(32, 32)).image(0)
    masks = sample.masks.clone()
    masks[1, 0, :4, :4] = True  # segment 1 now overlaps whatever segment covers the corner
    masks[0, 0, :4, :4] = True
    overlapping = replace(sample, masks=masks)
    first, second = int(sample.instance_ids[0]), int(sample.instance_ids[1])
    with pytest.raises(DataError, match=rf"segments with ids {first} and {second} overlap in frame 0"):
        write_coco_panoptic([overlapping], tmp_path / "p.json", tmp_path / "p")
    assert overlapping.class_ids[0] != overlapping.class_ids[1]  # so the semantic map cannot merge them
    with pytest.raises(DataError, match="overlaps a segment of another class"):
        write_semantic_png(overlapping, tmp_path / "s.png")


def test_segment_covering_ignore_rejected(tmp_path: Path) -> None:
    sample = ShapesWorld(seed=0, image_size=(32, 32)).image(0)
    ignore = sample.ignore.clone()
    ignore[0, 0, 0] = True  # that pixel also belongs to a segment
    with pytest.raises(DataError, match="covers pixels marked ignore"):
        write_coco_panoptic([replace(sample, ignore=ignore)], tmp_path / "p.json", tmp_path / "p")


def test_annotation_ids_must_be_unique_across_file(tmp_path: Path) -> None:
    world = ShapesWorld(seed=0, image_size=(32, 32))
    with pytest.raises(DataError, match="already used by an earlier sample"):
        write_coco_instances([world.image(0), world.image(1)], tmp_path / "i.json")


def test_youtube_vis_frame_count_mismatch(data: Path) -> None:
    base = data / "youtube-vis"
    edit_json(base / "instances.json", lambda d: d["annotations"][1]["segmentations"].pop())
    with pytest.raises(DataError, match=r"annotations\[1\].*2 segmentations but video \d+ has 3 frames"):
        list(read_youtube_vis(base / "instances.json", base / "JPEGImages"))


def test_youtube_vis_bad_rle_size(data: Path) -> None:
    base = data / "youtube-vis"

    def shrink(content: dict) -> None:
        segmentation = next(s for s in content["annotations"][0]["segmentations"] if s is not None)
        segmentation["size"] = [10, 10]

    edit_json(base / "instances.json", shrink)
    with pytest.raises(DataError, match=r"annotations\[0\].*RLE size \[10, 10\] does not match"):
        list(read_youtube_vis(base / "instances.json", base / "JPEGImages"))


def test_vipseg_frame_count_mismatch(data: Path) -> None:
    base = data / "vipseg"
    edit_json(base / "panoptic_gt_VIPSeg.json", lambda d: d["annotations"][0]["annotations"].pop())
    with pytest.raises(DataError, match=r"2 frame annotations but the video lists 3 images"):
        list(read_vipseg(base / "panoptic_gt_VIPSeg.json", base / "panomasksRGB", base / "images"))


def test_vspw_missing_mask(data: Path) -> None:
    base = data / "vspw"
    (base / "data" / "video_00001" / "mask" / "00002.png").unlink()
    with pytest.raises(DataError, match=r"video_00001.*record val\.txt:1 \(video_00001\).*2 masks but 3 frames"):
        list(read_vspw(base, "val", ShapesWorld().categories))


def test_vspw_unknown_label_value(data: Path) -> None:
    base = data / "vspw"
    mask = base / "data" / "video_00002" / "mask" / "00000.png"
    label = load_label_png(mask)
    label[0, 0] = 201  # class 200 after the k + 1 encoding: not a category id of the shapes world
    save_png(label, mask)
    with pytest.raises(DataError, match=r"video_00002.*00000\.png.*label values \[200\].*reduce_zero_label"):
        list(read_vspw(base, "val", ShapesWorld().categories))


def test_semantic_rgb_label_rejected(data: Path) -> None:
    base = data / "semantic"
    label = base / "labels" / "000000000001.png"
    grey = load_label_png(label)
    save_png(np.stack([grey] * 3, axis=-1), label)
    with pytest.raises(DataError, match=r"must be single-channel"):
        list(read_semantic_png(base / "images", base / "labels", ShapesWorld().categories))


def test_davis_stray_annotation_and_late_object(data: Path) -> None:
    base = data / "davis"
    annotations = base / "Annotations" / "480p" / "video_00001"
    shutil.copy(annotations / "00000.png", annotations / "00009.png")  # no frame 00009
    with pytest.raises(DataError, match=r"annotations \['00009'\] have no matching frame"):
        list(read_davis(base, "val"))
    (annotations / "00009.png").unlink()
    first = load_label_png(annotations / "00000.png")
    first[first == 1] = 0  # object 1 now only appears from the second frame
    save_png(first, annotations / "00000.png")
    with pytest.raises(DataError, match=r"objects \[1\] do not appear in the first frame"):
        list(read_davis(base, "val"))


def test_unannotated_davis_frames_are_ignore(data: Path) -> None:
    # test-dev style: only the first frame is annotated; the others must be ignore, not background
    base = data / "davis"
    for png in sorted((base / "Annotations" / "480p" / "video_00001").glob("*.png"))[1:]:
        png.unlink()
    sample = next(read_davis(base, "val"))
    assert sample.ignore[1:].all() and not sample.ignore[0].all()
    assert torch.equal(sample.prompts.masks, sample.masks[:, 0])


def test_coco_sam_prompts_file_errors(tmp_path: Path) -> None:
    from omg_data.coco_sam import read_coco_sam

    base = ShapesWorld(seed=3, image_size=(32, 48)).write_dataset("coco-sam", tmp_path / "sam", 2)
    edit_json(base / "prompts.json", lambda d: d["prompts"].pop(0))
    with pytest.raises(DataError, match=r"prompts\.json.*no prompts for annotations"):
        list(read_coco_sam(base / "instances.json", base / "images", prompts_path=base / "prompts.json"))
    base = ShapesWorld(seed=3, image_size=(32, 48)).write_dataset("coco-sam", tmp_path / "sam2", 2)
    edit_json(base / "prompts.json", lambda d: d["prompts"][1].update(points=[[500.0, 1.0]]))
    with pytest.raises(DataError, match=r"annotation_id=\d+.*outside the 48x32 image"):
        list(read_coco_sam(base / "instances.json", base / "images", prompts_path=base / "prompts.json"))


def test_panoptic_image_without_annotation(data: Path) -> None:
    base = data / "coco-panoptic"
    edit_json(base / "panoptic.json", lambda d: d["annotations"].pop(1))
    with pytest.raises(DataError, match=r"panoptic\.json: record images\[1\]: 1 images have no entry in 'annotations'"):
        panoptic(base)


def test_vipseg_annotation_of_unknown_video(data: Path) -> None:
    base = data / "vipseg"
    edit_json(base / "panoptic_gt_VIPSeg.json", lambda d: d["annotations"][1].update(video_id="nowhere"))
    with pytest.raises(DataError, match=r"record annotations\[1\]: video_id 'nowhere' has no entry in 'videos'"):
        list(read_vipseg(base / "panoptic_gt_VIPSeg.json", base / "panomasksRGB", base / "images"))


def test_repeated_ids_are_errors(data: Path) -> None:
    base = data / "coco-instances"
    edit_json(base / "instances.json", lambda d: d["images"][1].update(id=d["images"][0]["id"]))
    with pytest.raises(DataError, match=r"record images\[1\]: id 1 is used by images\[0\] and images\[1\]"):
        list(read_coco_instances(base / "instances.json", base / "images"))
    base = data / "youtube-vis"
    edit_json(base / "instances.json", lambda d: d["annotations"][1].update(id=d["annotations"][0]["id"]))
    with pytest.raises(DataError, match=r"annotations\[1\].*ids must be unique"):
        list(read_youtube_vis(base / "instances.json", base / "JPEGImages"))


def test_writers_check_samples(tmp_path: Path) -> None:
    world = ShapesWorld(seed=0, image_size=(32, 32))
    video = world.video(0, num_frames=2)
    with pytest.raises(DataError, match=r"p\.json: record sample 1: sample has 2 frames but this format holds single"):
        write_coco_panoptic([video], tmp_path / "p.json", tmp_path / "p")
    image = world.image(0)
    bad_shape = replace(image, class_ids=image.class_ids[:-1])
    with pytest.raises(DataError, match=r"cannot write this sample: class_ids must have one entry per segment"):
        write_coco_instances([bad_shape], tmp_path / "i.json")
    unknown = replace(image, class_ids=torch.full_like(image.class_ids, 500))
    with pytest.raises(DataError, match=r"class ids \[500\] are not in the sample's category list"):
        write_semantic_png(unknown, tmp_path / "s.png")


def test_schema_error_names_enclosing_record_ids(data: Path) -> None:
    base = data / "youtube-vis"
    edit_json(base / "instances.json", lambda d: d["annotations"][1]["segmentations"].__setitem__(0, "oops"))
    with pytest.raises(DataError, match=r"record annotations\[1\]\.segmentations\[0\] \(id=\d+, video_id=\d+\)"):
        list(read_youtube_vis(base / "instances.json", base / "JPEGImages"))


def test_coco_instances_empty_polygon_list_and_short_uncompressed_rle(data: Path) -> None:
    """pycocotools' annToRLE fails on an empty polygon list (IndexError), and decodes uncompressed counts that do not
    cover the image into uninitialised memory: both are errors naming the record."""
    base = data / "coco-instances"
    edit_json(base / "instances.json", lambda d: d["annotations"][1].update(segmentation=[]))
    with pytest.raises(DataError, match=r"instances\.json.*annotations\[1\].*an empty polygon list"):
        list(read_coco_instances(base / "instances.json", base / "images"))

    def short_counts(content: dict) -> None:
        image = next(i for i in content["images"] if i["id"] == content["annotations"][1]["image_id"])
        size = [image["height"], image["width"]]
        content["annotations"][1]["segmentation"] = {"size": size, "counts": [5, 10, size[0] * size[1] - 16]}

    edit_json(base / "instances.json", short_counts)
    with pytest.raises(DataError, match=r"annotations\[1\].*uncompressed RLE counts cover 1535 pixels, not the 1536"):
        list(read_coco_instances(base / "instances.json", base / "images"))
