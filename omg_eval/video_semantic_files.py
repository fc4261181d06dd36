"""File entry point for VSPW video semantic evaluation: mIoU and VC_n from folders of PNG masks.

Layout, as in the VSPW release and its evaluation scripts:
  ground truth ``<gt_dir>/<video>/mask/<frame>.png`` (``VSPW_480p/data``; a video folder without ``mask/`` is read
  directly), raw labels 0 = "others", 1..124 = classes, 255 = void;
  predictions ``<pred_dir>/<video>/<frame>.png`` holding class indices 0..123 (label - 1), one per ground-truth frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omg_data.image_io import open_image
from omg_eval.sharding import items_for_this_rank
from omg_eval.video_semantic import VideoSemanticMetric

VSPW_NUM_CLASSES = 124
_VOID = 255


def raw_vspw_to_labels(raw: torch.Tensor) -> torch.Tensor:
    """Raw VSPW mask values to class labels: v -> v - 1, so "others" (0) becomes -1 and void (255) stays 255.

    Both -1 and 255 are VOID for mIoU; keeping them different keeps VC equal to the official script, which compares
    the raw masks.
    """
    raw = raw.to(torch.int64)
    return torch.where(raw == _VOID, _VOID, raw - 1)


def _read_labels(path: Path) -> torch.Tensor:
    with open_image(path) as image:
        array = np.array(image)
    if array.ndim != 2:
        raise ValueError(f"{path} has shape {array.shape}; expected a single-channel (L or P mode) label PNG")
    return torch.from_numpy(array.astype(np.int64))


def _videos(gt_dir: Path, videos: Sequence[str] | None, split_file: str | Path | None) -> list[str]:
    if videos is not None and split_file is not None:
        raise ValueError("pass either videos= or split_file=, not both")
    if split_file is not None:
        names = [line.strip() for line in Path(split_file).read_text().splitlines()]
        return [name for name in names if name and not name.startswith(".")]
    if videos is not None:
        return list(videos)
    return sorted(p.name for p in gt_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def evaluate_vspw(
    pred_dir: str | Path,
    gt_dir: str | Path,
    *,
    videos: Sequence[str] | None = None,
    split_file: str | Path | None = None,
    num_classes: int = VSPW_NUM_CLASSES,
    clip_lengths: Sequence[int] = (8, 16),
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """VSPW mIoU and VC_n of predicted label PNGs.

    Arguments:
      pred_dir: folder of ``<video>/<frame>.png`` class-index predictions.
      gt_dir: VSPW ``data`` folder (``<video>/mask/<frame>.png``).
      videos: video names to evaluate; default every folder of gt_dir.
      split_file: a VSPW split file (val.txt / test.txt), one video per line, instead of ``videos``.
      num_classes: K (124 for VSPW).
      clip_lengths: the n of VC_n.
      device: where the counting runs.

    Returns:
      the keys of :meth:`VideoSemanticMetric.compute` plus "num_videos".
    """
    gt_root, pred_root = Path(gt_dir), Path(pred_dir)
    for name, folder in (("ground-truth", gt_root), ("prediction", pred_root)):
        if not folder.is_dir():
            raise FileNotFoundError(f"{name} folder {folder} does not exist")
    names = _videos(gt_root, videos, split_file)
    if not names:
        raise ValueError(f"no videos to evaluate under {gt_root}")
    metric = VideoSemanticMetric(num_classes, _VOID, clip_lengths)
    for video in items_for_this_rank(names):
        mask_dir = gt_root / video / "mask" if (gt_root / video / "mask").is_dir() else gt_root / video
        frames = sorted(p.name for p in mask_dir.glob("*.png") if not p.name.startswith("."))
        if not frames:
            hint = (f"; {gt_root} looks like the VSPW root: pass its data/ folder ({gt_root / 'data'})"
                    if video == "data" and (gt_root / "data").is_dir() else
                    "; the ground truth is VSPW's data/ folder, holding <video>/mask/<frame>.png")
            raise FileNotFoundError(f"no ground-truth PNG frames under {mask_dir}{hint}")
        missing = [f for f in frames if not (pred_root / video / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"video {video!r}: {len(missing)} frames have no prediction in {pred_root / video} (first: {missing[0]})"
            )
        gt_frames = [raw_vspw_to_labels(_read_labels(mask_dir / f)) for f in frames]
        pred_frames = [_read_labels(pred_root / video / f) for f in frames]
        for name, pred_frame in zip(frames, pred_frames, strict=True):
            if pred_frame.numel() and (int(pred_frame.min()) < 0 or int(pred_frame.max()) >= num_classes):
                raise ValueError(
                    f"{pred_root / video / name} holds values outside [0, {num_classes}) (min {int(pred_frame.min())}, "
                    f"max {int(pred_frame.max())}); write each pixel's class index (VSPW's 124 classes: 0-123)"
                )
        for name, gt_frame, pred_frame in zip(frames, gt_frames, pred_frames, strict=True):
            if gt_frame.shape != gt_frames[0].shape or pred_frame.shape != gt_frame.shape:
                raise ValueError(
                    f"video {video!r} frame {name}: prediction {tuple(pred_frame.shape)} / ground truth "
                    f"{tuple(gt_frame.shape)} differ from the video's {tuple(gt_frames[0].shape)}; predict every "
                    f"frame at the resolution of its mask"
                )
        gt, pred = torch.stack(gt_frames), torch.stack(pred_frames)  # T x H x W each
        metric.update(pred.to(device), gt.to(device))
    with metric.sync_context():  # compute and the video count on the states reduced over every rank
        results = metric.compute()
        results["num_videos"] = int(metric.num_videos)
    return results
