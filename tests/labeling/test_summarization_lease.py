"""A summarization lease carries the article and, when the task highlights copies, the spans
each summary copied from it; the label records whether they were shown. On both paths of the
hot path (hand-written SQL on PostgreSQL, the ORM elsewhere)."""

from __future__ import annotations

import pytest

from labeling.api.serializers import LeaseSerializer
from labeling.models import Label, Task
from labeling.services.labels import submit_label
from labeling.services.leasing import lease_next
from tests.factories import ComparisonFactory, TaskLabelerFactory

pytestmark = pytest.mark.django_db

ARTICLE = "The council approved the new bridge on Tuesday. Work starts in May."
SUMMARIES = [
    "The council approved the new bridge.",
    "A bridge will be built soon.",
]


@pytest.fixture
def task_and_labeler():
    membership = TaskLabelerFactory(task__kind=Task.Kind.SUMMARIZATION, task__k=2)
    return membership.task, membership.labeler


def lease_and_label(task, labeler, choice: int):
    assignment = lease_next(task=task, labeler=labeler)
    assert assignment is not None
    payload = LeaseSerializer.payload(assignment, {"labeled_by_me": 0, "remaining": 0})
    assert LeaseSerializer(payload).data == payload  # the schema documents what is sent
    # A second fetch returns the same lease, read back from the database.
    again = lease_next(task=task, labeler=labeler)
    assert again is not None
    assert LeaseSerializer.payload(again, {"labeled_by_me": 0, "remaining": 0}) == payload
    label, created = submit_label(
        labeler=labeler,
        comparison_id=payload["comparison_id"],
        kind="choice",
        choice=choice,
        time_spent_ms=5,
    )
    assert created
    return payload, Label.objects.get(pk=label.pk)


def test_highlights_are_shown_and_recorded_when_the_task_asks(hot_path, task_and_labeler):
    task, labeler = task_and_labeler
    task.highlight_copies = True
    task.save()
    ComparisonFactory(task=task, prompt__text=ARTICLE + "\n\nTL;DR:", samples=SUMMARIES)
    payload, label = lease_and_label(task, labeler, choice=0)
    assert payload["article"] == ARTICLE
    assert payload["copies_highlighted"] is True
    by_index = {s["index"]: s for s in payload["samples"]}
    copied = [by_index[0]["text"][a:b] for a, b in by_index[0]["copied"]]
    assert copied == ["The council approved the new bridge"]
    assert by_index[1]["copied"] == []
    assert label.copies_highlighted is True


def test_no_highlights_by_default_and_none_recorded(hot_path, task_and_labeler):
    task, labeler = task_and_labeler
    ComparisonFactory(task=task, prompt__text=ARTICLE + "\n\nTL;DR:", samples=SUMMARIES)
    payload, label = lease_and_label(task, labeler, choice=1)
    assert payload["article"] == ARTICLE and payload["copies_highlighted"] is False
    assert all(s["copied"] is None for s in payload["samples"])
    assert label.copies_highlighted is False


def test_the_lease_decides_what_the_label_records(hot_path, task_and_labeler):
    """Turning highlights on after a lease was handed out does not change what that labeler
    saw, nor what their label records."""
    task, labeler = task_and_labeler
    ComparisonFactory(task=task, prompt__text=ARTICLE + "\n\nTL;DR:", samples=SUMMARIES)
    assignment = lease_next(task=task, labeler=labeler)
    assert assignment is not None and assignment.copies_highlighted is False
    Task.objects.filter(pk=task.pk).update(highlight_copies=True)
    label, _ = submit_label(
        labeler=labeler,
        comparison_id=assignment.comparison_id,
        kind="choice",
        choice=0,
        time_spent_ms=1,
    )
    assert Label.objects.get(pk=label.pk).copies_highlighted is False
