"""Pairing a run's predictions with the ground-truth images by input file name, the one thing both sides know.

``omg run`` numbers the images it writes by their position in its input (0, 1, ...): it cannot know a data set's ids
(COCO's, or the 1..N of ``omg data synth``). What it does know is the file each result came from, and it writes that
name beside every result (``file_name``). So the image evaluators pair a prediction that names its input file with the
ground-truth image of that name, compared without directories (``val2017/000139.jpg`` is ``000139.jpg``), and score it
under the ground truth's id; the prediction's own id is then only the run's bookkeeping and is not consulted, even where
it happens to be a ground-truth id of another image. Predictions that carry no file names (the official tools' result
files: detectron2's ``coco_instances_results.json``, a panopticapi prediction JSON without ``images``) are paired by
id, exactly as pycocotools and panopticapi pair them.

A name the ground truth lacks is an error naming both; so is a name that several ground-truth images share (only
directories tell them apart, and a run's file name has none), since either would score images against the wrong
ground truth rather than fail.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any


def base_name(file_name: Any) -> str:
    """A file name without its directories (``val2017/000139.jpg`` -> ``000139.jpg``), as the two sides compare."""
    return Path(str(file_name)).name


class GroundTruthImageNames:
    """The ground truth's image ids by file name without directories, to pair a run's predictions with them.

    Arguments:
      images: the ground truth's ``images`` list (``{"id", "file_name", ...}``); images without a ``file_name``
        cannot be paired by name and are only counted, for the message when a name is not found.
      ground_truth: the ground-truth file, named in the errors.
    """

    def __init__(self, images: Any, ground_truth: str | Path) -> None:
        self.ground_truth = str(ground_truth)
        self._ids: dict[str, list[Any]] = defaultdict(list)
        self.unnamed = 0
        if not isinstance(images, list):
            raise ValueError(
                f"ground truth {self.ground_truth} has no 'images' list; predictions that name their input files "
                "(omg run's) are paired with the ground-truth images by images[].file_name"
            )
        for image in images:
            if not isinstance(image, dict) or "id" not in image:
                raise ValueError(f"ground truth {self.ground_truth}: image record {image!r:.80} has no 'id'")
            if image.get("file_name"):
                self._ids[base_name(image["file_name"])].append(image["id"])
            else:
                self.unnamed += 1

    def id_of(self, file_name: Any, where: str) -> Any:
        """The ground-truth id of the image named ``file_name`` (compared without directories).

        Arguments:
          file_name: the input file a prediction names.
          where: the prediction, for the messages ("result 3 of runs/results.json").

        Raises:
          ValueError: no ground-truth image of that name, or several (naming the ground-truth file and the fix).
        """
        name = base_name(file_name)
        ids = self._ids.get(name)
        if not ids:
            unnamed = (f"; {self.unnamed} of its images have no file_name and cannot be paired by name"
                       if self.unnamed else "")
            raise ValueError(
                f"{where} is for image {name!r}, which ground truth {self.ground_truth} does not hold (no "
                f"images[].file_name is {name!r}, compared without directories{unnamed}); evaluate against the "
                "ground truth of the images the run was given, or leave that image out of the run"
            )
        if len(ids) > 1:
            raise ValueError(
                f"{where} is for image {name!r}, but {len(ids)} images of ground truth {self.ground_truth} have that "
                f"file name (ids {', '.join(repr(image_id) for image_id in ids[:5])}), told apart only by their "
                "directories; the run names its images by file name alone, so they cannot be paired: give those "
                "ground-truth images distinct file names"
            )
        return ids[0]
