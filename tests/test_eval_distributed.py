"""Two gloo processes, each given half the images: figures equal the single-process figures on all images.

``compute`` syncs by itself (no ``sync()`` call), and restores each rank's local states afterwards, so evaluating
after every round of updates gives the global figures so far each time.
"""

from __future__ import annotations

import copy
import json
import pickle
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_eval_instance import CATEGORY_IDS, _dataset  # noqa: E402
from test_eval_panoptic import _load_fixture  # noqa: E402
from test_metric_base import CountAndCollect  # noqa: E402

from omg_eval.instance import CocoMaskAP  # noqa: E402
from omg_eval.interactive import InteractiveSegmentation  # noqa: E402
from omg_eval.metric import Metric  # noqa: E402
from omg_eval.panoptic import PanopticQuality  # noqa: E402
from omg_eval.semantic import SemanticSegmentation  # noqa: E402


def _evaluate(rank: int, world_size: int) -> dict:
    """Every metric on the images i with i % world_size == rank, synced when distributed."""
    categories, gt_maps, pred_maps, gt_infos, pred_infos = _load_fixture()
    mine = [i for i in range(len(gt_maps)) if i % world_size == rank]
    panoptic = PanopticQuality(categories)
    panoptic.update(
        [pred_maps[i] for i in mine],
        [pred_infos[i] for i in mine],
        [gt_maps[i] for i in mine],
        [gt_infos[i] for i in mine],
    )
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (6, 8, 9), generator=generator)
    predictions = torch.where(torch.rand(6, 8, 9, generator=generator) < 0.7, labels, 2)
    labels[0, :2] = 255
    semantic = SemanticSegmentation(5)
    semantic.update(predictions[rank::world_size], labels[rank::world_size])
    gt, results = _dataset(5, False)
    instance = CocoMaskAP(CATEGORY_IDS)
    for position, image in enumerate(sorted(gt["images"], key=lambda i: i["id"])):
        if position % world_size == rank:
            instance.update(
                image["id"],
                image["height"],
                image["width"],
                [a for a in gt["annotations"] if a["image_id"] == image["id"]],
                [r for r in results if r["image_id"] == image["id"]],
            )
    interactive = InteractiveSegmentation()
    sequences = [[0.5, 0.9], [0.87], [0.2] * 20, [0.95]]
    interactive.update(click_ious=sequences[rank::world_size], box_ious=[0.3, 0.6][rank::world_size])
    figures = {}
    for name, metric in (
        ("panoptic", panoptic),
        ("semantic", semantic),
        ("instance", instance),
        ("interactive", interactive),
    ):
        figures[name] = metric.compute()
    figures["instance"].pop("precision")
    figures["instance"].pop("recall")
    return figures


def _worker(rank: int, world_size: int, directory: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{directory}/rendezvous", rank=rank, world_size=world_size)
    try:
        figures = _evaluate(rank, world_size)
    finally:
        dist.destroy_process_group()
    Path(directory, f"rank{rank}.pkl").write_bytes(pickle.dumps(figures))


def test_two_gloo_processes_equal_one(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    single = _evaluate(0, 1)
    for rank in range(2):
        synced = pickle.loads((tmp_path / f"rank{rank}.pkl").read_bytes())
        # float sums may add in another order across ranks: compare through JSON at full repr precision
        assert json.dumps(synced, sort_keys=True, default=str) == json.dumps(single, sort_keys=True, default=str) or (
            _close(synced, single)
        )


def _close(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return a == b or abs(a - b) <= 1e-12 or (a != a and b != b)
    return a == b


# update / compute / update / compute on two ranks: ROUNDS rounds, and rank r's batch of round k is group 2 * k + r


ROUNDS, RANKS = 2, 2


def _metrics() -> dict[str, Metric]:
    categories = _load_fixture()[0]
    return {"count": CountAndCollect(), "semantic": SemanticSegmentation(5), "panoptic": PanopticQuality(categories)}


def _update_with_group(metrics: dict[str, Metric], group: int, fixture) -> None:
    """Feed every metric the batch of one group (a different batch for each group)."""
    metrics["count"].update(torch.tensor([group + 1, 10 * group]), 0.1 * ((group * 7) % 4), f"group{group}")
    generator = torch.Generator().manual_seed(group)
    labels = torch.randint(0, 5, (2, 8, 9), generator=generator)
    predictions = torch.where(torch.rand(2, 8, 9, generator=generator) < 0.7, labels, 2)
    labels[0, : group + 1] = 255
    metrics["semantic"].update(predictions, labels)
    _, gt_maps, pred_maps, gt_infos, pred_infos = fixture
    mine = [i for i in range(len(gt_maps)) if i % (ROUNDS * RANKS) == group]
    metrics["panoptic"].update(
        [pred_maps[i] for i in mine], [pred_infos[i] for i in mine], [gt_maps[i] for i in mine], [gt_infos[i] for i in mine]
    )


def _states(metrics: dict[str, Metric]) -> dict[str, dict]:
    return {name: {k: copy.deepcopy(v) for k, v in m.state_dict().items()} for name, m in metrics.items()}


def _rounds_worker(rank: int, world_size: int, directory: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{directory}/rendezvous", rank=rank, world_size=world_size)
    fixture = _load_fixture()
    metrics = _metrics()
    record: dict = {"figures": [], "local_states": []}
    try:
        for round_index in range(ROUNDS):
            _update_with_group(metrics, RANKS * round_index + rank, fixture)
            record["figures"].append({name: metric.compute() for name, metric in metrics.items()})
            record["local_states"].append(_states(metrics))
        for metric in metrics.values():
            metric.sync()
            metric.sync()  # a second sync before unsync reduces nothing again
        record["synced_states"] = _states(metrics)
        try:
            metrics["count"].update(torch.tensor([1, 1]), 0.0, "late")
        except RuntimeError as error:
            record["update_while_synced"] = str(error)
        for metric in metrics.values():
            metric.unsync()
        record["unsynced_states"] = _states(metrics)
    finally:
        dist.destroy_process_group()
    Path(directory, f"rank{rank}.pkl").write_bytes(pickle.dumps(record))


def test_compute_after_each_round_on_two_gloo_processes(tmp_path: Path) -> None:
    mp.spawn(_rounds_worker, args=(RANKS, str(tmp_path)), nprocs=RANKS, join=True)
    fixture = _load_fixture()
    everything = _metrics()  # one process fed every group seen so far
    expected_figures, expected_global_states = [], None
    for round_index in range(ROUNDS):
        for rank in range(RANKS):
            _update_with_group(everything, RANKS * round_index + rank, fixture)
        expected_figures.append({name: metric.compute() for name, metric in everything.items()})
        expected_global_states = _states(everything)
    for rank in range(RANKS):
        record = pickle.loads((tmp_path / f"rank{rank}.pkl").read_bytes())
        own = _metrics()  # one process fed only this rank's groups: the local states after each compute
        for round_index in range(ROUNDS):
            _update_with_group(own, RANKS * round_index + rank, fixture)
            assert _close(record["figures"][round_index], expected_figures[round_index]), (rank, round_index)
            assert _same_states(record["local_states"][round_index], _states(own)), (rank, round_index)
        assert _same_states(record["synced_states"], expected_global_states, in_any_order=True)
        assert "update called on a synced metric" in record["update_while_synced"]
        assert _same_states(record["unsynced_states"], _states(own))
    counted = pickle.loads((tmp_path / "rank0.pkl").read_bytes())["figures"]
    assert counted[0]["count"]["total"] == [1 + 2, 0 + 10]  # groups 0 and 1, each counted once
    assert counted[1]["count"]["total"] == [1 + 2 + 3 + 4, 0 + 10 + 20 + 30]


def _same_states(a: dict, b: dict, in_any_order: bool = False) -> bool:
    """Equal states: tensors equal (float sums to 1e-12, as ranks may add in another order), lists equal."""
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, dict):
            if not _same_states(x, y, in_any_order):
                return False
        elif isinstance(x, torch.Tensor):
            if x.shape != y.shape or not torch.allclose(x, y, rtol=0, atol=1e-12, equal_nan=True):
                return False
        elif (sorted(x) if in_any_order else x) != (sorted(y) if in_any_order else y):
            return False
    return True
