"""Agreement statistics for best-of-K choices (nominal categories = chosen sample index).

- gold accuracy: a labeler's choice against a researcher's gold choice;
- between labelers: Fleiss' kappa (equal raters per item) and Krippendorff's alpha (nominal,
  any number of raters per item) overall, and per labeler the pairwise agreement with the
  others on shared items, chance-corrected with the pooled category distribution;
- with the reward model: the fraction of labels whose choice is the reward model's argmax.

Fleiss' kappa and Krippendorff's alpha are checked against statsmodels' ``fleiss_kappa`` and
the ``krippendorff`` package in tests (both test-only dependencies: the web process needs
neither).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MIN_ITEMS_TO_FLAG = 5


def fleiss_kappa(table: Sequence[Sequence[int]] | np.ndarray) -> float | None:
    """Fleiss' kappa of an items x categories table of rating counts (equal raters per item).

    None when undefined (fewer than one item, fewer than two raters, or one category only).
    """
    counts = np.asarray(table, dtype=float)
    if counts.ndim != 2 or counts.shape[0] == 0:
        return None
    raters = counts.sum(axis=1)
    if not np.allclose(raters, raters[0]) or raters[0] < 2:
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of raters on every item")
    m = raters[0]
    p_items = ((counts * counts).sum(axis=1) - m) / (m * (m - 1))
    p_bar = p_items.mean()
    p_cat = counts.sum(axis=0) / counts.sum()
    p_e = float((p_cat * p_cat).sum())
    if np.isclose(p_e, 1.0):
        return None
    return float((p_bar - p_e) / (1.0 - p_e))


def krippendorff_alpha_nominal(units: Iterable[Sequence[Hashable]]) -> float | None:
    """Krippendorff's alpha for nominal data; each unit is the list of values it received.

    Units with fewer than two values are not pairable and are ignored. None when undefined.
    """
    coincidence: dict[tuple[Hashable, Hashable], float] = defaultdict(float)
    for values in units:
        m = len(values)
        if m < 2:
            continue
        tally = Counter(values)
        for c, n_c in tally.items():
            for k, n_k in tally.items():
                pairs = n_c * (n_k - 1) if c == k else n_c * n_k
                coincidence[(c, k)] += pairs / (m - 1)
    if not coincidence:
        return None
    marginals: dict[Hashable, float] = defaultdict(float)
    for (c, _k), value in coincidence.items():
        marginals[c] += value
    n = sum(marginals.values())
    observed = sum(v for (c, k), v in coincidence.items() if c != k)
    expected = sum(marginals[c] * marginals[k] for c in marginals for k in marginals if c != k)
    if expected == 0:
        return None
    return float(1.0 - (n - 1) * observed / expected)


@dataclass(frozen=True)
class ChoiceRecord:
    labeler: Hashable
    comparison: Hashable
    choice: int


@dataclass
class LabelerAgreement:
    labeler: Hashable
    labels: int = 0
    gold_items: int = 0
    gold_correct: int = 0
    peer_pairs: int = 0
    peer_agreements: int = 0
    peer_kappa: float | None = None
    rm_items: int = 0
    rm_agreements: int = 0
    score: float | None = None
    flagged: bool = False
    rank: int = 0
    reasons: list[str] = field(default_factory=list)

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_items if self.gold_items else None

    @property
    def peer_agreement(self) -> float | None:
        return self.peer_agreements / self.peer_pairs if self.peer_pairs else None

    @property
    def rm_agreement(self) -> float | None:
        return self.rm_agreements / self.rm_items if self.rm_items else None


@dataclass
class AgreementReport:
    labelers: list[LabelerAgreement]
    overlap_items: int
    alpha: float | None
    fleiss: float | None
    fleiss_items: int
    chance_agreement: float | None
    threshold: float


def _by_comparison(records: Sequence[ChoiceRecord]) -> dict[Hashable, list[ChoiceRecord]]:
    grouped: dict[Hashable, list[ChoiceRecord]] = defaultdict(list)
    for record in records:
        grouped[record.comparison].append(record)
    return grouped


def _fleiss_on_modal_raters(shared: list[list[ChoiceRecord]], k: int) -> tuple[float | None, int]:
    """Fleiss' kappa over the items that have the most common number of raters."""
    if not shared:
        return None, 0
    modal = Counter(len(items) for items in shared).most_common(1)[0][0]
    rows = []
    for items in shared:
        if len(items) == modal:
            row = [0] * k
            for record in items:
                row[record.choice] += 1
            rows.append(row)
    return fleiss_kappa(rows), len(rows)


def agreement_report(
    records: Sequence[ChoiceRecord],
    *,
    k: int,
    gold: Mapping[Any, int],
    rm_argmax: Mapping[Any, int],
    threshold: float,
    min_items: int = MIN_ITEMS_TO_FLAG,
) -> AgreementReport:
    """Per-labeler and overall agreement; labelers ranked by score (best first).

    A labeler's score is the mean of the agreement rates available for them (gold accuracy,
    raw agreement with peers, agreement with the reward model): each is a fraction of
    matching choices, about 1/K for a random labeler. A labeler with at least ``min_items``
    observations and a score below ``threshold`` is flagged.
    """
    if any(not 0 <= r.choice < k for r in records):
        raise ValueError(f"choices must lie in 0..{k - 1}")
    stats: dict[Hashable, LabelerAgreement] = {}
    for record in records:
        stat = stats.setdefault(record.labeler, LabelerAgreement(labeler=record.labeler))
        stat.labels += 1
        if record.comparison in gold:
            stat.gold_items += 1
            stat.gold_correct += int(gold[record.comparison] == record.choice)
        if record.comparison in rm_argmax:
            stat.rm_items += 1
            stat.rm_agreements += int(rm_argmax[record.comparison] == record.choice)

    shared = [items for items in _by_comparison(records).values() if len(items) >= 2]
    pooled = Counter(r.choice for items in shared for r in items)
    total = sum(pooled.values())
    chance = sum((n / total) ** 2 for n in pooled.values()) if total else None
    for items in shared:
        for record in items:
            stat = stats[record.labeler]
            others = [o for o in items if o is not record]
            stat.peer_pairs += len(others)
            stat.peer_agreements += sum(o.choice == record.choice for o in others)

    for stat in stats.values():
        rate = stat.peer_agreement
        if rate is not None and chance is not None and chance < 1.0:
            stat.peer_kappa = (rate - chance) / (1.0 - chance)
        rates = [
            r for r in (stat.gold_accuracy, stat.peer_agreement, stat.rm_agreement) if r is not None
        ]
        stat.score = float(np.mean(rates)) if rates else None
        observations = max(stat.gold_items, stat.peer_pairs, stat.rm_items)
        if stat.score is not None and observations >= min_items and stat.score < threshold:
            stat.flagged = True
            stat.reasons.append(f"agreement {stat.score:.2f} below threshold {threshold:.2f}")

    ordered = sorted(
        stats.values(),
        key=lambda s: (s.score is None, -(s.score or 0.0), str(s.labeler)),
    )
    for rank, stat in enumerate(ordered, start=1):
        stat.rank = rank

    fleiss, fleiss_items = _fleiss_on_modal_raters(shared, k)
    alpha = krippendorff_alpha_nominal([[r.choice for r in items] for items in shared])
    return AgreementReport(
        labelers=ordered,
        overlap_items=len(shared),
        alpha=alpha,
        fleiss=fleiss,
        fleiss_items=fleiss_items,
        chance_agreement=chance,
        threshold=threshold,
    )
