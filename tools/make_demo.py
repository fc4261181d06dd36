"""Writes the bundled demo: a short shapes-world video and one image, both showing held-out classes.

    python tools/make_demo.py [--out omg_core/demo] [--seed 777] [--size 128] [--frames 24]

The demo comes from a world seed no training config uses (`omg_core.train.quality.training_world_seeds`), and the
first scene (video, then image) of that world holding at least `--min-held-out` held-out colour x shape classes is
taken, so `omg run --task ov-vis` on it shows classes the segmenter never trained on. Next to the media it writes
`demo.json`: the seed, the scene index and the ground-truth classes of each file (what a correct run should find).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from omg_data.sample import Sample
from omg_data.synthetic.world import ShapesWorld
from omg_tasks._overlays import write_video

REPO = Path(__file__).resolve().parents[1]


def thing_classes(sample: Sample) -> list[tuple[str, bool]]:
    """(class name, held out) of a sample's non-crowd things, in instance order."""
    found = []
    for row in range(len(sample.class_ids)):
        if bool(sample.is_thing[row]) and not bool(sample.is_crowd[row]):
            category = sample.categories.by_id(int(sample.class_ids[row]))
            found.append((category.name, bool(category.held_out)))
    return found


def in_every_frame(sample: Sample, min_area: int = 40) -> list[tuple[str, bool]]:
    """(class name, held out) of the things with at least `min_area` visible pixels in every frame."""
    found = []
    for row in range(len(sample.class_ids)):
        category = sample.categories.by_id(int(sample.class_ids[row]))
        if bool(sample.is_thing[row]) and bool((sample.masks[row].flatten(1).sum(1) >= min_area).all()):
            found.append((category.name, bool(category.held_out)))
    return found


def pick(world: ShapesWorld, kind: str, frames: int, min_held_out: int, min_things: int,
         tries: int = 5000) -> tuple[int, Sample]:
    """The first scene of `kind` ("video" or "image") with `min_things` things, `min_held_out` of distinct
    held-out classes, in view in every frame, and no crowd (a crowd is one segment of many tiny shapes: a poor
    first picture)."""
    for index in range(tries):
        sample = world.video(index, num_frames=frames) if kind == "video" else world.image(index)
        visible = in_every_frame(sample)
        held_out = {name for name, held in visible if held}
        if len(visible) >= min_things and len(held_out) >= min_held_out and not bool(sample.is_crowd.any()):
            return index, sample
    raise SystemExit(f"no {kind} among the first {tries} scenes of seed {world.seed} has {min_held_out} held-out "
                     "classes; lower --min-held-out or change --seed")


def frames_of(sample: Sample) -> list[Image.Image]:
    """The sample's frames as PIL RGB images."""
    return [Image.fromarray(frame.permute(1, 2, 0).numpy().astype(np.uint8)) for frame in sample.frames]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "omg_core" / "demo")
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--size", type=int, default=128, help="side of the frames (the training size: 128)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--min-held-out", type=int, default=2)
    parser.add_argument("--min-things", type=int, default=4)
    arguments = parser.parse_args(argv)

    world = ShapesWorld(seed=arguments.seed, image_size=(arguments.size, arguments.size), exclude_held_out=False)
    arguments.out.mkdir(parents=True, exist_ok=True)
    video_index, video = pick(world, "video", arguments.frames, arguments.min_held_out, arguments.min_things)
    image_index, image = pick(world, "image", 1, arguments.min_held_out, arguments.min_things)
    video_path = write_video(iter(frames_of(video)), arguments.out / "shapes-video")
    image_path = arguments.out / "shapes-image.png"
    frames_of(image)[0].save(image_path)

    def describe(sample: Sample, index: int) -> dict:
        classes = thing_classes(sample)
        return {"scene_index": index, "things": [name for name, _ in classes],
                "held_out_things": sorted({name for name, held in classes if held}),
                "stuff": sorted({sample.categories.by_id(int(c)).name
                                 for c, thing in zip(sample.class_ids.tolist(), sample.is_thing.tolist())
                                 if not thing})}

    record = {
        "world": {"seed": arguments.seed, "size": arguments.size, "exclude_held_out": False},
        "made_by": "python tools/make_demo.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        video_path.name: {"frames": arguments.frames, **describe(video, video_index)},
        image_path.name: describe(image, image_index),
    }
    (arguments.out / "demo.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {video_path} (video {video_index}: {record[video_path.name]['things']}) and {image_path} "
          f"(image {image_index}: {record[image_path.name]['things']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
