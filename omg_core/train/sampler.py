"""The co-training sampler: an endless, seeded stream of single-dataset batches mixed by dataset ratios.

Why single-dataset batches: OMG-Seg's families cannot share a batch (images vs clips, learned queries vs prompt
queries, one vocabulary per dataset). The official data pipeline keeps every batch within one source too:
`MultiDataAspectRatioBatchSampler` (seg/datasets/samplers/batch_sampler.py) buckets indices per dataset source, and
the 12-epoch co-training config runs one sample per GPU. How often a dataset is picked follows the official
`MultiDataSampler` (seg/datasets/samplers/multi_dataset_sampler.py): its per-sample weights
max(sizes) / size * ratio / sum(ratios) give dataset d a share ratio_d / sum(ratios) of the draws whatever its
size. Here each batch picks its dataset with probability ratio_d / sum(ratios), and walks that dataset's shuffled
order (a fresh permutation per pass), so every sample of a dataset is seen once per pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

_STATE_VERSION = 1


class SamplerBatch(tuple):
    """One batch: the 2-tuple (dataset index, sample indices), unpackable as such, that also carries

      seeds: one integer per sample, for `np.random.default_rng(seed)` (clip start, augmentation, prompts); it
        depends on the global position in the batch, not the rank, so sharded runs draw the same samples;
      step: the batch's number in the stream (0-based).
    """

    seeds: list[int]
    step: int

    def __new__(cls, dataset: int, indices: list[int], seeds: list[int], step: int) -> SamplerBatch:
        batch = super().__new__(cls, (dataset, indices))
        batch.seeds = seeds
        batch.step = step
        return batch

    def __getnewargs__(self) -> tuple[int, list[int], list[int], int]:  # type: ignore[override]
        return self[0], self[1], self.seeds, self.step

    @property
    def dataset(self) -> int:
        return self[0]

    @property
    def indices(self) -> list[int]:
        return self[1]

    def __repr__(self) -> str:
        return f"SamplerBatch(step={self.step}, dataset={self[0]}, indices={self[1]})"


class CoTrainingSampler:
    """An infinite, deterministic stream of batches, each from ONE dataset, for one rank.

    Distributed use: every rank builds the sampler with the same arguments and its own `rank`. Step k draws one
    global batch of `batch_size * world_size` indices from one dataset and rank r takes the slice
    [r * batch_size, (r + 1) * batch_size). So a run with world_size=2 and batch_size=b sees, step by step, exactly
    the samples (and per-sample seeds) that world_size=1 with batch_size=2b sees, and concatenating the ranks'
    batches in rank order gives that batch in the same order: the equivalence the training loop's DDP test
    relies on. The state is the same on every rank and does not depend on the rank.

    Arguments:
      dataset_sizes: the length of each dataset (>= 1).
      ratios: positive mixing weights, one per dataset (normalised here).
      batch_size: samples per batch on this rank.
      seed: the stream's seed (the same on every rank).
      rank: this process's rank in [0, world_size).
      world_size: number of processes.
    """

    def __init__(
        self,
        dataset_sizes: Sequence[int],
        ratios: Sequence[float],
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not dataset_sizes:
            raise ValueError("CoTrainingSampler needs at least one dataset")
        if len(dataset_sizes) != len(ratios):
            raise ValueError(f"{len(dataset_sizes)} dataset sizes but {len(ratios)} ratios; give one ratio per dataset")
        if any(int(size) < 1 for size in dataset_sizes):
            raise ValueError(f"every dataset needs at least one sample, got sizes {list(dataset_sizes)}")
        weights = np.asarray(ratios, dtype=np.float64)
        if not (np.isfinite(weights).all() and (weights > 0).all()):
            raise ValueError(f"ratios must be finite and > 0, got {list(ratios)}")
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need batch_size >= 1 and 0 <= rank < world_size, got {batch_size}, {rank}, {world_size}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.dataset_sizes = [int(size) for size in dataset_sizes]
        self.ratios = [float(r) for r in ratios]
        self.probabilities = weights / weights.sum()
        self._cumulative = np.cumsum(self.probabilities)
        self.batch_size = int(batch_size)
        self.world_size = int(world_size)
        self.rank = int(rank)
        self.global_batch_size = self.batch_size * self.world_size
        self.seed = int(seed)
        self.step = 0
        self._cursors = [[0, 0] for _ in self.dataset_sizes]  # per dataset: [pass, offset into that pass's order]
        self._orders: dict[int, tuple[int, np.ndarray]] = {}  # dataset -> (pass, its permutation)

    # ------------------------------------------------------------------------------------------ stream
    def __iter__(self) -> Iterator[SamplerBatch]:
        return self

    def __next__(self) -> SamplerBatch:
        return self.next_batch()

    def next_batch(self) -> SamplerBatch:
        """This rank's next batch; advances the state by one step."""
        # one generator per step: any step is reproducible from (seed, step) and the cursors alone
        rng = np.random.default_rng([self.seed, self.step])
        dataset = int(np.searchsorted(self._cumulative, rng.random() * self._cumulative[-1], side="right"))
        dataset = min(dataset, len(self.dataset_sizes) - 1)  # guards u * total landing exactly on the last edge
        seeds = rng.integers(0, 2**63 - 1, size=self.global_batch_size).tolist()
        indices = self._take(dataset, self.global_batch_size)
        start = self.rank * self.batch_size
        batch = SamplerBatch(dataset, indices[start : start + self.batch_size], seeds[start : start + self.batch_size],
                             self.step)
        self.step += 1
        return batch

    def _order(self, dataset: int, pass_index: int) -> np.ndarray:
        cached = self._orders.get(dataset)
        if cached is None or cached[0] != pass_index:
            permutation = np.random.default_rng([self.seed, 1, dataset, pass_index]).permutation(
                self.dataset_sizes[dataset]
            )
            cached = (pass_index, permutation)
            self._orders[dataset] = cached
        return cached[1]

    def _take(self, dataset: int, count: int) -> list[int]:
        """The next `count` indices of `dataset`'s shuffled order, continuing into the next pass when one ends."""
        size = self.dataset_sizes[dataset]
        cursor = self._cursors[dataset]
        taken: list[int] = []
        while len(taken) < count:
            order = self._order(dataset, cursor[0])
            chunk = order[cursor[1] : cursor[1] + count - len(taken)]
            taken.extend(int(i) for i in chunk)
            cursor[1] += len(chunk)
            if cursor[1] == size:
                cursor[0] += 1
                cursor[1] = 0
        return taken

    # ------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The exact position (JSON-able): after `load_state_dict` a sampler continues with the same batches."""
        return {
            "version": _STATE_VERSION,
            "step": self.step,
            "cursors": [list(cursor) for cursor in self._cursors],
            "seed": self.seed,
            "dataset_sizes": list(self.dataset_sizes),
            "ratios": list(self.ratios),
            "global_batch_size": self.global_batch_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores a `state_dict`; the datasets, ratios, seed and global batch size must be the ones it was taken
        with (the world size may differ when the global batch is the same)."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"sampler state version {state.get('version')!r} is not {_STATE_VERSION}")
        for key, mine in (
            ("seed", self.seed),
            ("dataset_sizes", self.dataset_sizes),
            ("ratios", self.ratios),
            ("global_batch_size", self.global_batch_size),
        ):
            if state[key] != mine:
                raise ValueError(f"sampler state has {key}={state[key]!r} but this sampler has {mine!r}; resume with "
                                 "the datasets, ratios, seed and global batch size of the saved run")
        cursors = [[int(p), int(o)] for p, o in state["cursors"]]
        if len(cursors) != len(self.dataset_sizes) or any(
            p < 0 or not 0 <= o < size for (p, o), size in zip(cursors, self.dataset_sizes)
        ):
            raise ValueError(f"sampler state has invalid cursors {state['cursors']!r}")
        self.step = int(state["step"])
        self._cursors = cursors
