"""The ten built-in OMG tasks, each a plugin module discovered through the ``omg.tasks`` entry points."""
