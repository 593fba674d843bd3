"""The scheduler's tick (training/services/loop.py): the first policy before a second reward
model, sampling that waits while a model trains and labelers are covered, v0's eval answers."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from labeling.models import Comparison, Label, Prompt
from tests.factories import ComparisonFactory, UserFactory
from tests.training.conftest import add_labels
from training import selectors, services
from training.models import EvalSample, PolicyVersion, RewardModelVersion, TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


def _finish_reward_run(task, run_id: int, label_count: int) -> None:
    services.claim_run(run_id=run_id, worker="w")
    services.publish_reward_model_version(
        run_id=run_id, artifact_path="/rm", gain=1, bias=0, label_ids=[], metrics={}
    )
    RewardModelVersion.objects.filter(task=task).update(label_count=label_count)


def test_first_policy_goes_before_a_second_reward_model(loop_task):
    # loop_task: retrains at 2, 4 and 6 labels; l(16) = 2 + 4 * (1 - 0.5^2) = 5 labels.
    v0 = services.ensure_base_policy(task=loop_task)
    add_labels(loop_task, 2, policy_version=v0)
    _finish_reward_run(loop_task, services.tick(task_id=loop_task.pk).reward_run, 2)
    add_labels(loop_task, 3, policy_version=v0)  # 5: the chunk is due, and the retrain at 4

    result = services.tick(task_id=loop_task.pk)
    assert result.policy_run is not None
    assert result.reward_run is None and result.reward_waits
    # The policy run stays live (queued, then running): the retrain keeps waiting.
    add_labels(loop_task, 1, policy_version=v0)
    services.claim_run(run_id=result.policy_run, worker="w")
    again = services.tick(task_id=loop_task.pk)
    assert again.reward_run is None and again.reward_waits

    PolicyVersion.objects.create(task=loop_task, number=1, episodes=16, status="ready")
    TrainingRun.objects.filter(pk=result.policy_run).update(status="succeeded")
    after = services.tick(task_id=loop_task.pk)
    assert after.reward_run is not None and not after.reward_waits


def test_the_first_reward_model_never_waits(loop_task):
    v0 = services.ensure_base_policy(task=loop_task)
    add_labels(loop_task, 5, policy_version=v0)  # past l(16) already, but no reward model
    result = services.tick(task_id=loop_task.pk)
    assert result.reward_run is not None and result.policy_run is None


def test_a_retrain_does_not_wait_for_a_policy_run_that_keeps_failing(loop_task, settings):
    settings.TRAINING_RETRY_SECONDS = 600
    v0 = services.ensure_base_policy(task=loop_task)
    add_labels(loop_task, 2, policy_version=v0)
    _finish_reward_run(loop_task, services.tick(task_id=loop_task.pk).reward_run, 2)
    add_labels(loop_task, 3, policy_version=v0)
    now = timezone.now()
    for _ in range(2):  # two failures in a row: the next policy run backs off for 600 s
        TrainingRun.objects.create(task=loop_task, kind="policy", status="failed", finished_at=now)
    result = services.tick(task_id=loop_task.pk)
    assert result.policy_run is None
    assert result.reward_run is not None


def _open(task, version, n):
    for _ in range(n):
        ComparisonFactory(task=task, policy_version=version)


def _started(task, version, n, *, seconds_ago: float):
    """``n`` comparisons that got their first label ``seconds_ago``."""
    labeler = UserFactory()
    at = timezone.now() - timedelta(seconds=seconds_ago)
    for _ in range(n):
        comparison = ComparisonFactory(task=task, policy_version=version, label_count=1)
        label = Label.objects.create(
            comparison=comparison, labeler=labeler, task=task, kind="choice", choice=0,
            k=comparison.k, display_order=list(range(comparison.k)),
        )  # fmt: skip
        Label.objects.filter(pk=label.pk).update(created_at=at)


def test_sampling_waits_while_training_if_labelers_are_covered(db):
    from tests.factories import TaskFactory

    task = TaskFactory(schedule={"buffer": 8, "lookahead_seconds": 120, "n0": 100, "n": 200})
    v0 = services.ensure_base_policy(task=task)
    _open(task, v0, 4)  # half the buffer: the low-water mark
    _started(task, v0, 3, seconds_ago=60)  # labelers started 3 in the last 120 s
    _started(task, v0, 5, seconds_ago=300)  # older: not demand
    assert services.tick(task_id=task.pk).sample == 4  # nothing trains: top up to 8

    TrainingRun.objects.create(task=task, kind="reward")  # queued: it will take the CPU
    assert services.tick(task_id=task.pk).sample == 0  # 4 open cover a demand of 3
    _started(task, v0, 2, seconds_ago=10)  # demand 5 > 4 open: labelers would run short
    assert services.tick(task_id=task.pk).sample == 4
    Comparison.objects.filter(task=task, label_count=0).delete()
    TrainingRun.objects.all().update(status="running")
    Label.objects.all().delete()
    assert services.tick(task_id=task.pk).sample == 8  # an empty buffer is always refilled


def test_demand_counts_comparisons_by_their_first_label(db):
    from tests.factories import TaskFactory

    task = TaskFactory()
    since = timezone.now() - timedelta(seconds=100)
    _started(task, None, 2, seconds_ago=50)
    _started(task, None, 1, seconds_ago=500)
    old = Comparison.objects.get(labels__created_at__lt=since)
    # A second label on an old comparison, today: not a comparison started now.
    Label.objects.create(
        comparison=old, labeler=UserFactory(), task=task, kind="choice", choice=1, k=old.k,
        display_order=list(range(old.k)),
    )  # fmt: skip
    recent = Comparison.objects.filter(labels__created_at__gte=since).distinct().first()
    Comparison.objects.filter(pk=recent.pk).update(is_gold=True)  # gold: never sampled
    assert selectors.comparisons_started_since(task_id=task.pk, since=since) == 1


def test_v0_answers_the_eval_prompts_once(loop_task, monkeypatch):
    from training import tasks

    sent: list[int] = []
    monkeypatch.setattr(tasks.sample_eval_answers, "delay_on_commit", sent.append)
    assert not services.tick(task_id=loop_task.pk).eval_samples  # no eval prompts
    Prompt.objects.create(task=loop_task, text="An eval prompt.", split="eval")
    assert services.tick(task_id=loop_task.pk).eval_samples
    assert not services.tick(task_id=loop_task.pk).eval_samples  # already sent
    v0 = selectors.promoted_policy(task_id=loop_task.pk)
    assert sent == [v0.pk]
    EvalSample.objects.create(policy_version=v0, prompt=Prompt.objects.get(split="eval"), text="x")
    cache.clear()
    assert not services.tick(task_id=loop_task.pk).eval_samples  # answered: nothing to do
    assert sent == [v0.pk]
