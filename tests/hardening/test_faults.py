"""Faults against a real stack: a private Redis (never the shared one) and gunicorn on loopback.

- Redis down while labeling: a label POST still succeeds (labels are PostgreSQL rows; the
  broker enqueue after commit must not fail the request) and the label is stored.
- gunicorn restarted: leases are database rows, so fetching next returns the same lease.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.db import connection
from rest_framework.authtoken.models import Token

from labeling.models import Label
from tests.factories import ComparisonFactory, TaskFactory, TaskLabelerFactory, UserFactory

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(probe, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if probe():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise TimeoutError("service did not come up")


class PrivateRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        import redis

        wait_until(lambda: redis.Redis.from_url(self.url, socket_timeout=1).ping())

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


class Gunicorn:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "config.wsgi:application",
                "--workers",
                "1",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=self.env,
        )
        wait_until(lambda: requests.get(f"{self.base}/healthz?live=1", timeout=5).ok)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None


@pytest.fixture
def stack(require_postgres):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server not installed")
    redis_server = PrivateRedis()
    redis_server.start()
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "faults-" + "k" * 50,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "False",
        # The server must use the test database that this test writes its data into.
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}"
        f"/{db['NAME']}",
        "CACHE_URL": redis_server.url.replace("/0", "/1"),
        "CELERY_BROKER_URL": redis_server.url,
        "LOG_LEVEL": "ERROR",
    }
    web = Gunicorn(env)
    web.start()
    yield redis_server, web
    web.stop()
    redis_server.stop()


@pytest.fixture
def labeler_session():
    task = TaskFactory()
    ComparisonFactory.create_batch(3, task=task)
    user = TaskLabelerFactory(task=task, labeler=UserFactory(username="faulty")).labeler
    session = requests.Session()
    session.headers["Authorization"] = f"Token {Token.objects.create(user=user).key}"
    return task, user, session


def test_label_post_succeeds_with_redis_down(stack, labeler_session):
    redis_server, web = stack
    task, user, session = labeler_session
    lease = session.get(f"{web.base}/api/v1/tasks/{task.id}/next/", timeout=10).json()
    redis_server.stop()  # broker and cache gone

    response = session.post(
        f"{web.base}/api/v1/labels/",
        json={"comparison_id": lease["comparison_id"], "kind": "choice", "choice": 1},
        timeout=60,  # a guard against a hung request, not a measure of speed
    )
    assert response.status_code == 201, response.text
    assert Label.objects.filter(labeler=user, comparison_id=lease["comparison_id"]).exists()

    # Redis back: labeling goes on, and the stored label is returned on resubmission.
    redis_server.start()
    again = session.post(
        f"{web.base}/api/v1/labels/",
        json={"comparison_id": lease["comparison_id"], "kind": "choice", "choice": 1},
        timeout=30,
    )
    assert again.status_code == 200
    assert session.get(f"{web.base}/api/v1/tasks/{task.id}/next/", timeout=10).status_code == 200


def test_healthz_reports_the_broker_down(stack):
    redis_server, web = stack
    redis_server.stop()
    response = requests.get(f"{web.base}/healthz", timeout=30)
    assert response.status_code == 503
    assert "broker" in response.json()["failed"]


def test_web_restart_keeps_leases(stack, labeler_session):
    _, web = stack
    task, _, session = labeler_session
    first = session.get(f"{web.base}/api/v1/tasks/{task.id}/next/", timeout=10).json()
    web.stop()
    web.start()
    second = session.get(f"{web.base}/api/v1/tasks/{task.id}/next/", timeout=10).json()
    assert second["assignment_id"] == first["assignment_id"]
    assert second["comparison_id"] == first["comparison_id"]
    assert [s["index"] for s in second["samples"]] == [s["index"] for s in first["samples"]]
