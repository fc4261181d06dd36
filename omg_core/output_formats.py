"""Output formats: the files ``omg run --format`` writes, contributed by any plugin for the results it understands.

Writing is a cross-cutting concern: a plugin that knows how to write, say, panoptic maps as COCO panoptic files
serves every task whose results are panoptic maps, built-in or third-party, without those tasks knowing it. A plugin
declares its formats with the ``omg_output_formats`` hook and opens a writer for them in its ``omg_open_writer`` hook; the first
plugin whose writer answers (not None) wins, so ``tryfirst=True`` on a hookimpl overrides a built-in writer. Several
plugins may declare one format name (each for its own tasks or families): the registry joins their scopes.
"""

from __future__ import annotations

from dataclasses import dataclass

from omg_core.task_info import TaskInfo


@dataclass(frozen=True)
class OutputFormat:
    """One file format results can be written in.

    name: what ``omg run --format`` and ``TaskInfo.output_formats`` call it ("coco-panoptic", "semantic-png").
    summary: what gets written, for ``omg tasks --json``.
    families: the result families (``omg_core.results``) it writes: every task producing one of them can use it.
    tasks: task names it writes whatever their family (a task's own format for results of no family).
    """

    name: str
    summary: str
    families: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()

    def merged(self, other: OutputFormat) -> OutputFormat:
        """One format declared by two plugins (each writing ``mask-png`` for its own task, say): their scopes joined."""
        return OutputFormat(
            self.name,
            self.summary,
            tuple(dict.fromkeys((*self.families, *other.families))),
            tuple(dict.fromkeys((*self.tasks, *other.tasks))),
        )

    def writes_for(self, task: TaskInfo) -> bool:
        """Whether this format can hold ``task``'s results."""
        return task.name in self.tasks or (task.result_family is not None and task.result_family in self.families)
