"""The shared caches: a Redis cache that fails open, and a database cache with atomic counters.

The cache holds throttle counters, login-failure counters and lockouts, and the worker
heartbeat, so it must be one for all processes.

``FailOpenRedisCache`` (production with Redis): none of these may turn a Redis outage into
failed labeling requests (labels are PostgreSQL rows), so errors are logged (at most once a
minute per process) instead of raised. Short socket timeouts keep a hung Redis from holding
requests.

``AtomicDatabaseCache`` (the default without Redis, a table made by ``createcachetable``):
Django's ``DatabaseCache`` increments by a read and a write, so two processes counting at once
could both read 4 and write 5; here ``incr`` reads the row under a lock (``SELECT ... FOR
UPDATE``; SQLite's IMMEDIATE transactions, set in the settings, serialize writers), and
``add`` of a key whose row has expired deletes the row first, so of two processes adding at
once exactly one succeeds. Past ``MAX_ENTRIES`` rows Django would also delete a third of the
live rows (lockouts included, which a flood of usernames could then wipe); here only expired
rows are deleted.
"""

from __future__ import annotations

import base64
import functools
import logging
import pickle
import time
from collections.abc import Callable
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.db import DatabaseCache
from django.core.cache.backends.redis import RedisCache
from django.db import connections, models, router, transaction
from django.utils.timezone import now as tz_now
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


class AtomicDatabaseCache(DatabaseCache):
    def _db(self) -> str:
        return router.db_for_write(self.cache_model_class)

    @property
    def _table_name(self) -> str:
        return str(self._table)  # type: ignore[attr-defined]

    def _cull(self, db: str, cursor: Any, now: Any, num: int) -> None:
        connection = connections[db]
        quote = connection.ops.quote_name
        cursor.execute(
            f"DELETE FROM {quote(self._table_name)} WHERE {quote('expires')} < %s",
            [connection.ops.adapt_datetimefield_value(now)],
        )

    def add(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        db = self._db()
        connection = connections[db]
        quote = connection.ops.quote_name
        now = connection.ops.adapt_datetimefield_value(tz_now().replace(microsecond=0))
        with transaction.atomic(using=db), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {quote(self._table_name)} WHERE {quote('cache_key')} = %s "
                f"AND {quote('expires')} < %s",
                [self.make_and_validate_key(key, version=version), now],
            )
        return bool(super().add(key, value, timeout, version))

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        cache_key = self.make_and_validate_key(key, version=version)
        db = self._db()
        connection = connections[db]
        quote = connection.ops.quote_name
        table = quote(self._table_name)
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        expression = models.Expression(output_field=models.DateTimeField())
        converters = connection.ops.get_db_converters(expression) + expression.get_db_converters(
            connection
        )
        with transaction.atomic(using=db), connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {quote('value')}, {quote('expires')} FROM {table} "
                f"WHERE {quote('cache_key')} = %s{lock}",
                [cache_key],
            )
            row = cursor.fetchone()
            expires = row[1] if row else None
            for converter in converters:
                expires = converter(expires, expression, connection)
            if row is None or expires is None or expires < tz_now():
                raise ValueError(f"Key '{key}' not found")
            value = pickle.loads(base64.b64decode(row[0].encode())) + delta
            encoded = base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")
            cursor.execute(
                f"UPDATE {table} SET {quote('value')} = %s WHERE {quote('cache_key')} = %s",
                [encoded, cache_key],
            )
        return value
