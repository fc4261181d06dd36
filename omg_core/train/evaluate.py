"""Evaluation during training: each dataset's own task metric on held-out samples, synced across ranks.

    datasets = build_eval_datasets(config)                  # the training datasets on other scenes, no jitter
    figures = evaluate(model, datasets, num_samples=50)     # {"shapes-panoptic": {"PQ": 41.2, ...}, ...}

A dataset family is answered by one task (`FAMILY_TASKS`), run through the task's own hooks with the DATASET's
vocabulary (the closed tasks' plans keep the model's default vocabulary, so the plan is given the dataset's; see
`TaskRunner`), and scored by the metric the task binds (`registry.get(task).create_metric`). Each rank evaluates
every world_size-th sample; the metric's compute then reduces its states over the torch.distributed group, so every
rank gets the figures of all samples.

What is scored, per family (figures in percent, as the paper's tables; NaN where nothing was measurable):

  family           task             figures
  panoptic         panoptic         PQ, SQ, RQ, PQ_th, PQ_st          (panopticapi)
  instance         instance         AP, AP50, AP75, APs, APm, APl     (COCO mask AP)
  semantic         semantic         mIoU, fwIoU, pACC, mACC           (mmseg IoU)
  interactive      interactive      mIoU                              (one click per object, the sample's click)
  video-instance   video-instance   AP, AP50, AP75, AR1, AR10         (YouTube-VIS)
  video-panoptic   video-panoptic   VPQ, VPQ_th, VPQ_st, STQ, AQ      (VPQ over the windows a clip fills)
  video-semantic   video-semantic   mIoU                              (VSPW)

Ignore pixels (void, crowd, held-out classes) never count: they are VOID in panoptic maps, the ignore label in
semantic maps, left out of interactive IoUs; for (video) instance AP a detection lying mostly (> 50%) on them is
dropped and the rest are clipped to the labelled pixels, panopticapi's rule for predicted segments on VOID.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn

from omg_core.train.datasets import DATASET_BUILDERS, TrainingDataset, TrainingSample

if TYPE_CHECKING:
    from omg_core.model.predictor import OMGPredictor
    from omg_core.model.vocabulary import Vocabulary
    from omg_core.registry import TaskRegistry
    from omg_core.task_io import Prompts
    from omg_core.train.config import TrainConfig
    from omg_eval.metric import Metric

#: The task that answers each training family.
FAMILY_TASKS: dict[str, str] = {
    "panoptic": "panoptic",
    "instance": "instance",
    "semantic": "semantic",
    "interactive": "interactive",
    "video-instance": "video-instance",
    "video-panoptic": "video-panoptic",
    "video-semantic": "video-semantic",
}

#: The headline figure(s) of each family (what a quality table shows first).
HEADLINE_FIGURES: dict[str, tuple[str, ...]] = {
    "panoptic": ("PQ",),
    "instance": ("AP",),
    "semantic": ("mIoU",),
    "interactive": ("mIoU",),
    "video-instance": ("AP",),
    "video-panoptic": ("VPQ", "STQ"),
    "video-semantic": ("mIoU",),
}

#: Panoptic ids of the video-panoptic metrics: category * LABEL_DIVISOR + instance.
LABEL_DIVISOR = 10_000

#: A callable giving a task's typed result for one training sample, classified against `vocabulary`
#: (`TaskRunner` runs the model; tests pass fakes).
SamplePredictor = Callable[[str, TrainingSample, "Vocabulary"], Any]


# ---------------------------------------------------------------------------------------------- running tasks


class TaskRunner:
    """Runs a task's hooks on a training sample with the dataset's vocabulary, as `OMGPredictor.run` does.

    The closed tasks' encode hooks return plans without a vocabulary (the model's default one), and
    `OMGPredictor.run` hands its `vocabulary` only to the request, so the runner builds the request itself and gives
    the plan the dataset's class texts and thing flags before calling the predictor with it.

    Arguments:
      predictor: the predictor (its model, device and test-time size).
    """

    def __init__(self, predictor: OMGPredictor) -> None:
        self.predictor = predictor

    @property
    def registry(self) -> TaskRegistry:
        return self.predictor.registry

    def __call__(self, task: str, sample: TrainingSample, vocabulary: Vocabulary) -> Any:
        """The task's typed result (`omg_core.results`) for `sample`, labels indexing `vocabulary`."""
        from omg_core.task_info import validate_options
        from omg_core.task_io import TaskRequest

        handle = self.registry.get(task)
        info = handle.info
        pixels = sample.frames if info.modality == "video" else sample.frames[0]  # T x 3 x H x W or 3 x H x W
        prompts = object_prompts(sample)[1] if info.prompt_kinds else None
        texts, things = tuple(vocabulary.texts), tuple(bool(t) for t in vocabulary.is_thing)
        request = TaskRequest(task=info.name, modality=info.modality, pixels=pixels, prompts=prompts,
                              vocabulary=texts, options=validate_options(info.name, info.options, {}, "options"),
                              thing_classes=things)
        plan = replace(handle.encode_queries(request), vocabulary=texts, thing_classes=things)
        return handle.decode_outputs(request, plan, self.predictor(request, plan)).data


def object_prompts(sample: TrainingSample) -> tuple[torch.Tensor, Prompts]:
    """One click per object of an interactive sample: the first valid click of the first prompt asking for it.

    Training repeats objects up to 20 prompts; scoring each object once keeps large objects of small scenes from
    counting several times.

    Returns:
      (rows: M int64 the targets clicked, in prompt order; Prompts with points M x 1 x 2 and point_labels M x 1).
    """
    from omg_core.task_io import Prompts

    if sample.prompts is None:
        raise ValueError(f"sample {sample.sample_id!r} has no prompts; interactive evaluation needs the interactive "
                         "family's samples")
    valid = sample.prompts.point_labels == 1  # N x P
    rows, clicks, seen = [], [], set()
    for row in range(sample.num_targets):
        target = int(sample.target_ids[row])
        if target in seen or not bool(valid[row].any()):
            continue
        seen.add(target)
        rows.append(row)
        clicks.append(sample.prompts.points[row, int(valid[row].float().argmax())])
    points = torch.stack(clicks)[:, None] if clicks else torch.zeros(0, 1, 2)  # M x 1 x 2
    labels = torch.ones(points.shape[:2], dtype=torch.int64)  # M x 1
    return torch.tensor(rows, dtype=torch.int64), Prompts(points=points.float(), point_labels=labels)


# ---------------------------------------------------------------------------------------------------- metrics


def create_family_metric(registry: TaskRegistry, dataset: TrainingDataset) -> Metric:
    """The metric of the dataset's family's task, set up for the dataset's vocabulary (class index = category id)."""
    vocabulary = _vocabulary(dataset)
    count = len(vocabulary.texts)
    things = [k for k, thing in enumerate(vocabulary.is_thing) if thing]
    void = max(255, count)  # outside the class range
    family = dataset.family
    options: dict[str, Any]
    if family == "panoptic":
        options = {"categories": [{"id": k, "isthing": int(t)} for k, t in enumerate(vocabulary.is_thing)]}
    elif family in ("instance", "video-instance"):
        options = {"category_ids": things or list(range(count))}
    elif family in ("semantic", "video-semantic"):
        options = {"num_classes": count, "ignore_index": void}
    elif family == "video-panoptic":
        options = {"num_classes": count, "thing_classes": things, "label_divisor": LABEL_DIVISOR, "void_label": void}
    else:  # interactive: the default NoC thresholds; only the first-click IoU is read
        options = {}
    return registry.get(FAMILY_TASKS[family]).create_metric(options)


def update_family_metric(
    metric: Metric, dataset: TrainingDataset, sample: TrainingSample, result: Any, index: int
) -> None:
    """Feeds one sample's typed result and ground truth to the family's metric, in the metric's input format.

    Arguments:
      metric: from `create_family_metric(registry, dataset)`.
      dataset: the sample's dataset (family, vocabulary).
      sample: the ground truth.
      result: the task's typed result (PanopticMap, Instances, SemanticMap, PromptMasks, Tracks, PanopticVideo,
        SemanticVideo), classes indexing the dataset's vocabulary.
      index: the sample's index (its image / video id in the metric: unique per dataset).
    """
    vocabulary = _vocabulary(dataset)
    family = dataset.family
    valid = ~sample.ignore  # T x H x W
    void = max(255, len(vocabulary.texts))
    if family == "panoptic":
        gt_map, gt_segments = _panoptic_ground_truth(sample)
        pred_map = result.segment_ids.to(torch.int64)
        present = set(torch.unique(pred_map).tolist())
        pred_segments = [{"id": s.id, "category_id": s.label} for s in result.segments if s.id in present]
        metric.update([pred_map], [pred_segments], [gt_map], [gt_segments], image_names=[str(sample.sample_id)])
    elif family == "instance":
        height, width = sample.ignore.shape[-2:]
        masks, keep = _off_ignore(result.masks[:, None], valid)
        categories = set(metric.category_ids)
        detections = [{"category_id": int(label), "segmentation": mask[0], "score": float(score)}
                      for mask, label, score, kept in zip(masks, result.labels, result.scores, keep)
                      if kept and int(label) in categories]
        truths = [{"category_id": int(label), "segmentation": mask[0], "area": int(mask.sum()), "iscrowd": 0}
                  for label, mask in zip(sample.labels, sample.masks)]
        metric.update(index, int(height), int(width), truths, detections)
    elif family in ("semantic", "video-semantic"):
        gt = _semantic_ground_truth(sample, void)  # T x H x W
        pred = result.labels.to(torch.int64)
        metric.update(pred, gt if family == "video-semantic" else gt[0])
    elif family == "interactive":
        rows, _ = object_prompts(sample)
        if len(result.masks) != len(rows):
            raise ValueError(f"sample {sample.sample_id!r}: {len(result.masks)} masks for {len(rows)} prompts")
        ious = [[_iou(mask, sample.masks[row, 0], valid[0])] for mask, row in zip(result.masks, rows.tolist())]
        metric.update(click_ious=ious)
    elif family == "video-instance":
        masks, keep = _off_ignore(result.masks, valid)
        categories = set(metric.category_ids)
        known = torch.tensor([int(label) in categories for label in result.labels], dtype=torch.bool)
        keep = keep & known
        metric.update(index, result.scores[keep].to(torch.float64), result.labels[keep].to(torch.int64), masks[keep],
                      sample.labels, sample.masks)
    elif family == "video-panoptic":
        gt = _video_panoptic_ground_truth(sample, vocabulary, void)
        metric.update(_video_panoptic_prediction(result, vocabulary, void), gt)
    else:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILY_TASKS)}")


def family_figures(metric: Metric, dataset: TrainingDataset) -> dict[str, float]:
    """The family's figures (see the module docstring) from the metric's compute (synced over ranks), in percent."""
    figures = metric.compute()
    family = dataset.family
    if family == "panoptic":
        picked = {"PQ": figures["All"]["pq"], "SQ": figures["All"]["sq"], "RQ": figures["All"]["rq"],
                  "PQ_th": figures["Things"]["pq"], "PQ_st": figures["Stuff"]["pq"]}
    elif family == "instance":
        picked = {name: figures[name] for name in ("AP", "AP50", "AP75", "APs", "APm", "APl")}
    elif family == "semantic":
        picked = {name: figures[name] for name in ("mIoU", "fwIoU", "pACC", "mACC")}
    elif family == "interactive":
        picked = {"mIoU": figures["mIoU@1click"]}
    elif family == "video-instance":
        picked = {name: figures[name] for name in ("AP", "AP50", "AP75", "AR1", "AR10")}
    elif family == "video-panoptic":
        # only windows of at most T frames can be filled by T-frame clips; the others are NaN by construction
        vpq = metric.metrics["VPQ"]
        windows = [k for k, n in zip(vpq.window_sizes, vpq.frame_counts) if n <= dataset.num_frames]
        picked = {name: _mean([figures[f"{key}@{k}"] for k in windows])
                  for name, key in (("VPQ", "vpq"), ("VPQ_th", "vpq_thing"), ("VPQ_st", "vpq_stuff"))}
        picked.update(STQ=figures["stq"], AQ=figures["aq"])
    else:  # video-semantic
        picked = {"mIoU": figures["mIoU"]}
    return {name: _percent(value) for name, value in picked.items()}


# ------------------------------------------------------------------------------------------------- evaluation


def evaluate_dataset(
    predictor: OMGPredictor | SamplePredictor,
    dataset: TrainingDataset,
    indices: Sequence[int],
    rank: int = 0,
    world_size: int = 1,
) -> dict[str, float]:
    """Scores the samples `indices` of `dataset` with its family's task metric.

    Arguments:
      predictor: an OMGPredictor (run through `TaskRunner`), or any SamplePredictor.
      dataset: the evaluated dataset (its family picks the task, its vocabulary the classes).
      indices: the sample indices, the same list on every rank; this rank runs indices[rank::world_size].
      rank, world_size: this process in the initialised torch.distributed group (world_size 1: no group needed).
    Returns:
      the family's figures (module docstring) over all of `indices`, the same on every rank. A collective when
      world_size > 1: every rank must call it.
    """
    from omg_core.model.predictor import OMGPredictor

    if world_size > 1 and not (dist.is_available() and dist.is_initialized()):
        raise ValueError(f"world_size {world_size} needs an initialised torch.distributed process group")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside [0, {world_size})")
    run: SamplePredictor = TaskRunner(predictor) if isinstance(predictor, OMGPredictor) else predictor
    registry = getattr(run, "registry", None) or _default_registry()
    metric = create_family_metric(registry, dataset)
    task = FAMILY_TASKS[dataset.family]
    vocabulary = _vocabulary(dataset)
    for index in list(indices)[rank::world_size]:
        sample = dataset.get(index)
        update_family_metric(metric, dataset, sample, run(task, sample, vocabulary), index)
    return family_figures(metric, dataset)


def evaluate(
    model: nn.Module,
    datasets: Sequence[TrainingDataset],
    num_samples: int,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str = "cpu",
) -> dict[str, dict[str, float]]:
    """Every dataset's figures on its first `num_samples` samples (or all, when it has fewer).

    The model runs in eval mode under torch.inference_mode; every module's train/eval flag is put back afterwards
    (a frozen backbone stays in eval mode inside a training model).

    Arguments:
      model: the OMGModel (not a DistributedDataParallel wrapper: evaluation needs no gradient sync).
      datasets: e.g. from `build_eval_datasets`.
      num_samples: samples per dataset, shared out over the ranks.
      rank, world_size, device: this process (a collective when world_size > 1).
    Returns:
      dataset name -> figures, the same on every rank.
    """
    from omg_core.model.predictor import OMGPredictor

    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    model = getattr(model, "module", model)  # a DDP wrapper's model
    with _modes_restored(model), torch.inference_mode():
        predictor = OMGPredictor(model, device)  # puts the model in eval mode
        return {dataset.name: evaluate_dataset(predictor, dataset, range(min(num_samples, len(dataset))), rank,
                                               world_size)
                for dataset in datasets}


def build_eval_datasets(config: TrainConfig, seed_offset: int = 1_000_003) -> list[TrainingDataset]:
    """The config's datasets on held-out scenes: rebuilt through DATASET_BUILDERS with their seed moved by
    `seed_offset` (an explicit `seed` option too), their vocabulary and family, and no augmentation.

    Arguments:
      config: the training config (already checked: `check_train_config`).
      seed_offset: added to each dataset's seed; any value but 0 gives other scenes than training.
    Returns:
      one dataset per configured dataset, in order, with the same names.
    """
    from omg_core.model.vocabulary import parse_vocabulary, vocabulary_from_classes

    if seed_offset == 0:
        raise ValueError("seed_offset 0 would evaluate on the training scenes; give another offset")
    datasets = []
    for position, spec in enumerate(config.datasets):
        options = dict(spec.options)
        # an explicit seed option replaces the derived seed (builders take one `seed`)
        seed = options.pop("seed") if isinstance(options.get("seed"), int) else config.dataset_seed(position)
        vocabulary = None
        if isinstance(spec.vocabulary, str):
            vocabulary = parse_vocabulary(spec.vocabulary, option=f"datasets[{position}].vocabulary")
        elif spec.vocabulary is not None:
            vocabulary = vocabulary_from_classes(spec.vocabulary, option=f"datasets[{position}].vocabulary")
        dataset = DATASET_BUILDERS[spec.kind](name=spec.name, family=spec.family,
                                              seed=seed + seed_offset,
                                              vocabulary=vocabulary, **options)
        dataset.transform = None  # evaluation scores the scenes as they are: no jitter
        datasets.append(dataset)
    return datasets


# ---------------------------------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=1)
def _default_registry() -> TaskRegistry:
    from omg_core.registry import discover_tasks

    return discover_tasks()


@contextlib.contextmanager
def _modes_restored(model: nn.Module) -> Iterator[None]:
    """Puts back every module's own training flag on exit."""
    modes = [(module, module.training) for module in model.modules()]
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _vocabulary(dataset: TrainingDataset) -> Vocabulary:
    if dataset.vocabulary is None:
        raise ValueError(f"dataset {dataset.name!r} has no vocabulary to evaluate against")
    return dataset.vocabulary


def _panoptic_ground_truth(sample: TrainingSample) -> tuple[torch.Tensor, list[dict[str, int]]]:
    """(H x W id map, 0 = VOID on ignore pixels; segments_info) of an image sample: target i is segment i + 1."""
    valid = ~sample.ignore[0]
    ids = torch.zeros(sample.ignore.shape[-2:], dtype=torch.int64)
    for i, mask in enumerate(sample.masks[:, 0]):
        ids[mask & valid] = i + 1
    segments = []
    for i, label in enumerate(sample.labels.tolist()):
        area = int((ids == i + 1).sum())
        if area:  # a target wholly on ignore pixels is no segment
            segments.append({"id": i + 1, "category_id": label, "iscrowd": 0, "area": area})
    return ids, segments


def _semantic_ground_truth(sample: TrainingSample, ignore_label: int) -> torch.Tensor:
    """T x H x W class map, `ignore_label` on ignore and unlabelled pixels."""
    labels = torch.full(sample.ignore.shape, ignore_label, dtype=torch.int64)
    for label, mask in zip(sample.labels.tolist(), sample.masks):
        labels[mask] = label
    labels[sample.ignore] = ignore_label
    return labels


def _video_panoptic_ground_truth(sample: TrainingSample, vocabulary: Vocabulary, void: int) -> torch.Tensor:
    """T x H x W ids category * LABEL_DIVISOR + instance: things numbered from 1 (0 would be crowd), stuff 0."""
    ids = torch.full(sample.ignore.shape, void * LABEL_DIVISOR, dtype=torch.int64)
    for i, (label, mask) in enumerate(zip(sample.labels.tolist(), sample.masks)):
        ids[mask] = label * LABEL_DIVISOR + (i + 1 if vocabulary.is_thing[label] else 0)
    ids[sample.ignore] = void * LABEL_DIVISOR
    return ids


def _video_panoptic_prediction(result: Any, vocabulary: Vocabulary, void: int) -> torch.Tensor:
    """A PanopticVideo as T x H x W ids category * LABEL_DIVISOR + instance (VOID where no segment)."""
    ids = torch.full(result.segment_ids.shape, void * LABEL_DIVISOR, dtype=torch.int64)
    for number, segment in enumerate(result.segments, start=1):
        instance = number if vocabulary.is_thing[segment.label] else 0
        ids[result.segment_ids == segment.id] = segment.label * LABEL_DIVISOR + instance
    return ids


def _off_ignore(masks: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(D x T x H x W masks clipped to the valid pixels, D bool: kept, i.e. at most half of the mask on ignore)."""
    masks = masks.to(torch.bool)
    area = masks.flatten(1).sum(1)
    clipped = masks & valid
    kept = 2 * clipped.flatten(1).sum(1) >= area
    return clipped, kept


def _iou(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> float:
    """IoU of two H x W masks over the valid pixels (1 when both are empty there)."""
    pred, gt = pred.to(torch.bool) & valid, gt.to(torch.bool) & valid
    union = int((pred | gt).sum())
    return int((pred & gt).sum()) / union if union else 1.0


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _percent(value: Any) -> float:
    """A fraction as percent; COCO's -1 ("not measurable") and NaN become NaN."""
    value = float(value)
    return value * 100.0 if value >= 0 else math.nan
