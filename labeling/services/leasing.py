"""Leasing comparisons to labelers, safely under concurrency.

A comparison has ``overlap`` slots; ``open_slots`` counts those neither leased nor labeled.
Taking a slot is a conditional ``UPDATE ... SET open_slots = open_slots - 1 WHERE open_slots > 0``
on a row picked with ``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL), so concurrent labelers
never take the same slot and never wait on each other's rows. On PostgreSQL the pick, the
update and the read of the comparison with its prompt are one statement (a CTE, in
``labeling.hot_sql``). On SQLite, row locks do not exist: the settings open every transaction
with ``BEGIN IMMEDIATE`` so writers serialize there.

Gold comparisons ignore overlap: any labeler who has not seen one may get it, no slot is taken.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from labeling import hot_sql, selectors
from labeling.locks import lock_comparisons_in_order
from labeling.models import Assignment, Comparison, Task

_CLAIM_ATTEMPTS = 3


class LeasingError(Exception):
    """Base class of leasing errors (mapped to 4xx by the API)."""


class TaskNotActive(LeasingError):
    pass


def _claim_open_slot(*, task: Task, labeler_id: int) -> Comparison | int | None:
    """Take one slot of the best available comparison: the comparison (with its prompt) on
    PostgreSQL, its id on other databases, None when none is left."""
    if hot_sql.enabled():
        for attempt in range(_CLAIM_ATTEMPTS + 1):
            # Every candidate may be locked only for a moment (a concurrent lease, or a skip
            # giving its slot back): after a miss, wait for the best one rather than answer
            # "nothing left".
            skip_locked = attempt == 0
            claimed = hot_sql.claim_open_slot(
                task=task, labeler_id=labeler_id, skip_locked=skip_locked
            )
            if claimed is not None:
                return claimed
            if not skip_locked and not _pool(task, labeler_id).exists():
                return None
        return None
    for _ in range(_CLAIM_ATTEMPTS):
        comparison_id = _pool(task, labeler_id).values_list("pk", flat=True).first()
        if comparison_id is None:
            return None
        taken = Comparison.objects.filter(pk=comparison_id, open_slots__gt=0).update(
            open_slots=F("open_slots") - 1
        )
        if taken:
            return comparison_id
    return None


def _pool(task: Task, labeler_id: int) -> QuerySet[Comparison]:
    return selectors.available_comparisons(task=task, labeler_id=labeler_id)


def _claim_gold(*, task: Task, labeler_id: int) -> int | None:
    return (
        selectors.unseen_gold_comparisons(task=task, labeler_id=labeler_id)
        .values_list("pk", flat=True)
        .first()
    )


def _create_assignment(
    *,
    task: Task,
    labeler_id: int,
    comparison: Comparison | int,
    now: datetime,
    rng: random.Random,
) -> Assignment:
    if not isinstance(comparison, Comparison):
        comparison = Comparison.objects.select_related("prompt").get(pk=comparison)
    permutation = list(range(comparison.k))
    rng.shuffle(permutation)
    lease = Assignment(
        comparison=comparison,
        labeler_id=labeler_id,
        task=task,
        permutation=permutation,
        # What the page shows is decided here, kept with the lease and copied to its label.
        copies_highlighted=task.kind == Task.Kind.SUMMARIZATION and task.highlight_copies,
        state=Assignment.State.ACTIVE,
        leased_at=timezone.now(),
        expires_at=now + timedelta(seconds=task.lease_seconds),
    )
    if hot_sql.enabled():
        hot_sql.insert_lease(lease)
    else:
        lease.save(force_insert=True)
    return lease


@transaction.atomic
def lease_next(
    *,
    task: Task,
    labeler: Any,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> Assignment | None:
    """The labeler's next comparison on the task as a lease, or None when nothing is left.

    Returns the labeler's unexpired lease if they hold one; otherwise, with probability
    ``task.gold_rate``, a gold comparison they have not seen; otherwise a slot of the
    highest-priority open comparison they have not leased or labeled. When the pool looks
    empty, expired leases of the task are reclaimed once and the pool is tried again.
    """
    if task.status != Task.Status.ACTIVE:
        raise TaskNotActive(f"task {task.pk} is not active")
    now = now or timezone.now()
    rng = rng or random.Random()
    labeler_id = labeler.pk

    # ``holds_live_lease`` comes from the task read (selectors.get_lease_task) when it knows.
    if getattr(task, "holds_live_lease", True):
        existing = selectors.active_lease(task=task, labeler_id=labeler_id, now=now)
        if existing is not None:
            return existing

    claimed: Comparison | int | None = None
    if task.gold_rate > 0 and rng.random() < task.gold_rate:
        claimed = _claim_gold(task=task, labeler_id=labeler_id)
    if claimed is None:
        claimed = _claim_open_slot(task=task, labeler_id=labeler_id)
    if claimed is None and reclaim_expired_leases(task=task, now=now):
        claimed = _claim_open_slot(task=task, labeler_id=labeler_id)
    if claimed is None:
        return None
    return _create_assignment(
        task=task, labeler_id=labeler_id, comparison=claimed, now=now, rng=rng
    )


@transaction.atomic
def reclaim_expired_leases(*, task: Task | None = None, now: datetime | None = None) -> int:
    """Mark active leases past their expiry as expired and give their slots back; how many.

    Leases locked by a concurrent submission are skipped (the submission wins). A constant
    number of queries: one lock-and-read, one update of the leases, one lock of their
    comparisons (:func:`lock_comparisons_in_order`), one update per distinct number of leases
    reclaimed on a comparison (at most the overlap).
    """
    now = now or timezone.now()
    expired = Assignment.objects.filter(state=Assignment.State.ACTIVE, expires_at__lte=now)
    if task is not None:
        expired = expired.filter(task=task)
    if connection.features.has_select_for_update_skip_locked:
        expired = expired.select_for_update(skip_locked=True, of=("self",))
    rows = list(expired.values_list("pk", "comparison_id", "comparison__is_gold"))
    if not rows:
        return 0
    reclaimed = Assignment.objects.filter(
        pk__in=[pk for pk, _, _ in rows], state=Assignment.State.ACTIVE
    ).update(state=Assignment.State.EXPIRED)
    per_comparison = Counter(cid for _, cid, is_gold in rows if not is_gold)
    lock_comparisons_in_order(Comparison.objects.filter(pk__in=list(per_comparison)))
    by_count: dict[int, list[int]] = {}
    for comparison_id, n in per_comparison.items():
        by_count.setdefault(n, []).append(comparison_id)
    for n, comparison_ids in by_count.items():
        Comparison.objects.filter(pk__in=comparison_ids).update(open_slots=F("open_slots") + n)
    return reclaimed
