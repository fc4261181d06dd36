"""Stream decoders of the built-in video tasks (``omg run --video-mode stream``): a video decoded tube by tube.

Semantic and panoptic videos fuse each tube's frames as soon as it arrives, with the class logits averaged over the
tubes so far (offline fuses every frame with the whole video's average, so early frames may differ). Instance tracks
are chosen at the end from the whole video's average, as offline, so they equal the offline tracks; meanwhile every
slot's masks are RLE-encoded and handed to the writer tube by tube (``omg_core.inference.video_stream``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omg_core.task_io import QueryPlan, TaskRequest, TaskResult, VideoChunk, VideoStreamDecoder
from omg_tasks._builtin import Decoder, class_names, thing_flags, to_input_size

if TYPE_CHECKING:
    from omg_core.inference.video_stream import StreamedInstances


class FramewiseStream(VideoStreamDecoder):
    """Decodes each tube with the task's own video decoder (per-frame fusion needs nothing from other tubes)."""

    def __init__(self, task: str, request: TaskRequest, plan: QueryPlan, decode: Decoder) -> None:
        self.task, self.request, self.plan, self.decode = task, request, plan, decode

    def decode_chunk(self, chunk: VideoChunk) -> TaskResult:
        data = self.decode(self.request, self.plan, chunk.outputs)
        return TaskResult(task=self.task, source=self.request.source, data=data, frame_names=chunk.frame_names)


class InstanceStream(VideoStreamDecoder):
    """Video instance tracks with flat memory: every slot's masks encoded per tube, the tracks chosen at the end."""

    def __init__(self, task: str, request: TaskRequest, plan: QueryPlan, max_per_video: int) -> None:
        self.task, self.request, self.plan, self.max_per_video = task, request, plan, max_per_video
        self._state: StreamedInstances | None = None
        self._final_logits = None

    def decode_chunk(self, chunk: VideoChunk) -> TaskResult:
        from omg_core.inference.video_stream import StreamedInstances

        outputs = chunk.outputs
        if self._state is None:
            self._state = StreamedInstances(thing_flags(self.plan, outputs), self.max_per_video,
                                            class_names(self.request, self.plan, outputs))
        class_logits = outputs.class_logits[0].float().cpu()
        self._final_logits = class_logits  # the average over the whole video once the last tube is in
        frames = self._state.add(class_logits, outputs.mask_logits[0], to_input_size(self.request, outputs),
                                 chunk.first_frame)
        return TaskResult(task=self.task, source=self.request.source, data=frames, frame_names=chunk.frame_names)

    def finish(self) -> TaskResult | None:
        if self._state is None or self._final_logits is None:
            raise ValueError("the stream ended before its first tube")
        selection = self._state.finish(self._final_logits)
        return TaskResult(task=self.task, source=self.request.source, data=selection)
