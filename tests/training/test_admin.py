import pytest
from django.urls import reverse

from tests.factories import UserFactory
from training import selectors, services
from training.models import PolicyVersion, VersionStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(username="researcher", is_staff=True, is_superuser=True))
    return client


def test_promote_and_roll_back_actions(staff_client, loop_task):
    v0 = services.ensure_base_policy(task=loop_task)
    v1 = PolicyVersion.objects.create(task=loop_task, number=1, parent=v0, artifact_path="/p1")
    url = reverse("admin:training_policyversion_changelist")
    assert staff_client.get(url).status_code == 200
    response = staff_client.post(
        url, {"action": "promote", "_selected_action": [v1.pk]}, follow=True
    )
    assert response.status_code == 200
    assert selectors.promoted_policy(task_id=loop_task.pk) == v1
    staff_client.post(url, {"action": "roll_back", "_selected_action": [v1.pk]}, follow=True)
    assert selectors.promoted_policy(task_id=loop_task.pk) == v0
    v1.refresh_from_db()
    assert v1.status == VersionStatus.RETIRED
    response = staff_client.post(
        url, {"action": "roll_back", "_selected_action": [v0.pk]}, follow=True
    )
    assert b"no earlier version" in response.content
    for name in ("rewardmodelversion", "trainingrun"):
        assert staff_client.get(reverse(f"admin:training_{name}_changelist")).status_code == 200


def test_labelers_do_not_reach_the_training_admin(client, loop_task):
    client.force_login(UserFactory(username="plain"))
    response = client.get(reverse("admin:training_policyversion_changelist"))
    assert response.status_code == 302
