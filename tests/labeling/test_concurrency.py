"""Many labelers at once through the HTTP API: no double assignment, no lost label.

PostgreSQL: the live test server (one thread per request, each with its own connection) and
20+ client threads with token auth; each client fetches its next comparison and labels it until
the server answers 204. Afterwards the database must show no comparison with more counted labels
than its overlap, no labeler twice on a comparison, consistent counters, and exactly the labels
the clients were told were stored.

SQLite: pytest-django's SQLite test database lives in memory and the live server shares one
connection across its threads, which would prove nothing. So the SQLite variant migrates a
database file, serves it with gunicorn (2 processes x 4 threads, as in production) in a
subprocess, runs the same clients and checks the file with ``sqlite3``. There the guarantee
comes from ``BEGIN IMMEDIATE`` transactions (settings), which serialize writers.
"""

from __future__ import annotations

import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from django.db.models import Count, F, Q
from rest_framework.authtoken.models import Token

from labeling.models import Assignment, Comparison, Label
from tests.factories import ComparisonFactory, TaskFactory, TaskLabelerFactory, UserFactory

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

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
    empty = 0
    for _ in range(COMPARISONS + 10):
        response = session.get(f"{base}/api/v1/tasks/{task_id}/next/", timeout=60)
        if response.status_code == 204:
            # Like the page, poll a little: another labeler's skip may still free a slot.
            empty += 1
            if empty == 3:
                return log
            time.sleep(0.3)
            continue
        empty = 0
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


def run_clients(base: str, task_id: int, tokens: list[str]) -> list[ClientLog]:
    start = threading.Barrier(len(tokens))
    with ThreadPoolExecutor(max_workers=len(tokens)) as pool:
        futures = [
            pool.submit(run_client, base, task_id, token, seed, start)
            for seed, token in enumerate(tokens)
        ]
        return [f.result(timeout=300) for f in futures]


def double_assignments() -> dict[str, int]:
    """Counts of everything that would show a comparison handed out beyond its overlap."""
    counted = Q(labels__kind__in=[Label.Kind.CHOICE, Label.Kind.NONE_ACCEPTABLE])
    over = (
        Comparison.objects.annotate(n=Count("labels", filter=counted))
        .filter(n__gt=F("overlap"))
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


@pytest.mark.postgres
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

    logs = run_clients(live_server.url, task.pk, tokens)

    errors = [e for log in logs for e in log.errors]
    found = double_assignments()
    created = [label_id for log in logs for label_id in log.created]
    print(
        f"\nconcurrency: {LABELERS} clients, {len(created)} labels, {found}, {len(errors)} errors"
    )
    # Zero double assignments.
    assert found == {"over_overlap_comparisons": 0, "extra_labels": 0, "twice": 0}
    assert errors == []
    stored = list(Label.objects.values_list("id", flat=True))
    # Zero lost labels: every 201 is in the database exactly once, and nothing else is.
    assert len(created) == len(set(created))
    assert sorted(created) == sorted(stored)
    repeated = [pair for log in logs for pair in log.repeated]
    assert all(first == again for first, again in repeated)
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


SQLITE_SETUP = """
import json
from rest_framework.authtoken.models import Token
from tests.factories import ComparisonFactory, TaskFactory, TaskLabelerFactory, UserFactory
task = TaskFactory(k=4, labels_per_comparison=%(overlap)d)
ComparisonFactory.create_batch(%(comparisons)d, task=task)
tokens = []
for _ in range(%(labelers)d):
    user = UserFactory()
    TaskLabelerFactory(task=task, labeler=user)
    tokens.append(Token.objects.create(user=user).key)
print(json.dumps({"task": task.pk, "tokens": tokens}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sqlite_file_under_gunicorn_gets_no_double_assignment(tmp_path):
    db = tmp_path / "db.sqlite3"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{db}",
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "THROTTLE_LABEL_SUBMIT": "100000/min",
        "THROTTLE_LEASE": "100000/min",
        "PYTHONPATH": str(ROOT),
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, cwd=ROOT, timeout=300)
    setup = SQLITE_SETUP % {"overlap": OVERLAP, "comparisons": COMPARISONS, "labelers": LABELERS}
    out = subprocess.run(
        [*manage, "shell", "-c", setup], env=env, check=True, cwd=ROOT, timeout=120,
        capture_output=True, text=True,
    )  # fmt: skip
    made = json.loads(out.stdout.strip().splitlines()[-1])
    port = free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(
        [str(gunicorn), "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2", "--threads", "4"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                requests.get(f"{base}/healthz?live=1", timeout=10)
                break
            except requests.RequestException:  # not listening yet, or slow to answer
                time.sleep(0.2)
        logs = run_clients(base, made["task"], made["tokens"])
    finally:
        server.terminate()
        server.wait(timeout=30)

    errors = [e for log in logs for e in log.errors]
    created = sorted(label_id for log in logs for label_id in log.created)
    with sqlite3.connect(db) as conn:
        stored = sorted(r[0] for r in conn.execute("SELECT id FROM labeling_label"))
        over = conn.execute(
            "SELECT c.id, COUNT(l.id), c.overlap FROM labeling_comparison c "
            "JOIN labeling_label l ON l.comparison_id = c.id AND l.kind != 'skip' "
            "GROUP BY c.id HAVING COUNT(l.id) > c.overlap"
        ).fetchall()
        counters = conn.execute(
            "SELECT c.label_count, c.open_slots, c.status, "
            "(SELECT COUNT(*) FROM labeling_label l WHERE l.comparison_id = c.id "
            "AND l.kind != 'skip') FROM labeling_comparison c"
        ).fetchall()
    extra = sum(n - overlap for _, n, overlap in over)
    print(f"\nsqlite: {LABELERS} clients, {len(created)} labels, {len(over)} over overlap, "
          f"{extra} extra labels, {len(errors)} errors")  # fmt: skip
    assert over == []
    assert errors == []
    assert created == stored and len(set(created)) == len(created)
    assert all(r == (OVERLAP, 0, "complete", OVERLAP) for r in counters), counters
