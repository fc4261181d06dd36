"""What a decode hook's result must agree with: its task's description and the input it decoded.

The result classes check themselves (shapes, dtypes, class indices), but not against the input: a mask left at the
model's stride-4 size is a valid ``Tracks`` and would be written as a smaller video than the input, silently, until
an overlay failed to blend it. These checks run right after the hook, where the fault can still be named.
"""

from __future__ import annotations

from typing import Any

from omg_core.task_info import TaskInfo

#: Result classes of videos (a time axis before H x W); the others are images.
_VIDEO_CLASSES = ("SemanticVideo", "PanopticVideo", "Tracks", "PromptTracks")
#: The field holding each class's per-pixel tensor, whose last two dims are the input's H x W.
_PIXEL_FIELDS = {"SemanticMap": "labels", "SemanticVideo": "labels", "PanopticMap": "segment_ids",
                 "PanopticVideo": "segment_ids", "Instances": "masks", "Tracks": "masks", "PromptMasks": "masks",
                 "PromptTracks": "masks"}


def decoded_result_problem(info: TaskInfo, pixels: Any, data: Any) -> str | None:
    """Why ``data`` (a ``TaskResult.data``) cannot be the decode of ``pixels`` for task ``info``, or None.

    Arguments:
      info: the task's description (its modality and result family).
      pixels: the request's input, 3 x H x W or T x 3 x H x W (T may be 0 in stream mode).
      data: the decoded payload; payloads of no result family (a plugin's own types) are not checked.
    """
    kind = type(data).__name__
    family = getattr(data, "family", None)
    if kind not in _PIXEL_FIELDS or family is None:
        return None
    if info.result_family is not None and family != info.result_family:
        return (f"it returned {kind} ({family!r} results) but TaskInfo.result_family is {info.result_family!r}; "
                "return that family's class or fix result_family")
    is_video = kind in _VIDEO_CLASSES
    if is_video != (info.modality == "video"):
        wanted = "a video class (SemanticVideo, PanopticVideo, Tracks, PromptTracks)" if info.modality == "video" \
            else "an image class (SemanticMap, PanopticMap, Instances, PromptMasks)"
        return f"it returned {kind} for a {info.modality} task; return {wanted}"
    tensor = getattr(data, _PIXEL_FIELDS[kind])
    height, width = int(pixels.shape[-2]), int(pixels.shape[-1])
    if tuple(tensor.shape[-2:]) != (height, width):
        return (f"{kind}.{_PIXEL_FIELDS[kind]} is {int(tensor.shape[-2])}x{int(tensor.shape[-1])} per frame but "
                f"the input is {height}x{width}; results are at the input's size: resize the mask logits with "
                "omg_core.postprocess.masks_to_original_size(logits, outputs.padded_size, outputs.image_size, "
                "request.pixels.shape[-2:])")
    if is_video and pixels.dim() == 4 and pixels.shape[0] > 0 and int(tensor.shape[-3]) != int(pixels.shape[0]):
        return (f"{kind}.{_PIXEL_FIELDS[kind]} has {int(tensor.shape[-3])} frames but the video has "
                f"{int(pixels.shape[0])}; give every frame a mask (empty where the object is absent)")
    return None
