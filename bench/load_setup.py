"""Set-up and checks of bench/load.py: its database, labelers and comparisons, the query count
of one next + submit pair (in-process), the integrity checks on the database after the run
(double assignments, labels beyond the overlap, lost labels), static files for the proxy, and
the CPU time of process trees.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any


def bench_env(db_url: str, *, cache_url: str, broker_url: str, num_proxies: int) -> dict[str, str]:
    """The web processes' environment: production settings, throttles out of the way."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "bench-" + "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "DJANGO_SECURE_SSL_REDIRECT": "False",
        "DATABASE_URL": db_url,
        "CACHE_URL": cache_url,
        "CELERY_BROKER_URL": broker_url,
        "NUM_PROXIES": str(num_proxies),
        "THROTTLE_LABEL_SUBMIT": "1000000/min",
        "THROTTLE_LEASE": "1000000/min",
        "LOG_LEVEL": "WARNING",
        "GUNICORN_ACCESS_LOG": "",
    }


def recreate_database(db_url: str) -> None:
    import psycopg

    parts = urllib.parse.urlparse(db_url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


# --- set-up (in-process Django) ---------------------------------------------------------------


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()


def populate(*, labelers: int, comparisons: int, big_labels: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from labeling.models import Comparison, InstructionsVersion, Prompt, Task, TaskLabeler

    call_command("migrate", verbosity=0)
    user_model = get_user_model()
    task = Task.objects.create(name="bench", status=Task.Status.ACTIVE, k=4, lease_seconds=600)
    InstructionsVersion.objects.create(task=task, version=1, text="Pick the best.")
    users = user_model.objects.bulk_create(
        [user_model(username=f"bench{i}") for i in range(labelers)]
    )
    TaskLabeler.objects.bulk_create([TaskLabeler(task=task, labeler=u) for u in users])
    tokens = [Token.objects.create(user=u).key for u in users]

    def make(n: int, status: str, start: int) -> None:
        for lo in range(0, n, 5000):
            size = min(5000, n - lo)
            prompts = Prompt.objects.bulk_create(
                [Prompt(task=task, text=f"Prompt {start + lo + i} " * 8) for i in range(size)]
            )
            done = status == Comparison.Status.COMPLETE
            Comparison.objects.bulk_create(
                [
                    Comparison(
                        task=task,
                        prompt=p,
                        k=4,
                        samples=[f"sample {j} of {p.pk}, a continuation" for j in range(4)],
                        overlap=1,
                        open_slots=0 if done else 1,
                        label_count=1 if done else 0,
                        status=status,
                    )
                    for p in prompts
                ]
            )

    if big_labels:
        # Labels of the past: big_labels labels on complete comparisons, by 4 other labelers.
        past = big_labels // 4
        make(past, Comparison.Status.COMPLETE, 0)
        veterans = user_model.objects.bulk_create(
            [user_model(username=f"veteran{i}") for i in range(4)]
        )
        t0 = time.time()
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO labeling_label (comparison_id, labeler_id, task_id, kind, choice, k,
                    display_order, time_spent_ms, created_at)
                SELECT c.id, u.id, c.task_id, 'choice', (c.id + u.id) %% 4, 4, '[0,1,2,3]', 1500,
                    now()
                FROM labeling_comparison c CROSS JOIN (SELECT unnest(%s::bigint[]) AS id) u
                WHERE c.task_id = %s AND c.status = 'complete'
                """,
                [[v.pk for v in veterans], task.pk],
            )
            cursor.execute("ANALYZE")
        print(f"inserted {big_labels} past labels in {time.time() - t0:.1f}s", file=sys.stderr)
    make(comparisons, Comparison.Status.OPEN, big_labels)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {"task_id": task.pk, "tokens": tokens}


def queries_per_pair(task_id: int, token: str) -> dict[str, Any]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    out: dict[str, Any] = {}
    for round_ in range(2):  # the first pair warms caches (content types, ...)
        with CaptureQueriesContext(connection) as nxt:
            t0 = time.perf_counter()
            lease = client.get(f"/api/v1/tasks/{task_id}/next/").json()
            t_next = time.perf_counter() - t0
        body = {"comparison_id": lease["comparison_id"], "kind": "choice", "choice": 0}
        with CaptureQueriesContext(connection) as sub:
            t0 = time.perf_counter()
            response = client.post("/api/v1/labels/", body, content_type="application/json")
            t_sub = time.perf_counter() - t0
        assert response.status_code == 201, response.content
        if round_:
            out = {
                "next_queries": len(nxt.captured_queries),
                "submit_queries": len(sub.captured_queries),
                "next_ms_inprocess": round(t_next * 1000, 1),
                "submit_ms_inprocess": round(t_sub * 1000, 1),
                "slowest_next_sql": max(nxt.captured_queries, key=lambda q: float(q["time"])),
            }
    return out


def cpu_of_tree(pid: int) -> float:
    """User+system seconds of a process, its live children and the children it has reaped
    (a gunicorn worker killed and replaced during the run still counts)."""
    total = cpu_of_process(pid, reaped_children=True)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        total += sum(cpu_of_process(int(c)) for c in children.read_text().split())
    return total


def check_integrity(task_id: int, accepted: list, unanswered: list) -> dict[str, int]:
    """Double assignments and labels beyond the overlap; of the labels the client was told of
    (``accepted``: (comparison id, label id)), those not stored or stored elsewhere; of the
    submits that never got an answer (``unanswered``: comparison ids), those stored anyway."""
    from django.db.models import Count, F

    from labeling.models import Assignment, Comparison, Label

    live = Assignment.objects.filter(task_id=task_id, state__in=["active", "submitted"])
    over = (
        live.values("comparison_id")
        .annotate(n=Count("id"), overlap=F("comparison__overlap"))
        .filter(n__gt=F("overlap"))
    )
    over_labels = (
        Label.objects.filter(task_id=task_id)
        .values("comparison_id")
        .annotate(n=Count("id"), overlap=F("comparison__overlap"))
        .filter(n__gt=F("overlap"), comparison__status=Comparison.Status.OPEN)
    )
    ids = {label_id for _, label_id in accepted}
    stored = set(Label.objects.filter(id__in=ids).values_list("id", flat=True))
    pairs = set(Label.objects.filter(id__in=ids).values_list("comparison_id", "id"))
    return {
        "double_assignments": over.count(),
        "comparisons_over_labeled": over_labels.count(),
        "accepted_labels": len(ids),
        "lost_labels": len(ids - stored),
        "mismatched_labels": len({(c, i) for c, i in accepted} - pairs),
        "unanswered_submits": len(unanswered),
        "unanswered_but_stored": Label.objects.filter(comparison_id__in=unanswered).count(),
    }


def collect_static(static_root: Path) -> Path:
    """collectstatic (production storage: hashed names, .gz files) into ``static_root``/static
    for nginx, once; returns ``static_root``."""
    from django.core.management import call_command
    from django.test.utils import override_settings

    target = static_root / "static"
    if not (target / "staticfiles.json").exists():
        with override_settings(STATIC_ROOT=str(target)):
            call_command("collectstatic", interactive=False, verbosity=0)
    return static_root


class BackendCpuSampler(threading.Thread):
    """CPU seconds of the PostgreSQL backends of one database (same machine only), sampled
    every ``interval`` s: the web processes' connections are replaced every CONN_MAX_AGE
    seconds, and a backend read only at the end would be missing once it has exited (up to
    ``interval`` of each exited backend's last CPU is missed)."""

    def __init__(self, db_url: str, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.db_url, self.interval = db_url, interval
        self.start_cpu: dict[int, float] = {}
        self.last_cpu: dict[int, float] = {}
        self.stopping = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        import psycopg

        query = (
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            while True:
                for (pid,) in conn.execute(query).fetchall():
                    cpu = cpu_of_process(pid)
                    if not self.ready.is_set():
                        self.start_cpu[pid] = cpu  # present before the run: counted from here
                    self.last_cpu[pid] = max(cpu, self.last_cpu.get(pid, 0.0))
                self.ready.set()
                if self.stopping.wait(self.interval):
                    return

    def begin(self) -> None:
        self.start()
        self.ready.wait(30)

    def finish(self) -> float:
        self.stopping.set()
        self.join()
        return sum(cpu - self.start_cpu.get(pid, 0.0) for pid, cpu in self.last_cpu.items())


def cpu_of_process(pid: int, *, reaped_children: bool = False) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")
