"""Celery tasks: thin wrappers taking ids. The scheduler decides (training.services.loop),
the worker glue trains (training.jobs, imported inside the task bodies: it imports torch).

Every task is idempotent: runs are claimed with a conditional UPDATE, so a redelivered or
duplicated message does nothing; sampling tops a buffer up to its size. ``acks_late`` is on
for all of them, so a message whose worker died is redelivered rather than lost.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from training import selectors, services, worker

logger = logging.getLogger(__name__)
TRAIN_TIME_LIMIT = int(getattr(settings, "CELERY_TASK_TIME_LIMIT", 4 * 3600))
SAMPLE_TIME_LIMIT = int(getattr(settings, "TRAINING_SAMPLE_TIME_LIMIT", 1800))


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50, ignore_result=True)
def tick(task_id: int) -> dict[str, object]:
    """Decide what is due for one task and enqueue it."""
    result = services.tick(task_id=task_id)
    return result.__dict__


@shared_task(acks_late=True, time_limit=120, soft_time_limit=110, ignore_result=True)
def tick_all() -> int:
    """Beat: enqueue a tick of every active task (each tick reaps its task's dead runs and
    reclaims its expired leases)."""
    ids = selectors.active_task_ids()
    for task_id in ids:
        tick.delay(task_id)
    return len(ids)


@shared_task(
    acks_late=True,
    time_limit=SAMPLE_TIME_LIMIT,
    soft_time_limit=SAMPLE_TIME_LIMIT - 30,
    ignore_result=True,
)
def sample_comparisons(task_id: int, policy_version_id: int, n: int) -> int:
    """Sample up to ``n`` comparisons from a policy version (sampling queue)."""
    from training import jobs

    return jobs.sample_comparisons(task_id, policy_version_id, n)


@shared_task(
    acks_late=True,
    time_limit=SAMPLE_TIME_LIMIT,
    soft_time_limit=SAMPLE_TIME_LIMIT - 30,
    ignore_result=True,
)
def sample_eval_answers(policy_version_id: int) -> int:
    """Have a policy version answer the eval prompts, once (sampling queue): v0's baseline
    for the sample browser; later versions answer them when they are published."""
    from training import jobs

    return jobs.sample_eval_answers(policy_version_id)


@shared_task(
    acks_late=True,
    time_limit=SAMPLE_TIME_LIMIT,
    soft_time_limit=SAMPLE_TIME_LIMIT - 30,
    ignore_result=True,
)
def score_with_reward_model(reward_model_version_id: int) -> int:
    """Score recent comparisons and v0's eval answers with a new reward model (sampling
    queue: off the training worker, which goes on to the next PPO chunk)."""
    from training import jobs

    return jobs.score_with_reward_model(reward_model_version_id)


def _run_training(run_id: int, body_name: str) -> int | None:
    from training import jobs

    run = services.claim_run(run_id=run_id, worker=worker.worker_name())
    if run is None:
        logger.info("run %s is not queued: nothing to do (duplicate delivery?)", run_id)
        return None
    try:
        version = getattr(jobs, body_name)(run)
    except worker.RunLost as lost:
        logger.warning("%s", lost)
        return None
    except BaseException as error:  # the soft time limit included
        services.fail_run(run_id=run_id, error=f"{type(error).__name__}: {error}")
        raise
    finally:
        tick.delay(run.task_id)
    return version.pk if version is not None else None


@shared_task(
    acks_late=True,
    time_limit=TRAIN_TIME_LIMIT,
    soft_time_limit=TRAIN_TIME_LIMIT - 60,
    ignore_result=True,
)
def train_reward_model(run_id: int) -> int | None:
    """Retrain the reward model on all labels so far; publish a version (training queue)."""
    return _run_training(run_id, "run_reward_training")


@shared_task(
    acks_late=True,
    time_limit=TRAIN_TIME_LIMIT,
    soft_time_limit=TRAIN_TIME_LIMIT - 60,
    ignore_result=True,
)
def train_policy(run_id: int) -> int | None:
    """Train one PPO chunk against the latest reward model; publish a version (training)."""
    return _run_training(run_id, "run_policy_training")
