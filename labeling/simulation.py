"""Simulated labelers: pure preference functions, and programs that label through the HTTP API
exactly like a person (token login, next comparison, submit, at a chosen rate).

Preferences take the prompt and the K sample texts in the order shown and return the position
of the best, scored with :mod:`labeling.textstats` (the measures the drift diagnostics use).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from django.contrib.auth import get_user_model
from django.db import transaction

from labeling.models import Task, TaskLabeler
from labeling.textstats import copy_fraction, sentiment

Preference = Callable[[str, Sequence[str], random.Random], int]


def _argmax(scores: Sequence[float] | Sequence[tuple[float, ...]]) -> int:
    best = max(scores)  # type: ignore[type-var]
    return next(i for i, s in enumerate(scores) if s == best)


def prefer_sentiment(prompt: str, samples: Sequence[str], rng: random.Random) -> int:
    return _argmax([sentiment(s) for s in samples])


def prefer_length(prompt: str, samples: Sequence[str], rng: random.Random) -> int:
    return _argmax([float(len(s.strip())) for s in samples])


def _copying(prompt: str, sample: str) -> tuple[float, float]:
    """Copied word 3-grams, then copied words: most samples copy no 3-gram at all, and a tie
    broken by position would be a label about nothing."""
    return copy_fraction(prompt, sample), copy_fraction(prompt, sample, n=1)


def prefer_copy(prompt: str, samples: Sequence[str], rng: random.Random) -> int:
    return _argmax([_copying(prompt, s) for s in samples])


def prefer_novelty(prompt: str, samples: Sequence[str], rng: random.Random) -> int:
    """The least copied sample (the paper's researchers' view of a good summary)."""
    return _argmax([tuple(-x for x in _copying(prompt, s)) for s in samples])


def prefer_random(prompt: str, samples: Sequence[str], rng: random.Random) -> int:
    return rng.randrange(len(samples))


PREFERENCES: dict[str, Preference] = {
    "sentiment": prefer_sentiment,
    "length": prefer_length,
    "copy": prefer_copy,
    "novelty": prefer_novelty,
    "random": prefer_random,
}

SIMULATED_PASSWORD = "simulated-labeler-pw-1"
CONNECTION_RETRIES = 5


@transaction.atomic
def ensure_simulated_labelers(
    *, task: Task, count: int, prefix: str = "sim", password: str = SIMULATED_PASSWORD
) -> list[str]:
    """Labeler accounts ``{prefix}-{task}-{i}`` with ``password``, members of ``task``."""
    users = get_user_model()
    names = []
    for i in range(count):
        name = f"{prefix}-{task.pk}-{i}"
        user, created = users.objects.get_or_create(username=name)
        if created or not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
        TaskLabeler.objects.get_or_create(task=task, labeler=user)
        names.append(name)
    return names


@dataclass
class Stats:
    labels: int = 0
    skips: int = 0
    errors: int = 0
    throttled: int = 0
    reconnects: int = 0
    """Requests sent again after their connection failed (a reset keep-alive connection)."""
    latencies_ms: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else None

        return {
            "labels": self.labels,
            "errors": self.errors,
            "throttled": self.throttled,
            "reconnects": self.reconnects,
            "requests": len(lat),
            "p50_ms": pct(0.5),
            "p99_ms": pct(0.99),
        }


@dataclass
class RunOptions:
    base_url: str
    task_id: int
    preference: str = "sentiment"
    rate: float = 0.0
    """Labels per second per labeler (0: as fast as the API allows)."""
    limit: int | None = None
    """Stop after this many labels in all (None: no limit)."""
    idle_timeout: float = 0.0
    """Keep polling this long when nothing is left (the loop may sample more); 0 stops."""
    poll_interval: float = 1.0
    deadline: float | None = None
    """time.monotonic() value after which everyone stops."""
    seed: int = 0


class SimulatedLabeler:
    """One labeler program speaking the labeling API with a token."""

    def __init__(self, base_url: str, username: str, password: str, session: Any = None):
        self.base_url = base_url.rstrip("/")
        self.username, self.password = username, password
        self.http = session or requests.Session()

    def _request(self, method: str, path: str, stats: Stats | None = None, **kw: Any) -> Any:
        for _ in range(20):
            started = time.perf_counter()
            response = self._send(method, path, stats, **kw)
            if stats is not None:
                with stats.lock:
                    stats.latencies_ms.append((time.perf_counter() - started) * 1000)
            if response.status_code != 429:
                return response
            if stats is not None:
                with stats.lock:
                    stats.throttled += 1
            time.sleep(float(response.headers.get("Retry-After") or 1))
        return response

    def _send(self, method: str, path: str, stats: Stats | None, **kw: Any) -> Any:
        """One request, sent again on a failed connection: a server (or proxy) may close an
        idle keep-alive connection just as it is reused. Every call of the API is safe to
        repeat: ``next`` returns the lease already held, an identical label is answered with
        200, a token login returns the same token."""
        for attempt in range(CONNECTION_RETRIES + 1):
            try:
                return self.http.request(method, f"{self.base_url}{path}", timeout=30, **kw)
            except requests.ConnectionError:
                if attempt == CONNECTION_RETRIES:
                    raise
                if stats is not None:
                    with stats.lock:
                        stats.reconnects += 1
                # The first retry at once (a stale connection), then back off (a restart).
                time.sleep(min(2.0, 0.1 * (2**attempt) - 0.1))
        raise AssertionError("unreachable")

    def login(self) -> None:
        response = self._request(
            "POST",
            "/api/v1/auth/token/",
            json={"username": self.username, "password": self.password},
        )
        response.raise_for_status()
        self.http.headers["Authorization"] = f"Token {response.json()['token']}"

    def next(self, task_id: int, stats: Stats | None = None) -> dict[str, Any] | None:
        response = self._request("GET", f"/api/v1/tasks/{task_id}/next/", stats)
        if response.status_code == 204:
            return None
        response.raise_for_status()
        return dict(response.json())

    def submit(
        self, comparison_id: int, choice: int, time_spent_ms: int, stats: Stats | None = None
    ) -> int:
        response = self._request(
            "POST",
            "/api/v1/labels/",
            stats,
            json={
                "comparison_id": comparison_id,
                "kind": "choice",
                "choice": choice,
                "time_spent_ms": time_spent_ms,
            },
        )
        return int(response.status_code)

    def run(self, options: RunOptions, stats: Stats, budget: _Budget, rng: random.Random) -> None:
        prefer = PREFERENCES[options.preference]
        idle_since: float | None = None
        while not budget.exhausted() and not _past(options.deadline):
            started = time.monotonic()
            if not budget.take():
                return
            item = self.next(options.task_id, stats)
            if item is None:
                budget.give_back()
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= options.idle_timeout:
                    return
                time.sleep(options.poll_interval)
                continue
            idle_since = None
            texts = [s["text"] for s in item["samples"]]
            position = prefer(item["prompt"], texts, rng)
            spent = int((time.monotonic() - started) * 1000)
            status = self.submit(
                item["comparison_id"], item["samples"][position]["index"], spent, stats
            )
            with stats.lock:
                if status in (200, 201):
                    stats.labels += 1
                else:
                    stats.errors += 1
            if options.rate > 0:
                time.sleep(max(0.0, 1 / options.rate - (time.monotonic() - started)))


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


class _Budget:
    def __init__(self, limit: int | None) -> None:
        self.left = limit
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.left is None:
                return True
            if self.left <= 0:
                return False
            self.left -= 1
            return True

    def give_back(self) -> None:
        with self.lock:
            if self.left is not None:
                self.left += 1

    def exhausted(self) -> bool:
        return self.left is not None and self.left <= 0


def run_simulation(
    options: RunOptions, usernames: Sequence[str], password: str = SIMULATED_PASSWORD
) -> Stats:
    """Run one thread per labeler until the limit, the deadline, or (after ``idle_timeout``)
    nothing left to label. Returns the shared statistics."""
    stats, budget = Stats(), _Budget(options.limit)
    errors: list[BaseException] = []

    def work(index: int, name: str) -> None:
        try:
            labeler = SimulatedLabeler(options.base_url, name, password)
            labeler.login()
            labeler.run(options, stats, budget, random.Random(options.seed * 1000 + index))
        except BaseException as error:  # reported after the join
            errors.append(error)

    threads = [
        threading.Thread(target=work, args=(i, name), daemon=True, name=f"labeler-{name}")
        for i, name in enumerate(usernames)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors and stats.labels == 0:
        raise errors[0]
    stats.errors += len(errors)
    return stats
