"""Fixtures for hostile-input tests: a labeler with a task of their own, another labeler with
another task, and generous throttle rates unless a test lowers them."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import (
    ComparisonFactory,
    InstructionsFactory,
    TaskFactory,
    TaskLabelerFactory,
    UserFactory,
)


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def high_throttles(settings):
    rates = dict(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])
    rates.update(label_submit="100000/min", lease="100000/min", login="100000/min")
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}


@pytest.fixture
def alice_task(db):
    task = TaskFactory(name="alice's task")
    InstructionsFactory(task=task)
    ComparisonFactory.create_batch(5, task=task)
    return task


@pytest.fixture
def bob_task(db):
    task = TaskFactory(name="bob's task")
    ComparisonFactory.create_batch(3, task=task)
    return task


@pytest.fixture
def alice(alice_task):
    membership = TaskLabelerFactory(task=alice_task, labeler=UserFactory(username="alice"))
    return membership.labeler


@pytest.fixture
def bob(bob_task):
    membership = TaskLabelerFactory(task=bob_task, labeler=UserFactory(username="bob"))
    return membership.labeler


def token_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def alice_api(alice) -> APIClient:
    return token_client(alice)


@pytest.fixture
def bob_api(bob) -> APIClient:
    return token_client(bob)


@pytest.fixture
def samples(alice_task) -> dict[str, str]:
    """A value for each URL parameter of the URLconf (tests/hardening/urlconf.py)."""
    comparison = ComparisonFactory(task=alice_task)
    return {
        "task_id": str(alice_task.pk),
        "comparison_id": str(comparison.pk),
        "object_id": str(alice_task.pk),
        "id": "1",
        "content_type_id": "1",
        "fmt": "paper",
        "url": "nowhere/",
        "uidb64": "MQ",
        "token": "set-password",
    }
