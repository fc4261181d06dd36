"""First-frame objects carried through a video by the model's query tracks, as OMG-Seg evaluates DAVIS.

OMG-Seg (``Mask2formerVideoMinVIS.predict`` with ``proposal_on``, ``OMGFusionHead.proposal_postprocess``) does not
feed the first-frame masks to the model. It runs the video as video instance segmentation (MinVIS: a query slot is one
track), then:

    1. proposals: the ``num_proposals`` (25) queries with the highest IoU score (sigmoid of the IoU head, averaged over
       tubes), their frame-0 masks at sigmoid > 0.5, in ASCENDING score order (the official reverses its top-k);
    2. matching: Hungarian assignment maximising the IoU between the frame-0 proposals and the first-frame
       ground-truth masks (``omg_core.inference.video.associate_proposals``); each matched proposal takes its object's
       id;
    3. carrying: in every frame, each matched query's mask is painted with its object's id, proposals in index order,
       so where masks overlap the later one (the higher IoU score) wins.

Painting makes the objects' masks disjoint, as a DAVIS id map needs; this module returns them as one (T, H, W) mask
per object so that any writer can paint them in any order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from omg_core.inference.prompt_masks import proposal_inference
from omg_core.inference.test_time_resize import MaskResize
from omg_core.inference.video import associate_proposals

#: Frames of one query resized at a time (a 480p frame of logits is 1.6 MB; 80 frames at once would be 130 MB).
FRAME_CHUNK = 16


@dataclass
class ObjectTracks:
    """The first-frame objects followed through the video, in the order the objects were given.

    masks: (G, T, H, W) bool, disjoint in every frame; all False for an object no proposal was matched to.
    scores: (G,) float32, the matched query's IoU score (sigmoid of the IoU head); 0 when unmatched.
    query_indices: (G,) int64 the query (track slot) carrying each object; -1 when unmatched.
    """

    masks: torch.Tensor
    scores: torch.Tensor
    query_indices: torch.Tensor


def track_first_frame_objects(
    iou_logits: torch.Tensor,
    mask_logits: torch.Tensor,
    object_masks: torch.Tensor,
    resize: MaskResize,
    num_proposals: int = 25,
) -> ObjectTracks:
    """Follow the first-frame objects through a video with the model's query tracks (see the module docstring).

    Arguments:
      iou_logits: (Q, 1) IoU-head logits of the query tracks (averaged over tubes).
      mask_logits: (Q, T, h, w) stride-4 mask logits of the query tracks.
      object_masks: (G, H, W) bool first-frame masks of the objects, at the output size.
      resize: maps (N, h, w) logits to (N, H, W) logits at the output size.
      num_proposals: proposals taken by IoU score before matching (25 in OMG-Seg's DAVIS config).
    Returns:
      ObjectTracks, one per object, in the order of ``object_masks``.
    """
    if mask_logits.ndim != 4 or iou_logits.shape != (mask_logits.shape[0], 1):
        raise ValueError(f"expected iou_logits (Q, 1) and mask_logits (Q, T, h, w), got {tuple(iou_logits.shape)} "
                         f"and {tuple(mask_logits.shape)}")
    num_objects, num_frames = int(object_masks.shape[0]), int(mask_logits.shape[1])
    height, width = int(object_masks.shape[-2]), int(object_masks.shape[-1])
    # The IoU scores are the same for every frame (averaged over the video), so frame 0's top-k is every frame's.
    proposals = proposal_inference(iou_logits, mask_logits[:, 0], resize, num_proposals)  # descending scores
    if tuple(proposals.masks.shape[-2:]) != (height, width):
        raise ValueError(f"resize gives {tuple(proposals.masks.shape[-2:])} masks but the objects are "
                         f"{(height, width)}")
    ascending = torch.arange(len(proposals.query_indices) - 1, -1, -1)  # the official proposal order
    # {proposal index in the official order: object index}, Hungarian on frame-0 IoU (pairs of IoU 0 included, as
    # officially: every object is matched while there are proposals)
    matches = associate_proposals(proposals.masks[ascending], object_masks.bool())

    # object index + 1 per pixel, 0 = none; int16 keeps a long 480p video's maps small (int64 would be 4x)
    id_maps = torch.zeros((num_frames, height, width), dtype=torch.int16)
    scores = torch.zeros(num_objects, dtype=torch.float32)
    query_indices = torch.full((num_objects,), -1, dtype=torch.int64)
    for proposal, object_index in sorted(matches.items()):  # official order: a later (higher-scored) one wins
        position = int(ascending[proposal])
        query = int(proposals.query_indices[position])
        scores[object_index] = proposals.scores[position].float()
        query_indices[object_index] = query
        for start in range(0, num_frames, FRAME_CHUNK):
            frames = resize(mask_logits[query, start : start + FRAME_CHUNK]).float()
            id_maps[start : start + len(frames)][frames.sigmoid() > 0.5] = object_index + 1
    masks = id_maps[None] == torch.arange(1, num_objects + 1, dtype=torch.int16)[:, None, None, None]
    return ObjectTracks(masks=masks, scores=scores, query_indices=query_indices)
