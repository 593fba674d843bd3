"""Labeler pages: login, my tasks, the labeling page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from labeling.models import Task
from tests.factories import InstructionsFactory, TaskFactory, TaskLabelerFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def labeler(client):
    user = UserFactory(username="lena")
    client.force_login(user)
    return user


def test_pages_require_login(client):
    task = TaskFactory()
    for url in (reverse("labeling:home"), reverse("labeling:label", args=[task.pk])):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_login_page_renders_and_logs_in(client):
    UserFactory(username="lena")
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert b"csrfmiddlewaretoken" in page.content
    response = client.post(reverse("login"), {"username": "lena", "password": "pw-for-tests-123"})
    assert response.status_code == 302
    assert response["Location"] == reverse("labeling:home")
    bad = client.post(reverse("login"), {"username": "lena", "password": "wrong"})
    assert bad.status_code == 200
    assert b"Please enter a correct username and password" in bad.content


def test_home_lists_only_my_active_tasks_with_progress(client, labeler):
    mine = TaskLabelerFactory(labeler=labeler, task__name="Mine").task
    TaskLabelerFactory(labeler=labeler, task__name="Paused one", task__status=Task.Status.PAUSED)
    TaskFactory(name="Someone else's")
    response = client.get(reverse("labeling:home"))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Mine" in page
    assert "Someone else" not in page
    assert "Paused one" not in page
    assert reverse("labeling:label", args=[mine.pk]) in page
    assert "labeled" in page and "left" in page


def test_home_says_when_there_are_no_tasks(client, labeler):
    assert b"no labeling tasks yet" in client.get(reverse("labeling:home")).content


def test_label_page_for_my_task(client, labeler):
    task = TaskLabelerFactory(labeler=labeler, task__k=3).task
    InstructionsFactory(task=task, version=1, text="Old.")
    InstructionsFactory(task=task, version=2, text="Prefer kind words.")
    response = client.get(reverse("labeling:label", args=[task.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Prefer kind words." in page and "Old." not in page
    assert f'data-next-url="/api/v1/tasks/{task.pk}/next/"' in page
    assert "js/label.js" in page
    assert "<kbd>3</kbd> choose the best" in page
    assert "csrftoken" in response.cookies  # the page's JavaScript sends it back


def test_label_page_of_another_labelers_task_is_404(client, labeler):
    task = TaskLabelerFactory().task
    assert client.get(reverse("labeling:label", args=[task.pk])).status_code == 404
    assert client.get(reverse("labeling:label", args=[999_999])).status_code == 404


def test_staff_may_open_any_active_task(client):
    client.force_login(UserFactory(is_staff=True))
    task = TaskFactory()
    assert client.get(reverse("labeling:label", args=[task.pk])).status_code == 200


def test_logout_is_a_csrf_protected_post(client, labeler):
    page = client.get(reverse("labeling:home")).content.decode()
    assert f'action="{reverse("logout")}"' in page
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get(reverse("labeling:home")).status_code == 302
