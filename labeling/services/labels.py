"""Submitting labels on leased comparisons.

A label needs the labeler's live lease on the comparison (active, not reclaimed; a lease past
its expiry that nobody reclaimed yet still counts, so slow work is not lost). The lease row is
locked first, so a concurrent reclaim or a concurrent resubmission waits or skips it.
Resubmitting the same label returns the stored one; a different one is a conflict.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from functools import cache as memoize
from functools import partial
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Case, Exists, F, OuterRef, Subquery, Value, When
from django.utils import timezone

from labeling import selectors
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


def tick_countdown(*, task_id: int) -> float | None:
    """Debounce of the loop's tick after labels: when to enqueue one for this label, or None.

    Within each window of ``LABELING_TICK_DEBOUNCE_SECONDS`` per task, the first label enqueues
    a tick at once (leading edge) and the next one a tick delayed by the window (trailing edge,
    so the labels that follow are seen too); the rest enqueue nothing. Costs one or two cache
    ``add`` calls instead of a broker publish per label. 0 disables the debounce.
    """
    window = float(getattr(settings, "LABELING_TICK_DEBOUNCE_SECONDS", 2.0))
    if window <= 0:
        return 0.0
    timeout = max(1, math.ceil(window))
    if cache.add(f"labeling:tick:{task_id}", 1, timeout):
        return 0.0
    if cache.add(f"labeling:tick-trailing:{task_id}", 1, timeout):
        return window
    return None


def on_label_committed(task_id: int) -> None:
    """Runs after a label's transaction commits: the hook where the training loop is triggered
    (the scheduler's tick is enqueued, debounced per task by ``tick_countdown``; a broker
    outage must not fail the request)."""
    import logging

    from training.tasks import tick  # Celery task module: torch-free

    countdown = tick_countdown(task_id=task_id)
    if countdown is None:
        return
    try:
        if countdown:
            tick.apply_async((task_id,), countdown=countdown)
        else:
            tick.delay(task_id)
    except Exception:  # the beat's next tick_all catches up
        logging.getLogger(__name__).exception("could not enqueue the loop tick of %s", task_id)


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


def _count_label(*, comparison: Comparison, kind: str) -> None:
    """Update the comparison's counters for one new label, in one UPDATE."""
    if comparison.is_gold:
        if kind != Label.Kind.SKIP:
            Comparison.objects.filter(pk=comparison.pk).update(label_count=F("label_count") + 1)
        return
    if kind == Label.Kind.SKIP:
        # A skip gives the slot back, so that another labeler gets the comparison.
        Comparison.objects.filter(pk=comparison.pk).update(open_slots=F("open_slots") + 1)
        return
    Comparison.objects.filter(pk=comparison.pk).update(
        label_count=F("label_count") + 1,
        status=Case(
            When(
                label_count__gte=F("overlap") - 1,
                status=Comparison.Status.OPEN,
                then=Value(Comparison.Status.COMPLETE),
            ),
            default=F("status"),
        ),
    )


@memoize
def _sql() -> dict[str, str]:
    """The submit's statements on PostgreSQL; table names from the models."""
    t = selectors.hot_tables()
    lease = """
SELECT a.id, a.state, a.permutation, a.task_id, c.k,
       EXISTS (SELECT 1 FROM {member} m WHERE m.task_id = a.task_id AND m.labeler_id = %s),
       iv.id, iv.version
FROM {assignment} a
JOIN {comparison} c ON c.id = a.comparison_id
LEFT JOIN LATERAL (
    SELECT i.id, i.version FROM {instructions} i
    WHERE i.task_id = a.task_id ORDER BY i.version DESC LIMIT 1
) iv ON true
WHERE a.comparison_id = %s AND a.labeler_id = %s AND a.state IN ('active', 'submitted')
ORDER BY a.id
LIMIT 1
FOR UPDATE OF a
""".format(**t)
    # The three writes of a new label in one statement. The counters follow _count_label:
    # a skip gives a non-gold slot back; any other label counts, and completes a non-gold
    # comparison at its overlap.
    write = """
WITH new_label AS (
    INSERT INTO {label} (comparison_id, labeler_id, task_id, assignment_id, kind, choice, k,
                         display_order, time_spent_ms, instructions_version_id, created_at)
    VALUES (%(comparison)s, %(labeler)s, %(task)s, %(assignment)s, %(kind)s, %(choice)s,
            %(k)s, %(display_order)s::jsonb, %(time_spent_ms)s, %(instructions)s, %(now)s)
    RETURNING id
),
lease AS (
    UPDATE {assignment} SET state = 'submitted' WHERE id = %(assignment)s
),
counted AS (
    UPDATE {comparison} SET
        label_count = label_count + CASE WHEN %(skip)s THEN 0 ELSE 1 END,
        open_slots = open_slots + CASE WHEN %(skip)s AND NOT is_gold THEN 1 ELSE 0 END,
        status = CASE
            WHEN NOT %(skip)s AND NOT is_gold AND label_count >= overlap - 1
                 AND status = 'open' THEN 'complete'
            ELSE status END
    WHERE id = %(comparison)s AND NOT (%(skip)s AND is_gold)
)
SELECT id FROM new_label
""".format(**t)
    return {"lease": lease, "write": write}


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
    On PostgreSQL: two statements (the locked lease with membership and instructions, then the
    label INSERT with the lease and counter UPDATEs), hand-written; elsewhere the ORM.
    """
    if selectors._pg():
        return _submit_label_pg(
            labeler=labeler,
            comparison_id=comparison_id,
            kind=kind,
            choice=choice,
            time_spent_ms=time_spent_ms,
        )
    latest = InstructionsVersion.objects.filter(task_id=OuterRef("task_id")).order_by("-version")
    leases = (
        Assignment.objects.select_related("comparison")
        .filter(
            comparison_id=comparison_id,
            labeler_id=labeler.pk,
            state__in=selectors.LIVE_ASSIGNMENT_STATES,
        )
        .annotate(
            # Membership, and the task's current instructions, read with the lease (one query).
            is_member=Exists(
                TaskLabeler.objects.filter(task_id=OuterRef("task_id"), labeler_id=labeler.pk)
            ),
            instructions_id=Subquery(latest.values("pk")[:1]),
            instructions_number=Subquery(latest.values("version")[:1]),
        )
    )
    if connection.features.has_select_for_update:
        leases = leases.select_for_update(of=("self",))
    assignment = leases.first()
    if assignment is None:
        return _not_leased(
            labeler=labeler, comparison_id=comparison_id, kind=kind, choice=choice
        ), False
    comparison = assignment.comparison
    # Staff may label any task (selectors.is_task_labeler); others need a membership still.
    if not (assignment.is_member or getattr(labeler, "is_staff", False)):
        raise ComparisonNotFound(f"comparison {comparison_id} not found")
    if assignment.state == Assignment.State.SUBMITTED:
        return _resubmission(
            labeler_id=labeler.pk, comparison_id=comparison_id, kind=kind, choice=choice
        ), False
    _validate(kind=kind, choice=choice, k=comparison.k)
    if time_spent_ms < 0:
        raise InvalidLabel("time_spent_ms must not be negative")

    instructions = None
    if assignment.instructions_id is not None:
        instructions = InstructionsVersion(
            pk=assignment.instructions_id,
            task_id=comparison.task_id,
            version=assignment.instructions_number,
        )
    label = Label.objects.create(
        comparison=comparison,
        labeler_id=labeler.pk,
        task_id=comparison.task_id,
        assignment=assignment,
        kind=kind,
        choice=choice,
        k=comparison.k,
        display_order=assignment.permutation,
        time_spent_ms=time_spent_ms,
        instructions_version=instructions,
    )
    Assignment.objects.filter(pk=assignment.pk).update(state=Assignment.State.SUBMITTED)
    _count_label(comparison=comparison, kind=kind)
    transaction.on_commit(partial(on_label_committed, comparison.task_id))
    return label, True


def _not_leased(*, labeler: Any, comparison_id: int, kind: str, choice: int | None) -> Label:
    """No live lease: a resubmission of a stored label, or a 404 / 409."""
    task_id = Comparison.objects.filter(pk=comparison_id).values_list("task_id", flat=True).first()
    if task_id is None or not selectors.is_task_labeler(user=labeler, task_id=task_id):
        raise ComparisonNotFound(f"comparison {comparison_id} not found")
    return _resubmission(
        labeler_id=labeler.pk, comparison_id=comparison_id, kind=kind, choice=choice
    )


def _submit_label_pg(
    *,
    labeler: Any,
    comparison_id: int,
    kind: str,
    choice: int | None,
    time_spent_ms: int,
) -> tuple[Label, bool]:
    """``submit_label`` on PostgreSQL (runs in its transaction)."""
    sql = _sql()
    with selectors.hot_cursor() as cursor:
        cursor.execute(sql["lease"], [labeler.pk, comparison_id, labeler.pk])
        row = cursor.fetchone()
    if row is None:
        return _not_leased(
            labeler=labeler, comparison_id=comparison_id, kind=kind, choice=choice
        ), False
    assignment_id, state, permutation, task_id, k, is_member, iv_id, iv_number = row
    if not (is_member or getattr(labeler, "is_staff", False)):
        raise ComparisonNotFound(f"comparison {comparison_id} not found")
    if state == Assignment.State.SUBMITTED:
        return _resubmission(
            labeler_id=labeler.pk, comparison_id=comparison_id, kind=kind, choice=choice
        ), False
    _validate(kind=kind, choice=choice, k=k)
    if time_spent_ms < 0:
        raise InvalidLabel("time_spent_ms must not be negative")
    permutation = selectors._json(permutation)
    now: datetime = timezone.now()
    with selectors.hot_cursor() as cursor:
        cursor.execute(
            sql["write"],
            {
                "comparison": comparison_id,
                "labeler": labeler.pk,
                "task": task_id,
                "assignment": assignment_id,
                "kind": kind,
                "choice": choice,
                "k": k,
                "display_order": json.dumps(permutation),
                "time_spent_ms": time_spent_ms,
                "instructions": iv_id,
                "now": now,
                "skip": kind == Label.Kind.SKIP,
            },
        )
        (label_id,) = cursor.fetchone()
    instructions = None
    if iv_id is not None:
        instructions = InstructionsVersion(pk=iv_id, task_id=task_id, version=iv_number)
    label = Label(
        pk=label_id,
        comparison_id=comparison_id,
        labeler_id=labeler.pk,
        task_id=task_id,
        assignment_id=assignment_id,
        kind=kind,
        choice=choice,
        k=k,
        display_order=permutation,
        time_spent_ms=time_spent_ms,
        instructions_version=instructions,
        created_at=now,
    )
    transaction.on_commit(partial(on_label_committed, task_id))
    return label, True
