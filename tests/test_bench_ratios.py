"""The bench session's ratio table and regression check."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from ratios import main, ratios_from_results, read_targets, target_status  # noqa: E402


def bench(name: str, group: str, role: str | None, mean: float, variant: str | None = None) -> dict:
    extra = {} if role is None else {"role": role}
    if variant:
        extra["variant"] = variant
    return {"name": name, "fullname": f"bench::{name}", "group": group, "extra_info": extra, "stats": {"mean": mean}}


def test_ratios_pair_ours_with_the_group_reference() -> None:
    results = {"benchmarks": [bench("a", "g", "reference", 2.0), bench("b", "g", "ours", 0.5, "fast"),
                              bench("c", "g", "ours", 1.0, "slow")]}
    ratios, problems = ratios_from_results(results)
    assert problems == []
    assert {r.key: r.value for r in ratios} == {"g::fast": 0.25, "g::slow": 0.5}


def test_groups_without_reference_or_role_are_problems() -> None:
    results = {"benchmarks": [bench("a", "g", "ours", 1.0), bench("b", "h", None, 1.0)]}
    _, problems = ratios_from_results(results)
    assert any("group 'g'" in p for p in problems) and any("extra_info['role']" in p for p in problems)


def test_regression_beyond_tolerance_fails_and_baseline_updates(tmp_path: Path, capsys) -> None:
    results = tmp_path / "r.json"
    baseline = tmp_path / "baseline.json"
    results.write_text(json.dumps({"benchmarks": [bench("a", "g", "reference", 1.0), bench("b", "g", "ours", 0.3)]}))
    assert main([str(results), "--baseline", str(baseline), "--update-baseline"]) == 0
    assert json.loads(baseline.read_text()) == {"g::default": 0.3}
    results.write_text(json.dumps({"benchmarks": [bench("a", "g", "reference", 1.0), bench("b", "g", "ours", 0.35)]}))
    assert main([str(results), "--baseline", str(baseline)]) == 0  # +17%: within 20%
    results.write_text(json.dumps({"benchmarks": [bench("a", "g", "reference", 1.0), bench("b", "g", "ours", 0.4)]}))
    assert main([str(results), "--baseline", str(baseline)]) == 1  # +33%: regressed
    assert "REGRESSED" in capsys.readouterr().out


def test_partial_update_keeps_the_other_baseline_entries(tmp_path: Path) -> None:
    results = tmp_path / "r.json"
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"other::default": 0.7, "g::default": 0.9}))
    results.write_text(json.dumps({"benchmarks": [bench("a", "g", "reference", 1.0), bench("b", "g", "ours", 0.3)]}))
    assert main([str(results), "--baseline", str(baseline), "--update-baseline"]) == 0
    assert json.loads(baseline.read_text()) == {"other::default": 0.7, "g::default": 0.3}


def test_targets_are_reported_met_or_missed(tmp_path: Path, capsys) -> None:
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps({"_about": "why", "g::fast": 0.3, "g::slow": 0.3}))
    assert read_targets(targets) == {"g::fast": 0.3, "g::slow": 0.3}
    results = tmp_path / "r.json"
    results.write_text(
        json.dumps(
            {
                "benchmarks": [
                    bench("a", "g", "reference", 2.0),
                    bench("b", "g", "ours", 0.5, "fast"),
                    bench("c", "g", "ours", 1.0, "slow"),
                ]
            }
        )
    )
    ratios, _ = ratios_from_results(json.loads(results.read_text()))
    assert [target_status(r, read_targets(targets)).split()[0] for r in ratios] == ["met", "MISSED"]
    # a missed target is reported, not a failure (ratios depend on the machine)
    assert main([str(results), "--baseline", str(tmp_path / "b.json"), "--targets", str(targets)]) == 0
    out = capsys.readouterr().out
    assert "met (<= 0.300)" in out and "MISSED (<= 0.300)" in out


def test_shipped_targets_name_benchmarks_that_exist() -> None:
    root = Path(__file__).resolve().parents[1] / "benchmarks"
    groups = {key.split("::")[0] for key in json.loads((root / "baseline.json").read_text())}
    for key in read_targets(root / "targets.json"):
        assert key.split("::")[0] in groups, f"targets.json names {key}, which no benchmark group produces"
