"""What a decode hook's result must agree with: its task's description and the input it decoded.

The result classes check themselves (shapes, dtypes, class indices), but not against the input: a mask left at the
model's stride-4 size is a valid ``Tracks`` and would be written as a smaller video than the input, silently, until
an overlay failed to blend it. These checks run right after the hook, where the fault can still be named.
"""

from __future__ import annotations

from typing import Any

from omg_core.task_info import TaskInfo


def decoded_result_problem(info: TaskInfo, pixels: Any, data: Any) -> str | None:
    """Why ``data`` (a ``TaskResult.data``) cannot be the decode of ``pixels`` for task ``info``, or None.

    Arguments:
      info: the task's description (its modality and result family).
      pixels: the request's input, 3 x H x W or T x 3 x H x W (T may be 0 in stream mode).
      data: the decoded payload; payloads of no result family (a plugin's own types) are not checked.
    """
    from omg_core.results import FAMILIES, VIDEO_RESULTS, pixel_field

    kind = type(data).__name__
    family = next((name for name, classes in FAMILIES.items() if isinstance(data, classes)), None)
    if family is None:
        return None
    if info.result_family is not None and family != info.result_family:
        return (f"it returned {kind} ({family!r} results) but TaskInfo.result_family is {info.result_family!r}; "
                "return that family's class or fix result_family")
    is_video = isinstance(data, VIDEO_RESULTS)
    if is_video != (info.modality == "video"):
        classes = [pair[1 if info.modality == "video" else 0].__name__ for pair in FAMILIES.values()]
        article = "a" if info.modality == "video" else "an"
        return (f"it returned {kind} for a {info.modality} task; return {article} {info.modality} class "
                f"({', '.join(classes)})")
    field = f"{kind}.{pixel_field(data)}"
    tensor = getattr(data, pixel_field(data))
    height, width = int(pixels.shape[-2]), int(pixels.shape[-1])
    if tuple(tensor.shape[-2:]) != (height, width):
        return (f"{field} is {int(tensor.shape[-2])}x{int(tensor.shape[-1])} per frame but the input is "
                f"{height}x{width}; results are at the input's size: resize the mask logits with "
                "omg_core.postprocess.masks_to_original_size(logits, outputs.padded_size, outputs.image_size, "
                "request.pixels.shape[-2:])")
    if is_video and pixels.dim() == 4 and pixels.shape[0] > 0 and int(tensor.shape[-3]) != int(pixels.shape[0]):
        return (f"{field} has {int(tensor.shape[-3])} frames but the video has {int(pixels.shape[0])}; give every "
                "frame a mask (empty where the object is absent)")
    return None
