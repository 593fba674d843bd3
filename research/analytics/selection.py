"""The reward model measured per selection strategy: of the labels on comparisons chosen
uniformly (or by uncertainty), how often the reward model's highest-scored sample is the one
the labeler chose, each label judged by the newest reward model trained before it existed
(prospective: that model never saw it). On ``uniform`` comparisons this is the unbiased
accuracy on the policy's own distribution; ``uncertainty`` comparisons are hard by design.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LabelOnComparison:
    label_id: int
    comparison_id: int
    choice: int
    selection: str


@dataclass(frozen=True)
class StoredScores:
    """A reward-model version's scores of a comparison's K samples."""

    version: int
    """The reward model's version number."""
    label_cutoff: int
    """The newest label id the version could have trained on."""
    scores: Sequence[float]


@dataclass(frozen=True)
class SelectionAccuracy:
    selection: str
    labels: int
    """Best-of-K labels on comparisons chosen this way."""
    scored: int
    """Of which scored by a reward model trained before the label."""
    correct: int
    """Of which the reward model's highest score is the labeler's choice."""

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.scored if self.scored else None


def prospective_accuracy(
    labels: Iterable[LabelOnComparison], scores: Mapping[int, Sequence[StoredScores]]
) -> dict[str, SelectionAccuracy]:
    """Per selection strategy: labels, how many a reward model scored before it saw them, and
    how many of those it got right (``scores``: comparison id -> stored scores). A reward
    model that may have trained on a label (its cutoff >= the label's id) never judges it;
    the first of tied top scores counts as its choice."""
    counts: dict[str, list[int]] = {}
    for label in labels:
        row = counts.setdefault(label.selection, [0, 0, 0])
        row[0] += 1
        eligible = [
            s
            for s in scores.get(label.comparison_id, ())
            if s.label_cutoff < label.label_id and len(s.scores) > label.choice
        ]
        if not eligible:
            continue
        newest = max(eligible, key=lambda s: (s.label_cutoff, s.version))
        top = max(range(len(newest.scores)), key=lambda i: newest.scores[i])
        row[1] += 1
        row[2] += int(top == label.choice)
    return {
        selection: SelectionAccuracy(selection, labels=n, scored=scored, correct=correct)
        for selection, (n, scored, correct) in sorted(counts.items())
    }
