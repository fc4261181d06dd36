"""OMG-Seg's inference post-processing as pure tensor functions: raw per-query logits in, typed predictions out.

    test_time_resize   the image resize before the model (mmcv keep-ratio rescale) and the mask resize after it
    panoptic           OMG-Seg's panoptic fusion (panoptic_postprocess)
    instance           OMG-Seg's instance inference (instance_postprocess)
    semantic           Mask2Former's semantic inference (OMG-Seg has none)
    prompt_masks       interactive (point / box prompt) masks and DAVIS proposals (proposal_postprocess)
"""
