"""Login limits on every password check: failures per username across addresses and per
address across usernames, and lockouts that double (labeling/services/login_limits.py)."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from labeling.services.login_limits import (
    LoginLimits,
    client_address,
    record_failure,
    seconds_locked_out,
)

pytestmark = pytest.mark.django_db

RIGHT = "right-password-123"


@pytest.fixture
def alice():
    return get_user_model().objects.create_user("alice", password=RIGHT)


@pytest.fixture
def clock(monkeypatch):
    """time.time() under the test's control (the in-memory cache expires keys by it too)."""
    now = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    return now


def attempt(client, username: str, password: str, ip: str = "10.0.0.1"):
    return client.post(
        "/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=ip
    )


def test_a_username_is_locked_after_ten_failures_from_ten_addresses(client, alice):
    for i in range(10):
        assert attempt(client, "alice", "wrong", ip=f"10.0.1.{i}").status_code == 200
    refused = attempt(client, "alice", RIGHT, ip="10.0.2.1")  # a new address, the right password
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert b"Too many failed logins" in refused.content
    assert "_auth_user_id" not in client.session


def test_an_address_is_locked_after_twenty_failures_across_usernames(client, alice):
    for i in range(20):
        assert attempt(client, f"user{i}", "Spring2026!", ip="10.0.0.9").status_code == 200
    assert attempt(client, "alice", RIGHT, ip="10.0.0.9").status_code == 429
    # Another address is not locked, and alice's own count is untouched.
    assert attempt(client, "alice", RIGHT, ip="10.0.0.10").status_code == 302


def test_below_the_limits_the_right_password_logs_in(client, alice):
    for _ in range(9):
        attempt(client, "alice", "wrong")
    response = attempt(client, "alice", RIGHT)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_successes_and_missing_passwords_count_nothing(client, alice):
    for _ in range(25):
        client.post("/accounts/login/", {"username": "alice"}, REMOTE_ADDR="10.0.0.1")
        assert attempt(client, "alice", RIGHT).status_code == 302
        client.logout()
    assert seconds_locked_out(address="10.0.0.1", username="alice") == 0


def test_the_lockout_doubles_and_is_forgotten_after_a_quiet_day(clock):
    limits = LoginLimits.from_settings()
    lengths = []
    for _ in range(4):
        for _ in range(limits.per_username):
            started = record_failure(address=f"10.0.0.{len(lengths)}", username="alice")
        lengths.append(started)
        assert seconds_locked_out(address="10.9.9.9", username="alice") == started
        clock[0] += started - 1
        assert seconds_locked_out(address="10.9.9.9", username="alice") == 1
        clock[0] += 1
        assert seconds_locked_out(address="10.9.9.9", username="alice") == 0
    assert lengths == [60, 120, 240, 480]
    clock[0] += limits.memory + 1
    for _ in range(limits.per_username):
        started = record_failure(address="10.0.0.1", username="alice")
    assert started == 60


def test_the_lockout_is_capped():
    limits = LoginLimits.from_settings()
    assert limits.lockout_seconds(1) == 60
    assert limits.lockout_seconds(11) == 60 * 1024
    assert limits.lockout_seconds(12) == 86400
    assert limits.lockout_seconds(1000) == 86400


def test_failures_while_locked_out_are_not_counted_and_do_not_check_the_password(client, alice):
    for i in range(10):
        attempt(client, "alice", "wrong", ip=f"10.0.1.{i}")
    for _ in range(30):
        assert attempt(client, "alice", "wrong", ip="10.0.3.1").status_code == 429
    # The address was never counted: its 30 refused attempts reached no limit of its own.
    assert seconds_locked_out(address="10.0.3.1", username="bob") == 0


def test_usernames_count_case_insensitively(client, alice):
    for i, name in enumerate(["alice", "ALICE", "Alice ", "aLiCe"] * 3):
        attempt(client, name, "wrong", ip=f"10.0.4.{i}")
    assert attempt(client, "alice", RIGHT, ip="10.0.5.1").status_code == 429


def test_admin_login_counts_failures_and_refuses_when_locked_out(client, alice):
    for i in range(10):
        response = client.post(
            "/admin/login/", {"username": "root", "password": "x"}, REMOTE_ADDR=f"10.9.0.{i}"
        )
        assert response.status_code == 200
    refused = client.post(
        "/admin/login/", {"username": "root", "password": "x"}, REMOTE_ADDR="10.9.1.1"
    )
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0


def test_the_token_endpoint_shares_the_limits_with_the_login_page(client, alice, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "login": "1000/min",
        },
    }
    api = APIClient()
    for i in range(5):
        attempt(client, "alice", "wrong", ip=f"10.0.6.{i}")
    for i in range(5):
        response = api.post(
            "/api/v1/auth/token/",
            {"username": "alice", "password": "no"},
            REMOTE_ADDR=f"10.0.7.{i}",
        )
        assert response.status_code == 400
    refused = api.post(
        "/api/v1/auth/token/", {"username": "alice", "password": RIGHT}, REMOTE_ADDR="10.0.8.1"
    )
    assert refused.status_code == 429
    assert refused.json()["code"] == "locked_out"
    assert int(refused["Retry-After"]) > 0
    assert attempt(client, "alice", RIGHT, ip="10.0.8.2").status_code == 429


def test_the_token_endpoint_locks_an_address_trying_many_usernames(alice):
    api = APIClient()
    for i in range(20):
        api.post(
            "/api/v1/auth/token/", {"username": f"u{i}", "password": "x"}, REMOTE_ADDR="10.1.0.1"
        )
    refused = api.post(
        "/api/v1/auth/token/", {"username": "alice", "password": RIGHT}, REMOTE_ADDR="10.1.0.1"
    )
    assert refused.status_code == 429


@pytest.mark.parametrize(
    ("meta", "num_proxies", "expected"),
    [
        ({"REMOTE_ADDR": "10.0.0.1"}, None, "10.0.0.1"),
        ({"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "6.6.6.6"}, None, "10.0.0.1"),
        ({"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 7.7.7.7"}, 1, "7.7.7.7"),
        ({"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 7.7.7.7"}, 2, "6.6.6.6"),
        ({"REMOTE_ADDR": "2001:db8:1:2:3:4:5:6"}, None, "2001:db8:1:2::/64"),
        ({"REMOTE_ADDR": "::ffff:10.0.0.7"}, None, "10.0.0.7"),
        ({}, None, "unknown"),
    ],
)
def test_client_address(rf, settings, meta, num_proxies, expected):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": num_proxies}
    request = rf.get("/")
    request.META.pop("REMOTE_ADDR", None)
    request.META.update(meta)
    assert client_address(request) == expected


def test_ipv6_clients_in_one_64_share_a_count(client, alice):
    for i in range(20):
        attempt(client, f"user{i}", "x", ip=f"2001:db8::{i + 1}")
    assert attempt(client, "alice", RIGHT, ip="2001:db8::ffff").status_code == 429
    assert attempt(client, "alice", RIGHT, ip="2001:db8:0:1::1").status_code == 302
