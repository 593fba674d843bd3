"""Submitting labels on leased comparisons.

A label needs the labeler's live lease on the comparison (active, not reclaimed; a lease past
its expiry that nobody reclaimed yet still counts, so slow work is not lost). The lease row is
locked first, so a concurrent reclaim or a concurrent resubmission waits or skips it.
Resubmitting the same label returns the stored one; a different one is a conflict.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Case, Exists, F, OuterRef, Subquery, Value, When

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
    """
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
        task_id = (
            Comparison.objects.filter(pk=comparison_id).values_list("task_id", flat=True).first()
        )
        if task_id is None or not selectors.is_task_labeler(user=labeler, task_id=task_id):
            raise ComparisonNotFound(f"comparison {comparison_id} not found")
        return _resubmission(
            labeler_id=labeler.pk, comparison_id=comparison_id, kind=kind, choice=choice
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
