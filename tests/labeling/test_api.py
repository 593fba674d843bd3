"""The labeling API over HTTP: auth, visibility, next, labels, exports, CSRF, throttles."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.models import Label, Task
from tests.factories import (
    ComparisonFactory,
    InstructionsFactory,
    TaskFactory,
    TaskLabelerFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-123"


@pytest.fixture(autouse=True)
def _fresh_throttles():
    cache.clear()
    yield
    cache.clear()


def member(task: Task, **kwargs):
    user = UserFactory(**kwargs)
    TaskLabelerFactory(task=task, labeler=user)
    return user


def token_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def task() -> Task:
    task = TaskFactory(k=3, labels_per_comparison=1)
    InstructionsFactory(task=task, version=3, text="Pick the funniest.")
    ComparisonFactory.create_batch(2, task=task)
    return task


def post_label(client, comparison_id, kind="choice", choice=1, ms=500):
    body = {"comparison_id": comparison_id, "kind": kind, "choice": choice, "time_spent_ms": ms}
    return client.post("/api/v1/labels/", body, format="json")


def test_token_endpoint():
    user = UserFactory()
    client = APIClient()
    response = client.post(
        "/api/v1/auth/token/", {"username": user.username, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["token"] == Token.objects.get(user=user).key
    bad = client.post(
        "/api/v1/auth/token/", {"username": user.username, "password": "nope"}, format="json"
    )
    assert bad.status_code == 400 and "detail" in bad.json()


def test_anonymous_is_refused(task):
    assert APIClient().get("/api/v1/tasks/").status_code in (401, 403)


def test_task_list_shows_only_my_active_tasks_with_progress(task):
    other = TaskFactory()
    TaskFactory(status=Task.Status.DRAFT)
    user = member(task)
    data = token_client(user).get("/api/v1/tasks/").json()
    assert data == [
        {
            "id": task.pk,
            "name": task.name,
            "kind": "continuation",
            "k": 3,
            "instructions": {"version": 3, "text": "Pick the funniest."},
            "progress": {"labeled_by_me": 0, "remaining": 2},
        }
    ]
    staff = UserFactory(is_staff=True)
    ids = [t["id"] for t in token_client(staff).get("/api/v1/tasks/").json()]
    assert ids == [task.pk, other.pk]
    assert token_client(staff).get("/api/v1/tasks/").json()[1]["instructions"] is None


def test_next_label_until_nothing_is_left(task):
    user = member(task)
    client = token_client(user)
    first = client.get(f"/api/v1/tasks/{task.pk}/next/")
    assert first.status_code == 200
    lease = first.json()
    assert set(lease) == {
        "assignment_id", "comparison_id", "task_id", "prompt", "article", "copies_highlighted",
        "samples", "expires_at", "progress",
    }  # fmt: skip
    assert lease["article"] is None and lease["copies_highlighted"] is False  # continuation
    assert all(s["copied"] is None for s in lease["samples"])
    assert sorted(s["index"] for s in lease["samples"]) == [0, 1, 2]
    assert lease["progress"] == {"labeled_by_me": 0, "remaining": 1}
    # Re-asking returns the same lease.
    assert (
        client.get(f"/api/v1/tasks/{task.pk}/next/").json()["assignment_id"]
        == (lease["assignment_id"])
    )
    shown_first = lease["samples"][0]["index"]
    created = post_label(client, lease["comparison_id"], choice=shown_first)
    assert created.status_code == 201
    assert created.json()["choice"] == shown_first
    second = client.get(f"/api/v1/tasks/{task.pk}/next/").json()
    assert second["comparison_id"] != lease["comparison_id"]
    assert second["progress"]["labeled_by_me"] == 1
    assert post_label(client, second["comparison_id"], kind="skip", choice=None).status_code == 201
    assert client.get(f"/api/v1/tasks/{task.pk}/next/").status_code == 204


def test_resubmission_semantics(task):
    client = token_client(member(task))
    comparison_id = client.get(f"/api/v1/tasks/{task.pk}/next/").json()["comparison_id"]
    first = post_label(client, comparison_id, choice=2)
    same = post_label(client, comparison_id, choice=2)
    different = post_label(client, comparison_id, choice=0)
    assert (first.status_code, same.status_code, different.status_code) == (201, 200, 409)
    assert same.json() == first.json()
    assert different.json()["code"] == "conflict" and different.json()["detail"]
    assert Label.objects.count() == 1


def test_label_errors_are_clear_4xx(task):
    user = member(task)
    client = token_client(user)
    comparisons = list(task.comparisons.values_list("pk", flat=True))
    no_lease = post_label(client, comparisons[0])
    assert no_lease.status_code == 409 and no_lease.json()["code"] == "no_lease"
    leased = client.get(f"/api/v1/tasks/{task.pk}/next/").json()["comparison_id"]
    out_of_range = post_label(client, leased, choice=3)
    assert out_of_range.status_code == 400 and "between 0 and 2" in out_of_range.json()["detail"]
    other = ComparisonFactory(task=TaskFactory())
    assert post_label(client, other.pk).status_code == 404
    bad_json = client.post("/api/v1/labels/", "{not json", content_type="application/json")
    assert bad_json.status_code == 400 and "detail" in bad_json.json()
    not_a_dict = client.post("/api/v1/labels/", "[1, 2]", content_type="application/json")
    assert not_a_dict.status_code == 400
    missing = client.post("/api/v1/labels/", {"kind": "choice"}, format="json")
    assert missing.status_code == 400 and "comparison_id" in missing.json()["errors"]
    bad_kind = post_label(client, leased, kind="best")
    assert bad_kind.status_code == 400
    negative_time = post_label(client, leased, ms=-5)
    assert negative_time.status_code == 400
    assert not Label.objects.exists()


def test_labelers_cannot_reach_other_tasks_or_exports(task):
    user = member(task)
    client = token_client(user)
    other = TaskFactory()
    ComparisonFactory(task=other)
    assert client.get(f"/api/v1/tasks/{other.pk}/next/").status_code == 404
    assert client.get("/api/v1/tasks/999999/next/").status_code == 404
    paused = TaskFactory(status=Task.Status.PAUSED)
    ComparisonFactory(task=paused)
    TaskLabelerFactory(task=paused, labeler=user)
    assert client.get(f"/api/v1/tasks/{paused.pk}/next/").status_code == 404
    export = client.get(f"/api/v1/tasks/{task.pk}/export/?format=raw")
    assert export.status_code == 403 and "detail" in export.json()


def test_staff_export_streams_jsonl(task):
    user = member(task)
    client = token_client(user)
    lease = client.get(f"/api/v1/tasks/{task.pk}/next/").json()
    post_label(client, lease["comparison_id"], choice=1)
    staff = token_client(UserFactory(is_staff=True))
    for fmt, rows in (("paper", 1), ("pairwise", 2), ("raw", 1)):
        response = staff.get(f"/api/v1/tasks/{task.pk}/export/?format={fmt}")
        assert response.status_code == 200, fmt
        assert response.streaming
        assert response["Content-Type"] == "application/jsonl"
        lines = b"".join(response.streaming_content).decode().splitlines()
        assert len(lines) == rows
        assert all(isinstance(json.loads(line), dict) for line in lines)
    assert staff.get(f"/api/v1/tasks/{task.pk}/export/?format=csv").status_code == 400
    assert staff.get("/api/v1/tasks/999999/export/?format=raw").status_code == 404


def test_session_post_without_csrf_is_refused(task):
    user = member(task)
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username=user.username, password=PASSWORD)
    lease = client.get(f"/api/v1/tasks/{task.pk}/next/").json()
    response = post_label(client, lease["comparison_id"])
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not Label.objects.exists()
    # With the token the labeling page sets as a cookie, the same request goes through.
    assert client.get(f"/tasks/{task.pk}/label/").status_code == 200
    csrf = client.cookies["csrftoken"]
    body = {"comparison_id": lease["comparison_id"], "kind": "choice", "choice": 0}
    ok = client.post("/api/v1/labels/", body, format="json", HTTP_X_CSRFTOKEN=csrf.value)
    assert ok.status_code == 201


def test_throttles_use_the_scoped_rates(task, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"label_submit": "2/min", "lease": "3/min", "login": "1/min"},
    }
    client = token_client(member(task))
    codes = [client.get(f"/api/v1/tasks/{task.pk}/next/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_next_costs_a_constant_number_of_queries(task, django_assert_max_num_queries):
    ComparisonFactory.create_batch(50, task=task)
    client = token_client(member(task))
    client.get(f"/api/v1/tasks/{task.pk}/next/")  # warm up
    with django_assert_max_num_queries(11):
        lease = client.get(f"/api/v1/tasks/{task.pk}/next/").json()
    with django_assert_max_num_queries(11):
        assert post_label(client, lease["comparison_id"]).status_code == 201
    with django_assert_max_num_queries(11):
        assert client.get(f"/api/v1/tasks/{task.pk}/next/").status_code == 200


def test_openapi_schema_is_served(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    body = response.content.decode()
    for path in ("/api/v1/labels/", "/api/v1/tasks/{task_id}/next/", "/api/v1/auth/token/"):
        assert path in body
