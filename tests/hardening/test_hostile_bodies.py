"""Bodies that cannot be parsed, on every endpoint of the URLconf: never a 5xx; on the API a
400 with a message. The endpoints are walked from the URLconf, so a new one is covered (or
this test names the URL parameter it needs a sample value for)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from labeling.api.parsers import MAX_JSON_DEPTH
from tests.hardening.conftest import token_client
from tests.hardening.urlconf import drf_body_methods, endpoints

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

DEPTH = 100_000
DEEP_ARRAY = b"[" * DEPTH + b"]" * DEPTH
DEEP_OBJECT = b'{"a":' * DEPTH + b"1" + b"}" * DEPTH
JUST_TOO_DEEP = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
DEEP_BODIES = {"array": DEEP_ARRAY, "object": DEEP_OBJECT, "just-too-deep": JUST_TOO_DEEP}


@pytest.fixture
def clients(alice, django_user_model) -> dict[str, Client]:
    staff = django_user_model.objects.create_superuser("root", password="pw-for-tests-123")
    staff_session = Client(raise_request_exception=False)
    staff_session.force_login(staff)
    labeler_session = Client(raise_request_exception=False)
    labeler_session.force_login(alice)
    labeler_token = token_client(alice)
    labeler_token.raise_request_exception = False
    staff_token = token_client(staff)
    staff_token.raise_request_exception = False
    return {
        "anonymous": Client(raise_request_exception=False),
        "labeler-session": labeler_session,
        "labeler-token": labeler_token,
        "staff-session": staff_session,
        "staff-token": staff_token,
    }


def _message(response) -> str:
    try:
        return str(json.loads(response.content)["detail"])
    except (ValueError, KeyError, TypeError):
        return ""


def test_the_walk_covers_the_api_and_the_pages(samples):
    paths = {path for path, _ in endpoints(samples)}
    for expected in ("/api/v1/labels/", "/api/v1/auth/token/", "/accounts/login/", "/metrics"):
        assert expected in paths
    assert len(paths) > 50  # the admin's too


@pytest.mark.parametrize("shape", list(DEEP_BODIES))
def test_deep_json_on_every_endpoint_is_never_a_server_error(
    shape, samples, clients, high_throttles
):
    body = DEEP_BODIES[shape]
    failures, parsed = [], 0
    for path, pattern in endpoints(samples):
        drf_methods = drf_body_methods(pattern)
        methods = drf_methods or ["post"]
        for who, client in clients.items():
            for method in methods:
                response = client.generic(
                    method.upper(), path, body, content_type="application/json"
                )
                where = f"{method.upper()} {path} as {who}: {response.status_code}"
                if response.status_code >= 500:
                    failures.append(where)
                api_400 = path.startswith("/api/") and response.status_code == 400
                if api_400 and not _message(response):
                    failures.append(f"{where} without a message")
                # Whoever may use the endpoint gets the parser's 400 (staff may use them all).
                if method in drf_methods and who.startswith("staff"):
                    parsed += 1
                    if response.status_code != 400 or "nested" not in _message(response):
                        failures.append(f"{where} {response.content[:120]!r}")
    assert failures == []
    assert parsed >= 4  # token and labels endpoints, by token and by session


def test_deep_json_to_labels_gets_a_400_naming_the_depth(alice_api, high_throttles):
    response = alice_api.post("/api/v1/labels/", DEEP_ARRAY, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"] == f"JSON nested more than {MAX_JSON_DEPTH} levels deep"


def test_json_at_the_depth_limit_is_parsed(alice_api, high_throttles):
    deepest = {"comparison_id": json.loads("[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1))}
    response = alice_api.post("/api/v1/labels/", deepest, format="json")
    assert response.status_code == 400
    # The serializer's message, not the parser's.
    assert "comparison_id" in response.json()["errors"]


HOSTILE = {
    "oversize": ("application/json", b'{"a": "' + b"x" * 3_000_000 + b'"}', "larger than"),
    "oversize-form": ("application/x-www-form-urlencoded", b"a=" + b"x" * 3_000_000, "larger than"),
    "oversize-multipart": (
        "multipart/form-data; boundary=zz",
        b'--zz\r\nContent-Disposition: form-data; name="f"; filename="f"\r\n\r\n'
        + b"x" * 3_000_000
        + b"\r\n--zz--\r\n",
        "larger than",
    ),
    "bad-utf8": ("application/json", b'{"username": "\xff\xfe"}', "not valid utf-8"),
    "bad-charset": ("application/json; charset=rot13", b"{}", "charset"),
    "utf16-claimed-utf8": ("application/json", '{"a": 1}'.encode("utf-16"), "not valid utf-8"),
    "broken-multipart": ("multipart/form-data", b"--zz\r\nno boundary", "boundary"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
@pytest.mark.parametrize("who", ["anonymous", "staff-token", "labeler-token"])
def test_unparsable_bodies_on_every_api_endpoint(name, who, samples, clients, high_throttles):
    content_type, body, phrase = HOSTILE[name]
    failures = []
    for path, pattern in endpoints(samples):
        if not path.startswith("/api/"):
            continue
        for method in drf_body_methods(pattern) or ["post"]:
            response = clients[who].generic(method.upper(), path, body, content_type=content_type)
            where = f"{method.upper()} {path}: {response.status_code} {response.content[:160]!r}"
            unclear = response.status_code == 400 and phrase not in _message(response)
            if response.status_code >= 500 or unclear:
                failures.append(where)
    assert failures == []


@pytest.mark.parametrize("name", list(HOSTILE))
def test_the_token_endpoint_refuses_each_unparsable_body_with_a_message(name, high_throttles):
    content_type, body, phrase = HOSTILE[name]
    response = Client().generic("POST", "/api/v1/auth/token/", body, content_type=content_type)
    assert response.status_code == 400
    assert phrase in _message(response)
