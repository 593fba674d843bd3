"""/metrics: Prometheus text computed from the database and the broker at scrape time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from labeling.models import Assignment, Label
from tests.factories import ComparisonFactory, TaskFactory, UserFactory
from training.models import RewardModelVersion, TrainingRun

pytestmark = pytest.mark.django_db


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def lease(comparison, labeler, *, expires_in: int) -> Assignment:
    return Assignment.objects.create(
        comparison=comparison,
        labeler=labeler,
        task=comparison.task,
        permutation=list(range(comparison.k)),
        expires_at=timezone.now() + timedelta(seconds=expires_in),
    )


@pytest.fixture
def world():
    task = TaskFactory(name="sentiment")
    comparisons = ComparisonFactory.create_batch(3, task=task)
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    done = lease(comparisons[0], alice, expires_in=600)
    done.state = Assignment.State.SUBMITTED
    done.save()
    Label.objects.create(
        comparison=comparisons[0],
        labeler=alice,
        task=task,
        assignment=done,
        kind="choice",
        choice=1,
        k=4,
        display_order=[0, 1, 2, 3],
    )
    Label.objects.create(
        comparison=comparisons[1],
        labeler=bob,
        task=task,
        kind="skip",
        k=4,
        display_order=[3, 2, 1, 0],
    )
    lease(comparisons[1], alice, expires_in=600)
    lease(comparisons[2], bob, expires_in=-5)  # expired: not counted
    comparisons[0].status = "complete"
    comparisons[0].save()
    TrainingRun.objects.create(
        task=task,
        kind="reward",
        status="succeeded",
        metrics=[{"step": 1, "loss": 1.3}, {"step": 2, "loss": 0.9, "accuracy": 0.71}],
    )
    TrainingRun.objects.create(
        task=task,
        kind="policy",
        status="running",
        metrics=[{"step": 5, "kl": 2.5, "reward": 0.4, "note": "text is ignored"}],
    )
    RewardModelVersion.objects.create(task=task, number=1, metrics={"accuracy": 0.68})
    return task


def test_metrics_report_labels_leases_comparisons_and_runs(client, world, settings, redis_url):
    settings.CELERY_BROKER_URL = redis_url
    t = (("name", "sentiment"), ("task", str(world.id)))
    samples = scrape(client)
    assert samples[("preferenceloop_labels_total", (("kind", "choice"), *t))] == 1
    assert samples[("preferenceloop_labels_total", (("kind", "skip"), *t))] == 1
    assert samples[("preferenceloop_active_leases", t)] == 1
    assert samples[("preferenceloop_open_comparisons", t)] == 2
    runs = "preferenceloop_training_runs"
    assert samples[(runs, (("kind", "reward"), *t[:1], ("status", "succeeded"), *t[1:]))] == 1
    step = "preferenceloop_training_step_metric"
    key = (("kind", "reward"), ("metric", "accuracy"), *t)
    assert samples[(step, key)] == pytest.approx(0.71)
    assert samples[(step, (("kind", "policy"), ("metric", "kl"), *t))] == pytest.approx(2.5)
    assert not any(k[0] == step and ("metric", "note") in k[1] for k in samples)
    rm = (("metric", "accuracy"), ("name", "sentiment"), ("task", str(world.id)), ("version", "1"))
    assert samples[("preferenceloop_reward_version_metric", rm)] == pytest.approx(0.68)
    assert samples[("preferenceloop_broker_up", ())] == 1
    assert ("preferenceloop_celery_queue_length", (("queue", "training"),)) in samples


def test_queue_depth_is_read_from_redis(client, settings, redis_url):
    import redis

    settings.CELERY_BROKER_URL = redis_url
    settings.CELERY_TASK_DEFAULT_QUEUE = "ops-test-queue"
    conn = redis.Redis.from_url(redis_url)
    conn.delete("ops-test-queue")
    conn.rpush("ops-test-queue", "a", "b", "c")
    try:
        samples = scrape(client)
    finally:
        conn.delete("ops-test-queue")
    assert samples[("preferenceloop_celery_queue_length", (("queue", "ops-test-queue"),))] == 3


def test_broker_down_still_scrapes(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    samples = scrape(client)
    assert samples[("preferenceloop_broker_up", ())] == 0


def test_scrape_is_a_few_queries(client, world, django_assert_max_num_queries, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    with django_assert_max_num_queries(12):
        response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert b"preferenceloop_labels_total" in response.content


def test_bearer_token_is_required_when_configured(client, monkeypatch):
    monkeypatch.setenv("METRICS_TOKEN", "s3cret-token")
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401
    assert wrong["WWW-Authenticate"].startswith("Bearer")
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert ok.status_code == 200
