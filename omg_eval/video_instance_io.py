"""File entry point of YouTube-VIS evaluation: results JSON + annotation JSON -> AP/AR, as the official ``ytvoseval``.

Formats (YouTube-VIS 2019/2021):
  annotation file: ``videos`` (``id``, ``height``, ``width``, ``length`` or ``file_names``), ``categories`` (``id``),
    ``annotations`` (``video_id``, ``category_id``, ``segmentations``: one entry per frame, an RLE, a polygon list or
    ``null``; ``areas``: one per frame, number or ``null``; ``iscrowd`` optional).
  results file: a list of ``{"video_id", "category_id", "score", "segmentations"}``, one per predicted track, with one
    RLE (or ``null``) per frame.

Inputs handled as ``ytvoseval`` handles them: any falsy segmentation (``null``, ``[]``, ``{}``) or area is an absent
frame (it tests ``if seg``); results of categories the annotation file lacks are ignored (it evaluates only
``sorted(gt.getCatIds())``); a result track whose list is longer or shorter than its video is compared frame by frame
with ``zip`` (extra frames dropped, a short track compared on its own frames only), while the mean area that bins it
by size takes all of its listed frames (``loadRes`` computes it before any comparison). The last two are reported as
anomalies (:mod:`omg_eval.anomalies`).

Video ids: a results file's ``video_id`` is the annotation file's, as ytvoseval joins them. ``omg run --format
youtube-vis-json`` cannot know those ids (it numbers videos by input position + 1), so it writes ``videos.json`` beside
``results.json``: each video's id, name (the frame folder's name) and frame count. When that file is there, results
are joined to the annotation file by video name instead, the name of the folder holding a video's frames in
``file_names`` (``JPEGImages/<name>/00000.jpg`` -> ``<name>``): the run may cover the videos in any order, or only
some of them (those it left out are scored as ytvoseval scores a video without results, all misses, and reported).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from omg_data.json_io import read_json
from omg_data.rle import segmentation_to_rle
from omg_eval.anomalies import note_anomaly, reports_anomalies
from omg_eval.kernels.video_overlap import rle_areas, rle_pair_intersections
from omg_eval.sharding import items_for_this_rank
from omg_eval.video_instance import YouTubeVISMetric

RleTrack = list[dict | None]  # one compressed RLE, or None where absent, per listed frame


def _load_json(source: str | Path | dict | list, expected: str) -> Any:
    if isinstance(source, (dict, list)):
        return source
    return read_json(source, expected=expected)


def _video_frames(video: dict) -> int:
    if "length" in video:
        return int(video["length"])
    if "file_names" in video:
        return len(video["file_names"])
    raise ValueError(f"video {video.get('id')!r} has neither 'length' nor 'file_names'; the frame count is unknown")


def _to_rle(segmentation: Any, height: int, width: int, where: str) -> dict | None:
    """A frame's segmentation as a compressed RLE (converted as pycocotools' annToRLE converts it, by
    :func:`omg_data.rle.segmentation_to_rle`), or None where the track is absent: ``null`` or any other falsy value
    (``[]``, ``{}``), as ytvoseval's ``if seg``."""
    if not segmentation:
        return None
    return segmentation_to_rle(segmentation, height, width, where)


def _segmentations(track: dict, where: str) -> list:
    segmentations = track.get("segmentations")
    if not isinstance(segmentations, list):
        raise ValueError(f"{where}: 'segmentations' must be a list with one entry per frame")
    return segmentations


def _check_track(track: dict, num_frames: int, where: str) -> list:
    segmentations = _segmentations(track, where)
    if len(segmentations) != num_frames:
        raise ValueError(
            f"{where}: {len(segmentations)} segmentations for a video of {num_frames} frames; give one per frame "
            "(null where the object is absent)"
        )
    return segmentations


def _frame_areas(rles: list[RleTrack], num_frames: int, height: int, width: int, names: list[str]) -> torch.Tensor:
    """(N, F) int64 per-frame areas straight from the RLEs (0 where a track is absent or not listed), F the longest
    of ``num_frames`` and the tracks; names[n] names track n in the error about a malformed RLE."""
    columns = max([num_frames, *(len(track) for track in rles)])
    areas = torch.zeros(len(rles) * columns, dtype=torch.int64)
    present = [n * columns + t for n, track in enumerate(rles) for t, rle in enumerate(track) if rle is not None]
    if present:
        flat = [rle for track in rles for rle in track if rle is not None]
        areas[present] = rle_areas(
            flat, height, width, lambda k: f"{names[present[k] // columns]} frame {present[k] % columns}"
        )
    return areas.reshape(len(rles), columns)


def _video_counts(
    pred_rles: list[RleTrack],
    pred_labels: list[int],
    gt_rles: list[RleTrack],
    gt_labels: list[int],
    num_frames: int,
    height: int,
    width: int,
    pred_names: list[str] | None = None,
    gt_names: list[str] | None = None,
) -> dict[str, torch.Tensor]:
    """The counts of one video that :meth:`YouTubeVISMetric.add_video_statistics` takes.

    Ground-truth tracks have ``num_frames`` entries; a predicted track may list more or fewer. Each pair is compared
    over the frames both list (ytvoseval's ``zip``): a longer track's extra frames are dropped, and a shorter track is
    compared with the ground truth's first frames only, so its ground-truth areas are per pair. Only pairs of the same
    category are ever compared, so only those are counted; the intersections of the other pairs are -1 (their IoU is
    NaN and never read). ``pred_names`` / ``gt_names`` name the tracks in errors (default: their positions).

    Returns:
      ``intersections`` (D, G); ``pred_frame_areas`` (D, F) over every listed frame (the size bins use them all);
      ``gt_frame_areas`` (G, T); ``pred_areas`` (D,) over the compared frames; ``gt_areas`` (G,), or (D, G) when a
      predicted track's length differs from the video's.
    """
    pred_names = pred_names or [f"result track {n}" for n in range(len(pred_rles))]
    gt_names = gt_names or [f"ground-truth track {n}" for n in range(len(gt_rles))]
    pred_frame_areas = _frame_areas(pred_rles, num_frames, height, width, pred_names)
    gt_frame_areas = _frame_areas(gt_rles, num_frames, height, width, gt_names)
    lengths = [min(len(track), num_frames) for track in pred_rles]  # frames each track is compared on
    compared = [(track + [None] * num_frames)[:num_frames] for track in pred_rles]
    intersections = torch.full((len(pred_rles), len(gt_rles)), -1, dtype=torch.int64)
    pairs = torch.tensor(
        [(i, j) for i, p in enumerate(pred_labels) for j, g in enumerate(gt_labels) if p == g], dtype=torch.int64
    ).reshape(-1, 2)
    if len(pairs):
        intersections[pairs[:, 0], pairs[:, 1]] = rle_pair_intersections(compared, gt_rles, pairs, height, width)
    frame_index = torch.arange(pred_frame_areas.shape[1])
    pred_areas = torch.where(
        frame_index[None, :] < torch.tensor(lengths, dtype=torch.int64)[:, None], pred_frame_areas, 0
    ).sum(1)
    if all(length == num_frames for length in lengths):
        gt_areas = gt_frame_areas.sum(1)
    else:  # the ground truth's pixels over each predicted track's first frames: prefix sums, per pair
        prefix = torch.cat([torch.zeros(len(gt_rles), 1, dtype=torch.int64), gt_frame_areas.cumsum(1)], dim=1)
        gt_areas = prefix[:, lengths].T.contiguous()  # D x G
    return {
        "intersections": intersections,
        "pred_frame_areas": pred_frame_areas,
        "gt_frame_areas": gt_frame_areas,
        "pred_areas": pred_areas,
        "gt_areas": gt_areas,
    }


#: What ``omg run --format youtube-vis-json`` writes beside ``results.json``: the run's videos by id.
RUN_VIDEOS_FILE = "videos.json"


def _run_files(results_json: str | Path | list, videos_json: str | Path | dict | None) -> tuple[Any, Any]:
    """(results, the run's videos catalogue or None): a folder stands for its ``results.json``, and a results file
    with ``videos.json`` beside it (a run's output) brings that catalogue along unless one is given."""
    if isinstance(results_json, (str, Path)):
        path = Path(results_json)
        if path.is_dir():
            path = path / "results.json"
        if videos_json is None and (path.parent / RUN_VIDEOS_FILE).is_file():
            videos_json = path.parent / RUN_VIDEOS_FILE
        results_json = path
    results = _load_json(results_json, "a YouTube-VIS results JSON (a list of predicted tracks)")
    catalogue = None
    if videos_json is not None:
        catalogue = _load_json(videos_json, "the videos.json of an omg run (its videos by id)")
    return results, catalogue


def gt_video_name(video: dict) -> str | None:
    """A ground-truth video's name: the folder of its frames in ``file_names`` (``JPEGImages/<name>/00000.jpg`` ->
    ``<name>``), else its ``name``; None when it has neither."""
    file_names = video.get("file_names")
    if file_names:
        folder = Path(str(file_names[0])).parent.name
        if folder:
            return folder
    return str(video["name"]) if video.get("name") else None


def _run_video_names(video: dict) -> list[str]:
    """The names a run's video may have in the annotation file: the writer's name, then its source's name and stem
    (a name the writer suffixed to keep it unique, or a video file's)."""
    names = [str(video["name"])] if video.get("name") else []
    if video.get("source"):
        source = Path(str(video["source"]))
        names += [source.name, source.stem]
    return list(dict.fromkeys(name for name in names if name))


def join_run_videos(
    results: list, catalogue: Any, gt: dict, ground_truth: str = "the annotation file"
) -> tuple[list, set[Any]]:
    """Results with the run's video ids replaced by the annotation file's, joined by video name.

    Arguments:
      results: the run's result tracks (``video_id`` = the run's id).
      catalogue: the run's ``videos.json`` (``{"videos": [{"id", "name", "source", "length", ...}]}``).
      gt: the annotation file.
      ground_truth: what to call the annotation file in the messages (its path).

    Returns:
      (the results with the annotation file's ``video_id``, the annotation file's ids of the videos the run covered).

    Raises:
      ValueError: a run's video the annotation file lacks, or whose frame count differs; two run videos joined to
        one annotation video; a result of a video ``videos.json`` does not list; a malformed ``videos.json``.
    """
    if not isinstance(catalogue, dict) or not isinstance(catalogue.get("videos"), list):
        raise ValueError("videos.json must be {'videos': [{'id', 'name', 'length', ...}, ...]}, as omg run writes it")
    by_name: dict[str, list[dict]] = defaultdict(list)
    for video in gt["videos"]:
        name = gt_video_name(video)
        if name is not None:
            by_name[name].append(video)
    run_to_gt: dict[Any, Any] = {}
    joined_from: dict[Any, str] = {}  # annotation video id -> the run's video joined to it
    for video in catalogue["videos"]:
        if not isinstance(video, dict) or "id" not in video:
            raise ValueError(f"videos.json: video record {video!r:.80} has no 'id'")
        names = _run_video_names(video)
        matches = next((by_name[name] for name in names if by_name.get(name)), [])
        label = f"run video {video['id']!r} ({video.get('name')!r}, from {video.get('source')!r})"
        if not matches:
            raise ValueError(
                f"{label} is not in {ground_truth} (no video whose frames are in a folder named "
                f"{' or '.join(repr(n) for n in names) or 'after it'}); evaluate against the annotation file of the "
                "videos the run was given, or leave that video out of the run"
            )
        if len(matches) > 1:
            raise ValueError(
                f"{label}: {len(matches)} videos of {ground_truth} have that name (ids "
                f"{', '.join(repr(match['id']) for match in matches[:5])}), so it cannot be joined to one: give "
                "those annotation videos distinct folder names"
            )
        target = matches[0]
        run_frames = int(video["length"]) if "length" in video else len(video.get("frame_names") or [])
        if run_frames != _video_frames(target):
            raise ValueError(
                f"{label} has {run_frames} frames but annotation video {target['id']!r} has {_video_frames(target)}; "
                "run the video's annotated frames (its JPEGImages/<name> folder of the same split) so that each "
                "result has one segmentation per annotated frame"
            )
        if target["id"] in joined_from:
            raise ValueError(
                f"{label} and {joined_from[target['id']]} both join annotation video {target['id']!r}; give each "
                "video to the run once"
            )
        joined_from[target["id"]] = label
        run_to_gt[video["id"]] = target["id"]
    joined = []
    for index, result in enumerate(results):
        video_id = result.get("video_id") if isinstance(result, dict) else None
        if video_id not in run_to_gt:
            raise ValueError(
                f"result {index} refers to run video {video_id!r}, which videos.json does not list; results.json and "
                "videos.json must come from the same run"
            )
        joined.append({**result, "video_id": run_to_gt[video_id]})
    return joined, set(run_to_gt.values())


@reports_anomalies
def evaluate_youtube_vis(
    results_json: str | Path | list,
    gt_json: str | Path | dict,
    videos_json: str | Path | dict | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Evaluate YouTube-VIS results against an annotation file.

    Arguments:
      results_json: path to the results JSON (or the loaded list), or the folder of an ``omg run`` holding it.
      gt_json: path to the annotation JSON (or the loaded dict).
      videos_json: the run's ``videos.json`` (path or loaded dict) to join videos by name; by default the one
        beside ``results_json`` when there is one, else videos are joined by ``video_id``.
      progress: called with the number of videos just scored.

    Returns:
      The figures of :meth:`YouTubeVISMetric.compute` (AP, AP50, AP75, AP_small, ..., AR100, AP_per_category).

    Raises:
      ValueError: for results naming unknown videos, masks at the wrong size, or a malformed annotation (the message
        names the track and the fix).

    Pairing: with a run's ``videos.json`` the results are joined to the annotation videos by name (the folder of a
    video's frames in ``file_names``, else ``name``; see the module docstring) and take the annotation file's ids:
    the name wins over the run's ``video_id`` (its input position + 1) wherever the two point at different videos.
    A run video the annotation file lacks, or whose name two annotation videos share, is an error naming the
    annotation file. Without ``videos.json`` (ytvoseval's results format) results are joined by ``video_id``
    exactly as ytvoseval joins them.

    Results of categories the annotation file lacks and result tracks longer or shorter than their video are scored
    as ytvoseval scores them (see the module docstring) and reported with :func:`omg_eval.anomalies.note_anomaly`.
    """
    gt = _load_json(gt_json, "a YouTube-VIS annotation JSON (the ground truth)")
    results, catalogue = _run_files(results_json, videos_json)
    if not isinstance(gt, dict) or not {"videos", "categories", "annotations"} <= gt.keys():
        raise ValueError("the annotation file must be a dict with 'videos', 'categories' and 'annotations'")
    if not isinstance(results, list):
        raise ValueError("the results file must be a list of {video_id, category_id, score, segmentations}")
    covered = None  # the annotation videos a run covered, when it says which (videos.json)
    if catalogue is not None:
        ground_truth = f"the annotation file {gt_json}" if isinstance(gt_json, (str, Path)) else "the annotation file"
        results, covered = join_run_videos(results, catalogue, gt, ground_truth)
    videos = {video["id"]: video for video in gt["videos"]}
    category_ids = [int(category["id"]) for category in gt["categories"]]
    metric = YouTubeVISMetric(category_ids)
    known_categories = set(category_ids)
    gt_by_video: dict[Any, list[dict]] = defaultdict(list)
    for annotation in gt["annotations"]:
        if annotation.get("video_id") not in videos:
            raise ValueError(
                f"annotation {annotation.get('id')!r} refers to unknown video {annotation.get('video_id')!r}"
            )
        gt_by_video[annotation["video_id"]].append(annotation)
    # per video: (index in the results file, result), and the results of categories the annotation file lacks
    pred_by_video: dict[Any, list[tuple[int, dict]]] = defaultdict(list)
    foreign_by_video: dict[Any, list[tuple[int, int]]] = defaultdict(list)
    for index, result in enumerate(results):
        missing = {"video_id", "category_id", "score", "segmentations"} - result.keys()
        if missing:
            raise ValueError(f"result {index} lacks {sorted(missing)}")
        if result["video_id"] not in videos:
            raise ValueError(
                f"result {index} refers to video {result['video_id']!r}, which is not in the annotation file; "
                "evaluate against the annotation file the results were made for"
            )
        _segmentations(result, f"result {index}")
        if int(result["category_id"]) in known_categories:
            pred_by_video[result["video_id"]].append((index, result))
        else:
            foreign_by_video[result["video_id"]].append((index, int(result["category_id"])))
    video_ids = items_for_this_rank(sorted(videos))
    _note_anomalies(video_ids, videos, pred_by_video, foreign_by_video)
    if covered is not None:
        _note_uncovered([video_id for video_id in video_ids if video_id not in covered], videos)
    for video_id in video_ids:
        video = videos[video_id]
        height, width, num_frames = int(video["height"]), int(video["width"]), _video_frames(video)
        preds, gts = [result for _, result in pred_by_video[video_id]], gt_by_video[video_id]
        pred_names = [f"video {video_id!r}: result {index}" for index, _ in pred_by_video[video_id]]
        if not preds and not gts:
            if progress is not None:
                progress(1)
            continue
        pred_rles = [
            [_to_rle(s, height, width, f"{name} frame {t}") for t, s in enumerate(p["segmentations"])]
            for name, p in zip(pred_names, preds)
        ]
        gt_rles, gt_areas, gt_names = [], [], []
        for annotation in gts:
            where = f"video {video_id!r}: annotation {annotation.get('id')!r}"
            gt_names.append(where)
            segmentations = _check_track(annotation, num_frames, where)
            gt_rles.append([_to_rle(s, height, width, f"{where} frame {t}") for t, s in enumerate(segmentations)])
            areas = annotation.get("areas")
            if not isinstance(areas, list) or len(areas) != num_frames:
                raise ValueError(f"{where}: 'areas' must list one area (or null) per frame")
            gt_areas.append([float(a) if a else float("nan") for a in areas])  # falsy: absent, as ytvoseval's `if a`
        pred_labels = [int(p["category_id"]) for p in preds]
        gt_labels = [int(a["category_id"]) for a in gts]
        counts = _video_counts(
            pred_rles, pred_labels, gt_rles, gt_labels, num_frames, height, width, pred_names, gt_names
        )
        metric.add_video_statistics(
            video_id=video_id,
            pred_scores=torch.tensor([float(p["score"]) for p in preds], dtype=torch.float64),
            pred_labels=torch.tensor(pred_labels, dtype=torch.int64),
            pred_frame_areas=counts["pred_frame_areas"],
            gt_labels=torch.tensor(gt_labels, dtype=torch.int64),
            gt_iscrowd=torch.tensor([bool(a.get("iscrowd", 0)) for a in gts], dtype=torch.bool),
            gt_frame_areas=torch.tensor(gt_areas, dtype=torch.float64).reshape(len(gts), num_frames),
            intersections=counts["intersections"],
            pred_areas=counts["pred_areas"],
            gt_areas=counts["gt_areas"],
        )
        if progress is not None:
            progress(1)
    return metric.compute()


def _note_uncovered(uncovered: list[Any], videos: dict[Any, dict]) -> None:
    """Report this rank's annotation videos that the run (per its videos.json) was not given."""
    if uncovered:
        first = videos[uncovered[0]]
        note_anomaly(
            "video-instance-video-not-run",
            what="annotation videos the run did not cover (absent from its videos.json)",
            handling="scored as ytvoseval scores a video without results: every object in them is missed",
            example=f"video {first['id']!r} ({gt_video_name(first)!r})",
            count=len(uncovered),
        )


def _note_anomalies(
    video_ids: list[Any],
    videos: dict[Any, dict],
    pred_by_video: dict[Any, list[tuple[int, dict]]],
    foreign_by_video: dict[Any, list[tuple[int, int]]],
) -> None:
    """Report the anomalies of this rank's videos (each rank its own share, so counts add up over ranks)."""
    foreign = sorted(
        (index, video_id, category) for video_id in video_ids for index, category in foreign_by_video[video_id]
    )
    if foreign:
        index, video_id, category = foreign[0]
        note_anomaly(
            "video-instance-category-not-in-gt",
            what="result tracks of categories absent from the annotation file",
            handling="ignored, as ytvoseval does (it evaluates only the annotation file's categories)",
            example=f"result {index} (video {video_id!r}, category {category})",
            count=len(foreign),
        )
    mismatched = sorted(
        (index, video_id, len(result["segmentations"]), _video_frames(videos[video_id]))
        for video_id in video_ids
        for index, result in pred_by_video[video_id]
        if len(result["segmentations"]) != _video_frames(videos[video_id])
    )
    if mismatched:
        index, video_id, length, num_frames = mismatched[0]
        note_anomaly(
            "video-instance-track-length",
            what="result tracks whose 'segmentations' list is longer or shorter than their video",
            handling=(
                "scored as ytvoseval scores them: compared with each ground-truth track over the frames both list "
                "(extra frames dropped, a short track's missing frames left out of the union), binned by size by "
                "the mean area of all the frames it lists"
            ),
            example=f"result {index} (video {video_id!r}): {length} segmentations for {num_frames} frames",
            count=len(mismatched),
        )
