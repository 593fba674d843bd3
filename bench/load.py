"""Load benchmark of the labeling API: L simulated labelers (next + submit), nginx, gunicorn.

    DATABASE_URL=postgres://... .venv/bin/python bench/load.py --labelers 1000 --think-ms 5000 \
        --duration 120                                   # bench/README.md, "Load"

Its own database (DATABASE_URL's name + "_bench", or "_bench_big" with --big-labels) is
recreated on each run; --instances gunicorn servers (config/gunicorn.conf.py, production
settings) on loopback behind nginx (docker/nginx/nginx.conf.template, the Compose proxy's file,
run from Debian's nginx by bench/nginx_local.py), or exposed directly with --direct; Redis as
cache and broker. The labelers are coroutines of bench/loadgen.py (asyncio, one keep-alive
connection each) in --client-procs processes, pinned with taskset to cores the server does not
use where the machine has them (--client-cpus / --server-cpus). The report gives throughput
over the measured window, per-call percentiles, connection errors, the CPU of server, proxy,
database backends and client, then the database is checked for double assignments and lost
labels, and the queries of one next + submit pair are counted in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import load_setup  # noqa: E402  (bench/ is the script's directory)
import loadgen  # noqa: E402
import nginx_local  # noqa: E402


def start_gunicorn(args: argparse.Namespace, env: dict[str, str], port: int) -> subprocess.Popen:
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "config.wsgi:application",
        "--config",
        str(ROOT / "config" / "gunicorn.conf.py"),
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
    ]
    if args.server_cpus:
        command = ["taskset", "-c", args.server_cpus, *command]
    return subprocess.Popen(command, cwd=ROOT, env=env)


def wait_healthy(url: str, processes: list[subprocess.Popen]) -> None:
    import requests

    for _ in range(300):
        if any(p.poll() is not None for p in processes):
            raise RuntimeError("a server exited during start-up")
        try:
            if requests.get(f"{url}/healthz?live=1", timeout=60).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become healthy")


def proxy_checks(base: str) -> dict[str, Any]:
    """The proxy answers its own health, serves a hashed static file itself with a year's
    caching, and passes the application's health check through."""
    import requests

    manifest = json.loads(
        (ROOT / "var" / "nginx" / "www" / "static" / "staticfiles.json").read_text()
    )
    hashed = manifest["paths"]["js/label.js"]
    static = requests.get(
        f"{base}/static/{hashed}", headers={"Accept-Encoding": "gzip"}, timeout=60
    )
    return {
        "proxy_health": requests.get(f"{base}/proxy-health", timeout=60).status_code,
        "app_health": requests.get(f"{base}/healthz?live=1", timeout=60).status_code,
        "static": static.status_code,
        "static_cache_control": static.headers.get("Cache-Control"),
        "static_gzip": static.headers.get("Content-Encoding") == "gzip",
    }


def default_cpus(args: argparse.Namespace) -> None:
    """Client on the last core and the server on the others, when there are at least four;
    on fewer, nothing is pinned (one core for the client would leave the server one)."""
    n = os.cpu_count() or 1
    if args.client_cpus is None and args.server_cpus is None and n >= 4:
        args.client_cpus, args.server_cpus = str(n - 1), f"0-{n - 2}"


def run_load(args: argparse.Namespace, env: dict[str, str], info: dict[str, Any]) -> dict:
    ports = [args.port + i for i in range(args.instances)]
    servers = [start_gunicorn(args, env, port) for port in ports]
    proxy = None
    run_dir = Path(tempfile.mkdtemp(prefix="load-", dir=ROOT / "var"))
    try:
        for port in ports:
            wait_healthy(f"http://127.0.0.1:{port}", servers)
        base = f"http://127.0.0.1:{ports[0]}"
        report: dict[str, Any] = {}
        if not args.direct:
            config = nginx_local.local_config(
                run_dir=run_dir / "nginx",
                listen=f"127.0.0.1:{args.proxy_port}",
                upstreams=[f"127.0.0.1:{p}" for p in ports],
                static_root=ROOT / "var" / "nginx" / "www",
            )
            proxy = nginx_local.start(config, cpus=args.server_cpus, port=args.proxy_port)
            base = f"http://127.0.0.1:{args.proxy_port}"
            report["proxy_checks"] = proxy_checks(base)

        tokens = info["tokens"]
        start_at = time.time() + 2.0  # every client process starts its labelers at once
        ramp = args.ramp_s if args.ramp_s is not None else min(args.think_ms / 1000, 10.0)
        deadline = start_at + ramp + args.duration
        quota = -(-args.fetches // len(tokens)) if args.fetches else None
        procs, outs = [], []
        for i in range(args.client_procs):
            spec = {
                "base_url": base,
                "task_id": info["task_id"],
                "tokens": tokens[i :: args.client_procs],
                "think_s": args.think_ms / 1000,
                "start_at": start_at,
                "ramp_s": ramp,
                "deadline": deadline,
                "pairs_per_labeler": quota,
                "seed": i,
            }
            spec_path, out = run_dir / f"spec{i}.json", run_dir / f"out{i}.json"
            spec_path.write_text(json.dumps(spec))
            command = [sys.executable, str(Path(__file__).parent / "loadgen.py")]
            command += ["--spec", str(spec_path), "--out", str(out)]
            if args.client_cpus:
                command = ["taskset", "-c", args.client_cpus, *command]
            procs.append(subprocess.Popen(command, cwd=ROOT))
            outs.append(out)

        web_pids = [s.pid for s in servers]
        database = load_setup.BackendCpuSampler(env["DATABASE_URL"])
        database.begin()
        web0 = sum(load_setup.cpu_of_tree(pid) for pid in web_pids)
        proxy0 = load_setup.cpu_of_tree(proxy.pid) if proxy else 0.0
        t0 = time.time()
        for p in procs:
            if p.wait() != 0:
                raise RuntimeError("a load generator process failed")
        elapsed = time.time() - t0
        web_cpu = sum(load_setup.cpu_of_tree(pid) for pid in web_pids) - web0
        proxy_cpu = (load_setup.cpu_of_tree(proxy.pid) if proxy else 0.0) - proxy0
        db_cpu = database.finish()
        results = [json.loads(out.read_text()) for out in outs]
    finally:
        if proxy:
            nginx_local.stop(proxy)
        for s in servers:
            s.terminate()
        for s in servers:
            try:
                s.wait(timeout=60)
            except subprocess.TimeoutExpired:
                s.kill()
                s.wait()
        shutil.rmtree(run_dir, ignore_errors=True)

    summary = loadgen.summarize(results, (start_at + ramp, deadline))
    pairs = max(1, sum(n for k, n in summary["statuses"].items() if k.startswith("submit")))
    report.update(summary)
    report["offered_rps"] = (
        round(args.labelers / (args.think_ms / 1000), 1) if args.think_ms else "closed loop"
    )
    report["cpu_s"] = {
        "elapsed_s": round(elapsed, 1),
        "gunicorn": round(web_cpu, 1),
        "nginx": round(proxy_cpu, 1),
        "postgres_backends": round(db_cpu, 1),
        "client": summary["client"]["cpu_s"],
        "machine_cores": os.cpu_count(),
    }
    report["cpu_ms_per_pair"] = {
        "gunicorn": round(1000 * web_cpu / pairs, 1),
        "nginx": round(1000 * proxy_cpu / pairs, 1),
        "postgres_backends": round(1000 * db_cpu / pairs, 1),
    }
    report["pinning"] = {"server": args.server_cpus, "client": args.client_cpus}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labelers", type=int, default=50)
    parser.add_argument("--think-ms", type=float, default=0.0, help="mean think before each call")
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--ramp-s", type=float, default=None, help="arrivals (default: think)")
    parser.add_argument("--fetches", type=int, default=0, help="stop after about N pairs")
    parser.add_argument("--instances", type=int, default=1, help="gunicorn servers behind nginx")
    parser.add_argument("--workers", type=int, default=2, help="per gunicorn instance")
    parser.add_argument("--threads", type=int, default=2, help="per worker (gthread; 1: sync)")
    parser.add_argument("--direct", action="store_true", help="no proxy: clients -> gunicorn")
    parser.add_argument("--client-procs", type=int, default=1)
    parser.add_argument("--client-cpus", default=None, help="taskset list, e.g. 3")
    parser.add_argument("--server-cpus", default=None, help="taskset list, e.g. 0-2")
    parser.add_argument("--big-labels", type=int, default=0, help="e.g. 1000000")
    parser.add_argument("--port", type=int, default=8931, help="first gunicorn's port")
    parser.add_argument("--proxy-port", type=int, default=8930)
    parser.add_argument("--cache-url", default="redis://127.0.0.1:6379/3")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/4")
    parser.add_argument("--skip-load", action="store_true", help="only the query counts")
    args = parser.parse_args()
    if args.direct and args.instances != 1:
        parser.error("--direct runs one gunicorn instance")
    default_cpus(args)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited: a socket per labeler

    base_url = os.environ.get(
        "DATABASE_URL", "postgres://preferenceloop:preferenceloop@127.0.0.1:5432/preferenceloop"
    )
    parts = urllib.parse.urlparse(base_url)
    suffix = "_bench_big" if args.big_labels else "_bench"
    db_url = parts._replace(path=parts.path + suffix).geturl()
    load_setup.recreate_database(db_url)
    env = load_setup.bench_env(
        db_url,
        cache_url=args.cache_url,
        broker_url=args.broker_url,
        num_proxies=0 if args.direct else 1,
    )
    load_setup.setup_django(env)
    import redis

    redis.Redis.from_url(args.cache_url).flushdb()
    # Comparisons for every pair the run can ask for (at 2 calls per think time, or a guess of
    # 1,000 pairs/s without thinking), so that nobody runs out.
    rate = args.labelers / (2 * args.think_ms / 1000) if args.think_ms else 1000.0
    wanted = args.fetches or int(rate * (args.duration + 30) * 1.2)
    info = load_setup.populate(
        labelers=args.labelers, comparisons=wanted + 200, big_labels=args.big_labels
    )
    report: dict[str, Any] = {"args": vars(args), "cpus": os.cpu_count()}
    report["loadavg_before"] = os.getloadavg()
    report["queries"] = load_setup.queries_per_pair(info["task_id"], info["tokens"][0])
    if not args.skip_load:
        if not args.direct:
            load_setup.collect_static(ROOT / "var" / "nginx" / "www")
        load = run_load(args, env, info)
        report["integrity"] = load_setup.check_integrity(
            info["task_id"], load.pop("accepted"), load.pop("unanswered")
        )
        report["load"] = load
    report["loadavg_after"] = os.getloadavg()  # other work on the machine skews the figures
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
