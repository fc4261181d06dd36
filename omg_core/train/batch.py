"""One training batch: samples of ONE dataset stacked into the model's inputs and the losses' targets.

Images of a batch may differ in size (augmentation): they are padded at the bottom and right to the largest, as the
model pads to a multiple of 32 anyway, and their target masks with them (padding is background, as mmdet pads target
masks). Interactive samples carry different numbers of prompts: the batch has as many prompt queries as its largest
sample, the extra ones get a dummy box and no loss (``prompt_index`` -1).
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
      vocabulary as class_names; interactive batches: boxes B x P x 4 and no learned queries.
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
        moved = OMGInputs(images=inputs.images.to(device), boxes=None if inputs.boxes is None else inputs.boxes.to(device),
                          class_names=inputs.class_names, use_learned_queries=inputs.use_learned_queries)
        return TrainingBatch(moved, [target.to(device) for target in self.targets], self.dataset, self.family)


def collate(samples: Sequence[TrainingSample], dataset: TrainingDataset) -> TrainingBatch:
    """Stack ``samples`` of ``dataset`` into one batch (see the module docstring)."""
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
    targets, boxes = [], []
    for sample in samples:
        masks = pad(sample.masks)  # N x T x H x W
        masks = masks if dataset.is_video else masks[:, 0]
        prompt_index = None
        if interactive:
            if sample.prompts is None:
                raise ValueError(f"interactive sample {sample.sample_id!r} of {dataset.name!r} has no prompts")
            count = sample.num_targets
            prompt_index = torch.cat([torch.arange(count), torch.full((num_prompts - count,), -1)]).long()
            padding = torch.tensor([PADDING_BOX] * (num_prompts - count), dtype=torch.float32).reshape(-1, 4)
            boxes.append(torch.cat([sample.prompts.model_boxes(), padding]))
        targets.append(SegmentationTargets(labels=sample.labels, masks=masks, prompt_index=prompt_index))
    prompted = interactive and num_prompts > 0  # a batch without any object trains the learned queries on void
    inputs = OMGInputs(
        images=images,
        boxes=torch.stack(boxes) if prompted else None,
        class_names=list(dataset.vocabulary.texts),
        use_learned_queries=not prompted,
    )
    if interactive and not prompted:
        targets = [SegmentationTargets(labels=t.labels, masks=t.masks) for t in targets]
    return TrainingBatch(inputs, targets, dataset.name, dataset.family)
