"""Many labelers at once through the HTTP API: no double assignment, no lost label.

PostgreSQL: the live test server (one thread per request, each with its own connection) and
20+ client threads with token auth; each client fetches its next comparison and labels it until
the server answers 204. Afterwards the database must show no comparison with more counted labels
than its overlap, no labeler twice on a comparison, consistent counters, and exactly the labels
the clients were told were stored.

SQLite is not exercised here: pytest-django's SQLite test database lives in memory and the live
server shares one connection across its threads, which would serialize (and interleave)
everything through a single connection and prove nothing. On SQLite the guarantee comes from
``BEGIN IMMEDIATE`` transactions (settings), which serialize writers at the database level.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import requests
from django.db.models import Count, Q
from rest_framework.authtoken.models import Token

from labeling.models import Assignment, Comparison, Label
from tests.factories import ComparisonFactory, TaskFactory, TaskLabelerFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

LABELERS = 24
COMPARISONS = 60
OVERLAP = 2
SKIP_RATE = 0.15


@dataclass
class ClientLog:
    created: list[int] = field(default_factory=list)  # label ids answered 201
    repeated: list[tuple[int, int]] = field(default_factory=list)  # (first id, 200 id)
    errors: list[str] = field(default_factory=list)
    leases: int = 0


def run_client(base: str, task_id: int, token: str, seed: int, start: threading.Barrier):
    log = ClientLog()
    rng = random.Random(seed)
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    start.wait()
    for _ in range(COMPARISONS + 5):
        response = session.get(f"{base}/api/v1/tasks/{task_id}/next/", timeout=60)
        if response.status_code == 204:
            return log
        if response.status_code != 200:
            log.errors.append(f"next {response.status_code} {response.text[:200]}")
            return log
        lease = response.json()
        log.leases += 1
        skip = rng.random() < SKIP_RATE
        body = {
            "comparison_id": lease["comparison_id"],
            "kind": "skip" if skip else "choice",
            "choice": None if skip else rng.choice(lease["samples"])["index"],
            "time_spent_ms": rng.randint(200, 5000),
        }
        posted = session.post(f"{base}/api/v1/labels/", json=body, timeout=60)
        if posted.status_code != 201:
            log.errors.append(f"label {posted.status_code} {posted.text[:200]}")
            continue
        log.created.append(posted.json()["id"])
        if rng.random() < 0.1:  # a retry after a lost response must not create a second label
            again = session.post(f"{base}/api/v1/labels/", json=body, timeout=60)
            log.repeated.append((posted.json()["id"], again.json().get("id", -again.status_code)))
    log.errors.append("client never got 204")
    return log


def double_assignments() -> dict[str, int]:
    """Counts of everything that would show a comparison handed out beyond its overlap."""
    counted = Q(labels__kind__in=[Label.Kind.CHOICE, Label.Kind.NONE_ACCEPTABLE])
    over = (
        Comparison.objects.annotate(n=Count("labels", filter=counted))
        .filter(n__gt=models_overlap())
        .values_list("n", "overlap")
    )
    duplicates = sum(n - overlap for n, overlap in over)
    twice = (
        Label.objects.values("comparison", "labeler")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    return {"over_overlap_comparisons": len(over), "extra_labels": duplicates, "twice": twice}


def models_overlap():
    from django.db.models import F

    return F("overlap")


def test_concurrent_labelers_get_no_double_assignment_and_lose_no_label(
    require_postgres, transactional_db, live_server, settings
):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"label_submit": None, "lease": None, "login": None},
    }
    task = TaskFactory(k=4, labels_per_comparison=OVERLAP)
    ComparisonFactory.create_batch(COMPARISONS, task=task)
    tokens = []
    for _ in range(LABELERS):
        user = UserFactory()
        TaskLabelerFactory(task=task, labeler=user)
        tokens.append(Token.objects.create(user=user).key)

    start = threading.Barrier(LABELERS)
    with ThreadPoolExecutor(max_workers=LABELERS) as pool:
        futures = [
            pool.submit(run_client, live_server.url, task.pk, token, seed, start)
            for seed, token in enumerate(tokens)
        ]
        logs = [f.result(timeout=300) for f in futures]

    errors = [e for log in logs for e in log.errors]
    assert errors == []
    created = [label_id for log in logs for label_id in log.created]
    stored = list(Label.objects.values_list("id", flat=True))
    # Zero lost labels: every 201 is in the database exactly once, and nothing else is.
    assert len(created) == len(set(created))
    assert sorted(created) == sorted(stored)
    repeated = [pair for log in logs for pair in log.repeated]
    assert all(first == again for first, again in repeated)
    # Zero double assignments.
    found = double_assignments()
    print(f"\nconcurrency: {LABELERS} clients, {len(created)} labels, {found}")
    assert found == {"over_overlap_comparisons": 0, "extra_labels": 0, "twice": 0}
    live = Counter(
        Assignment.objects.filter(state__in=["active", "submitted"])
        .exclude(label__kind=Label.Kind.SKIP)
        .values_list("comparison_id", flat=True)
    )
    assert max(live.values()) <= OVERLAP
    # Counters agree with the rows, and every comparison got its labels (no slot was lost).
    assert not Assignment.objects.filter(state="active").exists()
    for comparison in Comparison.objects.annotate(
        counted=Count("labels", filter=~Q(labels__kind=Label.Kind.SKIP))
    ):
        assert comparison.label_count == comparison.counted == OVERLAP
        assert comparison.open_slots == 0
        assert comparison.status == Comparison.Status.COMPLETE
