"""A Redis cache that fails open: with Redis down, reads miss and writes are dropped.

The cache holds throttle counters, login-attempt counters and the worker heartbeat. None of
them may turn a Redis outage into failed labeling requests (labels are PostgreSQL rows), so
errors are logged (at most once a minute per process) instead of raised. Short socket
timeouts keep a hung Redis from holding requests.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)
_last_warning = [0.0]


def _fail_open(default: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(self: RedisCache, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except (RedisError, OSError) as exc:
                now = time.monotonic()
                if now - _last_warning[0] > 60:
                    _last_warning[0] = now
                    logger.warning("cache unavailable, failing open: %s", exc)
                return default(*args, **kwargs)

        return wrapper

    return decorate


def _get_default(key: Any, default: Any = None, *args: Any, **kwargs: Any) -> Any:
    return default


def _incr_default(key: Any, delta: int = 1, *args: Any, **kwargs: Any) -> int:
    return delta


class FailOpenRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        options = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
        params = {**params, "OPTIONS": {**options, **params.get("OPTIONS", {})}}
        super().__init__(server, params)

    get = _fail_open(_get_default)(RedisCache.get)
    get_many = _fail_open(lambda *a, **k: {})(RedisCache.get_many)
    has_key = _fail_open(lambda *a, **k: False)(RedisCache.has_key)
    add = _fail_open(lambda *a, **k: False)(RedisCache.add)
    set = _fail_open(lambda *a, **k: None)(RedisCache.set)
    set_many = _fail_open(lambda *a, **k: [])(RedisCache.set_many)
    touch = _fail_open(lambda *a, **k: False)(RedisCache.touch)
    delete = _fail_open(lambda *a, **k: False)(RedisCache.delete)
    delete_many = _fail_open(lambda *a, **k: None)(RedisCache.delete_many)
    incr = _fail_open(_incr_default)(RedisCache.incr)
    clear = _fail_open(lambda *a, **k: False)(RedisCache.clear)
