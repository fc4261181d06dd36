"""What the losses compare the model's queries with: the segments of one training sample, as class indices and masks.

A `SegmentationTargets` holds one sample's N target segments in the sample's vocabulary (the K classes of the
class_logits it is scored against). Learned queries are matched to all N targets by the Hungarian matcher; prompt
queries (interactive segmentation, VOS) are not matched: prompt query j is supervised by target `prompt_index[j]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from omg_core.errors import InputError
from omg_data.sample import Sample


@dataclass
class SegmentationTargets:
    """One sample's target segments.

    labels: N int64 contiguous class indices in [0, K) of the sample's vocabulary; -1 means "no class" (class-agnostic
      data such as SA-1B), allowed only for targets that supervise prompt queries alone (their class loss is skipped).
    masks: N x H x W (images) or N x T x H x W (clips) bool, on the padded model input or on the unpadded image
      (`on_canvas` pads it at the bottom and right, where the model input was padded).
    prompt_index: P int64 or None. Prompt query j is supervised by target prompt_index[j]; -1 marks a padding prompt
      that gets no loss. P must equal the number of prompt queries in the outputs.
    segment_index: N int64 or None, the `Sample` segment each target came from (to pick the matching prompt rows).
    """

    labels: torch.Tensor  # N
    masks: torch.Tensor  # N x H x W or N x T x H x W
    prompt_index: torch.Tensor | None = None  # P
    segment_index: torch.Tensor | None = None  # N

    @property
    def num_targets(self) -> int:
        """N."""
        return int(self.labels.shape[0])

    @property
    def is_clip(self) -> bool:
        """Whether the masks have a frame dimension."""
        return self.masks.dim() == 4

    def validate(self) -> None:
        """Checks shapes, dtypes and index ranges; raises InputError naming the field."""
        if self.labels.dim() != 1 or self.labels.dtype != torch.int64:
            raise InputError(f"targets.labels must be a 1-d int64 tensor, got {self.labels.dtype} of shape"
                             f" {tuple(self.labels.shape)}")
        if self.masks.dim() not in (3, 4) or self.masks.shape[0] != self.num_targets:
            raise InputError(f"targets.masks must be N x H x W or N x T x H x W with N = {self.num_targets} labels,"
                             f" got shape {tuple(self.masks.shape)}")
        if self.masks.dtype != torch.bool:
            raise InputError(f"targets.masks must be bool, got {self.masks.dtype}; threshold soft masks first")
        if self.num_targets and int(self.labels.min()) < -1:
            raise InputError(f"targets.labels must be class indices >= 0 or -1 (no class), got {self.labels.tolist()}")
        if self.prompt_index is not None:
            index = self.prompt_index
            if index.dim() != 1 or index.dtype != torch.int64:
                raise InputError("targets.prompt_index must be a 1-d int64 tensor (one entry per prompt query)")
            if index.numel() and (int(index.min()) < -1 or int(index.max()) >= self.num_targets):
                raise InputError(f"targets.prompt_index must point at one of the {self.num_targets} targets (or be -1"
                                 f" for a padding prompt), got {index.tolist()}")

    def to(self, device: torch.device | str) -> SegmentationTargets:
        """The same targets on `device`."""
        def move(value: torch.Tensor | None) -> torch.Tensor | None:
            return None if value is None else value.to(device)
        return replace(self, labels=self.labels.to(device), masks=self.masks.to(device),
                       prompt_index=move(self.prompt_index), segment_index=move(self.segment_index))

    def on_canvas(self, padded_size: tuple[int, int], image_size: tuple[int, int],
                  mask_size: tuple[int, int]) -> torch.Tensor:
        """The masks on the canvas the predicted masks cover (the padded model input).

        OMG-Seg (mmdet) pads target masks with zeros to the padded batch input and samples them at full resolution
        with the same normalised points as the stride-4 predictions; nothing is resized. So masks already on the
        padded input (at full size or at the prediction's size) are returned as they are, and masks of the unpadded
        image get the padding added.

        Arguments:
          padded_size: (H_pad, W_pad) of the padded model input.
          image_size: (H, W) of the input before padding.
          mask_size: (h, w) of the predicted masks (stride 4 of the padded input).

        Returns:
          N x H' x W' (or N x T x H' x W') bool masks covering the padded input.
        """
        size = tuple(self.masks.shape[-2:])
        if size in (tuple(padded_size), tuple(mask_size)):
            return self.masks
        if size == tuple(image_size):
            pad_bottom, pad_right = padded_size[0] - size[0], padded_size[1] - size[1]
            return F.pad(self.masks, (0, pad_right, 0, pad_bottom))
        raise InputError(
            f"target masks are {size[0]}x{size[1]} but the model input was {image_size[0]}x{image_size[1]} (padded to"
            f" {padded_size[0]}x{padded_size[1]}); give targets at the input image's size or the padded size"
        )


def targets_from_sample(
    sample: Sample,
    class_index: Mapping[int, int],
    with_prompts: bool = False,
    drop_unmapped: bool = False,
) -> SegmentationTargets:
    """A sample's segments as training targets, as Mask2Former / OMG-Seg build them.

    Crowd segments are dropped (Mask2Former keeps only non-crowd segments as targets; crowd pixels then count as
    background, the same as void pixels, which the mask losses do not treat specially). Segments with no pixel in
    any frame are dropped too: no query can be asked to predict an empty mask.

    Arguments:
      sample: an image (one frame) or a clip (`sample.is_video`).
      class_index: dataset category id -> contiguous index in the vocabulary the model is scored against.
      with_prompts: the kept targets supervise prompt queries in order (prompt query j <- target j); give the model
        the prompts of rows `segment_index` of `sample.prompts`.
      drop_unmapped: drop segments whose category is not in `class_index` (held-out open-vocabulary classes)
        instead of raising.

    Returns:
      SegmentationTargets with N x H x W masks for images and N x T x H x W for clips.
    """
    if not sample.is_video and sample.num_frames != 1:
        raise InputError(f"sample {sample.sample_id!r} has {sample.num_frames} frames but is not marked as a video;"
                         " set is_video=True to train on it as a clip")
    keep = ~sample.is_crowd & sample.masks.flatten(1).any(dim=1)
    mapped = torch.tensor([int(c) in class_index for c in sample.class_ids.tolist()], dtype=torch.bool)
    if not drop_unmapped and bool((keep & ~mapped).any()):
        missing = sorted({int(c) for c, k, m in zip(sample.class_ids.tolist(), keep.tolist(), mapped.tolist())
                          if k and not m})
        raise InputError(f"sample {sample.sample_id!r} has category ids {missing} that are not in the class map;"
                         " add them or pass drop_unmapped=True")
    keep &= mapped
    segment_index = keep.nonzero().flatten()
    labels = torch.tensor([class_index[int(c)] for c in sample.class_ids[segment_index].tolist()], dtype=torch.int64)
    masks = sample.masks[segment_index]  # N x T x H x W
    if not sample.is_video:
        masks = masks[:, 0]
    prompt_index = torch.arange(len(segment_index)) if with_prompts else None
    return SegmentationTargets(labels, masks, prompt_index, segment_index)
