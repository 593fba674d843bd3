"""Worker heartbeat: workers write a timestamp into the shared cache; /healthz reads it.

A periodic Celery task (beat, queue "default") records the worker's hostname and the time,
so a fresh heartbeat proves the whole path beat -> broker -> worker -> cache works. A worker
also records one as soon as it is ready, so a restarted worker is healthy without waiting
for beat. The cache must be shared across processes (CACHE_URL=redis://...) in production.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.core.cache import cache

HEARTBEAT_KEY = "ops:worker-heartbeat"


def max_age_seconds() -> float:
    return float(getattr(settings, "HEALTH_WORKER_MAX_AGE", 120))


def record_worker_heartbeat(*, hostname: str, now: float | None = None) -> dict[str, float]:
    """Store `hostname`'s heartbeat; drop entries older than ten times the allowed age."""
    now = time.time() if now is None else now
    beats: dict[str, float] = dict(cache.get(HEARTBEAT_KEY) or {})
    horizon = now - 10 * max_age_seconds()
    beats = {host: at for host, at in beats.items() if at >= horizon}
    beats[hostname] = now
    cache.set(HEARTBEAT_KEY, beats, timeout=None)
    return beats


def worker_heartbeats() -> dict[str, float]:
    return dict(cache.get(HEARTBEAT_KEY) or {})


@shared_task(name="ops.heartbeat", ignore_result=True, expires=60)
def heartbeat(**_: Any) -> None:
    from celery import current_task

    hostname = getattr(current_task.request, "hostname", None) or socket.gethostname()
    record_worker_heartbeat(hostname=hostname)


@worker_ready.connect
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    hostname = getattr(sender, "hostname", None) or socket.gethostname()
    # The cache may be down at start; beat writes the next heartbeat.
    with contextlib.suppress(Exception):
        record_worker_heartbeat(hostname=str(hostname))
