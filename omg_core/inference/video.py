"""OMG-Seg's video inference (MinVIS style, ``Mask2formerVideoMinVIS`` in seg/models/detectors/mask2former_vid_minvis.py):
tubes, query matching, whole-video tracks, per-frame fusion.

    tubes = tube_bounds(T, clip_size, ...)                  # official video_split rule
    for each tube: decoder -> TubeOutputs                   # class logits, masks, raw query embeddings, iou
        perm = match_queries(previous tube's permuted embeddings, tube's)   # Hungarian on 1 - cosine
        tube = tube[perm]                                   # query slot q is one track through the video
    class logits, iou: mean over tubes; masks: concatenated in time; extras (CLIP sums, areas): summed
    (open-vocabulary tasks) open_vocabulary_track_logits on the whole track
    per frame: panoptic / semantic / instance fusion with the averaged class logits

The DAVIS path matches first-frame proposals to the given objects (``associate_proposals``).

Shapes: Q queries, K classes (+1 void column), C embedding channels, T frames, h x w the stride-4 mask size, H x W the
output size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from scipy.optimize import linear_sum_assignment

from omg_core.inference.panoptic import PanopticFusion, PanopticSettings
from omg_core.inference.test_time_resize import MaskResize, resized_output, resized_query_chunks
from omg_core.postprocess import boxes_from_masks, class_probabilities
from omg_core.results import PanopticVideo, Segment, SemanticVideo, Tracks


def _check_tube_sizes(clip_size: int, clip_size_small: int, overlap: int) -> None:
    if min(clip_size, clip_size_small) < 1:
        raise ValueError(f"tube sizes must be >= 1, got clip_size={clip_size}, clip_size_small={clip_size_small}")
    if not 0 <= overlap < min(clip_size, clip_size_small):
        raise ValueError(f"overlap must be in [0, tube size), got overlap={overlap} with clip_size={clip_size}, "
                         f"clip_size_small={clip_size_small}")


@dataclass(frozen=True)
class ClipSettings:
    """How a video is cut into tubes (``Mask2formerVideoMinVIS`` arguments).

    clip_size: frames per tube for videos of more than ``small_clip_thr`` frames.
    clip_size_small: frames per tube for videos of at most ``small_clip_thr`` frames.
    small_clip_thr: see above (the official test is ``num_frames > small_clip_thr``).
    overlap: frames shared by consecutive tubes.
    """

    clip_size: int
    clip_size_small: int = 3
    small_clip_thr: int = 15
    overlap: int = 0

    def __post_init__(self) -> None:
        _check_tube_sizes(self.clip_size, self.clip_size_small, self.overlap)


#: The official evaluation settings, seg/configs/m2ov_val/eval_m2_convl_300q_ov_{y19,y21,vipseg,davis}.py (1ae2e7d):
#: clip_size 5 (y19, y21, davis) or 2 (vipseg); every config: clip_size_small 3, small_clip_thr 15, overlap 0 and
#: whole_clip_thr 0 (never taken: a video has at least one frame, so no video skips the tube path).
VIDEO_CLIP_SETTINGS: dict[str, ClipSettings] = {
    "youtube-vis": ClipSettings(clip_size=5),
    "vipseg": ClipSettings(clip_size=2),
    "davis": ClipSettings(clip_size=5),
}


def video_split(num_frames: int, tube_size: int, overlap: int = 0) -> list[int]:
    """The end index (exclusive) of every tube, by OMG-Seg's ``video_split`` rule.

    With step = tube_size - overlap over the num_frames - overlap frames after the first overlap: ends at step,
    2 step, ...; when the last end runs past the video by `excess` frames, and there are more tubes than that, the
    last `excess` tubes give back excess, excess - 1, ..., 1 frames (so ends stay increasing); otherwise the whole
    excess comes off the last tube. Every end is then shifted by `overlap`.

    Arguments:
      num_frames: T >= 1.
      tube_size: frames per tube, > overlap.
      overlap: frames shared by consecutive tubes, >= 0.
    Returns:
      increasing ends, the last one num_frames.
    """
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    if overlap < 0 or tube_size <= overlap:
        raise ValueError(f"tube_size ({tube_size}) must exceed overlap ({overlap}) >= 0")
    total, step = num_frames - overlap, tube_size - overlap
    if total <= 0:  # no more frames than the overlap (the official code fails here): one tube holds the video
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
    """(start, end) frame ranges of the tubes: ``clip_size`` frames when ``num_frames > small_clip_thr`` (the
    official comparison), ``clip_size_small`` otherwise; consecutive tubes share ``overlap`` frames."""
    _check_tube_sizes(clip_size, clip_size_small, overlap)
    size = clip_size if num_frames > small_clip_thr else clip_size_small
    bounds, start = [], 0
    for end in video_split(num_frames, size, overlap):
        bounds.append((start, end))
        start = end - overlap
    return bounds


def match_queries(previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """The permutation ``perm`` with ``current[perm]`` aligned to ``previous`` (OMG-Seg's ``match_from_embeds``).

    The cost is 1 - cosine similarity, laid out previous (target) x current as the official
    ``linear_sum_assignment(C.transpose(0, 1))``; its rows come back as 0..Q-1, so the column array is the permutation.

    Arguments:
      previous: (Q, C) raw query embeddings of the previous tube, already permuted onto the track slots.
      current: (Q, C) raw query embeddings of this tube.
    Returns:
      (Q,) int64 on the CPU: track slot i takes this tube's query perm[i].
    """
    if previous.ndim != 2 or previous.shape != current.shape:
        raise ValueError(f"expected two (Q, C) embeddings of one shape, got {tuple(previous.shape)} and "
                         f"{tuple(current.shape)}")
    previous = previous.detach().float().cpu()
    current = current.detach().float().cpu()
    previous = previous / previous.norm(dim=-1, keepdim=True)
    current = current / current.norm(dim=-1, keepdim=True)
    cost = 1 - previous @ current.T  # previous (target) x current
    _, columns = linear_sum_assignment(cost.numpy())
    return torch.as_tensor(columns, dtype=torch.int64)


@dataclass
class TubeOutputs:
    """The decoder's outputs for one tube (batch axis removed).

    class_logits: (Q, K + 1), last column void.
    mask_logits: (Q, T_tube, h, w).
    raw_query_embeddings: (Q, C) the last decoder layer's query features before the final LayerNorm (what the
      official ``predict(return_query=True)`` returns and matches).
    iou_logits: (Q, 1).
    extras: per-query tensors (Q first) that follow the permutation and are SUMMED over tubes, e.g. mask-pooled CLIP
      feature sums and mask areas, so the open-vocabulary ensemble sees the whole track.
    """

    class_logits: torch.Tensor
    mask_logits: torch.Tensor
    raw_query_embeddings: torch.Tensor
    iou_logits: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_queries(self) -> int:
        return int(self.class_logits.shape[0])

    def check(self) -> None:
        """Raise ValueError unless every field has Q rows and the shapes above."""
        q = self.num_queries
        if self.class_logits.ndim != 2 or self.mask_logits.ndim != 4 or self.raw_query_embeddings.ndim != 2:
            raise ValueError(
                f"expected class_logits (Q, K + 1), mask_logits (Q, T, h, w), raw_query_embeddings (Q, C), got "
                f"{tuple(self.class_logits.shape)}, {tuple(self.mask_logits.shape)}, "
                f"{tuple(self.raw_query_embeddings.shape)}"
            )
        rows = {"mask_logits": self.mask_logits, "raw_query_embeddings": self.raw_query_embeddings,
                "iou_logits": self.iou_logits, **{f"extras[{name!r}]": value for name, value in self.extras.items()}}
        for name, value in rows.items():
            if value.ndim == 0 or value.shape[0] != q:
                raise ValueError(f"{name} must have Q={q} rows like class_logits, got shape {tuple(value.shape)}")

    def permuted(self, perm: torch.Tensor) -> TubeOutputs:
        """The tube with its queries reordered: row i of every field is query perm[i]."""

        def take(value: torch.Tensor) -> torch.Tensor:
            return value[perm.to(value.device)]

        return TubeOutputs(take(self.class_logits), take(self.mask_logits), take(self.raw_query_embeddings),
                           take(self.iou_logits), {name: take(value) for name, value in self.extras.items()})


@dataclass
class TrackOutputs:
    """A whole video's tracked queries: query slot q is one track.

    class_logits: (Q, K + 1) mean over tubes.
    iou_logits: (Q, 1) mean over tubes.
    mask_logits: (Q, T, h, w) on the CPU; None from a streaming builder.
    extras: summed over tubes.
    num_tubes: tubes added.
    """

    class_logits: torch.Tensor
    iou_logits: torch.Tensor
    mask_logits: torch.Tensor | None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    num_tubes: int = 1

    @property
    def num_frames(self) -> int:
        return 0 if self.mask_logits is None else int(self.mask_logits.shape[1])

    def frame_logits(self, frame: int) -> torch.Tensor:
        """(Q, h, w) mask logits of one frame."""
        return _frame_masks(self)[:, frame]


def _frame_masks(track: TrackOutputs) -> torch.Tensor:
    if track.mask_logits is None:
        raise ValueError("this track holds no masks (built by StreamingTrackBuilder); fuse each tube's frames as add "
                         "returns them, or build the track with TrackBuilder")
    return track.mask_logits


class StreamingTrackBuilder:
    """Matches each tube onto the track slots and keeps running sums, not masks, so memory does not grow with the
    video: ``add`` returns the permuted tube (its new frames can be written at once), ``finish`` the averages.

    The class logits a streamed frame is fused with can only be the average so far (``finish()`` may be called at
    any time; it does not end the stream); the official offline code fuses every frame with the average over the whole
    video, which needs the masks kept (``TrackBuilder``).

    Arguments:
      overlap: frames shared by consecutive tubes; they are dropped from every tube after the first, as officially.
    """

    def __init__(self, overlap: int = 0) -> None:
        if overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {overlap}")
        self.overlap = overlap
        #: per tube, the permutation applied to it (the identity for the first): track slot i = the tube's query perm[i]
        self.permutations: list[torch.Tensor] = []
        self._previous_embeddings: torch.Tensor | None = None
        self._class_sum: torch.Tensor | None = None
        self._iou_sum: torch.Tensor | None = None
        self._extras: dict[str, torch.Tensor] = {}

    @property
    def num_tubes(self) -> int:
        return len(self.permutations)

    def add(self, tube: TubeOutputs) -> TubeOutputs:
        """Permute ``tube`` onto the track slots (matched to the previous tube's permuted embeddings, as the official
        code matches to ``out_embed[-1]``) and add it to the sums.

        Returns:
          the permuted tube; its mask_logits lose the first ``overlap`` frames unless it is the first tube.
        """
        tube.check()
        previous, class_sum = self._previous_embeddings, self._class_sum
        if previous is None or class_sum is None:
            perm = torch.arange(tube.num_queries)
        else:
            if tube.raw_query_embeddings.shape != previous.shape or tube.class_logits.shape != class_sum.shape:
                raise ValueError(
                    f"every tube needs the first tube's Q, C and K: got class_logits {tuple(tube.class_logits.shape)}"
                    f" and embeddings {tuple(tube.raw_query_embeddings.shape)} after {tuple(class_sum.shape)} and "
                    f"{tuple(previous.shape)}"
                )
            perm = match_queries(previous, tube.raw_query_embeddings)
            tube = tube.permuted(perm)
            if self.overlap:
                if tube.mask_logits.shape[1] <= self.overlap:
                    raise ValueError(f"a tube after the first needs more than overlap={self.overlap} frames, got "
                                     f"{tube.mask_logits.shape[1]}")
                tube = TubeOutputs(tube.class_logits, tube.mask_logits[:, self.overlap:], tube.raw_query_embeddings,
                                   tube.iou_logits, tube.extras)
        self.permutations.append(perm)
        self._previous_embeddings = tube.raw_query_embeddings
        # the official averages sum(out_cls) / num_tubes: summed in tube order (float32, also for half-precision
        # outputs), so float32 outputs give its numbers exactly
        class_logits, iou_logits = tube.class_logits.float(), tube.iou_logits.float()
        self._class_sum = class_logits if self._class_sum is None else self._class_sum + class_logits
        self._iou_sum = iou_logits if self._iou_sum is None else self._iou_sum + iou_logits
        for name, value in tube.extras.items():
            self._extras[name] = value if name not in self._extras else self._extras[name] + value
        return tube

    def finish(self) -> TrackOutputs:
        """The averages (and sums of extras) over the tubes added so far; mask_logits None."""
        if self._class_sum is None or self._iou_sum is None:
            raise ValueError("no tube was added")
        return TrackOutputs(self._class_sum / self.num_tubes, self._iou_sum / self.num_tubes, None, dict(self._extras),
                            self.num_tubes)


class TrackBuilder(StreamingTrackBuilder):
    """Offline (the official way): as the streaming builder, and keeps every tube's permuted masks on the CPU (the
    official code moves them there too) to give the whole video's mask logits (Q, T, h, w) at the end."""

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


def video_panoptic(
    track: TrackOutputs,
    resize: MaskResize,
    is_thing: torch.Tensor,
    settings: PanopticSettings,
    fuse_frame: Callable[..., PanopticFusion],
    vocabulary: Sequence[str],
) -> PanopticVideo:
    """Per-frame panoptic fusion of the tracked queries with the video's averaged class logits.

    ``fuse_frame(class_logits, frame_mask_logits, resize, is_thing, settings) -> PanopticFusion`` is the image fusion
    (``omg_core.inference.panoptic.panoptic_fusion``); every frame's partition is the official one.

    Ids are stable over time: a thing's id is its query slot + 1 (one query slot is one object in every frame, also
    after frames where it is absent), a stuff segment's id is Q + 1 + its class (all regions of a class merge, as
    officially). The official map numbers painted things 1, 2, ... per frame in query order (instance_id, and VIPSeg's
    evaluation takes these numbers as track ids): when a thing paints nothing in one frame (absent, occluded, or its
    argmax area below iou_thr x its own area) every later thing's number drops by one in that frame, so two objects
    can swap or take each other's ids between frames. The query slot does not move.

    A segment's score is its class score in the first frame it appears in (a thing's is the same in every frame).

    Returns:
      PanopticVideo with segment_ids (T, H, W) int64 and one Segment per id, sorted by id.
    """
    masks = _frame_masks(track)
    num_queries = track.class_logits.shape[0]
    frames: list[torch.Tensor] = []
    segments: dict[int, Segment] = {}
    for frame in range(masks.shape[1]):
        fusion = fuse_frame(track.class_logits, masks[:, frame], resize, is_thing, settings)
        stable_ids = torch.zeros_like(fusion.segment_ids)
        for segment, queries in zip(fusion.segments, fusion.segment_queries):
            stable = queries[0] + 1 if segment.is_thing else num_queries + 1 + segment.label
            stable_ids[fusion.segment_ids == segment.id] = stable
            if stable not in segments:
                segments[stable] = Segment(stable, segment.label, segment.score, segment.is_thing)
        frames.append(stable_ids)
    if not frames:
        raise ValueError("the track has no frames")
    return PanopticVideo(torch.stack(frames), tuple(segments[key] for key in sorted(segments)), tuple(vocabulary))


def video_semantic(
    track: TrackOutputs,
    resize: MaskResize,
    semantic_fn: Callable[[torch.Tensor, torch.Tensor, MaskResize], torch.Tensor],
    vocabulary: Sequence[str],
) -> SemanticVideo:
    """Per-frame semantic labels with the video's averaged class logits.

    ``semantic_fn(class_logits, frame_mask_logits, resize) -> (H, W)`` labels, e.g.
    ``omg_core.inference.semantic.semantic_labels`` (Mask2Former's semantic inference; OMG-Seg has none).
    """
    masks = _frame_masks(track)
    labels = [semantic_fn(track.class_logits, masks[:, frame], resize) for frame in range(masks.shape[1])]
    if not labels:
        raise ValueError("the track has no frames")
    return SemanticVideo(torch.stack(labels), tuple(vocabulary))


def video_instances(
    track: TrackOutputs,
    resize: MaskResize,
    is_thing: torch.Tensor,
    max_per_video: int,
    vocabulary: Sequence[str],
    chunk: int = 16,
) -> Tracks:
    """Object tracks as OMG-Seg's YouTube-VIS path makes them.

    Official: every frame runs ``instance_postprocess`` with the same averaged class logits, so every frame picks
    the same top ``max_per_image`` (100) (query, class) pairs, stuff pairs dropped after the top-k, in the same order;
    ``add_track_pred_to_datasample`` numbers them 1..N by that position, so a position is one track. Per frame a
    pair scores class probability x mask score (mean sigmoid inside its logit > 0 mask; 0 for an empty mask). mmdet's
    YouTubeVISMetric then gives each track the MEAN of its per-frame scores (empty frames count as 0) and the majority
    vote of its per-frame labels (here always the pair's class).

    Here: the same pairs and, per track, class probability x mean over frames of the mask score (the same number),
    the pair's class, its mask (logit > 0) in every frame, and a box around its union over frames. Tracks come sorted
    by score, descending, ties by flat index (query x K + class); the official order is topk's (unsorted), which no
    metric reads.

    Arguments:
      track: class_logits (Q, K + 1) averaged, mask_logits (Q, T, h, w).
      resize: maps (N, h, w) logits to (N, H, W) logits at the output size.
      is_thing: (K,) bool.
      max_per_video: pairs taken before stuff ones are dropped (the official max_per_image, 100).
      vocabulary: class names for the result.
      chunk: queries resized at a time.
    Returns:
      Tracks with masks (N, T, H, W) bool, scores (N,) float32, labels (N,) int64, boxes (N, 4).
    """
    masks = _frame_masks(track)
    if masks.shape[0] != track.class_logits.shape[0] or masks.shape[1] == 0:
        raise ValueError(f"expected mask_logits (Q={track.class_logits.shape[0]}, T >= 1, h, w), got "
                         f"{tuple(masks.shape)}")
    queries, labels, class_scores = select_track_pairs(track.class_logits, is_thing, max_per_video)
    unique_queries, slot = torch.unique(queries, sorted=True, return_inverse=True)

    height, width, _ = resized_output(masks[:, 0], resize)
    num_frames = masks.shape[1]
    query_masks = torch.zeros((len(unique_queries), num_frames, height, width), dtype=torch.bool)
    mask_score_sums = torch.zeros(len(unique_queries))
    for frame in range(num_frames):
        for start, logits in resized_query_chunks(masks[:, frame], unique_queries, resize, chunk):
            binary, frame_scores = mask_and_score(logits)
            query_masks[start:start + len(logits), frame] = binary.cpu()
            mask_score_sums[start:start + len(logits)] += frame_scores.cpu()

    scores = class_scores.cpu() * (mask_score_sums / num_frames)[slot.cpu()]
    order = torch.sort(scores, descending=True, stable=True).indices
    track_masks = query_masks[slot.cpu()[order]]
    return Tracks(track_masks, scores[order].float(), labels.cpu()[order], tuple(vocabulary),
                  boxes=boxes_from_masks(track_masks.any(dim=1)))


def select_track_pairs(
    class_logits: torch.Tensor, is_thing: torch.Tensor, max_per_video: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The (query, class) pairs that become tracks: the top ``max_per_video`` class probabilities over queries x
    classes (ties: lowest flat index first), then the stuff pairs dropped, as the official per-frame
    ``instance_postprocess`` does.

    Arguments:
      class_logits: (Q, K + 1) averaged over the video, last column void.
      is_thing: (K,) bool.
      max_per_video: pairs taken before stuff ones are dropped.
    Returns:
      queries (N,) int64, labels (N,) int64, class probabilities (N,) float32, in top-k order.
    """
    num_classes = class_logits.shape[1] - 1
    if is_thing.dtype != torch.bool or is_thing.shape != (num_classes,):
        raise ValueError(f"is_thing must be a ({num_classes},) bool tensor, got {tuple(is_thing.shape)} "
                         f"{is_thing.dtype}")
    flat = class_probabilities(class_logits.float()).flatten()
    count = min(max_per_video, flat.numel())
    top = torch.sort(flat, descending=True, stable=True).indices[:count]
    top = top[is_thing.to(top.device)[top % num_classes]]
    return top // num_classes, top % num_classes, flat[top]


def mask_and_score(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, H, W) mask logits -> the masks (logit > 0) and each one's mask score: the mean probability inside it
    (0 for an empty mask), as mmdet's instance post-processing scores a mask."""
    binary = logits > 0
    inside = binary.flatten(1).sum(1)
    return binary, (logits.sigmoid() * binary).flatten(1).sum(1) / (inside + 1e-6)


def associate_proposals(proposal_masks: torch.Tensor, object_masks: torch.Tensor) -> dict[int, int]:
    """Which proposal becomes which given object (the DAVIS path of ``Mask2formerVideoMinVIS.predict``): Hungarian
    assignment maximising the IoU between first-frame proposals and the first-frame object masks.

    The official IoU is intersection / (a + b).clamp(0, 1) counts, i.e. intersection / union of the binary masks, as
    here; where both masks are empty its 0 / 0 is NaN (and linear_sum_assignment refuses it), here the IoU is 0.

    Arguments:
      proposal_masks: (M, H, W) bool.
      object_masks: (G, H, W) bool.
    Returns:
      {proposal index: object index} for min(M, G) pairs, proposals in increasing order.
    """
    if proposal_masks.ndim != 3 or object_masks.ndim != 3 or proposal_masks.shape[1:] != object_masks.shape[1:]:
        raise ValueError(f"expected proposal masks (M, H, W) and object masks (G, H, W) of one size, got "
                         f"{tuple(proposal_masks.shape)} and {tuple(object_masks.shape)}")
    proposals = proposal_masks.flatten(1).cpu().double()
    objects = object_masks.flatten(1).cpu().double()
    intersection = proposals @ objects.T  # exact counts in float64
    union = proposals.sum(1)[:, None] + objects.sum(1)[None] - intersection
    iou = intersection / union.clamp(min=1)
    rows, columns = linear_sum_assignment(-iou.numpy())
    return {int(row): int(column) for row, column in zip(rows, columns)}


def open_vocabulary_track_logits(
    class_logits: torch.Tensor,
    clip_logits: torch.Tensor,
    seen_classes: torch.Tensor,
    alpha: float,
    beta: float,
    valid_queries: torch.Tensor,
) -> torch.Tensor:
    """OMG-Seg's open-vocabulary ensemble on whole tracks (``open_voc_inference`` after the tubes are merged).

    Officially, per query: q = softmax of the averaged in-vocabulary logits over the K classes, c = softmax of the
    CLIP logits of the features mask-pooled over ALL the track's frames, a = alpha for seen classes and beta for
    unseen ones (0 where the query's mask is empty at the CLIP resolution in every frame);
    p = softmax_K(log(q^(1 - a) * c^a)); result = log([p * (1 - p_void), p_void] + 1e-8), p_void from the softmax of
    the averaged logits over K + 1. This is ``omg_core.model.ov_classifier.geometric_ensemble``; the CLIP logits of
    invalid queries are zeroed first: they get exponent 0 and officially c^0 = 1 whatever c is, whereas in log space
    0 x log(c) is NaN where c underflows to 0 (or the pooled features of an empty mask give NaN).

    Arguments:
      class_logits: (Q, K + 1) in-vocabulary logits averaged over tubes, last column void.
      clip_logits: (Q, K) or (Q, K + 1) (last column ignored) CLIP logits of the track-pooled features.
      seen_classes: (K,) bool, True for classes seen in training.
      alpha, beta: the ensemble exponents for seen and unseen classes.
      valid_queries: (Q,) bool, the track's mask has a foreground cell at the CLIP resolution in some frame (e.g.
        the summed areas > 0).
    Returns:
      (Q, K + 1) log-probabilities, last column void.
    """
    from omg_core.model.ov_classifier import geometric_ensemble

    num_queries, num_classes = class_logits.shape[0], class_logits.shape[-1] - 1
    if class_logits.ndim != 2 or clip_logits.ndim != 2 or clip_logits.shape[0] != num_queries or (
        clip_logits.shape[1] not in (num_classes, num_classes + 1)
    ):
        raise ValueError(f"expected class_logits (Q, K + 1) and clip_logits (Q, K) or (Q, K + 1), got "
                         f"{tuple(class_logits.shape)} and {tuple(clip_logits.shape)}")
    if valid_queries.shape != (num_queries,):
        raise ValueError(f"valid_queries must have shape ({num_queries},), got {tuple(valid_queries.shape)}")
    valid = valid_queries.to(clip_logits.device, torch.bool)
    clip_logits = torch.where(valid[:, None], clip_logits[:, :num_classes], torch.zeros((), dtype=clip_logits.dtype,
                                                                                          device=clip_logits.device))
    return geometric_ensemble(class_logits, clip_logits.to(class_logits.device), seen_classes, alpha, beta,
                              valid.to(class_logits.device))
