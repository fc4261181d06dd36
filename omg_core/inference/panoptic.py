"""OMG-Seg's panoptic fusion (``OMGFusionHead.panoptic_postprocess``): per-query classes and masks to one map.

    scores, labels = softmax(class_logits).max(-1)          # over K classes + void
    keep = label != void and score > object_mask_thr
    each pixel goes to the kept query with the largest score * sigmoid(mask)
    for each kept query, in query order:
        mask_area = its pixels;  original_area = pixels with sigmoid >= 0.5
        painted = its pixels (& sigmoid >= 0.5 with filter_low_score)   # mask_area is taken BEFORE this AND
        skip unless mask_area > 0, original_area > 0 and mask_area / original_area >= iou_thr
        stuff: merges with the earlier segment of its class; thing: a new segment

Only the kept queries are resized to the output size, a chunk at a time: the argmax is carried from chunk to chunk,
so the map equals the official one that resizes all queries first (up to the last bit of the CPU resize, see
``resized_query_chunks``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from omg_core.inference.test_time_resize import (
    MaskResize,
    check_query_logits,
    resized_output,
    resized_query_chunks,
)
from omg_core.postprocess import keep_queries, query_classes
from omg_core.results import Segment

#: mmdet's INSTANCE_OFFSET: the official map stores a thing as class + instance_id * INSTANCE_OFFSET.
INSTANCE_OFFSET = 1000


@dataclass(frozen=True)
class PanopticSettings:
    """``test_cfg`` of the fusion head; the defaults are OMG-Seg's ConvNeXt-L evaluation values
    (seg/configs/m2ov_val/models/m2_convl_300q.py; the eval_m2_convl_300q_ov_* configs keep them).

    object_mask_thr: a query is kept when its best class is not void and scores strictly above this.
    iou_thr: a kept query paints only if (its argmax pixels) / (its sigmoid >= 0.5 pixels) >= iou_thr.
    filter_low_score: paint only the argmax pixels where the query's own sigmoid is >= 0.5.
    """

    object_mask_thr: float = 0.0
    iou_thr: float = 0.8
    filter_low_score: bool = True


@dataclass
class PanopticFusion:
    """A panoptic map and where each of its segments came from.

    segment_ids: (H, W) int64, 1, 2, ... in the order segments were created; 0 = void (no query painted it).
    segments: one Segment per id (id i is segments[i - 1]), each with at least one pixel; score = the class score
      of the first query painted into it.
    segment_queries: the query indices (into Q) that painted each segment, in painting order; a stuff segment may
      merge several queries of its class, a thing segment has one.
    instance_numbers: the official ``instance_id`` of each segment (0 for stuff). The official code numbers every
      thing query that passes the area test, also one whose painted pixels all fall below sigmoid 0.5; such a
      query paints nothing and gets no Segment here, but still uses up a number, so numbers may skip.
    """

    segment_ids: torch.Tensor
    segments: list[Segment]
    segment_queries: list[tuple[int, ...]]
    instance_numbers: list[int]


def panoptic_fusion(
    class_logits: torch.Tensor,
    mask_logits: torch.Tensor,
    resize: MaskResize,
    is_thing: torch.Tensor,
    settings: PanopticSettings = PanopticSettings(),
    chunk: int = 16,
) -> PanopticFusion:
    """OMG-Seg's panoptic fusion of one image.

    Thing-ness comes from ``is_thing`` (the official code tests ``label < num_things_classes``, the same for
    vocabularies that list things first, as COCO's does).

    Arguments:
      class_logits: (Q, K + 1) logits, last column void (may be on another device than the masks, e.g. the CPU).
      mask_logits: (Q, h, w) stride-4 logits of the padded input.
      resize: maps (N, h, w) logits to (N, H, W) logits at the output size.
      is_thing: (K,) bool.
      settings: the fusion head's test settings.
      chunk: queries resized at a time.
    Returns:
      PanopticFusion at the output size (H, W), its map where ``resize`` puts the logits.
    """
    check_query_logits(class_logits, mask_logits, is_thing)
    num_classes = is_thing.numel()
    scores, labels = query_classes(class_logits.float())
    kept = keep_queries(scores, labels, num_classes, settings.object_mask_thr).nonzero().flatten()
    height, width, device = resized_output(mask_logits, resize)
    num_kept = int(kept.numel())
    kept_scores = scores[kept].to(device)
    if num_kept == 0:
        empty = torch.zeros((height, width), dtype=torch.int64, device=device)
        return PanopticFusion(segment_ids=empty, segments=[], segment_queries=[], instance_numbers=[])

    # Per pixel: the winning kept query (position in `kept`) and whether its own sigmoid is >= 0.5.
    winner = torch.zeros((height, width), dtype=torch.int64, device=device)
    winner_confident = torch.zeros((height, width), dtype=torch.bool, device=device)
    best = torch.full((height, width), -1.0, device=device)  # every probability is >= 0, so chunk 0 always wins
    original_area = torch.zeros(num_kept, dtype=torch.int64, device=device)
    for start, logits in resized_query_chunks(mask_logits, kept, resize, chunk):
        sigmoid = logits.sigmoid()
        confident = sigmoid >= 0.5
        original_area[start : start + len(logits)] = confident.flatten(1).sum(1)
        probabilities = kept_scores[start : start + len(logits)].view(-1, 1, 1) * sigmoid
        chunk_winner = probabilities.argmax(0, keepdim=True)  # first maximum on ties, as one argmax over all
        chunk_best = probabilities.gather(0, chunk_winner)[0]
        # strictly greater: on a tie the earlier query (an earlier chunk) keeps the pixel, as argmax would
        better = chunk_best > best
        best = torch.where(better, chunk_best, best)
        winner = torch.where(better, chunk_winner[0] + start, winner)
        winner_confident = torch.where(better, confident.gather(0, chunk_winner)[0], winner_confident)

    # `num_kept` marks pixels their winner may not paint (its sigmoid is below 0.5, under filter_low_score).
    painted_by = torch.where(winner_confident, winner, num_kept) if settings.filter_low_score else winner
    mask_area = torch.bincount(winner.flatten(), minlength=num_kept).tolist()
    painted_area = torch.bincount(painted_by.flatten(), minlength=num_kept + 1)[:num_kept].tolist()

    segments: list[Segment] = []
    segment_queries: list[list[int]] = []
    instance_numbers: list[int] = []
    segment_of_kept = [0] * (num_kept + 1)  # segment id painted by each kept query; the last entry: unpainted
    stuff_segment: dict[int, int] = {}  # stuff class -> its segment id
    next_instance = 1
    for position, (query, area, original) in enumerate(zip(kept.tolist(), mask_area, original_area.tolist())):
        if area == 0 or original == 0 or area / original < settings.iou_thr:
            continue
        label = int(labels[query])
        if bool(is_thing[label]):
            instance_number = next_instance
            next_instance += 1  # counted even when nothing gets painted, as the official code does
            if painted_area[position] == 0:
                continue
            segments.append(Segment(len(segments) + 1, label, float(scores[query]), True))
            segment_queries.append([query])
            instance_numbers.append(instance_number)
            segment_of_kept[position] = len(segments)
        elif painted_area[position] > 0:
            if label not in stuff_segment:
                segments.append(Segment(len(segments) + 1, label, float(scores[query]), False))
                segment_queries.append([])
                instance_numbers.append(0)
                stuff_segment[label] = len(segments)
            segment_queries[stuff_segment[label] - 1].append(query)
            segment_of_kept[position] = stuff_segment[label]

    lookup = torch.tensor(segment_of_kept, dtype=torch.int64, device=device)
    return PanopticFusion(
        segment_ids=lookup[painted_by],
        segments=segments,
        segment_queries=[tuple(queries) for queries in segment_queries],
        instance_numbers=instance_numbers,
    )


def to_official_encoding(fusion: PanopticFusion, num_classes: int) -> torch.Tensor:
    """The map as ``panoptic_postprocess`` returns it: stuff pixels hold their class, thing pixels class +
    instance_id * INSTANCE_OFFSET (instance ids 1, 2, ... counted as the official code counts them), unpainted
    pixels ``num_classes``.

    Returns:
      (H, W) int32, the official dtype.
    """
    values = [num_classes]
    for segment, number in zip(fusion.segments, fusion.instance_numbers):
        values.append(segment.label + number * INSTANCE_OFFSET if segment.is_thing else segment.label)
    lookup = torch.tensor(values, dtype=torch.int32, device=fusion.segment_ids.device)
    return lookup[fusion.segment_ids]
