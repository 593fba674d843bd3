"""Training runs: scheduling, claiming (exactly one worker), heartbeats, finishing, reaping.

At most one run per task and kind is queued or running (the ``one_live_run_per_task_and_kind``
constraint), and a run is claimed with one conditional UPDATE, so a duplicate delivery of the
same message does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from labeling.models import Task
from training import selectors
from training.models import TrainingRun

logger = logging.getLogger(__name__)


def _enqueue(run: TrainingRun) -> None:
    from training import tasks  # tasks import services; this direction is lazy

    job = tasks.train_reward_model if run.kind == TrainingRun.Kind.REWARD else tasks.train_policy
    job.delay_on_commit(run.pk)


@transaction.atomic
def schedule_run(*, task: Task, kind: str, target_label_count: int = 0) -> TrainingRun | None:
    """Queue a run and enqueue its job after commit; None when one is already live."""
    if selectors.live_run(task_id=task.pk, kind=kind) is not None:
        return None
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                task=task, kind=kind, target_label_count=target_label_count
            )
    except IntegrityError:  # a concurrent tick queued one first
        return None
    _enqueue(run)
    return run


def redeliver_lost_runs(*, task_id: int, older_than_seconds: int) -> list[int]:
    """Enqueue again the queued runs whose message may have been lost (a broker restart
    without persistence): at most once per ``older_than_seconds`` per run. A duplicate
    delivery is harmless, since only one worker can claim a queued run."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=older_than_seconds)
    redelivered = []
    for run in selectors.queued_runs_enqueued_before(task_id=task_id, before=cutoff):
        # The queued run's heartbeat_at records when its message was last sent.
        sent = (
            TrainingRun.objects.filter(
                pk=run.pk, status=TrainingRun.Status.QUEUED, created_at__lt=cutoff
            )
            .exclude(heartbeat_at__gte=cutoff)
            .update(heartbeat_at=now)
        )
        if sent:
            logger.warning("training run %s still queued: sending its job again", run.pk)
            _enqueue(run)
            redelivered.append(run.pk)
    return redelivered


def retry_delay_seconds(*, consecutive_failures: int, base: int, cap: int = 3600) -> int:
    """Back-off before retrying a kind of run that failed ``consecutive_failures`` times in a
    row: none after one failure (a lost worker is retried at once), then base, 2 base, ..."""
    if consecutive_failures <= 1:
        return 0
    return int(min(cap, base * 2 ** (consecutive_failures - 2)))


def claim_run(*, run_id: int, worker: str) -> TrainingRun | None:
    """Move a queued run to running for this worker; None when it is not queued (claimed by a
    duplicate delivery, finished, failed or gone)."""
    now = timezone.now()
    claimed = TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.QUEUED).update(
        status=TrainingRun.Status.RUNNING,
        worker=worker[:200],
        attempts=F("attempts") + 1,
        started_at=now,
        heartbeat_at=now,
    )
    if not claimed:
        return None
    return TrainingRun.objects.select_related("task").get(pk=run_id)


def heartbeat(*, run_id: int) -> bool:
    """Record that the worker is alive; False when the run is no longer running (reaped or
    cancelled), so the worker should stop."""
    return bool(
        TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.RUNNING).update(
            heartbeat_at=timezone.now()
        )
    )


@transaction.atomic
def append_run_metrics(*, run_id: int, entries: Sequence[dict[str, Any]]) -> None:
    """Append per-step metric dicts to the run's ``metrics`` list."""
    if not entries:
        return
    run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
    if run is None:
        return
    metrics = list(run.metrics or []) + list(entries)
    TrainingRun.objects.filter(pk=run_id).update(metrics=metrics, heartbeat_at=timezone.now())


def set_run_progress(*, run_id: int, progress: float) -> bool:
    """Record how much of a running run's work is done (0..1, for the dashboard); False when
    the run is no longer running."""
    return bool(
        TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.RUNNING).update(
            progress=min(1.0, max(0.0, progress))
        )
    )


def set_checkpoint(*, run_id: int, checkpoint_path: str) -> None:
    TrainingRun.objects.filter(pk=run_id).update(checkpoint_path=checkpoint_path)


def fail_run(*, run_id: int, error: str) -> bool:
    """Mark a running run failed; False when it was not running."""
    return bool(
        TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.RUNNING).update(
            status=TrainingRun.Status.FAILED, error=error[:10_000], finished_at=timezone.now()
        )
    )


def succeed_run_without_output(*, run_id: int, note: str) -> bool:
    """Finish a running run that had nothing to do (e.g. PPO already complete)."""
    return bool(
        TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.RUNNING).update(
            status=TrainingRun.Status.SUCCEEDED, error=note, finished_at=timezone.now()
        )
    )


def reap_stale_runs(*, stale_seconds: int, task_id: int | None = None) -> list[int]:
    """Fail running runs whose heartbeat is older than ``stale_seconds`` (their worker died),
    so that the next tick can schedule a new one. Returns the ids failed."""
    cutoff = timezone.now() - timedelta(seconds=stale_seconds)
    stale = selectors.stale_runs(before=cutoff)
    if task_id is not None:
        stale = stale.filter(task_id=task_id)
    failed = []
    for run_id in stale.values_list("pk", flat=True):
        done = TrainingRun.objects.filter(
            pk=run_id, status=TrainingRun.Status.RUNNING, heartbeat_at__lt=cutoff
        ).update(
            status=TrainingRun.Status.FAILED,
            error=f"worker lost: no heartbeat for {stale_seconds} s",
            finished_at=timezone.now(),
        )
        if done:
            logger.warning("training run %s failed: worker lost", run_id)
            failed.append(run_id)
    return failed


__all__ = [
    "append_run_metrics",
    "claim_run",
    "fail_run",
    "heartbeat",
    "reap_stale_runs",
    "redeliver_lost_runs",
    "retry_delay_seconds",
    "schedule_run",
    "set_checkpoint",
    "set_run_progress",
    "succeed_run_without_output",
]
