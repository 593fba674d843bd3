"""Fixtures of the labeling tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.db import connection

from labeling import hot_sql


@dataclass
class HotPath:
    name: str
    """"sql": labeling.hot_sql's statements; "orm": the ORM path."""
    statements: int = 0
    """Hand-written statements run so far."""


@pytest.fixture(params=["sql", "orm"])
def hot_path(request, monkeypatch) -> HotPath:
    """Run a test on both paths of the hot path where the database has both: the hand-written
    SQL (PostgreSQL) and the ORM (SQLite, and PostgreSQL with ``hot_sql.enabled`` off). The
    ORM variant fails on any hand-written statement; the SQL one counts them."""
    path = HotPath(request.param)
    real_cursor = hot_sql.cursor
    if path.name == "sql":
        if connection.vendor != "postgresql":
            pytest.skip("the hand-written SQL path is PostgreSQL's")

        def counting_cursor():
            path.statements += 1
            return real_cursor()

        monkeypatch.setattr(hot_sql, "cursor", counting_cursor)
    else:
        monkeypatch.setattr(hot_sql, "enabled", lambda: False)

        def no_cursor():
            raise AssertionError("the ORM path ran a hand-written statement")

        monkeypatch.setattr(hot_sql, "cursor", no_cursor)
    return path
