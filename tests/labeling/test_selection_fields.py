"""A task's selection strategy and uniform share (admin, database constraints) and the
selection stored on each comparison."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from labeling.forms import TaskAdminForm
from labeling.models import Comparison, Task
from tests.factories import ComparisonFactory, TaskFactory, UserFactory

pytestmark = pytest.mark.django_db


def form_data(task: Task, **changes):
    data = {
        name: getattr(task, name)
        for name in TaskAdminForm.Meta.fields
        if name not in ("training_settings", "schedule")
    }
    data.update(training_settings="{}", schedule="{}", instructions_text="", **changes)
    return data


def test_the_admin_form_sets_the_strategy_and_checks_the_share():
    task = TaskFactory()
    form = TaskAdminForm(
        data=form_data(task, selection_strategy="uncertainty", uniform_share=0.1), instance=task
    )
    assert form.is_valid(), form.errors
    form.save()
    task.refresh_from_db()
    assert (task.selection_strategy, task.uniform_share) == ("uncertainty", 0.1)
    form = TaskAdminForm(data=form_data(task, uniform_share=1.5), instance=task)
    assert not form.is_valid()
    assert "between 0 and 1" in form.errors["uniform_share"][0]
    form = TaskAdminForm(data=form_data(task, selection_strategy="random"), instance=task)
    assert not form.is_valid() and "selection_strategy" in form.errors


def test_the_admin_pages_show_and_filter_the_selection(client):
    task = TaskFactory(selection_strategy="uncertainty")
    chosen = ComparisonFactory(task=task, selection="uncertainty")
    uniform = ComparisonFactory(task=task)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get(reverse("admin:labeling_task_change", args=[task.pk])).content.decode()
    assert 'name="selection_strategy"' in page and 'name="uniform_share"' in page
    changelist = reverse("admin:labeling_comparison_changelist")
    listing = client.get(changelist + "?selection__exact=uncertainty")
    assert listing.status_code == 200
    shown = [c.pk for c in listing.context["cl"].result_list]
    assert chosen.pk in shown and uniform.pk not in shown


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        ("task", "selection_strategy", "random"),
        ("task", "uniform_share", 1.5),
        ("task", "uniform_share", -0.1),
        ("comparison", "selection", "random"),
    ],
)
def test_the_database_refuses_unknown_strategies_and_shares(model, field, value):
    task = TaskFactory()
    comparison = ComparisonFactory(task=task)
    target = Task.objects.filter(pk=task.pk) if model == "task" else Comparison.objects.filter(
        pk=comparison.pk
    )  # fmt: skip
    with pytest.raises(IntegrityError), transaction.atomic():
        target.update(**{field: value})


def test_comparisons_default_to_uniform():
    assert ComparisonFactory().selection == "uniform"
