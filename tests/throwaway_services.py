"""Throwaway PostgreSQL and Redis for one test run, from the installed server binaries.

``make test`` (and so CI) loads this plugin: ``pytest -p tests.throwaway_services``. Before
pytest-django reads the settings, it starts what the environment does not already name:

- PostgreSQL (pytest-postgresql's executor on ``pg_ctl``, the newest under
  /usr/lib/postgresql/*/bin or on PATH) unless ``DATABASE_URL`` is set: a fresh cluster in a
  temporary directory, trust authentication on 127.0.0.1, a free port;
- Redis (pytest-redis's executor on ``redis-server``) unless ``CELERY_BROKER_URL`` is set.

It sets ``DATABASE_URL`` and ``CELERY_BROKER_URL`` for the run (the end-to-end tests' workers
inherit them) and stops both servers when pytest ends. PostgreSQL refuses to run as root: as
root, ``pg_ctl`` runs as the ``postgres`` user (Debian's package makes it), else ``nobody``.
A binary that is missing is reported, and the tests that need that service skip (or fail,
with ``REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

DATABASE_NAME = "preferenceloop"
DATABASE_USER = "postgres"


def find_pg_ctl() -> str | None:
    """The newest installed PostgreSQL's pg_ctl (Debian keeps it off PATH)."""

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.parent.name
        return tuple(int(p) for p in name.split(".") if p.isdigit())

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=version)
    return found[-1] if found else shutil.which("pg_ctl")


def _server_user() -> str | None:
    """Who runs PostgreSQL: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return None


def _as_user(pg_ctl: str, user: str, directory: Path) -> str:
    """A pg_ctl that runs as ``user`` (a script the executor calls in its place)."""
    script = directory / "pg_ctl"
    script.write_text(f'#!/bin/sh\ncd /\nexec runuser -u {user} -- "{pg_ctl}" "$@"\n')
    script.chmod(0o755)
    return str(script)


@dataclass
class ThrowawayServices:
    base: Path
    started: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def start_postgres(self) -> str | None:
        from port_for import get_port
        from pytest_postgresql.executors import PostgreSQLExecutor

        pg_ctl = find_pg_ctl()
        if pg_ctl is None:
            self.notes.append("no PostgreSQL server binaries: PostgreSQL tests skip")
            return None
        directory = self.base / "postgresql"
        directory.mkdir()
        user = _server_user()
        if user is not None:
            shutil.chown(self.base, user)
            shutil.chown(directory, user)
            pg_ctl = _as_user(pg_ctl, user, directory)
        port = get_port(None)
        assert port is not None, "no free port"
        executor = PostgreSQLExecutor(
            executable=pg_ctl,
            host="127.0.0.1",
            port=port,
            datadir=str(directory / "data"),
            unixsocketdir=str(directory),
            logfile=str(directory / "server.log"),
            startparams="-w",
            dbname=DATABASE_NAME,
            user=DATABASE_USER,
            # Enough connections for gunicorn and Celery processes beside the tests.
            postgres_options="-c max_connections=200 -c fsync=off",
        )
        executor.start()
        self.started.append(executor)
        # The database DATABASE_URL names exists too (pytest-django makes test_<name> beside
        # it; some tests' subprocesses use the named one).
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=port, user=DATABASE_USER, dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f"CREATE DATABASE {DATABASE_NAME}")
        return f"postgres://{DATABASE_USER}@127.0.0.1:{port}/{DATABASE_NAME}"

    def start_redis(self) -> str | None:
        from port_for import get_port
        from pytest_redis.executor import RedisExecutor

        server = shutil.which("redis-server")
        if server is None:
            self.notes.append("no redis-server: Redis tests skip")
            return None
        directory = self.base / "redis"
        directory.mkdir()
        port = get_port(None)
        assert port is not None, "no free port"
        executor = RedisExecutor(
            server,
            databases=16,
            redis_timeout=30,
            loglevel="warning",
            host="127.0.0.1",
            port=port,
            datadir=directory,
        )
        executor.start()
        self.started.append(executor)
        return f"redis://127.0.0.1:{port}/0"

    def stop(self) -> None:
        for executor in reversed(self.started):
            try:
                executor.stop()
            except Exception as error:  # stopping the rest matters more
                self.notes.append(f"could not stop {type(executor).__name__}: {error}")
        self.started.clear()
        shutil.rmtree(self.base, ignore_errors=True)


_services: ThrowawayServices | None = None


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: Any, args: Any) -> None:
    """Runs before pytest-django's hook of the same name imports the settings."""
    global _services
    _services = ThrowawayServices(base=Path(tempfile.mkdtemp(prefix="pl-services-")))
    try:
        if not os.environ.get("DATABASE_URL"):
            url = _services.start_postgres()
            if url:
                os.environ["DATABASE_URL"] = url
        if not os.environ.get("CELERY_BROKER_URL"):
            url = _services.start_redis()
            if url:
                os.environ["CELERY_BROKER_URL"] = url
    except BaseException:
        _services.stop()
        raise


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [
        f"throwaway services: DATABASE_URL={os.environ.get('DATABASE_URL', '(SQLite)')} "
        f"CELERY_BROKER_URL={os.environ.get('CELERY_BROKER_URL', '(default)')}"
    ]
    return lines + (_services.notes if _services else [])


def pytest_unconfigure(config: pytest.Config) -> None:
    if _services is not None:
        _services.stop()
