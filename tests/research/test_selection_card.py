"""The dashboard's selection card: the task's strategy, its share of uniform comparisons and
the reward model's accuracy on them (prospective)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.urls import reverse

from labeling.models import Label
from research import selectors
from tests.factories import ComparisonFactory, TaskFactory, UserFactory
from tests.research.factories import RewardModelVersionFactory
from training.models import ComparisonScores

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()


def label(comparison, labeler, choice):
    return Label.objects.create(
        comparison=comparison,
        labeler=labeler,
        task=comparison.task,
        kind="choice",
        choice=choice,
        k=comparison.k,
        display_order=[0, 1, 2, 3],
    )


@pytest.fixture
def task_with_selection():
    task = TaskFactory(selection_strategy="uncertainty", uniform_share=0.25)
    labeler = UserFactory()
    early = label(ComparisonFactory(task=task), labeler, 0)
    rm = RewardModelVersionFactory(task=task, metrics={"last_label_id": early.pk})
    scores = {"uniform": [[3.0, 0.0, 0.0, 0.0]] * 3 + [[0.0, 3.0, 0.0, 0.0]],
              "uncertainty": [[0.0, 3.0, 0.0, 0.0]] * 2}  # fmt: skip
    for selection, rows in scores.items():
        for values in rows:
            comparison = ComparisonFactory(task=task, selection=selection)
            ComparisonScores.objects.create(
                comparison=comparison, reward_model_version=rm, scores=values
            )
            label(comparison, labeler, 0)
    # Scored by the model after it had trained on the label: not counted.
    ComparisonScores.objects.create(
        comparison=early.comparison, reward_model_version=rm, scores=[0.0, 1.0, 0.0, 0.0]
    )
    ComparisonFactory(task=task, selection="uncertainty")  # open, unlabeled
    ComparisonFactory(task=task, is_gold=True, gold_choice=0)  # gold: not sampled
    return task


def test_selection_summary(task_with_selection):
    summary = selectors.selection_summary(task=task_with_selection)
    assert summary.uncertainty and summary.uniform_share == 0.25
    assert summary.comparisons == {"uniform": 5, "uncertainty": 3}
    assert summary.uniform_fraction == 5 / 8
    uniform = summary.accuracy["uniform"]
    assert (uniform.labels, uniform.scored, uniform.correct) == (5, 4, 3)
    assert summary.accuracy["uncertainty"].accuracy == 0.0
    assert [name for name, _, _ in summary.rows] == ["uniform", "uncertainty"]


def test_the_dashboard_shows_the_strategy_share_and_accuracy(client, task_with_selection):
    client.force_login(UserFactory(is_staff=True))
    response = client.get(reverse("dashboard:task", args=[task_with_selection.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="selection"' in html
    assert "Uncertainty (where the reward model is least sure)" in html
    assert "uniform share of 25%" in html
    assert 'by <span class="measure">the entropy of the reward model\'s choice' in html
    assert '<span class="uniform-fraction">62%</span>' in html
    row = html.split('class="selection-uniform"')[1].split("</tr>")[0]
    assert '<td class="num accuracy">0.750</td>' in row


def test_the_dashboard_names_the_disagreement_measure(client):
    settings = {"reward": {"ensemble_members": 4}, "selection": {"measure": "disagreement"}}
    task = TaskFactory(selection_strategy="uncertainty", training_settings=settings)
    assert selectors.selection_summary(task=task).measure == "disagreement"
    client.force_login(UserFactory(is_staff=True))
    html = client.get(reverse("dashboard:task", args=[task.pk])).content.decode()
    assert 'by <span class="measure">the disagreement of the reward model\'s ensemble' in html


def test_a_uniform_task_without_comparisons(client):
    task = TaskFactory()
    client.force_login(UserFactory(is_staff=True))
    html = client.get(reverse("dashboard:task", args=[task.pk])).content.decode()
    assert "Uniform (the prompts in turn)" in html and "uniform share of" not in html
    assert "uniform-fraction" not in html
