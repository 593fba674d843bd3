"""A scoped throttle that counts requests in a fixed window (rates read per request, so
settings overrides in tests and the environment apply).

DRF's ``SimpleRateThrottle`` keeps a list of timestamps per client (a cache get, a pickled
list of up to ``num_requests`` floats, and a cache set per request). On the labeling hot path
this throttle counts instead: a counter per client and scope that starts at the client's first
request and expires ``duration`` seconds later (a fixed window anchored at that request). On
Redis that is one round trip (``SET NX EX`` + ``INCR`` in a pipeline), elsewhere a cache
``incr`` (``labeling.counters.hit``). A client may burst up to twice the rate across a window
boundary; the limit is meant against floods, not as an exact quota. A cache outage lets
requests through.

It is every API view's throttle (``DEFAULT_THROTTLE_CLASSES``): a view without a
``throttle_scope`` counts under the ``api`` scope (``THROTTLE_API``, 600/min per user, or per
client address when anonymous).
"""

from __future__ import annotations

import logging
from typing import Any

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

from labeling import counters

logger = logging.getLogger(__name__)

DEFAULT_SCOPE = "api"


class FixedWindowScopedThrottle(ScopedRateThrottle):
    """A ``ScopedRateThrottle`` that counts requests per fixed window instead of logging their
    timestamps, reading ``DEFAULT_THROTTLE_RATES`` at request time; keyed by user (or client
    IP when anonymous) and the view's ``throttle_scope``."""

    def get_rate(self) -> str | None:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope or "")
        return None if rate is None else str(rate)

    def allow_request(self, request: Request, view: Any) -> bool:
        self.scope = getattr(view, self.scope_attr, None) or DEFAULT_SCOPE
        rate = self.get_rate()
        if rate is None:
            return True
        self.rate = rate
        num_requests, duration = self.parse_rate(rate)
        if num_requests is None or duration is None:
            return True
        self.num_requests, self.duration = num_requests, duration
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        try:
            count = counters.hit(self.key, int(duration), cache=self.cache)
        except Exception as exc:  # a cache outage must not fail labeling requests
            logger.warning("throttle cache unavailable, letting the request through: %s", exc)
            return True
        return count <= num_requests

    def wait(self) -> float | None:
        # The window's start is not stored: the full duration is an upper bound.
        return float(self.duration or 0)
