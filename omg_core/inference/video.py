"""OMG-Seg's video inference (MinVIS style, `Mask2formerVideoMinVIS`): tubes, query matching, whole-video tracks.

A video is cut into short tubes (`tube_bounds`); the decoder runs on each tube alone; each tube's queries are
permuted onto the previous tube's by Hungarian matching of their raw embeddings (`match_queries`), so a query slot is
one track through the whole video (`TrackBuilder`). Class logits and iou are averaged over tubes; masks are
concatenated in time. Per-frame fusion then turns the tracked queries into video results (`video_panoptic`,
`video_semantic`, `video_instances`), and the DAVIS path matches first-frame proposals to the given objects
(`associate_proposals`).

Shapes: Q queries, K classes (+1 void column), T frames, h x w the stride-4 mask size, H x W the output size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from scipy.optimize import linear_sum_assignment

from omg_core.inference.panoptic import PanopticFusion, PanopticSettings
from omg_core.postprocess import class_probabilities
from omg_core.results import PanopticVideo, Segment, SemanticVideo, Tracks

MaskResize = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ClipSettings:
    clip_size: int
    clip_size_small: int = 3
    small_clip_thr: int = 15
    overlap: int = 0


#: The official evaluation settings (seg/configs/m2ov_val/eval_m2_convl_300q_ov_y19.py, _y21.py: clip_size 5;
#: _vipseg.py: clip_size 2; all: clip_size_small 3, small_clip_thr 15, overlap 0).
VIDEO_CLIP_SETTINGS: dict[str, ClipSettings] = {
    "youtube-vis": ClipSettings(5),
    "vipseg": ClipSettings(2),
}


def video_split(num_frames: int, tube_size: int, overlap: int = 0) -> list[int]:
    """The end index (exclusive) of every tube, by OMG-Seg's `video_split` rule: tubes of `tube_size`, and when the
    last one would run past the video, the excess is taken off the last tubes (one frame from each of the last
    `excess` tubes when there are enough tubes, else all from the last).

    Arguments:
      num_frames: T >= 1.
      tube_size: frames per tube (> overlap).
      overlap: frames shared by consecutive tubes.
    """
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    if tube_size <= overlap or overlap < 0:
        raise ValueError(f"tube_size ({tube_size}) must exceed overlap ({overlap}) >= 0")
    total, step = num_frames - overlap, tube_size - overlap
    if total <= 0:  # fewer frames than the overlap: one tube holds the whole video
        return [num_frames]
    splits = -(-total // step)
    ends = [(index + 1) * step for index in range(splits)]
    excess = ends[-1] - total
    if excess < splits:
        for index in range(excess):
            ends[splits - 1 - index] -= excess - index
    else:
        ends[-1] -= excess
    return [end + overlap for end in ends]


def tube_bounds(
    num_frames: int, clip_size: int, clip_size_small: int = 3, small_clip_thr: int = 15, overlap: int = 0
) -> list[tuple[int, int]]:
    """(start, end) frame ranges of the tubes: `clip_size` frames for videos longer than `small_clip_thr` frames,
    `clip_size_small` otherwise (as the official `num_frames > small_clip_thr` test)."""
    if min(clip_size, clip_size_small) < 1:
        raise ValueError(f"tube sizes must be >= 1, got clip_size={clip_size}, clip_size_small={clip_size_small}")
    size = clip_size if num_frames > small_clip_thr else clip_size_small
    ends = video_split(num_frames, size, overlap)
    bounds, start = [], 0
    for end in ends:
        bounds.append((start, end))
        start = end - overlap
    return bounds


def match_queries(previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """The permutation `perm` with `current[perm]` aligned to `previous` (OMG-Seg's `match_from_embeds`): Hungarian
    assignment on 1 - cosine similarity of the embeddings.

    Arguments:
      previous: (Q, C) raw query embeddings of the previous tube (already permuted).
      current: (Q, C) raw query embeddings of this tube.

    Returns:
      (Q,) int64: slot i of the track gets the current tube's query perm[i].
    """
    previous = previous.float() / previous.float().norm(dim=-1, keepdim=True)
    current = current.float() / current.float().norm(dim=-1, keepdim=True)
    cost = (1 - previous @ current.T).cpu().numpy()  # previous (target) x current
    _, columns = linear_sum_assignment(cost)
    return torch.as_tensor(columns, dtype=torch.int64)


@dataclass
class TubeOutputs:
    """The decoder's outputs for one tube (batch axis removed).

    class_logits: (Q, K + 1); mask_logits: (Q, T_tube, h, w); raw_query_embeddings: (Q, C) (before the final
    LayerNorm); iou_logits: (Q, 1); extras: per-query tensors (Q first) summed over tubes with the permutation
    (e.g. mask-pooled CLIP feature sums and areas for the open-vocabulary ensemble on whole tracks).
    """

    class_logits: torch.Tensor
    mask_logits: torch.Tensor
    raw_query_embeddings: torch.Tensor
    iou_logits: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def permuted(self, perm: torch.Tensor) -> TubeOutputs:
        index = perm.to(self.class_logits.device)
        return TubeOutputs(self.class_logits[index], self.mask_logits[perm.to(self.mask_logits.device)],
                           self.raw_query_embeddings[perm.to(self.raw_query_embeddings.device)],
                           self.iou_logits[index],
                           {name: value[perm.to(value.device)] for name, value in self.extras.items()})


@dataclass
class TrackOutputs:
    """A whole video's tracked queries: query slot q is one track.

    class_logits: (Q, K + 1) mean over tubes; iou_logits: (Q, 1) mean over tubes; mask_logits: (Q, T, h, w)
    (None from a streaming builder); extras: summed over tubes; num_tubes: tubes seen.
    """

    class_logits: torch.Tensor
    iou_logits: torch.Tensor
    mask_logits: torch.Tensor | None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    num_tubes: int = 1


class StreamingTrackBuilder:
    """Matches each tube onto the previous one and keeps running sums, not masks: `add` returns the permuted tube so
    its frames can be written at once; memory does not grow with the video's length."""

    def __init__(self, overlap: int = 0) -> None:
        self.overlap = overlap
        self._previous_embeddings: torch.Tensor | None = None
        self._class_sum: torch.Tensor | None = None
        self._iou_sum: torch.Tensor | None = None
        self._extras: dict[str, torch.Tensor] = {}
        self.num_tubes = 0

    def add(self, tube: TubeOutputs) -> TubeOutputs:
        """Permute `tube` onto the track slots; returns it permuted, with the frames shared with the previous tube
        (`overlap`) dropped from its masks."""
        if self._previous_embeddings is not None:
            tube = tube.permuted(match_queries(self._previous_embeddings, tube.raw_query_embeddings))
            if self.overlap:
                tube = TubeOutputs(tube.class_logits, tube.mask_logits[:, self.overlap:], tube.raw_query_embeddings,
                                   tube.iou_logits, tube.extras)
        self._previous_embeddings = tube.raw_query_embeddings  # the official code matches to the last tube
        self._class_sum = tube.class_logits.float() if self._class_sum is None else self._class_sum + tube.class_logits
        self._iou_sum = tube.iou_logits.float() if self._iou_sum is None else self._iou_sum + tube.iou_logits
        for name, value in tube.extras.items():
            self._extras[name] = value if name not in self._extras else self._extras[name] + value
        self.num_tubes += 1
        return tube

    def finish(self) -> TrackOutputs:
        if self._class_sum is None or self._iou_sum is None:
            raise ValueError("no tube was added")
        return TrackOutputs(self._class_sum / self.num_tubes, self._iou_sum / self.num_tubes, None, dict(self._extras),
                            self.num_tubes)


class TrackBuilder(StreamingTrackBuilder):
    """Offline: as the streaming builder, and keeps every tube's masks (on the CPU, as the official code) to give
    the whole video's mask logits at the end."""

    def __init__(self, overlap: int = 0) -> None:
        super().__init__(overlap)
        self._masks: list[torch.Tensor] = []

    def add(self, tube: TubeOutputs) -> TubeOutputs:
        tube = super().add(tube)
        self._masks.append(tube.mask_logits.cpu())
        return tube

    def finish(self) -> TrackOutputs:
        track = super().finish()
        track.mask_logits = torch.cat(self._masks, dim=1)
        return track


def track_frame_logits(track: TrackOutputs, frame: int) -> torch.Tensor:
    """(Q, h, w) mask logits of one frame of the track."""
    if track.mask_logits is None:
        raise ValueError("this track holds no masks (streaming); fuse each tube's frames as they come")
    return track.mask_logits[:, frame]


def video_panoptic(
    track: TrackOutputs,
    resize: MaskResize,
    is_thing: torch.Tensor,
    settings: PanopticSettings,
    fuse_frame: Callable[..., PanopticFusion],
    vocabulary: Sequence[str],
) -> PanopticVideo:
    """Per-frame panoptic fusion of the tracked queries with the video's averaged class logits.

    Ids are stable over time: a thing segment's id is its query slot + 1 (the same query in every frame is the same
    object, also across frames where it is absent), a stuff segment's id is Q + 1 + its class. The official code
    numbers painted things 1, 2, ... per frame in query order, so when a thing is skipped in one frame (occluded,
    below iou_thr) the things after it change numbers there; the query slot does not.
    """
    num_queries = track.class_logits.shape[0]
    num_frames = track.mask_logits.shape[1] if track.mask_logits is not None else 0
    frames: list[torch.Tensor] = []
    segments: dict[int, Segment] = {}
    for frame in range(num_frames):
        fusion = fuse_frame(track.class_logits, track_frame_logits(track, frame), resize, is_thing, settings)
        ids = torch.zeros_like(fusion.segment_ids)
        for segment, queries in zip(fusion.segments, fusion.segment_queries):
            stable = queries[0] + 1 if segment.is_thing else num_queries + 1 + segment.label
            ids[fusion.segment_ids == segment.id] = stable
            if stable not in segments:
                segments[stable] = Segment(stable, segment.label, segment.score, segment.is_thing)
        frames.append(ids)
    return PanopticVideo(torch.stack(frames), tuple(segments[key] for key in sorted(segments)), vocabulary)


def video_semantic(
    track: TrackOutputs,
    resize: MaskResize,
    semantic_fn: Callable[[torch.Tensor, torch.Tensor, MaskResize], torch.Tensor],
    vocabulary: Sequence[str],
) -> SemanticVideo:
    """Mask2Former's semantic inference per frame with the video's averaged class logits."""
    num_frames = track.mask_logits.shape[1] if track.mask_logits is not None else 0
    labels = [semantic_fn(track.class_logits, track_frame_logits(track, frame), resize) for frame in range(num_frames)]
    return SemanticVideo(torch.stack(labels), vocabulary)


def video_instances(
    track: TrackOutputs,
    resize: MaskResize,
    is_thing: torch.Tensor,
    max_per_video: int,
    vocabulary: Sequence[str],
) -> Tracks:
    """Object tracks as OMG-Seg's YouTube-VIS path makes them.

    The official code runs the image instance inference on every frame with the video's averaged class logits, so
    every frame picks the same top `max_per_video` (query, class) pairs (things only, after the top-k); a pair's
    per-frame score is class probability x mean mask probability inside its mask (logit > 0) in that frame, and
    mmdet's YouTube-VIS metric scores the track with the mean over frames. Each pair is one track here: its masks
    in every frame, its class, and that mean score.
    """
    probabilities = class_probabilities(track.class_logits.float())  # Q x K
    num_queries, num_classes = probabilities.shape
    k = min(max_per_video, num_queries * num_classes)
    flat = probabilities.flatten()
    # deterministic order: score descending, then flat index ascending (the official topk is unsorted)
    top = torch.sort(-flat, stable=True).indices[:k]
    queries, labels = top // num_classes, top % num_classes
    keep = is_thing.to(labels.device)[labels]
    queries, labels, class_scores = queries[keep], labels[keep], flat[top][keep]
    num_frames = track.mask_logits.shape[1] if track.mask_logits is not None else 0
    unique_queries, inverse = torch.unique(queries, return_inverse=True)
    frames_masks, mask_scores = [], []
    for frame in range(num_frames):
        logits = resize(track_frame_logits(track, frame)[unique_queries]).float()  # U x H x W
        binary = logits > 0
        score = (logits.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
        frames_masks.append(binary[inverse])
        mask_scores.append(score[inverse])
    if frames_masks:
        masks = torch.stack(frames_masks, dim=1)  # N x T x H x W
        scores = class_scores * torch.stack(mask_scores, dim=1).mean(dim=1)
    else:
        masks = torch.zeros(0, 0, 0, 0, dtype=torch.bool)
        scores = class_scores
    return Tracks(masks, scores.float(), labels, vocabulary)


def associate_proposals(proposal_masks: torch.Tensor, object_masks: torch.Tensor) -> dict[int, int]:
    """Which proposal becomes which given object (the DAVIS path of OMG-Seg's video inference): Hungarian assignment
    maximising IoU between first-frame proposals and the first-frame object masks.

    Arguments:
      proposal_masks: (M, H, W) bool.
      object_masks: (G, H, W) bool.

    Returns:
      {proposal index: object index} for min(M, G) pairs.
    """
    proposals = proposal_masks.flatten(1).float()
    objects = object_masks.flatten(1).float()
    intersection = proposals @ objects.T
    union = proposals.sum(1)[:, None] + objects.sum(1)[None] - intersection
    iou = intersection / union.clamp(min=1)
    rows, columns = linear_sum_assignment(-iou.numpy())
    return {int(row): int(column) for row, column in zip(rows, columns)}
