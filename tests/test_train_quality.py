"""The quality table (omg_core/train/quality.py): twelve figures on a held-out shapes world, each scored right.

A fake runner answering the ground truth gives 100 everywhere; hand-made scenes with one wrong answer give the
hand-computed open-vocabulary figures; errors on seen classes leave the held-out figures alone; the CLI runs on
omg-tiny's random weights and prints every row.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from painted_answers import PAINTED_TASKS, painted_answer

from omg_core.errors import OMGError
from omg_core.model.build import create_model
from omg_core.model.predictor import OMGPredictor, display_name
from omg_core.model.vocabulary import Vocabulary, load_vocabulary
from omg_core.registry import discover_tasks
from omg_core.results import (
    PromptMasks,
    PromptTracks,
    SemanticMap,
)
from omg_core.task_io import Prompts
from omg_core.train.config import load_train_config
from omg_core.train.datasets import SampleListDataset, TrainingSample
from omg_core.train.evaluate import FAMILY_TASKS, TaskRunner, evaluate_dataset, object_prompts
from omg_core.train.quality import (
    QUALITY_FIGURES,
    FamilyScorer,
    FigureScorer,
    ModelRunner,
    OpenInteractiveScorer,
    OpenPanopticScorer,
    OpenVideoInstanceScorer,
    ReferringScorer,
    VOSScorer,
    build_quality_datasets,
    davis_ground_truth,
    first_frame_objects,
    held_out_labels,
    measure_quality,
    referring_cases,
    run_scorers,
    training_world_seeds,
)
from omg_data.sample import Category, CategoryList, Sample

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = discover_tasks()


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """One intra-op thread: on a shared 2-core machine two OpenMP threads wait on each other for seconds per call."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

# ------------------------------------------------------------------------------------ a ground-truth runner


@dataclass
class GroundTruthRunner:
    """Answers every task with the sample's ground truth, except: targets of class a are answered as class
    `relabel[a]`; targets whose target id is in `lose` get empty masks (vos, referring, interactive); referring
    answers keep only the top half of the object's rows when `half_referring`; with `odd_wrong`, in scenes with an
    odd sample id the first target is answered as the next class (an empty mask for vos and referring).

    Scores fall with the target row (1.0 for row 0 down to 0.5), so detection order is row order.
    """

    relabel: Mapping[int, int] = field(default_factory=dict)
    lose: set[int] = field(default_factory=set)
    half_referring: bool = False
    odd_wrong: bool = False
    calls: list[str] = field(default_factory=list)

    def __call__(self, task: str, sample: TrainingSample, vocabulary: Vocabulary | None, *,
                 prompts: Prompts | None = None, seen: Sequence[bool] | None = None,
                 options: Mapping[str, Any] | None = None) -> Any:
        self.calls.append(task)
        labels = torch.tensor([self.relabel.get(int(label), int(label)) for label in sample.labels.tolist()],
                              dtype=torch.int64)
        masks = sample.masks.clone()  # N x T x H x W
        for row, target in enumerate(sample.target_ids.tolist()):
            if target in self.lose:
                masks[row] = False
        if self.odd_wrong and int(sample.sample_id) % 2 and sample.num_targets:
            if vocabulary is not None:
                labels[0] = (labels[0] + 1) % len(vocabulary)
            else:
                masks[0] = False
        scores = torch.linspace(1.0, 0.5, max(sample.num_targets, 2))[: sample.num_targets]
        names = tuple(display_name(text) for text in vocabulary.texts) if vocabulary is not None else ()
        if task in PAINTED_TASKS:
            assert vocabulary is not None
            return painted_answer(task, masks, labels, scores, names, vocabulary.is_thing)
        if task == "interactive":
            rows, _ = object_prompts(sample)
            return PromptMasks(masks[rows, 0], torch.ones(len(rows)))
        if task == "ov-interactive":
            assert prompts is not None and prompts.points is not None
            rows = [self._clicked(sample, click) for click in prompts.points[:, 0]]
            return PromptMasks(masks[rows, 0], torch.ones(len(rows)), labels[rows], names)
        if task == "vos":
            return PromptTracks(masks, torch.ones(sample.num_targets))
        if task == "referring":
            assert options is not None and sample.num_targets == 1
            answer = masks[0, 0].clone()
            if self.half_referring:
                rows = answer.any(dim=1).nonzero().flatten()
                answer[rows[len(rows) // 2]:] = False
            return SemanticMap(answer.long(), ("background", options["phrase"]))
        raise AssertionError(task)

    @staticmethod
    def _clicked(sample: TrainingSample, click: torch.Tensor) -> int:
        x, y = click.long().tolist()
        return int(sample.masks[:, 0, y, x].nonzero()[0, 0])


# ---------------------------------------------------------------------------------------- a hand-made scene
#
# 16 x 16, every frame alike: cat (seen thing, rows 0-3, cols 0-7), bird (seen thing, rows 0-3, cols 8-15),
# dog (held-out thing, rows 8-11, cols 0-7), zebra (held-out thing, rows 8-11, cols 8-15), sky (stuff) elsewhere
# but for 32 ignore pixels (rows 12-15, cols 8-15). Vocabulary indices: cat 0, bird 1, dog 2, zebra 3, sky 4.

CATEGORIES = CategoryList([
    Category(1, "cat", True), Category(2, "bird", True), Category(3, "dog", True, held_out=True),
    Category(4, "zebra", True, held_out=True), Category(5, "sky", False),
])
CAT, BIRD, DOG, ZEBRA = 0, 1, 2, 3


def box(frames: int, rows: slice, cols: slice) -> torch.Tensor:
    mask = torch.zeros(frames, 16, 16, dtype=torch.bool)
    mask[:, rows, cols] = True
    return mask


def hand_dataset(family: str, frames: int = 1) -> SampleListDataset:
    things = [box(frames, slice(0, 4), slice(0, 8)), box(frames, slice(0, 4), slice(8, 16)),
              box(frames, slice(8, 12), slice(0, 8)), box(frames, slice(8, 12), slice(8, 16))]
    ignore = box(frames, slice(12, 16), slice(8, 16))
    sky = ~(torch.stack(things).any(dim=0) | ignore)
    sample = Sample(
        frames=torch.zeros(frames, 3, 16, 16, dtype=torch.uint8),
        masks=torch.stack([*things, sky]),
        class_ids=torch.tensor([1, 2, 3, 4, 5]),
        is_thing=torch.tensor([True, True, True, True, False]),
        instance_ids=torch.tensor([1, 2, 3, 4, 5]),
        is_crowd=torch.zeros(5, dtype=torch.bool),
        ignore=ignore,
        categories=CATEGORIES,
        sample_id=3,
        is_video=frames > 1,
    )
    return SampleListDataset([sample], family, name=f"hand-{family}", exclude_held_out=False, num_frames=frames,
                             min_prompt_area=1)


def open_scorers() -> dict[str, FigureScorer]:
    return {
        "ov-seg": OpenPanopticScorer(hand_dataset("panoptic"), REGISTRY),
        "ov-interactive": OpenInteractiveScorer(hand_dataset("interactive")),
        "ov-vis": OpenVideoInstanceScorer(hand_dataset("video-instance", frames=2), REGISTRY),
    }


def open_figures(run: GroundTruthRunner) -> dict[str, float]:
    details = run_scorers(run, open_scorers(), [0])
    return {"ov-seg": details["ov-seg"]["PQ"], "ov-interactive": details["ov-interactive"]["accuracy"],
            "ov-vis": details["ov-vis"]["AP"]}


def test_the_hand_scene_holds_two_held_out_classes_in_a_five_class_vocabulary() -> None:
    dataset = hand_dataset("panoptic")
    assert dataset.vocabulary is not None
    assert list(dataset.vocabulary.texts) == ["cat", "bird", "dog", "zebra", "sky"]
    assert held_out_labels(dataset) == {DOG, ZEBRA}
    # a dataset whose vocabulary leaves the held-out classes out has none to score
    closed = SampleListDataset(dataset.samples, "panoptic", exclude_held_out=True)
    assert held_out_labels(closed) == set()


def test_ground_truth_answers_give_100_on_the_held_out_figures() -> None:
    figures = open_figures(GroundTruthRunner())
    assert figures == {"ov-seg": pytest.approx(100.0), "ov-interactive": pytest.approx(100.0),
                       "ov-vis": pytest.approx(100.0)}


# The dog (held out) answered as a zebra (held out), by hand:
#  ov-seg: dog FN -> PQ 0; zebra TP (IoU 1) + FP -> 1 / (1 + 0.5) = 2/3; mean over dog, zebra = 1/3.
#  ov-interactive: dog and zebra clicked, the zebra right -> 1/2.
#  ov-vis: dog has no detection -> AP 0; zebra: the wrong dog track (score 2/3) outranks the true zebra track
#   (score 1/2): precision 0, then 1/2 at recall 1, interpolated 1/2 at every recall -> AP 1/2; mean 1/4.
def test_a_held_out_object_mislabelled_lowers_the_open_figures_by_the_hand_computed_amount() -> None:
    figures = open_figures(GroundTruthRunner(relabel={DOG: ZEBRA}))
    assert figures["ov-seg"] == pytest.approx(100 / 3)
    assert figures["ov-interactive"] == pytest.approx(50.0)
    assert figures["ov-vis"] == pytest.approx(25.0)
    # the same as YouTube-VIS AP of a metric that knows only the held-out categories and their tracks
    dataset = hand_dataset("video-instance", frames=2)
    sample = dataset.get(0)
    answer = GroundTruthRunner(relabel={DOG: ZEBRA})("ov-vis", sample, dataset.vocabulary)
    restricted = REGISTRY.get("video-instance").create_metric({"category_ids": [DOG, ZEBRA]})
    kept, truth = answer.labels >= DOG, sample.labels >= DOG
    restricted.update(0, answer.scores[kept], answer.labels[kept], answer.masks[kept], sample.labels[truth],
                      sample.masks[truth])
    assert restricted.compute()["AP"] * 100 == pytest.approx(figures["ov-vis"])


def test_a_seen_class_error_leaves_the_held_out_figures_alone() -> None:
    wrong = GroundTruthRunner(relabel={CAT: BIRD})
    assert open_figures(wrong) == pytest.approx({"ov-seg": 100.0, "ov-interactive": 100.0, "ov-vis": 100.0})
    # ... while the same answers are scored where every class counts
    panoptic = hand_dataset("panoptic")
    closed = run_scorers(wrong, {"panoptic": FamilyScorer(panoptic, REGISTRY)}, [0])
    assert closed["panoptic"]["PQ"] < 90.0
    # a seen object called by a held-out name is a held-out false positive: dog TP + FP -> 2/3, zebra 1 -> 5/6
    assert open_figures(GroundTruthRunner(relabel={CAT: DOG}))["ov-seg"] == pytest.approx(500 / 6)


def test_open_interactive_clicks_only_held_out_objects_once_each() -> None:
    run = GroundTruthRunner()
    scorer = OpenInteractiveScorer(hand_dataset("interactive"))
    scorer.update(run, 0)
    assert scorer.compute() == {"accuracy": pytest.approx(100.0), "objects": 2.0}
    assert run.calls == ["ov-interactive"]


# ----------------------------------------------------------------------------------------------- VOS, referring


def test_vos_gives_the_first_frame_objects_and_scores_jf() -> None:
    dataset = hand_dataset("video-instance", frames=3)
    sample = dataset.get(0)
    late = sample.masks.clone()
    late[3, 0] = False  # the zebra enters in frame 1: not a DAVIS object
    objects = first_frame_objects(TrainingSample(sample.frames, sample.labels, late, sample.ignore,
                                                 sample.target_ids))
    assert objects.target_ids.tolist() == [1, 2, 3]
    ids = davis_ground_truth(objects)
    assert ids[0, 0, 0] == 1 and ids[0, 8, 0] == 3 and ids[0, 8, 8] == 0 and ids[0, 12, 8] == 255
    perfect = run_scorers(GroundTruthRunner(), {"vos": VOSScorer(dataset, REGISTRY)}, [0])["vos"]
    assert perfect["J&F"] == pytest.approx(100.0) and perfect["objects"] == 4
    # the dog's track lost: J = F = 0 for one object of four
    lost = run_scorers(GroundTruthRunner(lose={3}), {"vos": VOSScorer(dataset, REGISTRY)}, [0])["vos"]
    assert lost["J&F"] == pytest.approx(75.0)
    with pytest.raises(ValueError, match="at least 3 frames"):
        VOSScorer(hand_dataset("video-instance", frames=2), REGISTRY)


def referring_scene() -> SampleListDataset:
    """A cat (rows 0-3), two dogs (rows 6-7 and 10-11) and a crowd of birds (rows 14-15) on sky."""
    cat, dog_a, dog_b, birds = (box(1, slice(a, b), slice(0, 8)) for a, b in ((0, 4), (6, 8), (10, 12), (14, 16)))
    sky = ~(cat | dog_a | dog_b | birds)
    sample = Sample(
        frames=torch.zeros(1, 3, 16, 16, dtype=torch.uint8), masks=torch.stack([cat, dog_a, dog_b, birds, sky]),
        class_ids=torch.tensor([1, 3, 3, 2, 5]), is_thing=torch.tensor([True, True, True, True, False]),
        instance_ids=torch.tensor([1, 2, 3, 4, 5]), is_crowd=torch.tensor([False, False, False, True, False]),
        ignore=torch.zeros(1, 16, 16, dtype=torch.bool), categories=CATEGORIES, sample_id=9,
    )
    return SampleListDataset([sample], "panoptic", name="hand-referring", exclude_held_out=False)


def test_referring_names_only_classes_that_occur_once() -> None:
    dataset = referring_scene()
    cases = referring_cases(dataset, 0)
    assert [phrase for phrase, _ in cases] == ["the cat"]  # two dogs, a crowd of birds: ambiguous
    assert torch.equal(cases[0][1].masks[0, 0], box(1, slice(0, 4), slice(0, 8))[0])
    perfect = run_scorers(GroundTruthRunner(), {"referring": ReferringScorer(dataset, REGISTRY)}, [0])
    assert perfect["referring"] == {"mIoU": pytest.approx(100.0), "oIoU": pytest.approx(100.0), "phrases": 1.0}
    # the top two of the cat's four rows: IoU 16 / 32
    half = run_scorers(GroundTruthRunner(half_referring=True), {"referring": ReferringScorer(dataset, REGISTRY)}, [0])
    assert half["referring"]["mIoU"] == pytest.approx(50.0)


# ----------------------------------------------------------------------------------------- the shapes world

SEED, NUM = 11, 3


def test_ground_truth_answers_give_100_on_all_twelve_figures_of_the_shapes_world() -> None:
    report = measure_quality(GroundTruthRunner(), seed=SEED, num_samples=NUM, image_size=(64, 64))
    assert set(report.figures) == {figure.key for figure in QUALITY_FIGURES}
    for figure in QUALITY_FIGURES:
        assert report.figures[figure.key] == pytest.approx(100.0), figure.key
        assert report.met(figure)
    # the open figures really scored held-out objects, and VOS / referring had something to score
    details = report.details
    assert details["ov-seg"]["objects"] > 0 and details["ov-interactive"]["objects"] > 0
    assert details["ov-vis"]["tracks"] > 0 and details["vos"]["objects"] > 0 and details["referring"]["phrases"] > 0
    table = report.markdown().splitlines()
    assert len(table) == 2 + len(QUALITY_FIGURES) and all(line.endswith("| met |") for line in table[2:])


def test_closed_families_are_scored_as_training_evaluation_scores_them() -> None:
    datasets = build_quality_datasets(SEED, NUM, (64, 64))
    run = GroundTruthRunner(odd_wrong=True)
    scored = run_scorers(run, {family: FamilyScorer(d, REGISTRY) for family, d in datasets.closed.items()},
                         range(NUM))
    assert scored.keys() == FAMILY_TASKS.keys()
    for family, dataset in datasets.closed.items():
        assert scored[family] == pytest.approx(evaluate_dataset(run, dataset, range(NUM)), nan_ok=True), family
    assert scored["panoptic"]["PQ"] < 99.0  # the wrong answers were scored


def test_a_missing_plugin_is_named_with_its_install_command() -> None:
    without_vos = discover_tasks(["no:vos"])
    with pytest.raises(OMGError, match="pip install -e plugins/omg-task-vos"):
        VOSScorer(hand_dataset("video-instance", frames=3), without_vos)


def test_the_worlds_hold_held_out_classes_only_where_they_should() -> None:
    datasets = build_quality_datasets(SEED, NUM, (64, 64))
    held_out = held_out_labels(datasets.ov_panoptic)
    full, seen = load_vocabulary("shapes-world"), load_vocabulary("shapes-world-seen")
    assert sorted(full.dataset_names[k] for k in held_out) == sorted(
        c.name for c in datasets.ov_panoptic.categories if c.held_out)
    assert [not flag for flag in datasets.seen] == [k in held_out for k in range(len(full))]
    for dataset in datasets.closed.values():
        assert dataset.vocabulary == seen and held_out_labels(dataset) == set()
    assert datasets.vos.vocabulary == seen and datasets.vos.num_frames >= 3
    held_out_ids = {c.id for c in datasets.ov_panoptic.categories if c.held_out}
    drawn_closed = {c for i in range(12) for c in datasets.closed["panoptic"].load_sample(i).class_ids.tolist()}
    drawn_open = {c for i in range(12) for c in datasets.ov_panoptic.load_sample(i).class_ids.tolist()}
    assert not drawn_closed & held_out_ids and drawn_open & held_out_ids


def test_a_nan_figure_counts_as_missed() -> None:
    report = measure_quality(GroundTruthRunner(), seed=SEED, num_samples=1, image_size=(64, 64))
    report.figures["ov-vis-AP"] = math.nan
    figure = next(f for f in QUALITY_FIGURES if f.key == "ov-vis-AP")
    assert not report.met(figure)
    assert "| ov-vis AP, held-out classes | n/a | ≥ 40 | missed |" in report.markdown().splitlines()
    assert json.loads(json.dumps(report.to_json()))["figures"][9]["measured"] is None


# -------------------------------------------------------------------------------------------------- sharding


def _rank_worker(rank: int, world_size: int, port: int, out: str) -> None:
    import torch.distributed as dist

    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        report = measure_quality(GroundTruthRunner(odd_wrong=True), SEED, 4, (64, 64), rank, world_size)
        torch.save(report.details, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_give_the_one_rank_figures(tmp_path: Path) -> None:
    single = measure_quality(GroundTruthRunner(odd_wrong=True), SEED, 4, (64, 64)).details
    # the wrong answers cost (so one rank's share alone would give other figures)
    assert all(single[name][key] < 99.0 for name, key in (("panoptic", "PQ"), ("vos", "J&F"), ("referring", "mIoU")))
    port = 29700 + os.getpid() % 1000
    mp.spawn(_rank_worker, args=(2, port, str(tmp_path / "details")), nprocs=2, join=True)
    for rank in range(2):
        shared = torch.load(f"{tmp_path / 'details'}.{rank}", weights_only=False)
        assert shared.keys() == single.keys()
        for name in single:
            assert shared[name] == pytest.approx(single[name], nan_ok=True), name


# ------------------------------------------------------------------------------------------- the model runner


def test_the_model_runner_encodes_a_scene_once_and_changes_no_result() -> None:
    torch.manual_seed(0)
    model = create_model("omg-tiny")
    predictor = OMGPredictor(model)
    dataset = build_quality_datasets(SEED, 1, (64, 64)).closed["panoptic"]
    sample = dataset.get(0)
    assert dataset.vocabulary is not None
    with torch.inference_mode():
        reference = TaskRunner(predictor)("panoptic", sample, dataset.vocabulary)
        with ModelRunner(predictor) as run:
            run("semantic", sample, dataset.vocabulary)
            cached = run("panoptic", dataset.get(0), dataset.vocabulary)  # another task, the same scene
            assert run.encodes == 1
            assert "encode_frames" in vars(model)
        assert "encode_frames" not in vars(model)  # the model's own method is back
    assert torch.equal(cached.segment_ids, reference.segment_ids) and cached.segments == reference.segments


# -------------------------------------------------------------------------------------------------- the CLI


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("quality_table", ROOT / "tools" / "quality_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cli_prints_all_twelve_rows_for_omg_tiny(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tool = load_tool()
    out = tmp_path / "quality.json"
    assert tool.main(["--num", "2", "--seed", str(SEED), "--json", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    rows = [line for line in printed if line.startswith("| ") and not line.startswith(("| figure", "| ---"))]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == [f.name for f in QUALITY_FIGURES]
    for row, figure in zip(rows, QUALITY_FIGURES):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[2] == f"≥ {figure.target:g}{'%' if figure.percent_sign else ''}"
        assert cells[3] in ("met", "missed")
        assert cells[1] == "n/a" or 0.0 <= float(cells[1].rstrip("%")) <= 100.0
    document = json.loads(out.read_text())
    assert [entry["key"] for entry in document["figures"]] == [f.key for f in QUALITY_FIGURES]
    assert document["seed"] == SEED and document["num_samples"] == 2 and document["wall_s"] > 0


def test_the_cli_refuses_a_training_seed(capsys: pytest.CaptureFixture[str]) -> None:
    config = ROOT / "configs" / "train" / "shapes-tiny.yaml"
    seeds = training_world_seeds(load_train_config(config))
    assert len(seeds) == 14  # seven datasets, each with its training-evaluation world
    tool = load_tool()
    assert tool.main(["--num", "1", "--seed", str(min(seeds)), "--train-config", str(config)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "seen in training" in error[0]
