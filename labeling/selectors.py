"""Reads for labeling: which tasks a user sees, what is left for a labeler, progress.

Every selector runs a constant number of queries (annotations and subqueries, no per-row
Python loops), so the labeling API stays fast however many tasks and comparisons exist.
"""

from __future__ import annotations

from typing import Any, TypedDict

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache
from django.db.models import Count, Exists, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from labeling import hot_sql
from labeling.models import (
    Assignment,
    Comparison,
    InstructionsVersion,
    Label,
    Task,
    TaskLabeler,
)

LIVE_ASSIGNMENT_STATES = (Assignment.State.ACTIVE, Assignment.State.SUBMITTED)

User = AbstractBaseUser | AnonymousUser


class Progress(TypedDict):
    labeled_by_me: int
    remaining: int


def _is_staff(user: Any) -> bool:
    return bool(getattr(user, "is_staff", False))


def is_task_labeler(*, user: Any, task_id: int) -> bool:
    """Staff may label any task; other users only the tasks they are members of."""
    if _is_staff(user):
        return True
    return TaskLabeler.objects.filter(task_id=task_id, labeler_id=user.pk).exists()


def labeling_tasks(*, user: Any) -> QuerySet[Task]:
    """Active tasks the user may label: their memberships, or all active tasks for staff."""
    tasks = Task.objects.filter(status=Task.Status.ACTIVE)
    if not _is_staff(user):
        tasks = tasks.filter(
            Exists(TaskLabeler.objects.filter(task=OuterRef("pk"), labeler_id=user.pk))
        )
    return tasks


def get_labeling_task(*, user: Any, task_id: int) -> Task | None:
    """The task if the user may label it now (one query), else None."""
    return labeling_tasks(user=user).filter(pk=task_id).first()


def get_lease_task(*, user: Any, task_id: int) -> Task | None:
    """``get_labeling_task`` annotated with ``labeled_by_me`` (the user's labels on the task,
    skips excluded): the task, the membership check and the progress in one query
    (hand-written on PostgreSQL)."""
    if hot_sql.enabled():
        return hot_sql.lease_task(
            user_id=user.pk, staff=_is_staff(user), task_id=task_id, now=timezone.now()
        )
    mine = Label.objects.filter(task=OuterRef("pk"), labeler_id=user.pk).exclude(
        kind=Label.Kind.SKIP
    )
    return (
        labeling_tasks(user=user)
        .filter(pk=task_id)
        .annotate(labeled_by_me=_count_subquery(mine, "task"))
        .first()
    )


def remaining_estimate(*, task_id: int) -> int:
    """Open comparisons of the task with a free slot, task-wide (not per labeler), cached for
    ``LABELING_REMAINING_CACHE_SECONDS`` in the shared cache: one COUNT per task every few
    seconds instead of a per-labeler COUNT with two anti-joins on every fetch."""
    key = f"labeling:remaining:{task_id}"
    value = cache.get(key)
    if value is None:
        value = Comparison.objects.filter(
            task_id=task_id, is_gold=False, status=Comparison.Status.OPEN, open_slots__gt=0
        ).count()
        ttl = float(getattr(settings, "LABELING_REMAINING_CACHE_SECONDS", 5.0))
        if ttl > 0:
            cache.set(key, value, ttl)
    return int(value)


def get_export_task(*, task_id: int) -> Task | None:
    return Task.objects.filter(pk=task_id).first()


def _open_to(*, labeler_id: Any, **where: Any) -> QuerySet[Comparison]:
    """Non-gold open comparisons with a free slot (filtered by ``where``) that the labeler has
    neither leased nor labeled."""
    live = Assignment.objects.filter(
        comparison=OuterRef("pk"), labeler_id=labeler_id, state__in=LIVE_ASSIGNMENT_STATES
    )
    labeled = Label.objects.filter(comparison=OuterRef("pk"), labeler_id=labeler_id)
    return (
        Comparison.objects.filter(
            is_gold=False, status=Comparison.Status.OPEN, open_slots__gt=0, **where
        )
        .exclude(Exists(live))
        .exclude(Exists(labeled))
    )


def available_comparisons(*, task: Task, labeler_id: int) -> QuerySet[Comparison]:
    """What the labeler may lease next on the task, highest priority first (served by the
    ``comparison_pool`` index; ``hot_sql``'s claim picks the same on PostgreSQL)."""
    return _open_to(labeler_id=labeler_id, task=task).order_by("-priority", "id")


def unseen_gold_comparisons(*, task: Task, labeler_id: int) -> QuerySet[Comparison]:
    """Gold comparisons the labeler was never shown (gold ignores overlap and slots)."""
    seen = Assignment.objects.filter(comparison=OuterRef("pk"), labeler_id=labeler_id)
    labeled = Label.objects.filter(comparison=OuterRef("pk"), labeler_id=labeler_id)
    return (
        Comparison.objects.filter(task=task, is_gold=True)
        .exclude(status=Comparison.Status.RETIRED)
        .exclude(Exists(seen))
        .exclude(Exists(labeled))
        .order_by("-priority", "id")
    )


def active_lease(*, task: Task, labeler_id: int, now: Any) -> Assignment | None:
    """The labeler's unexpired lease on the task, if any (newest first), with its comparison
    and prompt (hand-written SQL on PostgreSQL)."""
    if hot_sql.enabled():
        return hot_sql.active_lease(task=task, labeler_id=labeler_id, now=now)
    lease = (
        Assignment.objects.select_related("comparison__prompt")
        .filter(task=task, labeler_id=labeler_id, state=Assignment.State.ACTIVE, expires_at__gt=now)
        .order_by("-leased_at", "-id")
        .first()
    )
    if lease is not None:
        lease.task = task  # the lease payload reads the task's settings: no second query
    return lease


def _count_subquery(qs: QuerySet[Any], group_field: str) -> Coalesce:
    counted = qs.order_by().values(group_field).annotate(c=Count("pk")).values("c")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def latest_instructions(task: Any) -> QuerySet[InstructionsVersion]:
    """A task's instructions versions, newest first; ``task`` is a task id, a task or an
    ``OuterRef`` to one (a subquery's current instructions)."""
    return InstructionsVersion.objects.filter(task=task).order_by("-version")


def current_instructions(*, task_id: int) -> InstructionsVersion | None:
    return latest_instructions(task_id).first()


def task_list_for_user(*, user: Any) -> QuerySet[Task]:
    """Labeling tasks annotated with the latest instructions and the user's progress; the whole
    list costs one query."""
    labels = Label.objects.filter(task=OuterRef("pk"), labeler_id=user.pk).exclude(
        kind=Label.Kind.SKIP
    )
    open_comparisons = _open_to(labeler_id=user.pk, task=OuterRef("pk"))
    latest = latest_instructions(OuterRef("pk"))
    return (
        labeling_tasks(user=user)
        .annotate(
            labeled_by_me=_count_subquery(labels, "task"),
            remaining=_count_subquery(open_comparisons, "task"),
            instructions_version=Subquery(latest.values("version")[:1]),
            instructions_text=Subquery(latest.values("text")[:1]),
        )
        .order_by("id")
    )
