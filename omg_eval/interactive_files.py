"""Interactive figures from a JSON of per-object results (what a click-simulation run writes)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omg_data.json_io import read_json
from omg_eval.interactive import InteractiveSegmentation
from omg_eval.sharding import items_for_this_rank


def evaluate_interactive_file(
    results_json: str | Path, *, max_clicks: int = 20, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """mIoU@1click, mIoU@box and NoC@85/90 of recorded interactive results.

    Arguments:
      results_json: ``{"objects": [{"click_ious": [IoU after click 1, 2, ...], "box_iou": IoU}, ...]}``; either key
        may be missing for an object.
      max_clicks: click budget of NoC.
      progress: called with the number of objects just added.

    Returns:
      ``InteractiveSegmentation.compute()`` plus ``num_objects``.
    """
    path = Path(results_json)
    data = read_json(path, "the interactive results JSON")
    if not isinstance(data, dict) or not isinstance(data.get("objects"), list):
        raise ValueError(f"{path} must hold {{'objects': [{{'click_ious': [...], 'box_iou': ...}}, ...]}}")
    metric = InteractiveSegmentation(max_clicks=max_clicks)
    for index, entry in items_for_this_rank(list(enumerate(data["objects"]))):
        if not isinstance(entry, dict) or not ({"click_ious", "box_iou"} & entry.keys()):
            raise ValueError(f"{path}: object {index} has neither 'click_ious' nor 'box_iou'")
        metric.update(
            click_ious=[entry["click_ious"]] if "click_ious" in entry else None,
            box_ious=[entry["box_iou"]] if "box_iou" in entry else None,
        )
        if progress is not None:
            progress(1)
    figures = metric.compute()
    figures["num_objects"] = len(data["objects"])
    return figures
