"""Turn a pytest-benchmark JSON file into ratios (ours / reference, same run) and check them against a baseline.

Each benchmark group holds exactly one measurement with ``extra_info["role"] == "reference"`` and one or more with
``"ours"`` (several are told apart by ``extra_info["variant"]``). Ratios below 1 mean ours is faster. A ratio that
grows by more than the tolerance over the saved baseline is a regression and makes the exit status 1.

Targets the issues set (``targets.json``: a ratio to stay at or below) are shown as "met" / "MISSED"; they are
reported, not enforced, since they depend on the machine. ``--update-baseline`` replaces the baseline entries of the
groups that ran and keeps the others, so a partial run does not forget the rest.

Usage: python benchmarks/ratios.py RESULTS.json [--baseline FILE] [--targets FILE] [--update-baseline]
                                   [--tolerance 0.2]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Ratio:
    group: str
    variant: str
    ours_seconds: float
    reference_seconds: float

    @property
    def key(self) -> str:
        return f"{self.group}::{self.variant}"

    @property
    def value(self) -> float:
        return self.ours_seconds / self.reference_seconds


def ratios_from_results(results: dict) -> tuple[list[Ratio], list[str]]:
    """Pair every "ours" benchmark with its group's reference; also return problems (groups that cannot pair)."""
    groups: dict[str, dict[str, list[dict]]] = {}
    problems: list[str] = []
    for bench in results.get("benchmarks", []):
        role = bench.get("extra_info", {}).get("role")
        group = bench.get("group") or bench["name"]
        if role not in ("ours", "reference"):
            problems.append(f"{bench['fullname']}: extra_info['role'] must be 'ours' or 'reference', got {role!r}")
            continue
        groups.setdefault(group, {"ours": [], "reference": []})[role].append(bench)
    ratios = []
    for group, members in sorted(groups.items()):
        if len(members["reference"]) != 1 or not members["ours"]:
            problems.append(
                f"group {group!r}: needs exactly one reference and at least one 'ours' "
                f"(has {len(members['reference'])} and {len(members['ours'])})"
            )
            continue
        reference_seconds = members["reference"][0]["stats"]["mean"]
        for ours in members["ours"]:
            variant = ours.get("extra_info", {}).get("variant", "default")
            ratios.append(Ratio(group, variant, ours["stats"]["mean"], reference_seconds))
    return ratios, problems


def compare(ratios: list[Ratio], baseline: dict[str, float], tolerance: float) -> list[tuple[Ratio, float | None, str]]:
    rows = []
    for ratio in ratios:
        previous = baseline.get(ratio.key)
        if previous is None:
            status = "new"
        elif ratio.value > previous * (1 + tolerance):
            status = "REGRESSED"
        else:
            status = "ok"
        rows.append((ratio, previous, status))
    return rows


def target_status(ratio: Ratio, targets: dict[str, float]) -> str:
    """"met" / "MISSED" against the issue's target ratio, or "" when none is set."""
    target = targets.get(ratio.key)
    if target is None:
        return ""
    return f"{'met' if ratio.value <= target else 'MISSED'} (<= {target:.3f})"


def print_table(rows: list[tuple[Ratio, float | None, str]], targets: dict[str, float] | None = None) -> None:
    header = (
        f"{'group':<40} {'variant':<16} {'reference':>12} {'ours':>12} {'ratio':>8} {'baseline':>9}  "
        f"{'status':<9}  target"
    )
    print(header)
    print("-" * len(header))
    for ratio, previous, status in rows:
        baseline_text = f"{previous:.3f}" if previous is not None else "-"
        print(
            f"{ratio.group:<40} {ratio.variant:<16} {ratio.reference_seconds * 1e3:>10.3f}ms "
            f"{ratio.ours_seconds * 1e3:>10.3f}ms {ratio.value:>8.3f} {baseline_text:>9}  {status:<9}  "
            f"{target_status(ratio, targets or {})}"
        )


def read_targets(path: Path) -> dict[str, float]:
    if not path.is_file():
        return {}
    return {key: float(value) for key, value in json.loads(path.read_text()).items() if not key.startswith("_")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--baseline", type=Path, default=Path(__file__).with_name("baseline.json"))
    parser.add_argument("--targets", type=Path, default=Path(__file__).with_name("targets.json"))
    parser.add_argument(
        "--update-baseline", action="store_true", help="save these ratios in the baseline (other entries are kept)"
    )
    parser.add_argument("--tolerance", type=float, default=0.2, help="allowed relative growth of a ratio")
    args = parser.parse_args(argv)
    if not args.results.is_file():
        print(f"{args.results}: no benchmark results (did the benchmarks run?)", file=sys.stderr)
        return 2
    ratios, problems = ratios_from_results(json.loads(args.results.read_text()))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    baseline = json.loads(args.baseline.read_text()) if args.baseline.is_file() else {}
    rows = compare(ratios, baseline, args.tolerance)
    print_table(rows, read_targets(args.targets))
    if args.update_baseline:
        updated = {**baseline, **{r.key: round(r.value, 4) for r in ratios}}
        args.baseline.write_text(json.dumps(updated, indent=2, sort_keys=True) + "\n")
        print(f"baseline written to {args.baseline}")
        return 1 if problems else 0
    regressed = [ratio.key for ratio, _, status in rows if status == "REGRESSED"]
    if regressed:
        print(f"\n{len(regressed)} ratio(s) regressed by more than {args.tolerance:.0%}: {', '.join(regressed)}")
    return 1 if regressed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
