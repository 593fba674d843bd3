"""Scoped throttles whose rates are read per request, so settings overrides (tests, env) apply."""

from __future__ import annotations

from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle


class SettingsScopedRateThrottle(ScopedRateThrottle):
    """``ScopedRateThrottle`` reading ``DEFAULT_THROTTLE_RATES`` at request time; keyed by user
    (or client IP when anonymous) and the view's ``throttle_scope``."""

    def get_rate(self) -> str | None:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope or "")
        return None if rate is None else str(rate)
