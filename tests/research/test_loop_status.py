"""The dashboard's "Now / Next" card: the loop's state in words, with the schedule's numbers
worked out by hand for the demo's schedule."""

import pytest
from django.urls import reverse

from research.loop_status import loop_status
from tests.factories import ComparisonFactory, TaskFactory, UserFactory
from tests.training.conftest import add_labels
from training import services
from training.models import RewardModelVersion, TrainingRun

pytestmark = pytest.mark.django_db

# Retrains at 24, 67, 110, 154, 197 and 240 labels (steps of 43.2, rounded);
# l(32) = 24 + 216 * (1 - (1 - 32/512)^2) = 50.16, so 51 labels before the first chunk.
DEMO_SCHEDULE = {"n0": 24, "n": 240, "episodes": 512, "retrains": 6, "chunk_episodes": 32}


@pytest.fixture
def task():
    task = TaskFactory(schedule=DEMO_SCHEDULE)
    v0 = services.ensure_base_policy(task=task)
    for _ in range(3):
        ComparisonFactory(task=task, policy_version=v0)
    return task


def _run(task, kind, *, progress=None, target=0):
    run = TrainingRun.objects.create(task=task, kind=kind, target_label_count=target)
    services.claim_run(run_id=run.pk, worker="w")
    if progress is not None:
        services.set_run_progress(run_id=run.pk, progress=progress)
    return run


def test_before_the_first_reward_model(task):
    add_labels(task, 10)
    status = loop_status(task=task)
    assert status.now == [
        "3 unlabeled comparisons from policy v0 open for labelers.",
        "No model is training: the loop waits for labels.",
    ]
    assert status.next == [
        "Policy v1 (PPO episodes 0 → 32): after the first reward model, at 51 labels (41 to go).",
        "Reward model v1: at 24 labels (14 to go).",
    ]


def test_a_reward_model_in_training_shows_its_progress(task):
    add_labels(task, 30)
    _run(task, "reward", progress=0.4, target=24)
    status = loop_status(task=task)
    assert status.now[0] == "Training reward model v1 on 24 labels: 40%."
    assert all("Reward model" not in line for line in status.next)


def test_the_first_policy_goes_first_and_says_so(task):
    add_labels(task, 70)
    RewardModelVersion.objects.create(task=task, number=1, label_count=24, status="ready")
    status = loop_status(task=task)
    assert status.next == [
        "Policy v1 (PPO episodes 0 → 32): due now (51 labels reached).",
        "Reward model v2: due now (67 labels reached), after policy v1.",
    ]
    _run(task, "policy", progress=0.5)
    status = loop_status(task=task)
    assert status.now[0] == "Training policy v1 (PPO episodes 0 → 32 against reward model v1): 50%."
    assert status.next == ["Reward model v2: due now (67 labels reached), after policy v1."]


def test_a_queued_run_says_it_waits_for_a_worker(task):
    TrainingRun.objects.create(task=task, kind="reward", target_label_count=24)
    assert loop_status(task=task).now[0] == (
        "Training reward model v1 on 24 labels: queued, waiting for a training worker."
    )


def test_the_dashboard_shows_the_card(client, task):
    client.force_login(UserFactory(is_staff=True))
    _run(task, "reward", progress=0.4, target=24)
    html = client.get(reverse("dashboard:task", args=[task.pk])).content.decode()
    assert 'id="loop-status"' in html
    assert "Training reward model v1 on 24 labels: 40%." in html
