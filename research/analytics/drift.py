"""Drift and bias diagnostics: which surface features predict labelers' choices.

Fits the conditional logit (Firth-penalized, likelihood-ratio tests:
:mod:`research.analytics.choice_model`) overall, per labeler and over chronological windows
of labels, and warns for each feature that predicts choices (e.g. "labelers reward
copying"): a labeler who follows a feature every time is flagged with the strongest
evidence, not the weakest.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .choice_model import LogitFit, fit_conditional_logit, flagged_features
from .features import FEATURE_LABELS, FEATURES, ComparisonView, raw_features, standardize

MIN_LABELS_TO_FIT = 20


@dataclass(frozen=True)
class ChoiceObservation:
    labeler: Hashable
    view: ComparisonView
    chosen: int


@dataclass
class GroupFit:
    key: str
    n: int
    fit: LogitFit | None
    flagged: list[str] = field(default_factory=list)
    """Features that predict this group's choices, strongest evidence first."""

    @property
    def dominant(self) -> str | None:
        """The flagged feature with the strongest evidence."""
        return self.flagged[0] if self.flagged else None

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "n": self.n,
            "flagged": list(self.flagged),
            "dominant": self.dominant,
            "dominant_label": FEATURE_LABELS.get(self.dominant or "", ""),
            "pseudo_r2": self.fit.pseudo_r2 if self.fit else None,
            "rows": self.fit.rows() if self.fit else [],
        }


@dataclass
class DriftReport:
    n: int
    overall: GroupFit | None
    per_labeler: list[GroupFit] = field(default_factory=list)
    windows: list[GroupFit] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    feature_means: dict[str, float] = field(default_factory=dict)
    feature_sds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "n": self.n,
            "features": list(FEATURES),
            "feature_labels": FEATURE_LABELS,
            "overall": self.overall.as_dict() if self.overall else None,
            "per_labeler": [g.as_dict() for g in self.per_labeler],
            "windows": [g.as_dict() for g in self.windows],
            "warnings": list(self.warnings),
            "feature_means": self.feature_means,
            "feature_sds": self.feature_sds,
        }


def _fit_group(key: str, x: np.ndarray, y: np.ndarray, *, min_labels: int) -> GroupFit:
    if len(y) < min_labels:
        return GroupFit(key=key, n=len(y), fit=None)
    fit = fit_conditional_logit(x, y, names=FEATURES)
    return GroupFit(key=key, n=len(y), fit=fit, flagged=flagged_features(fit))


def _warnings(scope: str, group: GroupFit) -> list[str]:
    if group.fit is None:
        return []
    rows = {r["name"]: r for r in group.fit.rows()}
    warnings = []
    for name in group.flagged:
        row = rows[name]
        direction = "rewards" if row["coef"] > 0 else "penalizes"
        warnings.append(
            f"{scope} {direction} {FEATURE_LABELS[name]}: coefficient {row['coef']:+.2f} per SD "
            f"(likelihood-ratio z = {row['z']:+.1f}, n = {group.n})"
        )
    return warnings


def drift_report(
    observations: Sequence[ChoiceObservation],
    *,
    windows: int = 4,
    min_labels: int = MIN_LABELS_TO_FIT,
    labeler_names: dict[Hashable, str] | None = None,
) -> DriftReport:
    """Observations in chronological order; all must have the same K."""
    if not observations:
        return DriftReport(n=0, overall=None)
    k = len(observations[0].view.samples)
    observations = [o for o in observations if len(o.view.samples) == k]
    raw = np.stack([raw_features(o.view) for o in observations])
    y = np.array([o.chosen for o in observations])
    x, mean, sd = standardize(raw)
    names = labeler_names or {}
    report = DriftReport(
        n=len(y),
        overall=_fit_group("all labelers", x, y, min_labels=min_labels),
        feature_means=dict(zip(FEATURES, map(float, mean), strict=True)),
        feature_sds=dict(zip(FEATURES, map(float, sd), strict=True)),
    )
    if report.overall:
        report.warnings.extend(_warnings("Labelers overall", report.overall))

    by_labeler: dict[Hashable, list[int]] = defaultdict(list)
    for i, obs in enumerate(observations):
        by_labeler[obs.labeler].append(i)
    for labeler, idx in sorted(
        by_labeler.items(), key=lambda item: str(names.get(item[0], item[0]))
    ):
        label = str(names.get(labeler, labeler))
        group = _fit_group(label, x[idx], y[idx], min_labels=min_labels)
        report.per_labeler.append(group)
        report.warnings.extend(_warnings(f"Labeler {label}", group))

    n_windows = max(1, min(windows, len(y) // max(min_labels, 1)))
    bounds = np.linspace(0, len(y), n_windows + 1).astype(int)
    for w in range(n_windows):
        lo, hi = bounds[w], bounds[w + 1]
        group = _fit_group(f"labels {lo + 1}-{hi}", x[lo:hi], y[lo:hi], min_labels=min_labels)
        report.windows.append(group)
        if n_windows > 1:
            report.warnings.extend(_warnings(f"Window {group.key}", group))
    return report
