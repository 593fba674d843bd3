"""The labeling hot path's hand-written SQL: every statement, and the one switch that runs them.

Why: a labeler's next + submit pair is the request that must scale (DESIGN.md: ten times
Label Studio's throughput at a tenth of its p99). On PostgreSQL, compiling the ORM's queries
cost more than running them: with these statements Django's CPU per pair fell from 12-13.5 ms
to 3.8 ms, a submit from 6 queries to 4 (BEGIN and COMMIT included), and with prepared
statements PostgreSQL's own CPU per pair from 3.3 to 1.8 ms (bench/README.md, "Hand-written
SQL on the hot path"; `bench/hot_path.py --pairs 500`).

When: :func:`enabled`, the only switch: on PostgreSQL. Elsewhere (SQLite) the ORM path of
``labeling.selectors`` and ``labeling.services`` runs; both paths share the rules they
implement (``selectors.available_comparisons`` is the pick below, ``services.labels.
counter_change`` the counters), and ``tests/labeling/test_leasing.py`` and ``test_labels.py``
run every test on both paths on PostgreSQL.

How: the statement text is built once per process from the models' table, column and choice
names (no literal table, column or status name below), and runs on a cursor that binds
parameters server-side, so psycopg prepares it (``prepare_threshold`` in the database
OPTIONS); Django's cursor wrapper still logs and counts each query.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import Model

from labeling.models import (
    Assignment,
    Comparison,
    InstructionsVersion,
    Label,
    Prompt,
    Task,
    TaskLabeler,
)


def enabled() -> bool:
    """Whether the hot path runs the statements of this module (PostgreSQL) or the ORM."""
    return connection.vendor == "postgresql"


def cursor() -> Any:
    """A Django cursor (query logging and counting included) over a psycopg cursor that binds
    parameters server-side, so psycopg can prepare these fixed statements; the ORM keeps
    client-side binding."""
    import psycopg  # PostgreSQL only; SQLite installs need not have it

    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw: Any = psycopg.Cursor(connection.connection)
    if connection.queries_logged:
        return connection.make_debug_cursor(raw)
    return connection.make_cursor(raw)


def _json(value: Any) -> Any:
    # Django's psycopg setup hands jsonb back as text.
    return json.loads(value) if isinstance(value, str | bytes) else value


def _comparison(
    task: Task, pk: int, prompt_id: int, text: str, k: int, samples: Any, is_gold: bool
) -> Comparison:
    """A comparison read back with its prompt (the fields a lease shows)."""
    prompt = Prompt(pk=prompt_id, task=task, text=text)
    return Comparison(pk=pk, task=task, prompt=prompt, k=k, samples=_json(samples), is_gold=is_gold)


class _Table:
    """A model's quoted table name (``{T}`` in a template) and quoted column names by field
    name (``{T[field]}``)."""

    def __init__(self, model: type[Model]) -> None:
        quote = connection.ops.quote_name
        self.table = quote(model._meta.db_table)
        self.columns = {f.name: quote(str(f.column)) for f in model._meta.concrete_fields}

    def __str__(self) -> str:
        return self.table

    def __getitem__(self, field: str) -> str:
        return self.columns[field]


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql(template: str) -> str:
    """``template`` with the tables (T task, M membership, I instructions, P prompt,
    C comparison, A assignment, L label) and the choice values it names filled in."""
    return template.format(
        T=_Table(Task),
        M=_Table(TaskLabeler),
        I=_Table(InstructionsVersion),
        P=_Table(Prompt),
        C=_Table(Comparison),
        A=_Table(Assignment),
        L=_Table(Label),
        TASK_ACTIVE=_literal(Task.Status.ACTIVE),
        LEASE_ACTIVE=_literal(Assignment.State.ACTIVE),
        LEASE_SUBMITTED=_literal(Assignment.State.SUBMITTED),
        OPEN=_literal(Comparison.Status.OPEN),
        COMPLETE=_literal(Comparison.Status.COMPLETE),
        SKIP=_literal(Label.Kind.SKIP),
    )


# --- next: the task read, the labeler's live lease --------------------------------------------

_TASK = """
SELECT {columns},
    (SELECT COUNT(*) FROM {L} l WHERE l.{L[task]} = t.{T[id]} AND l.{L[labeler]} = %(user)s
     AND l.{L[kind]} <> {SKIP}),
    EXISTS (SELECT 1 FROM {A} a WHERE a.{A[task]} = t.{T[id]} AND a.{A[labeler]} = %(user)s
            AND a.{A[state]} = {LEASE_ACTIVE} AND a.{A[expires_at]} > %(now)s)
FROM {T} t WHERE t.{T[id]} = %(task)s AND t.{T[status]} = {TASK_ACTIVE}"""
_MEMBER = """
  AND EXISTS (SELECT 1 FROM {M} m WHERE m.{M[task]} = t.{T[id]} AND m.{M[labeler]} = %(user)s)"""


@cache
def _task_read() -> dict[str, Any]:
    fields = list(Task._meta.concrete_fields)
    columns = ", ".join(f"t.{connection.ops.quote_name(str(f.column))}" for f in fields)
    task = _sql(_TASK.replace("{columns}", columns))
    return {
        "staff": task,
        "member": task + _sql(_MEMBER),
        "fields": [f.attname for f in fields],
        "converters": [(i, f) for i, f in enumerate(fields) if hasattr(f, "from_db_value")],
    }


def lease_task(*, user_id: int, staff: bool, task_id: int, now: datetime) -> Task | None:
    """The active task if the user may label it (staff: any), with ``labeled_by_me`` (their
    labels, skips excluded) and ``holds_live_lease``, in one statement."""
    read = _task_read()
    with cursor() as c:
        c.execute(
            read["staff" if staff else "member"], {"user": user_id, "task": task_id, "now": now}
        )
        row = c.fetchone()
    if row is None:
        return None
    values = list(row[:-2])
    for i, field in read["converters"]:
        values[i] = field.from_db_value(values[i], None, connection)
    task = Task.from_db(connection.alias, read["fields"], values)
    task.labeled_by_me = row[-2]  # type: ignore[attr-defined]
    # Lets lease_next skip its lease lookup when the labeler holds none (the usual case).
    task.holds_live_lease = row[-1]  # type: ignore[attr-defined]
    return task


_ACTIVE_LEASE = """
SELECT a.{A[id]}, a.{A[comparison]}, a.{A[permutation]}, a.{A[leased_at]}, a.{A[expires_at]},
       c.{C[k]}, c.{C[samples]}, c.{C[is_gold]}, c.{C[prompt]}, p.{P[text]},
       a.{A[copies_highlighted]}
FROM {A} a
JOIN {C} c ON c.{C[id]} = a.{A[comparison]}
JOIN {P} p ON p.{P[id]} = c.{C[prompt]}
WHERE a.{A[task]} = %s AND a.{A[labeler]} = %s AND a.{A[state]} = {LEASE_ACTIVE}
  AND a.{A[expires_at]} > %s
ORDER BY a.{A[leased_at]} DESC, a.{A[id]} DESC
LIMIT 1"""


def active_lease(*, task: Task, labeler_id: int, now: datetime) -> Assignment | None:
    """``selectors.active_lease``: the labeler's newest unexpired lease with its comparison
    and prompt."""
    with cursor() as c:
        c.execute(_sql_once("active_lease"), [task.pk, labeler_id, now])
        row = c.fetchone()
    if row is None:
        return None
    pk, comparison_id, permutation, leased_at, expires_at, k, samples, is_gold = row[:8]
    prompt_id, text, copies_highlighted = row[8:]
    return Assignment(
        pk=pk,
        comparison=_comparison(task, comparison_id, prompt_id, text, k, samples, is_gold),
        labeler_id=labeler_id,
        task=task,
        permutation=_json(permutation),
        copies_highlighted=copies_highlighted,
        state=Assignment.State.ACTIVE,
        leased_at=leased_at,
        expires_at=expires_at,
    )


# --- next: the claim and the lease ------------------------------------------------------------

# The pick is selectors.available_comparisons (served by the comparison_pool index); the pick,
# taking the slot and reading the comparison with its prompt are one statement.
_CLAIM = """
WITH picked (id) AS (
    SELECT c.{C[id]} FROM {C} c
    WHERE c.{C[task]} = %(task)s AND NOT c.{C[is_gold]} AND c.{C[status]} = {OPEN}
      AND c.{C[open_slots]} > 0
      AND NOT EXISTS (
          SELECT 1 FROM {A} a WHERE a.{A[comparison]} = c.{C[id]}
          AND a.{A[labeler]} = %(labeler)s AND a.{A[state]} IN ({LEASE_ACTIVE}, {LEASE_SUBMITTED}))
      AND NOT EXISTS (
          SELECT 1 FROM {L} l WHERE l.{L[comparison]} = c.{C[id]}
          AND l.{L[labeler]} = %(labeler)s)
    ORDER BY c.{C[priority]} DESC, c.{C[id]} ASC
    LIMIT 1
    FOR UPDATE OF c LOCKING
),
taken AS (
    UPDATE {C} AS c SET {C[open_slots]} = c.{C[open_slots]} - 1
    FROM picked WHERE c.{C[id]} = picked.id AND c.{C[open_slots]} > 0
    RETURNING c.{C[id]}, c.{C[prompt]}, c.{C[k]}, c.{C[samples]}
)
SELECT taken.{C[id]}, taken.{C[prompt]}, taken.{C[k]}, taken.{C[samples]}, p.{P[text]}
FROM taken JOIN {P} AS p ON p.{P[id]} = taken.{C[prompt]}"""


def claim_open_slot(*, task: Task, labeler_id: int, skip_locked: bool) -> Comparison | None:
    """Take one slot of the best available comparison (``FOR UPDATE``, ``SKIP LOCKED`` when
    asked) and return it with its prompt; None when the pick found nothing it could take."""
    name = "claim_skip_locked" if skip_locked else "claim_wait"
    with cursor() as c:
        c.execute(_sql_once(name), {"task": task.pk, "labeler": labeler_id})
        row = c.fetchone()
    if row is None:
        return None
    pk, prompt_id, k, samples, text = row
    return _comparison(task, pk, prompt_id, text, k, samples, False)


_INSERT_LEASE = """
INSERT INTO {A} ({A[comparison]}, {A[labeler]}, {A[task]}, {A[permutation]}, {A[state]},
                 {A[leased_at]}, {A[expires_at]}, {A[copies_highlighted]})
VALUES (%s, %s, %s, %s::jsonb, {LEASE_ACTIVE}, %s, %s, %s)
RETURNING {A[id]}"""


def insert_lease(lease: Assignment) -> None:
    """INSERT an unsaved active lease built by the caller; sets its primary key."""
    with cursor() as c:
        c.execute(
            _sql_once("insert_lease"),
            [
                lease.comparison_id,
                lease.labeler_id,
                lease.task_id,
                json.dumps(lease.permutation),
                lease.leased_at,
                lease.expires_at,
                lease.copies_highlighted,
            ],
        )
        (lease.pk,) = c.fetchone()


# --- submit: the locked lease, then every write in one statement ------------------------------


@dataclass(frozen=True)
class LockedLease:
    """The labeler's live lease on a comparison, locked, with what the submit needs."""

    id: int
    state: str
    permutation: list[int]
    task_id: int
    k: int
    is_gold: bool
    is_member: bool
    instructions: InstructionsVersion | None
    copies_highlighted: bool = False


_LOCKED_LEASE = """
SELECT a.{A[id]}, a.{A[state]}, a.{A[permutation]}, a.{A[task]}, c.{C[k]}, c.{C[is_gold]},
       EXISTS (SELECT 1 FROM {M} m WHERE m.{M[task]} = a.{A[task]} AND m.{M[labeler]} = %s),
       iv.{I[id]}, iv.{I[version]}, a.{A[copies_highlighted]}
FROM {A} a
JOIN {C} c ON c.{C[id]} = a.{A[comparison]}
LEFT JOIN LATERAL (
    SELECT i.{I[id]}, i.{I[version]} FROM {I} i
    WHERE i.{I[task]} = a.{A[task]} ORDER BY i.{I[version]} DESC LIMIT 1
) iv ON true
WHERE a.{A[comparison]} = %s AND a.{A[labeler]} = %s
  AND a.{A[state]} IN ({LEASE_ACTIVE}, {LEASE_SUBMITTED})
ORDER BY a.{A[id]}
LIMIT 1
FOR UPDATE OF a"""


def locked_lease(*, labeler_id: int, comparison_id: int) -> LockedLease | None:
    """``FOR UPDATE`` of the labeler's live lease, with membership and current instructions."""
    with cursor() as c:
        c.execute(_sql_once("locked_lease"), [labeler_id, comparison_id, labeler_id])
        row = c.fetchone()
    if row is None:
        return None
    pk, state, permutation, task_id, k, is_gold, is_member, iv_id, iv_number, copies = row
    instructions = None
    if iv_id is not None:
        instructions = InstructionsVersion(pk=iv_id, task_id=task_id, version=iv_number)
    return LockedLease(
        id=pk,
        state=state,
        permutation=_json(permutation),
        task_id=task_id,
        k=k,
        is_gold=is_gold,
        is_member=is_member,
        instructions=instructions,
        copies_highlighted=copies,
    )


_WRITE_LABEL = """
WITH new_label AS (
    INSERT INTO {L} ({L[comparison]}, {L[labeler]}, {L[task]}, {L[assignment]}, {L[kind]},
                     {L[choice]}, {L[k]}, {L[display_order]}, {L[time_spent_ms]},
                     {L[instructions_version]}, {L[created_at]}, {L[copies_highlighted]})
    VALUES (%(comparison)s, %(labeler)s, %(task)s, %(assignment)s, %(kind)s, %(choice)s,
            %(k)s, %(display_order)s::jsonb, %(time_spent_ms)s, %(instructions)s, %(now)s,
            %(copies_highlighted)s)
    RETURNING {L[id]}
),
lease AS (
    UPDATE {A} SET {A[state]} = {LEASE_SUBMITTED} WHERE {A[id]} = %(assignment)s
),
counted AS (
    UPDATE {C} SET
        {C[label_count]} = {C[label_count]} + %(label_count)s,
        {C[open_slots]} = {C[open_slots]} + %(open_slots)s,
        {C[status]} = CASE
            WHEN %(completes)s AND {C[label_count]} >= {C[overlap]} - 1
                 AND {C[status]} = {OPEN} THEN {COMPLETE}
            ELSE {C[status]} END
    WHERE {C[id]} = %(comparison)s AND %(counts)s
)
SELECT {L[id]} FROM new_label"""


def write_label(label: Label, *, label_count: int, open_slots: int, completes: bool) -> None:
    """INSERT the unsaved ``label`` (setting its primary key), mark its lease submitted and
    add ``label_count`` and ``open_slots`` to its comparison's counters, completing it at its
    overlap when ``completes``: one statement."""
    with cursor() as c:
        c.execute(
            _sql_once("write_label"),
            {
                "comparison": label.comparison_id,
                "labeler": label.labeler_id,
                "task": label.task_id,
                "assignment": label.assignment_id,
                "kind": label.kind,
                "choice": label.choice,
                "k": label.k,
                "display_order": json.dumps(label.display_order),
                "time_spent_ms": label.time_spent_ms,
                "instructions": label.instructions_version_id,
                "now": label.created_at,
                "copies_highlighted": label.copies_highlighted,
                "label_count": label_count,
                "open_slots": open_slots,
                "completes": completes,
                "counts": bool(label_count or open_slots),
            },
        )
        (label.pk,) = c.fetchone()


@cache
def _sql_once(name: str) -> str:
    templates = {
        "active_lease": _ACTIVE_LEASE,
        "claim_skip_locked": _CLAIM.replace("LOCKING", "SKIP LOCKED"),
        # After a miss every candidate may have been locked only for a moment (a concurrent
        # lease, or a skip giving its slot back): wait for the best one.
        "claim_wait": _CLAIM.replace(" LOCKING", ""),
        "insert_lease": _INSERT_LEASE,
        "locked_lease": _LOCKED_LEASE,
        "write_label": _WRITE_LABEL,
    }
    return _sql(templates[name])
