"""Hungarian matching of learned queries to target segments (Mask2Former's HungarianMatcher, in the form OMG-Seg uses
through mmdet's HungarianAssigner).

The cost of giving target n to query q is

    2.0 * -softmax(class_logits[q])[label_n]          (class, over K classes + void)
  + 5.0 * mean BCE(mask_logits[q], mask_n)             (at 12,544 uniform points, the same for every pair)
  + 5.0 * dice(sigmoid(mask_logits[q]), mask_n)        (naive dice, +1 smoothing, same points)

and `scipy.optimize.linear_sum_assignment` picks the assignment of least total cost. A clip is matched as one
assignment over all its frames: masks are laid out as a film (frames stacked vertically) and the points are drawn
over the film, as OMG-Seg's video head does (seg/models/heads/mask2former_vid.py, `loss`: `mask.flatten(2, 3)`).

Costs are computed per sample in torch with one matrix product each for BCE and dice (Mask2Former's batch_sigmoid_ce /
batch_dice formulations); only the small Q x N cost matrix goes to the CPU solver.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from omg_core.errors import InputError
from omg_core.train.point_sampling import as_film, point_sample, uniform_points
from omg_core.train.targets import SegmentationTargets


class Assignment(NamedTuple):
    """Matched pairs of one sample, sorted by query: query query_index[i] is matched to target target_index[i]."""

    query_index: torch.Tensor  # M int64
    target_index: torch.Tensor  # M int64


def batch_sigmoid_ce_cost(pred_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of every prediction against every target, with one matrix product.

    Mask2Former's batch_sigmoid_ce_loss sums BCE(x, 1) over target points and BCE(x, 0) over the others with two
    products; since BCE(x, 1) - BCE(x, 0) = -x, that is sum_p BCE(x_p, 0) - x . t.

    Arguments:
      pred_logits: Q x P logits at P points.
      targets: N x P target values in [0, 1] at the same points.

    Returns:
      Q x N mean BCE over the points.
    """
    negative = F.softplus(pred_logits)  # BCE against 0
    return (negative.sum(-1, keepdim=True) - pred_logits @ targets.T) / pred_logits.shape[1]


def batch_dice_cost(pred_probs: torch.Tensor, targets: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Naive dice loss of every prediction against every target, with one matrix product.

    Arguments:
      pred_probs: Q x P probabilities at P points.
      targets: N x P target values at the same points.
      eps: smoothing added to numerator and denominator (1 in OMG-Seg's DiceCost).

    Returns:
      Q x N dice losses, 1 - (2 |p t| + eps) / (|p| + |t| + eps).
    """
    numerator = 2 * (pred_probs @ targets.T)
    denominator = pred_probs.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1 - (numerator + eps) / (denominator + eps)


class HungarianMatcher:
    """One-to-one assignment of learned queries to targets by least total cost.

    Arguments:
      cost_class: weight of the class cost (2.0 in OMG-Seg).
      cost_mask: weight of the mask BCE cost (5.0).
      cost_dice: weight of the dice cost (5.0).
      num_points: uniform points the mask costs are measured at (12,544 = 112 x 112).

    Ties: when several assignments cost the same, the solver's choice is kept; for equal costs it gives target n to
    the n-th free query in query order (tested).
    """

    def __init__(self, cost_class: float = 2.0, cost_mask: float = 5.0, cost_dice: float = 5.0,
                 num_points: int = 12544) -> None:
        self.cost_class = cost_class
        self.cost_mask = cost_mask
        self.cost_dice = cost_dice
        self.num_points = num_points

    @torch.no_grad()
    def cost_matrix(self, class_logits: torch.Tensor, pred_film: torch.Tensor, labels: torch.Tensor,
                    target_film: torch.Tensor, point_coords: torch.Tensor) -> torch.Tensor:
        """The weighted matching cost of one sample.

        Arguments:
          class_logits: Q x (K + 1) logits, last column void.
          pred_film: Q x H1 x W1 mask logits (a clip laid out by `as_film`).
          labels: N class indices in [0, K).
          target_film: N x H2 x W2 float target masks on the same canvas (any resolution).
          point_coords: 1 x P x 2 points shared by all predictions and targets.

        Returns:
          Q x N float32 costs.
        """
        num_queries, num_targets = pred_film.shape[0], target_film.shape[0]
        pred_points = point_sample(pred_film.unsqueeze(1).float(), point_coords.expand(num_queries, -1, -1))[:, 0]
        target_points = point_sample(target_film.unsqueeze(1).float(),
                                     point_coords.expand(num_targets, -1, -1))[:, 0]  # N x P
        class_cost = -class_logits.float().softmax(-1)[:, labels]
        mask_cost = batch_sigmoid_ce_cost(pred_points, target_points)
        dice_cost = batch_dice_cost(pred_points.sigmoid(), target_points)
        return class_cost * self.cost_class + mask_cost * self.cost_mask + dice_cost * self.cost_dice

    @torch.no_grad()
    def match_films(self, class_logits: torch.Tensor, pred_film: torch.Tensor, labels: torch.Tensor,
                    target_film: torch.Tensor, generator: torch.Generator | None = None,
                    point_coords: torch.Tensor | None = None) -> Assignment:
        """Matches one sample whose masks are already films (see `match`).

        Arguments:
          class_logits: Q x (K + 1); pred_film: Q x H1 x W1 logits; labels: N; target_film: N x H2 x W2 float.
          generator: draws the points when `point_coords` is None (global RNG when None too).
          point_coords: 1 x P x 2 points to use instead of drawing them.

        Returns:
          the Assignment, sorted by query.
        """
        num_queries, num_targets = pred_film.shape[0], target_film.shape[0]
        if num_targets > num_queries:
            raise InputError(f"a sample has {num_targets} targets but the model has only {num_queries} learned"
                             " queries to match them to; use more queries or fewer targets per sample")
        num_classes = class_logits.shape[-1] - 1
        if num_targets and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise InputError(f"target labels must be class indices in [0, {num_classes}) to be matched, got"
                             f" {sorted(set(labels.tolist()))}; class-agnostic (-1) targets can only supervise"
                             " prompt queries")
        # Drawn even without targets, as the official head does, so the random stream stays aligned with it.
        if point_coords is None:
            point_coords = uniform_points(1, self.num_points, pred_film.device, generator)
        empty = torch.zeros(0, dtype=torch.int64, device=pred_film.device)
        if num_targets == 0:
            return Assignment(empty, empty.clone())
        cost = self.cost_matrix(class_logits, pred_film, labels, target_film, point_coords).cpu()
        if not bool(torch.isfinite(cost).all()):
            raise ValueError("the matching cost has NaN or inf entries: the model's class or mask logits are not"
                             " finite")
        rows, cols = linear_sum_assignment(cost.numpy())
        device = pred_film.device
        return Assignment(torch.as_tensor(rows, dtype=torch.int64).to(device),
                          torch.as_tensor(cols, dtype=torch.int64).to(device))

    def match(self, class_logits: torch.Tensor, mask_logits: torch.Tensor, labels: torch.Tensor,
              target_masks: torch.Tensor, generator: torch.Generator | None = None,
              point_coords: torch.Tensor | None = None) -> Assignment:
        """Matches one sample's queries to its targets.

        Arguments:
          class_logits: Q x (K + 1) logits, last column void.
          mask_logits: Q x h x w (image) or Q x T x h x w (clip) logits.
          labels: N class indices in [0, K).
          target_masks: N x H x W (image) or N x T x H x W (clip) masks (bool or float) covering the same padded
            canvas as the predictions, at any resolution.
          generator: draws the 12,544 points (global RNG when None).
          point_coords: 1 x P x 2 points in [0, 1] to use instead of drawing them.

        Returns:
          the Assignment, sorted by query; empty when N == 0. Raises InputError when N > Q.
        """
        is_clip = mask_logits.dim() == 4
        if target_masks.dim() != mask_logits.dim():
            raise InputError(f"predicted masks have shape {tuple(mask_logits.shape[1:])} per query but target masks"
                             f" {tuple(target_masks.shape[1:])}; give clip targets as N x T x H x W")
        return self.match_films(class_logits, as_film(mask_logits, is_clip), labels,
                                as_film(target_masks, is_clip).float(), generator, point_coords)

    def __call__(self, class_logits: torch.Tensor, mask_logits: torch.Tensor,
                 targets: Sequence[SegmentationTargets], generator: torch.Generator | None = None) -> list[Assignment]:
        """Matches every sample of a batch (points drawn per sample, in batch order).

        Arguments:
          class_logits: B x Q x (K + 1) logits of the learned queries.
          mask_logits: B x Q x h x w or B x Q x T x h x w logits.
          targets: B targets with masks on the same canvas as the predictions.
          generator: draws the points (global RNG when None).

        Returns:
          B Assignments.
        """
        if len(targets) != class_logits.shape[0]:
            raise InputError(f"got {len(targets)} targets for a batch of {class_logits.shape[0]} samples")
        return [self.match(class_logits[b], mask_logits[b], t.labels.to(class_logits.device),
                           t.masks.to(mask_logits.device), generator)
                for b, t in enumerate(targets)]
