"""/healthz: database, broker and worker heartbeat; `?live=1` checks only the process.

200 with {"status": "ok", "checks": {...}} when every part is healthy, 503 with the failing
parts named otherwise. Each check is cheap and bounded by a short timeout, so a load
balancer may poll it every few seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.heartbeat import max_age_seconds, worker_heartbeats

CHECK_TIMEOUT_S = 2.0


def check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True, "vendor": connection.vendor}


def check_broker() -> dict[str, Any]:
    url: str = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        client = redis.Redis.from_url(
            url, socket_connect_timeout=CHECK_TIMEOUT_S, socket_timeout=CHECK_TIMEOUT_S
        )
        try:
            client.ping()
        finally:
            client.close()
        return {"ok": True, "transport": "redis"}
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_S)
        transport = conn.transport_cls
    return {"ok": True, "transport": str(transport)}


def check_worker(now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    beats = worker_heartbeats()
    limit = max_age_seconds()
    fresh = {host: round(now - at, 1) for host, at in beats.items() if now - at <= limit}
    if not fresh:
        newest = max(beats.values(), default=None)
        age = None if newest is None else round(now - newest, 1)
        return {
            "ok": False,
            "error": f"no worker heartbeat within {limit:g}s"
            + ("" if age is None else f" (newest {age}s ago)"),
        }
    return {"ok": True, "workers": len(fresh), "newest_age_s": min(fresh.values())}


CHECKS: dict[str, Callable[[], dict[str, Any]]] = {
    "database": check_database,
    "broker": check_broker,
    "worker": check_worker,
}


def run_checks() -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            result = check()
        except Exception as exc:  # any failure of a dependency is a failed check, not a 500
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        result["ms"] = round((time.perf_counter() - started) * 1000, 1)
        results[name] = result
    return results


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    if request.GET.get("live"):
        return JsonResponse({"status": "ok", "checks": {"process": {"ok": True}}})
    checks = run_checks()
    failed = sorted(name for name, result in checks.items() if not result["ok"])
    body = {"status": "fail" if failed else "ok", "failed": failed, "checks": checks}
    return JsonResponse(body, status=503 if failed else 200)
