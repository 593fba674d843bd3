"""The scheduler: one ``tick`` per task decides what the workers do next.

A tick is cheap (a handful of queries) and idempotent: it may run on every label commit, on
every beat, twice at once. It (1) fails runs whose worker died and sends again the jobs of
runs queued for too long (a lost message), (2) reclaims expired leases, (3) has the promoted
policy answer the eval prompts once (v0's baseline for the sample browser), (4) tops the
unlabeled comparisons from the promoted policy up to ``buffer`` when half are left (while a
training run is live, only when labelers would otherwise run short:
``schedule.comparisons_to_sample``), (5) queues a reward-model retrain when the label count
reached the next threshold (until the first policy exists, not ahead of a due PPO chunk), and
(6) queues the next PPO chunk once a reward model exists and l(n) labels do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from labeling.models import Task
from labeling.services.leasing import reclaim_expired_leases
from training import schedule as loop_schedule
from training import selectors
from training.models import TrainingRun
from training.schedule import Schedule
from training.services.runs import (
    reap_stale_runs,
    redeliver_lost_runs,
    retry_delay_seconds,
    schedule_run,
)
from training.services.versions import ensure_base_policy, retire_superseded_comparisons

logger = logging.getLogger(__name__)


def stale_seconds() -> int:
    return int(getattr(settings, "TRAINING_STALE_SECONDS", 300))


def _backing_off(*, task_id: int, kind: str) -> bool:
    """True while a kind of run that keeps failing waits before its next try."""
    failures, last_end = selectors.recent_failures(task_id=task_id, kind=kind)
    delay = retry_delay_seconds(
        consecutive_failures=failures, base=int(getattr(settings, "TRAINING_RETRY_SECONDS", 30))
    )
    return bool(delay and last_end and timezone.now() < last_end + timedelta(seconds=delay))


@dataclass
class TickResult:
    task_id: int
    skipped: str = ""
    reaped: list[int] = field(default_factory=list)
    redelivered: list[int] = field(default_factory=list)
    reclaimed: int = 0
    sample: int = 0
    eval_samples: bool = False
    reward_run: int | None = None
    reward_waits: bool = False
    policy_run: int | None = None


def _enqueue_sampling(*, task_id: int, policy_version_id: int, n: int) -> None:
    from training import tasks

    tasks.sample_comparisons.delay_on_commit(task_id, policy_version_id, n)


def _enqueue_eval_samples(*, version_id: int) -> bool:
    """Have a policy version answer the eval prompts, at most once per ``stale_seconds`` (the
    job itself does nothing when its samples exist)."""
    from training import tasks

    if not cache.add(f"training:eval-samples:{version_id}", 1, stale_seconds()):
        return False
    tasks.sample_eval_answers.delay_on_commit(version_id)
    return True


def _sample(*, task: Task, schedule: Schedule, promoted_id: int) -> int:
    """Enqueue a top-up of the promoted policy's comparisons; how many were asked for."""
    if task.labels.count() >= task.label_budget:
        return 0
    open_count = selectors.open_comparison_count(task_id=task.pk, policy_version_id=promoted_id)
    if open_count > schedule.buffer // 2:
        return 0  # the common case: two queries, no more
    since = timezone.now() - timedelta(seconds=schedule.lookahead_seconds)
    wanted = loop_schedule.comparisons_to_sample(
        schedule,
        open_count=open_count,
        demand=selectors.comparisons_started_since(task_id=task.pk, since=since),
        training_live=selectors.any_live_run(task_id=task.pk),
    )
    if wanted:
        _enqueue_sampling(task_id=task.pk, policy_version_id=promoted_id, n=wanted)
    return wanted


@transaction.atomic
def tick(*, task_id: int) -> TickResult:
    result = TickResult(task_id=task_id)
    task = Task.objects.filter(pk=task_id).first()
    if task is None or task.status != Task.Status.ACTIVE:
        result.skipped = "task not active"
        return result
    try:
        schedule = selectors.task_schedule(task=task)
    except ValueError as error:
        logger.error("task %s: invalid schedule: %s", task_id, error)
        result.skipped = str(error)
        return result
    result.reaped = reap_stale_runs(stale_seconds=stale_seconds(), task_id=task_id)
    result.redelivered = redeliver_lost_runs(task_id=task_id, older_than_seconds=stale_seconds())
    result.reclaimed = reclaim_expired_leases(task=task)

    ensure_base_policy(task=task)
    promoted = selectors.promoted_policy(task_id=task_id)
    if promoted is not None:
        if schedule.retire_superseded:
            retire_superseded_comparisons(task=task, keep_version_id=promoted.pk)
        if selectors.needs_eval_samples(version=promoted):
            result.eval_samples = _enqueue_eval_samples(version_id=promoted.pk)
        result.sample = _sample(task=task, schedule=schedule, promoted_id=promoted.pk)

    label_count = selectors.training_label_count(task_id=task_id)
    reward_model = selectors.latest_reward_model(task_id=task_id)
    head = selectors.ppo_head(task_id=task_id)
    episodes_done = head.episodes if head is not None else 0
    policy_due = (
        reward_model is not None
        and loop_schedule.policy_chunk_due(schedule, episodes_done, label_count)
        and not _backing_off(task_id=task_id, kind=TrainingRun.Kind.POLICY)
    )
    threshold = loop_schedule.due_retrain_threshold(
        schedule, label_count, reward_model.label_count if reward_model else None
    )
    if threshold is not None and not _backing_off(task_id=task_id, kind=TrainingRun.Kind.REWARD):
        if loop_schedule.retrain_waits_for_first_policy(
            episodes_done=episodes_done,
            has_reward_model=reward_model is not None,
            policy_due_or_live=policy_due
            or selectors.live_run(task_id=task_id, kind=TrainingRun.Kind.POLICY) is not None,
        ):
            result.reward_waits = True
        else:
            run = schedule_run(
                task=task, kind=TrainingRun.Kind.REWARD, target_label_count=label_count
            )
            result.reward_run = run.pk if run else None

    if policy_due:
        run = schedule_run(task=task, kind=TrainingRun.Kind.POLICY, target_label_count=label_count)
        result.policy_run = run.pk if run else None
    return result
