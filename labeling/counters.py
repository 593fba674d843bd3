"""Counters in the shared cache, for throttles and login limits.

``hit(key, seconds)`` counts one event in a fixed window that starts at the key's first
event and lasts ``seconds``, and returns the count so far. On Redis that is one round trip
(``SET NX EX`` + ``INCR`` in a pipeline); elsewhere a cache ``incr`` (an ``add`` when the key
is missing), atomic on the project's database cache (``config.cache.AtomicDatabaseCache``) as
on Redis.
The cache must be shared by every web process for a limit to hold across them: Redis
(``CACHE_URL=redis://...``) or, without Redis, the database cache (the default).
"""

from __future__ import annotations

from django.core.cache import BaseCache
from django.core.cache import cache as default_cache
from django.core.cache.backends.redis import RedisCache


def hit(key: str, seconds: int, *, cache: BaseCache | None = None) -> int:
    """Count one event under ``key``; the number of events in its current window."""
    cache = default_cache if cache is None else cache
    seconds = max(1, int(seconds))
    if isinstance(cache, RedisCache):
        redis_key = cache.make_and_validate_key(key)
        client = cache._cache.get_client(redis_key, write=True)
        pipe = client.pipeline(transaction=False)
        pipe.set(redis_key, 0, ex=seconds, nx=True)
        pipe.incr(redis_key)
        return int(pipe.execute()[1])
    try:  # the usual case, one statement on the database cache
        return int(cache.incr(key))
    except ValueError:  # no live key: the first event of a window
        pass
    if cache.add(key, 1, seconds):
        return 1
    try:  # another process started the window meanwhile
        return int(cache.incr(key))
    except ValueError:  # ... and it expired already
        cache.set(key, 1, seconds)
        return 1
