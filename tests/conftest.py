"""Shared fixtures. Tests that need a real service skip locally when it is absent, and fail in
CI (REQUIRE_SERVICES=1), so a green CI never hides a missing service."""

from __future__ import annotations

import os
import shutil

import pytest


def require(condition: bool, what: str) -> None:
    if condition:
        return
    if os.environ.get("REQUIRE_SERVICES"):
        pytest.fail(f"{what} is required (REQUIRE_SERVICES=1) but not available")
    pytest.skip(f"{what} not available")


@pytest.fixture
def require_postgres(settings) -> None:
    require(
        settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql",
        "PostgreSQL (DATABASE_URL)",
    )


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        ok = True
    except Exception:
        ok = False
    require(ok, f"Redis at {url}")
    return url


@pytest.fixture
def chromium_path() -> str:
    path = shutil.which("chromium")
    require(path is not None, "Debian's chromium")
    assert path is not None
    return path
