"""The shapes world: a seeded generator of images and videos of coloured shapes on textured stuff.

Every image or video is a pure function of (seed, index), so datasets are reproducible and any item
can be regenerated on its own. Scene content:
  * stuff: sky above a wavy horizon and two ground materials (of grass, water, sand, snow) split by a
    slanted boundary: three textured regions per scene;
  * things: 2..max_objects shapes of colour x shape classes, scaled, rotated, overlapping and
    occluding in depth order; in videos they move, rotate, scale, enter and leave, keeping their id;
  * sometimes a crowd (a cluster of tiny shapes of one class, annotated as one `is_crowd` segment);
  * sometimes a void smudge: unlabelled pixels (`ignore`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from omg_data.panoptic_common import masks_from_id_maps
from omg_data.sample import CategoryList, Sample
from omg_data.synthetic.captions import caption
from omg_data.synthetic.classes import COLOURS, HELD_OUT, SHAPES, STUFF, shapes_world_categories, thing_name
from omg_data.synthetic.shapes import rasterize_shape, shape_polygon
from omg_data.synthetic.textures import smooth_noise, stuff_texture

_GROUND = ("grass", "water", "sand", "snow")
_VOID_RGB = (120, 120, 115)


@dataclass
class _Thing:
    """One shape's class and motion; position/angle/radius at frame t follow linear motion."""

    class_id: int
    shape: str
    colour: str
    x: float
    y: float
    radius: float
    angle: float
    velocity: tuple[float, float] = (0.0, 0.0)
    spin: float = 0.0
    growth: float = 0.0
    first_frame: int = 0
    last_frame: int = 10**9

    def polygon(self, frame: int) -> list[float]:
        """The COCO polygon of this shape at `frame`."""
        radius = self.radius * (1.0 + self.growth * frame)
        return shape_polygon(
            self.shape,
            self.x + self.velocity[0] * frame,
            self.y + self.velocity[1] * frame,
            radius,
            self.angle + self.spin * frame,
        )


@dataclass
class _Scene:
    stuff_map: np.ndarray  # H x W int64 stuff class ids
    void: np.ndarray  # H x W bool
    things: list[_Thing]
    crowd: list[_Thing] = field(default_factory=list)  # tiny shapes of one class moving together


class ShapesWorld:
    """A deterministic generator of shapes-world images and videos.

    Arguments:
      seed: world seed; (seed, index) determines each item.
      image_size: (height, width) of images and frames.
      max_objects: most things per scene (at least 2 are drawn).
      exclude_held_out: never draw the held-out classes (use for segmentation training data).
      crowd_probability: chance that a scene has a crowd group.
      void_probability: chance that a scene has an unlabelled (ignore) smudge.
    """

    def __init__(
        self,
        seed: int = 0,
        image_size: tuple[int, int] = (128, 128),
        max_objects: int = 6,
        exclude_held_out: bool = False,
        crowd_probability: float = 0.25,
        void_probability: float = 0.3,
    ) -> None:
        if image_size[0] < 32 or image_size[1] < 32:
            raise ValueError(f"image_size must be at least 32 x 32, got {image_size}")
        if max_objects < 2:
            raise ValueError(f"max_objects must be at least 2, got {max_objects}")
        self.seed = seed
        self.height, self.width = int(image_size[0]), int(image_size[1])
        self.max_objects = max_objects
        self.exclude_held_out = exclude_held_out
        self.crowd_probability = crowd_probability
        self.void_probability = void_probability
        self.categories: CategoryList = shapes_world_categories()
        self._class_ids = {c.name: c.id for c in self.categories}
        self._drawable = [
            (colour, shape)
            for colour in COLOURS
            for shape in SHAPES
            if not (exclude_held_out and thing_name(colour, shape) in HELD_OUT)
        ]
        # Objects smaller than this (visible pixels) are left out of images: too small to annotate well.
        self.min_area = max(12, int(0.002 * self.height * self.width))

    # ----------------------------------------------------------------------------------------- public
    def image(self, index: int) -> Sample:
        """Returns image `index` as a single-frame Sample (sample id index + 1, captions filled in)."""
        return self.image_with_polygons(index)[0]

    def image_with_polygons(self, index: int) -> tuple[Sample, dict[int, list[list[float]]]]:
        """Returns image `index` and {instance id: polygon} for the things that are not occluded.

        The polygons rasterise (with pycocotools) exactly to those things' masks, so COCO exports can
        store them as polygon annotations.
        """
        rng = np.random.default_rng([self.seed, 0, index])
        scene = self._scene(rng, num_frames=1)
        rasters = [rasterize_shape(t.polygon(0), self.height, self.width) for t in scene.things]
        # drop things that end up (almost) hidden; dropping only uncovers the others, so once suffices
        visible = self._visible(rasters)
        keep = [i for i, mask in enumerate(visible) if mask.sum() >= self.min_area]
        if len(keep) < len(scene.things):
            scene.things = [scene.things[i] for i in keep]
            rasters = [rasters[i] for i in keep]
        sample = self._render(
            rng, scene, num_frames=1, sample_id=index + 1, frame_names=[f"{index + 1:012d}.jpg"], is_video=False
        )
        polygons = {}
        for position, thing in enumerate(scene.things):
            instance_id = position + 1
            row = int((sample.instance_ids == instance_id).nonzero()[0, 0])
            if np.array_equal(sample.masks[row, 0].numpy(), rasters[position]):
                polygons[instance_id] = [thing.polygon(0)]
        return sample, polygons

    def video(self, index: int, num_frames: int = 8) -> Sample:
        """Returns video `index` with `num_frames` frames; things move, enter and leave with stable ids."""
        if num_frames < 1:
            raise ValueError(f"num_frames must be at least 1, got {num_frames}")
        rng = np.random.default_rng([self.seed, 1, index])
        scene = self._scene(rng, num_frames=num_frames)
        names = [f"video_{index + 1:05d}/{frame:05d}.jpg" for frame in range(num_frames)]
        return self._render(rng, scene, num_frames=num_frames, sample_id=index + 1, frame_names=names, is_video=True)

    def write_dataset(self, format: str, out_dir: str | Path, num: int, num_frames: int = 8) -> Path:
        """Writes `num` items in a dataset format (see `omg_data.synthetic.export.FORMATS`)."""
        from omg_data.synthetic.export import write_dataset

        return write_dataset(self, format, out_dir, num, num_frames=num_frames)

    # -------------------------------------------------------------------------------------- building
    def _scene(self, rng: np.random.Generator, num_frames: int) -> _Scene:
        h, w = self.height, self.width
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        horizon = h * rng.uniform(0.2, 0.45) + h * 0.05 * np.sin(
            2 * math.pi * xs / w * rng.uniform(0.5, 2) + rng.uniform(0, 2 * math.pi)
        )
        stuff_map = np.full((h, w), self._class_ids["sky"], dtype=np.int64)
        grounds = rng.choice(len(_GROUND), size=2, replace=False)
        left = xs < w * rng.uniform(0.3, 0.7) + (ys - h) * rng.uniform(-0.6, 0.6)
        ground = ys >= horizon
        # two ground materials either side of the slanted boundary: every scene has three stuff regions
        stuff_map[ground & left] = self._class_ids[_GROUND[grounds[0]]]
        stuff_map[ground & ~left] = self._class_ids[_GROUND[grounds[1]]]
        void = np.zeros((h, w), dtype=bool)
        if rng.random() < self.void_probability:
            cy, cx = rng.uniform(0.5, 0.95) * h, rng.uniform(0.1, 0.9) * w
            ry, rx = rng.uniform(0.04, 0.1) * h, rng.uniform(0.06, 0.15) * w
            void = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1.0
        count = int(rng.integers(2, self.max_objects + 1))
        things = [self._thing(rng, num_frames, first=i == 0) for i in range(count)]
        crowd: list[_Thing] = []
        if rng.random() < self.crowd_probability:
            template = self._thing(rng, num_frames, first=True)
            for _ in range(int(rng.integers(5, 9))):
                crowd.append(
                    _Thing(
                        template.class_id,
                        template.shape,
                        template.colour,
                        template.x + rng.uniform(-0.12, 0.12) * w,
                        template.y + rng.uniform(-0.08, 0.08) * h,
                        rng.uniform(0.018, 0.03) * min(h, w),
                        rng.uniform(0, 2 * math.pi),
                        velocity=template.velocity,
                    )
                )
        return _Scene(stuff_map=stuff_map, void=void, things=things, crowd=crowd)

    def _thing(self, rng: np.random.Generator, num_frames: int, first: bool) -> _Thing:
        h, w = self.height, self.width
        colour, shape = self._drawable[int(rng.integers(len(self._drawable)))]
        thing = _Thing(
            class_id=self._class_ids[thing_name(colour, shape)],
            shape=shape,
            colour=colour,
            x=rng.uniform(0.15, 0.85) * w,
            y=rng.uniform(0.15, 0.85) * h,
            radius=rng.uniform(0.07, 0.2) * min(h, w),
            angle=rng.uniform(0, 2 * math.pi),
        )
        if num_frames > 1:
            speed = rng.uniform(0.01, 0.05) * min(h, w)
            heading = rng.uniform(0, 2 * math.pi)
            thing.velocity = (speed * math.cos(heading), speed * math.sin(heading))
            thing.spin = rng.uniform(-0.15, 0.15)
            thing.growth = rng.uniform(-0.02, 0.03)
            if not first:
                if rng.random() < 0.3:  # enters from outside the frame, heading inwards
                    thing.x = -thing.radius if rng.random() < 0.5 else w + thing.radius
                    thing.velocity = (
                        math.copysign(abs(thing.velocity[0]) + 0.03 * w, w / 2 - thing.x),
                        thing.velocity[1],
                    )
                elif rng.random() < 0.3:  # appears later
                    thing.first_frame = int(rng.integers(1, max(2, num_frames // 2 + 1)))
                if rng.random() < 0.25:  # leaves before the end
                    thing.last_frame = int(rng.integers(max(thing.first_frame + 1, num_frames // 2), num_frames))
        return thing

    @staticmethod
    def _visible(rasters: list[np.ndarray]) -> list[np.ndarray]:
        # painter's order: a later raster hides earlier ones
        covered = np.zeros_like(rasters[0]) if rasters else None
        visible = [None] * len(rasters)
        for i in range(len(rasters) - 1, -1, -1):
            visible[i] = rasters[i] & ~covered
            covered = covered | rasters[i]
        return visible  # type: ignore[return-value]

    # ------------------------------------------------------------------------------------- rendering
    def _render(
        self,
        rng: np.random.Generator,
        scene: _Scene,
        num_frames: int,
        sample_id: int,
        frame_names: list[str],
        is_video: bool,
    ) -> Sample:
        h, w = self.height, self.width
        stuff_ids = sorted(int(v) for v in np.unique(scene.stuff_map))
        textures = {
            c: stuff_texture(self.categories.by_id(c).name, STUFF[self.categories.by_id(c).name], rng, h, w)
            for c in stuff_ids
        }
        background = np.zeros((h, w, 3), dtype=np.float32)
        for class_id, texture in textures.items():
            region = scene.stuff_map == class_id
            background[region] = texture[region]
        void_texture = np.asarray(_VOID_RGB, dtype=np.float32) + 15 * smooth_noise(rng, h, w, 12)[..., None]
        background[scene.void] = void_texture[scene.void]
        shading = (10 * smooth_noise(rng, h, w, 3) + 3 * rng.normal(0, 1, size=(h, w))).astype(np.float32)

        # segment table: things (instance ids 1..n), then the crowd, then stuff classes
        n_things = len(scene.things)
        crowd_id = n_things + 1
        stuff_instance = {c: n_things + 2 + i for i, c in enumerate(stuff_ids)}
        # label maps hold instance ids (0 = void)
        labels = np.zeros((num_frames, h, w), dtype=np.int64)
        frames = np.zeros((num_frames, h, w, 3), dtype=np.float32)
        lookup = np.zeros(int(scene.stuff_map.max()) + 1, dtype=np.int64)
        for class_id, instance_id in stuff_instance.items():
            lookup[class_id] = instance_id
        stuff_labels = lookup[scene.stuff_map]  # H x W instance ids of the stuff regions
        for frame in range(num_frames):
            image = background.copy()
            label = np.where(scene.void, 0, stuff_labels)
            layers = [(crowd_id, t) for t in scene.crowd] + [(i + 1, t) for i, t in enumerate(scene.things)]
            for instance_id, thing in layers:
                if not thing.first_frame <= frame <= thing.last_frame:
                    continue
                mask = rasterize_shape(thing.polygon(frame), h, w)
                image[mask] = np.asarray(COLOURS[thing.colour], dtype=np.float32) + shading[mask, None]
                label[mask] = instance_id
            frames[frame] = image
            labels[frame] = label

        segments = [(i + 1, t.class_id, True, False) for i, t in enumerate(scene.things)]
        if scene.crowd:
            segments.append((crowd_id, scene.crowd[0].class_id, True, True))
        segments += [(stuff_instance[c], c, False, False) for c in stuff_ids]
        ids = np.asarray([s[0] for s in segments], dtype=np.int64)
        segment_areas = np.bincount(labels.ravel(), minlength=int(ids.max()) + 1)[ids]  # pixels over all frames
        keep = segment_areas > 0  # a segment never visible is not part of the sample
        if not is_video and scene.crowd:
            crowd_row = len(scene.things)
            if segment_areas[crowd_row] < self.min_area:
                keep[crowd_row] = False
                # a too-small crowd remnant stays unlabelled rather than mislabelled
                labels[labels == crowd_id] = 0
        masks = masks_from_id_maps(labels, ids[keep])  # S x T x H x W
        label_tensor = torch.from_numpy(labels)
        rows = [s for s, k in zip(segments, keep.tolist(), strict=True) if k]
        areas = segment_areas[keep]
        visible_things = sorted(
            (
                (int(a), self.categories.by_id(s[1]).name)
                for s, a in zip(rows, areas.tolist(), strict=True)
                if s[2] and not s[3]
            ),
            reverse=True,
        )
        ground = sorted(
            (
                (int(a), self.categories.by_id(s[1]).name)
                for s, a in zip(rows, areas.tolist(), strict=True)
                if not s[2] and self.categories.by_id(s[1]).name != "sky"
            ),
            reverse=True,
        )
        crowd_name = next((self.categories.by_id(s[1]).name for s in rows if s[3]), None)
        captions = caption(
            [name for _, name in visible_things],
            crowd_name,
            ground[0][1] if ground else None,
            any(self.categories.by_id(s[1]).name == "sky" for s in rows),
        )
        pixels = torch.from_numpy(np.clip(np.rint(frames), 0, 255).astype(np.uint8)).permute(0, 3, 1, 2)
        return Sample(
            frames=pixels.contiguous(),
            masks=masks,
            class_ids=torch.as_tensor([s[1] for s in rows], dtype=torch.int64),
            is_thing=torch.as_tensor([s[2] for s in rows], dtype=torch.bool),
            instance_ids=torch.as_tensor([s[0] for s in rows], dtype=torch.int64),
            is_crowd=torch.as_tensor([s[3] for s in rows], dtype=torch.bool),
            ignore=label_tensor == 0,
            categories=self.categories,
            sample_id=sample_id,
            frame_names=frame_names,
            is_video=is_video,
            captions=captions,
        )
