"""The Metric base: declared states, reset, merging, and the errors for bad declarations."""

from __future__ import annotations

import pytest
import torch

from omg_eval.metric import Metric


class CountAndCollect(Metric):
    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.zeros(2, dtype=torch.int64), "sum")
        self.add_state("largest", torch.full((), -1.0), "max")
        self.add_state("names", [], "cat")

    def update(self, counts: torch.Tensor, score: float, name: str) -> None:
        self.total += counts
        self.largest = torch.maximum(self.largest, torch.tensor(score))
        self.names.append(name)

    def compute(self) -> dict:
        return {"total": self.total.tolist(), "largest": float(self.largest), "names": sorted(self.names)}


def test_update_compute_reset() -> None:
    metric = CountAndCollect()
    metric.update(torch.tensor([1, 2]), 0.5, "a")
    metric.update(torch.tensor([3, 4]), 0.25, "b")
    assert metric.compute() == {"total": [4, 6], "largest": 0.5, "names": ["a", "b"]}
    metric.reset()
    assert metric.compute() == {"total": [0, 0], "largest": -1.0, "names": []}


def test_merging_two_shards_equals_one_pass() -> None:
    whole, first, second = CountAndCollect(), CountAndCollect(), CountAndCollect()
    samples = [(torch.tensor([1, 0]), 0.1, "x"), (torch.tensor([0, 5]), 0.9, "y"), (torch.tensor([2, 2]), 0.3, "z")]
    for sample in samples:
        whole.update(*sample)
    first.update(*samples[0])
    for sample in samples[1:]:
        second.update(*sample)
    first.merge_state(second.state_dict())
    assert first.compute() == whole.compute()


def test_sync_outside_distributed_is_a_no_op() -> None:
    metric = CountAndCollect()
    metric.update(torch.tensor([1, 1]), 1.0, "a")
    metric.sync()
    assert metric.compute()["total"] == [1, 1]


@pytest.mark.parametrize(
    ("default", "reduction", "message"),
    [
        (torch.zeros(1), "mean", "must be 'sum', 'max', 'min' or 'cat'"),
        ([1], "cat", "must start empty"),
        ([], "sum", "only be reduced with 'cat'"),
        (0, "sum", "must be a tensor or an empty list"),
    ],
)
def test_bad_state_declarations(default, reduction, message) -> None:
    metric = CountAndCollect()
    with pytest.raises((ValueError, TypeError), match=message):
        metric.add_state("bad", default, reduction)
