"""The worker glue against real (tiny) models: sampling, reward model, PPO chunks, publishing."""

from __future__ import annotations

import pytest

from labeling.models import Comparison, Label
from tests.factories import UserFactory
from tests.training.conftest import tiny_task
from training import selectors, services
from training.models import ComparisonScores, EvalSample, PolicyVersion, TrainingRun

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory) -> str:
    from tests.training.ml.conftest import build_model, build_tokenizer

    directory = tmp_path_factory.mktemp("tiny-loop-model")
    tokenizer = build_tokenizer()
    build_model(len(tokenizer)).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def label_all(task, choice=0):
    labeler = UserFactory()
    for comparison in Comparison.objects.filter(task=task, status="open", label_count=0):
        Label.objects.create(
            comparison=comparison,
            labeler=labeler,
            task=task,
            kind="choice",
            choice=choice,
            k=comparison.k,
            display_order=[0, 1, 2, 3],
        )
        Comparison.objects.filter(pk=comparison.pk).update(label_count=1, status="complete")


def run_due(task, kind):
    from training import jobs

    run = selectors.live_run(task_id=task.pk, kind=kind)
    assert run is not None, f"no {kind} run was scheduled"
    claimed = services.claim_run(run_id=run.pk, worker="test")
    body = jobs.run_reward_training if kind == "reward" else jobs.run_policy_training
    return body(claimed)


def test_loop_in_process(tiny_model_path, settings, tmp_path, django_capture_on_commit_callbacks):
    from training import jobs

    settings.ARTIFACTS_DIR = tmp_path
    task = tiny_task(tiny_model_path)
    services.tick(task_id=task.pk)
    v0 = selectors.promoted_policy(task_id=task.pk)
    assert jobs.sample_comparisons(task.pk, v0.pk, 10) == 4  # the buffer's size
    assert jobs.sample_comparisons(task.pk, v0.pk, 10) == 0  # already full
    comparison = Comparison.objects.filter(task=task).first()
    assert len(comparison.samples) == 4 and len(comparison.sample_token_ids) == 4
    assert comparison.prompt.token_ids  # the query ids the model saw

    label_all(task)
    services.tick(task_id=task.pk)
    rm = run_due(task, "reward")
    assert rm.number == 1 and rm.label_count == 4 and rm.labels_used.count() == 4
    assert {"held_out_accuracy", "train_loss", "label_count"} <= set(rm.metrics)
    assert ComparisonScores.objects.filter(reward_model_version=rm).count() == 4

    jobs.sample_comparisons(task.pk, v0.pk, 10)
    label_all(task)  # 8 labels: l(16) = 4 + 4 * 0.75 = 7 <= 8
    services.tick(task_id=task.pk)
    v1 = run_due(task, "policy")
    assert v1.number == 1 and v1.episodes == 16 and v1.parent_id == v0.pk
    assert selectors.promoted_policy(task_id=task.pk) == v1
    assert v1.reward_model_version_id is not None
    run = TrainingRun.objects.get(policy_version=v1)
    assert run.status == "succeeded" and run.metrics and "kl" in run.metrics[-1]
    assert EvalSample.objects.filter(policy_version=v1).count() == 1
    # New comparisons come from the new version.
    assert jobs.sample_comparisons(task.pk, v1.pk, 10) == 4
    assert Comparison.objects.filter(policy_version=v1).count() == 4

    # The next chunk resumes from v1's state and continues the episode count.
    services.tick(task_id=task.pk)
    v2 = run_due(task, "policy")
    assert v2.episodes == 32 and v2.parent_id == v1.pk
    assert len(TrainingRun.objects.get(policy_version=v2).metrics) == 1

    # Roll back to v1: the next PPO chunk continues from v1 again.
    services.rollback_policy(task=task)
    assert selectors.ppo_head(task_id=task.pk) == v1


def test_interrupted_policy_run_resumes_and_publishes_once(tiny_model_path, settings, tmp_path):
    """A worker dies after PPO finished but before publishing: the next run publishes the same
    training exactly once, without training it again."""
    from training import jobs

    settings.ARTIFACTS_DIR = tmp_path
    task = tiny_task(tiny_model_path)
    services.tick(task_id=task.pk)
    v0 = selectors.promoted_policy(task_id=task.pk)
    jobs.sample_comparisons(task.pk, v0.pk, 8)
    label_all(task)
    services.tick(task_id=task.pk)
    run_due(task, "reward")
    jobs.sample_comparisons(task.pk, v0.pk, 8)
    label_all(task)
    services.tick(task_id=task.pk)
    first = selectors.live_run(task_id=task.pk, kind="policy")
    claimed = services.claim_run(run_id=first.pk, worker="doomed")
    # Train the chunk like the dead worker did, but die before publishing.
    from training.artifacts import task_dir
    from training.ml.ppo import train_policy
    from training.task_settings import training_config

    config = training_config(task)
    config.ppo.total_episodes = 32
    state_dir = task_dir(task.pk) / "ppo" / "from-v0"
    rm = selectors.latest_reward_model(task_id=task.pk)
    train_policy(
        task.base_model,
        rm.artifact_path,
        ["The movie was good."],
        state_dir,
        config=config.ppo,
        sampling=config.sampling,
        episodes=16,
    )
    services.fail_run(run_id=claimed.pk, error="worker lost")
    services.tick(task_id=task.pk)
    version = run_due(task, "policy")
    assert version.episodes == 16
    assert PolicyVersion.objects.filter(task=task).count() == 2
    assert TrainingRun.objects.filter(task=task, kind="policy", status="succeeded").count() == 1
