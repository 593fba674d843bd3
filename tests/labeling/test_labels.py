"""submit_label: validation, resubmission, counters, the after-commit signal; on both paths."""

from __future__ import annotations

import pytest
from django.dispatch import Signal

from labeling import hooks
from labeling.models import Assignment, Comparison, Label, Task, TaskLabeler
from labeling.services.labels import (
    ComparisonNotFound,
    InvalidLabel,
    LabelConflict,
    NoLiveLease,
    submit_label,
)
from labeling.services.leasing import lease_next
from tests.factories import (
    ComparisonFactory,
    InstructionsFactory,
    TaskFactory,
    TaskLabelerFactory,
    UserFactory,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hot_path")]


def member(task: Task):
    user = UserFactory()
    TaskLabelerFactory(task=task, labeler=user)
    return user


def submit(user, comparison_id: int, kind: str = "choice", choice: int | None = 2, ms: int = 900):
    return submit_label(
        labeler=user, comparison_id=comparison_id, kind=kind, choice=choice, time_spent_ms=ms
    )


@pytest.fixture
def task() -> Task:
    task = TaskFactory(labels_per_comparison=2)
    InstructionsFactory(task=task, version=1, text="old")
    InstructionsFactory(task=task, version=2, text="new")
    return task


def test_label_stores_what_the_labeler_saw(task):
    comparison = ComparisonFactory(task=task)
    user = member(task)
    assignment = lease_next(task=task, labeler=user)
    label, created = submit(user, comparison.pk, choice=3, ms=1234)
    assert created
    assert (label.kind, label.choice, label.k, label.time_spent_ms) == ("choice", 3, 4, 1234)
    assert label.display_order == assignment.permutation
    assert label.instructions_version.version == 2
    assert label.assignment_id == assignment.pk
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.SUBMITTED
    comparison.refresh_from_db()
    assert (comparison.label_count, comparison.open_slots, comparison.status) == (1, 1, "open")


def test_comparison_completes_when_overlap_is_reached(task):
    comparison = ComparisonFactory(task=task)
    for kind, choice in (("choice", 0), ("none", None)):
        user = member(task)
        lease_next(task=task, labeler=user)
        submit(user, comparison.pk, kind=kind, choice=choice)
    comparison.refresh_from_db()
    assert comparison.label_count == 2
    assert comparison.status == Comparison.Status.COMPLETE
    assert lease_next(task=task, labeler=member(task)) is None


def test_skip_gives_the_slot_back_to_another_labeler():
    task = TaskFactory(labels_per_comparison=1)
    comparison = ComparisonFactory(task=task)
    a, b = member(task), member(task)
    lease_next(task=task, labeler=a)
    assert lease_next(task=task, labeler=b) is None
    submit(a, comparison.pk, kind="skip", choice=None)
    comparison.refresh_from_db()
    assert (comparison.label_count, comparison.open_slots) == (0, 1)
    assert lease_next(task=task, labeler=b).comparison_id == comparison.pk
    assert lease_next(task=task, labeler=a) is None  # a skipped it: never shown again
    assert lease_next(task=task, labeler=member(task)) is None


def test_identical_resubmission_returns_the_stored_label(task):
    comparison = ComparisonFactory(task=task)
    user = member(task)
    lease_next(task=task, labeler=user)
    first, created = submit(user, comparison.pk, choice=1)
    again, created_again = submit(user, comparison.pk, choice=1, ms=5)
    assert created and not created_again
    assert again.pk == first.pk and again.time_spent_ms == first.time_spent_ms
    assert Label.objects.count() == 1
    comparison.refresh_from_db()
    assert comparison.label_count == 1


@pytest.mark.parametrize(("kind", "choice"), [("choice", 2), ("skip", None), ("none", None)])
def test_different_resubmission_is_a_conflict(task, kind, choice):
    comparison = ComparisonFactory(task=task)
    user = member(task)
    lease_next(task=task, labeler=user)
    submit(user, comparison.pk, choice=1)
    with pytest.raises(LabelConflict):
        submit(user, comparison.pk, kind=kind, choice=choice)
    assert Label.objects.get().choice == 1


@pytest.mark.parametrize(
    ("kind", "choice"),
    [("choice", 4), ("choice", None), ("skip", 0), ("none", 1), ("best", 1), ("choice", -1)],
)
def test_invalid_labels_are_refused(task, kind, choice):
    comparison = ComparisonFactory(task=task)
    user = member(task)
    lease_next(task=task, labeler=user)
    with pytest.raises(InvalidLabel):
        submit(user, comparison.pk, kind=kind, choice=choice)
    assert not Label.objects.exists()
    assert Assignment.objects.get().state == Assignment.State.ACTIVE


def test_label_without_a_lease_is_refused(task):
    comparison = ComparisonFactory(task=task)
    with pytest.raises(NoLiveLease):
        submit(member(task), comparison.pk)
    assert not Label.objects.exists()


def test_label_on_another_task_or_unknown_comparison_is_not_found(task):
    other = TaskFactory()
    comparison = ComparisonFactory(task=other)
    outsider = member(task)
    with pytest.raises(ComparisonNotFound):
        submit(outsider, comparison.pk)
    with pytest.raises(ComparisonNotFound):
        submit(outsider, 987654)


def test_removed_labeler_cannot_submit_on_a_held_lease(task):
    comparison = ComparisonFactory(task=task)
    user = member(task)
    lease_next(task=task, labeler=user)
    TaskLabeler.objects.filter(labeler=user).delete()
    with pytest.raises(ComparisonNotFound):
        submit(user, comparison.pk)


def test_gold_label_counts_without_touching_slots():
    task = TaskFactory(gold_rate=1.0)
    gold = ComparisonFactory(task=task, is_gold=True, gold_choice=0)
    user = member(task)
    lease_next(task=task, labeler=user)
    submit(user, gold.pk, choice=0)
    gold.refresh_from_db()
    assert (gold.label_count, gold.open_slots, gold.status) == (1, 1, "open")


def test_gold_skip_changes_no_counter():
    task = TaskFactory(gold_rate=1.0)
    gold = ComparisonFactory(task=task, is_gold=True, gold_choice=0)
    user = member(task)
    lease_next(task=task, labeler=user)
    label, created = submit(user, gold.pk, kind="skip", choice=None)
    assert created and label.kind == "skip"
    gold.refresh_from_db()
    assert (gold.label_count, gold.open_slots, gold.status) == (0, 1, "open")
    assert Assignment.objects.get(comparison=gold, labeler=user).state == "submitted"


def test_the_returned_label_matches_the_stored_row(task):
    comparison = ComparisonFactory(task=task)
    user = member(task)
    lease = lease_next(task=task, labeler=user)
    label, created = submit(user, comparison.pk, choice=1, ms=1234)
    stored = Label.objects.get(pk=label.pk)
    assert created
    for field in (
        "comparison_id",
        "labeler_id",
        "task_id",
        "assignment_id",
        "kind",
        "choice",
        "k",
        "display_order",
        "time_spent_ms",
        "instructions_version_id",
        "created_at",
    ):
        assert getattr(label, field) == getattr(stored, field), field
    assert stored.display_order == lease.permutation
    assert label.instructions_version.version == 2
    comparison.refresh_from_db()
    assert (comparison.label_count, comparison.status) == (1, "open")


def test_label_committed_is_sent_after_commit(
    task, django_capture_on_commit_callbacks, monkeypatch
):
    received = []
    signal = Signal()
    signal.connect(lambda sender, task_id, **kw: received.append((sender, task_id)), weak=False)
    monkeypatch.setattr(hooks, "label_committed", signal)
    comparison = ComparisonFactory(task=task)
    user = member(task)
    lease_next(task=task, labeler=user)
    with django_capture_on_commit_callbacks() as callbacks:
        submit(user, comparison.pk)
    assert received == []  # nothing before the commit
    assert len(callbacks) == 1
    callbacks[0]()
    assert received == [(Label, task.pk)]
    with django_capture_on_commit_callbacks() as again:
        submit(user, comparison.pk)  # an identical resubmission triggers nothing
    assert again == []


def test_each_variant_runs_its_own_path(task, hot_path):
    comparison = ComparisonFactory(task=task)
    user = member(task)
    lease_next(task=task, labeler=user)
    submit(user, comparison.pk)
    # lease: live lease, claim, insert; submit: locked lease, write (the ORM variant fails on
    # any hand-written statement).
    assert (hot_path.statements >= 5) == (hot_path.name == "sql")
