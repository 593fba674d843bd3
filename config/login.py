"""The login page with attempt limiting per client IP and username.

Every POST counts against a fixed window in the shared cache (rate from
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["login"], default 10/min). Over the limit the form is
shown again with an error and status 429, without checking the password, so guessing
passwords is bounded even for a correct one. The cache must be shared across web processes
(CACHE_URL=redis://...) for the limit to hold across them.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.core.exceptions import NON_FIELD_ERRORS
from django.forms.utils import ErrorDict
from django.http import HttpRequest, HttpResponse

DEFAULT_RATE = "10/min"
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """'10/min' -> (10, 60), as DRF reads its throttle rates."""
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period.strip()[0].lower()]


def login_rate() -> tuple[int, int]:
    rates = getattr(settings, "REST_FRAMEWORK", {}).get("DEFAULT_THROTTLE_RATES", {})
    return parse_rate(rates.get("login") or DEFAULT_RATE)


def client_ip(request: HttpRequest) -> str:
    # Behind a trusted proxy set NUM_PROXIES-like logic there; here REMOTE_ADDR is the peer.
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def register_attempt(*, ip: str, username: str, now: float | None = None) -> tuple[bool, int]:
    """Count one attempt; return (allowed, seconds until the window resets)."""
    limit, period = login_rate()
    now = time.time() if now is None else now
    window = int(now // period)
    ident = hashlib.sha256(f"{ip}|{username.strip().lower()}".encode()).hexdigest()[:32]
    key = f"ops:login-attempts:{ident}:{window}"
    cache.add(key, 0, timeout=period + 1)
    try:
        attempts = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=period + 1)
        attempts = 1
    return attempts <= limit, int(period - now % period) + 1


class RateLimitedLoginView(LoginView):
    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        username = str(request.POST.get("username", ""))[:150]
        allowed, retry_after = register_attempt(ip=client_ip(request), username=username)
        if allowed:
            return super().post(request, *args, **kwargs)
        message = f"Too many login attempts. Try again in {retry_after} seconds."
        form = self.get_form_class()(request, initial={"username": username})
        # An unbound form keeps errors set here: the template shows them as non-field errors.
        form._errors = ErrorDict({NON_FIELD_ERRORS: form.error_class([message])})  # type: ignore[attr-defined]
        context = self.get_context_data(form=form, rate_limited=True)
        response = self.render_to_response(context, status=429)
        response["Retry-After"] = str(retry_after)
        return response


def rate_limited_login(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The same limit around another login view (the admin's): 429 with a short message."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if request.method == "POST":
            username = str(request.POST.get("username", ""))[:150]
            allowed, retry_after = register_attempt(ip=client_ip(request), username=username)
            if not allowed:
                response = HttpResponse(
                    f"Too many login attempts. Try again in {retry_after} seconds.\n",
                    status=429,
                    content_type="text/plain",
                )
                response["Retry-After"] = str(retry_after)
                return response
        return view(request, *args, **kwargs)

    return wrapper
