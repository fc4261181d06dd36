"""Finding a named headline figure in a metric's output, as ``TaskInfo.metrics`` names it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def headline_figure(figures: Mapping[str, Any], name: str) -> Any:
    """The value of figure ``name`` in ``figures``: a top-level key in any case (``mIoU``, ``VPQ``), or panopticapi's
    nested ``All`` group (``PQ`` -> ``figures["All"]["pq"]``).

    Raises:
      KeyError: naming the figure and the keys there are.
    """
    by_lower = {str(key).lower(): value for key, value in figures.items()}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    group = figures.get("All")
    if isinstance(group, Mapping) and name.lower() in group:
        return group[name.lower()]
    raise KeyError(f"no figure {name!r} among {', '.join(map(str, figures)) or 'no figures'}")
