"""The shapes world: determinism, vocabulary, scene content, video motion, captions, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from click.testing import CliRunner

from omg_data.cli import data_group
from omg_data.coco_panoptic import read_coco_panoptic
from omg_data.synthetic import HELD_OUT, ShapesWorld, shapes_world_categories
from omg_data.synthetic.classes import COLOURS, SHAPES, STUFF


def test_vocabulary() -> None:
    categories = shapes_world_categories()
    things = [c for c in categories if c.is_thing]
    stuff = [c for c in categories if not c.is_thing]
    assert len(SHAPES) >= 6 and len(COLOURS) >= 6 and len(STUFF) >= 3
    assert len(things) == len(SHAPES) * len(COLOURS)
    assert {c.name for c in stuff} == set(STUFF)
    assert all(name.count(" ") == 1 for name in (c.name for c in things))  # "red star": natural phrases
    held = [c.name for c in categories if c.held_out]
    assert sorted(held) == sorted(HELD_OUT) and len(held) >= 4
    # every held-out colour and shape also occurs in some seen class (compositional split)
    seen = [c.name.split() for c in things if not c.held_out]
    for name in HELD_OUT:
        colour, shape = name.split()
        assert any(c == colour for c, _ in seen) and any(s == shape for _, s in seen)


def test_deterministic_and_seed_dependent() -> None:
    first, again, other = (
        ShapesWorld(seed=5, image_size=(40, 56)),
        ShapesWorld(seed=5, image_size=(40, 56)),
        ShapesWorld(seed=6, image_size=(40, 56)),
    )
    a, b, c = first.image(3), again.image(3), other.image(3)
    assert torch.equal(a.frames, b.frames) and torch.equal(a.masks, b.masks) and a.captions == b.captions
    assert not torch.equal(a.frames, c.frames)
    # random access: item 3 does not depend on items generated before it
    first.image(0)
    assert torch.equal(first.image(3).masks, a.masks)
    assert torch.equal(first.video(1, 3).frames, again.video(1, 3).frames)


def test_scene_content_over_many_images() -> None:
    world = ShapesWorld(seed=0, image_size=(48, 48))
    shapes_seen, colours_seen, stuff_seen = set(), set(), set()
    crowd = void = overlap_free = 0
    for index in range(60):
        sample = world.image(index)
        sample.validate()
        names = [sample.categories.by_id(int(c)).name for c in sample.class_ids]
        for name, thing in zip(names, sample.is_thing.tolist(), strict=True):
            if thing:
                colours_seen.add(name.split()[0])
                shapes_seen.add(name.split()[1])
            else:
                stuff_seen.add(name)
        assert int((~sample.is_thing).sum()) == 3  # sky and two ground materials in every scene
        crowd += int(sample.is_crowd.any())
        void += int(sample.ignore.any())
        # panoptic partition: every pixel belongs to exactly one segment or to ignore
        coverage = sample.masks[:, 0].sum(dim=0) + sample.ignore[0].long()
        overlap_free += int(coverage.eq(1).all())
        assert sample.captions and all(isinstance(c, str) and c for c in sample.captions)
    assert len(shapes_seen) >= 6 and len(colours_seen) >= 6 and len(stuff_seen) >= 3
    assert crowd > 0 and void > 0
    assert overlap_free == 60


def test_held_out_classes_excluded_when_asked() -> None:
    world = ShapesWorld(seed=1, image_size=(40, 40), exclude_held_out=True)
    held_ids = {c.id for c in world.categories if c.held_out}
    for index in range(40):
        assert not held_ids.intersection(world.image(index).class_ids.tolist())
    assert any(
        held_ids.intersection(ShapesWorld(seed=1, image_size=(40, 40)).image(i).class_ids.tolist()) for i in range(40)
    )


def test_things_occlude_each_other() -> None:
    # with up to 6 shapes of radius up to 0.2 of the image, some image must show a partly hidden thing
    world = ShapesWorld(seed=2, image_size=(64, 64))
    partial = 0
    for index in range(20):
        sample, polygons = world.image_with_polygons(index)
        partial += int(sample.is_thing.sum()) - int(sample.is_crowd.sum()) - len(polygons)
    assert partial > 0


def test_video_motion_entry_exit_and_stable_ids() -> None:
    world = ShapesWorld(seed=4, image_size=(48, 64))
    moved = entered = left = 0
    for index in range(12):
        video = world.video(index, num_frames=8)
        video.validate()
        assert video.is_video and video.num_frames == 8 and len(video.frame_names) == 8
        present = video.present()  # S x T
        things = video.is_thing & ~video.is_crowd
        for row in things.nonzero()[:, 0].tolist():
            frames = present[row].nonzero()[:, 0]
            entered += int(frames[0] > 0)
            left += int(frames[-1] < 7)
            first, last = video.masks[row, frames[0]], video.masks[row, frames[-1]]
            centre = lambda m: m.nonzero().float().mean(dim=0)  # noqa: E731
            moved += int((centre(first) - centre(last)).norm() > 2)
        # one segment per instance id for the whole clip (ids are stable, not per-frame)
        assert len(set(video.instance_ids.tolist())) == video.num_segments
    assert moved > 10 and entered > 0 and left > 0


def test_captions_mention_visible_things_and_ground() -> None:
    sample = ShapesWorld(seed=0, image_size=(64, 64)).image(2)
    names = {sample.categories.by_id(int(c)).name for c in sample.class_ids[sample.is_thing & ~sample.is_crowd]}
    mentioned = [name for name in names if name in sample.captions[0]]
    assert mentioned and sample.captions[0].startswith(("a ", "an "))
    ground = [sample.categories.by_id(int(c)).name for c in sample.class_ids[~sample.is_thing]]
    assert any(f"on {g}" in sample.captions[0] for g in ground if g != "sky")


def test_cli_synth_writes_readable_dataset(tmp_path: Path) -> None:
    out = tmp_path / "coco"
    result = CliRunner().invoke(
        data_group,
        ["synth", "--format", "coco-panoptic", "--num", "3", "--out", str(out), "--seed", "2", "--size", "40x56"],
    )
    assert result.exit_code == 0, result.output
    samples = list(read_coco_panoptic(out / "panoptic.json", out / "panoptic", out / "images"))
    assert len(samples) == 3 and samples[0].frames.shape[-2:] == (40, 56)
    expected = ShapesWorld(seed=2, image_size=(40, 56)).image(0)
    assert torch.equal(samples[0].masks, expected.masks)
    captions = json.loads((out / "captions.json").read_text())
    assert captions["1"] == expected.captions


def test_cli_synth_refuses_a_non_empty_out_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "coco"
    args = ["synth", "--format", "coco-panoptic", "--num", "2", "--out", str(out), "--size", "40x56"]
    assert CliRunner().invoke(data_group, args).exit_code == 0
    (out / "stale.txt").write_text("left by an interrupted run")
    before = sorted(p.name for p in out.iterdir())
    result = CliRunner().invoke(data_group, [*args, "--seed", "5"])
    assert result.exit_code == 2 and "is not empty" in result.output and "--overwrite" in result.output
    assert sorted(p.name for p in out.iterdir()) == before  # nothing written or deleted
    result = CliRunner().invoke(data_group, [*args, "--seed", "5", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert not (out / "stale.txt").exists()
    samples = list(read_coco_panoptic(out / "panoptic.json", out / "panoptic", out / "images"))
    assert len(samples) == 2 and torch.equal(samples[0].masks, ShapesWorld(seed=5, image_size=(40, 56)).image(0).masks)


def test_cli_rejects_bad_size(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        data_group, ["synth", "--format", "vspw", "--num", "1", "--out", str(tmp_path), "--size", "big"]
    )
    assert result.exit_code != 0 and "HEIGHTxWIDTH" in result.output


def test_caption_grammar() -> None:
    from omg_data.synthetic.captions import caption

    assert caption(["red star", "blue circle"], None, "grass", True)[0] == "a red star and a blue circle on grass"
    assert caption(["orange cross"], "white cross", "sand", False)[0] == (
        "an orange cross and a group of small white crosses on sand"
    )
    assert caption([], None, "snow", True)[0] == "snow under the sky"


def test_sample_repr_is_compact() -> None:
    text = repr(ShapesWorld(seed=0, image_size=(40, 40)).video(0, num_frames=2))
    assert text.startswith("Sample(id=1, frames=2x3x40x40") and len(text) < 200
