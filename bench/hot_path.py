"""Server CPU and queries per request of the labeling hot path, in-process (no HTTP, no client).

    DATABASE_URL=postgres://preferenceloop:preferenceloop@127.0.0.1:5432/preferenceloop \
        .venv/bin/python bench/hot_path.py --pairs 1000

It recreates its own database (the DATABASE_URL's name + "_hotpath"), fills one active task
with ``--pairs`` + 200 open comparisons (``--big-labels`` adds that many past labels on complete
comparisons), then runs through Django's WSGI handler (``django.test.Client``, production-like
middleware, token auth, throttles on the local-memory cache or ``--cache-url``):

- baseline: a trivial authenticated DRF endpoint (``BaselineView`` below: token auth, one
  throttle, returns a small dict), measured in the same run, so the ratio survives other load
  on the machine;
- ``GET /api/v1/tasks/{id}/next/`` + ``POST /api/v1/labels/`` pairs, round-robin over
  ``--labelers`` labelers.

CPU is ``time.process_time`` of this process (the Django side); PostgreSQL's own CPU is
reported apart, per pair, from its backend's /proc counters when PostgreSQL runs on this
machine (``postgres_backend_cpu_ms_per_pair``). Wall-clock figures are printed too but are
noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def settings_env(db_url: str, cache_url: str) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "bench-" + "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "DJANGO_SECURE_SSL_REDIRECT": "False",
        "DATABASE_URL": db_url,
        "CACHE_URL": cache_url,
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/5",
        "THROTTLE_LABEL_SUBMIT": "1000000/min",
        "THROTTLE_LEASE": "1000000/min",
        "LOG_LEVEL": "WARNING",
    }


def baseline_urls() -> Any:
    """A trivial authenticated DRF endpoint: the floor any DRF view on this stack pays."""
    from django.urls import path
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from labeling.api.throttling import FixedWindowScopedThrottle

    class BaselineView(APIView):
        throttle_classes = [FixedWindowScopedThrottle]
        throttle_scope = "lease"

        def get(self, request: Any) -> Response:
            return Response({"ok": True, "user": request.user.pk})

    return [path("bench/baseline/", BaselineView.as_view())]


def backend_cpu(connection: Any) -> float | None:
    """CPU seconds (user + system) of this connection's PostgreSQL backend so far, from
    /proc (PostgreSQL on this machine); None elsewhere. Clock-tick resolution: read it over
    many requests."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(label: str, calls: list[Any], repeat: int) -> dict[str, Any]:
    from django.db import connection, reset_queries

    connection.force_debug_cursor = True
    cpu = wall = 0.0
    n = queries = 0
    for _ in range(repeat):
        for call in calls:
            reset_queries()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            call()
            cpu += time.process_time() - cpu0
            wall += time.perf_counter() - wall0
            queries += len(connection.queries_log)
            n += 1
    connection.force_debug_cursor = False
    reset_queries()
    return {
        "what": label,
        "requests": n,
        "cpu_ms_per_request": round(1000 * cpu / n, 3),
        "wall_ms_per_request": round(1000 * wall / n, 3),
        "queries_per_request": round(queries / n, 2),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import load  # bench/load.py: the same population
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import override_settings

    info = load.populate(
        labelers=args.labelers,
        comparisons=args.pairs + args.profile + 200,
        big_labels=args.big_labels,
    )
    task_id, tokens = info["task_id"], info["tokens"]
    clients = [Client(HTTP_AUTHORIZATION=f"Token {t}") for t in tokens]
    urlconf = type(sys)("bench_urls")
    import config.urls

    urlconf.urlpatterns = baseline_urls() + list(config.urls.urlpatterns)  # type: ignore[attr-defined]
    sys.modules["bench_urls"] = urlconf
    report: dict[str, Any] = {"database": settings.DATABASES["default"]["ENGINE"]}

    def pair(client: Client) -> None:
        r = client.get(f"/api/v1/tasks/{task_id}/next/")
        assert r.status_code == 200, r.content
        body = {"comparison_id": r.json()["comparison_id"], "kind": "choice", "choice": 0}
        s = client.post("/api/v1/labels/", body, content_type="application/json")
        assert s.status_code == 201, s.content

    with override_settings(ROOT_URLCONF="bench_urls"):
        # Warm up: content types, prepared connections, caches.
        for c in clients[:5]:
            pair(c)
            c.get("/bench/baseline/")
        baseline = measure(
            "baseline: trivial authenticated DRF GET",
            [lambda c=c: c.get("/bench/baseline/") for c in clients],
            max(1, args.pairs // len(clients)),
        )
        nexts: list[Any] = []
        subs: list[Any] = []
        leases: dict[int, int] = {}
        # next and submit measured apart: each labeler fetches, then submits, in two sweeps.
        rounds = max(1, args.pairs // len(clients))
        cpu = {"next": 0.0, "submit": 0.0}
        qn = {"next": 0, "submit": 0}
        pg_before = backend_cpu(connection)
        for _ in range(rounds):
            for i, c in enumerate(clients):
                nexts.append(
                    one(c.get, f"/api/v1/tasks/{task_id}/next/", cpu, qn, "next", connection)
                )
                leases[i] = nexts[-1].json()["comparison_id"]
            for i, c in enumerate(clients):
                body = {"comparison_id": leases[i], "kind": "choice", "choice": 0}
                subs.append(
                    one(c.post, "/api/v1/labels/", cpu, qn, "submit", connection, body=body)
                )
        pg_after = backend_cpu(connection)
        bad = [r.status_code for r in nexts if r.status_code != 200]
        bad += [r.status_code for r in subs if r.status_code != 201]
        assert not bad, bad
        n = len(nexts)
    report["baseline"] = baseline
    report["next"] = {
        "requests": n,
        "cpu_ms_per_request": round(1000 * cpu["next"] / n, 3),
        "queries_per_request": round(qn["next"] / n, 2),
    }
    report["submit"] = {
        "requests": n,
        "cpu_ms_per_request": round(1000 * cpu["submit"] / n, 3),
        "queries_per_request": round(qn["submit"] / n, 2),
    }
    pair_cpu = 1000 * (cpu["next"] + cpu["submit"]) / n
    base = baseline["cpu_ms_per_request"]
    report["pair_cpu_ms"] = round(pair_cpu, 3)
    if pg_before is not None and pg_after is not None:
        report["postgres_backend_cpu_ms_per_pair"] = round(1000 * (pg_after - pg_before) / n, 3)
    report["pair_cpu_over_two_baseline_requests"] = round(pair_cpu / (2 * base), 2)
    report["implied_capacity_2_cores_rps"] = round(2 * 2000 / pair_cpu)
    report["baseline_capacity_2_cores_rps"] = round(2 * 1000 / base)
    last = nexts[-1].json()
    report["sample_next_response"] = {k: last[k] for k in ("comparison_id", "progress")}
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile(time.process_time)  # CPU, not waits on PostgreSQL
        with override_settings(ROOT_URLCONF="bench_urls"):
            profiler.enable()
            for _ in range(max(1, args.profile // len(clients))):
                for c in clients:
                    pair(c)
            profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(30)
    return report


def one(
    method: Any,
    url: str,
    cpu: dict[str, float],
    qn: dict[str, int],
    key: str,
    connection: Any,
    body: dict[str, Any] | None = None,
) -> Any:
    connection.force_debug_cursor = True
    connection.queries_log.clear()
    before = 0
    t0 = time.process_time()
    kwargs: dict[str, Any] = {} if body is None else {"content_type": "application/json"}
    response = method(url, body, **kwargs) if body is not None else method(url)
    cpu[key] += time.process_time() - t0
    qn[key] += len(connection.queries_log) - before
    connection.force_debug_cursor = False
    return response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--labelers", type=int, default=50)
    parser.add_argument("--big-labels", type=int, default=0)
    parser.add_argument(
        "--cache-url", default="locmemcache://bench", help="e.g. redis://127.0.0.1:6379/6"
    )
    parser.add_argument("--keep-db", action="store_true", help="do not recreate the database")
    parser.add_argument(
        "--prepare-threshold",
        type=int,
        default=None,
        metavar="T",
        help="override the settings' psycopg prepare_threshold (0: never prepare)",
    )
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="then profile N more pairs (stderr)"
    )
    args = parser.parse_args()
    base_url = os.environ.get(
        "DATABASE_URL", "postgres://preferenceloop:preferenceloop@127.0.0.1:5432/preferenceloop"
    )
    parts = urllib.parse.urlparse(base_url)
    db_url = parts._replace(path=parts.path + "_hotpath").geturl()
    import load

    if db_url.startswith("postgres"):
        load.recreate_database(db_url)
    os.environ.update(settings_env(db_url, args.cache_url))
    import django

    django.setup()
    if args.prepare_threshold is not None:
        from django.conf import settings

        options = settings.DATABASES["default"].setdefault("OPTIONS", {})
        options["prepare_threshold"] = args.prepare_threshold or None
    if args.cache_url.startswith("redis"):
        import redis

        redis.Redis.from_url(args.cache_url).flushdb()
    report = {"loadavg_before": os.getloadavg(), **run(args), "loadavg_after": os.getloadavg()}
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
