"""Batched COCO run-length encoding of binary masks and IoU between RLE sets (fused kernel or PyTorch).

An RLE here is a 1-D int64 tensor of run lengths over the column-major (Fortran order) pixels, alternating runs of 0
and 1 and starting with a (possibly empty) run of 0, i.e. the ``counts`` of an uncompressed COCO RLE.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from omg_eval.kernels._extension import fused_kernels


def _encode_torch(masks: torch.Tensor) -> list[torch.Tensor]:
    runs = []
    for mask in masks:
        pixels = mask.t().reshape(-1).to(torch.int64)  # column-major, as COCO
        if pixels.numel() == 0:
            runs.append(torch.zeros(1, dtype=torch.int64))
            continue
        values, lengths = torch.unique_consecutive(pixels, return_counts=True)
        if int(values[0]) == 1:
            lengths = torch.cat([torch.zeros(1, dtype=torch.int64), lengths])
        runs.append(lengths)
    return runs


def encode_masks(masks: torch.Tensor) -> list[torch.Tensor]:
    """RLE of each mask.

    Arguments:
      masks: (N, H, W) bool or uint8 (non-zero = set).

    Returns:
      N int64 run-length tensors.
    """
    if masks.dim() != 3:
        raise ValueError(f"masks must be (N, H, W), got {tuple(masks.shape)}")
    masks = masks.to(torch.bool) if masks.dtype != torch.bool else masks
    kernels = fused_kernels() if masks.device.type == "cpu" else None
    if kernels is None:
        return _encode_torch(masks)
    flat, lengths = kernels.rle_encode(masks.contiguous())
    return list(torch.split(flat, lengths.tolist()))


def _decode_torch(runs: torch.Tensor, num_pixels: int) -> torch.Tensor:
    values = torch.arange(len(runs)) % 2
    pixels = torch.repeat_interleave(values.to(torch.bool), runs)
    if pixels.numel() != num_pixels:
        raise ValueError(f"an RLE covers {pixels.numel()} pixels, expected {num_pixels}")
    return pixels


def rle_ious(det_runs: Sequence[torch.Tensor], gt_runs: Sequence[torch.Tensor], gt_crowd: torch.Tensor) -> torch.Tensor:
    """(D, G) float64 IoUs as pycocotools ``maskUtils.iou``: for a crowd ground truth, intersection / detection area.

    Arguments:
      det_runs, gt_runs: RLEs of masks of one image size.
      gt_crowd: (G,) bool.
    """
    if len(gt_crowd) != len(gt_runs):
        raise ValueError(f"gt_crowd has {len(gt_crowd)} flags for {len(gt_runs)} ground truths")
    if not det_runs or not gt_runs:
        return torch.zeros(len(det_runs), len(gt_runs), dtype=torch.float64)
    sizes = {int(r.sum()) for r in (*det_runs, *gt_runs)}
    if len(sizes) != 1:
        raise ValueError(f"RLEs cover different pixel counts {sorted(sizes)}; all masks must have the image's size")
    kernels = fused_kernels()
    if kernels is not None:
        return kernels.rle_iou(
            torch.cat(list(det_runs)).to(torch.int64),
            torch.tensor([len(r) for r in det_runs], dtype=torch.int64),
            torch.cat(list(gt_runs)).to(torch.int64),
            torch.tensor([len(r) for r in gt_runs], dtype=torch.int64),
            gt_crowd.to(torch.uint8).contiguous(),
        )
    num_pixels = sizes.pop()
    det = torch.stack([_decode_torch(r, num_pixels) for r in det_runs]).to(torch.float64)  # D x P
    gt = torch.stack([_decode_torch(r, num_pixels) for r in gt_runs]).to(torch.float64)  # G x P
    intersection = det @ gt.t()  # exact: integer counts far below 2^53
    det_area, gt_area = det.sum(1, keepdim=True), gt.sum(1)[None, :]
    union = torch.where(gt_crowd.to(torch.bool)[None, :], det_area, det_area + gt_area - intersection)
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.zeros_like(union))


def runs_from_strings(
    counts: Sequence[str | bytes], num_pixels: int, name: Callable[[int], str]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run lengths of COCO compressed RLE strings, decoded and checked by the fused kernel (the one decoder of the
    format, shared with the video extension).

    Arguments:
      counts: the compressed ``counts`` strings.
      num_pixels: height x width; every string's runs must cover exactly that many pixels.
      name: names the record of string k in the error (``"image 3: detection 7"``).

    Returns:
      (runs concatenated (R,), runs per string (N,), mask areas (N,)) int64.

    Raises:
      ValueError: for the first malformed string (bad character, truncated, a run overflowing 64 bits, a negative
        run, runs not covering the image), naming its record and the problem.
    """
    kernels = fused_kernels()
    if kernels is None:
        raise RuntimeError("runs_from_strings needs the fused kernels; check fused_kernels() before calling it")
    runs, lengths, areas, bad, problem = kernels.rle_from_strings(
        counts if isinstance(counts, list) else list(counts), int(num_pixels)
    )
    if bad >= 0:
        raise ValueError(f"{name(bad)}: malformed compressed RLE 'counts': {problem}")
    return runs, lengths, areas
