"""The online loop end to end: a real Celery worker process (with beat), real Redis, the test
PostgreSQL database, a tiny model, and simulated labelers speaking the live server's API.

The worker reads the same test database as the test (pytest-django's ``test_<name>``), through
DATABASE_URL; it and the test process share a Redis database of their own (E2E_REDIS_DB,
default 13), flushed before each test, so other engineers' workers never see these messages.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from labeling.models import Comparison, Label
from labeling.simulation import RunOptions, ensure_simulated_labelers, run_simulation
from tests.factories import UserFactory
from tests.training.conftest import save_tiny_model, tiny_task
from training import services
from training.models import PolicyVersion, RewardModelVersion, TrainingRun

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory) -> str:
    pytest.importorskip("torch")
    # About a third of its responses end under the task's rule: labelers see only those.
    return save_tiny_model(tmp_path_factory.mktemp("e2e-tiny-model"))


@pytest.fixture
def e2e_broker(redis_url) -> Iterator[str]:
    import redis

    from config.celery import app

    url = f"{redis_url.rsplit('/', 1)[0]}/{os.environ.get('E2E_REDIS_DB', '13')}"
    redis.Redis.from_url(url).flushdb()
    # The test process publishes there too (broker_write_url shadows broker_url once set).
    previous = app.conf.broker_url, app.conf.broker_write_url
    app.conf.broker_url = app.conf.broker_write_url = url
    app._pool = None
    app.amqp._producer_pool = None
    yield url
    app.conf.broker_url, app.conf.broker_write_url = previous
    app._pool = None
    app.amqp._producer_pool = None


class Workers:
    """Celery worker processes against the test database; logs under ``tmp``."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp, self.env, self.procs = tmp, env, {}  # type: ignore[var-annotated]

    def start(self, name: str, queues: str, beat: bool = False) -> subprocess.Popen:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            queues,
            "--pool",
            "solo",
            "-n",
            f"{name}@e2e",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ]
        if beat:
            command += ["-B", "-s", str(self.tmp / "beat-schedule")]
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=log)
        self.procs[name] = proc
        return proc

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in self.tmp.glob("*.log")
        )


@pytest.fixture
def workers(require_postgres, live_server, e2e_broker, settings, tmp_path) -> Iterator[Workers]:
    db = settings.DATABASES["default"]
    database_url = (
        f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": e2e_broker,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "PREFERENCE_LOOP_ARTIFACTS": str(tmp_path / "artifacts"),
        "TRAINING_TICK_SECONDS": "2",
        "TRAINING_HEARTBEAT_SECONDS": "1",
        "TRAINING_STALE_SECONDS": "6",
        "PYTHONUNBUFFERED": "1",
    }
    handle = Workers(tmp_path, env)
    yield handle
    handle.stop_all()
    print(handle.logs())  # shown by pytest when the test failed


def wait_for(condition: Callable[[], object], timeout: float, what: str, workers: Workers):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{workers.logs()}")


def test_labels_lead_to_a_new_policy_and_its_comparisons(tiny_model_path, workers, live_server):
    started = time.monotonic()
    task = tiny_task(tiny_model_path, lease_seconds=60, buffer=6)
    workers.start("all", "default,sampling,training", beat=True)
    # No manual step: beat ticks the task, which samples from policy v0.
    wait_for(
        lambda: Comparison.objects.filter(task=task).exists(), 90, "first comparisons", workers
    )

    names = ensure_simulated_labelers(task=task, count=2)
    options = RunOptions(
        base_url=live_server.url,
        task_id=task.pk,
        preference="length",
        idle_timeout=600,
        poll_interval=0.5,
        deadline=time.monotonic() + 240,
    )
    labelers = threading.Thread(target=run_simulation, args=(options, names), daemon=True)
    labelers.start()

    def new_policy_comparisons():
        comparison = Comparison.objects.filter(task=task, policy_version__number__gte=1).first()
        return comparison and comparison.policy_version

    version = wait_for(new_policy_comparisons, 200, "comparisons from policy v1", workers)
    assert not Comparison.objects.filter(task=task).exclude(sample_ended=[True] * 4).exists()
    version.refresh_from_db()
    assert version.candidates_ended > 0  # the sampling job counted what it sampled
    options.deadline = time.monotonic()  # the labelers stop
    labelers.join(timeout=30)

    reward_model = RewardModelVersion.objects.filter(task=task).order_by("number").first()
    assert reward_model is not None and reward_model.labels_used.count() >= 4
    assert "held_out_accuracy" in reward_model.metrics
    assert version.reward_model_version is not None and version.parent is not None
    assert version.number >= 1 and version.episodes in (16, 32)
    # A later chunk may already have superseded it; the newest version is the promoted one.
    newest = PolicyVersion.objects.filter(task=task).order_by("-number").first()
    assert newest is not None and newest.status == "promoted", workers.logs()
    assert Label.objects.filter(task=task).count() >= 7  # l(16) = 4 + 4 * 0.75
    runs = TrainingRun.objects.filter(task=task)
    assert runs.filter(kind="policy", status="succeeded").exists()
    failed = list(runs.filter(status="failed").values_list("kind", "error"))
    assert not failed, f"{failed}\n{workers.logs()}"
    print(f"labels -> policy v1 comparisons in {time.monotonic() - started:.0f} s")


def test_killed_training_worker_publishes_exactly_once(tiny_model_path, workers):
    task = tiny_task(tiny_model_path, lease_seconds=60, episodes=256, chunk_episodes=256, buffer=0)
    v0 = services.ensure_base_policy(task=task)
    labeler = UserFactory()
    prompts = list(task.prompts.filter(split="train"))
    for i in range(8):  # labels already there: the RM trains, then one long PPO chunk
        comparison = Comparison.objects.create(
            task=task,
            prompt=prompts[i % len(prompts)],
            k=4,
            policy_version=v0,
            samples=["It was good.", "Bad.", "A nice day it was.", "Cats."],
            overlap=1,
            open_slots=0,
            label_count=1,
            status="complete",
        )
        Label.objects.create(
            comparison=comparison,
            labeler=labeler,
            task=task,
            kind="choice",
            choice=i % 4,
            k=4,
            display_order=[0, 1, 2, 3],
        )
    workers.start("light", "default,sampling", beat=True)
    workers.start("train1", "training")

    def ppo_in_progress():
        run = TrainingRun.objects.filter(task=task, kind="policy", status="running").first()
        return run if run is not None and len(run.metrics) >= 2 else None

    doomed = wait_for(ppo_in_progress, 120, "a PPO run in progress", workers)
    workers.kill("train1")
    assert PolicyVersion.objects.filter(task=task).count() == 1  # nothing published yet
    workers.start("train2", "training")

    def published():
        return PolicyVersion.objects.filter(task=task, number=1).first()

    version = wait_for(published, 300, "policy v1 after the restart", workers)
    time.sleep(3)  # any duplicate would show up now
    doomed.refresh_from_db()
    assert doomed.status == "failed" and "worker lost" in doomed.error
    policy_runs = TrainingRun.objects.filter(task=task, kind="policy")
    assert policy_runs.filter(status="succeeded").count() == 1
    assert PolicyVersion.objects.filter(task=task).count() == 2
    assert version.episodes == 256
    resumed = policy_runs.get(status="succeeded")
    assert resumed.metrics[0]["episode"] > 16  # resumed from a checkpoint, not from scratch
