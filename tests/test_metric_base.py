"""The Metric base: declared states, reset, merging, sync / unsync semantics, and the errors for bad declarations.

The sync tests here fake a two-rank ``torch.distributed`` in one process (the other rank holds the same states, so a
reduction doubles sums); tests/test_eval_distributed.py runs the real thing on two gloo processes.
"""

from __future__ import annotations

import pytest
import torch

from omg_eval import metric as metric_module
from omg_eval.collection import MetricCollection
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


def test_sync_outside_distributed_moves_no_data() -> None:
    metric = CountAndCollect()
    metric.update(torch.tensor([1, 1]), 1.0, "a")
    metric.sync()
    assert metric.is_synced
    assert metric.compute()["total"] == [1, 1]
    metric.unsync()
    assert not metric.is_synced
    metric.update(torch.tensor([1, 1]), 1.0, "b")
    assert metric.compute() == {"total": [2, 2], "largest": 1.0, "names": ["a", "b"]}


class FakeTwoRanks:
    """``torch.distributed`` as seen by rank 0 of two ranks whose other rank holds the same states."""

    def __init__(self) -> None:
        self.collectives = 0
        self.ReduceOp = torch.distributed.ReduceOp

    def is_available(self) -> bool:
        return True

    def is_initialized(self) -> bool:
        return True

    def get_world_size(self, group=None) -> int:
        return 2

    def all_reduce(self, tensor: torch.Tensor, op, group=None) -> None:
        self.collectives += 1
        if op == self.ReduceOp.SUM:
            tensor.mul_(2)

    def all_gather_object(self, out: list, value, group=None) -> None:
        self.collectives += 1
        out[:] = [list(value), list(value)]


@pytest.fixture
def two_ranks(monkeypatch: pytest.MonkeyPatch) -> FakeTwoRanks:
    fake = FakeTwoRanks()
    monkeypatch.setattr(metric_module, "dist", fake)
    return fake


def test_a_second_sync_cannot_double_count(two_ranks: FakeTwoRanks) -> None:
    metric = CountAndCollect()
    metric.update(torch.tensor([1, 2]), 0.5, "a")
    metric.sync()
    metric.sync()  # no-op: the states are reduced once
    assert metric.total.tolist() == [2, 4]
    assert metric.names == ["a", "a"]
    assert metric.compute()["total"] == [2, 4]  # computes on the synced states, syncs nothing more
    assert metric.is_synced and metric.total.tolist() == [2, 4]  # and leaves the caller's sync in force
    with metric.sync_context():  # nested in the explicit sync: left alone on exit
        assert metric.total.tolist() == [2, 4]
    assert metric.is_synced
    assert two_ranks.collectives == 3  # one sync: two all-reduces and one all-gather
    metric.unsync()
    metric.unsync()  # no-op
    assert metric.total.tolist() == [1, 2] and metric.names == ["a"]


def test_update_and_merge_refuse_a_synced_metric(two_ranks: FakeTwoRanks) -> None:
    metric = CountAndCollect()
    metric.update(torch.tensor([1, 2]), 0.5, "a")
    metric.sync()
    with pytest.raises(RuntimeError, match=r"CountAndCollect\.update called on a synced metric.*unsync\(\)"):
        metric.update(torch.tensor([1, 1]), 0.5, "b")
    with pytest.raises(RuntimeError, match="merge_state called on a synced metric"):
        metric.merge_state(CountAndCollect().state_dict())
    metric.unsync()
    metric.update(torch.tensor([1, 1]), 0.5, "b")  # adds to the local states
    assert metric.total.tolist() == [2, 3]


def test_compute_syncs_then_restores_the_local_states(two_ranks: FakeTwoRanks) -> None:
    metric = CountAndCollect()
    metric.update(torch.tensor([1, 2]), 0.5, "a")
    assert metric.compute() == {"total": [2, 4], "largest": 0.5, "names": ["a", "a"]}
    assert not metric.is_synced and metric.total.tolist() == [1, 2] and metric.names == ["a"]
    metric.update(torch.tensor([1, 0]), 0.75, "b")  # not cached: the next compute sees the new batch
    assert metric.compute() == {"total": [4, 4], "largest": 0.75, "names": ["a", "a", "b", "b"]}
    assert metric.total.tolist() == [2, 2]
    with metric.sync_context():
        assert metric.total.tolist() == [4, 4]
    assert metric.total.tolist() == [2, 2]
    metric.sync()
    metric.reset()  # a reset drops the sync with the states
    assert not metric.is_synced and metric.compute()["total"] == [0, 0]


def test_a_failed_collective_leaves_the_local_states(two_ranks: FakeTwoRanks, monkeypatch) -> None:
    metric = CountAndCollect()
    metric.update(torch.tensor([1, 2]), 0.5, "a")

    def broken(out: list, value, group=None) -> None:
        raise RuntimeError("connection reset")

    monkeypatch.setattr(two_ranks, "all_gather_object", broken)
    with pytest.raises(RuntimeError, match="connection reset"):
        metric.compute()
    assert not metric.is_synced and metric.total.tolist() == [1, 2] and metric.names == ["a"]


class CountTwice(CountAndCollect):
    """A subclass whose compute builds on its parent's: one sync for the whole call."""

    def compute(self) -> dict:
        figures = super().compute()
        figures["double"] = [2 * value for value in self.total.tolist()]
        return figures


def test_a_subclass_calling_super_compute_syncs_once(two_ranks: FakeTwoRanks) -> None:
    metric = CountTwice()
    metric.update(torch.tensor([1, 2]), 0.5, "a")
    figures = metric.compute()
    assert figures["total"] == [2, 4] and figures["double"] == [4, 8]
    assert two_ranks.collectives == 3
    assert metric.total.tolist() == [1, 2]


def test_collection_syncs_its_members_together(two_ranks: FakeTwoRanks) -> None:
    first, second = CountAndCollect(), CountAndCollect()
    collection = MetricCollection({"first": first, "second": second})
    collection.update(torch.tensor([1, 2]), 0.5, "a")
    assert collection.compute()["first/total"] == [2, 4]
    assert two_ranks.collectives == 6  # each member synced once
    assert first.total.tolist() == [1, 2] and not first.is_synced and not collection.is_synced
    second.sync()  # a member synced by its owner is left synced by the collection's unsync
    collection.sync()
    collection.sync()
    assert first.total.tolist() == [2, 4] and second.total.tolist() == [2, 4]
    with pytest.raises(RuntimeError, match="MetricCollection.update called on a synced metric"):
        collection.update(torch.tensor([1, 1]), 0.5, "b")
    collection.unsync()
    assert first.total.tolist() == [1, 2] and second.is_synced and second.total.tolist() == [2, 4]
    second.unsync()
    collection.update(torch.tensor([1, 1]), 0.5, "b")
    assert collection.compute()["second/total"] == [4, 6]


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
