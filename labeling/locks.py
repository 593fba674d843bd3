"""Row locks that writers take before they change rows other transactions also write.

FOR NO KEY UPDATE, never plain FOR UPDATE: it excludes other writers of the row just as well,
but not the FOR KEY SHARE lock that PostgreSQL's foreign-key check takes on a row when a row
pointing at it commits. With FOR UPDATE on the task, a policy publish retiring comparisons
waited for a labeling transaction's comparison row while that transaction's commit (its label
points at the task) waited for the task row: a deadlock, and PostgreSQL failed one of them.
SQLite has no row locks (its writers are serialized by ``BEGIN IMMEDIATE``): rows as they are.
"""

from __future__ import annotations

from typing import TypeVar

from django.db import connection, models
from django.db.models import QuerySet

from labeling.models import Comparison

M = TypeVar("M", bound=models.Model)


def locked(rows: QuerySet[M]) -> QuerySet[M]:
    """``rows`` to be read FOR NO KEY UPDATE where the database has row locks."""
    features = connection.features
    if not features.has_select_for_update:
        return rows
    return rows.select_for_update(no_key=features.has_select_for_no_key_update, of=("self",))


def lock_comparisons_in_order(comparisons: QuerySet[Comparison]) -> list[int]:
    """Lock ``comparisons`` in id order; their ids.

    A statement that updates many comparisons locks them in whatever order its plan visits
    them, so two such writers (the tick giving expired leases' slots back, a publish retiring
    an old policy's comparisons) could each hold a row the other waits for. Every writer of
    several comparisons locks them first here, in one order: they queue instead of
    deadlocking. A row that no longer matches once its lock is had is left out (PostgreSQL
    checks the filter again on the row's latest version).
    """
    return list(locked(comparisons.order_by("pk")).values_list("pk", flat=True))
