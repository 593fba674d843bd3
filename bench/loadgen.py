"""Asyncio load generator of bench/load.py: simulated labelers as coroutines, not threads.

    python bench/loadgen.py --spec spec.json --out result.json   (bench/load.py writes the spec)

Each labeler is one browser: its own keep-alive connection (aiohttp, idle reuse up to
IDLE_REUSE_S, shorter than the proxy's and gunicorn's keep-alive), a think time before every
call (exponential, mean ``think_s``), then ``GET /api/v1/tasks/{id}/next/`` and, after thinking
again, ``POST /api/v1/labels/``. A call whose connection fails (a reset keep-alive connection, a
restarting server) is sent again: ``next`` returns the lease already held and an identical
label is answered with 200, so nothing is lost or doubled (aiohttp itself resends a GET once
when a reused connection closes; those are not in ``calls_sent_again``). One event loop
drives thousands of labelers on one core; its own CPU time and how late its timers fire (loop
lag: when large, the client, not the server, adds latency) are reported with the records.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import time
from pathlib import Path
from typing import Any

import aiohttp

IDLE_REUSE_S = 60.0  # a connection idle longer than this is not reused (nginx keeps 75 s)
CONNECTION_RETRIES = 3
TIMEOUT_S = 30.0


class Recorder:
    def __init__(self) -> None:
        # (kind, status, latency_s, finished_at epoch s, retries, comparison_id, label_id)
        self.records: list[tuple[str, int, float, float, int, int | None, int | None]] = []
        self.errors: dict[str, int] = {}

    def error(self, text: str) -> None:
        self.errors[text] = self.errors.get(text, 0) + 1


async def call(
    session: aiohttp.ClientSession, method: str, url: str, rec: Recorder, **kw: Any
) -> tuple[int, Any, float, int]:
    """(status, json body or None, seconds from the first try to the answer, retries); status 0
    when every try failed to connect, was cut off or timed out (each is sent again first)."""
    started = time.perf_counter()
    for attempt in range(CONNECTION_RETRIES + 1):
        try:
            async with session.request(method, url, **kw) as response:
                raw = await response.read()
                body = json.loads(raw) if raw and response.status in (200, 201) else None
                return response.status, body, time.perf_counter() - started, attempt
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            name = type(exc).__name__ if str(exc) else f"{type(exc).__name__} ({TIMEOUT_S:g} s)"
            if attempt == CONNECTION_RETRIES:
                rec.error(f"{name}: {exc}"[:200])
                return 0, None, time.perf_counter() - started, attempt
            rec.error(f"{name} (sent again)")
            # At once after a stale connection; then back off (a restarting server).
            await asyncio.sleep(0 if attempt == 0 else 0.1 * 2**attempt)
    raise AssertionError("unreachable")


async def labeler(spec: dict[str, Any], token: str, seed: int, rec: Recorder) -> None:
    rng = random.Random(seed)
    think = float(spec["think_s"])
    base, task_id = spec["base_url"], spec["task_id"]
    deadline, quota = spec["deadline"], spec.get("pairs_per_labeler")
    connector = aiohttp.TCPConnector(limit=1, keepalive_timeout=IDLE_REUSE_S)
    session = aiohttp.ClientSession(
        connector=connector,
        headers={"Authorization": f"Token {token}"},
        timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
    )

    async def pause() -> None:
        if think > 0:
            await asyncio.sleep(rng.expovariate(1 / think))

    async with session:
        # Arrivals spread over the ramp, so a thousand labelers do not start in one millisecond.
        await asyncio.sleep(
            max(0.0, spec["start_at"] - time.time()) + rng.uniform(0, spec["ramp_s"])
        )
        pairs = 0
        while time.time() < deadline and (quota is None or pairs < quota):
            # A labeler's first pair opens its connection (and a server thread's database
            # connection): reported apart as warm-up, left out of the percentiles.
            suffix = "-warmup" if pairs == 0 else ""
            await pause()
            url = f"{base}/api/v1/tasks/{task_id}/next/"
            status, lease, seconds, retries = await call(session, "GET", url, rec)
            rec.records.append(("next" + suffix, status, seconds, time.time(), retries, None, None))
            if status == 204:
                return
            if status != 200 or lease is None:
                continue
            if time.time() < deadline:
                await pause()  # past the deadline the lease is handed back at once
            body = {
                "comparison_id": lease["comparison_id"],
                "kind": "choice",
                "choice": lease["samples"][rng.randrange(len(lease["samples"]))]["index"],
                "time_spent_ms": 1000,
            }
            url = f"{base}/api/v1/labels/"
            status, label, seconds, retries = await call(session, "POST", url, rec, json=body)
            label_id = label.get("id") if isinstance(label, dict) else None
            rec.records.append(
                ("submit" + suffix, status, seconds, time.time(), retries, body["comparison_id"],
                 label_id)
            )  # fmt: skip
            pairs += 1


async def loop_lag(stop: asyncio.Event, lags: list[float], interval: float = 0.05) -> None:
    """How late a 50 ms timer fires: the event loop's own delay, added to every latency."""
    while not stop.is_set():
        planned = time.perf_counter() + interval
        await asyncio.sleep(interval)
        lags.append(max(0.0, time.perf_counter() - planned))


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    rec, stop = Recorder(), asyncio.Event()
    lags: list[float] = []
    monitor = asyncio.create_task(loop_lag(stop, lags))
    seed = int(spec.get("seed", 0))
    await asyncio.gather(
        *(labeler(spec, token, seed * 100_003 + i, rec) for i, token in enumerate(spec["tokens"]))
    )
    stop.set()
    await monitor
    return {"records": rec.records, "errors": rec.errors, "loop_lag_s": lags}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    spec = json.loads(args.spec.read_text())
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a socket per labeler
    wall0, usage0 = time.time(), resource.getrusage(resource.RUSAGE_SELF)
    result = asyncio.run(run(spec))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_s"] = (usage.ru_utime - usage0.ru_utime) + (usage.ru_stime - usage0.ru_stime)
    result["wall_s"] = time.time() - wall0
    args.out.write_text(json.dumps(result))


# --- summary (bench/load.py merges the results of its client processes) -----------------------


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return round(values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))] * 1000, 1)


def summarize(results: list[dict[str, Any]], window: tuple[float, float]) -> dict[str, Any]:
    """Throughput over ``window`` (epoch seconds: after the ramp, up to the deadline), latency
    percentiles of every non-warm-up call, statuses, retries and the client's own cost."""
    records = [r for res in results for r in res["records"]]
    lo, hi = window
    in_window = [r for r in records if lo <= r[3] <= hi]
    statuses: dict[str, int] = {}
    for kind, status, *_ in records:
        statuses[f"{kind} {status}"] = statuses.get(f"{kind} {status}", 0) + 1
    errors: dict[str, int] = {}
    for res in results:
        for text, n in res["errors"].items():
            errors[text] = errors.get(text, 0) + n
    out: dict[str, Any] = {
        "window_s": round(hi - lo, 1),
        "requests": len(records),
        "requests_in_window": len(in_window),
        "throughput_rps": round(len(in_window) / max(1e-9, hi - lo), 1),
        "statuses": statuses,
    }
    for kind in ("next", "submit"):
        lat = [r[2] for r in records if r[0] == kind and r[1] in (200, 201, 204)]
        out.update({f"{kind}_p{p}_ms": pct(lat, p) for p in (50, 90, 99)})
        out[f"{kind}_max_ms"] = pct(lat, 100)
    warmups = [r[2] for r in records if r[0].endswith("-warmup")]
    out["warmup_pairs"] = len(warmups) // 2
    out["warmup_p99_ms"] = pct(warmups, 99)
    out["connection_errors"] = sum(1 for r in records if r[1] == 0)
    out["calls_sent_again"] = sum(r[4] for r in records)
    out["client_errors"] = errors
    lags = [lag for res in results for lag in res["loop_lag_s"]]
    cpu = sum(res["cpu_s"] for res in results)
    wall = max((res["wall_s"] for res in results), default=1.0)
    out["client"] = {
        "processes": len(results),
        "cpu_s": round(cpu, 1),
        "cores_used": round(cpu / wall, 2),
        "loop_lag_p99_ms": pct(lags, 99),
        "loop_lag_max_ms": pct(lags, 100),
    }
    out["accepted"] = [
        (r[5], r[6]) for r in records if r[0].startswith("submit") and r[1] in (200, 201)
    ]
    out["unanswered"] = [r[5] for r in records if r[0].startswith("submit") and r[1] == 0]
    return out


if __name__ == "__main__":
    main()
