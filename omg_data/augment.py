"""Large-scale jitter (LSJ) with torchvision.transforms.v2 and tv_tensors, clip-consistent.

OMG-Seg's official config resizes by a random scale in [0.1, 2.0] of a 1024 x 1024 target, then
crops (padding when smaller) to 1024 x 1024, with a random horizontal flip. All frames of a clip,
its masks, ignore map, prompt boxes and clicks go through ONE v2 call, so they share one set of
random parameters. Seed with `torch.manual_seed` for reproducible draws.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from omg_data.panoptic_common import masks_from_id_maps
from omg_data.sample import Sample, SamplePrompts


class LargeScaleJitter:
    """Random rescale + crop/pad + horizontal flip of a Sample.

    Arguments:
      output_size: (height, width) of the result (1024 x 1024 in the official config).
      scale_range: range of the random scale relative to `output_size`.
      flip_probability: chance of a horizontal flip.
      pad_value: pixel value of padding; padded pixels are also marked `ignore`.
    Segments that the crop removes entirely are dropped from the result (with their prompts).
    """

    def __init__(
        self,
        output_size: tuple[int, int] = (1024, 1024),
        scale_range: tuple[float, float] = (0.1, 2.0),
        flip_probability: float = 0.5,
        pad_value: int = 0,
    ) -> None:
        if not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range}")
        self.output_size = (int(output_size[0]), int(output_size[1]))
        self.transform = v2.Compose(
            [
                v2.ScaleJitter(target_size=self.output_size, scale_range=scale_range, antialias=True),
                # padding is 0 for masks and for the "valid" map, so padded pixels become ignore
                v2.RandomCrop(
                    self.output_size,
                    pad_if_needed=True,
                    fill={tv_tensors.Video: pad_value, tv_tensors.Mask: 0, "others": 0},
                ),
                v2.RandomHorizontalFlip(p=flip_probability),
                v2.ClampBoundingBoxes(),  # box prompts of partly cropped objects end at the canvas edge
            ]
        )

    def __call__(self, sample: Sample) -> Sample:
        """Returns the augmented sample (frames T x 3 x h x w with (h, w) = output_size)."""
        t, _, h, w = sample.frames.shape
        s = sample.num_segments
        # Non-overlapping segments (panoptic, semantic, VOS) travel as one uint8 label map: S times less
        # resampling than per-segment masks, and the same nearest-neighbour result.
        label_map = _as_label_map(sample.masks)
        inputs = {
            "frames": tv_tensors.Video(sample.frames),  # T x 3 x H x W
            "masks": tv_tensors.Mask(label_map if label_map is not None else sample.masks.reshape(s * t, h, w)),
            "valid": tv_tensors.Mask(~sample.ignore),  # T x H x W, pads to 0 = not valid
        }
        prompts = sample.prompts
        if prompts is not None:
            inputs["boxes"] = tv_tensors.BoundingBoxes(prompts.boxes, format="XYXY", canvas_size=(h, w))
            points = prompts.points.reshape(-1, 2)  # (S*P) x 2
            inputs["points"] = tv_tensors.KeyPoints(points, canvas_size=(h, w))
            if prompts.masks is not None:
                inputs["prompt_masks"] = tv_tensors.Mask(prompts.masks)
        out = self.transform(inputs)
        oh, ow = self.output_size
        if label_map is not None:
            labels = out["masks"].as_subclass(torch.Tensor).numpy()  # T x h x w, 0 = no segment
            keep = torch.from_numpy(np.bincount(labels.ravel(), minlength=s + 1)[1:] > 0)
            masks = masks_from_id_maps(labels, np.arange(1, s + 1)[keep.numpy()])  # S' x T x h x w
        else:
            masks = out["masks"].as_subclass(torch.Tensor).reshape(s, t, oh, ow).bool()
            keep = masks.flatten(1).any(dim=1)
            masks = masks[keep]
        new_prompts = None
        if prompts is not None:
            points = out["points"].as_subclass(torch.Tensor).reshape(prompts.points.shape)
            new_prompts = SamplePrompts(
                points=points[keep],
                point_labels=prompts.point_labels[keep],
                boxes=out["boxes"].as_subclass(torch.Tensor)[keep],
                masks=(
                    out["prompt_masks"].as_subclass(torch.Tensor).bool()[keep] if prompts.masks is not None else None
                ),
                frame_index=prompts.frame_index,
            )
            # clicks cropped away fall outside the image; mark them as padding (label -1, SAM's convention)
            outside = (
                (points[keep][..., 0] < 0)
                | (points[keep][..., 0] >= ow)
                | (points[keep][..., 1] < 0)
                | (points[keep][..., 1] >= oh)
            )
            new_prompts.point_labels = torch.where(outside, -1, new_prompts.point_labels)
        return replace(
            sample,
            frames=out["frames"].as_subclass(torch.Tensor),
            masks=masks,
            class_ids=sample.class_ids[keep],
            is_thing=sample.is_thing[keep],
            instance_ids=sample.instance_ids[keep],
            is_crowd=sample.is_crowd[keep],
            ignore=~out["valid"].as_subclass(torch.Tensor).bool(),
            prompts=new_prompts,
            scores=sample.scores[keep] if sample.scores is not None else None,
        )


def _as_label_map(masks: torch.Tensor) -> torch.Tensor | None:
    """T x H x W uint8 map (k + 1 where segment k is, 0 elsewhere) if the S x T x H x W masks do not overlap."""
    count = masks.shape[0]
    if count == 0 or count >= 255:
        return None
    array = masks.numpy()
    if array.sum(axis=0, dtype=np.uint8).max() > 1:
        return None
    labels = (array.argmax(axis=0) + 1).astype(np.uint8)
    labels[~array.any(axis=0)] = 0
    return torch.from_numpy(labels)
