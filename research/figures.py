"""Plotly figures as plain JSON-able dicts, rendered in the page by plotly.js."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from research.analytics.drift import DriftReport
from research.analytics.features import FEATURE_LABELS, FEATURES
from research.selectors import EndedFraction
from research.summaries import ROUGE_TYPES, SummaryStats
from training.models import PolicyVersion, RewardModelVersion

Figure = dict[str, Any]
BASE_LAYOUT: dict[str, Any] = {
    "margin": {"l": 56, "r": 16, "t": 36, "b": 44},
    "height": 300,
    "legend": {"orientation": "h", "y": -0.25},
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
}


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return {**BASE_LAYOUT, "title": {"text": title, "font": {"size": 14}}, **extra}


def labels_per_hour(rows: list[dict[str, Any]]) -> Figure | None:
    if not rows:
        return None
    by_labeler: dict[str, dict[str, int]] = defaultdict(dict)
    for row in rows:
        by_labeler[row["labeler"]][row["hour"].isoformat()] = row["count"]
    traces = [
        {"type": "bar", "name": name, "x": list(counts), "y": list(counts.values())}
        for name, counts in sorted(by_labeler.items())
    ]
    return {
        "data": traces,
        "layout": _layout(
            "Labels per hour (UTC), by labeler",
            barmode="stack",
            xaxis={"type": "date"},
            yaxis={"title": {"text": "labels"}},
        ),
    }


REWARD_ACCURACIES = (
    ("prospective_accuracy", "prospective (labels that arrived after it)"),
    ("held_out_accuracy", "held out"),
    ("train_accuracy", "during training"),
)
"""Reward-model accuracies a version may carry, the one that counts online first."""


def reward_model_accuracy(versions: list[RewardModelVersion], k: int = 4) -> Figure | None:
    """Each kind of accuracy against the labels that existed when the version was trained;
    chance (1/K) as a dotted line."""
    traces = []
    for key, name in REWARD_ACCURACIES:
        points = [
            v
            for v in versions
            if isinstance(v.metrics, dict) and isinstance(v.metrics.get(key), int | float)
        ]
        if not points:
            continue
        counts = [v.metrics.get("prospective_labels") for v in points]
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": name,
                "x": [v.label_count for v in points],
                "y": [v.metrics[key] for v in points],
                "text": [
                    f"RM v{v.number}" + (f", on {n} later labels" if key.startswith("pro") else "")
                    for v, n in zip(points, counts, strict=True)
                ],
                "hovertemplate": "%{text}<br>%{x} labels<br>accuracy %{y:.3f}<extra></extra>",
            }
        )
    if not traces:
        return None
    return {
        "data": traces,
        "layout": _layout(
            "Reward model: accuracy vs labels",
            xaxis={"title": {"text": "labels"}, "rangemode": "tozero"},
            yaxis={"title": {"text": "accuracy"}, "range": [0, 1]},
            shapes=[
                {
                    "type": "line",
                    "xref": "paper",
                    "x0": 0,
                    "x1": 1,
                    "y0": 1 / k,
                    "y1": 1 / k,
                    "line": {"dash": "dot", "width": 1, "color": "#888"},
                }
            ],
        ),
    }


def ppo_curves(steps: list[dict[str, float]]) -> Figure | None:
    if not steps:
        return None
    episodes = [s["episode"] for s in steps]
    panels = [("score", "reward-model score"), ("kl", "KL (nats)"), ("beta", "beta")]
    traces = []
    layout = _layout("PPO: score, KL and beta vs episodes", height=460, showlegend=False)
    for i, (key, title) in enumerate(panels):
        axis = "" if i == 0 else str(i + 1)
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": title,
                "x": episodes,
                "y": [s.get(key) for s in steps],
                "xaxis": "x",
                "yaxis": f"y{axis}",
            }
        )
        top = 1 - i / 3
        layout[f"yaxis{axis}"] = {"title": {"text": title}, "domain": [top - 0.3, top]}
    layout["xaxis"] = {"title": {"text": "episodes"}, "anchor": f"y{len(panels)}"}
    return {"data": traces, "layout": layout}


def ended_fraction(rows: list[EndedFraction]) -> Figure | None:
    """The fraction of sampled responses that ended, per policy version."""
    if not rows:
        return None
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "ended",
                "x": [f"v{r.version}" for r in rows],
                "y": [r.fraction for r in rows],
                "customdata": [[r.ended, r.candidates] for r in rows],
                "hovertemplate": "policy %{x}: %{y:.0%} ended"
                "<br>%{customdata[0]} of %{customdata[1]} candidates<extra></extra>",
            }
        ],
        "layout": _layout(
            "Sampled responses that ended, per policy version",
            height=260,
            xaxis={"type": "category", "title": {"text": "policy version"}},
            yaxis={"title": {"text": "ended"}, "range": [0, 1], "tickformat": ".0%"},
        ),
    }


def version_timeline(rms: list[RewardModelVersion], policies: list[PolicyVersion]) -> Figure | None:
    if not rms and not policies:
        return None

    def versions(name: str, rows: list[Any], marker: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "scatter",
            "mode": "markers+text",
            "name": name,
            "x": [v.created_at.isoformat() for v in rows],
            "y": [name] * len(rows),
            "text": [f"v{v.number}" for v in rows],
            "textposition": "top center",
            "marker": marker,
        }

    traces = [
        versions("reward model", rms, {"size": 10, "symbol": "diamond"}),
        versions("policy", policies, {"size": 10}),
    ]
    promoted = [v for v in policies if v.promoted_at]
    if promoted:
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "promoted",
                "x": [v.promoted_at.isoformat() for v in promoted if v.promoted_at],
                "y": ["policy"] * len(promoted),
                "marker": {"size": 16, "symbol": "star", "color": "#d4a017"},
            }
        )
    return {
        "data": traces,
        "layout": _layout(
            "Versions over time",
            height=240,
            xaxis={"type": "date"},
            yaxis={"type": "category", "automargin": True, "range": [-0.6, 1.6]},
        ),
    }


def drift_coefficients(report: DriftReport) -> Figure | None:
    groups = [g for g in [report.overall, *report.per_labeler] if g is not None and g.fit]
    if not groups:
        return None
    labels = [FEATURE_LABELS[f] for f in FEATURES]
    traces = []
    for group in groups:
        rows = group.as_dict()["rows"]
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"{group.key} (n={group.n})",
                "x": [r["coef"] for r in rows],
                "y": labels,
                "error_x": {
                    "type": "data",
                    "symmetric": False,
                    "array": [r["upper"] - r["coef"] for r in rows],
                    "arrayminus": [r["coef"] - r["lower"] for r in rows],
                },
                "hovertemplate": "%{y}: %{x:.2f} per SD<extra>%{fullData.name}</extra>",
            }
        )
    return {
        "data": traces,
        "layout": _layout(
            "What predicts the choice: conditional-logit coefficients (per SD, 95% CI)",
            height=360,
            xaxis={"title": {"text": "coefficient"}, "zeroline": True},
            yaxis={"type": "category", "automargin": True},
            scattermode="group",
        ),
    }


def drift_over_time(report: DriftReport) -> Figure | None:
    windows = [w for w in report.windows if w.fit]
    if len(windows) < 2:
        return None
    traces = []
    for i, feature in enumerate(FEATURES):
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": FEATURE_LABELS[feature],
                "x": [w.key for w in windows],
                "y": [float(w.fit.coef[i]) for w in windows if w.fit],
                "error_y": {
                    "type": "data",
                    "array": [1.96 * float(w.fit.se[i]) for w in windows if w.fit],
                },
            }
        )
    return {
        "data": traces,
        "layout": _layout(
            "Coefficients over time (chronological windows of labels)",
            xaxis={"type": "category"},
            yaxis={"title": {"text": "coefficient per SD"}},
        ),
    }


def summary_copying(stats: list[SummaryStats], report: DriftReport) -> Figure | None:
    """Summarization: per policy version, the copied fraction of its eval summaries (and ROUGE
    where references exist); below, the labelers' copy coefficient over windows of labels
    (the drift diagnostics), so that the one can be read against the other."""
    copy_index = FEATURES.index("copy")
    windows = [w for w in report.windows if w.fit]
    if not stats and not windows:
        return None
    versions = [f"v{s.version}" for s in stats]
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": "copied 3-grams",
            "x": versions,
            "y": [s.copied for s in stats],
            "error_y": {"type": "data", "array": [1.96 * s.copied_se for s in stats]},
            "customdata": [[s.samples, s.words] for s in stats],
            "hovertemplate": "policy %{x}: %{y:.1%} copied<br>%{customdata[0]} summaries, "
            "%{customdata[1]:.1f} words<extra></extra>",
        }
    ]
    for rouge_type in ROUGE_TYPES:
        points = [s for s in stats if rouge_type in s.rouge]
        if points:
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "name": rouge_type.upper().replace("ROUGE", "ROUGE-"),
                    "x": [f"v{s.version}" for s in points],
                    "y": [s.rouge[rouge_type] for s in points],
                    "line": {"dash": "dot"},
                }
            )
    layout = _layout(
        "Summaries per policy version (eval) and the labelers' copy coefficient",
        height=460,
        grid={"rows": 2, "columns": 1, "pattern": "independent", "roworder": "top to bottom"},
        yaxis={"title": {"text": "fraction / F1"}, "rangemode": "tozero"},
        xaxis={"type": "category", "title": {"text": "policy version"}},
        yaxis2={"title": {"text": "copy coef. per SD"}, "zeroline": True},
        xaxis2={"type": "category", "title": {"text": "labels (chronological windows)"}},
    )
    if windows:
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "labelers' copy coefficient",
                "x": [w.key for w in windows],
                "y": [float(w.fit.coef[copy_index]) for w in windows if w.fit],
                "error_y": {
                    "type": "data",
                    "array": [1.96 * float(w.fit.se[copy_index]) for w in windows if w.fit],
                },
                "xaxis": "x2",
                "yaxis": "y2",
            }
        )
    return {"data": traces, "layout": layout}
