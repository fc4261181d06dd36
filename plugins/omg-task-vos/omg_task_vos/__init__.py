"""omg-task-vos: semi-supervised video object segmentation (DAVIS) as an OMG task.

task.py holds the hooks; first_frame.py reads the given first-frame masks; tracking.py turns the tracked queries into
object tracks (OMG-Seg's proposal matching); evaluate.py scores DAVIS result folders for ``omg eval``.
"""
