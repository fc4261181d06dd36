"""File entry point for VIPSeg video panoptic evaluation: VPQ and STQ from folders of raw VIPSeg panoptic masks,
equal to VIPSeg's own pipeline (``create_panoptic_video_labels.py``, then ``ClipPanoFCN/eval_vpq_vspw.py`` and
``eval_stq_vspw.py`` of VIPSeg-Dataset/VIPSeg-Dataset) run on the ground truth and on the prediction.

Layout (both folders): ``<dir>/<video>/<frame>.png``, one single-channel PNG per annotated frame, in VIPSeg's
``panomasks`` encoding: 0 is VOID, a value v < 125 is the category v - 1, and a value v >= 125 is instance v % 100 of
category v // 100 - 1 (category id = raw class - 1, as in ``panoVIPSeg_categories.json``).

What the official converter makes of the values (and so what is scored; see :func:`decode_vipseg_panomask`):

* every value of a stuff category, with or without instance number (2, 200, 201 ... for category 1), gets the
  category's colour, so they are ONE segment, in a frame and across the video;
* every distinct value of a thing category is one object, tracked through the video by its value; a thing written
  below 125 (no instance number) is an object of its own; no segment is crowd (``iscrowd`` is always 0).

STQ: eval_stq_vspw.py numbers a video's ground-truth segments from 0 in the order its JSON lists them (frame by frame,
by raw value within a frame) and deeplab2's STQ reads instance 0 of a thing category as a crowd region. So when the
first listed segment of a video (the smallest value of its first labelled frame) is a thing, that object is left out
of AQ, pixels predicted on it included. This is reproduced by default and reported as an anomaly;
``evaluate_vipseg(stq_official_numbering=False)`` scores it as an ordinary track instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omg_data.image_io import read_png_array
from omg_eval.anomalies import note_anomaly, reports_anomalies
from omg_eval.sharding import gather_objects, is_main_process, items_for_this_rank
from omg_eval.stq import SegmentationTrackingQuality
from omg_eval.video_panoptic_quality import (
    VIPSEG_WINDOW_SIZES,
    VPSNET_WINDOW_SIZES,
    VideoPanopticQuality,
    average_over_windows,
    describe_windows,
    window_frame_counts,
)

VIPSEG_NUM_CLASSES = 124
# Category ids (0-based, as in VIPSeg's panoVIPSeg_categories.json) whose "isthing" flag is 1.
VIPSEG_THING_CLASSES: tuple[int, ...] = (
    2, 4, 8, 10, 41, 43, 44, 46, 47, 48, 49, 50, 51, 52, 54, 55, 56, 60, 61, 62, 63, 64, 65, 72, 74, 76, 77, 78, 79,
    82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 95, 96, 97, 99, 100, 101, 102, 106, 107, 108, 109, 114, 115, 116, 117,
    118, 122, 123,
)
# Internal encoding: category * 1000 + instance. A stuff category is one segment, instance 0 (the converter's one
# colour per stuff category). Thing instances move up by one (raw instance 0 is a real object, but instance 0 of a
# thing means crowd in the metrics), and a thing value below 125 (no instance number) gets instance 101, an object
# apart from the category's numbered instances, as the converter gives every distinct thing value its own colour.
VIPSEG_LABEL_DIVISOR = 1000
_VOID_LABEL = 255
_STUFF_LIMIT = 125
_THING_LOW_VALUE_INSTANCE = 101


def _thing_table(num_classes: int, thing_classes: Sequence[int]) -> torch.Tensor:
    is_thing = torch.zeros(max(num_classes, 1), dtype=torch.bool)
    is_thing[list(thing_classes)] = True
    return is_thing


def _decode(raw: np.ndarray, num_classes: int, is_thing: torch.Tensor) -> tuple[torch.Tensor, int | None, int | None]:
    """(ids, a stuff value written with an instance number or None, a thing value below 125 or None)."""
    values = torch.from_numpy(raw.astype(np.int64))
    low = values < _STUFF_LIMIT
    category = torch.where(low, values - 1, values // 100 - 1)
    real = values > 0
    bad = category[real & ((category < 0) | (category >= num_classes))]
    if bad.numel():
        raise ValueError(
            f"mask values decode to categories {torch.unique(bad).tolist()[:10]} outside [0, {num_classes}); "
            f"is this a raw VIPSeg panomask (0 = void, stuff = category + 1, things = (category + 1) * 100 + instance)?"
        )
    thing = is_thing[category.clamp(0, num_classes - 1)] & real
    instance = torch.where(thing, torch.where(low, _THING_LOW_VALUE_INSTANCE, values % 100 + 1), 0)
    ids = torch.where(real, category * VIPSEG_LABEL_DIVISOR + instance, _VOID_LABEL * VIPSEG_LABEL_DIVISOR)
    stuff_numbered = real & ~thing & ~low
    thing_unnumbered = thing & low
    first_stuff = int(values[stuff_numbered].min()) if bool(stuff_numbered.any()) else None
    first_thing = int(values[thing_unnumbered].min()) if bool(thing_unnumbered.any()) else None
    return ids, first_stuff, first_thing


def decode_vipseg_panomask(raw: np.ndarray, num_classes: int, thing_classes: Sequence[int]) -> torch.Tensor:
    """Turn one raw VIPSeg mask (H x W) into panoptic ids ``category * 1000 + instance`` (VOID = 255 * 1000), the
    segments VIPSeg's ``create_panoptic_video_labels.py`` makes of it: one segment per stuff category whatever
    instance numbers it is written with, one object per distinct thing value (instance = raw instance + 1, or 101
    for a thing value below 125)."""
    return _decode(raw, num_classes, _thing_table(num_classes, thing_classes))[0]


def _read_mask(path: Path, side: str) -> np.ndarray:
    """The PNG's values as VIPSeg's converter reads them (``np.array(Image.open(path))``); a corrupt file raises one
    DataError naming it."""
    if side == "predicted":
        fix = "write the prediction again as a single-channel 8- or 16-bit PNG of raw VIPSeg values"
    else:
        fix = "the ground-truth file is corrupt; extract the VIPSeg panomasks again"
    array = read_png_array(path, fix)
    if array.ndim != 2:
        raise ValueError(f"{path} has shape {array.shape}; expected a single-channel VIPSeg panomask, not RGB")
    return array


def list_video_frames(pred_dir: Path, gt_dir: Path, videos: Sequence[str] | None) -> list[tuple[str, list[str]]]:
    """Pair ground-truth and predicted frame files; every ground-truth frame needs a prediction of the same name."""
    if not gt_dir.is_dir():
        raise FileNotFoundError(f"ground-truth folder {gt_dir} does not exist")
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"prediction folder {pred_dir} does not exist")
    if videos is None:
        videos = sorted(p.name for p in gt_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        extra = sorted(p.name for p in pred_dir.iterdir() if p.is_dir() and not (gt_dir / p.name).is_dir())
        if extra:
            root_hint = (f"; {gt_dir} looks like the VIPSeg root: pass its panomasks/ folder ({gt_dir / 'panomasks'})"
                         if (gt_dir / "panomasks").is_dir() else "")
            raise ValueError(
                f"prediction videos without ground truth in {gt_dir}: {extra[:5]}{root_hint}; evaluate predictions "
                "of the ground truth's videos only (remove the others, or choose videos with "
                "evaluate_vipseg(videos=...) from Python)"
            )
    if not videos:
        raise ValueError(f"no videos found under {gt_dir}")
    pairs = []
    for video in videos:
        frames = sorted(p.name for p in (gt_dir / video).glob("*.png"))
        if not frames:
            raise FileNotFoundError(f"no PNG frames under {gt_dir / video}")
        missing = [name for name in frames if not (pred_dir / video / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"video {video!r}: {len(missing)} ground-truth frames have no prediction in {pred_dir / video} "
                f"(first: {missing[0]}); predict every annotated frame"
            )
        pairs.append((video, frames))
    return pairs


CATEGORIES_FILE = "panoVIPSeg_categories.json"


def find_label_space(gt_dir: str | Path) -> tuple[int, tuple[int, ...], str]:
    """The label space of a ground-truth panomasks folder: (num_classes, thing classes, where it came from).

    Read from the ``panoVIPSeg_categories.json`` (a list of ``{"id", "isthing", ...}``, id = raw class - 1) in
    ``gt_dir`` or its parent, where the VIPSeg release and ``omg data synth --format vipseg`` put it; VIPSeg's own 124
    categories when there is none. Thing classes decide which segments STQ tracks and VPQ counts as things, so a
    data set with other categories must not be scored with VIPSeg's list.
    """
    gt_root = Path(gt_dir)
    for path in (gt_root / CATEGORIES_FILE, gt_root.parent / CATEGORIES_FILE):
        if path.is_file():
            return (*_read_label_space(path), str(path))
    return VIPSEG_NUM_CLASSES, VIPSEG_THING_CLASSES, f"VIPSeg's {VIPSEG_NUM_CLASSES} categories (no {CATEGORIES_FILE})"


def _read_label_space(path: Path) -> tuple[int, tuple[int, ...]]:
    from omg_data.vipseg import read_vipseg_categories  # the data set's own reader: schema checks, unique ids

    categories = read_vipseg_categories(path)
    ids = [category.id for category in categories]
    if not ids or min(ids) < 0:
        raise ValueError(f"{path}: category ids must be non-negative (id = raw mask class - 1), and there must be some")
    return max(ids) + 1, tuple(sorted(category.id for category in categories if category.is_thing))


def _first_segment_thing(raw_frames: Sequence[np.ndarray], is_thing: torch.Tensor) -> int | None:
    """The raw value of the first segment eval_stq_vspw.py numbers (the smallest value of the first frame with any
    label) when it is a thing, else None."""
    for raw in raw_frames:
        labelled = raw[raw > 0]
        if labelled.size:
            value = int(labelled.min())
            category = value - 1 if value < _STUFF_LIMIT else value // 100 - 1
            return value if bool(is_thing[category]) else None
    return None


@reports_anomalies
def evaluate_vipseg(
    pred_dir: str | Path,
    gt_dir: str | Path,
    *,
    videos: Sequence[str] | None = None,
    window_sizes: Sequence[int] = VIPSEG_WINDOW_SIZES,
    secondary_window_sizes: Sequence[int] | None = VPSNET_WINDOW_SIZES,
    annotation_stride: int = 5,
    num_classes: int | None = None,
    thing_classes: Sequence[int] | None = None,
    stq_official_numbering: bool = True,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """VPQ (VIPSeg's eval_vpq_vspw.py) and STQ (its eval_stq_vspw.py, deeplab2's STQ) of predicted VIPSeg masks.

    Both folders are read as VIPSeg's converter reads raw panomasks (see the module docstring).

    Arguments:
      pred_dir: folder of predicted ``<video>/<frame>.png`` raw masks.
      gt_dir: folder of ground-truth raw masks (VIPSeg ``panomasks``), same names.
      videos: video folder names to evaluate; default every folder of gt_dir.
      window_sizes: the VPQ windows of the headline "vpq", as sizes k in video frames; default (0, 5, 15, 25, 35),
        i.e. n = 1, 2, 4, 6, 8 annotated frames, the windows eval_vpq_vspw.py averages.
      secondary_window_sizes: a second set of windows, reported in "vpq_by_windows" etc. beside the headline;
        default (0, 5, 10, 15), n = 1..4, the windows of VPSNet's (Cityscapes-VPS) eval_vpq.py; None for none.
      annotation_stride: video frames between annotated frames (5 in VIPSeg).
      num_classes, thing_classes: the label space; by default :func:`find_label_space` of ``gt_dir`` (the data
        set's ``panoVIPSeg_categories.json``, else VIPSeg's 124 categories). Give both or neither.
      stq_official_numbering: True (default) scores STQ exactly as eval_stq_vspw.py: it numbers each video's
        ground-truth segments from 0, so when the first one it lists is a thing, deeplab2's STQ takes that object
        for a crowd region and leaves it (and the predictions on it) out of AQ. VIPSeg has no crowd annotations, so
        this is a bug of the script; False numbers from 1 and scores that object as an ordinary track (the
        corrected AQ and STQ; SQ is the same either way).
      device: where the counting runs.

    Returns:
      the per-window keys of :meth:`VideoPanopticQuality.compute` ("vpq@k", "vpq_thing@k", ... for every window of
      both sets); "vpq", "vpq_thing", "vpq_stuff": the means over ``window_sizes`` (what eval_vpq_vspw.py writes to
      vpq-final.txt, as fractions); "vpq_windows": which windows those are (e.g. "n=1,2,4,6,8"); "vpq_by_windows",
      "vpq_thing_by_windows", "vpq_stuff_by_windows": {window set name: mean} for both sets; "stq", "aq", "sq" and
      their per-video figures; "stq_first_segment_crowd_videos" (videos whose first listed segment is a thing:
      the objects the official numbering turns into crowd); "num_videos" and "label_space" (where the categories
      came from).
    """
    if (num_classes is None) != (thing_classes is None):
        raise ValueError("give both num_classes and thing_classes (or neither, to read the data set's categories)")
    if num_classes is None or thing_classes is None:
        num_classes, thing_classes, label_space = find_label_space(gt_dir)
    else:
        label_space = f"{num_classes} categories given by the caller"
    window_sets = [tuple(int(k) for k in window_sizes)]
    if secondary_window_sizes is not None:
        window_sets.append(tuple(int(k) for k in secondary_window_sizes))
    for sizes in window_sets:
        window_frame_counts(sizes, annotation_stride)  # checks each set before any file is read
    all_sizes = tuple(sorted({k for sizes in window_sets for k in sizes}))
    vpq = VideoPanopticQuality(num_classes, thing_classes, VIPSEG_LABEL_DIVISOR, _VOID_LABEL, all_sizes,
                               annotation_stride)
    stq = SegmentationTrackingQuality(num_classes, thing_classes, VIPSEG_LABEL_DIVISOR, _VOID_LABEL)
    is_thing = _thing_table(num_classes, thing_classes)
    crowd_videos = 0
    for video, frames in items_for_this_rank(list_video_frames(Path(pred_dir), Path(gt_dir), videos)):
        extra = sorted({p.name for p in (Path(pred_dir) / video).glob("*.png")} - set(frames))
        if extra:
            note_anomaly(
                "vipseg_extra_prediction_frames",
                what="predicted frames without a ground-truth frame",
                handling="ignored, as VIPSeg's scripts read only the frames the ground truth lists",
                example=str(Path(pred_dir) / video / extra[0]),
                count=len(extra),
            )
        gt_raws = [_read_mask(Path(gt_dir) / video / name, "ground-truth") for name in frames]
        gt_ids = _decode_video(gt_raws, frames, Path(gt_dir) / video, num_classes, is_thing, "ground-truth")
        pred_raws = [_read_mask(Path(pred_dir) / video / name, "predicted") for name in frames]
        pred_ids = _decode_video(pred_raws, frames, Path(pred_dir) / video, num_classes, is_thing, "predicted")
        if gt_ids.shape != pred_ids.shape:
            raise ValueError(f"video {video!r}: prediction size {tuple(pred_ids.shape[1:])} differs from the "
                             f"ground truth {tuple(gt_ids.shape[1:])}; predict at annotation resolution")
        gt_ids, pred_ids = gt_ids.to(device), pred_ids.to(device)
        first_thing = _first_segment_thing(gt_raws, is_thing)
        vpq.update(pred_ids, gt_ids)
        stq_gt_ids = gt_ids
        if first_thing is not None:
            crowd_videos += 1
            if stq_official_numbering:
                stq_gt_ids = _as_crowd(gt_ids, first_thing, num_classes, is_thing)
                note_anomaly(
                    "vipseg_first_segment_thing",
                    what="videos whose first ground-truth segment is a thing",
                    handling="that object is a crowd region for STQ (left out of AQ, with the predictions on it), "
                             "as eval_stq_vspw.py numbers segments from 0 and deeplab2 reads instance 0 of a thing "
                             "as crowd; evaluate_vipseg(stq_official_numbering=False) scores it as a track",
                    example=f"video {video!r}, raw value {first_thing}",
                )
        stq.update(pred_ids, stq_gt_ids)
    results = vpq.compute()
    for key in ("vpq", "vpq_thing", "vpq_stuff", "vpq_windows"):
        del results[key]  # the mean over every window of both sets means nothing; the sets are averaged below
    by_windows: dict[str, dict[str, float]] = {"vpq": {}, "vpq_thing": {}, "vpq_stuff": {}}
    for sizes in window_sets:
        for key, value in average_over_windows(results, sizes).items():
            by_windows[key][describe_windows(sizes, annotation_stride)] = value
    headline = average_over_windows(results, window_sets[0])
    results = {
        **headline,
        "vpq_windows": describe_windows(window_sets[0], annotation_stride),
        **{f"{key}_by_windows": values for key, values in by_windows.items()},
        **results,
    }
    _note_empty_windows(results, window_sets[0], annotation_stride)
    results.update(stq.compute())
    results["stq_first_segment_crowd_videos"] = _summed(crowd_videos)
    results["num_videos"] = _summed(int(vpq.num_videos))
    results["label_space"] = label_space
    return results


def _decode_video(
    raws: Sequence[np.ndarray], frames: Sequence[str], folder: Path, num_classes: int, is_thing: torch.Tensor,
    side: str,
) -> torch.Tensor:
    """T x H x W ids of one video's raw masks; odd values are reported as anomalies."""
    maps = []
    for name, raw in zip(frames, raws, strict=True):
        try:
            ids, stuff_value, thing_value = _decode(raw, num_classes, is_thing)
        except ValueError as error:  # name the file and whose it is: the decode alone knows neither
            raise ValueError(f"{side} frame {folder / name}: {error}") from None
        _note_odd_values(side, folder / name, stuff_value, thing_value)
        maps.append(ids)
    shapes = {tuple(m.shape) for m in maps}
    if len(shapes) != 1:
        raise ValueError(f"video {folder.name!r} in {folder.parent}: frames differ in size {sorted(shapes)}")
    return torch.stack(maps)


def _as_crowd(gt_ids: torch.Tensor, raw_value: int, num_classes: int, is_thing: torch.Tensor) -> torch.Tensor:
    """gt_ids with the object of one raw thing value turned into its category's crowd region (instance 0)."""
    segment = _decode(np.array([[raw_value]]), num_classes, is_thing)[0].item()
    category_crowd = segment - segment % VIPSEG_LABEL_DIVISOR
    return torch.where(gt_ids == segment, category_crowd, gt_ids)


def _note_odd_values(side: str, path: Path, stuff_value: int | None, thing_value: int | None) -> None:
    if stuff_value is not None:
        note_anomaly(
            f"vipseg_stuff_with_instance_{side}",
            what=f"{side} frames with stuff written with an instance number (value >= 125)",
            handling="one segment with the category's other stuff pixels, as VIPSeg's converter gives every value "
                     "of a stuff category the category's colour",
            example=f"{path}, value {stuff_value}",
        )
    if thing_value is not None:
        note_anomaly(
            f"vipseg_thing_without_instance_{side}",
            what=f"{side} frames with a thing written without instance number (value < 125)",
            handling="an object of its own, apart from the category's numbered instances, as VIPSeg's converter "
                     "gives every distinct thing value its own colour",
            example=f"{path}, value {thing_value}",
        )


def _note_empty_windows(results: dict[str, Any], window_sizes: Sequence[int], annotation_stride: int) -> None:
    if not is_main_process():  # the figures are global after sync: one report, not one per rank
        return
    empty = [k for k in window_sizes if np.isnan(results[f"vpq@{k}"])]
    if empty:
        frames = window_frame_counts(empty, annotation_stride)
        note_anomaly(
            "vipseg_empty_vpq_window",
            what="VPQ windows no video fills (every video shorter, or all VOID)",
            handling="their VPQ is NaN and so is the headline (eval_vpq_vspw.py stops there with ZeroDivisionError)",
            example=f"n={frames[0]} annotated frames (k={empty[0]})",
            count=len(empty),
        )


def _summed(count: int) -> int:
    """A per-rank count summed over every rank (the count itself outside torchrun)."""
    return int(sum(gather_objects(count)))
