import pytest
from django.core.management import call_command

from labeling.models import Comparison, Prompt, Task
from research.demo.data import DEMO_TASK_NAME, DEMO_USERS
from training.models import PolicyVersion

pytestmark = pytest.mark.django_db


def test_load_demo_creates_a_ready_task_and_is_idempotent(client):
    call_command("load_demo")
    call_command("load_demo")  # a second run refreshes logins and duplicates nothing
    task = Task.objects.get(name=DEMO_TASK_NAME)
    assert task.status == Task.Status.ACTIVE
    assert Comparison.objects.filter(task=task, status="open").count() == 60
    assert Prompt.objects.filter(task=task, split="train", token_ids__isnull=False).count() == 60
    assert Prompt.objects.filter(task=task, split="eval").count() == 8
    base = PolicyVersion.objects.get(task=task, number=0)
    assert base.status == "promoted"
    assert set(Comparison.objects.filter(task=task).values_list("policy_version", flat=True)) == {
        base.pk
    }
    assert task.instructions.count() == 1
    labelers = {u.username for u in DEMO_USERS if u.role == "labeler"}
    assert set(task.labelers.values_list("username", flat=True)) == labelers
    for user in DEMO_USERS:
        assert client.login(username=user.username, password=user.password)
        response = client.get("/admin/")
        assert (response.status_code == 200) == (user.role == "researcher")
        client.logout()
