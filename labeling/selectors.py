"""Reads for labeling: which tasks a user sees, what is left for a labeler, progress.

Every selector runs a constant number of queries (annotations and subqueries, no per-row
Python loops), so the labeling API stays fast however many tasks and comparisons exist.
"""

from __future__ import annotations

import json
from functools import cache as memoize
from typing import Any, TypedDict

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Exists, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from labeling.models import (
    Assignment,
    Comparison,
    InstructionsVersion,
    Label,
    Prompt,
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


def _pg() -> bool:
    """PostgreSQL: the labeling hot path's reads are hand-written SQL (no ORM compilation)."""
    return connection.vendor == "postgresql"


def hot_cursor() -> Any:
    """A Django cursor (query logging and counting included) over a psycopg cursor that binds
    parameters server-side, so psycopg can prepare the hot path's fixed statements
    (``prepare_threshold`` in the database OPTIONS); the ORM keeps client-side binding."""
    import psycopg

    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw: Any = psycopg.Cursor(connection.connection)
    if connection.queries_logged:
        return connection.make_debug_cursor(raw)
    return connection.make_cursor(raw)


def _json(value: Any) -> Any:
    # Django's psycopg setup hands jsonb back as text.
    return json.loads(value) if isinstance(value, str | bytes) else value


@memoize
def hot_tables() -> dict[str, str]:
    """Quoted table names of the hot path's hand-written SQL (reads here, writes in
    labeling.services), from the models."""
    q = connection.ops.quote_name
    models = {
        "task": Task,
        "member": TaskLabeler,
        "label": Label,
        "assignment": Assignment,
        "comparison": Comparison,
        "prompt": Prompt,
        "instructions": InstructionsVersion,
    }
    return {name: q(model._meta.db_table) for name, model in models.items()}


@memoize
def _hot_sql() -> dict[str, Any]:
    """The hot path's reads on PostgreSQL; table and column names from the models."""
    q = connection.ops.quote_name
    t = hot_tables()
    fields = list(Task._meta.concrete_fields)
    columns = ", ".join(f"t.{q(str(f.column))}" for f in fields)
    task = (
        f"SELECT {columns}, (SELECT COUNT(*) FROM {t['label']} l WHERE l.task_id = t.id"
        f" AND l.labeler_id = %(user)s AND l.kind <> 'skip'),"
        f" EXISTS (SELECT 1 FROM {t['assignment']} a WHERE a.task_id = t.id"
        f" AND a.labeler_id = %(user)s AND a.state = 'active' AND a.expires_at > %(now)s)"
        f" FROM {t['task']} t WHERE t.id = %(task)s AND t.status = 'active'"
    )
    member = (
        f" AND EXISTS (SELECT 1 FROM {t['member']} m WHERE m.task_id = t.id"
        " AND m.labeler_id = %(user)s)"
    )
    lease = """
SELECT a.id, a.comparison_id, a.permutation, a.leased_at, a.expires_at,
       c.k, c.samples, c.is_gold, c.prompt_id, p.text
FROM {assignment} a
JOIN {comparison} c ON c.id = a.comparison_id
JOIN {prompt} p ON p.id = c.prompt_id
WHERE a.task_id = %s AND a.labeler_id = %s AND a.state = 'active' AND a.expires_at > %s
ORDER BY a.leased_at DESC, a.id DESC
LIMIT 1
""".format(**t)
    return {
        "task_staff": task,
        "task_member": task + member,
        "task_fields": [f.attname for f in fields],
        "task_converters": [(i, f) for i, f in enumerate(fields) if hasattr(f, "from_db_value")],
        "lease": lease,
    }


def _get_lease_task_pg(*, user: Any, task_id: int) -> Task | None:
    sql = _hot_sql()
    with hot_cursor() as cursor:
        cursor.execute(
            sql["task_staff" if _is_staff(user) else "task_member"],
            {"user": user.pk, "task": task_id, "now": timezone.now()},
        )
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row[:-2])
    for i, field in sql["task_converters"]:
        values[i] = field.from_db_value(values[i], None, connection)
    task = Task.from_db(connection.alias, sql["task_fields"], values)
    task.labeled_by_me = row[-2]  # type: ignore[attr-defined]
    # Lets lease_next skip its lease lookup when the labeler holds none (the usual case).
    task.holds_live_lease = row[-1]  # type: ignore[attr-defined]
    return task


def get_lease_task(*, user: Any, task_id: int) -> Task | None:
    """``get_labeling_task`` annotated with ``labeled_by_me`` (the user's labels on the task,
    skips excluded): the task, the membership check and the progress in one query
    (hand-written on PostgreSQL)."""
    if _pg():
        return _get_lease_task_pg(user=user, task_id=task_id)
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


def available_comparisons(*, task: Task, labeler_id: int) -> QuerySet[Comparison]:
    """Non-gold open comparisons with a free slot that the labeler has neither leased nor labeled,
    highest priority first (served by the ``comparison_pool`` index)."""
    live = Assignment.objects.filter(
        comparison=OuterRef("pk"), labeler_id=labeler_id, state__in=LIVE_ASSIGNMENT_STATES
    )
    labeled = Label.objects.filter(comparison=OuterRef("pk"), labeler_id=labeler_id)
    return (
        Comparison.objects.filter(
            task=task, is_gold=False, status=Comparison.Status.OPEN, open_slots__gt=0
        )
        .exclude(Exists(live))
        .exclude(Exists(labeled))
        .order_by("-priority", "id")
    )


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
    if _pg():
        with hot_cursor() as cursor:
            cursor.execute(_hot_sql()["lease"], [task.pk, labeler_id, now])
            row = cursor.fetchone()
        if row is None:
            return None
        pk, comparison_id, permutation, leased_at, expires_at, k, samples, is_gold = row[:8]
        prompt_id, text = row[8:]
        comparison = Comparison(
            pk=comparison_id,
            task=task,
            prompt=Prompt(pk=prompt_id, task=task, text=text),
            k=k,
            samples=_json(samples),
            is_gold=is_gold,
        )
        return Assignment(
            pk=pk,
            comparison=comparison,
            labeler_id=labeler_id,
            task=task,
            permutation=_json(permutation),
            state=Assignment.State.ACTIVE,
            leased_at=leased_at,
            expires_at=expires_at,
        )
    return (
        Assignment.objects.select_related("comparison__prompt")
        .filter(task=task, labeler_id=labeler_id, state=Assignment.State.ACTIVE, expires_at__gt=now)
        .order_by("-leased_at", "-id")
        .first()
    )


def _count_subquery(qs: QuerySet[Any], group_field: str) -> Coalesce:
    counted = qs.order_by().values(group_field).annotate(c=Count("pk")).values("c")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def labeling_progress(*, task: Task, labeler_id: int) -> Progress:
    """Labels the labeler gave on the task (skips excluded) and comparisons still open to them."""
    labeled_by_me = (
        Label.objects.filter(task=task, labeler_id=labeler_id).exclude(kind=Label.Kind.SKIP).count()
    )
    remaining = available_comparisons(task=task, labeler_id=labeler_id).count()
    return {"labeled_by_me": labeled_by_me, "remaining": remaining}


def current_instructions(*, task_id: int) -> InstructionsVersion | None:
    return InstructionsVersion.objects.filter(task_id=task_id).order_by("-version").first()


def task_list_for_user(*, user: Any) -> QuerySet[Task]:
    """Labeling tasks annotated with the latest instructions and the user's progress; the whole
    list costs one query."""
    labels = Label.objects.filter(task=OuterRef("pk"), labeler_id=user.pk).exclude(
        kind=Label.Kind.SKIP
    )
    live = Assignment.objects.filter(
        comparison=OuterRef("pk"), labeler_id=user.pk, state__in=LIVE_ASSIGNMENT_STATES
    )
    labeled = Label.objects.filter(comparison=OuterRef("pk"), labeler_id=user.pk)
    open_comparisons = (
        Comparison.objects.filter(
            task=OuterRef("pk"), is_gold=False, status=Comparison.Status.OPEN, open_slots__gt=0
        )
        .exclude(Exists(live))
        .exclude(Exists(labeled))
    )
    latest = InstructionsVersion.objects.filter(task=OuterRef("pk")).order_by("-version")
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
