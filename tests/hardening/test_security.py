"""Hostile labelers: labels they may not give, data they may not read, pages they may not open,
requests without CSRF, floods, and malformed or absurd input (always a 4xx, never a 500)."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

from labeling.models import Assignment, Label
from tests.hardening.conftest import token_client

pytestmark = pytest.mark.django_db


def post_label(api, comparison_id, kind="choice", choice=0, ms=100):
    body = {"comparison_id": comparison_id, "kind": kind, "choice": choice, "time_spent_ms": ms}
    return api.post("/api/v1/labels/", body, format="json")


def lease(api, task) -> dict:
    response = api.get(f"/api/v1/tasks/{task.id}/next/")
    assert response.status_code == 200, response.content
    return response.json()


def assert_4xx_with_detail(response, *statuses: int) -> None:
    assert response.status_code in statuses, (response.status_code, response.content)
    assert response.json().get("detail"), response.content


# --- labels a labeler may not give -------------------------------------------------------------


def test_label_on_a_comparison_leased_to_someone_else_is_refused(alice_task, alice, alice_api):
    carol = token_client(_member(alice_task, "carol"))
    leased = lease(carol, alice_task)
    assert_4xx_with_detail(post_label(alice_api, leased["comparison_id"]), 403, 404, 409)
    assert not Label.objects.filter(labeler=alice).exists()


def test_label_without_any_lease_is_refused(alice_task, alice_api):
    comparison = alice_task.comparisons.first()
    assert_4xx_with_detail(post_label(alice_api, comparison.id), 403, 404, 409)
    assert not Label.objects.exists()


def test_label_on_a_task_not_theirs_is_refused(alice_api, bob_task, bob_api):
    theirs = lease(bob_api, bob_task)  # even a comparison that is leased (to bob)
    assert_4xx_with_detail(post_label(alice_api, theirs["comparison_id"]), 403, 404)
    untouched = bob_task.comparisons.last()
    assert_4xx_with_detail(post_label(alice_api, untouched.id), 403, 404)
    assert not Label.objects.exists()


@pytest.mark.parametrize("choice", [-1, 4, 9, 255, 2**31, 2**63, 10**30])
def test_out_of_range_choice_is_a_400(alice_task, alice_api, choice):
    leased = lease(alice_api, alice_task)
    assert_4xx_with_detail(post_label(alice_api, leased["comparison_id"], choice=choice), 400)
    assert not Label.objects.exists()
    # The lease is still good: a valid label goes through afterwards.
    assert post_label(alice_api, leased["comparison_id"], choice=3).status_code == 201


@pytest.mark.parametrize("comparison_id", [0, -5, 2**31, 2**63 - 1, 2**63, 10**30, "1e9"])
def test_absurd_comparison_ids_are_4xx(alice, alice_api, comparison_id):
    assert_4xx_with_detail(post_label(alice_api, comparison_id), 400, 404, 409)


@pytest.mark.parametrize(
    "body",
    [
        {},
        [],
        [1, 2],
        "choice",
        None,
        {"comparison_id": None, "kind": "choice", "choice": 0},
        {"comparison_id": "one", "kind": "choice", "choice": 0},
        {"comparison_id": 1, "kind": "best", "choice": 0},
        {"comparison_id": 1, "kind": "choice", "choice": "0; DROP TABLE labeling_label"},
        {"comparison_id": 1, "kind": "choice", "choice": 0.5},
        {"comparison_id": 1, "kind": "skip", "choice": 0},
        {"comparison_id": 1, "kind": "choice", "choice": 0, "time_spent_ms": -1},
        {"comparison_id": 1, "kind": "choice", "choice": 0, "time_spent_ms": 10**20},
        {"comparison_id": {"$gt": 0}, "kind": "choice", "choice": 0},
        {"comparison_id": 1, "kind": ["choice"], "choice": 0},
    ],
)
def test_malformed_label_bodies_are_4xx(alice, alice_api, body):
    response = alice_api.post("/api/v1/labels/", json.dumps(body), content_type="application/json")
    assert_4xx_with_detail(response, 400, 404, 409)
    assert not Label.objects.exists()


@pytest.mark.parametrize(
    ("payload", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b'{"comparison_id": 1, "kind": "choice"' + b" " * 10, "application/json"),
        (b"<xml/>", "application/xml"),
        (b"comparison_id=1&kind=choice&choice=0", "text/plain"),
    ],
)
def test_undecodable_bodies_are_4xx(alice, alice_api, payload, content_type):
    response = alice_api.generic("POST", "/api/v1/labels/", payload, content_type=content_type)
    assert 400 <= response.status_code < 500, response.content


def test_huge_body_is_refused_without_a_500(alice, alice_api, settings):
    body = json.dumps({"comparison_id": 1, "kind": "choice", "choice": 0, "pad": "x" * 3_000_000})
    response = alice_api.post("/api/v1/labels/", body, content_type="application/json")
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize("task_id", [0, 2**31, 2**63 - 1, 2**63, 10**30])
def test_absurd_task_ids_are_404(alice, alice_api, task_id):
    assert alice_api.get(f"/api/v1/tasks/{task_id}/next/").status_code == 404


# --- data a labeler may not read ----------------------------------------------------------------


def test_labelers_see_nothing_of_each_other(alice_task, alice, alice_api, bob_task, bob, bob_api):
    mine = lease(alice_api, alice_task)
    assert post_label(alice_api, mine["comparison_id"], choice=2).status_code == 201

    listed = bob_api.get("/api/v1/tasks/").json()
    assert [t["id"] for t in listed] == [bob_task.id]
    assert bob_api.get(f"/api/v1/tasks/{alice_task.id}/next/").status_code == 404
    for fmt in ("paper", "pairwise", "raw"):
        export = bob_api.get(f"/api/v1/tasks/{alice_task.id}/export/?format={fmt}")
        assert export.status_code == 403
        export_own = bob_api.get(f"/api/v1/tasks/{bob_task.id}/export/?format={fmt}")
        assert export_own.status_code == 403  # exports are for researchers only
    # No endpoint lists or reads labels; resubmitting alice's answer reveals nothing either.
    assert bob_api.get("/api/v1/labels/").status_code == 405
    probe = post_label(bob_api, mine["comparison_id"], choice=2)
    assert probe.status_code in (403, 404)
    assert "labeler" not in probe.json() and "alice" not in probe.json()["detail"]


def test_a_lease_is_served_only_to_its_holder(alice_task, alice_api):
    carol = token_client(_member(alice_task, "carol"))
    first = lease(alice_api, alice_task)
    second = lease(carol, alice_task)
    assert first["comparison_id"] != second["comparison_id"]
    assert Assignment.objects.filter(comparison_id=first["comparison_id"]).count() == 1


def test_labelers_cannot_open_research_pages_or_admin(alice_task, alice):
    client = Client()
    client.force_login(alice)
    for url in ("/research/", f"/research/tasks/{alice_task.id}/", "/admin/"):
        response = client.get(url)
        assert response.status_code in (302, 403, 404), url
        if response.status_code == 302:
            assert "login" in response["Location"], url
    export = client.get(f"/research/tasks/{alice_task.id}/export/raw.jsonl")
    assert export.status_code in (302, 403, 404)


def test_anonymous_gets_nothing(alice_task):
    api = APIClient()
    for url in ("/api/v1/tasks/", f"/api/v1/tasks/{alice_task.id}/next/"):
        assert api.get(url).status_code in (401, 403)
    assert post_label(api, 1).status_code in (401, 403)
    page = Client().get(f"/tasks/{alice_task.id}/label/")
    assert page.status_code == 302 and "login" in page["Location"]


# --- CSRF ---------------------------------------------------------------------------------------


def test_session_post_without_csrf_token_is_403(alice_task, alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    leased = client.get(f"/api/v1/tasks/{alice_task.id}/next/").json()
    body = {"comparison_id": leased["comparison_id"], "kind": "choice", "choice": 0}
    response = client.post("/api/v1/labels/", body, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not Label.objects.exists()
    # With the token from the cookie (as the page's JS sends it) the same request goes through.
    client.get(f"/tasks/{alice_task.id}/label/")
    token = client.cookies["csrftoken"].value
    ok = client.post(
        "/api/v1/labels/", body, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert ok.status_code == 201, ok.content


def test_login_and_logout_forms_need_csrf(alice):
    client = Client(enforce_csrf_checks=True)
    login = client.post("/accounts/login/", {"username": "alice", "password": "pw-for-tests-123"})
    assert login.status_code == 403
    client.force_login(alice)
    assert client.post("/accounts/logout/").status_code == 403


# --- floods -------------------------------------------------------------------------------------


def _rates(settings, **rates: str) -> None:
    merged = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **rates}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": merged}


def test_submit_flood_gets_429(alice_task, alice_api, settings):
    _rates(settings, label_submit="5/min")
    leased = lease(alice_api, alice_task)
    statuses = [post_label(alice_api, leased["comparison_id"]).status_code for _ in range(8)]
    assert statuses[0] == 201
    assert statuses[1:5] == [200] * 4  # identical resubmissions are idempotent
    assert statuses[5:] == [429] * 3
    assert Label.objects.count() == 1


def test_lease_flood_gets_429(alice_task, alice_api, settings):
    _rates(settings, lease="3/min")
    statuses = [alice_api.get(f"/api/v1/tasks/{alice_task.id}/next/").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


def test_flood_of_one_labeler_does_not_throttle_another(alice_task, alice_api, settings):
    _rates(settings, lease="2/min")
    carol = token_client(_member(alice_task, "carol"))
    for _ in range(3):
        alice_api.get(f"/api/v1/tasks/{alice_task.id}/next/")
    assert carol.get(f"/api/v1/tasks/{alice_task.id}/next/").status_code == 200


def test_token_endpoint_is_throttled(alice, settings):
    _rates(settings, login="3/min")
    api = APIClient()
    statuses = [
        api.post("/api/v1/auth/token/", {"username": "alice", "password": "guess"}).status_code
        for _ in range(5)
    ]
    assert statuses == [400, 400, 400, 429, 429]


def _member(task, username):
    from tests.factories import TaskLabelerFactory, UserFactory

    return TaskLabelerFactory(task=task, labeler=UserFactory(username=username)).labeler
