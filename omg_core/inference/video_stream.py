"""Streaming video instance tracks: the offline ``video_instances`` computed a tube at a time with flat memory.

Offline, the tracks are chosen from the class logits averaged over the whole video, and only then are the chosen
slots' masks resized and scored. A stream cannot wait: every tube's frames are resized, scored and RLE-encoded for
EVERY query slot as the tube arrives (masks leave memory at once), per slot the mask scores are summed and the box
grown, and the choice is made at the end from the final average. The tracks equal the offline ones (same pairs,
same scores up to float rounding of the resize, same masks and boxes).

    state = StreamedInstances(is_thing, max_per_video=100, vocabulary=names)
    for tube in tubes:
        frames = state.add(running_class_logits, tube_mask_logits, resize, first_frame)   # TrackFrames
    selection = state.finish(final_class_logits)                                            # TrackSelection

Shapes: Q query slots, K classes (+1 void), t frames of a tube, h x w stride-4 masks, H x W the output size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from omg_core.inference.test_time_resize import MaskResize, resized_output, resized_query_chunks
from omg_core.inference.video import mask_and_score, select_track_pairs
from omg_core.postprocess import boxes_from_masks, encode_rles
from omg_core.results import TrackFrames, TrackSelection


class StreamedInstances:
    """Per-slot running mask-score sums and boxes of a streamed video.

    Arguments:
      is_thing: (K,) bool thing flags.
      max_per_video: pairs taken before stuff ones are dropped (the official max_per_image, 100).
      vocabulary: class names.
      chunk: query slots resized at a time.
    """

    def __init__(self, is_thing: torch.Tensor, max_per_video: int, vocabulary: Sequence[str], chunk: int = 16) -> None:
        self.is_thing = is_thing
        self.max_per_video = max_per_video
        self.vocabulary = tuple(vocabulary)
        self.chunk = chunk
        self.num_frames = 0
        self.size: tuple[int, int] | None = None
        self._score_sums: torch.Tensor | None = None  # Q float32
        self._boxes: torch.Tensor | None = None  # Q x 4, (inf, inf, -inf, -inf) until the slot has a pixel

    def add(self, class_logits: torch.Tensor, mask_logits: torch.Tensor, resize: MaskResize,
            first_frame: int) -> TrackFrames:
        """Score and encode one tube's frames for every slot.

        Arguments:
          class_logits: (Q, K + 1) the class logits averaged over the tubes so far (for the preview only).
          mask_logits: (Q, t, h, w) this tube's mask logits, permuted onto the track slots.
          resize: maps (N, h, w) logits to (N, H, W) at the output size.
          first_frame: the video frame index of the tube's first frame.
        Returns:
          TrackFrames with every slot's RLEs and mask scores for the t frames and a preview of the best tracks.
        """
        num_slots, num_frames = int(mask_logits.shape[0]), int(mask_logits.shape[1])
        if class_logits.shape[0] != num_slots:
            raise ValueError(f"class_logits has {class_logits.shape[0]} slots, mask_logits {num_slots}")
        if self._score_sums is None or self._boxes is None:
            self._score_sums = torch.zeros(num_slots)
            self._boxes = torch.tensor([[float("inf")] * 2 + [float("-inf")] * 2]).repeat(num_slots, 1)
        elif self._score_sums.shape[0] != num_slots:
            raise ValueError(f"every tube needs the first tube's {self._score_sums.shape[0]} slots, got {num_slots}")
        if self.size is None:
            self.size = resized_output(mask_logits[:, 0], resize)[:2]
        height, width = self.size
        rles: list[list[dict | None]] = [[None] * num_frames for _ in range(num_slots)]
        mask_scores = torch.zeros(num_slots, num_frames)
        for frame in range(num_frames):
            # bilinear upsampling mixes logits convexly: a slot with no positive logit at stride 4 has no pixel at
            # the output size, so it needs no resize (most slots, most frames)
            present = (mask_logits[:, frame].flatten(1) > 0).any(1).nonzero().flatten()
            for start, logits in resized_query_chunks(mask_logits[:, frame], present, resize, self.chunk):
                slots = present[start:start + len(logits)].cpu()
                binary, scores = mask_and_score(logits)
                binary = binary.cpu()
                mask_scores[slots, frame] = scores.float().cpu()
                boxes = boxes_from_masks(binary)
                has_pixels = binary.flatten(1).any(1)
                for row, slot in enumerate(slots.tolist()):
                    if has_pixels[row]:
                        self._boxes[slot, :2] = torch.minimum(self._boxes[slot, :2], boxes[row, :2])
                        self._boxes[slot, 2:] = torch.maximum(self._boxes[slot, 2:], boxes[row, 2:])
                for row, rle in enumerate(encode_rles(binary)):
                    if has_pixels[row]:
                        rles[int(slots[row])][frame] = rle
            # summed frame by frame in video order, as video_instances sums them
            self._score_sums += mask_scores[:, frame]
        self.num_frames += num_frames
        slots, labels, scores = self._scored_pairs(class_logits)
        return TrackFrames(first_frame=first_frame, rles=rles, mask_scores=mask_scores, size=(height, width),
                           preview_slots=slots, preview_labels=labels, preview_scores=scores,
                           vocabulary=self.vocabulary)

    def finish(self, class_logits: torch.Tensor) -> TrackSelection:
        """The tracks of the whole video from its final averaged class logits (Q, K + 1)."""
        if self._boxes is None or self.size is None:
            raise ValueError("no tube was added")
        slots, labels, scores = self._scored_pairs(class_logits)
        boxes = self._boxes[slots].clone()
        boxes[~torch.isfinite(boxes).all(1)] = 0  # a track without pixels gets the empty box, as boxes_from_masks
        return TrackSelection(slots=slots, scores=scores, labels=labels, boxes=boxes, vocabulary=self.vocabulary,
                              num_frames=self.num_frames, size=self.size)

    def _scored_pairs(self, class_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(slots, labels, scores) sorted by score as ``video_instances`` sorts its tracks."""
        assert self._score_sums is not None
        queries, labels, class_scores = select_track_pairs(class_logits.float().cpu(), self.is_thing,
                                                           self.max_per_video)
        scores = class_scores.cpu() * (self._score_sums / max(self.num_frames, 1))[queries.cpu()]
        order = torch.sort(scores, descending=True, stable=True).indices
        return queries.cpu()[order], labels.cpu()[order], scores[order].float()
