"""omg-task-referring: referring segmentation (a phrase -> one mask) as an OMG task.

task.py holds the hooks; selection.py picks the query the phrase refers to; metric.py and evaluate.py score masks
(mIoU over samples, oIoU over all pixels).
"""
