"""/healthz: every part checked, the failing one named, liveness without dependencies."""

from __future__ import annotations

import time

import pytest

from config.heartbeat import heartbeat, record_worker_heartbeat, worker_heartbeats

pytestmark = pytest.mark.django_db


def test_liveness_checks_only_the_process(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = client.get("/healthz?live=1")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_all_parts_healthy_gives_200(client, settings, redis_url):
    settings.CELERY_BROKER_URL = redis_url
    record_worker_heartbeat(hostname="celery@test")
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["failed"] == []
    assert set(body["checks"]) == {"database", "broker", "worker"}
    assert body["checks"]["worker"]["workers"] == 1


def test_missing_worker_heartbeat_gives_503_naming_the_worker(client, settings, redis_url):
    settings.CELERY_BROKER_URL = redis_url
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["worker"]
    assert "no worker heartbeat" in body["checks"]["worker"]["error"]


def test_stale_heartbeat_is_a_failure(client, settings, redis_url):
    settings.CELERY_BROKER_URL = redis_url
    settings.HEALTH_WORKER_MAX_AGE = 60
    record_worker_heartbeat(hostname="celery@old", now=time.time() - 61)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "newest 6" in response.json()["checks"]["worker"]["error"]


def test_broker_down_gives_503_naming_the_broker(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    record_worker_heartbeat(hostname="celery@test")
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["broker"]
    assert body["checks"]["database"]["ok"] is True
    assert "ConnectionError" in body["checks"]["broker"]["error"]


def test_database_down_gives_503_naming_the_database(client, settings, redis_url, monkeypatch):
    from config import health

    def broken() -> dict:
        raise RuntimeError("database unreachable")

    monkeypatch.setitem(health.CHECKS, "database", broken)
    settings.CELERY_BROKER_URL = redis_url
    record_worker_heartbeat(hostname="celery@test")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["database"]


def test_heartbeat_task_records_the_worker():
    before = time.time()
    heartbeat.apply()
    after = time.time()
    beats = worker_heartbeats()
    assert len(beats) == 1
    assert before <= next(iter(beats.values())) <= after


def test_old_heartbeats_are_pruned(settings):
    settings.HEALTH_WORKER_MAX_AGE = 10
    record_worker_heartbeat(hostname="gone", now=time.time() - 1000)
    record_worker_heartbeat(hostname="here")
    assert set(worker_heartbeats()) == {"here"}


def test_healthz_rejects_post(client):
    assert client.post("/healthz").status_code == 405
