"""Test-time resizing on both sides of the model, as OMG-Seg's evaluation does it.

Before the model, an image is resized keeping its aspect ratio so that it fits a (long, short) scale: mmdet's
``Resize(scale=..., keep_ratio=True)``, which calls mmcv's ``imrescale`` (``rescale_size`` for the size, cv2
``INTER_LINEAR`` for the pixels). After the model, the stride-4 mask logits are resized back to the output size by a
``MaskResize`` callable (e.g. ``lambda m: masks_to_original_size(m, padded, image, original)``); the inference
functions select the queries they need first and resize them a chunk at a time with :func:`resized_query_chunks`
(this module also holds the other input plumbing they share: :func:`resized_output`, :func:`check_query_logits`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch
import torch.nn.functional as F

from omg_core.errors import InputError

# The module and test_time_size start with "test": tell pytest they are not tests, wherever they are imported.
__test__ = False

#: Maps (N, h, w) low-resolution mask logits to (N, H, W) logits at the output size, channel by channel.
MaskResize = Callable[[torch.Tensor], torch.Tensor]

#: Test-time (long side, short side) bounds of the official evaluation pipelines (OMG-Seg at 1ae2e7d):
DATASET_TEST_SCALES: dict[str, tuple[int, int]] = {
    # seg/configs/_base_/datasets/coco_panoptic_lsj.py test_pipeline: Resize(scale=(1333, 800), keep_ratio=True)
    # (also coco_panoptic_lsj_sam.py, used by the interactive COCO evaluation)
    "coco": (1333, 800),
    # seg/configs/_base_/datasets/ade_panoptic.py test_pipeline (m2ov_val/datasets/ade.py takes its test_dataloader)
    "ade20k": (2560, 640),
    # seg/configs/_base_/datasets/cityscapes_panoptic.py test_pipeline
    "cityscapes": (2048, 1024),
    # image_size = (1280, 736) in seg/configs/_base_/datasets/{youtube_vis_2019,youtube_vis_2021,vipseg,davis}.py,
    # test_pipeline: Resize(scale=image_size, keep_ratio=True) on every frame
    "video": (1280, 736),
}

#: The long-side bound of a ``--size SHORT`` scale: large enough never to be the binding one.
NO_LONG_SIDE_LIMIT = 1 << 30

#: The sides ``--size`` accepts.
MIN_SIDE, MAX_SIDE = 32, 8192
_SIZE_FORMS = "LONGxSHORT (e.g. 1333x800), SHORT (e.g. 800: short side, long side unbounded) or 'native'"


def test_time_size(height: int, width: int, scale: tuple[int, int]) -> tuple[int, int]:
    """The size mmcv's ``rescale_size`` gives an image under a keep-ratio scale.

    scale factor f = min(long_bound / long_edge, short_bound / short_edge); new edge = int(edge * f + 0.5).

    Arguments:
      height, width: of the original image, > 0.
      scale: the two bounds in either order (the larger bounds the long edge, as mmcv reads them).
    Returns:
      (new_height, new_width); e.g. a 480 x 640 (H x W) image under (1333, 800) becomes (800, 1067).
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width} (HxW)")
    long_bound, short_bound = max(scale), min(scale)
    if short_bound <= 0:
        raise ValueError(f"scale bounds must be positive, got {scale}")
    factor = min(long_bound / max(height, width), short_bound / min(height, width))
    # mmcv's _scale_size: int(x * f + 0.5), computed in Python floats exactly as here
    return int(height * factor + 0.5), int(width * factor + 0.5)


test_time_size.__test__ = False  # type: ignore[attr-defined]


def resize_for_test(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize uint8 pixels to ``size`` as mmcv's cv2 INTER_LINEAR does: bilinear, half-pixel centres
    (align_corners=False), no antialiasing when shrinking.

    cv2 writes uint8, so the result is rounded to whole values; cv2 interpolates with 11-bit fixed-point weights, so
    a value may still differ from cv2's by 1.

    Arguments:
      pixels: (3, H, W) or (T, 3, H, W) uint8.
      size: (new_height, new_width), e.g. from :func:`test_time_size`.
    Returns:
      float32 tensor of the same layout at ``size``, values in [0, 255]; the input as float32 when the size is
      already ``size``.
    """
    if pixels.dtype != torch.uint8:
        raise TypeError(f"resize_for_test takes uint8 pixels, got {pixels.dtype}")
    if pixels.ndim not in (3, 4) or pixels.shape[-3] != 3:
        raise ValueError(f"pixels must be (3, H, W) or (T, 3, H, W), got {tuple(pixels.shape)}")
    size = (int(size[0]), int(size[1]))
    values = pixels.float()
    if tuple(pixels.shape[-2:]) == size:
        return values
    batch = values if values.ndim == 4 else values[None]
    resized = F.interpolate(batch, size=size, mode="bilinear", align_corners=False, antialias=False)
    resized = resized.round_().clamp_(0.0, 255.0)
    return resized if values.ndim == 4 else resized[0]


def parse_size(text: str) -> tuple[int, int] | None:
    """Read a ``--size`` option.

    "1333x800" bounds the long side by 1333 and the short side by 800 (the two numbers in either order, as mmcv
    reads a scale); "800" makes the short side 800 whatever the long side becomes (long bound NO_LONG_SIDE_LIMIT);
    "native" (None) keeps the image size.

    Returns:
      (long_bound, short_bound), or None for native.
    Raises:
      InputError naming ``--size`` and the accepted forms.
    """
    cleaned = text.strip().lower()
    if cleaned == "native":
        return None
    pair = re.fullmatch(r"(\d+)\s*x\s*(\d+)", cleaned)
    single = re.fullmatch(r"\d+", cleaned)
    if pair is not None:
        first, second = int(pair.group(1)), int(pair.group(2))
        bounds = (max(first, second), min(first, second))
    elif single is not None:
        bounds = (NO_LONG_SIDE_LIMIT, int(cleaned))
    else:
        raise InputError(f"--size: cannot read {text!r}; give {_SIZE_FORMS}")
    if bounds[1] <= 0:
        raise InputError(f"--size: sides must be positive, got {text!r}; give {_SIZE_FORMS}")
    given = [side for side in bounds if side != NO_LONG_SIDE_LIMIT]
    if min(given) < MIN_SIDE or max(given) > MAX_SIDE:
        # below, the stride-32 features hold one cell or none; above, one image's mask logits alone need tens of GB
        raise InputError(f"--size: sides must lie in [{MIN_SIDE}, {MAX_SIDE}] pixels, got {text!r}; the official "
                         "sizes are 1333x800 (images) and 1280x736 (videos)")
    return bounds


class ResizedOutput(NamedTuple):
    """What ``resize`` produces: its (H, W) and the device its logits land on."""

    height: int
    width: int
    device: torch.device  # the inference results are built here (a resize may move logits, e.g. to the CPU)


def resized_output(mask_logits: torch.Tensor, resize: MaskResize) -> ResizedOutput:
    """The size and device ``resize`` produces, found by resizing one blank channel (so it also works with no
    queries: bilinear interpolation refuses an empty batch)."""
    blank = mask_logits.new_zeros((1, *mask_logits.shape[-2:]), dtype=torch.float32)
    resized = resize(blank)
    return ResizedOutput(int(resized.shape[-2]), int(resized.shape[-1]), resized.device)


def resized_query_chunks(
    mask_logits: torch.Tensor, query_indices: torch.Tensor, resize: MaskResize, chunk: int
) -> Iterator[tuple[int, torch.Tensor]]:
    """Resize the selected queries ``chunk`` at a time (the full-size logits of 300 queries can take gigabytes).

    Bilinear resizing is per channel, so every chunk holds the rows that resizing all queries would give. On the CPU
    they may still differ in the last bit: PyTorch's CPU kernel computes channels in vector-width groups (8 floats
    with AVX2) and the leftover channels on a scalar path that rounds differently, so a row's last bit may depend on
    the batch it is resized in. Only a pixel exactly at a tie or a threshold can change.

    Arguments:
      mask_logits: (Q, h, w) low-resolution logits, any float dtype (resized in float32).
      query_indices: (N,) int64 queries to resize, in the order wanted, on any device.
      resize: the MaskResize callable.
      chunk: queries per chunk, > 0.
    Yields:
      (start, logits): position of the chunk's first query in ``query_indices`` and its (n, H, W) float32 logits,
      where ``resize`` puts them (see :func:`resized_output`).
    """
    if chunk <= 0:
        raise ValueError(f"chunk must be positive, got {chunk}")
    query_indices = query_indices.to(mask_logits.device)
    for start in range(0, int(query_indices.numel()), chunk):
        # float32 before resizing: half-precision model outputs would otherwise be interpolated in half precision
        yield start, resize(mask_logits[query_indices[start : start + chunk]].float()).float()


def check_query_logits(
    class_logits: torch.Tensor, mask_logits: torch.Tensor, is_thing: torch.Tensor | None = None
) -> None:
    """Raise ValueError unless class_logits is (Q, K + 1), mask_logits (Q, h, w) and is_thing (K,) bool."""
    if class_logits.ndim != 2 or mask_logits.ndim != 3 or class_logits.shape[0] != mask_logits.shape[0]:
        raise ValueError(
            f"expected class_logits (Q, K + 1) and mask_logits (Q, h, w), got {tuple(class_logits.shape)} and "
            f"{tuple(mask_logits.shape)}"
        )
    if is_thing is not None and (is_thing.dtype != torch.bool or is_thing.shape != (class_logits.shape[1] - 1,)):
        raise ValueError(
            f"is_thing must be a ({class_logits.shape[1] - 1},) bool tensor (one flag per class, void excluded), "
            f"got {tuple(is_thing.shape)} {is_thing.dtype}"
        )
