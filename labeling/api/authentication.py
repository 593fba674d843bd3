"""Token authentication with a short per-process cache of token -> user.

DRF's ``TokenAuthentication`` reads the token and its user on every request (one query). The
labeling hot path sends the same token many times a second, so each web process keeps the
answer for ``API_TOKEN_CACHE_SECONDS`` (default 5 s; 0 turns the cache off): a revoked token,
or a deactivated user, stops working within that time on every process. The cache is
process-local (no network round trip) and bounded.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from rest_framework.authentication import TokenAuthentication

_MAX_ENTRIES = 10_000
_cache: dict[str, tuple[float, Any, Any]] = {}


def clear_token_cache() -> None:
    _cache.clear()


class CachedTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        ttl = float(getattr(settings, "API_TOKEN_CACHE_SECONDS", 5.0))
        if ttl <= 0:
            return super().authenticate_credentials(key)
        now = time.monotonic()
        hit = _cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        user, token = super().authenticate_credentials(key)  # raises for bad or inactive
        if len(_cache) >= _MAX_ENTRIES:
            _cache.clear()
        _cache[key] = (now + ttl, user, token)
        return user, token
