"""One training batch: samples of ONE dataset stacked into the model's inputs and the losses' targets.

Images of a batch may differ in size (augmentation): they are padded at the bottom and right to the largest, as the
model pads to a multiple of 32 anyway, and their target masks with them (padding is background, as mmdet pads target
masks). Interactive samples carry different numbers of prompts: the batch has as many prompt queries as its largest
sample, the extra ones get a dummy prompt and no loss (``prompt_index`` -1).

Prompts reach the model the way its prompt encoder reads them at test time, so training and inference agree: with
OMG-Seg's box queries (``prompt_encoding="official"``) a click becomes a +-3 px box, as the official pipeline does;
with SAM-style encoding (``"sam"``) clicks stay clicks (a click fed as a box there would train an input that
`interactive(points=...)` never gives).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from omg_core.model.inputs import OMGInputs
from omg_core.train.datasets import TrainingDataset, TrainingSample
from omg_core.train.targets import SegmentationTargets

#: Box given to the padding prompts of a batch (they are not supervised).
PADDING_BOX = (0.0, 0.0, 1.0, 1.0)


@dataclass
class TrainingBatch:
    """What one step feeds the model and the criterion.

    inputs: OMGInputs: images B x 3 x H x W (images) or B x T x 3 x H x W (clips) float in [0, 255]; the dataset's
      vocabulary as class_names; interactive batches: their prompts (boxes B x P x 4, or points B x P x C x 2 and
      point_labels B x P x C, see the module docstring) and no learned queries.
    targets: one SegmentationTargets per sample (masks at the padded batch size).
    dataset: the dataset's name.
    family: the dataset's family.
    """

    inputs: OMGInputs
    targets: list[SegmentationTargets]
    dataset: str
    family: str

    def to(self, device: torch.device | str) -> TrainingBatch:
        inputs = self.inputs
        def move(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.to(device)

        moved = OMGInputs(images=inputs.images.to(device), points=move(inputs.points),
                          point_labels=move(inputs.point_labels), boxes=move(inputs.boxes),
                          class_names=inputs.class_names, use_learned_queries=inputs.use_learned_queries)
        return TrainingBatch(moved, [target.to(device) for target in self.targets], self.dataset, self.family)


def collate(samples: Sequence[TrainingSample], dataset: TrainingDataset,
            prompt_encoding: str = "official") -> TrainingBatch:
    """Stack ``samples`` of ``dataset`` into one batch (see the module docstring).

    prompt_encoding: the model's (``ModelConfig.prompt_encoding``): "official" feeds every prompt as a box query,
    "sam" feeds clicks as points (box prompts then need "official": refused with a ValueError).
    """
    if prompt_encoding not in ("official", "sam"):
        raise ValueError(f"prompt_encoding must be 'official' or 'sam', got {prompt_encoding!r}")
    if not samples:
        raise ValueError("a batch needs at least one sample")
    height = max(int(sample.frames.shape[-2]) for sample in samples)
    width = max(int(sample.frames.shape[-1]) for sample in samples)

    def pad(tensor: torch.Tensor) -> torch.Tensor:
        return F.pad(tensor, (0, width - tensor.shape[-1], 0, height - tensor.shape[-2]))

    frames = torch.stack([pad(sample.frames) for sample in samples]).float()  # B x T x 3 x H x W
    images = frames if dataset.is_video else frames[:, 0]
    interactive = dataset.family == "interactive"
    num_prompts = max(sample.num_targets for sample in samples) if interactive else 0
    targets, boxes, points, point_labels = [], [], [], []
    for sample in samples:
        masks = pad(sample.masks)  # N x T x H x W
        masks = masks if dataset.is_video else masks[:, 0]
        prompt_index = None
        if interactive:
            if sample.prompts is None:
                raise ValueError(f"interactive sample {sample.sample_id!r} of {dataset.name!r} has no prompts")
            count = sample.num_targets
            prompt_index = torch.cat([torch.arange(count), torch.full((num_prompts - count,), -1)]).long()
            if prompt_encoding == "official":
                padding = torch.tensor([PADDING_BOX] * (num_prompts - count), dtype=torch.float32).reshape(-1, 4)
                boxes.append(torch.cat([sample.prompts.model_boxes(), padding]))
            else:
                if bool(sample.prompts.is_box.any()):
                    raise ValueError(f"dataset {dataset.name!r} shows prompts as boxes (box_fraction > 0), which "
                                     "SAM-style prompt encoding takes as a box plus clicks; train such data with "
                                     "prompt_encoding 'official' or set box_fraction: 0")
                clicks = sample.prompts.points.float()  # count x P x 2
                extra = num_prompts - count  # padding prompts: every click marked -1 (not a point)
                points.append(torch.cat([clicks, torch.zeros(extra, clicks.shape[1], 2)]))
                point_labels.append(torch.cat([sample.prompts.point_labels.long(),
                                               torch.full((extra, clicks.shape[1]), -1, dtype=torch.int64)]))
        targets.append(SegmentationTargets(labels=sample.labels, masks=masks, prompt_index=prompt_index))
    prompted = interactive and num_prompts > 0  # a batch without any object trains the learned queries on void
    inputs = OMGInputs(
        images=images,
        points=torch.stack(points) if prompted and points else None,
        point_labels=torch.stack(point_labels) if prompted and points else None,
        boxes=torch.stack(boxes) if prompted and boxes else None,
        class_names=list(dataset.vocabulary.texts),
        use_learned_queries=not prompted,
    )
    if interactive and not prompted:
        targets = [SegmentationTargets(labels=t.labels, masks=t.masks) for t in targets]
    return TrainingBatch(inputs, targets, dataset.name, dataset.family)
