"""The production cache fails open: Redis down means misses and dropped writes, not errors."""

from __future__ import annotations

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
