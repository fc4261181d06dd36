"""DAVIS-2017 unsupervised protocol: proposals are matched one-to-one to ground-truth objects before J and F.

As ``davis2017-evaluation`` (``DAVISEvaluation._evaluate_unsupervised``): every frame is scored, void pixels (255) are
removed from both masks, each (proposal, object) pair gets its mean J and mean F over frames, and the Hungarian
assignment maximising (mean J + mean F) / 2 decides which proposal scores each object (missing proposals score as
empty masks). At most 20 proposals are allowed.
"""

from __future__ import annotations

import numpy as np
import torch

from omg_eval.kernels.boundary_f import boundary_match_counts
from omg_eval.vos_statistics import f_measure_from_counts, jaccard_from_counts

MAX_PROPOSALS = 20


def matched_object_scores(
    pred_ids: torch.Tensor, gt_ids: torch.Tensor, num_objects: int, radius: int, void_id: int = 255
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J and F of the proposal assigned to each ground-truth object.

    Arguments:
      pred_ids: (T, H, W) uint8 proposal ids (0 background, 1..P proposals, P <= 20).
      gt_ids: (T, H, W) uint8 ground-truth ids (objects 1..num_objects, void ``void_id``).
      num_objects: K, the objects of the first ground-truth frame.
      radius: boundary dilation radius of F.

    Returns:
      (J (K, T), F (K, T)) float64, rows in the order of the assigned proposals (the official's order).
    """
    try:
        from scipy.optimize import linear_sum_assignment  # the official's solver, so that ties resolve identically
    except ImportError as error:
        raise ImportError("the unsupervised DAVIS protocol needs scipy: pip install scipy") from error

    num_proposals = int(pred_ids.max()) if pred_ids.numel() else 0
    if num_proposals > MAX_PROPOSALS:
        raise ValueError(
            f"the prediction holds proposal id {num_proposals}; the unsupervised protocol allows at most "
            f"{MAX_PROPOSALS} proposals per sequence"
        )
    num_rows = max(num_proposals, num_objects)  # missing proposals are empty masks, as the official zero padding
    valid = gt_ids != void_id  # T x H x W
    gt_masks = (gt_ids[None] == torch.arange(1, num_objects + 1, dtype=gt_ids.dtype)[:, None, None, None]) & valid
    j_values = np.zeros((num_rows, num_objects, gt_ids.shape[0]))
    f_values = np.zeros_like(j_values)
    for proposal in range(num_rows):
        pred_mask = (pred_ids == proposal + 1) & valid  # T x H x W
        intersections = (gt_masks & pred_mask[None]).flatten(2).sum(2)  # K x T
        unions = (gt_masks | pred_mask[None]).flatten(2).sum(2)  # K x T
        j_values[proposal] = jaccard_from_counts(intersections, unions)
        repeated = pred_mask[None].expand_as(gt_masks)
        counts = boundary_match_counts(repeated.flatten(0, 1), gt_masks.flatten(0, 1), radius).cpu()  # K*T x 4
        f_values[proposal] = f_measure_from_counts(counts.view(num_objects, -1, 4))
    pair_scores = (j_values.mean(axis=2) + f_values.mean(axis=2)) / 2  # P x K
    rows, cols = linear_sum_assignment(-pair_scores)
    return j_values[rows, cols], f_values[rows, cols]
