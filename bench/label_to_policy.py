"""Loop latency: from the label that crosses the reward-model threshold to the first comparison
sampled from the policy version trained on it (label -> reward model -> PPO chunk -> publish ->
sample), through a real Celery worker and Redis, on a tiny model.

    (DATABASE_URL defaults to .../preferenceloop_bench_loop on 127.0.0.1)
    .venv/bin/python bench/label_to_policy.py [--repeats 3]

The database is created and migrated if needed; the worker and this script share a Redis
database of their own (--broker, default redis://127.0.0.1:6379/14, flushed). Labels are
submitted in-process through the labeling services (lease_next / submit_label), whose commit
hook ticks the scheduler, exactly as the API does.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DB = "postgres://preferenceloop:preferenceloop@127.0.0.1:5432/preferenceloop_bench_loop"


def prepare_environment(database_url: str, broker: str, artifacts: Path) -> None:
    """Create the database if missing, migrate, point Django and Celery at it and set up."""
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    os.environ.update(
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker,
        DJANGO_SETTINGS_MODULE="config.settings.local",
        PREFERENCE_LOOP_ARTIFACTS=str(artifacts),
        TRAINING_TICK_SECONDS=os.environ.get("TRAINING_TICK_SECONDS", "5"),
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
    import redis

    redis.Redis.from_url(broker).flushdb()
    import django

    django.setup()


def start_worker(log: Path, beat_dir: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "-Q",
        "default,sampling,training",
        "--pool",
        "solo",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "-B",
        "-s",
        str(beat_dir / "beat"),
    ]
    return subprocess.Popen(
        command, cwd=ROOT, env=os.environ.copy(), stdout=open(log, "ab"), stderr=subprocess.STDOUT
    )


def tiny_model(directory: Path) -> str:
    from tests.training.ml.conftest import build_model, build_tokenizer

    tokenizer = build_tokenizer()
    build_model(len(tokenizer)).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def label_one(task: Any, labeler: Any, choose: Any) -> bool:
    """Lease the next comparison and label it with ``choose(prompt, samples)``; False if none."""
    from labeling.services.labels import submit_label
    from labeling.services.leasing import lease_next

    assignment = lease_next(task=task, labeler=labeler)
    if assignment is None:
        return False
    comparison = assignment.comparison
    best = choose(comparison.prompt.text, comparison.samples)
    submit_label(
        labeler=labeler, comparison_id=comparison.pk, kind="choice", choice=best, time_spent_ms=0
    )
    return True


def label_in_background(
    task: Any, labeler: Any, prefer: Any, seed: int, labels: int
) -> threading.Event:
    """A thread that labels the task's comparisons as they come with ``prefer(prompt, samples,
    rng)`` until it has ``labels``; set the returned event to stop it."""
    stop = threading.Event()

    def label_forever() -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            if task.labels.count() >= labels or not label_one(
                task, labeler, lambda p, s: prefer(p, s, rng)
            ):
                time.sleep(0.5)

    threading.Thread(target=label_forever, daemon=True).start()
    return stop


def run_loop_until(
    task: Any,
    labeler: Any,
    prefer: Any,
    *,
    seed: int,
    labels: int,
    episodes: int,
    deadline: float,
    work: Path,
    log_tail: int = 3000,
) -> None:
    """The online loop on ``task`` (a Celery worker with beat, a labeler in a thread) until
    PPO has ``episodes`` episodes or ``time.monotonic()`` passes ``deadline``; the worker's
    log tail goes to stderr."""
    from training import selectors, services

    worker = start_worker(work / "worker.log", work)
    stop = threading.Event()
    try:
        services.tick(task_id=task.pk)
        stop = label_in_background(task, labeler, prefer, seed, labels)

        def finished() -> bool:
            head = selectors.ppo_head(task_id=task.pk)
            return bool(head and head.episodes >= episodes) or time.monotonic() > deadline

        wait(finished, max(0.0, deadline - time.monotonic()) + 60, "the end of PPO")
    finally:
        stop.set()
        worker.terminate()
        worker.wait(timeout=60)
        print((work / "worker.log").read_text()[-log_tail:], file=sys.stderr)


def wait(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


def one_trial(base_model: str, n0: int, name: str) -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    from labeling.models import Comparison, Prompt, Task, TaskLabeler
    from training import services
    from training.models import TrainingRun

    task = Task.objects.create(
        name=name,
        status="active",
        base_model=base_model,
        k=4,
        query_length=8,
        response_length=8,
        truncation_min_position=2,
        temperature=1.0,
        training_settings={"preset": "cpu-tiny", "reward": {"normalization_samples": 8}},
        schedule={
            "n0": n0,
            "n": n0,
            "episodes": 16,
            "retrains": 1,
            "chunk_episodes": 16,
            "buffer": n0,
        },
    )
    for text in [
        "The movie was good.",
        "The food was bad.",
        "It is a nice day.",
        "Dogs and cats play.",
        "The story was sad.",
        "What a great show.",
    ]:
        Prompt.objects.create(task=task, text=text)
    labeler, _ = get_user_model().objects.get_or_create(username=f"bench-{task.pk}")
    TaskLabeler.objects.create(task=task, labeler=labeler)
    services.tick(task_id=task.pk)
    wait(lambda: Comparison.objects.filter(task=task).count() >= n0, 120, "the first buffer")
    for _ in range(n0 - 1):
        assert label_one(task, labeler, lambda prompt, samples: 0)
    started = time.time()
    assert label_one(task, labeler, lambda prompt, samples: 0)  # crosses n0
    first = wait(
        lambda: (
            Comparison.objects.filter(task=task, policy_version__number__gte=1)
            .order_by("created_at")
            .first()
        ),
        600,
        "a comparison from the new policy",
    )
    Task.objects.filter(pk=task.pk).update(status="paused")  # the next trial runs alone
    runs = {run.kind: run for run in TrainingRun.objects.filter(task=task, status="succeeded")}
    reward, policy = runs["reward"], runs["policy"]
    return {
        "label_to_first_new_comparison_s": round(first.created_at.timestamp() - started, 2),
        "label_to_reward_start_s": round(reward.started_at.timestamp() - started, 2),
        "reward_run_s": round((reward.finished_at - reward.started_at).total_seconds(), 2),
        "reward_to_policy_start_s": round(
            (policy.started_at - reward.finished_at).total_seconds(), 2
        ),
        "policy_run_s": round((policy.finished_at - policy.started_at).total_seconds(), 2),
        "publish_to_comparison_s": round(
            (first.created_at - policy.finished_at).total_seconds(), 2
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n0", type=int, default=8, help="labels before the reward model")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="label-to-policy-") as tmp:
        work = Path(tmp)
        prepare_environment(args.database_url, args.broker, work / "artifacts")
        model = tiny_model(work / "model")
        log = ROOT / "var" / "label_to_policy-worker.log"
        log.unlink(missing_ok=True)
        worker = start_worker(log, work)
        try:
            trials = [
                one_trial(model, args.n0, f"label-to-policy {time.time():.0f}-{i}")
                for i in range(args.repeats)
            ]
        except BaseException:
            print(f"worker log: {log}", file=sys.stderr)
            raise
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
    print(json.dumps({"trials": trials}, indent=2))


if __name__ == "__main__":
    main()
