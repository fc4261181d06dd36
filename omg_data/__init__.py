"""Dataset readers and writers for every task format, augmentation, and the procedural shapes world.

Everything a user needs is importable from here; modules load on first use so that `import omg_data`
stays cheap (pycocotools, torchvision and PyAV are imported only by the readers that need them).

    from omg_data import read_coco_panoptic, LargeScaleJitter, FrameStream
    from omg_data.synthetic import ShapesWorld
"""

from __future__ import annotations

from omg_common.lazy_exports import lazy_exports

_EXPORTS: dict[str, str] = {
    # sample model and errors
    "Sample": "omg_data.sample",
    "Category": "omg_data.sample",
    "CategoryList": "omg_data.sample",
    "SamplePrompts": "omg_data.sample",
    "DataError": "omg_data.errors",
    # readers
    "read_coco_panoptic": "omg_data.coco_panoptic",
    "read_coco_instances": "omg_data.coco_instances",
    "read_coco_results": "omg_data.coco_instances",
    "read_coco_sam": "omg_data.coco_sam",
    "read_semantic_png": "omg_data.semantic_png",
    "read_ade20k_semantic": "omg_data.ade20k",
    "read_ade20k_panoptic": "omg_data.ade20k",
    "read_cityscapes_panoptic": "omg_data.cityscapes",
    "read_youtube_vis": "omg_data.youtube_vis",
    "read_youtube_vis_results": "omg_data.youtube_vis",
    "read_vipseg": "omg_data.vipseg",
    "read_vipseg_raw": "omg_data.vipseg",
    "read_vipseg_categories": "omg_data.vipseg",
    "read_vspw": "omg_data.vspw",
    "read_davis": "omg_data.davis",
    # writers
    "write_coco_panoptic": "omg_data.coco_panoptic",
    "write_coco_instances": "omg_data.coco_instances",
    "write_coco_results": "omg_data.coco_instances",
    "write_coco_sam_prompts": "omg_data.coco_sam",
    "write_semantic_png": "omg_data.semantic_png",
    "write_cityscapes_panoptic": "omg_data.cityscapes",
    "write_youtube_vis": "omg_data.youtube_vis",
    "write_youtube_vis_results": "omg_data.youtube_vis",
    "write_vipseg": "omg_data.vipseg",
    "write_vipseg_raw": "omg_data.vipseg",
    "write_vspw": "omg_data.vspw",
    "write_vspw_predictions": "omg_data.vspw",
    "write_davis": "omg_data.davis",
    "write_davis_results": "omg_data.davis",
    # video input, augmentation, prompts
    "FrameStream": "omg_data.video_stream",
    "iter_clips": "omg_data.video_stream",
    "LargeScaleJitter": "omg_data.augment",
    "sample_prompts": "omg_data.prompts",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
