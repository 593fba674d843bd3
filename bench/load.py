"""Load benchmark of the labeling API: next + submit by L simulated labelers against gunicorn.

    DATABASE_URL=postgres://... .venv/bin/python bench/load.py --labelers 50 --fetches 10000

Its own database (DATABASE_URL's name + "_bench", or "_bench_big" with --big-labels) is
recreated on each run; gunicorn (config/gunicorn.conf.py, production settings) on loopback,
Redis as cache and broker; L labelers as client processes x threads on the same cores (their
CPU time is reported). Then the database is checked for double assignments and lost labels,
and the queries of one next + submit pair are counted in-process (bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import resource
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def bench_env(db_url: str, args: argparse.Namespace) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "bench-" + "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "DJANGO_SECURE_SSL_REDIRECT": "False",
        "DATABASE_URL": db_url,
        "CACHE_URL": args.cache_url,
        "CELERY_BROKER_URL": args.broker_url,
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


# --- the client --------------------------------------------------------------------------------


def labeler_loop(
    base: str, task_id: int, token: str, quota: int, think_s: float, seed: int, out: list
) -> None:
    import requests

    rng = random.Random(seed)
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    if think_s:
        time.sleep(rng.uniform(0, think_s))  # labelers do not all arrive in the same millisecond
    for i in range(quota):
        # A labeler's first pair opens its connection (and a server thread's database
        # connection): reported apart as warm-up, left out of the percentiles.
        suffix = "-warmup" if i == 0 else ""
        t0 = time.perf_counter()
        r = session.get(f"{base}/api/v1/tasks/{task_id}/next/", timeout=30)
        t1 = time.perf_counter()
        out.append(("next" + suffix, r.status_code, t1 - t0, None))
        if r.status_code != 200:
            if r.status_code == 204:
                return
            continue
        lease = r.json()
        if think_s:
            time.sleep(rng.expovariate(1 / think_s))
        body = {
            "comparison_id": lease["comparison_id"],
            "kind": "choice",
            "choice": rng.randrange(len(lease["samples"])),
            "time_spent_ms": 1000,
        }
        t2 = time.perf_counter()
        r = session.post(f"{base}/api/v1/labels/", json=body, timeout=30)
        t3 = time.perf_counter()
        label_id = r.json().get("id") if r.status_code in (200, 201) else None
        out.append(("submit" + suffix, r.status_code, t3 - t2, (lease["comparison_id"], label_id)))


def client_process(
    base: str, task_id: int, tokens: list[str], quota: int, think_s: float, q: Any
) -> None:
    results: list = []
    threads = [
        threading.Thread(target=labeler_loop, args=(base, task_id, tok, quota, think_s, i, results))
        for i, tok in enumerate(tokens)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    q.put((results, usage.ru_utime + usage.ru_stime))


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))] * 1000


def run_load(args: argparse.Namespace, env: dict[str, str], info: dict[str, Any]) -> dict:
    base = f"http://127.0.0.1:{args.port}"
    gunicorn = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "config.wsgi:application",
            "--config",
            str(ROOT / "config" / "gunicorn.conf.py"),
            "--workers",
            str(args.workers),
            "--threads",
            str(args.threads),
            "--bind",
            f"127.0.0.1:{args.port}",
            "--backlog",
            "2048",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        import requests

        for _ in range(100):
            try:
                if requests.get(f"{base}/healthz?live=1", timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        tokens = info["tokens"]
        quota = -(-args.fetches // len(tokens))
        groups = [tokens[i :: args.client_procs] for i in range(args.client_procs)]
        queue: Any = mp.Queue()
        procs = [
            mp.Process(
                target=client_process,
                args=(base, info["task_id"], g, quota, args.think_ms / 1000, queue),
            )
            for g in groups
            if g
        ]
        server_cpu0 = cpu_of_tree(gunicorn.pid)
        t0 = time.perf_counter()
        for p in procs:
            p.start()
        collected = [queue.get() for _ in procs]
        elapsed = time.perf_counter() - t0
        server_cpu = cpu_of_tree(gunicorn.pid) - server_cpu0
        for p in procs:
            p.join()
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=30)
    results = [r for rs, _ in collected for r in rs]
    client_cpu = sum(c for _, c in collected)
    nexts = [r for r in results if r[0] == "next"]
    subs = [r for r in results if r[0] == "submit"]
    all_subs = [r for r in results if r[0].startswith("submit")]
    warmups = [r[2] for r in results if r[0].endswith("-warmup")]
    statuses: dict[str, int] = {}
    for kind, code, _, _ in results:
        statuses[f"{kind} {code}"] = statuses.get(f"{kind} {code}", 0) + 1
    return {
        "elapsed_s": round(elapsed, 1),
        "requests": len(results),
        "throughput_rps": round(len(results) / elapsed, 1),
        "fetches": len(nexts) + len(warmups) // 2,
        "warmup_pairs": len(warmups) // 2,
        "warmup_max_ms": round(1000 * max(warmups, default=0.0), 1),
        "statuses": statuses,
        "next_p50_ms": round(pct([r[2] for r in nexts], 50), 1),
        "next_p99_ms": round(pct([r[2] for r in nexts], 99), 1),
        "submit_p50_ms": round(pct([r[2] for r in subs], 50), 1),
        "submit_p99_ms": round(pct([r[2] for r in subs], 99), 1),
        "server_cpu_s": round(server_cpu, 1),
        "server_cpu_ms_per_pair": round(1000 * server_cpu / max(1, len(all_subs)), 1),
        "client_cpu_s": round(client_cpu, 1),
        "accepted": [r[3] for r in all_subs if r[1] in (200, 201)],
    }


def cpu_of_tree(pid: int) -> float:
    """User+system seconds of a process and its children (from /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(c) for c in children.read_text().split()]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def check_integrity(task_id: int, accepted: list) -> dict[str, int]:
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
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="per worker (gthread; 1: sync)")
    parser.add_argument("--labelers", type=int, default=50)
    parser.add_argument("--fetches", type=int, default=10_000)
    parser.add_argument("--think-ms", type=float, default=0.0, help="mean think time")
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--big-labels", type=int, default=0, help="e.g. 1000000")
    parser.add_argument("--port", type=int, default=8931)
    parser.add_argument("--cache-url", default="redis://127.0.0.1:6379/3")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/4")
    parser.add_argument("--skip-load", action="store_true", help="only the query counts")
    args = parser.parse_args()

    base_url = os.environ.get(
        "DATABASE_URL", "postgres://preferenceloop:preferenceloop@127.0.0.1:5432/preferenceloop"
    )
    parts = urllib.parse.urlparse(base_url)
    suffix = "_bench_big" if args.big_labels else "_bench"
    db_url = parts._replace(path=parts.path + suffix).geturl()
    recreate_database(db_url)
    env = bench_env(db_url, args)
    setup_django(env)
    import redis

    redis.Redis.from_url(args.cache_url).flushdb()
    info = populate(
        labelers=args.labelers, comparisons=args.fetches + 200, big_labels=args.big_labels
    )
    report: dict[str, Any] = {"args": vars(args), "cpus": os.cpu_count()}
    report["loadavg_before"] = os.getloadavg()
    report["queries"] = queries_per_pair(info["task_id"], info["tokens"][0])
    if not args.skip_load:
        load = run_load(args, env, info)
        report["integrity"] = check_integrity(info["task_id"], load.pop("accepted"))
        report["load"] = load
    report["loadavg_after"] = os.getloadavg()  # other work on the machine skews the figures
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
