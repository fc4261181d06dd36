"""A registered task whose query encoding and output decoding are not written yet.

It describes itself truthfully (``implemented=False``) so ``omg tasks`` can list it, and every hook that would
produce results refuses with :class:`TaskNotImplementedError` instead of returning something that looks like work.
Its metric and file evaluators, which do not depend on the model, are real.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from omg_core.errors import TaskNotImplementedError
from omg_core.file_evaluators import FileEvaluator
from omg_core.hookspecs import hookimpl
from omg_core.task_info import TaskInfo
from omg_tasks._metric_binding import MetricFactory


class PlaceholderTask:
    """Task plugin object for a task that is registered but not implemented."""

    def __init__(
        self,
        info: TaskInfo,
        metric_factory: MetricFactory | None = None,
        file_evaluators: Sequence[FileEvaluator] = (),
    ) -> None:
        if info.implemented:
            raise ValueError(f"PlaceholderTask is for unimplemented tasks; {info.name!r} says implemented=True")
        self.info = info
        self.metric_factory = metric_factory
        self.file_evaluators = list(file_evaluators)

    def _refuse(self, what: str) -> NoReturn:
        raise TaskNotImplementedError(
            f"task {self.info.name!r} is registered but not implemented yet: {what} is still missing, "
            "so it produces no results. Nothing was written."
        )

    @hookimpl
    def omg_task_info(self) -> TaskInfo:
        return self.info

    @hookimpl
    def omg_encode_queries(self, request: Any) -> NoReturn:
        self._refuse("turning inputs into decoder queries")

    @hookimpl
    def omg_decode_outputs(self, request: Any, plan: Any, outputs: Any) -> NoReturn:
        self._refuse("decoding the model's outputs")

    @hookimpl
    def omg_create_metric(self, options: dict[str, Any]) -> Any:
        if self.metric_factory is None:
            self._refuse("binding its metric")
        return self.metric_factory(options)

    @hookimpl
    def omg_file_evaluators(self) -> list[FileEvaluator]:
        return self.file_evaluators
