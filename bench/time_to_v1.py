"""Time from `make demo` to policy v1: runs `make demo` as a newcomer does, on a fresh database
(and, by default, a cold model cache), and reads the demo's SQLite database every second for
when each step of the loop happened; stops the demo once v1's first comparisons exist.

    .venv/bin/python bench/time_to_v1.py                  # writes var/bench/time_to_v1/
    .venv/bin/python bench/time_to_v1.py --warm-cache     # keep ~/.cache/preference-loop

The demo runs with its own settings (two simulated labelers at 6 s per label, overlap 3, gold);
nobody else labels. Prints one line per step and a JSON summary (seconds since `make demo`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STEPS = {
    "first label": "SELECT MIN(created_at) FROM labeling_label",
    "v0 eval answers": "SELECT MIN(e.id) FROM training_evalsample e "
    "JOIN training_policyversion p ON p.id = e.policy_version_id WHERE p.number = 0",
    "reward model v1 started": "SELECT MIN(started_at) FROM training_trainingrun "
    "WHERE kind = 'reward'",
    "reward model v1": "SELECT MIN(created_at) FROM training_rewardmodelversion",
    "policy run started": "SELECT MIN(started_at) FROM training_trainingrun WHERE kind = 'policy'",
    "policy v1": "SELECT MIN(created_at) FROM training_policyversion WHERE number = 1",
    "v1 comparisons": "SELECT MIN(c.created_at) FROM labeling_comparison c "
    "JOIN training_policyversion p ON p.id = c.policy_version_id WHERE p.number = 1",
}
COUNTS = {
    "labels": "SELECT COUNT(*) FROM labeling_label",
    "reward runs": "SELECT COUNT(*) FROM training_trainingrun WHERE kind = 'reward'",
    "v0 comparisons sampled": "SELECT COUNT(*) FROM labeling_comparison c JOIN "
    "training_policyversion p ON p.id = c.policy_version_id WHERE p.number = 0 "
    "AND c.sample_token_ids IS NOT NULL AND c.id > 60",
}


def read(db: Path, sql: str) -> object:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(sql).fetchone()[0]
    except sqlite3.Error:
        return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "var" / "bench" / "time_to_v1"))
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--timeout", type=float, default=1200)
    parser.add_argument("--warm-cache", action="store_true", help="keep the converted model")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    db = out / "db.sqlite3"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{db}",
        "PREFERENCE_LOOP_ARTIFACTS": str(out / "artifacts"),
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "filesystem://localhost/"),
        "PORT": str(args.port),
    }
    if not args.warm_cache:
        env["PREFERENCE_LOOP_CACHE"] = str(out / "model-cache")
    log = (out / "demo.log").open("wb")
    started = time.monotonic()
    wall_start = time.time()
    demo = subprocess.Popen(
        ["make", "demo"], cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
    )
    seen: dict[str, float] = {}
    try:
        while time.monotonic() - started < args.timeout and demo.poll() is None:
            for step, sql in STEPS.items():
                if step in seen:
                    continue
                value = read(db, sql)
                if value is not None:
                    seen[step] = round(time.monotonic() - started, 1)
                    print(f"{seen[step]:7.1f} s  {step}", flush=True)
            if "v1 comparisons" in seen:
                break
            time.sleep(1)
    finally:
        counts = {name: read(db, sql) for name, sql in COUNTS.items()}
        os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
    summary = {
        "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(wall_start)),
        "seconds": seen,
        "counts": counts,
        "cold_model_cache": not args.warm_cache,
        "load_average_after": os.getloadavg(),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
