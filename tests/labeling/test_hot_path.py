"""The labeling hot path's economies: query counts, the token cache, the counting throttle,
the cached ``remaining`` (the debounced loop tick: tests/training/test_hooks.py)."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.api.authentication import clear_token_cache
from labeling.api.serializers import LabelSerializer, LeaseSerializer, label_payload
from labeling.models import Assignment, Label, Task
from labeling.selectors import remaining_estimate
from tests.factories import (
    ComparisonFactory,
    InstructionsFactory,
    TaskFactory,
    TaskLabelerFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_caches():
    cache.clear()
    clear_token_cache()
    yield
    cache.clear()
    clear_token_cache()


@pytest.fixture
def task() -> Task:
    task = TaskFactory(k=4, labels_per_comparison=1)
    InstructionsFactory(task=task, version=2, text="Pick one.")
    ComparisonFactory.create_batch(20, task=task)
    return task


def labeler_client(task: Task) -> tuple[APIClient, Token]:
    user = UserFactory()
    TaskLabelerFactory(task=task, labeler=user)
    token = Token.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client, token


def test_a_pair_costs_a_few_constant_queries(task, django_assert_max_num_queries):
    client, _ = labeler_client(task)
    # next: token (cached after the first request), task + membership + progress, lease lookup,
    # the claim (one statement on PostgreSQL, three on SQLite), the lease insert, the cached
    # remaining count, the transaction's two statements.
    next_queries = 8 if connection.vendor == "postgresql" else 10
    # submit: the locked lease with membership and instructions, then the label INSERT with
    # the lease and counter UPDATEs (one statement on PostgreSQL, three on SQLite), BEGIN/COMMIT.
    submit_queries = 4 if connection.vendor == "postgresql" else 7
    for _ in range(3):
        with django_assert_max_num_queries(next_queries):
            lease = client.get(f"/api/v1/tasks/{task.pk}/next/").json()
        body = {"comparison_id": lease["comparison_id"], "kind": "choice", "choice": 1}
        with django_assert_max_num_queries(submit_queries):
            response = client.post("/api/v1/labels/", body, format="json")
        assert response.status_code == 201


def test_plain_payloads_match_the_serializers(task):
    client, _ = labeler_client(task)
    lease = client.get(f"/api/v1/tasks/{task.pk}/next/").json()
    assignment = Assignment.objects.get(pk=lease["assignment_id"])
    assert lease == LeaseSerializer(LeaseSerializer.payload(assignment, lease["progress"])).data
    body = {"comparison_id": lease["comparison_id"], "kind": "choice", "choice": 3}
    created = client.post("/api/v1/labels/", body, format="json").json()
    label = Label.objects.select_related("instructions_version").get(pk=created["id"])
    assert created == LabelSerializer(label).data == label_payload(label)
    assert created["instructions_version"] == 2


@pytest.fixture
def clock(monkeypatch):
    """``advance(seconds)`` moves ``time.time`` and ``time.monotonic`` forward, so cache
    expiries are tested without sleeping."""
    offset = 0.0
    real_time, real_monotonic = time.time, time.monotonic
    monkeypatch.setattr(time, "time", lambda: real_time() + offset)
    monkeypatch.setattr(time, "monotonic", lambda: real_monotonic() + offset)

    def advance(seconds: float) -> None:
        nonlocal offset
        offset += seconds

    return advance


def test_a_revoked_token_stops_working_within_the_cache_ttl(task, settings, clock):
    settings.API_TOKEN_CACHE_SECONDS = 5
    client, token = labeler_client(task)
    assert client.get("/api/v1/tasks/").status_code == 200
    token.delete()
    clock(4)
    assert client.get("/api/v1/tasks/").status_code == 200  # still cached
    clock(1.5)
    assert client.get("/api/v1/tasks/").status_code in (401, 403)


def test_without_the_token_cache_revocation_is_immediate(task, settings):
    settings.API_TOKEN_CACHE_SECONDS = 0
    client, token = labeler_client(task)
    assert client.get("/api/v1/tasks/").status_code == 200
    token.delete()
    assert client.get("/api/v1/tasks/").status_code in (401, 403)


def test_throttle_counts_per_labeler_and_scope(task, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"lease": "3/min", "label_submit": "100/min", "login": "5/min"},
    }
    alice, _ = labeler_client(task)
    bob, _ = labeler_client(task)
    codes = [alice.get(f"/api/v1/tasks/{task.pk}/next/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = alice.get(f"/api/v1/tasks/{task.pk}/next/")
    assert refused.status_code == 429 and int(refused["Retry-After"]) <= 60
    assert bob.get(f"/api/v1/tasks/{task.pk}/next/").status_code == 200


def test_remaining_is_task_wide_and_refreshed_after_its_ttl(task, settings, clock):
    settings.LABELING_REMAINING_CACHE_SECONDS = 5
    client, _ = labeler_client(task)
    first = client.get(f"/api/v1/tasks/{task.pk}/next/").json()
    assert first["progress"]["remaining"] == 19
    ComparisonFactory.create_batch(5, task=task)
    clock(4)
    assert remaining_estimate(task_id=task.pk) == 19  # cached
    clock(1.5)
    assert remaining_estimate(task_id=task.pk) == 24


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"comparison_id": 7, "kind": "choice", "choice": 1}, "fast"),
        ({"comparison_id": 7, "kind": "choice", "choice": 1, "time_spent_ms": 900}, "fast"),
        ({"comparison_id": 7, "kind": "skip", "choice": None}, "fast"),
        ({"comparison_id": 7, "kind": "none"}, "fast"),
        (
            {"comparison_id": 2**63 - 1, "kind": "choice", "choice": 0, "time_spent_ms": 2**31 - 1},
            "fast",
        ),
        # Not canonical, but the serializer coerces or ignores: the slow path accepts them.
        ({"comparison_id": "7", "kind": "choice", "choice": 1}, "slow"),
        ({"comparison_id": 7.0, "kind": "choice", "choice": 1}, "slow"),
        ({"comparison_id": 7, "kind": "choice", "extra": 1}, "slow"),
        # Refused by both: the serializer's 400.
        ({"comparison_id": True, "kind": "choice", "choice": 1}, "refused"),
        ({"comparison_id": 0, "kind": "choice", "choice": 1}, "refused"),
        ({"comparison_id": 2**63, "kind": "choice", "choice": 1}, "refused"),
        ({"comparison_id": 7, "kind": "best", "choice": 1}, "refused"),
        ({"comparison_id": 7, "kind": ["choice"], "choice": 1}, "refused"),
        ({"comparison_id": 7, "kind": "choice", "choice": -1}, "refused"),
        ({"comparison_id": 7, "kind": "choice", "choice": False}, "refused"),
        ({"comparison_id": 7, "kind": "choice", "time_spent_ms": -5}, "refused"),
        ({"comparison_id": 7, "kind": "choice", "time_spent_ms": 2**31}, "refused"),
        ({"kind": "choice", "choice": 1}, "refused"),
        ([], "refused"),
        ("x", "refused"),
        (None, "refused"),
    ],
)
def test_the_submit_fast_path_agrees_with_the_serializer(body, expected):
    from labeling.api.serializers import LabelSubmitSerializer
    from labeling.api.views import canonical_label_submit

    fast = canonical_label_submit(body)
    serializer = LabelSubmitSerializer(data=body)
    valid = serializer.is_valid()
    assert (fast is not None) == (expected == "fast")
    assert valid == (expected != "refused"), serializer.errors
    if fast is not None:
        assert fast == dict(serializer.validated_data)


def test_a_bad_submit_body_gets_the_serializers_400(task):
    client, _ = labeler_client(task)
    for body in ({"comparison_id": "x", "kind": "choice"}, {"kind": "best"}, [1, 2]):
        response = client.post("/api/v1/labels/", body, format="json")
        assert response.status_code == 400, body
        assert response.json()["code"] == "invalid"
