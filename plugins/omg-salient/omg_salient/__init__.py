"""omg-salient: salient-object segmentation as an OMG task (see task.py, the whole plugin)."""
