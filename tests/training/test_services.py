from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from labeling.models import Comparison
from tests.factories import ComparisonFactory, PromptFactory, TaskFactory
from tests.training.conftest import add_labels
from training import selectors, services
from training.models import PolicyVersion, RewardModelVersion, TrainingRun, VersionStatus

pytestmark = pytest.mark.django_db


def _running_run(task, kind=TrainingRun.Kind.POLICY):
    run = TrainingRun.objects.create(task=task, kind=kind)
    assert services.claim_run(run_id=run.pk, worker="w1") is not None
    return run


def test_schedule_run_allows_one_live_run_per_kind(loop_task, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        first = services.schedule_run(task=loop_task, kind=TrainingRun.Kind.REWARD)
        second = services.schedule_run(task=loop_task, kind=TrainingRun.Kind.REWARD)
        other = services.schedule_run(task=loop_task, kind=TrainingRun.Kind.POLICY)
    assert first is not None and other is not None
    assert second is None
    assert len(callbacks) == 2  # one enqueue per run created, after commit


def test_second_claim_of_a_run_does_nothing(loop_task):
    run = TrainingRun.objects.create(task=loop_task, kind=TrainingRun.Kind.REWARD)
    claimed = services.claim_run(run_id=run.pk, worker="w1")
    assert claimed is not None and claimed.status == TrainingRun.Status.RUNNING
    assert services.claim_run(run_id=run.pk, worker="w2") is None
    run.refresh_from_db()
    assert (run.worker, run.attempts) == ("w1", 1)
    assert services.claim_run(run_id=999_999, worker="w2") is None


def test_heartbeat_reports_a_reaped_run(loop_task):
    run = _running_run(loop_task)
    assert services.heartbeat(run_id=run.pk)
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert services.reap_stale_runs(stale_seconds=60) == [run.pk]
    assert services.reap_stale_runs(stale_seconds=60) == []
    assert not services.heartbeat(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.FAILED and "worker lost" in run.error


def test_publish_policy_promotes_retires_and_finishes_run_once(loop_task):
    base = services.ensure_base_policy(task=loop_task)
    old_open = ComparisonFactory(task=loop_task, policy_version=base)
    old_labeled = ComparisonFactory(task=loop_task, policy_version=base, label_count=1)
    imported = ComparisonFactory(task=loop_task)
    gold = ComparisonFactory(task=loop_task, policy_version=base, is_gold=True, gold_choice=0)
    run = _running_run(loop_task)
    kwargs = dict(
        run_id=run.pk,
        artifact_path="/a/run",
        episodes=16,
        metrics={"kl": 1.0},
        reward_model_version_id=None,
        parent_id=base.pk,
    )
    version = services.publish_policy_version(**kwargs)
    assert version is not None and version.number == 1 and version.parent_id == base.pk
    assert selectors.promoted_policy(task_id=loop_task.pk) == version
    base.refresh_from_db()
    assert base.status == VersionStatus.READY
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED and run.policy_version_id == version.pk
    statuses = {c.pk: c.status for c in Comparison.objects.all()}
    assert statuses[old_open.pk] == Comparison.Status.RETIRED
    assert statuses[old_labeled.pk] == Comparison.Status.OPEN
    assert statuses[imported.pk] == Comparison.Status.OPEN
    assert statuses[gold.pk] == Comparison.Status.OPEN
    # A duplicate delivery publishing again returns the same version, creates nothing.
    assert services.publish_policy_version(**kwargs) == version
    assert PolicyVersion.objects.filter(task=loop_task).count() == 2


def test_publish_is_all_or_nothing(loop_task):
    services.ensure_base_policy(task=loop_task)
    run = _running_run(loop_task)
    loop_task.schedule = {"bogus": 1}  # fails inside the transaction, after the row is created
    loop_task.save()
    with pytest.raises(ValueError, match="bogus"):
        services.publish_policy_version(
            run_id=run.pk,
            artifact_path="/a",
            episodes=16,
            metrics={},
            reward_model_version_id=None,
            parent_id=None,
        )
    assert PolicyVersion.objects.filter(task=loop_task).count() == 1
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.RUNNING and run.policy_version_id is None


def test_publish_after_the_run_was_reaped_publishes_nothing(loop_task):
    run = _running_run(loop_task, TrainingRun.Kind.REWARD)
    services.fail_run(run_id=run.pk, error="worker lost")
    labels = add_labels(loop_task, 2)
    assert (
        services.publish_reward_model_version(
            run_id=run.pk,
            artifact_path="/rm",
            gain=1.0,
            bias=0.0,
            label_ids=[label.pk for label in labels],
            metrics={},
        )
        is None
    )
    assert not RewardModelVersion.objects.exists()


def test_publish_reward_model_records_exact_labels(loop_task):
    labels = add_labels(loop_task, 3)
    run = _running_run(loop_task, TrainingRun.Kind.REWARD)
    version = services.publish_reward_model_version(
        run_id=run.pk,
        artifact_path="/rm",
        gain=2.0,
        bias=-1.0,
        label_ids=[label.pk for label in labels[:2]],
        metrics={"held_out_accuracy": 0.5},
    )
    assert version is not None and version.number == 1 and version.label_count == 2
    assert set(version.labels_used.values_list("pk", flat=True)) == {labels[0].pk, labels[1].pk}
    second = _running_run(loop_task, TrainingRun.Kind.REWARD)
    newer = services.publish_reward_model_version(
        run_id=second.pk,
        artifact_path="/rm2",
        gain=1.0,
        bias=0.0,
        label_ids=[label.pk for label in labels],
        metrics={},
    )
    assert newer.number == 2 and newer.parent_id == version.pk


def _versions(task, n):
    base = services.ensure_base_policy(task=task)
    versions = [base]
    for i in range(1, n):
        versions.append(
            PolicyVersion.objects.create(
                task=task,
                number=i,
                parent=versions[-1],
                artifact_path=f"/p{i}",
                episodes=16 * i,
            )
        )
    services.promote_policy_version(version=versions[-1])
    return versions


def test_promote_and_roll_back(loop_task):
    v0, v1, v2 = _versions(loop_task, 3)
    on_v2 = ComparisonFactory(task=loop_task, policy_version=v2)
    assert selectors.promoted_policy(task_id=loop_task.pk) == v2
    assert services.rollback_policy(task=loop_task) == v1
    v2.refresh_from_db()
    assert v2.status == VersionStatus.RETIRED
    assert selectors.promoted_policy(task_id=loop_task.pk) == v1
    assert selectors.ppo_head(task_id=loop_task.pk) == v1  # PPO continues from v1
    on_v2.refresh_from_db()
    assert on_v2.status == Comparison.Status.RETIRED
    services.promote_policy_version(version=v0)
    v1.refresh_from_db()
    assert v1.status == VersionStatus.READY
    with pytest.raises(services.VersionError):
        services.rollback_policy(task=loop_task)


def test_retirement_can_be_switched_off(db):
    task = TaskFactory(schedule={"retire_superseded": False})
    v0, v1 = _versions(task, 2)
    services.promote_policy_version(version=v0)
    kept = ComparisonFactory(task=task, policy_version=v1)
    services.promote_policy_version(version=v1)
    services.promote_policy_version(version=v0)
    kept.refresh_from_db()
    assert kept.status == Comparison.Status.OPEN


def test_tick_samples_then_trains_reward_then_policy(loop_task, django_capture_on_commit_callbacks):
    PromptFactory(task=loop_task)
    with django_capture_on_commit_callbacks() as callbacks:
        result = services.tick(task_id=loop_task.pk)
    v0 = selectors.promoted_policy(task_id=loop_task.pk)
    assert v0 is not None and v0.number == 0
    assert result.sample == 3 and result.reward_run is None and result.policy_run is None
    assert len(callbacks) == 1
    add_labels(loop_task, 2, policy_version=v0)
    result = services.tick(task_id=loop_task.pk)
    assert result.reward_run is not None and result.policy_run is None  # no RM yet
    assert services.tick(task_id=loop_task.pk).reward_run is None  # already live
    run = TrainingRun.objects.get(pk=result.reward_run)
    services.claim_run(run_id=run.pk, worker="w")
    services.publish_reward_model_version(
        run_id=run.pk, artifact_path="/rm", gain=1, bias=0, label_ids=[], metrics={}
    )
    RewardModelVersion.objects.filter(task=loop_task).update(label_count=2)
    # l(16) = 2 + 4 * (1 - 0.25) = 5 labels before the first chunk of 16 episodes.
    assert services.tick(task_id=loop_task.pk).policy_run is None
    add_labels(loop_task, 3, policy_version=v0)
    result = services.tick(task_id=loop_task.pk)
    assert result.policy_run is not None
    # 5 labels crossed the retrain at 4 too, but the first policy goes first (test_loop.py).
    assert result.reward_run is None and result.reward_waits


def test_tick_fails_dead_runs_so_the_next_can_start(loop_task, settings):
    settings.TRAINING_STALE_SECONDS = 60
    add_labels(loop_task, 2)
    run = _running_run(loop_task, TrainingRun.Kind.REWARD)
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    result = services.tick(task_id=loop_task.pk)
    assert result.reaped == [run.pk]
    assert result.reward_run is not None and result.reward_run != run.pk


def test_tick_skips_inactive_task_and_invalid_schedule(db):
    paused = TaskFactory(status="paused")
    assert services.tick(task_id=paused.pk).skipped == "task not active"
    broken = TaskFactory(schedule={"n0": "x"})
    assert "schedule.n0" in services.tick(task_id=broken.pk).skipped


def test_sampling_deficit_and_create_comparisons(loop_task):
    v0 = services.ensure_base_policy(task=loop_task)
    prompt = PromptFactory(task=loop_task)
    assert services.sampling_deficit(task=loop_task, policy_version_id=v0.pk, requested=10) == 3
    item = services.SampledComparison(
        prompt_id=prompt.pk,
        query_token_ids=[1, 2],
        samples=["a", "b", "c", "d"],
        sample_token_ids=[[3], [4], [5], [6]],
        sample_ended=[True] * 4,
    )
    counts = services.SamplingCounts(candidates=16, ended=6)
    created = services.create_comparisons(
        task=loop_task, policy_version_id=v0.pk, sampled=[item], counts=counts
    )
    assert len(created) == 1 and created[0].policy_version_id == v0.pk
    assert Comparison.objects.get(pk=created[0].pk).sample_ended == [True] * 4
    prompt.refresh_from_db()
    assert prompt.token_ids == [1, 2]
    v0.refresh_from_db()
    assert (v0.candidates_sampled, v0.candidates_ended, v0.ended_fraction) == (16, 6, 6 / 16)
    assert services.sampling_deficit(task=loop_task, policy_version_id=v0.pk, requested=10) == 2
    v1 = PolicyVersion.objects.create(task=loop_task, number=1, artifact_path="/x")
    services.promote_policy_version(version=v1)
    # A superseded version samples nothing more; what it sampled still counts for it.
    assert services.sampling_deficit(task=loop_task, policy_version_id=v0.pk, requested=10) == 0
    assert (
        services.create_comparisons(
            task=loop_task, policy_version_id=v0.pk, sampled=[item], counts=counts
        )
        == []
    )
    v0.refresh_from_db()
    assert (v0.candidates_sampled, v0.candidates_ended) == (32, 12)
    assert v1.ended_fraction is None  # not sampled yet


def test_create_comparisons_refuses_samples_that_did_not_end(loop_task):
    """Labelers see only responses that ended: nothing is stored, not even the counts."""
    v0 = services.ensure_base_policy(task=loop_task)
    prompt = PromptFactory(task=loop_task)
    good = services.SampledComparison(
        prompt_id=prompt.pk,
        query_token_ids=[1],
        samples=["a", "b", "c", "d"],
        sample_token_ids=[[3], [4], [5], [6]],
        sample_ended=[True] * 4,
    )
    for ended in ([True, True, False, True], [True, True, True]):
        bad = services.SampledComparison(**{**good.__dict__, "sample_ended": ended})
        with pytest.raises(ValueError, match="must have ended"):
            services.create_comparisons(
                task=loop_task,
                policy_version_id=v0.pk,
                sampled=[good, bad],
                counts=services.SamplingCounts(candidates=8, ended=7),
            )
    assert not Comparison.objects.filter(task=loop_task).exists()
    v0.refresh_from_db()
    assert v0.candidates_sampled == 0


def test_record_sampling_adds_up_and_checks_its_counts(loop_task):
    v0 = services.ensure_base_policy(task=loop_task)
    for candidates, ended in [(10, 3), (6, 6), (4, 0)]:
        services.record_sampling(
            policy_version_id=v0.pk,
            counts=services.SamplingCounts(candidates=candidates, ended=ended),
        )
    v0.refresh_from_db()
    assert (v0.candidates_sampled, v0.candidates_ended) == (20, 9)
    for candidates, ended in [(4, 5), (4, -1)]:
        with pytest.raises(ValueError):
            services.record_sampling(
                policy_version_id=v0.pk,
                counts=services.SamplingCounts(candidates=candidates, ended=ended),
            )
    # The database holds the invariant too.
    with pytest.raises(IntegrityError), transaction.atomic():
        PolicyVersion.objects.filter(pk=v0.pk).update(candidates_ended=21)


def test_tick_tops_the_buffer_up_at_half(loop_task):
    v0 = services.ensure_base_policy(task=loop_task)
    ComparisonFactory(task=loop_task, policy_version=v0)
    ComparisonFactory(task=loop_task, policy_version=v0)
    assert services.tick(task_id=loop_task.pk).sample == 0  # 2 of 3 open: enough
    Comparison.objects.filter(task=loop_task).first().delete()
    assert services.tick(task_id=loop_task.pk).sample == 2  # 1 of 3 open: top up to 3


def test_retry_delay_grows_after_repeated_failures():
    from training.services.runs import retry_delay_seconds

    delays = [retry_delay_seconds(consecutive_failures=n, base=30) for n in range(6)]
    assert delays == [0, 0, 30, 60, 120, 240]
    assert retry_delay_seconds(consecutive_failures=30, base=30) == 3600


def test_tick_backs_off_after_repeated_failures(loop_task, settings):
    settings.TRAINING_RETRY_SECONDS = 600
    add_labels(loop_task, 2)
    for _ in range(2):
        run = _running_run(loop_task, TrainingRun.Kind.REWARD)
        services.fail_run(run_id=run.pk, error="boom")
    assert services.tick(task_id=loop_task.pk).reward_run is None  # waiting 600 s
    TrainingRun.objects.filter(kind=TrainingRun.Kind.REWARD).update(
        finished_at=timezone.now() - timedelta(seconds=601)
    )
    assert services.tick(task_id=loop_task.pk).reward_run is not None


def test_tick_sends_a_lost_queued_run_again_once_per_period(
    loop_task, settings, django_capture_on_commit_callbacks
):
    settings.TRAINING_STALE_SECONDS = 60
    run = TrainingRun.objects.create(task=loop_task, kind=TrainingRun.Kind.REWARD)
    TrainingRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks():
        first = services.tick(task_id=loop_task.pk)
        second = services.tick(task_id=loop_task.pk)
    assert first.redelivered == [run.pk]
    assert second.redelivered == []  # sent again at most once per TRAINING_STALE_SECONDS
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.QUEUED and run.heartbeat_at is not None
