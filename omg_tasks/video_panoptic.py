"""The video-panoptic task (vps): panoptic segments with instance ids stable across frames."""

from omg_core.task_info import TaskInfo
from omg_tasks._placeholder import PlaceholderTask

plugin = PlaceholderTask(
    TaskInfo(
        name='video-panoptic',
        aliases=('vps',),
        summary='panoptic segments with instance ids stable across frames',
        modality='video',
        prompt_kinds=(),
        vocabulary='closed',
        metrics=('VPQ', 'STQ'),
        output_formats=('vipseg-png',),
        implemented=False,
    )
)
