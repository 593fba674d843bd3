"""Limits on password guessing, for every view that checks a password (the login page, the
admin's login, the API token endpoint).

Failed logins are counted twice in the shared cache, over ``LOGIN_FAILURE_WINDOW`` seconds
(15 minutes by default; the window starts at the first failure):

- per username, whatever the address (``LOGIN_FAILURES_PER_USERNAME``, 10): many addresses
  guessing one account's password;
- per client address, whatever the username (``LOGIN_FAILURES_PER_ADDRESS``, 20): one
  address trying a password on many accounts. IPv6 addresses count per /64 network, which one
  client can hold whole.

A count that reaches its limit locks that username or address out for ``LOGIN_LOCKOUT``
seconds (60), then twice as long at each further lockout (120, 240, ... up to
``LOGIN_LOCKOUT_MAX``, a day), until ``LOGIN_LOCKOUT_MEMORY`` seconds (a day) pass without
one. While locked out, a login is refused before its password is checked, so even the right
password does not get through, and refused attempts are not counted. Successful logins count
nothing. Behind reverse proxies set ``NUM_PROXIES`` so that the client address is read from
X-Forwarded-For (as DRF's throttles do), or every client shares the proxy's address.

The cost of a per-username limit is that anyone can lock an account out for a while by
guessing wrong on purpose; the growing lockout bounds the guessing, not that nuisance.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from rest_framework.settings import api_settings

from labeling import counters


@dataclass(frozen=True)
class LoginLimits:
    per_username: int
    per_address: int
    window: int
    lockout: int
    lockout_max: int
    memory: int

    @classmethod
    def from_settings(cls) -> LoginLimits:
        return cls(
            per_username=int(getattr(settings, "LOGIN_FAILURES_PER_USERNAME", 10)),
            per_address=int(getattr(settings, "LOGIN_FAILURES_PER_ADDRESS", 20)),
            window=int(getattr(settings, "LOGIN_FAILURE_WINDOW", 900)),
            lockout=int(getattr(settings, "LOGIN_LOCKOUT", 60)),
            lockout_max=int(getattr(settings, "LOGIN_LOCKOUT_MAX", 86400)),
            memory=int(getattr(settings, "LOGIN_LOCKOUT_MEMORY", 86400)),
        )

    def lockout_seconds(self, strikes: int) -> int:
        """The length of a subject's ``strikes``-th lockout (1-based): doubling, capped."""
        return min(self.lockout_max, self.lockout * 2 ** min(strikes - 1, 40))


def client_address(request: HttpRequest) -> str:
    """The client's address as DRF's throttles take it (``NUM_PROXIES``), IPv6 as its /64."""
    address = request.META.get("REMOTE_ADDR", "") or ""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    num_proxies = api_settings.NUM_PROXIES
    if forwarded and num_proxies:
        hops = [hop.strip() for hop in forwarded.split(",")]
        address = hops[-min(num_proxies, len(hops))]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _subjects(address: str, username: str) -> list[tuple[str, int]]:
    """The (cache key suffix, failure limit) of the address and of the username."""
    limits = LoginLimits.from_settings()
    name = username.strip().lower()[:150]
    subjects = [(f"address:{_digest(address)}", limits.per_address)]
    if name:
        subjects.append((f"username:{_digest(name)}", limits.per_username))
    return subjects


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def seconds_locked_out(*, address: str, username: str, now: float | None = None) -> int:
    """Seconds until the address and the username may try again; 0 when neither is locked."""
    now = time.time() if now is None else now
    keys = [f"login:lock:{subject}" for subject, _ in _subjects(address, username)]
    until = [float(v) for v in cache.get_many(keys).values() if v is not None]
    return max([0, *(math.ceil(u - now) for u in until)])


def record_failure(*, address: str, username: str, now: float | None = None) -> int:
    """Count one failed login of ``username`` from ``address``; the seconds of the lockout it
    started (0 when it started none)."""
    limits = LoginLimits.from_settings()
    now = time.time() if now is None else now
    longest = 0
    for subject, limit in _subjects(address, username):
        failures = counters.hit(f"login:failures:{subject}", limits.window)
        if failures < limit:
            continue
        strikes_key = f"login:strikes:{subject}"
        strikes = int(cache.get(strikes_key) or 0) + 1
        seconds = limits.lockout_seconds(strikes)
        cache.set(strikes_key, strikes, seconds + limits.memory)
        cache.set(f"login:lock:{subject}", now + seconds, seconds)
        cache.delete(f"login:failures:{subject}")  # after the lockout, counting starts anew
        longest = max(longest, seconds)
    return longest


def locked_out_message(seconds: int) -> str:
    return (
        "Too many failed logins for this username or from this address. "
        f"Try again in {seconds} seconds."
    )
