"""Test-only reference: OMG-Seg's training loss, written out line by line in plain torch without mmdet / mmcv /
mmengine.

Sources (lxtGH/OMG-Seg at 1ae2e7d and the mmdet 3.x / mmcv 2.x code it calls):
- seg/models/heads/mask2former_vid.py `Mask2FormerVideoHead`: `loss` (video flattening), `get_targets`,
  `_get_targets_single`, `loss_by_feat`, `_loss_by_feat_single`;
- seg/models/task_modules/cost.py `FlexibleClassificationCost`;
- mmdet `HungarianAssigner.assign`, `CrossEntropyLossCost`, `DiceCost`, `MaskPseudoSampler.sample` /
  `MaskSamplingResult`, `CrossEntropyLoss` (`cross_entropy`, `binary_cross_entropy`), `DiceLoss` / `dice_loss`,
  `FocalLoss` (its CPU path, `py_sigmoid_focal_loss`), `weight_reduce_loss`, `reduce_mean`,
  `get_uncertain_point_coords_with_randomness`; mmcv `point_sample`;
- the training config seg/configs/m2ov_train/omg_convl_vlm_fix_12e_ov_coco_vid_yt19_vip_city_cocopansam.py
  (loss and cost weights, class_weight [1.0] * K + [0.1], 12544 points, 3.0 / 0.75).

What changed from the official text, and only this:
- every `torch.rand` takes a `generator`, threaded through, so tests can share the random points;
- InstanceData / AssignResult / SamplingResult are dicts; `multi_apply` is a loop; config values are arguments;
- `is_sam` is an argument (officially the hack `num_ins != self.num_queries`);
- img_metas are dropped (no cost reads them); the mmdet `loss_iou is None` branch is kept.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor


# ---- mmcv.ops.point_sample ----
def denormalize(grid: Tensor) -> Tensor:
    return grid * 2.0 - 1.0


def point_sample(input: Tensor, points: Tensor, align_corners: bool = False, **kwargs) -> Tensor:
    add_dim = False
    if points.dim() == 3:
        add_dim = True
        points = points.unsqueeze(2)
    output = F.grid_sample(input, denormalize(points), align_corners=align_corners, **kwargs)
    if add_dim:
        output = output.squeeze(3)
    return output


# ---- mmdet.models.utils.point_sample ----
def get_uncertainty(mask_preds: Tensor, labels: Tensor | None) -> Tensor:
    if mask_preds.shape[1] == 1:
        gt_class_logits = mask_preds.clone()
    else:
        inds = torch.arange(mask_preds.shape[0], device=mask_preds.device)
        gt_class_logits = mask_preds[inds, labels].unsqueeze(1)
    return -torch.abs(gt_class_logits)


def get_uncertain_point_coords_with_randomness(mask_preds, labels, num_points, oversample_ratio,
                                               importance_sample_ratio, generator=None):
    assert oversample_ratio >= 1
    assert 0 <= importance_sample_ratio <= 1
    batch_size = mask_preds.shape[0]
    num_sampled = int(num_points * oversample_ratio)
    point_coords = torch.rand(batch_size, num_sampled, 2, device=mask_preds.device, generator=generator)
    point_logits = point_sample(mask_preds, point_coords)
    point_uncertainties = get_uncertainty(point_logits, labels)
    num_uncertain_points = int(importance_sample_ratio * num_points)
    num_random_points = num_points - num_uncertain_points
    idx = torch.topk(point_uncertainties[:, 0, :], k=num_uncertain_points, dim=1)[1]
    shift = num_sampled * torch.arange(batch_size, dtype=torch.long, device=mask_preds.device)
    idx += shift[:, None]
    point_coords = point_coords.view(-1, 2)[idx.view(-1), :].view(batch_size, num_uncertain_points, 2)
    if num_random_points > 0:
        rand_roi_coords = torch.rand(batch_size, num_random_points, 2, device=mask_preds.device,
                                     generator=generator)
        point_coords = torch.cat((point_coords, rand_roi_coords), dim=1)
    return point_coords


# ---- mmdet.utils.dist_utils.reduce_mean ----
def reduce_mean(tensor: Tensor) -> Tensor:
    if not (dist.is_available() and dist.is_initialized()):
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor.div_(dist.get_world_size()), op=dist.ReduceOp.SUM)
    return tensor


# ---- mmdet.models.losses.utils ----
def reduce_loss(loss: Tensor, reduction: str) -> Tensor:
    reduction_enum = F._Reduction.get_enum(reduction)
    if reduction_enum == 0:
        return loss
    elif reduction_enum == 1:
        return loss.mean()
    elif reduction_enum == 2:
        return loss.sum()


def weight_reduce_loss(loss, weight=None, reduction='mean', avg_factor=None):
    if weight is not None:
        loss = loss * weight
    if avg_factor is None:
        loss = reduce_loss(loss, reduction)
    else:
        if reduction == 'mean':
            eps = torch.finfo(torch.float32).eps
            loss = loss.sum() / (avg_factor + eps)
        elif reduction != 'none':
            raise ValueError('avg_factor can not be used with reduction="sum"')
    return loss


# ---- mmdet.models.losses.cross_entropy_loss ----
def cross_entropy(pred, label, weight=None, reduction='mean', avg_factor=None, class_weight=None,
                  ignore_index=-100, avg_non_ignore=False):
    ignore_index = -100 if ignore_index is None else ignore_index
    loss = F.cross_entropy(pred, label, weight=class_weight, reduction='none', ignore_index=ignore_index)
    if (avg_factor is None) and avg_non_ignore and reduction == 'mean':
        avg_factor = label.numel() - (label == ignore_index).sum().item()
    if weight is not None:
        weight = weight.float()
    loss = weight_reduce_loss(loss, weight=weight, reduction=reduction, avg_factor=avg_factor)
    return loss


def binary_cross_entropy(pred, label, weight=None, reduction='mean', avg_factor=None, class_weight=None,
                         ignore_index=-100, avg_non_ignore=False):
    ignore_index = -100 if ignore_index is None else ignore_index
    assert pred.dim() == label.dim()  # the head passes point values, never one-hot expansion
    valid_mask = ((label >= 0) & (label != ignore_index)).float()
    if weight is not None:
        weight = weight * valid_mask
    else:
        weight = valid_mask
    if (avg_factor is None) and avg_non_ignore and reduction == 'mean':
        avg_factor = valid_mask.sum().item()
    weight = weight.float()
    loss = F.binary_cross_entropy_with_logits(pred, label.float(), pos_weight=class_weight, reduction='none')
    loss = weight_reduce_loss(loss, weight, reduction=reduction, avg_factor=avg_factor)
    return loss


class CrossEntropyLoss:
    def __init__(self, use_sigmoid=False, reduction='mean', class_weight=None, loss_weight=1.0):
        self.use_sigmoid = use_sigmoid
        self.reduction = reduction
        self.loss_weight = loss_weight
        self.class_weight = class_weight
        self.cls_criterion = binary_cross_entropy if use_sigmoid else cross_entropy

    def __call__(self, cls_score, label, weight=None, avg_factor=None, reduction_override=None,
                 ignore_index=None):
        reduction = reduction_override if reduction_override else self.reduction
        if self.class_weight is not None:
            class_weight = cls_score.new_tensor(self.class_weight, device=cls_score.device)
        else:
            class_weight = None
        loss_cls = self.loss_weight * self.cls_criterion(
            cls_score, label, weight, class_weight=class_weight, reduction=reduction, avg_factor=avg_factor,
            ignore_index=ignore_index)
        return loss_cls


# ---- mmdet.models.losses.dice_loss ----
def dice_loss(pred, target, weight=None, eps=1e-3, reduction='mean', naive_dice=False, avg_factor=None):
    input = pred.flatten(1)
    target = target.flatten(1).float()
    a = torch.sum(input * target, 1)
    if naive_dice:
        b = torch.sum(input, 1)
        c = torch.sum(target, 1)
        d = (2 * a + eps) / (b + c + eps)
    else:
        b = torch.sum(input * input, 1) + eps
        c = torch.sum(target * target, 1) + eps
        d = (2 * a) / (b + c)
    loss = 1 - d
    loss = weight_reduce_loss(loss, weight, reduction, avg_factor)
    return loss


class DiceLoss:
    def __init__(self, use_sigmoid=True, activate=True, reduction='mean', naive_dice=False, loss_weight=1.0,
                 eps=1e-3):
        self.use_sigmoid = use_sigmoid
        self.reduction = reduction
        self.naive_dice = naive_dice
        self.loss_weight = loss_weight
        self.eps = eps
        self.activate = activate

    def __call__(self, pred, target, weight=None, reduction_override=None, avg_factor=None):
        reduction = reduction_override if reduction_override else self.reduction
        if self.activate:
            if self.use_sigmoid:
                pred = pred.sigmoid()
            else:
                raise NotImplementedError
        loss = self.loss_weight * dice_loss(pred, target, weight, eps=self.eps, reduction=reduction,
                                            naive_dice=self.naive_dice, avg_factor=avg_factor)
        return loss


# ---- mmdet.models.losses.focal_loss (CPU path; the CUDA op computes the same formula) ----
def py_sigmoid_focal_loss(pred, target, weight=None, gamma=2.0, alpha=0.25, reduction='mean', avg_factor=None):
    pred_sigmoid = pred.sigmoid()
    target = target.type_as(pred)
    pt = (1 - pred_sigmoid) * target + pred_sigmoid * (1 - target)
    focal_weight = (alpha * target + (1 - alpha) * (1 - target)) * pt.pow(gamma)
    loss = F.binary_cross_entropy_with_logits(pred, target, reduction='none') * focal_weight
    loss = weight_reduce_loss(loss, weight, reduction, avg_factor)
    return loss


class FocalLoss:
    def __init__(self, use_sigmoid=True, gamma=2.0, alpha=0.25, reduction='mean', loss_weight=1.0):
        self.use_sigmoid = use_sigmoid
        self.gamma = gamma
        self.alpha = alpha
        self.reduction = reduction
        self.loss_weight = loss_weight

    def __call__(self, pred, target, weight=None, avg_factor=None, reduction_override=None):
        reduction = reduction_override if reduction_override else self.reduction
        num_classes = pred.size(1)
        target = F.one_hot(target, num_classes=num_classes + 1)
        target = target[:, :num_classes]
        loss_cls = self.loss_weight * py_sigmoid_focal_loss(
            pred, target, weight, gamma=self.gamma, alpha=self.alpha, reduction=reduction, avg_factor=avg_factor)
        return loss_cls


# ---- match costs: seg/models/task_modules/cost.py and mmdet match_cost.py ----
class FlexibleClassificationCost:
    def __init__(self, weight=1):
        self.weight = weight

    def __call__(self, pred_instances, gt_instances):
        _pred_scores = pred_instances['scores']
        gt_labels = gt_instances['labels']
        pred_scores = _pred_scores[..., :-1]
        iou_score = _pred_scores[..., -1:]
        pred_scores = pred_scores.softmax(-1)
        iou_score = iou_score.sigmoid()
        pred_scores = torch.cat([pred_scores, iou_score], dim=-1)
        cls_cost = -pred_scores[:, gt_labels]
        return cls_cost * self.weight


class CrossEntropyLossCost:
    def __init__(self, use_sigmoid=True, weight=1.):
        self.use_sigmoid = use_sigmoid
        self.weight = weight

    def _binary_cross_entropy(self, cls_pred, gt_labels):
        cls_pred = cls_pred.flatten(1).float()
        gt_labels = gt_labels.flatten(1).float()
        n = cls_pred.shape[1]
        pos = F.binary_cross_entropy_with_logits(cls_pred, torch.ones_like(cls_pred), reduction='none')
        neg = F.binary_cross_entropy_with_logits(cls_pred, torch.zeros_like(cls_pred), reduction='none')
        cls_cost = torch.einsum('nc,mc->nm', pos, gt_labels) + \
            torch.einsum('nc,mc->nm', neg, 1 - gt_labels)
        cls_cost = cls_cost / n
        return cls_cost

    def __call__(self, pred_instances, gt_instances):
        pred_masks = pred_instances['masks']
        gt_masks = gt_instances['masks']
        if self.use_sigmoid:
            cls_cost = self._binary_cross_entropy(pred_masks, gt_masks)
        else:
            raise NotImplementedError
        return cls_cost * self.weight


class DiceCost:
    def __init__(self, pred_act=False, eps=1e-3, naive_dice=True, weight=1.):
        self.weight = weight
        self.pred_act = pred_act
        self.eps = eps
        self.naive_dice = naive_dice

    def _binary_mask_dice_loss(self, mask_preds, gt_masks):
        mask_preds = mask_preds.flatten(1)
        gt_masks = gt_masks.flatten(1).float()
        numerator = 2 * torch.einsum('nc,mc->nm', mask_preds, gt_masks)
        if self.naive_dice:
            denominator = mask_preds.sum(-1)[:, None] + gt_masks.sum(-1)[None, :]
        else:
            denominator = mask_preds.pow(2).sum(1)[:, None] + gt_masks.pow(2).sum(1)[None, :]
        loss = 1 - (numerator + self.eps) / (denominator + self.eps)
        return loss

    def __call__(self, pred_instances, gt_instances):
        pred_masks = pred_instances['masks']
        gt_masks = gt_instances['masks']
        if self.pred_act:
            pred_masks = pred_masks.sigmoid()
        dice_cost = self._binary_mask_dice_loss(pred_masks, gt_masks)
        return dice_cost * self.weight


# ---- mmdet HungarianAssigner.assign ----
class HungarianAssigner:
    def __init__(self, match_costs):
        self.match_costs = match_costs

    def assign(self, pred_instances, gt_instances):
        num_gts, num_preds = len(gt_instances['labels']), len(pred_instances['scores'])
        gt_labels = gt_instances['labels']
        device = gt_labels.device
        assigned_gt_inds = torch.full((num_preds, ), -1, dtype=torch.long, device=device)
        assigned_labels = torch.full((num_preds, ), -1, dtype=torch.long, device=device)
        if num_gts == 0 or num_preds == 0:
            if num_gts == 0:
                assigned_gt_inds[:] = 0
            return dict(num_gts=num_gts, gt_inds=assigned_gt_inds, labels=assigned_labels)
        cost_list = []
        for match_cost in self.match_costs:
            cost = match_cost(pred_instances=pred_instances, gt_instances=gt_instances)
            cost_list.append(cost)
        cost = torch.stack(cost_list).sum(dim=0)
        cost = cost.detach().cpu()
        matched_row_inds, matched_col_inds = linear_sum_assignment(cost)
        matched_row_inds = torch.from_numpy(matched_row_inds).to(device)
        matched_col_inds = torch.from_numpy(matched_col_inds).to(device)
        assigned_gt_inds[:] = 0
        assigned_gt_inds[matched_row_inds] = matched_col_inds + 1
        assigned_labels[matched_row_inds] = gt_labels[matched_col_inds]
        return dict(num_gts=num_gts, gt_inds=assigned_gt_inds, labels=assigned_labels)


# ---- mmdet MaskPseudoSampler.sample / MaskSamplingResult (avg_factor_with_neg=False) ----
def mask_pseudo_sample(assign_result, pred_instances, gt_instances):
    gt_masks = gt_instances['masks']
    pos_inds = torch.nonzero(assign_result['gt_inds'] > 0, as_tuple=False).squeeze(-1).unique()
    neg_inds = torch.nonzero(assign_result['gt_inds'] == 0, as_tuple=False).squeeze(-1).unique()
    num_pos = max(pos_inds.numel(), 1)
    pos_assigned_gt_inds = assign_result['gt_inds'][pos_inds] - 1
    return dict(pos_inds=pos_inds, neg_inds=neg_inds, avg_factor=num_pos, pos_assigned_gt_inds=pos_assigned_gt_inds,
                num_gts=gt_masks.shape[0])


# ---- seg/models/heads/mask2former_vid.py Mask2FormerVideoHead (training part) ----
class OfficialHead:
    def __init__(self, num_classes: int, num_queries: int, num_points: int = 12544, oversample_ratio: float = 3.0,
                 importance_sample_ratio: float = 0.75, with_loss_iou: bool = True):
        self.num_classes = num_classes
        self.num_queries = num_queries
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.matching_whole_map = False
        self.class_weight = [1.0] * num_classes + [0.1]
        self.loss_cls = CrossEntropyLoss(use_sigmoid=False, loss_weight=2.0, reduction='mean',
                                         class_weight=self.class_weight)
        self.loss_mask = CrossEntropyLoss(use_sigmoid=True, reduction='mean', loss_weight=5.0)
        self.loss_dice = DiceLoss(use_sigmoid=True, activate=True, reduction='mean', naive_dice=True, eps=1.0,
                                  loss_weight=5.0)
        self.loss_iou = FocalLoss(use_sigmoid=True, loss_weight=2.0, reduction='mean') if with_loss_iou else None
        self.assigner = HungarianAssigner([
            FlexibleClassificationCost(weight=2.0),
            CrossEntropyLossCost(weight=5.0, use_sigmoid=True),
            DiceCost(weight=5.0, pred_act=True, eps=1.0),
        ])
        self.generator: torch.Generator | None = None

    def loss(self, all_cls_scores, all_mask_preds, batch_gt_instances, is_video=False, is_sam=False,
             generator=None):
        """From `loss` after the forward: the video flattening, then `loss_by_feat`."""
        self.generator = generator
        if is_video:
            all_mask_preds = [mask.flatten(2, 3) for mask in all_mask_preds]
            for instance in batch_gt_instances:
                instance['masks'] = instance['masks'].flatten(1, 2)
        return self.loss_by_feat(all_cls_scores, all_mask_preds, batch_gt_instances, is_sam)

    def get_targets(self, cls_scores_list, mask_preds_list, batch_gt_instances):
        results = [self._get_targets_single(c, m, g)
                   for c, m, g in zip(cls_scores_list, mask_preds_list, batch_gt_instances)]
        labels_list, label_weights_list, mask_targets_list, mask_weights_list, \
            pos_inds_list, neg_inds_list, sampling_results_list = map(list, zip(*results))
        avg_factor = sum([results['avg_factor'] for results in sampling_results_list])
        res = (labels_list, label_weights_list, mask_targets_list, mask_weights_list, avg_factor)
        return res

    def _get_targets_single(self, cls_score, mask_pred, gt_instances):
        gt_labels = gt_instances['labels']
        gt_masks = gt_instances['masks']
        num_queries = cls_score.shape[0]
        num_gts = gt_labels.shape[0]
        if not self.matching_whole_map:
            point_coords = torch.rand((1, self.num_points, 2), device=cls_score.device, generator=self.generator)
            mask_points_pred = point_sample(mask_pred.unsqueeze(1),
                                            point_coords.repeat(num_queries, 1, 1)).squeeze(1)
            gt_points_masks = point_sample(gt_masks.unsqueeze(1).float(),
                                           point_coords.repeat(num_gts, 1, 1)).squeeze(1)
        else:
            mask_points_pred = mask_pred
            gt_points_masks = gt_masks
        sampled_gt_instances = dict(labels=gt_labels, masks=gt_points_masks)
        sampled_pred_instances = dict(scores=cls_score, masks=mask_points_pred)
        assign_result = self.assigner.assign(pred_instances=sampled_pred_instances,
                                             gt_instances=sampled_gt_instances)
        pred_instances = dict(scores=cls_score, masks=mask_pred)
        sampling_result = mask_pseudo_sample(assign_result=assign_result, pred_instances=pred_instances,
                                             gt_instances=gt_instances)
        pos_inds = sampling_result['pos_inds']
        neg_inds = sampling_result['neg_inds']
        labels = gt_labels.new_full((num_queries,), self.num_classes, dtype=torch.long)
        labels[pos_inds] = gt_labels[sampling_result['pos_assigned_gt_inds']]
        label_weights = gt_labels.new_ones((num_queries,))
        mask_targets = gt_masks[sampling_result['pos_assigned_gt_inds']]
        mask_weights = mask_pred.new_zeros((num_queries,))
        mask_weights[pos_inds] = 1.0
        return labels, label_weights, mask_targets, mask_weights, pos_inds, neg_inds, sampling_result

    def loss_by_feat(self, all_cls_scores, all_mask_preds, batch_gt_instances, is_sam=False):
        losses_cls, losses_mask, losses_dice = [], [], []
        for cls_scores, mask_preds in zip(all_cls_scores, all_mask_preds):
            loss_cls, loss_mask, loss_dice = self._loss_by_feat_single(cls_scores, mask_preds, batch_gt_instances,
                                                                       is_sam)
            losses_cls.append(loss_cls)
            losses_mask.append(loss_mask)
            losses_dice.append(loss_dice)
        loss_dict = dict()
        num_dec_layer = 0
        for loss_cls_i, loss_mask_i, loss_dice_i in zip(losses_cls[:-1], losses_mask[:-1], losses_dice[:-1]):
            loss_dict[f'd{num_dec_layer}.loss_cls'] = loss_cls_i
            loss_dict[f'd{num_dec_layer}.loss_mask'] = loss_mask_i
            loss_dict[f'd{num_dec_layer}.loss_dice'] = loss_dice_i
            num_dec_layer += 1
        loss_dict['loss_cls'] = losses_cls[-1]
        loss_dict['loss_mask'] = losses_mask[-1]
        loss_dict['loss_dice'] = losses_dice[-1]
        return loss_dict

    def _loss_by_feat_single(self, cls_scores, mask_preds, batch_gt_instances, is_sam=False):
        batch_size, num_ins = cls_scores.size(0), cls_scores.size(1)
        if not is_sam:
            cls_scores_list = [cls_scores[i] for i in range(batch_size)]
            mask_preds_list = [mask_preds[i] for i in range(batch_size)]
            labels_list, label_weights_list, mask_targets_list, mask_weights_list, avg_factor = \
                self.get_targets(cls_scores_list, mask_preds_list, batch_gt_instances)
            labels = torch.stack(labels_list, dim=0)
            label_weights = torch.stack(label_weights_list, dim=0)
            mask_targets = torch.cat(mask_targets_list, dim=0)
            mask_weights = torch.stack(mask_weights_list, dim=0)
        else:
            labels = torch.stack([item['labels'] for item in batch_gt_instances])
            label_weights = labels.new_ones((batch_size, num_ins), dtype=torch.float)
            mask_targets = torch.cat([item['masks'] for item in batch_gt_instances])
            mask_weights = mask_targets.new_ones((batch_size, num_ins), dtype=torch.float)
            avg_factor = cls_scores.size(1)

        cls_scores = cls_scores.flatten(0, 1)
        labels = labels.flatten(0, 1)
        label_weights = label_weights.flatten(0, 1)
        class_weight = cls_scores.new_tensor(self.class_weight)
        ignore_inds = labels.eq(-1.)
        labels[ignore_inds] = 0
        label_weights[ignore_inds] = 0.
        obj_inds = labels.eq(self.num_classes)
        if is_sam:
            cls_avg_factor = cls_scores.new_tensor([0])
        else:
            cls_avg_factor = class_weight[labels].sum()
        cls_avg_factor = reduce_mean(cls_avg_factor)
        cls_avg_factor = max(cls_avg_factor, 1)
        if self.loss_iou is not None:
            loss_cls = self.loss_cls(cls_scores[..., :-1], labels, label_weights, avg_factor=cls_avg_factor)
            loss_iou = self.loss_iou(cls_scores[..., -1:], obj_inds.to(dtype=torch.long), avg_factor=cls_avg_factor)
            if is_sam:
                loss_iou = loss_iou * 0
            loss_cls = loss_cls + loss_iou
        else:
            loss_cls = self.loss_cls(cls_scores, labels, label_weights, avg_factor=cls_avg_factor)

        num_total_masks = reduce_mean(cls_scores.new_tensor([avg_factor]))
        num_total_masks = max(num_total_masks, 1)
        mask_preds = mask_preds[mask_weights > 0]

        if mask_targets.shape[0] == 0:
            loss_dice = mask_preds.sum()
            loss_mask = mask_preds.sum()
            return loss_cls, loss_mask, loss_dice

        if not self.matching_whole_map:
            with torch.no_grad():
                points_coords = get_uncertain_point_coords_with_randomness(
                    mask_preds.unsqueeze(1), None, self.num_points, self.oversample_ratio,
                    self.importance_sample_ratio, generator=self.generator)
                mask_point_targets = point_sample(mask_targets.unsqueeze(1).float(), points_coords).squeeze(1)
            mask_point_preds = point_sample(mask_preds.unsqueeze(1), points_coords).squeeze(1)
        else:
            mask_point_targets = mask_targets
            mask_point_preds = mask_preds

        loss_dice = self.loss_dice(mask_point_preds, mask_point_targets, avg_factor=num_total_masks)
        mask_point_preds = mask_point_preds.reshape(-1)
        mask_point_targets = mask_point_targets.reshape(-1)
        loss_mask = self.loss_mask(mask_point_preds, mask_point_targets, avg_factor=num_total_masks * self.num_points)
        return loss_cls, loss_mask, loss_dice

    def match(self, cls_score, mask_pred, gt_instances, generator=None):
        """The assignment `_get_targets_single` makes for one sample (query -> target), for matcher tests."""
        self.generator = generator
        labels, _, _, _, pos_inds, _, sampling_result = self._get_targets_single(cls_score, mask_pred, gt_instances)
        return pos_inds, sampling_result['pos_assigned_gt_inds']
