"""System checks: ``check --deploy`` warns when the cache is per process (throttles, login limits
and lockouts would then be counted by each web process on its own)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning

PER_PROCESS_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
}


@register(Tags.caches, deploy=True)
def shared_cache_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if backend not in PER_PROCESS_CACHES:
        return []
    return [
        CheckWarning(
            f"The default cache ({backend}) is not shared between processes: throttles and "
            "login limits would be counted per process.",
            hint="Set CACHE_URL to redis://... or dbcache://preference_loop_cache "
            "(then run manage.py createcachetable).",
            id="labeling.W001",
        )
    ]
