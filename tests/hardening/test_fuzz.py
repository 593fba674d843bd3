"""Schemathesis over the OpenAPI schema (/api/schema/) through the WSGI app: no input a labeler
(or a researcher) can send makes the server answer 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.hardening.conftest import token_client

pytestmark = [pytest.mark.django_db(transaction=False), pytest.mark.slow]


# The schema view needs no database: loading it at import time is safe under pytest-django.
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@pytest.fixture(autouse=True)
def _keep_test_connection():
    """As Django's test client does: the WSGI app must not close the connection that holds the
    test's transaction at the end of each request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@FUZZ
def test_labeler_finds_no_server_error(case, alice, bob, high_throttles):
    token = token_client(alice)._credentials["HTTP_AUTHORIZATION"]
    case.call_and_validate(headers={"Authorization": token}, checks=[not_a_server_error])


@schema.parametrize()
@FUZZ
def test_staff_finds_no_server_error(case, alice, high_throttles, django_user_model):
    staff, _ = django_user_model.objects.get_or_create(username="researcher", is_staff=True)
    token = token_client(staff)._credentials["HTTP_AUTHORIZATION"]
    case.call_and_validate(headers={"Authorization": token}, checks=[not_a_server_error])
