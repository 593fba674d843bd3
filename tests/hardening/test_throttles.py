"""Every API endpoint is throttled: the views are walked from the URLconf, so a new endpoint
without a throttle (or with a scope that has no rate) fails here."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from labeling.api.throttling import DEFAULT_SCOPE, FixedWindowScopedThrottle
from tests.hardening.conftest import token_client
from tests.hardening.urlconf import drf_views

pytestmark = pytest.mark.django_db


def _rates(settings, **rates: str) -> None:
    merged = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **rates}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": merged}


def test_every_api_view_has_the_throttle_and_a_rate_for_its_scope(samples, settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    views = drf_views(samples)
    assert {path for path, _ in views} >= {"/api/v1/tasks/", "/api/schema/", "/api/docs/"}
    for path, view in views:
        throttles = view().get_throttles()
        assert any(isinstance(t, FixedWindowScopedThrottle) for t in throttles), path
        scope = getattr(view, "throttle_scope", None) or DEFAULT_SCOPE
        assert rates.get(scope), f"{path}: no rate for scope {scope!r}"


@pytest.mark.parametrize("who", ["anonymous", "labeler", "staff"])
def test_every_api_endpoint_answers_429_past_its_rate(who, samples, alice, settings):
    """Each endpoint's own scope at 2 requests a minute: the third GET is refused."""
    _rates(settings, api="2/min", lease="2/min", label_submit="2/min", login="2/min")
    staff = type(alice).objects.create_user("root", password="pw-123-pw", is_staff=True)
    client = {
        "anonymous": Client(),
        "labeler": token_client(alice),
        "staff": token_client(staff),
    }[who]
    refused, throttled = [], 0
    for path, view in drf_views(samples):
        method = "get" if hasattr(view, "get") else "post"
        statuses = [getattr(client, method)(path).status_code for _ in range(3)]
        # Refused by permissions (checked before throttles), or throttled at the third.
        if statuses[-1] != 429 and set(statuses) - {401, 403}:
            refused.append(f"{method.upper()} {path}: {statuses}")
        cache.clear()  # each endpoint on its own (scopes are shared between views)
        throttled += statuses[-1] == 429
    assert throttled >= 3
    assert refused == []


def test_the_task_list_is_throttled_per_user(alice, settings, django_user_model):
    _rates(settings, api="3/min")
    alice_api = token_client(alice)
    bob_api = token_client(django_user_model.objects.create_user("bob2", password="x-123-x"))
    assert [alice_api.get("/api/v1/tasks/").status_code for _ in range(4)] == [200] * 3 + [429]
    assert bob_api.get("/api/v1/tasks/").status_code == 200


def test_the_schema_is_throttled_per_address(settings):
    _rates(settings, api="2/min")
    client = Client()
    codes = [client.get("/api/schema/", REMOTE_ADDR="10.0.0.1").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert client.get("/api/schema/", REMOTE_ADDR="10.0.0.2").status_code == 200
