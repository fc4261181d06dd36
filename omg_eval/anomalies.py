"""Inputs the official evaluators score although they are odd, counted per kind: one warning line each, or an error.

A user's existing submission must score here as the official tool scores it, so a file evaluator that meets such an
input (a ground-truth PNG id missing from ``segments_info``, a result for a category the ground truth lacks, a track
longer than its video ...) does what the official tool does and reports it with :func:`note_anomaly`. In strict mode
(``omg eval --strict``) the first one raises :class:`StrictAnomalyError` instead.

Reports go to the innermost :func:`collect_anomalies` block. A file evaluator called from Python without one gets
its own (see :func:`reports_anomalies`), which turns each kind into one ``EvaluationAnomalyWarning`` when it ends, so
nothing is dropped silently either way.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from omg_common.errors import InputError


class EvaluationAnomalyWarning(UserWarning):
    """An input the official evaluator accepts and scores in its own (documented) way; see the message."""


class StrictAnomalyError(InputError):
    """An anomaly met in strict mode; the message names the input, what is odd about it and the official handling."""


@dataclass
class Anomaly:
    """One kind of anomaly and how often it was met.

    what: the odd input as a plural noun phrase ("ground-truth PNG ids missing from segments_info").
    handling: what the official tool does with it, and so what was done here ("ignored, as panopticapi does").
    example: the first occurrence, precise enough to find it in the files ("image 17, segment id 5").
    count: how many were met.
    """

    what: str
    handling: str
    example: str
    count: int = 0

    def line(self, evaluator: str) -> str:
        prefix = f"{evaluator}: " if evaluator else ""
        return (
            f"{prefix}{self.count} {self.what} (first: {self.example}); {self.handling}; "
            "`--strict` refuses them"
        )


class AnomalyLog:
    """The anomalies of one evaluation, by kind, in the order first met.

    strict: raise :class:`StrictAnomalyError` on the first anomaly instead of counting it.
    """

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        self.kinds: dict[str, Anomaly] = {}

    def note(self, kind: str, *, what: str, handling: str, example: str, count: int = 1) -> None:
        if count <= 0:
            return
        if self.strict:
            raise StrictAnomalyError(
                f"{example}: {what} (--strict); the official evaluator accepts this input and it is {handling}; "
                "fix the input, or run without --strict to score it as the official tool does"
            )
        if kind not in self.kinds:
            self.kinds[kind] = Anomaly(what, handling, example)
        self.kinds[kind].count += count

    def merge(self, other: dict[str, Anomaly]) -> None:
        """Adds counts from another process's log (first examples from this one win)."""
        for kind, anomaly in other.items():
            if kind in self.kinds:
                self.kinds[kind].count += anomaly.count
            else:
                self.kinds[kind] = Anomaly(anomaly.what, anomaly.handling, anomaly.example, anomaly.count)

    def lines(self, evaluator: str = "") -> list[str]:
        """One line per kind, for the user."""
        return [anomaly.line(evaluator) for anomaly in self.kinds.values()]

    def counts(self) -> dict[str, int]:
        return {kind: anomaly.count for kind, anomaly in self.kinds.items()}


_active: ContextVar[AnomalyLog | None] = ContextVar("omg_eval_anomalies", default=None)


@contextmanager
def collect_anomalies(strict: bool = False) -> Iterator[AnomalyLog]:
    """Route every :func:`note_anomaly` inside the block to a new log, which the block's caller reports."""
    log = AnomalyLog(strict)
    token = _active.set(log)
    try:
        yield log
    finally:
        _active.reset(token)


def note_anomaly(kind: str, *, what: str, handling: str, example: str, count: int = 1) -> None:
    """Report ``count`` inputs of one kind to the active log (see :class:`Anomaly` for the arguments).

    Raises:
      StrictAnomalyError: in strict mode.
      RuntimeError: outside any :func:`collect_anomalies` block (a file evaluator must be wrapped with
        :func:`reports_anomalies`), so that no anomaly can go unreported.
    """
    log = _active.get()
    if log is None:
        raise RuntimeError(f"anomaly {kind!r} reported outside collect_anomalies(); wrap the evaluator")
    log.note(kind, what=what, handling=handling, example=example, count=count)


Evaluator = TypeVar("Evaluator", bound=Callable[..., Any])


def reports_anomalies(evaluator: Evaluator) -> Evaluator:
    """Decorates a file evaluator: called inside a :func:`collect_anomalies` block it reports there; called on its
    own, each kind of anomaly becomes one :class:`EvaluationAnomalyWarning` when it returns."""

    @functools.wraps(evaluator)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _active.get() is not None:
            return evaluator(*args, **kwargs)
        with collect_anomalies() as log:
            result = evaluator(*args, **kwargs)
        for line in log.lines(evaluator.__name__):
            warnings.warn(line, EvaluationAnomalyWarning, stacklevel=2)
        return result

    return wrapper  # type: ignore[return-value]
