"""setup_roles: the Researchers group and its permissions across the apps."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_setup_roles_is_idempotent_and_adds_users():
    user = UserFactory(username="rita")
    call_command("setup_roles", "--add", "rita", "nobody")
    call_command("setup_roles")
    group = Group.objects.get(name="Researchers")
    user.refresh_from_db()
    assert user.is_staff and group in user.groups.all()
    codenames = set(group.permissions.values_list("codename", flat=True))
    assert {"add_task", "change_task", "add_prompt", "change_comparison", "view_label"} <= codenames
    assert "change_label" not in codenames and "delete_task" not in codenames
