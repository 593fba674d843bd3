"""The run bodies of the worker: sampling comparisons, training a reward model, training a
PPO chunk; each publishes what it made through the services (imports torch: only Celery tasks
import this module, inside the task body). Artifacts: :mod:`training.artifacts`; the run's
heartbeat: :mod:`training.worker`; loaded models: :mod:`training.model_cache`.
"""

from __future__ import annotations

import logging
import shutil
import time

from labeling.models import Task
from training import artifacts, scoring, selectors, services
from training.ml import checkpoint as ml_checkpoint
from training.ml.ppo import train_policy
from training.ml.reward import train_reward_model
from training.ml.sampling import sample_responses
from training.model_cache import cached_model, policy_model_path
from training.models import PolicyVersion, RewardModelVersion, TrainingRun
from training.task_settings import training_config
from training.worker import heartbeating, refresh_db

logger = logging.getLogger(__name__)


# --- sampling -----------------------------------------------------------------------------


def sample_comparisons(task_id: int, policy_version_id: int, n: int) -> int:
    """Top the task's buffer up with at most ``n`` comparisons from the version; how many."""
    task = Task.objects.get(pk=task_id)
    wanted = services.sampling_deficit(task=task, policy_version_id=policy_version_id, requested=n)
    if wanted <= 0:
        return 0
    prompts = selectors.prompts_to_sample(task_id=task_id, n=wanted)
    if not prompts:
        logger.warning("task %s has no train prompts to sample", task_id)
        return 0
    prompts = (prompts * (wanted // len(prompts) + 1))[:wanted]  # fewer prompts than wanted
    version = PolicyVersion.objects.get(pk=policy_version_id)
    config = training_config(task)
    model, tokenizer = cached_model(policy_model_path(task, version))
    queries = [p.token_ids if p.token_ids else p.text for p in prompts]
    if any(isinstance(q, str) for q in queries):
        queries = [p.text for p in prompts]
    started = time.perf_counter()
    samples = sample_responses(model, tokenizer, queries, config.sampling)
    logger.info(
        "task %s: sampled %d comparisons from policy v%d in %.1f s",
        task_id, len(samples), version.number, time.perf_counter() - started,
    )  # fmt: skip
    refresh_db()
    created = services.create_comparisons(
        task=task,
        policy_version_id=policy_version_id,
        sampled=[
            services.SampledComparison(
                prompt_id=prompt.pk,
                query_token_ids=sample.query_token_ids,
                samples=sample.responses,
                sample_token_ids=sample.response_token_ids,
            )
            for prompt, sample in zip(prompts, samples, strict=True)
        ],
    )
    return len(created)


# --- reward model --------------------------------------------------------------------------


def run_reward_training(run: TrainingRun) -> RewardModelVersion | None:
    task = run.task
    config = training_config(task)
    labels = selectors.training_labels(task_id=task.pk).filter(pk__lte=_max_label_id(task.pk))
    label_ids = list(labels.order_by("pk").values_list("pk", flat=True))
    records = list(selectors.paper_records(labels=labels))
    previous = selectors.latest_reward_model(task_id=task.pk)
    init_from = previous.artifact_path if previous and config.reward.warm_start else None
    queries = [p.text for p in selectors.prompts_to_sample(task_id=task.pk, n=64)]
    out_dir = artifacts.task_dir(task.pk) / "reward" / f"run-{run.pk}"
    started = time.perf_counter()
    logger.info(
        "task %s: reward run %s on %d labels (%s)",
        task.pk, run.pk, len(records), "warm start" if init_from else "from the base model",
    )  # fmt: skip
    with heartbeating(run.pk) as check:
        result = train_reward_model(
            records,
            task.base_model,
            out_dir,
            config=config.reward,
            sampling=config.sampling,
            normalization_queries=queries or None,
            init_from=init_from,
            progress=lambda done, total: check(),
        )
        check()
    refresh_db()
    metrics = {
        "label_count": len(label_ids),
        "held_out_accuracy": result.metrics.get("holdout_accuracy"),
        "held_out_loss": result.metrics.get("holdout_loss"),
        "train_loss": result.metrics.get("train_loss"),
        "train_accuracy": result.metrics.get("train_accuracy"),
        "labels_per_second": result.metrics.get("labels_per_second"),
        "seconds": time.perf_counter() - started,
        "warm_start": init_from is not None,
    }
    services.append_run_metrics(
        run_id=run.pk,
        entries=[
            {
                "label_count": len(label_ids),
                **{k: v for k, v in metrics.items() if isinstance(v, int | float)},
            }
        ],
    )
    version = services.publish_reward_model_version(
        run_id=run.pk,
        artifact_path=str(result.out_dir),
        gain=result.gain,
        bias=result.bias,
        label_ids=label_ids,
        metrics=metrics,
    )
    if version is not None:
        logger.info(
            "task %s: published reward model v%d: held-out accuracy %s, %.0f s",
            task.pk, version.number, metrics["held_out_accuracy"], metrics["seconds"],
        )  # fmt: skip
        scoring.score_comparisons(version)
    return version


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
    prompts = list(task.prompts.filter(split="train").values_list("text", flat=True))
    if not prompts:
        services.fail_run(run_id=run.pk, error="the task has no train prompts")
        return None

    logger.info(
        "task %s: policy run %s, PPO episodes %d -> %d against reward model v%d",
        task.pk, run.pk, done, target, reward_model.number,
    )  # fmt: skip

    def progress(done_now: int, total: int, metrics: dict[str, float]) -> None:
        check()
        logger.info(
            "task %s: PPO episode %d: score %.3f, KL %.3f, beta %.4f",
            task.pk, metrics.get("episodes", 0), metrics.get("score", float("nan")),
            metrics.get("kl", float("nan")), metrics.get("beta", float("nan")),
        )  # fmt: skip
        services.append_run_metrics(
            run_id=run.pk, entries=[{"episode": int(metrics.get("episodes", 0)), **metrics}]
        )

    with heartbeating(run.pk) as check:
        if target > done:
            train_policy(
                task.base_model,
                reward_model.artifact_path,
                prompts,
                state_dir,
                config=config.ppo,
                sampling=config.sampling,
                episodes=target - done,
                progress=progress,
                checkpoint_every=1,
            )
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
        logger.info(
            "task %s: published policy v%d (%d episodes)", task.pk, version.number, version.episodes
        )
        shutil.rmtree(state_dir, ignore_errors=True)
        scoring.write_eval_samples(version, reward_model, config)
    return version
