"""Submitting labels on leased comparisons.

A label needs the labeler's live lease on the comparison (active, not reclaimed; a lease past
its expiry that nobody reclaimed yet still counts, so slow work is not lost). The lease row is
locked first, so a concurrent reclaim or a concurrent resubmission waits or skips it.
Resubmitting the same label returns the stored one; a different one is a conflict. After the
commit, ``labeling.hooks.label_committed`` is sent (the training loop listens).

The rules (which lease counts, what a label does to its comparison's counters and to its
lease) are written once here; on PostgreSQL ``labeling.hot_sql`` runs the reads and writes
as hand-written statements, elsewhere the ORM does.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import connection, transaction
from django.db.models import Case, Exists, F, OuterRef, Subquery, Value, When
from django.utils import timezone

from labeling import hooks, hot_sql, selectors
from labeling.models import Assignment, Comparison, InstructionsVersion, Label, TaskLabeler


class LabelError(Exception):
    """Base class of label errors; the API maps each subclass to a 4xx status."""

    code = "label_error"


class ComparisonNotFound(LabelError):
    code = "not_found"


class NoLiveLease(LabelError):
    code = "no_lease"


class InvalidLabel(LabelError):
    code = "invalid"


class LabelConflict(LabelError):
    code = "conflict"


def _validate(*, kind: str, choice: int | None, k: int) -> None:
    if kind not in Label.Kind.values:
        raise InvalidLabel(f"kind must be one of {', '.join(Label.Kind.values)}")
    if kind == Label.Kind.CHOICE:
        if choice is None:
            raise InvalidLabel("choice is required when kind is 'choice'")
        if not 0 <= choice < k:
            raise InvalidLabel(f"choice must be a sample index between 0 and {k - 1}")
    elif choice is not None:
        raise InvalidLabel(f"choice must be null when kind is '{kind}'")


def _same(label: Label, *, kind: str, choice: int | None) -> bool:
    return label.kind == kind and label.choice == choice


def _resubmission(*, labeler_id: int, comparison_id: int, kind: str, choice: int | None) -> Label:
    label = (
        Label.objects.select_related("instructions_version")
        .filter(comparison_id=comparison_id, labeler_id=labeler_id)
        .first()
    )
    if label is None:
        raise NoLiveLease("no live lease on this comparison: fetch the next comparison")
    if not _same(label, kind=kind, choice=choice):
        raise LabelConflict(f"a different label (id {label.pk}) was already submitted")
    return label


@dataclass(frozen=True)
class CounterChange:
    """What one new label does to its comparison's counters."""

    label_count: int
    """Added to ``label_count``."""
    open_slots: int
    """Added to ``open_slots``."""
    completes: bool
    """An open comparison becomes complete when this label reaches its overlap."""


def counter_change(*, kind: str, is_gold: bool) -> CounterChange:
    """A skip gives a non-gold comparison's slot back (another labeler gets it) and counts
    nothing; any other label counts, and completes a non-gold comparison at its overlap (gold
    comparisons ignore overlap and slots)."""
    if kind == Label.Kind.SKIP:
        return CounterChange(label_count=0, open_slots=0 if is_gold else 1, completes=False)
    return CounterChange(label_count=1, open_slots=0, completes=not is_gold)


def _count_label_orm(*, comparison_id: int, change: CounterChange) -> None:
    """Apply ``change`` to the comparison in one UPDATE (``hot_sql.write_label`` on
    PostgreSQL)."""
    updates: dict[str, Any] = {}
    if change.label_count:
        updates["label_count"] = F("label_count") + change.label_count
    if change.open_slots:
        updates["open_slots"] = F("open_slots") + change.open_slots
    if change.completes:
        # SET expressions read the row as it was: label_count before this label.
        updates["status"] = Case(
            When(
                label_count__gte=F("overlap") - 1,
                status=Comparison.Status.OPEN,
                then=Value(Comparison.Status.COMPLETE),
            ),
            default=F("status"),
        )
    if updates:
        Comparison.objects.filter(pk=comparison_id).update(**updates)


def _locked_lease_orm(*, labeler_id: int, comparison_id: int) -> hot_sql.LockedLease | None:
    """``hot_sql.locked_lease`` with the ORM: the lease (locked where the database can), its
    membership and the task's current instructions, in one query."""
    latest = selectors.latest_instructions(OuterRef("task_id"))
    leases = (
        Assignment.objects.select_related("comparison")
        .filter(
            comparison_id=comparison_id,
            labeler_id=labeler_id,
            state__in=selectors.LIVE_ASSIGNMENT_STATES,
        )
        .annotate(
            is_member=Exists(
                TaskLabeler.objects.filter(task_id=OuterRef("task_id"), labeler_id=labeler_id)
            ),
            instructions_id=Subquery(latest.values("pk")[:1]),
            instructions_number=Subquery(latest.values("version")[:1]),
        )
        .order_by("pk")
    )
    if connection.features.has_select_for_update:
        leases = leases.select_for_update(of=("self",))
    lease: Any = leases.first()
    if lease is None:
        return None
    instructions = None
    if lease.instructions_id is not None:
        instructions = InstructionsVersion(
            pk=lease.instructions_id, task_id=lease.task_id, version=lease.instructions_number
        )
    return hot_sql.LockedLease(
        id=lease.pk,
        state=lease.state,
        permutation=lease.permutation,
        task_id=lease.task_id,
        k=lease.comparison.k,
        is_gold=lease.comparison.is_gold,
        is_member=lease.is_member,
        instructions=instructions,
        copies_highlighted=lease.copies_highlighted,
    )


@transaction.atomic
def submit_label(
    *,
    labeler: Any,
    comparison_id: int,
    kind: str,
    choice: int | None,
    time_spent_ms: int,
) -> tuple[Label, bool]:
    """Store the labeler's label on a leased comparison; (label, created).

    Raises ComparisonNotFound (no such comparison in a task of theirs), NoLiveLease,
    InvalidLabel (bad kind/choice) or LabelConflict (a different label exists).
    On PostgreSQL: two hand-written statements (the locked lease with membership and
    instructions, then the label INSERT with the lease and counter UPDATEs); elsewhere the ORM.
    """
    sql = hot_sql.enabled()
    read = hot_sql.locked_lease if sql else _locked_lease_orm
    lease = read(labeler_id=labeler.pk, comparison_id=comparison_id)
    if lease is None:
        return _not_leased(
            labeler=labeler, comparison_id=comparison_id, kind=kind, choice=choice
        ), False
    # Staff may label any task (selectors.is_task_labeler); others need a membership still.
    if not (lease.is_member or getattr(labeler, "is_staff", False)):
        raise ComparisonNotFound(f"comparison {comparison_id} not found")
    if lease.state == Assignment.State.SUBMITTED:
        return _resubmission(
            labeler_id=labeler.pk, comparison_id=comparison_id, kind=kind, choice=choice
        ), False
    _validate(kind=kind, choice=choice, k=lease.k)
    if time_spent_ms < 0:
        raise InvalidLabel("time_spent_ms must not be negative")

    label = Label(
        comparison_id=comparison_id,
        labeler_id=labeler.pk,
        task_id=lease.task_id,
        assignment_id=lease.id,
        kind=kind,
        choice=choice,
        k=lease.k,
        display_order=lease.permutation,
        copies_highlighted=lease.copies_highlighted,
        time_spent_ms=time_spent_ms,
        instructions_version=lease.instructions,
        created_at=timezone.now(),
    )
    change = counter_change(kind=kind, is_gold=lease.is_gold)
    if sql:
        hot_sql.write_label(
            label,
            label_count=change.label_count,
            open_slots=change.open_slots,
            completes=change.completes,
        )
    else:
        label.save(force_insert=True)
        Assignment.objects.filter(pk=lease.id).update(state=Assignment.State.SUBMITTED)
        _count_label_orm(comparison_id=comparison_id, change=change)
    transaction.on_commit(partial(hooks.send_label_committed, sender=Label, task_id=lease.task_id))
    return label, True


def _not_leased(*, labeler: Any, comparison_id: int, kind: str, choice: int | None) -> Label:
    """No live lease: a resubmission of a stored label, or a 404 / 409."""
    task_id = Comparison.objects.filter(pk=comparison_id).values_list("task_id", flat=True).first()
    if task_id is None or not selectors.is_task_labeler(user=labeler, task_id=task_id):
        raise ComparisonNotFound(f"comparison {comparison_id} not found")
    return _resubmission(
        labeler_id=labeler.pk, comparison_id=comparison_id, kind=kind, choice=choice
    )
