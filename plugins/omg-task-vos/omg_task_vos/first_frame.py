"""The objects a semi-supervised VOS run is given: the first frame's DAVIS annotation, found and read.

A DAVIS annotation is a palette (or grey) PNG whose pixel values are object ids: 0 background, 255 void, 1..254 the
objects. Where it comes from (``first_frame_masks`` option):

    a PNG file                 used as it is
    a folder                   <folder>/<first frame>.png, else <folder>/<video>/<first frame>.png (so one
                               Annotations/480p folder serves a run over every video of a DAVIS root)
    None (the default)         the DAVIS layout beside the frames: <root>/JPEGImages/<res>/<video>/ is the input,
                               <root>/Annotations/<res>/<video>/<first frame>.png the annotation

``<first frame>`` is the stem of the video's first frame file (``00000`` in DAVIS).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from omg_core.errors import InputError

#: Pixel value of void (unlabelled) pixels in DAVIS annotations: no object.
VOID_ID = 255
OPTION_HINT = "pass --option first_frame_masks=PATH (a DAVIS annotation PNG of the first frame, or its folder)"


@dataclass
class FirstFrameObjects:
    """The objects of the first frame.

    object_ids: (G,) the ids present, ascending (1..254).
    masks: (G, H, W) bool, one mask per id, disjoint.
    path: the annotation they were read from.
    """

    object_ids: tuple[int, ...]
    masks: torch.Tensor
    path: Path


def find_first_frame_annotation(
    first_frame_masks: str | None, source: Path | None, first_frame: str
) -> Path:
    """The annotation PNG of a video's first frame (see the module docstring for where it is looked for).

    Arguments:
      first_frame_masks: the option's value, or None for the DAVIS layout.
      source: the video's frame folder (or file), as the request names it; None for pixels given in memory.
      first_frame: stem of the first frame's file ("00000").
    Raises:
      InputError: naming every path tried and how to give the masks.
    """
    file_name = f"{first_frame}.png"
    if first_frame_masks is not None:
        given = Path(first_frame_masks).expanduser()
        if given.is_file():
            return given
        if given.is_dir():
            video = None if source is None else (source.stem if source.is_file() else source.name)
            candidates = [given / file_name] + ([given / video / file_name] if video is not None else [])
            for candidate in candidates:
                if candidate.is_file():
                    return candidate
            tried = " or ".join(str(candidate) for candidate in candidates)
            raise InputError(f"first_frame_masks={given}: no {tried}; give the annotation PNG of the first frame "
                             f"({file_name}) or the folder holding it")
        raise InputError(f"first_frame_masks={given}: no such file or folder; {OPTION_HINT}")
    if source is None:
        raise InputError(f"vos needs the objects of the first frame, and these pixels come with no file; {OPTION_HINT}")
    davis = _davis_annotation(source, file_name)
    if davis is None:
        raise InputError(f"{source} is not in the DAVIS layout (<root>/JPEGImages/<res>/<video>/), so no first-frame "
                         f"annotation was found beside it; {OPTION_HINT}")
    if not davis.is_file():
        raise InputError(f"{davis} is missing: vos needs the first frame's annotation there (the DAVIS layout), or "
                         f"{OPTION_HINT}")
    return davis


def _davis_annotation(source: Path, file_name: str) -> Path | None:
    """<root>/Annotations/<res>/<video>/<file_name> for a source <root>/JPEGImages/<res>/<video>; None otherwise."""
    parts = source.parts
    if len(parts) < 3 or parts[-3] != "JPEGImages":
        return None
    resolution, video = parts[-2], parts[-1]
    return source.parent.parent.parent / "Annotations" / resolution / video / file_name


def read_first_frame_objects(path: Path, frame_size: tuple[int, int]) -> FirstFrameObjects:
    """The objects of a DAVIS annotation PNG.

    Arguments:
      path: the PNG.
      frame_size: (H, W) of the video's frames, which the annotation must match.
    Raises:
      InputError: the file cannot be decoded, is not an id map (RGB), has another size, or holds no object.
    """
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, named
            mode = image.mode
            ids = np.array(image)  # palette PNGs give their indices: the object ids
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InputError(f"{path}: cannot read this annotation PNG ({error}); extract the DAVIS Annotations again "
                         "or save it as a palette PNG of object ids") from error
    if mode not in ("P", "L") or ids.ndim != 2:
        raise InputError(f"{path}: a {mode} image is not an object-id map; save the first-frame masks as a palette "
                         "(or grey) PNG whose values are object ids (0 background, 1.. objects), as DAVIS does")
    if tuple(ids.shape) != tuple(frame_size):
        raise InputError(f"{path} is {ids.shape[1]}x{ids.shape[0]} but the video's frames are "
                         f"{frame_size[1]}x{frame_size[0]}; give the annotation of this video at its frames' size")
    object_ids = tuple(int(value) for value in np.unique(ids) if value not in (0, VOID_ID))
    if not object_ids:
        raise InputError(f"{path} holds no object (only background 0 and void {VOID_ID}); semi-supervised VOS "
                         "tracks the objects marked in the first frame")
    id_map = torch.from_numpy(ids.astype(np.int64))
    masks = id_map[None] == torch.tensor(object_ids)[:, None, None]
    return FirstFrameObjects(object_ids=object_ids, masks=masks, path=path)
