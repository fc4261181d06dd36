"""Click simulation and NoC / mIoU figures on masks whose answers are derived by hand."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from omg_eval.interactive import InteractiveSegmentation, simulate_clicks
from omg_eval.interactive_clicks import Click, next_click

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_eval_interactive import full_image_next_click  # noqa: E402  (the benchmark's reference algorithm)

SQUARES = {"A": (2, 2, 10), "B": (16, 3, 6), "C": (20, 20, 3)}  # top, left, side


def _square(name: str) -> torch.Tensor:
    top, left, side = SQUARES[name]
    mask = torch.zeros(30, 30, dtype=torch.bool)
    mask[top : top + side, left : left + side] = True
    return mask


def test_first_click_is_the_deepest_missed_pixel_of_the_whole_image() -> None:
    gt = torch.zeros(12, 12, dtype=torch.bool)
    gt[3:8, 1:8] = True  # 5 x 7: depth 3 along row 5, columns 3..5; the first in row-major order wins
    gt[10:12, 10:12] = True  # smaller region
    assert next_click(gt, torch.zeros_like(gt)) == Click(y=5, x=3, positive=True)
    line_and_block = torch.zeros(6, 12, dtype=torch.bool)
    line_and_block[0, 0:10] = True  # area 10, depth 1
    line_and_block[3:6, 0:3] = True  # area 9 but depth 2 (the image border is boundary): RITM clicks the deeper one
    assert next_click(line_and_block, torch.zeros_like(line_and_block)) == Click(y=4, x=1, positive=True)


def test_equally_deep_missed_and_added_pixels_click_negative() -> None:
    gt = torch.zeros(5, 8, dtype=torch.bool)
    gt[0, 0:4] = True  # missed: depth 1
    pred = torch.zeros_like(gt)
    pred[4, 0:3] = True  # added: depth 1 too; RITM is positive only when the missed depth is strictly larger
    assert next_click(gt, pred) == Click(y=4, x=0, positive=False)


def test_a_clicked_pixel_is_never_clicked_again_and_ignored_pixels_are_no_error() -> None:
    gt = torch.zeros(5, 5, dtype=torch.bool)
    gt[1:4, 1:4] = True
    seen: list[tuple[int, int]] = []

    def deaf(clicks: Sequence[Click], previous: torch.Tensor) -> torch.Tensor:  # a model ignoring every click
        seen.append((clicks[-1].y, clicks[-1].x))
        return previous

    simulate_clicks(deaf, gt, max_clicks=3)
    assert seen == [(2, 2), (1, 1), (1, 2)]  # the centre, then the next deepest pixels in raster order
    ignore = torch.zeros_like(gt)
    ignore[1:4, 1:3] = True  # only column 3 of the object counts
    assert next_click(gt, torch.zeros_like(gt), ignore_mask=ignore) == Click(y=1, x=3, positive=True)
    only_ignored_error = gt.clone()
    only_ignored_error[2, 2] = False
    assert next_click(gt, only_ignored_error, ignore_mask=ignore) is None
    assert simulate_clicks(lambda clicks, previous: gt & ~ignore, gt, ignore_mask=ignore) == [1.0]


def test_negative_click_on_the_largest_false_positive() -> None:
    gt = _square("C")
    pred = gt | _square("A")  # the object plus a large wrong region
    click = next_click(gt, pred)
    assert click is not None and not click.positive and _square("A")[click.y, click.x]
    assert next_click(gt, gt) is None


def _region_predictor(clicks: Sequence[Click], previous: torch.Tensor) -> torch.Tensor:
    """Adds every square holding a positive click, removes those holding a negative one."""
    mask = torch.zeros_like(previous)
    for click in clicks:
        for name in SQUARES:
            square = _square(name)
            if square[click.y, click.x]:
                mask = mask | square if click.positive else mask & ~square
    return mask


def test_noc_and_first_click_iou_by_hand() -> None:
    gt = _square("A") | _square("B") | _square("C")  # areas 100, 36, 9
    ious = simulate_clicks(_region_predictor, gt)
    assert ious == pytest.approx([100 / 145, 136 / 145, 1.0], abs=1e-15)
    metric = InteractiveSegmentation()
    metric.update(click_ious=[ious], box_ious=[0.5, 0.7])
    figures = metric.compute()
    assert figures["NoC@85"] == 2 and figures["NoC@90"] == 2 and figures["NoF@90"] == 0
    assert figures["mIoU@1click"] == pytest.approx(100 / 145, abs=1e-15)
    assert figures["mIoU@box"] == pytest.approx(0.6, abs=1e-15)


def test_objects_never_reaching_a_threshold_count_max_clicks() -> None:
    metric = InteractiveSegmentation(max_clicks=20)
    metric.update(click_ious=[[0.5, 0.86, 0.88], [0.95]])
    other = InteractiveSegmentation(max_clicks=20)
    other.update(click_ious=[[0.1] * 20])
    metric.merge_state(other.state_dict())
    figures = metric.compute()
    assert figures["NoC@85"] == pytest.approx((2 + 1 + 20) / 3)
    assert figures["NoC@90"] == pytest.approx((20 + 1 + 20) / 3)
    assert figures["NoF@90"] == 2 and figures["NoF@85"] == 1
    assert math.isnan(figures["mIoU@box"])
    at_the_last_click = InteractiveSegmentation(max_clicks=20)
    at_the_last_click.update(click_ious=[[0.5] * 19 + [0.95]])
    figures = at_the_last_click.compute()  # RITM's ">=20" (over_max) counts it, a failure count does not
    assert figures["NoC@85"] == 20 and figures["NoF@85"] == 0 and figures["over_max@85"] == 1


def test_interactive_user_errors() -> None:
    metric = InteractiveSegmentation(max_clicks=3)
    with pytest.raises(ValueError, match="max_clicks is 3"):
        metric.update(click_ious=[[0.1] * 4])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metric.update(click_ious=[[0.5], [1.5]])
    with pytest.raises(ValueError, match="empty"):
        simulate_clicks(_region_predictor, torch.zeros(30, 30, dtype=torch.bool))
    assert int(metric.num_objects) == 0


def test_interactive_results_file_through_the_eval_command(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from omg_eval.cli import eval_command

    results = tmp_path / "interactive.json"
    results.write_text(json.dumps({"objects": [{"click_ious": [0.5, 0.9], "box_iou": 0.4}, {"click_ious": [0.95]}]}))
    output = tmp_path / "out.json"
    result = CliRunner().invoke(
        eval_command, ["--task", "interactive", "--predictions", str(results), "--output", str(output)]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(output.read_text())
    assert figures["NoC@90"] == 1.5 and figures["mIoU@box"] == 0.4 and figures["num_objects"] == 2
    results.write_text(json.dumps({"objects": [{"clicks": [0.5]}]}))
    result = CliRunner().invoke(eval_command, ["--task", "interactive", "--predictions", str(results)])
    assert result.exit_code != 0 and "neither 'click_ious' nor 'box_iou'" in str(result.exception)


def test_cropped_click_search_equals_the_whole_image_ritm_clicker() -> None:
    generator = torch.Generator().manual_seed(0)
    cases = []
    for _ in range(200):  # blobs touching the border, equal-size regions (ties), missed next to extra pixels
        size = (
            int(torch.randint(3, 40, (1,), generator=generator)),
            int(torch.randint(3, 40, (1,), generator=generator)),
        )
        gt = torch.rand(size, generator=generator) < 0.3
        pred = torch.rand(size, generator=generator) < 0.3
        cases.append((gt, pred))
    square = torch.zeros(20, 20, dtype=torch.bool)
    square[0:4, 0:4] = True  # in the corner: the image border is boundary
    twin = square.clone()
    twin[16:20, 16:20] = True  # two equal regions: the first in raster order wins
    cases += [(square, torch.zeros_like(square)), (twin, torch.zeros_like(twin)), (twin, twin), (~twin, twin)]
    for k, (gt, pred) in enumerate(cases):
        assert next_click(gt, pred) == full_image_next_click(gt.numpy(), pred.numpy())
        # with earlier clicks on error pixels (some on every error pixel of a small case) and ignored pixels
        errors = (gt ^ pred).nonzero().tolist()
        clicked = tuple(Click(y, x, bool(gt[y, x])) for y, x in errors[:: 1 + k % 3])
        ignore = torch.rand(gt.shape, generator=generator) < 0.1
        assert next_click(gt, pred, clicked, ignore) == full_image_next_click(gt.numpy(), pred.numpy(), clicked,
                                                                              ignore.numpy())
