"""Interactive segmentation: the click simulation behind NoC@85/90 and mIoU@1click, 100 objects x up to 20 clicks.

Group ``interactive-noc-clicks``: ours (``simulate_clicks`` + ``InteractiveSegmentation``) against the same protocol
computed the straightforward way, as RITM's clicker does it: the distance transforms of the missed and the added
pixels over the whole image at every click. Ours runs them on the errors' bounding box. Both sides drive the same simulated model; the clicks and the figures are checked equal
before anything is timed; both use the same IoU function, so the ratio is the cost of choosing the clicks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from omg_eval.interactive import InteractiveSegmentation, simulate_clicks
from omg_eval.interactive_clicks import Click, mask_iou

NUM_OBJECTS, HEIGHT, WIDTH, MAX_CLICKS = 100, 480, 640, 20
FIX_RADIUS = 24  # the simulated model corrects its mask within this distance of the newest click


def _objects(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(ground-truth mask, the model's first guess) per object: ellipses of 20-200 px with an extra lobe; the guess
    misses some blocks of the object and adds some outside it, so several clicks of both signs are needed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    objects = []
    for _ in range(NUM_OBJECTS):
        cy, cx = rng.integers(40, HEIGHT - 40), rng.integers(40, WIDTH - 40)
        ry, rx = rng.integers(10, 100, size=2)
        gt = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        ly, lx = cy + rng.integers(-ry, ry + 1), cx + rng.integers(-rx, rx + 1)
        gt |= ((yy - ly) / max(ry // 2, 4)) ** 2 + ((xx - lx) / max(rx // 2, 4)) ** 2 <= 1
        guess = gt.copy()
        for _ in range(int(rng.integers(1, 6))):
            y, x = rng.integers(0, HEIGHT - 8), rng.integers(0, WIDTH - 8)
            h, w = rng.integers(8, 60, size=2)
            guess[y : y + h, x : x + w] = rng.random() < 0.5
        objects.append((torch.from_numpy(gt), torch.from_numpy(guess)))
    return objects


def _model(gt: torch.Tensor, guess: torch.Tensor):
    """A stand-in interactive model: its first guess, corrected around every click (cheap, same for both sides)."""

    def predict(clicks, previous: torch.Tensor) -> torch.Tensor:
        mask = (guess if len(clicks) == 1 else previous).numpy().copy()  # NumPy: no thread pool for a tiny update
        click = clicks[-1]
        rows = slice(max(click.y - FIX_RADIUS, 0), click.y + FIX_RADIUS + 1)
        cols = slice(max(click.x - FIX_RADIUS, 0), click.x + FIX_RADIUS + 1)
        mask[rows, cols] = gt.numpy()[rows, cols]
        return torch.from_numpy(mask)

    return predict


def full_image_next_click(gt: np.ndarray, pred: np.ndarray, clicked: tuple[Click, ...] = (),
                          ignore: np.ndarray | None = None) -> Click | None:
    """RITM's ``Clicker._get_next_click`` the straightforward way: whole-image distance transforms (zero-padded, in
    float32 as cv2's), clicked pixels zeroed, positive only when the missed depth is strictly larger, the first
    deepest pixel in raster order; None when no error is left."""
    keep = np.ones_like(gt) if ignore is None else ~ignore
    missed, added = gt & ~pred & keep, ~gt & pred & keep
    if not (missed.any() or added.any()):
        return None
    not_clicked = np.ones(gt.shape, dtype=np.float32)
    for click in clicked:
        not_clicked[click.y, click.x] = 0

    def depth(region: np.ndarray) -> np.ndarray:
        return ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1].astype(np.float32) * not_clicked

    depth_missed, depth_added = depth(missed), depth(added)
    positive = bool(depth_missed.max() > depth_added.max())
    chosen = depth_missed if positive else depth_added
    ys, xs = np.nonzero(chosen == chosen.max())
    return Click(y=int(ys[0]), x=int(xs[0]), positive=positive)


def _reference(objects) -> tuple[dict, list[list[float]]]:
    sequences = []
    for gt, guess in objects:
        predict, gt_np = _model(gt, guess), gt.numpy()
        clicks: list[Click] = []
        mask = torch.zeros_like(gt)
        ious = []
        for _ in range(MAX_CLICKS):
            click = full_image_next_click(gt_np, mask.numpy(), tuple(clicks))
            if click is None:
                break
            clicks.append(click)
            mask = predict(clicks, mask)
            ious.append(mask_iou(mask, gt))
        sequences.append(ious)
    metric = InteractiveSegmentation()
    metric.update(click_ious=sequences)
    return metric.compute(), sequences


def _ours(objects) -> tuple[dict, list[list[float]]]:
    sequences = [simulate_clicks(_model(gt, guess), gt, max_clicks=MAX_CLICKS) for gt, guess in objects]
    metric = InteractiveSegmentation()
    metric.update(click_ious=sequences)
    return metric.compute(), sequences


@pytest.fixture(scope="module")
def objects() -> list[tuple[torch.Tensor, torch.Tensor]]:
    return _objects()


@pytest.mark.benchmark(group="interactive-noc-clicks")
def test_interactive_reference_full_image(benchmark, objects) -> None:
    benchmark.extra_info["role"] = "reference"
    (theirs, their_ious), (mine, my_ious) = _reference(objects), _ours(objects)
    assert my_ious == their_ious  # same clicks, so the same masks and IoUs after every click (no box prompts here)
    assert {k: v for k, v in mine.items() if k != "mIoU@box"} == {k: v for k, v in theirs.items() if k != "mIoU@box"}
    assert 1 < theirs["NoC@85"] < MAX_CLICKS  # the protocol is exercised: several clicks, not all failures
    benchmark.pedantic(_reference, args=(objects,), rounds=1, iterations=1)


@pytest.mark.benchmark(group="interactive-noc-clicks")
def test_interactive_ours(benchmark, objects) -> None:
    benchmark.extra_info["role"] = "ours"
    benchmark.pedantic(_ours, args=(objects,), rounds=2, iterations=1)
