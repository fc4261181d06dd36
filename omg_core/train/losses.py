"""OMG-Seg's training losses (Mask2Former's SetCriterion as OMG-Seg's mmdet head computes it), as pure torch.

For every decoder stage (the auxiliary ones and the final one, each with its own matching):

- learned queries, matched to targets by the Hungarian matcher:
    loss_cls  = 2.0 * sum_q w[y_q] CE(class_logits_q, y_q) / sum_q w[y_q]   (y_q = void for unmatched, w[void] = 0.1)
    loss_iou  = 2.0 * sigmoid focal loss(iou_logit_q, q is matched) / sum_q w[y_q]   (alpha 0.25, gamma 2)
    loss_mask = 5.0 * BCE over the matched masks at 12,544 importance-sampled points / (num_masks * 12,544)
    loss_dice = 5.0 * sum of naive dice (+1 smoothing) over the matched masks / num_masks
- prompt queries, each supervised by its own target (no matching), as the official head treats SAM-style data:
    loss_prompt_cls  = 2.0 * sum_j CE(class_logits_j, y_j)          (no normaliser, no objectness loss)
    loss_prompt_mask / loss_prompt_dice as above over the prompt masks / num_prompt_masks

num_masks counts target masks in the batch, averaged over ranks when torch.distributed is initialised and clamped to
>= 1 (the class normaliser is averaged the same way, as mmdet's reduce_mean does). Auxiliary stage i adds its terms
under the same names suffixed ".d{i}" ("loss_mask.d0" is the prediction before the first decoder layer).

Two normalisers follow the brief rather than the official code, which they equal at its one sample per GPU:
the official head normalises prompt masks by the prompts of one sample (mask2former_vid.py:601, `avg_factor =
cls_scores.size(1)`) and counts an image without targets as one mask (mmdet's MaskSamplingResult `max(num_pos, 1)`);
here both are the number of target masks in the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

from omg_core.errors import InputError
from omg_core.model.outputs import OMGOutputs
from omg_core.train.matcher import Assignment, HungarianMatcher
from omg_core.train.point_sampling import as_film, point_sample, uncertain_points_with_randomness
from omg_core.train.targets import SegmentationTargets


@dataclass(frozen=True)
class CriterionConfig:
    """Loss weights and sampling settings (OMG-Seg's training config values by default).

    class_weight, mask_weight, dice_weight: weights of the class CE, mask BCE and dice terms.
    objectness_weight: weight of the focal loss on the iou (objectness) head; 0 turns it off.
    no_object_weight: CE weight of the void class for unmatched learned queries.
    num_points, oversample_ratio, importance_sample_ratio: the points the mask losses are measured at.
    focal_alpha, focal_gamma: the objectness focal loss (mmdet FocalLoss defaults).
    """

    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    objectness_weight: float = 2.0
    no_object_weight: float = 0.1
    num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0


@dataclass
class SetLosses:
    """The weighted loss terms of one batch and their sum.

    terms: name -> scalar, already multiplied by its weight ("loss_cls", "loss_mask.d3", ...).
    total: the sum of all terms (what to call backward on).
    """

    terms: dict[str, torch.Tensor]
    total: torch.Tensor

    def as_dict(self) -> dict[str, torch.Tensor]:
        """The terms plus the total under "loss", for logging."""
        return {**self.terms, "loss": self.total}


@dataclass
class _Stage:
    """One decoder stage's predictions."""

    class_logits: torch.Tensor  # B x Q x (K + 1)
    mask_logits: torch.Tensor  # B x Q x h x w or B x Q x T x h x w
    iou_logits: torch.Tensor | None  # B x Q x 1


@dataclass
class _Normalisers:
    """Per-batch divisors, the same for every stage (each target is matched at every stage)."""

    num_masks: float
    class_avg: float
    num_prompt_masks: float


def reduce_mean(values: torch.Tensor) -> torch.Tensor:
    """The mean over ranks when torch.distributed is initialised, else `values` (mmdet's reduce_mean)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    values = values.clone()
    dist.all_reduce(values.div_(dist.get_world_size()), op=dist.ReduceOp.SUM)
    return values


def sigmoid_ce_loss(pred_logits: torch.Tensor, targets: torch.Tensor, num_masks: float) -> torch.Tensor:
    """Binary cross-entropy summed over masks and points, divided by num_masks * P.

    Arguments:
      pred_logits: M x P logits; targets: M x P values in [0, 1]; num_masks: the normaliser.
    """
    loss = F.binary_cross_entropy_with_logits(pred_logits, targets, reduction="none")
    return loss.sum() / (num_masks * pred_logits.shape[1])


def dice_loss(pred_logits: torch.Tensor, targets: torch.Tensor, num_masks: float, eps: float = 1.0) -> torch.Tensor:
    """Naive dice loss summed over masks, divided by num_masks.

    Arguments:
      pred_logits: M x P logits; targets: M x P values in [0, 1]; num_masks: the normaliser; eps: smoothing.
    """
    probs = pred_logits.sigmoid()
    numerator = 2 * (probs * targets).sum(-1)
    denominator = probs.sum(-1) + targets.sum(-1)
    return (1 - (numerator + eps) / (denominator + eps)).sum() / num_masks


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Element-wise sigmoid focal loss (Lin et al.).

    Arguments:
      logits, targets: the same shape; targets in {0, 1}.

    Returns:
      the unreduced loss.
    """
    probs = logits.sigmoid()
    miss = (1 - probs) * targets + probs * (1 - targets)  # 1 - p_t
    weight = (alpha * targets + (1 - alpha) * (1 - targets)) * miss.pow(gamma)
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * weight


class SetCriterion:
    """Matches queries to targets and computes OMG-Seg's losses on every decoder stage.

    Arguments:
      config: loss weights and sampling settings.
      matcher: the Hungarian matcher (OMG-Seg's costs and 12,544 points by default).
    """

    def __init__(self, config: CriterionConfig | None = None, matcher: HungarianMatcher | None = None) -> None:
        self.config = config or CriterionConfig()
        self.matcher = matcher or HungarianMatcher(num_points=self.config.num_points)

    def __call__(self, outputs: OMGOutputs, targets: Sequence[SegmentationTargets],
                 generator: torch.Generator | Sequence[torch.Generator] | None = None) -> SetLosses:
        """The weighted losses of one batch.

        Arguments:
          outputs: the model's outputs; the trained classifier's logits (`in_vocab_logits`) are scored, and the
            auxiliary stages (with `iou_logits` when they carry them) are supervised too.
          targets: one SegmentationTargets per sample, with masks on the unpadded image or the padded input.
          generator: the source of all random points (the global RNG when None). Draws happen in the official
            order: per stage (auxiliary ones first), per sample the matching points, then the loss points. A list
            gives one generator per sample: every sample's points then come from its own stream, so a sample gets
            the same points whichever batch or rank it is in (what makes a 2-rank run equal a 1-rank run of the
            doubled batch).

        Returns:
          SetLosses with the terms and their total.
        """
        batch = outputs.class_logits.shape[0]
        if len(targets) != batch:
            raise InputError(f"got {len(targets)} targets for a batch of {batch} samples")
        if generator is not None and not isinstance(generator, torch.Generator) and len(generator) != batch:
            raise InputError(f"got {len(generator)} generators for a batch of {batch} samples; give one per sample")
        is_clip = outputs.mask_logits.dim() == 5
        num_learned = outputs.num_learned_queries
        num_prompts = outputs.class_logits.shape[1] - num_learned
        device = outputs.mask_logits.device
        mask_size = tuple(outputs.mask_logits.shape[-2:])
        num_classes = outputs.class_logits.shape[-1] - 1

        target_films: list[torch.Tensor] = []  # per sample N x H' x W' float, converted once for all stages
        labels: list[torch.Tensor] = []
        prompt_index: list[torch.Tensor] = []  # per sample P' supervised prompt queries -> target rows
        prompt_queries: list[torch.Tensor] = []
        for b, target in enumerate(targets):
            target.validate()
            if target.is_clip != is_clip or (is_clip and target.masks.shape[1] != outputs.mask_logits.shape[2]):
                raise InputError(f"sample {b}: target masks of shape {tuple(target.masks.shape)} do not fit predicted"
                                 f" masks of shape {tuple(outputs.mask_logits.shape[2:])} per query")
            masks = target.on_canvas(outputs.padded_size, outputs.image_size, mask_size)
            target_films.append(as_film(masks.to(device), is_clip).float())
            if target.num_targets and int(target.labels.max()) >= num_classes:
                raise InputError(f"sample {b}: target labels go up to {int(target.labels.max())} but the outputs score"
                                 f" {num_classes} classes; map labels into the vocabulary the model was run with")
            labels.append(target.labels.to(device))
            queries, index = self._prompt_pairs(b, target, num_prompts, outputs)
            prompt_queries.append(queries.to(device))
            prompt_index.append(index.to(device))

        norms = self._normalisers(labels, prompt_index, num_learned, batch, device)
        stages = [_Stage(a.class_logits, a.mask_logits, getattr(a, "iou_logits", None)) for a in outputs.auxiliary]
        stages.append(_Stage(outputs.in_vocab_logits, outputs.mask_logits, outputs.iou_logits))
        terms: dict[str, torch.Tensor] = {}
        for i, stage in enumerate(stages):
            suffix = "" if i == len(stages) - 1 else f".d{i}"
            if num_learned > 0:
                stage_terms = self._learned_losses(stage, num_learned, labels, target_films, norms, is_clip, generator)
                terms.update({name + suffix: value for name, value in stage_terms.items()})
            if num_prompts > 0:
                stage_terms = self._prompt_losses(stage, num_learned, labels, target_films, prompt_queries,
                                                  prompt_index, norms, is_clip, generator)
                terms.update({name + suffix: value for name, value in stage_terms.items()})
        total = torch.stack(list(terms.values())).sum() if terms else outputs.mask_logits.sum() * 0
        return SetLosses(terms, total)

    def _prompt_pairs(self, b: int, target: SegmentationTargets, num_prompts: int,
                      outputs: OMGOutputs) -> tuple[torch.Tensor, torch.Tensor]:
        """Which prompt queries (0-based among the prompts) are supervised, and by which target rows."""
        if num_prompts == 0:
            if target.prompt_index is not None and target.prompt_index.numel():
                raise InputError(f"sample {b}: targets carry prompt_index but the outputs have no prompt queries;"
                                 " run the model with the prompts or drop prompt_index")
            empty = torch.zeros(0, dtype=torch.int64)
            return empty, empty.clone()
        if target.prompt_index is None or target.prompt_index.numel() != num_prompts:
            got = "none" if target.prompt_index is None else str(target.prompt_index.numel())
            raise InputError(f"sample {b}: the outputs have {num_prompts} prompt queries but targets.prompt_index has"
                             f" {got} entries; give one target row (or -1) per prompt")
        index = target.prompt_index.cpu()
        supervised = index >= 0
        if outputs.prompt_valid is not None:
            supervised &= outputs.prompt_valid[b].cpu()
        queries = supervised.nonzero().flatten()
        return queries, index[queries]

    def _normalisers(self, labels: list[torch.Tensor], prompt_index: list[torch.Tensor], num_learned: int,
                     batch: int, device: torch.device) -> _Normalisers:
        """Mask counts and the class normaliser, averaged over ranks in one all_reduce, clamped to >= 1."""
        num_masks = sum(len(lab) for lab in labels) if num_learned > 0 else 0
        # every target is matched (N <= Q is enforced), every other learned query is void with weight no_object
        class_avg = num_masks + (batch * num_learned - num_masks) * self.config.no_object_weight
        num_prompt_masks = sum(len(index) for index in prompt_index)
        counts = reduce_mean(torch.tensor([num_masks, class_avg, num_prompt_masks], dtype=torch.float64,
                                          device=device))
        num_masks_mean, class_avg_mean, prompt_mean = (max(float(v), 1.0) for v in counts.tolist())
        return _Normalisers(num_masks_mean, class_avg_mean, prompt_mean)

    def _class_weights(self, num_columns: int, device: torch.device) -> torch.Tensor:
        weights = torch.ones(num_columns, device=device)
        weights[-1] = self.config.no_object_weight
        return weights

    def _learned_losses(self, stage: _Stage, num_learned: int, labels: list[torch.Tensor],
                        target_films: list[torch.Tensor], norms: _Normalisers, is_clip: bool,
                        generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """Matching and the Mask2Former losses of the learned queries of one stage."""
        cfg = self.config
        class_logits = stage.class_logits[:, :num_learned]  # B x Q x (K + 1)
        mask_logits = stage.mask_logits[:, :num_learned]
        pred_films = mask_logits.flatten(2, 3) if is_clip else mask_logits  # B x Q x H x W (clips: H = T*h)
        assignments: list[Assignment] = [
            self.matcher.match_films(class_logits[b].detach(), pred_films[b].detach(), labels[b], target_films[b],
                                     _of_sample(generator, b))
            for b in range(class_logits.shape[0])
        ]

        num_classes = class_logits.shape[-1] - 1
        class_targets = torch.full(class_logits.shape[:2], num_classes, dtype=torch.int64,
                                   device=class_logits.device)
        for b, (queries, rows) in enumerate(assignments):
            class_targets[b, queries] = labels[b][rows]
        logits = class_logits.flatten(0, 1).float()
        class_loss = F.cross_entropy(logits, class_targets.flatten(),
                                     weight=self._class_weights(num_classes + 1, logits.device), reduction="sum")
        terms = {"loss_cls": cfg.class_weight * class_loss / norms.class_avg}
        if stage.iou_logits is not None and cfg.objectness_weight > 0:
            matched = class_targets.ne(num_classes).flatten().float()
            focal = sigmoid_focal_loss(stage.iou_logits[:, :num_learned].flatten().float(), matched,
                                       cfg.focal_alpha, cfg.focal_gamma)
            terms["loss_iou"] = cfg.objectness_weight * focal.sum() / norms.class_avg

        pred = torch.cat([pred_films[b, queries] for b, (queries, _) in enumerate(assignments)])
        target = torch.cat([target_films[b][rows] for b, (_, rows) in enumerate(assignments)])
        counts = [len(queries) for queries, _ in assignments]
        terms.update(self._mask_losses(pred, target, norms.num_masks, "", generator, counts))
        return terms

    def _prompt_losses(self, stage: _Stage, num_learned: int, labels: list[torch.Tensor],
                       target_films: list[torch.Tensor], prompt_queries: list[torch.Tensor],
                       prompt_index: list[torch.Tensor], norms: _Normalisers, is_clip: bool,
                       generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """Losses of the prompt queries of one stage: query j against target prompt_index[j], no matching."""
        cfg = self.config
        class_logits = stage.class_logits[:, num_learned:]  # B x P x (K + 1)
        mask_logits = stage.mask_logits[:, num_learned:]
        logits = torch.cat([class_logits[b, queries] for b, queries in enumerate(prompt_queries)]).float()
        prompt_labels = torch.cat([labels[b][rows] for b, rows in enumerate(prompt_index)])
        # The official head divides the prompt class loss by max(reduce_mean(0), 1) = 1, i.e. sums it over the
        # prompts of its one sample per GPU (mask2former_vid.py:614-619, `if is_sam: cls_avg_factor =
        # cls_scores.new_tensor([0])`), skips labels -1 (:609-612) and zeroes the objectness loss (:632-633,
        # `loss_iou = loss_iou * 0`). Here the sum is per sample, averaged over the batch's samples: the official
        # value at one sample per GPU, and a batch of 2b on one rank gets what two ranks of b get (DDP averages).
        class_loss = F.cross_entropy(logits, prompt_labels, weight=self._class_weights(logits.shape[-1], logits.device),
                                     ignore_index=-1, reduction="sum") / len(prompt_queries)
        terms = {"loss_prompt_cls": cfg.class_weight * class_loss}
        pred = torch.cat([as_film(mask_logits[b, queries], is_clip) for b, queries in enumerate(prompt_queries)])
        target = torch.cat([target_films[b][rows] for b, rows in enumerate(prompt_index)])
        counts = [len(queries) for queries in prompt_queries]
        terms.update(self._mask_losses(pred, target, norms.num_prompt_masks, "_prompt", generator, counts))
        return terms

    def _mask_losses(self, pred: torch.Tensor, target: torch.Tensor, num_masks: float, infix: str,
                     generator: torch.Generator | Sequence[torch.Generator] | None,
                     counts: list[int]) -> dict[str, torch.Tensor]:
        """Mask BCE and dice of paired predicted / target films at importance-sampled points.

        Arguments:
          pred: M x H1 x W1 logits; target: M x H2 x W2 float masks (same canvas); num_masks: the normaliser.
          counts: how many of the M pairs each sample gave, in order (per-sample generators draw for their own).
        """
        cfg = self.config
        if pred.shape[0] == 0:
            zero = pred.sum()  # keeps the graph connected, as the official `mask_preds.sum()`
            return {f"loss{infix}_mask": zero, f"loss{infix}_dice": zero.clone()}
        pred = pred.unsqueeze(1).float()  # M x 1 x H1 x W1
        with torch.no_grad():
            if generator is None or isinstance(generator, torch.Generator):
                coords = uncertain_points_with_randomness(pred, cfg.num_points, cfg.oversample_ratio,
                                                          cfg.importance_sample_ratio, generator)
            else:  # each sample's masks from its own stream
                chunks = torch.split(pred, counts)
                coords = torch.cat([uncertain_points_with_randomness(chunk, cfg.num_points, cfg.oversample_ratio,
                                                                     cfg.importance_sample_ratio, generator[b])
                                    for b, chunk in enumerate(chunks) if len(chunk)])
            target_points = point_sample(target.unsqueeze(1), coords)[:, 0]  # M x P
        pred_points = point_sample(pred, coords)[:, 0]
        return {
            f"loss{infix}_mask": cfg.mask_weight * sigmoid_ce_loss(pred_points, target_points, num_masks),
            f"loss{infix}_dice": cfg.dice_weight * dice_loss(pred_points, target_points, num_masks),
        }


def _of_sample(generator: torch.Generator | Sequence[torch.Generator] | None, b: int) -> torch.Generator | None:
    """Sample b's generator: the one shared generator, or the b-th of a list."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    return generator[b]
