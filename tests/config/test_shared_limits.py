"""Limits hold across processes in every documented configuration: without Redis (the database
cache, the default, on SQLite and on PostgreSQL) and with Redis. Separate Python processes
count on one key at once, as gunicorn's workers do: every count is handed out exactly once,
and a lockout one process starts is seen by another."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from config.settings.base import cache_setting
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 4
HITS = 40

WORKER = """
import os, sys, time
import django
django.setup()
from django.core.management import call_command
from labeling import counters
from labeling.services import login_limits

action, *args = sys.argv[1:]
if action == "createcachetable":
    call_command("createcachetable")
elif action == "hit":
    key, n, start_at = args
    time.sleep(max(0.0, float(start_at) - time.time()))  # all processes at once
    print(" ".join(str(counters.hit(key, 300)) for _ in range(int(n))))
elif action == "fail":
    username, n = args
    for i in range(int(n)):
        login_limits.record_failure(address=f"10.0.0.{i}", username=username)
elif action == "locked":
    print(login_limits.seconds_locked_out(address="10.9.9.9", username=args[0]))
"""


def _postgres_url() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://")) else None


def _redis_cache_url() -> str | None:
    """DB 5 of the run's Redis (CELERY_BROKER_URL's server: `make test` starts one)."""
    broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    if not broker.startswith("redis://"):
        return None
    url = broker.rsplit("/", 1)[0] + "/5"  # DB 5: this project's tests never flush it
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception:
        return None
    return url


@pytest.fixture(params=["database-sqlite", "database-postgres", "redis"])
def stack_env(request, tmp_path) -> dict[str, str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    if request.param == "database-sqlite":
        env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
        env["CACHE_URL"] = "dbcache://preference_loop_cache"
    elif request.param == "database-postgres":
        url = _postgres_url()
        require(url is not None, "PostgreSQL (DATABASE_URL)")
        env["DATABASE_URL"] = str(url)
        env["CACHE_URL"] = f"dbcache://limits_test_{uuid.uuid4().hex[:8]}"
    else:
        url = _redis_cache_url()
        require(url is not None, "Redis (CELERY_BROKER_URL)")
        env["CACHE_URL"] = str(url)
    if env["CACHE_URL"].startswith("dbcache://"):
        _run(env, "createcachetable")
    yield env
    if request.param == "database-postgres":
        import psycopg

        table = env["CACHE_URL"].removeprefix("dbcache://")
        with psycopg.connect(str(_postgres_url()), autocommit=True) as connection:
            connection.execute(f"DROP TABLE IF EXISTS {table}")


def _run(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", WORKER, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_the_default_cache_is_the_database_and_counts_atomically():
    assert cache_setting("dbcache://preference_loop_cache")["BACKEND"] == (
        "config.cache.AtomicDatabaseCache"
    )


def test_processes_counting_at_once_share_one_count(stack_env):
    key = f"shared-test:{uuid.uuid4().hex}"
    start_at = str(time.time() + 8)  # after every process has loaded Django
    with ThreadPoolExecutor(PROCESSES) as pool:
        outputs = list(
            pool.map(lambda _: _run(stack_env, "hit", key, str(HITS), start_at), range(PROCESSES))
        )
    counts = sorted(int(c) for output in outputs for c in output.split())
    # Atomic: every count from 1 to the total handed out exactly once.
    assert counts == list(range(1, PROCESSES * HITS + 1))


def test_a_lockout_started_in_one_process_holds_in_another(stack_env):
    username = f"victim-{uuid.uuid4().hex[:8]}"
    assert _run(stack_env, "locked", username).strip() == "0"
    _run(stack_env, "fail", username, "10")
    assert 0 < int(_run(stack_env, "locked", username)) <= 60
