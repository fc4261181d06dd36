"""Intersection counting of ground-truth and predicted segment ids (the inner loop of PQ, VPQ and STQ).

Two entry points with one contract: :func:`intersect_segment_ids` for one pair of maps (any shape, e.g. a whole clip)
and :func:`intersect_segment_ids_batch` for many images at once (one call, images counted in parallel by the fused
kernel). Both accept integer id maps or COCO panoptic RGB maps (uint8, ``... x 3``, id = R + 256 G + 256^2 B), so
PNG pixels can be counted without building an id map first.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from omg_eval.kernels._extension import fused_kernels

_MAX_ID = 2**31 - 1


def rgb_to_id(rgb: torch.Tensor) -> torch.Tensor:
    """COCO panoptic id of every pixel of an RGB map (id = R + 256 G + 256^2 B).

    Arguments:
      rgb: uint8 tensor (..., 3).

    Returns:
      int64 tensor (...).
    """
    if rgb.dtype != torch.uint8 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb_to_id expects a uint8 (..., 3) tensor, got {rgb.dtype} {tuple(rgb.shape)}")
    channels = rgb.to(torch.int64)
    return channels[..., 0] + 256 * channels[..., 1] + 65536 * channels[..., 2]


def _is_rgb(ids: torch.Tensor) -> bool:
    return ids.dtype == torch.uint8 and ids.dim() == 3 and ids.shape[2] == 3


def _is_planar_view(ids: torch.Tensor) -> bool:
    """Whether an H x W x 3 tensor is the permuted view of a contiguous 3 x H x W image (as torchvision decodes)."""
    height, width, _ = ids.shape
    return ids.stride() == (width, 1, height * width)


def _as_id_map(ids: torch.Tensor, name: str) -> torch.Tensor:
    if _is_rgb(ids):
        return rgb_to_id(ids)
    if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.is_complex():
        raise TypeError(f"{name} must hold integer segment ids (or a uint8 H x W x 3 RGB map), got {ids.dtype}")
    return ids.to(torch.int64)


def _pixel_shape(ids: torch.Tensor) -> tuple[int, ...]:
    return tuple(ids.shape[:-1]) if _is_rgb(ids) else tuple(ids.shape)


def _check_pair(gt_ids: torch.Tensor, pred_ids: torch.Tensor, where: str) -> None:
    if _pixel_shape(gt_ids) != _pixel_shape(pred_ids):
        raise ValueError(
            f"{where}gt_ids {tuple(gt_ids.shape)} and pred_ids {tuple(pred_ids.shape)} must cover the same pixels; "
            "resize the prediction to the ground-truth size first"
        )


def _count_pairs_torch(gt_ids: torch.Tensor, pred_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
    gt_flat = _as_id_map(gt_ids, "gt_ids").reshape(-1)
    pred_flat = _as_id_map(pred_ids, "pred_ids").reshape(-1)
    if gt_flat.numel() and (
        int(gt_flat.min()) < 0
        or int(pred_flat.min()) < 0
        or int(gt_flat.max()) > _MAX_ID
        or int(pred_flat.max()) > _MAX_ID
    ):
        raise ValueError("segment ids must lie in [0, 2^31); remap the ids of the id maps")
    offset = _MAX_ID + 1
    pair_keys, counts = torch.unique(gt_flat * offset + pred_flat, return_counts=True)
    return pair_keys // offset, pair_keys % offset, counts


def _fused_ready(*maps: torch.Tensor) -> bool:
    return all(m.device.type == "cpu" for m in maps)


def intersect_segment_ids(
    gt_ids: torch.Tensor, pred_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Count the pixels of every (ground-truth id, predicted id) pair present in two id maps.

    Arguments:
      gt_ids: integer tensor of any shape, segment ids in [0, 2^31) (0 may mean VOID; the caller decides), or a uint8
        (H, W, 3) COCO RGB map.
      pred_ids: same, covering the same pixels.

    Returns:
      (gt_pair_ids (M,), pred_pair_ids (M,), pixel_counts (M,)) int64, one entry per pair that occurs, sorted by
      (gt id, pred id).
    """
    _check_pair(gt_ids, pred_ids, "")
    kernels = fused_kernels() if _fused_ready(gt_ids, pred_ids) else None
    if kernels is None:
        return _count_pairs_torch(gt_ids, pred_ids)
    _, gt_pair_ids, pred_pair_ids, counts = _fused_batch(kernels, [gt_ids], [pred_ids])
    return gt_pair_ids, pred_pair_ids, counts


def _fused_batch(
    kernels, gt_maps: Sequence[torch.Tensor], pred_maps: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, ...]:
    def prepare(ids: torch.Tensor, name: str) -> torch.Tensor:
        if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.is_complex():
            raise TypeError(f"{name} must hold integer segment ids (or a uint8 H x W x 3 RGB map), got {ids.dtype}")
        if not _is_rgb(ids) and ids.dtype == torch.uint8:
            ids = ids.to(torch.int32)  # a plain uint8 id map, not RGB: widen so the kernel does not read it as colour
        if _is_rgb(ids) and _is_planar_view(ids):
            return ids  # the H x W x 3 view of a 3 x H x W decoded PNG: the kernel reads the planes in place
        return ids.contiguous()

    try:
        image_index, gt_pair_ids, pred_pair_ids, counts = kernels.segment_pairs_batch(
            [prepare(m, "gt_ids") for m in gt_maps], [prepare(m, "pred_ids") for m in pred_maps]
        )
    except RuntimeError as error:
        if "outside [0, 2^31)" in str(error):
            raise ValueError("segment ids must lie in [0, 2^31); remap the ids of the id maps") from error
        raise
    return image_index, gt_pair_ids, pred_pair_ids, counts


def intersect_segment_ids_batch(
    gt_maps: Sequence[torch.Tensor], pred_maps: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`intersect_segment_ids` for many images in one call (images may differ in size).

    Arguments:
      gt_maps: B id maps (or uint8 H x W x 3 RGB maps).
      pred_maps: B id maps, image b covering the same pixels as ``gt_maps[b]``.

    Returns:
      (image_index (M,), gt_pair_ids (M,), pred_pair_ids (M,), pixel_counts (M,)) int64, sorted by
      (image, gt id, pred id).
    """
    if len(gt_maps) != len(pred_maps):
        raise ValueError(
            f"got {len(gt_maps)} ground-truth maps but {len(pred_maps)} predicted maps; pass one of each per image"
        )
    for index, (gt_ids, pred_ids) in enumerate(zip(gt_maps, pred_maps)):
        _check_pair(gt_ids, pred_ids, f"image {index}: ")
    kernels = fused_kernels() if _fused_ready(*gt_maps, *pred_maps) else None
    if kernels is not None and len(gt_maps):
        return _fused_batch(kernels, gt_maps, pred_maps)
    parts = [_count_pairs_torch(gt_ids, pred_ids) for gt_ids, pred_ids in zip(gt_maps, pred_maps)]
    if not parts:
        empty = torch.zeros(0, dtype=torch.int64)
        return empty, empty.clone(), empty.clone(), empty.clone()
    image_index = torch.cat([torch.full_like(part[0], index) for index, part in enumerate(parts)])
    return (image_index, *(torch.cat([part[k] for part in parts]) for k in range(3)))  # type: ignore[return-value]
