"""The quality table of a shipped shapes-world model: twelve figures on a held-out world, each against its target.

    report = measure_quality(OMGPredictor.from_pretrained("weights.safetensors"), seed=4242, num_samples=64)
    print(report.markdown())        # | figure | measured | target | met |

Everything is measured on shapes worlds of one seed (a seed training never used: training worlds are seeded with
hashes, see `TrainConfig.dataset_seed`, and `training_world_seeds` lists them for a check), on the first
`num_samples` scenes (images, or clips) of each world, at the training image size (128 x 128), scored by the metric
each task binds (`registry.get(task).create_metric`). Figures are percent; NaN where nothing was measurable (then
the target counts as missed).

  figure                              target  how it is measured
  panoptic PQ                          70     the seven closed families exactly as training evaluation scores them
  semantic mIoU                        80     (`omg_core.train.evaluate`: FAMILY_TASKS, create_family_metric,
  instance mask AP                     60     update_family_metric, family_figures), on a world WITHOUT held-out
  interactive 1-click mIoU             80     classes, classified against the built-in vocabulary
  video-instance AP                    60     "shapes-world-seen" (the 63 classes segmentation training sees).
  video-panoptic VPQ                   60     Video clips are 2 frames, 2 apart (the training clips).
  video-semantic mIoU                  80
  ov-seg PQ, held-out classes          40     task ov-seg on a world WITH held-out classes, vocabulary "shapes-world"
                                              (all 69 classes; seen flags by the word-overlap rule against
                                              "shapes-world-seen"); per-class PQ of the panoptic metric, averaged over
                                              the held-out classes present in the ground truth (a held-out class only
                                              predicted, never in the ground truth, is left out).
  ov-interactive label accuracy, %     70     task ov-interactive on the same scenes and vocabulary: one click per
                                              object of a held-out class (the interactive family's click); a hit when
                                              the predicted label is the object's class.
  ov-vis AP, held-out classes          40     task ov-vis on clips of the held-out world, same vocabulary: YouTube-VIS
                                              AP over the held-out categories only (each category's AP as the metric
                                              computes it, averaged over those with a ground-truth track: equal to the
                                              AP of the metric restricted to them, since categories are matched and
                                              averaged independently).
  VOS J&F                              70     the vos plugin on 5-frame clips (consecutive frames) of the world
                                              without held-out classes: the things of the first frame are given as its
                                              DAVIS annotation (object k + 1 = the k-th of them), the plugin's metric
                                              (DAVIS-2017 semi-supervised J&F: first and last frames not scored,
                                              ignore pixels void).
  referring mIoU                       60     the referring plugin with the phrase "the <class>" for every thing whose
                                              class occurs once in its image (no other instance, no crowd of it),
                                              scored by the plugin's metric (mean of per-phrase IoU).

Ignore pixels (void, crowd) never count, as in training evaluation. The scenes of the held-out world are taken as they
come, not picked for holding a held-out class, so held-out false positives in the other scenes count too; the report
says how many held-out objects each open-vocabulary figure scored.

A figure's answers come from a `QualityRunner`: `ModelRunner` runs a model through each task's own hooks; tests pass
fakes. Every figure is a `FigureScorer` updated scene by scene, so one scene is drawn once and, with `ModelRunner`,
encoded once for all the figures reading it. With rank / world_size each process scores every world_size-th scene
and the metrics' compute reduces over the torch.distributed group (a collective), as in `evaluate_dataset`.
"""

from __future__ import annotations

import contextlib
import functools
import math
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from omg_core.train.datasets import ShapesWorldDataset, TrainingDataset, TrainingSample
from omg_core.train.evaluate import (
    FAMILY_TASKS,
    TaskRunner,
    create_family_metric,
    family_figures,
    object_prompts,
    update_family_metric,
)
from omg_data.sample import Sample
from omg_eval.metric import Metric

if TYPE_CHECKING:
    from omg_core.model.predictor import OMGPredictor
    from omg_core.model.vocabulary import Vocabulary
    from omg_core.registry import TaskHandle, TaskRegistry
    from omg_core.task_io import Prompts
    from omg_core.train.config import TrainConfig

#: The built-in vocabularies: every shapes-world class, and the ones segmentation training sees.
FULL_VOCABULARY = "shapes-world"
SEEN_VOCABULARY = "shapes-world-seen"

#: Frames of a VOS clip (consecutive): DAVIS scores all but the first and the last, so 3 are scored.
VOS_NUM_FRAMES = 5

#: The plugin tasks measured here (plugins/omg-task-vos, plugins/omg-task-referring).
VOS_TASK = "vos"
REFERRING_TASK = "referring"

#: Offset `build_eval_datasets` adds to training seeds: those worlds are seen during training too.
TRAINING_EVAL_SEED_OFFSET = 1_000_003


@dataclass(frozen=True)
class QualityFigure:
    """One row of the quality table.

    Arguments:
      key: stable name (JSON, `QualityReport.figures`).
      name: what the table shows.
      target: the value the figure must reach (percent).
      percent_sign: the figure is a rate shown with "%" (the others are percent-scaled scores without a sign).
    """

    key: str
    name: str
    target: float
    percent_sign: bool = False


#: The twelve figures, in table order.
QUALITY_FIGURES: tuple[QualityFigure, ...] = (
    QualityFigure("panoptic-PQ", "panoptic PQ", 70.0),
    QualityFigure("semantic-mIoU", "semantic mIoU", 80.0),
    QualityFigure("instance-AP", "instance mask AP", 60.0),
    QualityFigure("interactive-mIoU", "interactive 1-click mIoU", 80.0),
    QualityFigure("video-instance-AP", "video-instance AP", 60.0),
    QualityFigure("video-panoptic-VPQ", "video-panoptic VPQ", 60.0),
    QualityFigure("video-semantic-mIoU", "video-semantic mIoU", 80.0),
    QualityFigure("ov-seg-PQ", "ov-seg PQ, held-out classes", 40.0),
    QualityFigure("ov-interactive-accuracy", "ov-interactive label accuracy, held-out classes", 70.0, True),
    QualityFigure("ov-vis-AP", "ov-vis AP, held-out classes", 40.0),
    QualityFigure("vos-J&F", "VOS J&F", 70.0),
    QualityFigure("referring-mIoU", "referring mIoU", 60.0),
)

#: Closed family -> (figure key, the family figure it reads).
FAMILY_FIGURES: dict[str, tuple[str, str]] = {
    "panoptic": ("panoptic-PQ", "PQ"),
    "semantic": ("semantic-mIoU", "mIoU"),
    "instance": ("instance-AP", "AP"),
    "interactive": ("interactive-mIoU", "mIoU"),
    "video-instance": ("video-instance-AP", "AP"),
    "video-panoptic": ("video-panoptic-VPQ", "VPQ"),
    "video-semantic": ("video-semantic-mIoU", "mIoU"),
}


# ------------------------------------------------------------------------------------------------- runners


class QualityRunner(Protocol):
    """Gives a task's typed result (`omg_core.results`) for one sample.

    Arguments of a call:
      task: the task name.
      sample: the scene; what the task is given of it besides its pixels depends on the task: interactive, its
        training clicks (`object_prompts`); vos, its targets (target k is object id k + 1, given by its first-frame
        mask); referring, nothing (its single target is the referred object, for scoring).
      vocabulary: the classes to classify against (labels of the result index it), or None for tasks that take none
        (vos, referring).
      prompts: ov-interactive's clicks.
      seen: one flag per vocabulary class, True for classes seen in training (open-vocabulary tasks).
      options: the task's options (referring: its phrase).
    """

    def __call__(
        self,
        task: str,
        sample: TrainingSample,
        vocabulary: Vocabulary | None,
        *,
        prompts: Prompts | None = None,
        seen: Sequence[bool] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Any: ...


class ModelRunner:
    """Runs a predictor's model through each task's hooks: the closed tasks as training evaluation does
    (`TaskRunner`), the others with the request built here (vocabulary, seen flags, prompts, options; for vos the
    first frame's annotation written as a DAVIS PNG for the plugin's `first_frame_masks` option).

    While the runner is open (`with ModelRunner(predictor) as run:`) the model's `encode_frames` remembers its last
    `cache_size` inputs: the quality figures read the same scene with several tasks, and the backbone and pixel
    decoder are what costs; the cache returns the features of an equal input (compared exactly), so the results
    do not change. Closing puts the model's own method back.

    Arguments:
      predictor: the predictor (model, device, test-time size).
      cache_size: encoded inputs remembered (an image, or a video tube, each).
    """

    def __init__(self, predictor: OMGPredictor, cache_size: int = 4) -> None:
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        self.predictor = predictor
        self.cache_size = cache_size
        self.encodes = 0  # encode_frames calls that ran the model (a cache miss)
        self._closed_runner = TaskRunner(predictor)
        self._cache: list[tuple[torch.Tensor, Any]] = []  # (input frames, features), most recent last
        self._installed = False

    @property
    def registry(self) -> TaskRegistry:
        return self.predictor.registry

    def __enter__(self) -> ModelRunner:
        model = self.predictor.model
        encode = model.encode_frames

        def cached_encode(frames: torch.Tensor) -> Any:
            for position, (known, features) in enumerate(self._cache):
                if known.shape == frames.shape and torch.equal(known, frames):
                    self._cache.append(self._cache.pop(position))
                    return features
            features = encode(frames)
            self.encodes += 1
            if self.cache_size:
                self._cache = [*self._cache, (frames.detach().clone(), features)][-self.cache_size:]
            return features

        # an instance attribute shadows the class's method for this model only, until __exit__
        model.encode_frames = cached_encode
        self._installed = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._installed:
            del self.predictor.model.encode_frames
            self._installed = False
        self._cache.clear()

    def __call__(
        self,
        task: str,
        sample: TrainingSample,
        vocabulary: Vocabulary | None,
        *,
        prompts: Prompts | None = None,
        seen: Sequence[bool] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Any:
        """See `QualityRunner`."""
        from omg_core.task_info import validate_options
        from omg_core.task_io import TaskRequest

        if task in FAMILY_TASKS.values():
            if vocabulary is None:
                raise ValueError(f"task {task!r} needs the dataset's vocabulary")
            return self._closed_runner(task, sample, vocabulary)
        handle = self.registry.get(task)
        info = handle.info
        pixels = sample.frames if info.modality == "video" else sample.frames[0]  # T x 3 x H x W or 3 x H x W
        given = dict(options or {})
        with contextlib.ExitStack() as stack:
            if info.name == VOS_TASK and "first_frame_masks" not in given:
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="omg-quality-vos-")))
                given["first_frame_masks"] = str(write_first_frame_annotation(sample, folder / "00000.png"))
            request = TaskRequest(
                task=info.name, modality=info.modality, pixels=pixels, prompts=prompts,
                vocabulary=tuple(vocabulary.texts) if vocabulary is not None else None,
                thing_classes=tuple(bool(t) for t in vocabulary.is_thing) if vocabulary is not None else None,
                seen_classes=tuple(bool(s) for s in seen) if seen is not None else None,
                options=validate_options(info.name, info.options, given, "options"),
            )
            plan = handle.encode_queries(request)
            # decode reads the annotation file again (vos), so it runs before the folder goes
            return handle.decode_outputs(request, plan, self.predictor(request, plan)).data


def write_first_frame_annotation(sample: TrainingSample, path: Path) -> Path:
    """The sample's targets on its first frame as a DAVIS annotation PNG: target k is object id k + 1, 0 elsewhere.

    Returns:
      `path`, written.
    """
    from PIL import Image

    if sample.num_targets > 254:
        raise ValueError(f"a DAVIS annotation holds at most 254 objects, the sample has {sample.num_targets}")
    ids = torch.zeros(sample.ignore.shape[-2:], dtype=torch.uint8)  # H x W
    for k, mask in enumerate(sample.masks[:, 0]):
        ids[mask] = k + 1
    Image.fromarray(ids.numpy()).save(path)  # 2-D uint8: a grey ("L") PNG whose values are the ids
    return path


# ------------------------------------------------------------------------------------------------- scorers


class FigureScorer:
    """One figure's metric, fed scene by scene (`update(run, index)`), computed once (`compute()`, a collective when
    a process group is initialised)."""

    def update(self, run: QualityRunner, index: int) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        raise NotImplementedError


class LabelAccuracy(Metric):
    """Share of objects whose predicted class is their true class (ov-interactive on held-out classes)."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", torch.zeros((), dtype=torch.int64), "sum")
        self.add_state("total", torch.zeros((), dtype=torch.int64), "sum")

    def update(self, predicted: torch.Tensor, truth: torch.Tensor) -> None:
        """Add N objects: (N,) predicted and (N,) true class indices."""
        if predicted.shape != truth.shape or predicted.dim() != 1:
            raise ValueError(f"predicted {tuple(predicted.shape)} and truth {tuple(truth.shape)} must both be (N,)")
        self.correct += int((predicted.cpu() == truth.cpu()).sum())
        self.total += int(truth.numel())

    def compute(self) -> dict[str, Any]:
        """``accuracy`` (fraction, NaN without objects) and ``count``."""
        total = int(self.total)
        return {"accuracy": int(self.correct) / total if total else math.nan, "count": total}


class FamilyScorer(FigureScorer):
    """A closed family exactly as training evaluation scores it (`omg_core.train.evaluate`)."""

    def __init__(self, dataset: TrainingDataset, registry: TaskRegistry) -> None:
        self.dataset = dataset
        self.task = FAMILY_TASKS[dataset.family]
        self.vocabulary = _vocabulary(dataset)
        self.metric = create_family_metric(registry, dataset)

    def update(self, run: QualityRunner, index: int) -> None:
        sample = self.dataset.get(index)
        update_family_metric(self.metric, self.dataset, sample, run(self.task, sample, self.vocabulary), index)

    def compute(self) -> dict[str, float]:
        return family_figures(self.metric, self.dataset)


class _HeldOutScorer(FigureScorer):
    """A scorer of the held-out classes of one `family` dataset: its vocabulary, their labels and the seen flags
    the open-vocabulary task is run with."""

    family: str = ""

    def __init__(self, dataset: TrainingDataset, seen: Sequence[bool] | None = None) -> None:
        _check_family(dataset, self.family)
        self.dataset = dataset
        self.vocabulary = _vocabulary(dataset)
        self.seen = seen
        self.held_out = held_out_labels(dataset)


class _HeldOutFamilyMetricScorer(_HeldOutScorer):
    """A held-out scorer that runs open-vocabulary `task` on whole scenes into its family's metric."""

    task: str = ""

    def __init__(self, dataset: TrainingDataset, registry: TaskRegistry, seen: Sequence[bool] | None = None) -> None:
        super().__init__(dataset, seen)
        self.metric = create_family_metric(registry, dataset)

    def update(self, run: QualityRunner, index: int) -> None:
        sample = self.dataset.get(index)
        result = run(self.task, sample, self.vocabulary, seen=self.seen)
        update_family_metric(self.metric, self.dataset, sample, result, index)


class OpenPanopticScorer(_HeldOutFamilyMetricScorer):
    """ov-seg PQ averaged over the held-out classes that occur in the ground truth (panoptic-family dataset of a
    world with held-out classes)."""

    family = "panoptic"
    task = "ov-seg"

    def compute(self) -> dict[str, float]:
        with self.metric.sync_context():  # per-class counts over every rank
            per_class = self.metric.compute()["per_class"]
            ids = self.metric.category_ids
            occurs = (self.metric.tp + self.metric.fn).tolist()  # ground-truth segments per category
            objects = sum(occurs[ids.index(label)] for label in self.held_out)
            present = [label for label in sorted(self.held_out) if occurs[ids.index(label)] > 0]
        value = _mean([per_class[label]["pq"] for label in present])
        return {"PQ": _percent(value), "classes": float(len(present)), "objects": float(objects)}


class OpenInteractiveScorer(_HeldOutScorer):
    """ov-interactive label accuracy: one click per held-out-class object (interactive-family dataset of a world
    with held-out classes; the click is the one training evaluation scores)."""

    family = "interactive"

    def __init__(self, dataset: TrainingDataset, seen: Sequence[bool] | None = None) -> None:
        super().__init__(dataset, seen)
        self.metric = LabelAccuracy()

    def update(self, run: QualityRunner, index: int) -> None:
        from omg_core.task_io import Prompts

        sample = self.dataset.get(index)
        rows, prompts = object_prompts(sample)
        keep = [position for position, row in enumerate(rows.tolist()) if int(sample.labels[row]) in self.held_out]
        if not keep:
            return
        chosen = torch.tensor(keep, dtype=torch.int64)
        assert prompts.points is not None and prompts.point_labels is not None
        clicks = Prompts(points=prompts.points[chosen], point_labels=prompts.point_labels[chosen])
        result = run("ov-interactive", sample, self.vocabulary, prompts=clicks, seen=self.seen)
        if result.labels is None or len(result.labels) != len(keep):
            raise ValueError(f"sample {sample.sample_id!r}: ov-interactive gave "
                             f"{None if result.labels is None else len(result.labels)} labels for {len(keep)} clicks")
        self.metric.update(result.labels.to(torch.int64), sample.labels[rows[chosen]])

    def compute(self) -> dict[str, float]:
        figures = self.metric.compute()
        return {"accuracy": _percent(figures["accuracy"]), "objects": float(figures["count"])}


class OpenVideoInstanceScorer(_HeldOutFamilyMetricScorer):
    """ov-vis AP over the held-out categories (video-instance-family dataset of a world with held-out classes)."""

    family = "video-instance"
    task = "ov-vis"

    def compute(self) -> dict[str, float]:
        with self.metric.sync_context():  # the videos of every rank
            per_category = self.metric.compute()["AP_per_category"]
            tracks = sum(int(label) in self.held_out for video in self.metric.videos
                         for label in video["gt_labels"].tolist())
        # -1: no ground-truth track of that category (the metric leaves it out of its means too)
        values = [float(per_category[label]) for label in sorted(self.held_out)
                  if label in per_category and per_category[label] >= 0]
        return {"AP": _percent(_mean(values)), "classes": float(len(values)), "tracks": float(tracks)}


class VOSScorer(FigureScorer):
    """The vos plugin's J&F: the things of each clip's first frame given, followed through the clip (a
    video-instance-family dataset, at least 3 frames)."""

    def __init__(self, dataset: TrainingDataset, registry: TaskRegistry) -> None:
        _check_family(dataset, "video-instance")
        if dataset.num_frames < 3:
            raise ValueError(f"VOS clips need at least 3 frames (DAVIS does not score the first and the last), "
                             f"dataset {dataset.name!r} has {dataset.num_frames}")
        self.dataset = dataset
        self.metric = _plugin_task(registry, VOS_TASK, "omg-task-vos").create_metric({})

    def update(self, run: QualityRunner, index: int) -> None:
        sample = first_frame_objects(self.dataset.get(index))
        if sample.num_targets == 0:  # DAVIS scores the objects of the first frame; a clip without one has none
            return
        result = run(VOS_TASK, sample, None)
        masks = result.masks.to(torch.bool)  # K x T x H x W, track k = object k + 1
        if masks.shape != sample.masks.shape:
            raise ValueError(f"sample {sample.sample_id!r}: vos gave tracks {tuple(masks.shape)} for objects "
                             f"{tuple(sample.masks.shape)}")
        predicted = torch.zeros(sample.ignore.shape, dtype=torch.int64)  # T x H x W object ids
        for k, track in enumerate(masks):
            predicted[track] = k + 1
        self.metric.update(predicted, davis_ground_truth(sample), sequence=f"{self.dataset.name}-{index}")

    def compute(self) -> dict[str, float]:
        with self.metric.sync_context():
            if not self.metric.objects:
                return {"J&F": math.nan, "J": math.nan, "F": math.nan, "objects": 0.0}
            figures = self.metric.compute()
            objects = len(self.metric.objects)
        return {"J&F": _percent(figures["J&F-Mean"]), "J": _percent(figures["J-Mean"]),
                "F": _percent(figures["F-Mean"]), "objects": float(objects)}


class ReferringScorer(FigureScorer):
    """The referring plugin's mIoU on "the <class>" for every thing whose class occurs once in its image (an
    image-family dataset of a world; its categories name the classes)."""

    def __init__(self, dataset: TrainingDataset, registry: TaskRegistry) -> None:
        if dataset.is_video:
            raise ValueError(f"referring needs images, dataset {dataset.name!r} is {dataset.family}")
        self.dataset = dataset
        self.metric = _plugin_task(registry, REFERRING_TASK, "omg-task-referring").create_metric({})

    def update(self, run: QualityRunner, index: int) -> None:
        for phrase, sample in referring_cases(self.dataset, index):
            result = run(REFERRING_TASK, sample, None, options={"phrase": phrase})
            self.metric.update(result.labels == 1, sample.masks[0, 0])

    def compute(self) -> dict[str, float]:
        with self.metric.sync_context():
            if int(self.metric.num_samples) == 0:
                return {"mIoU": math.nan, "oIoU": math.nan, "phrases": 0.0}
            figures = self.metric.compute()
        return {"mIoU": _percent(figures["mIoU"]), "oIoU": _percent(figures["oIoU"]),
                "phrases": float(figures["num_samples"])}


# ------------------------------------------------------------------------------------------- ground truths


def held_out_labels(dataset: TrainingDataset) -> set[int]:
    """Vocabulary indices of the dataset's held-out categories (empty when its vocabulary leaves them out)."""
    return {dataset.class_index[c.id] for c in dataset.categories if c.held_out and c.id in dataset.class_index}


def first_frame_objects(sample: TrainingSample) -> TrainingSample:
    """The sample with only the targets present in its first frame, in target order (the DAVIS objects)."""
    present = sample.masks[:, 0].flatten(1).any(dim=1) if sample.num_targets else torch.zeros(0, dtype=torch.bool)
    return TrainingSample(frames=sample.frames, labels=sample.labels[present], masks=sample.masks[present],
                          ignore=sample.ignore, target_ids=sample.target_ids[present], dataset=sample.dataset,
                          sample_id=sample.sample_id)


def davis_ground_truth(sample: TrainingSample) -> torch.Tensor:
    """T x H x W DAVIS ids of a VOS sample: target k is k + 1, background 0, ignore pixels 255 (void)."""
    ids = torch.zeros(sample.ignore.shape, dtype=torch.int64)
    for k, mask in enumerate(sample.masks):
        ids[mask] = k + 1
    ids[sample.ignore] = 255
    return ids


def referring_cases(dataset: TrainingDataset, index: int) -> list[tuple[str, TrainingSample]]:
    """(phrase, one-target sample) for every thing of image `index` whose class occurs once in it: no other
    instance and no crowd of that class. The phrase is "the <class name>"; the target is the thing's mask.

    Arguments:
      dataset: an image dataset; its `load_sample` gives the scene with crowd flags, its vocabulary the labels.
      index: the image.
    """
    scene: Sample = dataset.load_sample(index)
    class_ids = scene.class_ids.tolist()
    counts: dict[int, int] = {}
    for class_id, is_thing in zip(class_ids, scene.is_thing.tolist()):
        if is_thing:
            counts[class_id] = counts.get(class_id, 0) + 1  # a crowd counts: "the red star" would be ambiguous
    cases = []
    for row, (class_id, is_thing, is_crowd) in enumerate(zip(class_ids, scene.is_thing.tolist(),
                                                             scene.is_crowd.tolist())):
        if not is_thing or is_crowd or counts[class_id] != 1 or class_id not in dataset.class_index:
            continue
        mask = scene.masks[row, :1]  # 1 x H x W
        if not bool(mask.any()):
            continue
        name = dataset.categories.by_id(class_id).name
        target = TrainingSample(frames=scene.frames[:1], labels=torch.tensor([dataset.class_index[class_id]]),
                                masks=mask[None], ignore=scene.ignore[:1],
                                target_ids=scene.instance_ids[row:row + 1].to(torch.int64),
                                dataset=dataset.name, sample_id=scene.sample_id)
        cases.append((f"the {name}", target))
    return cases


# --------------------------------------------------------------------------------------------- the worlds


class _SceneCache:
    """The last few scenes one world drew, shared by the datasets reading that world: every image family reads
    image i of the same world, so it is drawn once, not once per family."""

    def __init__(self, capacity: int = 4) -> None:
        self.capacity = capacity
        self._scenes: OrderedDict[tuple[bool, int, int], Sample] = OrderedDict()

    def get(self, key: tuple[bool, int, int], draw: Callable[[], Sample]) -> Sample:
        if key in self._scenes:
            self._scenes.move_to_end(key)
            return self._scenes[key]
        scene = self._scenes[key] = draw()
        while len(self._scenes) > self.capacity:
            self._scenes.popitem(last=False)
        return scene


class _SharedScenesDataset(ShapesWorldDataset):
    """A ShapesWorldDataset drawing its scenes through a cache shared with the other datasets of its world (scenes
    are pure functions of (seed, index, frames), so sharing changes nothing but time)."""

    def __init__(self, family: str, scenes: _SceneCache, **options: Any) -> None:
        super().__init__(family, **options)
        self.scenes = scenes

    def load_sample(self, index: int) -> Sample:
        frames = (self.num_frames - 1) * self.frame_interval + 1 if self.is_video else 1
        draw = super().load_sample
        return self.scenes.get((self.is_video, frames, index), lambda: draw(index))


@dataclass
class QualityDatasets:
    """The held-out worlds' datasets of the twelve figures (see the module docstring).

    closed: family -> dataset of the world without held-out classes, vocabulary shapes-world-seen.
    ov_panoptic, ov_interactive, ov_video: panoptic / interactive / video-instance datasets of the world with
      held-out classes, vocabulary shapes-world.
    vos: video-instance dataset of the world without held-out classes, VOS_NUM_FRAMES consecutive frames.
    referring: the images of the closed panoptic dataset.
    seen: shapes-world's seen flags against shapes-world-seen (word-overlap rule).
    """

    closed: dict[str, TrainingDataset]
    ov_panoptic: TrainingDataset
    ov_interactive: TrainingDataset
    ov_video: TrainingDataset
    vos: TrainingDataset
    seen: list[bool]
    referring: TrainingDataset = field(init=False)

    def __post_init__(self) -> None:
        self.referring = self.closed["panoptic"]


def build_quality_datasets(seed: int, num_samples: int, image_size: tuple[int, int] = (128, 128)) -> QualityDatasets:
    """The datasets of the twelve figures on worlds of `seed` (`num_samples` scenes each, no augmentation).

    Arguments:
      seed: the world seed (use one training never saw: `training_world_seeds`).
      num_samples: scenes per figure.
      image_size: (height, width), the training size.
    """
    from omg_core.model.vocabulary import load_vocabulary, seen_flags

    full, seen_vocabulary = load_vocabulary(FULL_VOCABULARY), load_vocabulary(SEEN_VOCABULARY)
    closed_scenes, open_scenes, vos_scenes = _SceneCache(), _SceneCache(), _SceneCache()
    common = {"seed": seed, "num_samples": num_samples, "image_size": tuple(image_size)}

    def closed(family: str) -> TrainingDataset:
        return _SharedScenesDataset(family, closed_scenes, exclude_held_out=True, vocabulary=seen_vocabulary,
                                    name=f"quality-{family}", **common)

    def held_out_world(family: str) -> TrainingDataset:
        return _SharedScenesDataset(family, open_scenes, exclude_held_out=False, vocabulary=full,
                                    name=f"quality-ov-{family}", **common)

    vos = _SharedScenesDataset("video-instance", vos_scenes, exclude_held_out=True, vocabulary=seen_vocabulary,
                               name="quality-vos", num_frames=VOS_NUM_FRAMES, frame_interval=1, **common)
    return QualityDatasets(
        closed={family: closed(family) for family in FAMILY_TASKS},
        ov_panoptic=held_out_world("panoptic"),
        ov_interactive=held_out_world("interactive"),
        ov_video=held_out_world("video-instance"),
        vos=vos,
        seen=seen_flags(list(full.texts), list(seen_vocabulary.texts)),
    )


def training_world_seeds(config: TrainConfig) -> set[int]:
    """The world seeds a training config draws scenes from: each dataset's seed and its training-evaluation seed."""
    seeds = set()
    for position, spec in enumerate(config.datasets):
        given = spec.options.get("seed")
        seed = given if isinstance(given, int) else config.dataset_seed(position)
        seeds |= {seed, seed + TRAINING_EVAL_SEED_OFFSET}
    return seeds


# ------------------------------------------------------------------------------------------------ measuring


@dataclass
class QualityReport:
    """The measured figures.

    figures: figure key (QUALITY_FIGURES) -> percent, NaN where nothing was measurable.
    details: scorer name -> everything it computed (all family figures, support counts).
    seed, num_samples, image_size: what was measured.
    """

    figures: dict[str, float]
    details: dict[str, dict[str, float]]
    seed: int
    num_samples: int
    image_size: tuple[int, int]

    def met(self, figure: QualityFigure) -> bool:
        value = self.figures[figure.key]
        return not math.isnan(value) and value >= figure.target

    def markdown(self) -> str:
        """The table: figure, measured, target, met / missed (a NaN figure is missed)."""
        lines = ["| figure | measured | target | met |", "| --- | ---: | ---: | --- |"]
        for figure in QUALITY_FIGURES:
            value = self.figures[figure.key]
            sign = "%" if figure.percent_sign else ""
            shown = "n/a" if math.isnan(value) else f"{value:.1f}{sign}"
            lines.append(f"| {figure.name} | {shown} | ≥ {figure.target:g}{sign} | "
                         f"{'met' if self.met(figure) else 'missed'} |")
        return "\n".join(lines)

    def support(self) -> str:
        """One line: how much each figure that depends on scene content scored."""
        d = self.details
        return (f"{self.num_samples} scenes per figure, world seed {self.seed}, "
                f"{self.image_size[0]}x{self.image_size[1]}; held-out objects scored: ov-seg "
                f"{d['ov-seg']['objects']:.0f} ({d['ov-seg']['classes']:.0f} classes), ov-interactive "
                f"{d['ov-interactive']['objects']:.0f}, ov-vis {d['ov-vis']['tracks']:.0f} tracks "
                f"({d['ov-vis']['classes']:.0f} classes); VOS objects {d['vos']['objects']:.0f}; referring phrases "
                f"{d['referring']['phrases']:.0f}")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: NaN becomes null."""

        def clean(value: float) -> float | None:
            return None if math.isnan(value) else value

        return {
            "seed": self.seed,
            "num_samples": self.num_samples,
            "image_size": list(self.image_size),
            "figures": [{"key": f.key, "figure": f.name, "measured": clean(self.figures[f.key]), "target": f.target,
                         "met": self.met(f)} for f in QUALITY_FIGURES],
            "details": {name: {key: clean(value) for key, value in figures.items()}
                        for name, figures in self.details.items()},
        }


def quality_scorers(datasets: QualityDatasets, registry: TaskRegistry) -> dict[str, FigureScorer]:
    """One scorer per figure source: the seven closed families, ov-seg, ov-interactive, ov-vis, vos, referring."""
    scorers: dict[str, FigureScorer] = {family: FamilyScorer(dataset, registry)
                                        for family, dataset in datasets.closed.items()}
    scorers["referring"] = ReferringScorer(datasets.referring, registry)  # the closed images, while they are cached
    scorers["ov-seg"] = OpenPanopticScorer(datasets.ov_panoptic, registry, datasets.seen)
    scorers["ov-interactive"] = OpenInteractiveScorer(datasets.ov_interactive, datasets.seen)
    scorers["ov-vis"] = OpenVideoInstanceScorer(datasets.ov_video, registry, datasets.seen)
    scorers["vos"] = VOSScorer(datasets.vos, registry)
    return scorers


def run_scorers(
    run: QualityRunner,
    scorers: Mapping[str, FigureScorer],
    indices: Sequence[int],
    rank: int = 0,
    world_size: int = 1,
) -> dict[str, dict[str, float]]:
    """Feeds scenes `indices[rank::world_size]` to every scorer, scene by scene (each scene is then drawn and
    encoded once), and computes them all (a collective when world_size > 1: every rank must call it).

    Returns:
      scorer name -> its figures, the same on every rank.
    """
    import torch.distributed as dist

    if world_size > 1 and not (dist.is_available() and dist.is_initialized()):
        raise ValueError(f"world_size {world_size} needs an initialised torch.distributed process group")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside [0, {world_size})")
    for index in list(indices)[rank::world_size]:
        for scorer in scorers.values():
            scorer.update(run, index)
    return {name: scorer.compute() for name, scorer in scorers.items()}


def headline_figures(details: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The twelve figures (QUALITY_FIGURES keys) from `run_scorers`' output."""
    figures = {key: float(details[family][name]) for family, (key, name) in FAMILY_FIGURES.items()}
    figures["ov-seg-PQ"] = float(details["ov-seg"]["PQ"])
    figures["ov-interactive-accuracy"] = float(details["ov-interactive"]["accuracy"])
    figures["ov-vis-AP"] = float(details["ov-vis"]["AP"])
    figures["vos-J&F"] = float(details["vos"]["J&F"])
    figures["referring-mIoU"] = float(details["referring"]["mIoU"])
    return figures


def measure_quality(
    predictor: OMGPredictor | QualityRunner,
    seed: int,
    num_samples: int,
    image_size: tuple[int, int] = (128, 128),
    rank: int = 0,
    world_size: int = 1,
) -> QualityReport:
    """The twelve figures of the quality table (module docstring) on the first `num_samples` scenes of worlds `seed`.

    Arguments:
      predictor: an OMGPredictor (run with `ModelRunner`, under torch.inference_mode), or any QualityRunner.
      seed: the world seed, one training never used.
      num_samples: scenes per figure (>= 1).
      image_size: (height, width) of the scenes.
      rank, world_size: this process in an initialised torch.distributed group (a collective when world_size > 1).
    Returns:
      the report, the same on every rank.
    """
    from omg_core.model.predictor import OMGPredictor

    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    datasets = build_quality_datasets(seed, num_samples, image_size)
    with contextlib.ExitStack() as stack:
        if isinstance(predictor, OMGPredictor):
            stack.enter_context(torch.inference_mode())
            run: QualityRunner = stack.enter_context(ModelRunner(predictor))
        else:
            run = predictor
        registry = getattr(run, "registry", None) or _default_registry()
        details = run_scorers(run, quality_scorers(datasets, registry), range(num_samples), rank, world_size)
    return QualityReport(headline_figures(details), details, seed, num_samples, (int(image_size[0]),
                                                                                 int(image_size[1])))


# ---------------------------------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=1)
def _default_registry() -> TaskRegistry:
    from omg_core.registry import discover_tasks

    return discover_tasks()


def _plugin_task(registry: TaskRegistry, task: str, distribution: str) -> TaskHandle:
    """The plugin task's handle, or an OMGError saying how to install it."""
    from omg_core.errors import OMGError, UnknownTaskError

    try:
        return registry.get(task)
    except UnknownTaskError as error:
        raise OMGError(f"the quality table needs task {task!r}: {error}; install it with "
                       f"pip install -e plugins/{distribution}") from error


def _vocabulary(dataset: TrainingDataset) -> Vocabulary:
    if dataset.vocabulary is None:
        raise ValueError(f"dataset {dataset.name!r} has no vocabulary to evaluate against")
    return dataset.vocabulary


def _check_family(dataset: TrainingDataset, family: str) -> None:
    if dataset.family != family:
        raise ValueError(f"this figure reads a {family}-family dataset, {dataset.name!r} is {dataset.family}")


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def _percent(value: Any) -> float:
    value = float(value)
    return value * 100.0 if not math.isnan(value) else math.nan
