"""Masked crops: each mask's object cut out of the image on a flat grey, the input of omg-tiny's CLIP classifier.

OMG-Seg classifies unseen classes by pooling the frozen CLIP's stride-32 features under each mask
(omg_core.model.mask_pooling). On omg-tiny's 128 px inputs that grid is 4 x 4 and the pooled features carry no shape
(a thing class is colour x shape): with ground-truth masks, the tiny CLIP names 7% of the things right that way. The
same CLIP, shown each thing alone, centred on flat grey (how its isolated-thing training crops look,
omg_core.clip_train.data), names 78% of them. So omg-tiny classifies a mask by the CLIP embedding of its masked crop,
as two-stage open-vocabulary segmenters do (OVSeg, Liang et al. CVPR 2023, fill the outside of a mask with a constant).
The functions here cut the training crops too, so both sides frame a thing the same way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, ends exclusive
MASKED_CROP_MARGIN = 0.2  # the crop margin around a mask's box, as a fraction of the box's longer side
MASKED_CROP_FILL = 128  # the grey level outside the mask ([0, 255])


def mask_box(mask: torch.Tensor) -> Box:
    """The bounding box of the True pixels of an H x W mask (which must have some)."""
    rows = torch.nonzero(mask.any(dim=1)).flatten()
    cols = torch.nonzero(mask.any(dim=0)).flatten()
    if rows.numel() == 0:
        raise ValueError("mask_box needs a mask with at least one pixel set")
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def square_box(box: Box, margin: float, height: int, width: int, shift: tuple[float, float] = (0.0, 0.0)) -> Box:
    """A square around `box`, `margin` times its longer side wider on each side, moved by `shift` (fractions of
    the square's side) and then slid back inside the image (a square larger than the image is cut to it)."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin)
    side_px = max(1, min(int(round(side)), height, width))
    cx = (x0 + x1) / 2.0 + shift[0] * side_px
    cy = (y0 + y1) / 2.0 + shift[1] * side_px
    left = int(round(cx - side_px / 2.0))
    top = int(round(cy - side_px / 2.0))
    left = min(max(left, 0), width - side_px)
    top = min(max(top, 0), height - side_px)
    return left, top, left + side_px, top + side_px


def crop_resize(image: torch.Tensor, box: Box, size: int) -> torch.Tensor:
    """
    Arguments:
      image: 3 x H x W uint8.
      box: the region to cut (x0, y0, x1, y1).
      size: output side.

    Returns:
      3 x size x size uint8, resized with antialiasing (crops are usually enlarged, scenes shrunk).
    """
    x0, y0, x1, y1 = box
    region = image[:, y0:y1, x0:x1].float()[None]  # 1 x 3 x h x w
    if region.shape[-2:] != (size, size):
        region = F.interpolate(region, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return region[0].round().clamp(0, 255).to(torch.uint8)


def masked_crops(pixels: torch.Tensor, masks: torch.Tensor, size: int, margin: float = MASKED_CROP_MARGIN,
                 fill: float = MASKED_CROP_FILL) -> tuple[torch.Tensor, torch.Tensor]:
    """One masked crop per mask of an image.

    Arguments:
      pixels: 3 x H x W image in [0, 255] (any float or uint8 dtype).
      masks: Q x H x W bool.
      size: crop side.
      margin: the square crop's margin around each mask's box (fraction of its longer side).
      fill: the value painted outside the mask.

    Returns:
      (Q x 3 x size x size uint8 crops, zeros for empty masks; Q bool: the mask has pixels).
    """
    image = pixels.round().clamp(0, 255).to(torch.uint8) if pixels.is_floating_point() else pixels
    height, width = image.shape[-2:]
    crops = torch.zeros(masks.shape[0], 3, size, size, dtype=torch.uint8, device=image.device)
    valid = masks.flatten(1).any(dim=1)
    grey = torch.full_like(image, int(round(fill)))
    for q in torch.nonzero(valid).flatten().tolist():
        box = square_box(mask_box(masks[q]), margin, height, width)
        crops[q] = crop_resize(torch.where(masks[q][None], image, grey), box, size)
    return crops, valid
