"""Model versions: the base policy, publishing trained versions, promotion, rollback, and the
retirement of comparisons sampled from superseded policies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from labeling.locks import lock_comparisons_in_order, locked
from labeling.models import Comparison, Task
from training import selectors
from training.models import PolicyVersion, RewardModelVersion, TrainingRun, VersionStatus


class VersionError(Exception):
    """A promotion or rollback that cannot be done (shown to the researcher)."""


def _lock_task(task_id: int) -> None:
    """Serialize version changes of one task (labels of the task still commit meanwhile)."""
    locked(Task.objects.filter(pk=task_id)).values_list("pk", flat=True).first()


@transaction.atomic
def ensure_base_policy(*, task: Task) -> PolicyVersion:
    """Policy v0 (the task's base model), created and promoted on first use."""
    _lock_task(task.pk)
    base = PolicyVersion.objects.filter(task=task, number=0).first()
    if base is None:
        base = PolicyVersion.objects.create(
            task=task,
            number=0,
            artifact_path="",
            status=VersionStatus.PROMOTED,
            promoted_at=timezone.now(),
            metrics={"base_model": task.base_model},
        )
    return base


@transaction.atomic
def retire_superseded_comparisons(*, task: Task, keep_version_id: int) -> int:
    """Retire open, unlabeled comparisons sampled from any policy version other than
    ``keep_version_id``. Comparisons without a version (imported) and gold ones stay; labels
    of leases still held on a retired comparison are still accepted."""
    superseded = Comparison.objects.filter(
        task=task,
        status=Comparison.Status.OPEN,
        label_count=0,
        is_gold=False,
        policy_version__isnull=False,
    ).exclude(policy_version_id=keep_version_id)
    # Locked rows still match (checked again under the lock) and cannot change until commit.
    retiring = lock_comparisons_in_order(superseded)
    return Comparison.objects.filter(pk__in=retiring).update(status=Comparison.Status.RETIRED)


def _promote(*, version: PolicyVersion, retire: bool) -> None:
    now = timezone.now()
    PolicyVersion.objects.filter(task_id=version.task_id, status=VersionStatus.PROMOTED).exclude(
        pk=version.pk
    ).update(status=VersionStatus.READY)
    PolicyVersion.objects.filter(pk=version.pk).update(
        status=VersionStatus.PROMOTED, promoted_at=now
    )
    version.status, version.promoted_at = VersionStatus.PROMOTED, now
    if retire:
        retire_superseded_comparisons(task=version.task, keep_version_id=version.pk)


@transaction.atomic
def promote_policy_version(*, version: PolicyVersion) -> PolicyVersion:
    """Make ``version`` the one that samples new comparisons (the previous one stays ready);
    unlabeled comparisons of other versions retire unless the task's schedule says not to."""
    _lock_task(version.task_id)
    version.refresh_from_db()
    if version.status == VersionStatus.FAILED:
        raise VersionError(f"policy v{version.number} failed and cannot be promoted")
    if version.status != VersionStatus.PROMOTED:
        schedule = selectors.task_schedule(task=version.task)
        _promote(version=version, retire=schedule.retire_superseded)
    return version


@transaction.atomic
def rollback_policy(*, task: Task) -> PolicyVersion:
    """Retire the promoted policy version and promote the one before it (its parent, or the
    newest earlier version still usable). PPO then continues from the promoted version."""
    _lock_task(task.pk)
    current = selectors.promoted_policy(task_id=task.pk)
    if current is None:
        raise VersionError("no promoted policy version to roll back")
    target = current.parent
    if target is None or target.status in (VersionStatus.RETIRED, VersionStatus.FAILED):
        target = (
            PolicyVersion.objects.filter(task=task, number__lt=current.number)
            .exclude(status__in=[VersionStatus.RETIRED, VersionStatus.FAILED])
            .order_by("-number")
            .first()
        )
    if target is None:
        raise VersionError(f"policy v{current.number} has no earlier version to roll back to")
    PolicyVersion.objects.filter(pk=current.pk).update(status=VersionStatus.RETIRED)
    # Versions published after the target (a branch being undone) are retired with it.
    PolicyVersion.objects.filter(task=task, number__gt=target.number).exclude(
        status=VersionStatus.FAILED
    ).update(status=VersionStatus.RETIRED)
    schedule = selectors.task_schedule(task=task)
    target.refresh_from_db()
    _promote(version=target, retire=schedule.retire_superseded)
    return target


def _locked_running_run(run_id: int) -> TrainingRun | None:
    return locked(TrainingRun.objects.filter(pk=run_id)).first()


@transaction.atomic
def publish_reward_model_version(
    *,
    run_id: int,
    artifact_path: str,
    gain: float,
    bias: float,
    label_ids: Sequence[int],
    metrics: dict[str, Any],
    label_count: int | None = None,
) -> RewardModelVersion | None:
    """Create the version of a finished reward-model run and finish the run, in one
    transaction (the artifact is already fully written). Idempotent: a run that is no longer
    running publishes nothing and its existing version (or None) is returned. ``label_ids`` are
    the labels trained on; ``label_count`` (default: their number) the labels that existed."""
    run = _locked_running_run(run_id)
    if run is None:
        return None
    if run.status != TrainingRun.Status.RUNNING:
        return run.reward_model_version
    _lock_task(run.task_id)
    parent = selectors.latest_reward_model(task_id=run.task_id)
    version = RewardModelVersion.objects.create(
        task_id=run.task_id,
        number=selectors.next_version_number(model=RewardModelVersion, task_id=run.task_id) or 1,
        parent=parent,
        artifact_path=artifact_path,
        gain=gain,
        bias=bias,
        label_count=len(label_ids) if label_count is None else label_count,
        metrics=metrics,
    )
    version.labels_used.add(*label_ids)
    run.status = TrainingRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.reward_model_version = version
    run.save(update_fields=["status", "finished_at", "reward_model_version"])
    return version


@transaction.atomic
def publish_policy_version(
    *,
    run_id: int,
    artifact_path: str,
    episodes: int,
    metrics: dict[str, Any],
    reward_model_version_id: int | None,
    parent_id: int | None,
) -> PolicyVersion | None:
    """Create the policy version of a finished PPO chunk, promote it when the task's schedule
    says so, and finish the run, all in one transaction (the artifact directory is already
    complete). Idempotent like :func:`publish_reward_model_version`."""
    run = _locked_running_run(run_id)
    if run is None:
        return None
    if run.status != TrainingRun.Status.RUNNING:
        return run.policy_version
    _lock_task(run.task_id)
    task = run.task
    version = PolicyVersion.objects.create(
        task=task,
        number=selectors.next_version_number(model=PolicyVersion, task_id=task.pk),
        parent_id=parent_id,
        reward_model_version_id=reward_model_version_id,
        artifact_path=artifact_path,
        episodes=episodes,
        metrics=metrics,
    )
    schedule = selectors.task_schedule(task=task)
    if schedule.auto_promote:
        _promote(version=version, retire=schedule.retire_superseded)
    run.status = TrainingRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.policy_version = version
    run.reward_model_version_id = reward_model_version_id
    run.save(update_fields=["status", "finished_at", "policy_version", "reward_model_version"])
    return version


@transaction.atomic
def record_prospective_accuracy(
    *, version_id: int, labels: int, accuracy: float | None, loss: float | None
) -> None:
    """Store a reward-model version's accuracy on the labels that arrived after it was trained
    (read-modify-write of its metrics under a row lock)."""
    version = locked(RewardModelVersion.objects.filter(pk=version_id)).first()
    if version is None:
        return
    version.metrics = {
        **(version.metrics or {}),
        "prospective_labels": labels,
        "prospective_accuracy": accuracy,
        "prospective_loss": loss,
    }
    version.save(update_fields=["metrics"])
