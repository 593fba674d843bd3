"""Helpers for the training-loop tests (no torch here: see tests/training/ml/ for models)."""

from __future__ import annotations

import pytest

from labeling.models import Comparison, Label
from tests.factories import ComparisonFactory, TaskFactory, UserFactory


def add_labels(task, n: int, *, policy_version=None, choice: int = 0) -> list[Label]:
    """``n`` choice labels on fresh comparisons of ``task``."""
    labeler = UserFactory()
    labels = []
    for _ in range(n):
        comparison = ComparisonFactory(task=task, policy_version=policy_version)
        labels.append(
            Label.objects.create(
                comparison=comparison,
                labeler=labeler,
                task=task,
                kind=Label.Kind.CHOICE,
                choice=choice,
                k=comparison.k,
                display_order=list(range(comparison.k)),
            )
        )
        Comparison.objects.filter(pk=comparison.pk).update(
            label_count=1, status=Comparison.Status.COMPLETE
        )
    return labels


@pytest.fixture
def loop_task(db):
    return TaskFactory(
        schedule={"n0": 2, "n": 6, "episodes": 32, "retrains": 3, "chunk_episodes": 16, "buffer": 3}
    )
