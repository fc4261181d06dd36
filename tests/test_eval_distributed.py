"""Two gloo processes, each given half the images: synced figures equal the single-process figures on all images."""

from __future__ import annotations

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

from omg_eval.instance import CocoMaskAP  # noqa: E402
from omg_eval.interactive import InteractiveSegmentation  # noqa: E402
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
        metric.sync()
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
