"""Test-only reference: OMG-Seg's ``seg/models/fusion_head/omgseg_fusionhead.py`` (lxtGH/OMG-Seg at 1ae2e7d)
written out line by line in plain torch, without mmdet / mmengine.

What changed from the official text, and only this:
- ``self.test_cfg`` / ``self.num_classes`` / ``self.num_things_classes`` are arguments;
- mmengine's ``PixelData`` / ``InstanceData`` are plain tensors / dicts;
- mmdet's ``INSTANCE_OFFSET`` (1000) and ``mask2bbox`` are written out here;
- ``instance_postprocess`` also returns the query indices it computes (the official result drops them) so tests can
  pair detections; ``topk(sorted=False)`` is kept, so its order is whatever torch gives.
``head_predict_upsample`` and ``predict_resize`` are the resize steps of ``Mask2FormerVideoHead.predict``
(seg/models/heads/mask2former_vid.py) and ``OMGFusionHead.predict`` (rescale=True).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

INSTANCE_OFFSET = 1000  # mmdet.evaluation.functional.INSTANCE_OFFSET


def mask2bbox(masks: Tensor) -> Tensor:
    """mmdet.structures.mask.mask2bbox."""
    N = masks.shape[0]
    bboxes = masks.new_zeros((N, 4), dtype=torch.float32)
    x_any = torch.any(masks, dim=1)
    y_any = torch.any(masks, dim=2)
    for i in range(N):
        x = torch.where(x_any[i, :])[0]
        y = torch.where(y_any[i, :])[0]
        if len(x) > 0 and len(y) > 0:
            bboxes[i, :] = bboxes.new_tensor([x[0], y[0], x[-1] + 1, y[-1] + 1])
    return bboxes


def head_predict_upsample(mask_pred_results: Tensor, batch_input_shape: tuple[int, int]) -> Tensor:
    """Mask2FormerVideoHead.predict (images): stride-4 logits (Q, h, w) upsampled to the padded batch input."""
    mask_pred_results = F.interpolate(
        mask_pred_results[None],
        size=(batch_input_shape[0], batch_input_shape[1]),
        mode='bilinear',
        align_corners=False)[0]
    return mask_pred_results


def predict_resize(mask_pred_result: Tensor, img_shape: tuple[int, int], ori_shape: tuple[int, int]) -> Tensor:
    """OMGFusionHead.predict with rescale=True: remove padding, then back to the original resolution."""
    # remove padding
    img_height, img_width = img_shape[:2]
    mask_pred_result = mask_pred_result[:, :img_height, :img_width]
    # return result in original resolution
    ori_height, ori_width = ori_shape[:2]
    mask_pred_result = F.interpolate(
        mask_pred_result[:, None],
        size=(ori_height, ori_width),
        mode='bilinear',
        align_corners=False)[:, 0]
    return mask_pred_result


def panoptic_postprocess(mask_cls: Tensor, mask_pred: Tensor, num_classes: int, num_things_classes: int,
                         test_cfg: dict) -> Tensor:
    """OMGFusionHead.panoptic_postprocess; returns the (h, w) int32 map (the official PixelData's sem_seg[0])."""
    object_mask_thr = test_cfg.get('object_mask_thr', 0.8)
    iou_thr = test_cfg.get('iou_thr', 0.8)
    filter_low_score = test_cfg.get('filter_low_score', False)

    scores, labels = F.softmax(mask_cls, dim=-1).max(-1)
    mask_pred = mask_pred.sigmoid()

    keep = labels.ne(num_classes) & (scores > object_mask_thr)
    cur_scores = scores[keep]
    cur_classes = labels[keep]
    cur_masks = mask_pred[keep]

    cur_prob_masks = cur_scores.view(-1, 1, 1) * cur_masks

    h, w = cur_masks.shape[-2:]
    panoptic_seg = torch.full((h, w),
                              num_classes,
                              dtype=torch.int32,
                              device=cur_masks.device)
    if cur_masks.shape[0] == 0:
        # We didn't detect any mask :(
        pass
    else:
        cur_mask_ids = cur_prob_masks.argmax(0)
        instance_id = 1
        for k in range(cur_classes.shape[0]):
            pred_class = int(cur_classes[k].item())
            isthing = pred_class < num_things_classes
            mask = cur_mask_ids == k
            mask_area = mask.sum().item()
            original_area = (cur_masks[k] >= 0.5).sum().item()

            if filter_low_score:
                mask = mask & (cur_masks[k] >= 0.5)

            if mask_area > 0 and original_area > 0:
                if mask_area / original_area < iou_thr:
                    continue

                if not isthing:
                    # different stuff regions of same class will be
                    # merged here, and stuff share the instance_id 0.
                    panoptic_seg[mask] = pred_class
                else:
                    panoptic_seg[mask] = (
                            pred_class + instance_id * INSTANCE_OFFSET)
                    instance_id += 1

    return panoptic_seg


def instance_postprocess(mask_cls: Tensor, mask_pred: Tensor, num_classes: int, num_things_classes: int,
                         test_cfg: dict) -> dict[str, Tensor]:
    """OMGFusionHead.instance_postprocess; the InstanceData fields as a dict, plus ``query_indices``."""
    max_per_image = test_cfg.get('max_per_image', 100)
    num_queries = mask_cls.shape[0]
    # shape (num_queries, num_class)
    scores = F.softmax(mask_cls, dim=-1)[:, :-1]
    # shape (num_queries * num_class, )
    labels = torch.arange(num_classes, device=mask_cls.device). \
        unsqueeze(0).repeat(num_queries, 1).flatten(0, 1)
    scores_per_image, top_indices = scores.flatten(0, 1).topk(
        max_per_image, sorted=False)
    labels_per_image = labels[top_indices]

    query_indices = top_indices // num_classes
    mask_pred = mask_pred[query_indices]

    # extract things
    is_thing = labels_per_image < num_things_classes
    scores_per_image = scores_per_image[is_thing]
    labels_per_image = labels_per_image[is_thing]
    mask_pred = mask_pred[is_thing]

    mask_pred_binary = (mask_pred > 0).float()
    mask_scores_per_image = (mask_pred.sigmoid() *
                             mask_pred_binary).flatten(1).sum(1) / (
                                    mask_pred_binary.flatten(1).sum(1) + 1e-6)
    det_scores = scores_per_image * mask_scores_per_image
    mask_pred_binary = mask_pred_binary.bool()
    bboxes = mask2bbox(mask_pred_binary)

    results = dict()
    results['bboxes'] = bboxes
    results['labels'] = labels_per_image
    results['scores'] = det_scores
    results['masks'] = mask_pred_binary
    results['query_indices'] = query_indices[is_thing]  # not in the official result
    return results


def proposal_postprocess(mask_score: Tensor, mask_pred: Tensor, test_cfg: dict) -> Tensor:
    """OMGFusionHead.proposal_postprocess; (num_proposals, h, w) bool, lowest score first."""
    max_per_image = test_cfg.get('num_proposals', 10)
    h, w = mask_pred.shape[-2:]
    # shape (num_queries, num_class)
    scores = mask_score.sigmoid().squeeze(-1)
    scores_per_image, top_indices = scores.topk(max_per_image, sorted=True)

    mask_selected = mask_pred[top_indices]

    proposals = []
    for idx in range(len(mask_selected)):
        mask = mask_selected[len(mask_selected) - idx - 1]
        proposals.append(mask.sigmoid() > .5)
    seg_map = torch.stack(proposals)
    return seg_map


def inference_sam_masks(mask_pred_result: Tensor, img_shape: tuple[int, int], ori_shape: tuple[int, int]) -> Tensor:
    """Mask2formerVideo.predict with inference_sam (seg/models/detectors/mask2former_vid.py): the prompt queries'
    padded-size logits cropped, resized to the original image, sigmoid > 0.5."""
    mask = mask_pred_result
    img_height, img_width = img_shape[:2]
    mask = mask[:, :img_height, :img_width]
    ori_height, ori_width = ori_shape[:2]
    mask = F.interpolate(
        mask[:, None],
        size=(ori_height, ori_width),
        mode='bilinear',
        align_corners=False)[:, 0]
    return mask.sigmoid() > 0.5
