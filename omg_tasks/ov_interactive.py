"""The ov-interactive task: a mask and an open-vocabulary class for every point or box prompt."""

from omg_core.task_info import TaskInfo
from omg_tasks._placeholder import PlaceholderTask

plugin = PlaceholderTask(
    TaskInfo(
        name='ov-interactive',
        aliases=(),
        summary='a mask and an open-vocabulary class for every point or box prompt',
        modality='image',
        prompt_kinds=('points', 'boxes'),
        vocabulary='open',
        metrics=('mIoU@1click', 'mIoU@box', 'class-accuracy'),
        output_formats=('coco-results-json',),
        implemented=False,
    )
)
