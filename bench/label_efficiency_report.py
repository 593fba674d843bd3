"""bench/label_efficiency.py's report: mean curves over seeds, the markdown tables, the labels
each selective strategy (``uncertainty``: entropy; ``disagreement``: an
ensemble's) needs to reach ``uniform``'s final accuracy (from the mean curves and per
seed), the share of labels with a tied best, and the SVG plot."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from label_efficiency_plot import write_svg

from training.ml.selection import UNCERTAINTY, UNIFORM

K = 4
DISAGREEMENT = "disagreement"
ORDER = (UNIFORM, UNCERTAINTY, DISAGREEMENT)


def mean_curve(
    results: list[dict[str, Any]], preference: str, strategy: str
) -> list[tuple[int, float, float, int]]:
    """(labels, mean accuracy, standard error over seeds, seeds) per label count."""
    runs = [r for r in results if r["preference"] == preference and r["strategy"] == strategy]
    by_count: dict[int, list[float]] = {}
    for run in runs:
        for point in run["points"]:
            by_count.setdefault(point["labels"], []).append(point["accuracy"])
    return [
        (n, statistics.fmean(v), statistics.stdev(v) / len(v) ** 0.5 if len(v) > 1 else 0.0, len(v))
        for n, v in sorted(by_count.items())
    ]


def labels_to_reach(curve: list[tuple[int, float, float, int]], target: float) -> float | None:
    """Labels at which a mean curve first reaches ``target`` (linear between counts)."""
    previous = None
    for n, acc, _, _ in curve:
        if acc >= target:
            if previous is None:
                return float(n)
            n0, a0 = previous
            return n0 + (n - n0) * (target - a0) / (acc - a0)
        previous = (n, acc)
    return None


def per_seed(results: list[dict[str, Any]], preference: str, strategy: str) -> str:
    """Per seed: the labels ``strategy`` needs to reach that seed's uniform final accuracy."""
    out = []
    for seed in sorted({r["seed"] for r in results}):
        runs = {r["strategy"]: r for r in results
                if r["preference"] == preference and r["seed"] == seed}  # fmt: skip
        if UNIFORM not in runs or strategy not in runs:
            continue
        final = runs[UNIFORM]["points"][-1]
        curve = [(p["labels"], p["accuracy"], 0.0, 1) for p in runs[strategy]["points"]]
        needed = labels_to_reach(curve, final["accuracy"])
        fewer = f"{1 - needed / final['labels']:.0%} fewer" if needed is not None else "not reached"
        out.append(f"seed {seed}: {final['accuracy']:.3f} -> {fewer}")
    return "; ".join(out)


def report(results: list[dict[str, Any]], svg: Path) -> None:
    """Per preference: the table, the labels each selective strategy needs, the tied labels;
    the plot."""
    preferences = sorted({r["preference"] for r in results})
    strategies = [s for s in ORDER if any(r["strategy"] == s for r in results)]
    curves = {(p, s): mean_curve(results, p, s) for p in preferences for s in strategies}
    for p in preferences:
        print(f"\n{p}: test accuracy (mean +- s.e. over seeds; chance {1 / K:.2f})")
        print("| labels | " + " | ".join(strategies) + " |")
        print("|---" * (len(strategies) + 1) + "|")
        tables = [dict((n, r) for n, *r in curves[p, s]) for s in strategies]
        for n in sorted(set().union(*tables)):
            cells = [
                f"{r[0]:.3f} +- {r[1]:.3f} ({r[2]})" if (r := d.get(n)) else "-" for d in tables
            ]
            print(f"| {n} | " + " | ".join(cells) + " |")
        for strategy in strategies:
            if strategy == UNIFORM or not curves[p, UNIFORM] or not curves[p, strategy]:
                continue
            final_n, final_acc = curves[p, UNIFORM][-1][:2]
            needed = labels_to_reach(curves[p, strategy], final_acc)
            if needed is None:
                print(f"{strategy} never reaches uniform's {final_acc:.3f} at {final_n} labels")
            else:
                print(
                    f"{strategy} reaches uniform's {final_acc:.3f} (at {final_n} labels) with "
                    f"{needed:.0f} labels: {1 - needed / final_n:.0%} fewer (goal: >= 30%)"
                )
            print(
                f"  per seed (that seed's uniform final accuracy): {per_seed(results, p, strategy)}"
            )
        shares = {
            s: [r["points"][-1]["tied"] for r in results
                if r["preference"] == p and r["strategy"] == s and "tied" in r["points"][-1]]
            for s in strategies
        }  # fmt: skip
        if all(shares.values()):
            print("labels with a tied best (the labeler's choice carries nothing): " + ", ".join(
                f"{s} {statistics.fmean(v):.1%}" for s, v in shares.items()))  # fmt: skip
    write_svg(curves, preferences, svg)
    print(f"\nplot: {svg}")
