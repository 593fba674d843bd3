"""Login attempts are limited per client IP and username (10/min by default)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from config.login import parse_rate, register_attempt

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    return get_user_model().objects.create_user("alice", password="right-password-123")


def attempt(client, username: str, password: str, ip: str = "10.0.0.1"):
    return client.post(
        "/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=ip
    )


def test_eleventh_attempt_in_a_minute_is_refused_even_with_the_right_password(client, alice):
    for _ in range(10):
        response = attempt(client, "alice", "wrong")
        assert response.status_code == 200  # the form again, with "enter a correct username"
    refused = attempt(client, "alice", "right-password-123")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert b"Too many login attempts" in refused.content
    assert "_auth_user_id" not in client.session


def test_limit_is_per_username_and_ip(client, alice):
    for _ in range(10):
        attempt(client, "alice", "wrong")
    # Another IP, or another username from the same IP, is not blocked by alice's attempts.
    assert attempt(client, "alice", "right-password-123", ip="10.0.0.2").status_code == 302
    assert attempt(client, "bob", "whatever").status_code == 200


def test_successful_login_within_the_limit(client, alice):
    response = attempt(client, "alice", "right-password-123")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_admin_login_is_limited_too(client, alice):
    for _ in range(10):
        client.post("/admin/login/", {"username": "root", "password": "x"}, REMOTE_ADDR="10.9.9.9")
    refused = client.post(
        "/admin/login/", {"username": "root", "password": "x"}, REMOTE_ADDR="10.9.9.9"
    )
    assert refused.status_code == 429


def test_rate_comes_from_settings(client, alice, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "login": "2/min",
        },
    }
    attempt(client, "alice", "wrong")
    attempt(client, "alice", "wrong")
    assert attempt(client, "alice", "wrong").status_code == 429


def test_window_resets():
    for _ in range(10):
        assert register_attempt(ip="1.2.3.4", username="u", now=60.0)[0]
    assert not register_attempt(ip="1.2.3.4", username="u", now=61.0)[0]
    assert register_attempt(ip="1.2.3.4", username="u", now=121.0)[0]


@pytest.mark.parametrize(
    ("rate", "parsed"), [("10/min", (10, 60)), ("5/s", (5, 1)), ("100/hour", (100, 3600))]
)
def test_parse_rate(rate, parsed):
    assert parse_rate(rate) == parsed
