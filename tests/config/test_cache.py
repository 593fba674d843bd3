"""The production cache fails open: Redis down means misses and dropped writes, not errors."""

from __future__ import annotations

import pytest
from django.db import connection

from config.cache import FailOpenRedisCache


def test_a_hung_redis_holds_a_request_at_most_half_a_second():
    cache = FailOpenRedisCache("redis://127.0.0.1:1/0", {})
    pool = cache._cache._get_connection_pool(write=True)
    assert pool.connection_kwargs["socket_connect_timeout"] == 0.5
    assert pool.connection_kwargs["socket_timeout"] == 0.5


def test_unreachable_redis_misses_instead_of_raising():
    cache = FailOpenRedisCache("redis://127.0.0.1:1/0", {})
    assert cache.get("k") is None
    assert cache.get("k", []) == []
    assert cache.add("k", 1) is False
    cache.set("k", 1)
    assert cache.incr("k") == 1  # the login limiter counts this attempt as the first
    assert cache.get_many(["a", "b"]) == {}


def test_reachable_redis_works_as_usual(redis_url):
    cache = FailOpenRedisCache(redis_url.rsplit("/", 1)[0] + "/5", {})
    cache.set("ops-test-key", 41, timeout=10)
    assert cache.incr("ops-test-key") == 42
    cache.delete("ops-test-key")


@pytest.fixture
def database_cache(db, settings):
    from django.core.cache import caches
    from django.core.management import call_command

    settings.CACHES = {
        **settings.CACHES,
        "shared": {"BACKEND": "config.cache.AtomicDatabaseCache", "LOCATION": "test_cache_table"},
    }
    call_command("createcachetable", database="default")
    return caches["shared"]


def test_database_cache_incr_counts_on_live_keys_only(database_cache):
    with pytest.raises(ValueError):
        database_cache.incr("missing")
    database_cache.set("expired", 5, timeout=-1)
    with pytest.raises(ValueError):
        database_cache.incr("expired")
    database_cache.set("live", 5, timeout=60)
    assert database_cache.incr("live") == 6
    assert database_cache.incr("live", 10) == 16
    assert database_cache.get("live") == 16


def test_database_cache_add_replaces_an_expired_row_and_keeps_a_live_one(database_cache):
    database_cache.set("k", "old", timeout=-1)
    assert database_cache.add("k", "new", timeout=60) is True
    assert database_cache.get("k") == "new"
    assert database_cache.add("k", "newer", timeout=60) is False
    assert database_cache.get("k") == "new"


def test_database_cache_culls_expired_rows_only(database_cache):
    database_cache._max_entries = 2
    database_cache.set("gone", 1, timeout=-1)
    for i in range(5):
        database_cache.set(f"live{i}", i, timeout=60)
    assert [database_cache.get(f"live{i}") for i in range(5)] == [0, 1, 2, 3, 4]
    with connection.cursor() as cursor:
        cursor.execute("SELECT cache_key FROM test_cache_table")
        keys = {row[0] for row in cursor.fetchall()}
    assert len(keys) == 5 and not any(key.endswith(":gone") for key in keys)


def test_migrate_makes_the_database_cache_table(db, settings):
    """What ``migrate`` sends when it is done (its post_migrate signal) makes the table."""
    from django.core.management.sql import emit_post_migrate_signal

    settings.CACHES = {
        **settings.CACHES,
        "shared": {"BACKEND": "config.cache.AtomicDatabaseCache", "LOCATION": "made_by_migrate"},
    }
    assert "made_by_migrate" not in connection.introspection.table_names()
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    assert "made_by_migrate" in connection.introspection.table_names()
