"""The run bodies of the worker: sampling comparisons (:mod:`training.sampler`, re-exported
here), training a reward model, training a PPO chunk; each publishes what it made through
the services (imports torch: only Celery tasks import this module, inside the task body).
Artifacts: :mod:`training.artifacts`; the run's heartbeat: :mod:`training.worker`; loaded
models: :mod:`training.model_cache`.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from typing import Any

from training import artifacts, launcher, scoring, selectors, services
from training.ml import checkpoint as ml_checkpoint
from training.ml.labels import bounded_replay
from training.models import PolicyVersion, RewardModelVersion, TrainingRun
from training.sampler import first_round_candidates as first_round_candidates
from training.sampler import sample_comparisons as sample_comparisons
from training.task_settings import training_config
from training.worker import heartbeating, refresh_db

logger = logging.getLogger(__name__)


# --- reward model --------------------------------------------------------------------------


def run_reward_training(run: TrainingRun) -> RewardModelVersion | None:
    """Train the next reward model on the labels so far. Warm-started (``reward.warm_start``):
    the labels new since the previous model plus a bounded replay of older ones; else all of
    them. First the previous model is scored on the new labels, which it never saw: its
    prospective accuracy, stored with that version. The body runs in this process or under
    torchrun (training.launcher)."""
    task = run.task
    config = training_config(task)
    cutoff = _max_label_id(task.pk)
    labels = selectors.training_labels(task_id=task.pk).filter(pk__lte=cutoff)
    previous = selectors.latest_reward_model(task_id=task.pk)
    init_from = previous.artifact_path if previous and config.reward.warm_start else None
    seen_up_to = selectors.reward_model_label_cutoff(version=previous) if previous else 0
    fresh = list(selectors.paper_records(labels=labels.filter(pk__gt=seen_up_to)))
    started = time.perf_counter()
    if init_from is not None:
        old = labels.filter(pk__lte=seen_up_to).order_by("pk")
        old_ids = list(old.values_list("pk", flat=True))
        fresh_ids = [r["label_id"] for r in fresh]
        label_ids = bounded_replay(old_ids, fresh_ids, config.reward.replay_ratio, run.pk)
        records = list(selectors.paper_records(labels=labels.filter(pk__in=label_ids)))
    else:
        records = list(selectors.paper_records(labels=labels))
    label_ids = [r["label_id"] for r in records]
    queries = [p.text for p in selectors.prompts_to_sample(task_id=task.pk, n=64)]
    out_dir = artifacts.task_dir(task.pk) / "reward" / f"run-{run.pk}"
    logger.debug(
        "task %s: reward run %s on %d labels (%d new; %s)",
        task.pk, run.pk, len(records), len(fresh),
        "warm start" if init_from else "from the base model",
    )  # fmt: skip
    spec = {
        "kind": "reward",
        "config": config.to_dict(),
        "base": task.base_model,
        "out_dir": str(out_dir),
        "labels": records,
        "normalization_queries": queries or None,
        "init_from": init_from,
        "evaluate": {"directory": previous.artifact_path, "labels": fresh} if previous else None,
    }
    with heartbeating(run.pk) as check:
        report = progress_reporter(run.pk)

        def progress(event: dict[str, Any]) -> None:
            total = event["total"]
            report(event["done"] / total if total else 0.0)

        result = launcher.run_body(spec, artifacts.run_work_dir(task.pk, run.pk), progress, check)
        check()
    refresh_db()
    prospective_note = ""
    prospective = result.get("prospective")
    if previous is not None and prospective:
        services.record_prospective_accuracy(
            version_id=previous.pk,
            labels=int(prospective["labels"]),
            accuracy=prospective.get("accuracy"),
            loss=prospective.get("loss"),
        )
        prospective_note = (
            f"; v{previous.number} scored {_fmt(prospective.get('accuracy'))} on the "
            f"{int(prospective['labels'])} labels after it"
        )
    trained = result["metrics"]
    label_count = labels.count()
    metrics = {
        "label_count": label_count,
        "last_label_id": cutoff,
        "labels_trained": len(records),
        "labels_new": len(fresh),
        "held_out_accuracy": trained.get("holdout_accuracy"),
        "held_out_loss": trained.get("holdout_loss"),
        "train_loss": trained.get("train_loss"),
        "train_accuracy": trained.get("train_accuracy"),
        "labels_per_second": trained.get("labels_per_second"),
        "seconds": time.perf_counter() - started,
        "warm_start": init_from is not None,
        "processes": trained.get("processes"),
    }
    services.append_run_metrics(
        run_id=run.pk,
        entries=[{k: v for k, v in metrics.items() if isinstance(v, int | float)}],
    )
    version = services.publish_reward_model_version(
        run_id=run.pk,
        artifact_path=str(result["out_dir"]),
        gain=float(result["gain"]),
        bias=float(result["bias"]),
        label_ids=label_ids,
        label_count=label_count,
        metrics=metrics,
    )
    if version is not None:
        # Scoring for the dashboard runs on the sampling worker: the next PPO chunk, which
        # the training worker takes up now, does not wait for it.
        from training import tasks

        tasks.score_with_reward_model.delay_on_commit(version.pk)
        logger.info(
            "task %s: reward model v%d: %d labels (%d trained on, %d new, %s), train accuracy "
            "%s%s; %.0f s",
            task.pk, version.number, label_count, len(records), len(fresh),
            "warm start" if init_from else "from the base model",
            _fmt(metrics["train_accuracy"]), prospective_note, time.perf_counter() - started,
        )  # fmt: skip
    return version


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "n/a"


def _max_label_id(task_id: int) -> int:
    last = selectors.training_labels(task_id=task_id).order_by("-pk").values_list("pk", flat=True)
    return last.first() or 0


# --- policy (PPO) --------------------------------------------------------------------------


def run_policy_training(run: TrainingRun) -> PolicyVersion | None:
    task = run.task
    schedule = selectors.task_schedule(task=task)
    config = training_config(task)
    config.ppo.total_episodes = max(schedule.episodes, config.ppo.batch_size)
    reward_model = selectors.latest_reward_model(task_id=task.pk)
    if reward_model is None:
        services.fail_run(run_id=run.pk, error="no reward model yet")
        return None
    head = selectors.ppo_head(task_id=task.pk)
    start = head.episodes if head is not None else 0
    batch = config.ppo.batch_size
    chunk = max(batch, schedule.chunk_episodes // batch * batch)
    target = min(start + chunk, config.ppo.total_episodes // batch * batch)
    if target <= start:
        services.succeed_run_without_output(run_id=run.pk, note="PPO schedule complete")
        return None
    state_dir = artifacts.task_dir(task.pk) / "ppo" / f"from-v{head.number if head else 0}"
    artifacts.seed_ppo_state(state_dir, head)
    services.set_checkpoint(run_id=run.pk, checkpoint_path=str(state_dir))
    done = artifacts.episodes_in(state_dir)
    prompts = selectors.train_queries(task_id=task.pk)
    if not prompts:
        services.fail_run(run_id=run.pk, error="the task has no train prompts")
        return None

    started = time.perf_counter()

    def progress(event: dict[str, Any]) -> None:
        metrics = event["metrics"]
        episode = int(metrics.get("episodes", 0))
        logger.debug(
            "task %s: PPO episode %d: score %.3f, KL %.3f, beta %.4f",
            task.pk, episode, metrics.get("score", float("nan")),
            metrics.get("kl", float("nan")), metrics.get("beta", float("nan")),
        )  # fmt: skip
        services.append_run_metrics(run_id=run.pk, entries=[{"episode": episode, **metrics}])
        services.set_run_progress(
            run_id=run.pk, progress=(episode - start) / (target - start) if target > start else 1
        )

    spec = {
        "kind": "policy",
        "config": config.to_dict(),
        "base": task.base_model,
        "reward": reward_model.artifact_path,
        "queries": prompts,
        "out_dir": str(state_dir),
        "episodes": target - done,
        "checkpoint_every": 1,
    }
    with heartbeating(run.pk) as check:
        if target > done:
            work_dir = artifacts.run_work_dir(task.pk, run.pk)
            launcher.run_body(spec, work_dir, progress, check)
        check()
    refresh_db()
    final = ml_checkpoint.latest_checkpoint(state_dir)
    if final is None:
        services.fail_run(run_id=run.pk, error="PPO wrote no checkpoint")
        return None
    state = artifacts.checkpoint_state(final)
    artifact = artifacts.publish_policy_checkpoint(final, task.pk, run.pk)
    history = state.get("history") or []
    last = history[-1] if history else {}
    version = services.publish_policy_version(
        run_id=run.pk,
        artifact_path=str(artifact),
        episodes=int(state["episodes"]),
        metrics={
            "episodes": int(state["episodes"]),
            "score": last.get("score"),
            "kl": last.get("kl"),
            "beta": last.get("beta"),
            "entropy": last.get("entropy"),
            "reward_model_version": reward_model.number,
        },
        reward_model_version_id=reward_model.pk,
        parent_id=head.pk if head else None,
    )
    if version is not None and version.artifact_path == str(artifact):
        shutil.rmtree(state_dir, ignore_errors=True)
        scoring.write_eval_samples(version, reward_model, config)
        logger.info(
            "task %s: policy v%d: PPO episodes %d -> %d against reward model v%d: score %s, "
            "KL %s, beta %s; %.0f s",
            task.pk, version.number, start, version.episodes, reward_model.number,
            _fmt(last.get("score")), _fmt(last.get("kl")), _fmt(last.get("beta")),
            time.perf_counter() - started,
        )  # fmt: skip
    return version


def score_with_reward_model(reward_model_version_id: int) -> int:
    """Score the recent comparisons (the dashboard's agreement with the reward model) and
    v0's eval answers (the sample browser's baseline) with a new reward model; how many
    comparisons were scored."""
    version = RewardModelVersion.objects.select_related("task").get(pk=reward_model_version_id)
    started = time.perf_counter()
    scored = scoring.score_comparisons(version)
    base = selectors.base_policy(task_id=version.task_id)
    answers = (
        scoring.rescore_eval_samples(base, version, training_config(version.task)) if base else 0
    )
    logger.info(
        "task %s: reward model v%d scored %d comparisons and v0's %d eval answers in %.1f s",
        version.task_id, version.number, scored, answers, time.perf_counter() - started,
    )  # fmt: skip
    return scored


# --- eval answers ---------------------------------------------------------------------------


def sample_eval_answers(policy_version_id: int) -> int:
    """A policy version's answers to the eval prompts, once (v0's, when the task starts),
    scored by the latest reward model if one exists; how many were written."""
    version = PolicyVersion.objects.select_related("task").get(pk=policy_version_id)
    if not selectors.needs_eval_samples(version=version):
        return 0
    started = time.perf_counter()
    reward_model = selectors.latest_reward_model(task_id=version.task_id)
    written = scoring.write_eval_samples(version, reward_model, training_config(version.task))
    logger.info(
        "task %s: policy v%d answered %d eval prompts in %.1f s",
        version.task_id, version.number, written, time.perf_counter() - started,
    )  # fmt: skip
    return written


def progress_reporter(run_id: int, every: float = 2.0) -> Callable[[float], None]:
    """Record a run's progress (0..1) for the dashboard, at most once per ``every`` seconds."""
    last = 0.0

    def report(fraction: float) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= every or fraction >= 1:
            last = now
            services.set_run_progress(run_id=run_id, progress=fraction)

    return report
