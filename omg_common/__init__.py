"""The bottom layer every OMG package may import: error classes, building fused kernels, lazy package exports.

The packages import in one direction only (``tests/test_import_layers.py`` enforces it): ``omg_common`` <- ``omg_data``
<- ``omg_eval`` <- ``omg_core`` (model, pipeline, plugin API) <- ``omg_tasks`` <- the command-line modules. Nothing
here imports another OMG package.
"""
