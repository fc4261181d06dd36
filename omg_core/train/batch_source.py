"""Where a training step's batch comes from: drawn and built in the training process, or ahead of it in worker
processes while the model trains on the previous one.

Building a batch (rendering shapes-world scenes, augmenting, collating) is a quarter of a small model's step and runs
on one core; a worker does it on other cores while the step runs (on 2 cores it only competes with the step's own
threads, so ``data_workers`` defaults to 0). Results do not change: a batch is a pure
function of its sampler entry (dataset, indices and per-sample seeds), so a worker builds exactly the batch the
training process would have built. What does change is that the sampler is drawn ahead of the step: the sampler
state a checkpoint must store is the one after the last batch the model *consumed*, which each prepared batch
carries with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset

from omg_core.train.batch import TrainingBatch, collate
from omg_core.train.datasets import TrainingDataset
from omg_core.train.sampler import CoTrainingSampler, SamplerBatch

#: Batches each worker keeps ready: enough to hide a slow batch, few enough that memory stays small.
BATCHES_AHEAD_PER_WORKER = 2


@dataclass
class PreparedBatch:
    """One step's batch, the seeds of its loss points, and the sampler state right after it was drawn.

    batch: the collated batch (on the CPU).
    point_seeds: one loss-point seed per sample, derived from its sampler seed (so equal on any rank and after a
      resume).
    sampler_state: ``CoTrainingSampler.state_dict()`` after this batch: a checkpoint taken once it is consumed
      resumes with the next batch.
    """

    batch: TrainingBatch
    point_seeds: list[int]
    sampler_state: dict[str, Any]


def prepare(spec: SamplerBatch, datasets: Sequence[TrainingDataset], prompt_encoding: str,
            sampler_state: dict[str, Any]) -> PreparedBatch:
    """Build the batch of one sampler entry (in any process: it depends on nothing but its arguments)."""
    dataset = datasets[spec.dataset]
    samples = [dataset.get(index, np.random.default_rng(seed)) for index, seed in zip(spec.indices, spec.seeds)]
    point_seeds = [int(np.random.default_rng([seed, 1]).integers(0, 2**62)) for seed in spec.seeds]
    return PreparedBatch(collate(samples, dataset, prompt_encoding), point_seeds, sampler_state)


class BatchSource:
    """The stream of prepared batches a trainer consumes, from the sampler's current position.

    Arguments:
      sampler: the run's sampler (drawn from here on; with workers it runs ahead of the consumed batches).
      datasets: the run's datasets, indexed as the sampler's entries.
      prompt_encoding: the model's prompt encoding (how clicks become prompts in a batch).
      num_workers: 0 builds each batch in this process when it is asked for; N > 0 builds them ahead in N worker
        processes (forked, so the datasets are shared, not pickled).
    """

    def __init__(self, sampler: CoTrainingSampler, datasets: Sequence[TrainingDataset], prompt_encoding: str,
                 num_workers: int) -> None:
        self.sampler = sampler
        self.datasets = list(datasets)
        self.prompt_encoding = prompt_encoding
        self.num_workers = num_workers
        self._loader_iterator: Iterator[PreparedBatch] | None = None

    def next(self) -> PreparedBatch:
        if self.num_workers == 0:
            spec = self.sampler.next_batch()
            return prepare(spec, self.datasets, self.prompt_encoding, self.sampler.state_dict())
        if self._loader_iterator is None:
            loader = DataLoader(_Prepare(self.datasets, self.prompt_encoding), batch_size=None,
                                sampler=_Entries(self.sampler), num_workers=self.num_workers,
                                prefetch_factor=BATCHES_AHEAD_PER_WORKER, collate_fn=_as_is,
                                multiprocessing_context="fork")
            self._loader_iterator = iter(loader)
        return next(self._loader_iterator)

    def close(self) -> None:
        """Stop the workers (the batches they prepared ahead are dropped; the sampler is ahead of the consumed
        ones, so continue from a consumed batch's ``sampler_state``)."""
        if self._loader_iterator is not None:
            shutdown = getattr(self._loader_iterator, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
            self._loader_iterator = None


class _Entries:
    """The sampler as a DataLoader sampler: each entry with the sampler state after it."""

    def __init__(self, sampler: CoTrainingSampler) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[tuple[SamplerBatch, dict[str, Any]]]:
        while True:
            spec = self.sampler.next_batch()
            yield spec, self.sampler.state_dict()


class _Prepare(Dataset):
    """A DataLoader dataset whose "index" is a sampler entry."""

    def __init__(self, datasets: Sequence[TrainingDataset], prompt_encoding: str) -> None:
        self.datasets = datasets
        self.prompt_encoding = prompt_encoding

    def __getitem__(self, entry: tuple[SamplerBatch, dict[str, Any]]) -> PreparedBatch:
        spec, state = entry
        return prepare(spec, self.datasets, self.prompt_encoding, state)


def _as_is(prepared: PreparedBatch) -> PreparedBatch:
    return prepared
