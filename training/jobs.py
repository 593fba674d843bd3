"""Worker-side glue between the database and ``training.ml`` (imports torch: only Celery tasks
import this module, inside the task body).

Artifacts live under ``settings.ARTIFACTS_DIR / task-<id>``:
``reward/run-<run>/`` (a saved reward model), ``ppo/from-v<n>/`` (PPO state continuing policy
version n, with resumable checkpoints), ``policy/run-<run>/`` (a published policy version: the
final PPO checkpoint, hard-linked, whose ``model/`` is a loadable LM). Every artifact is complete
before the database row that points at it is created.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from django.conf import settings
from django.db import close_old_connections, connection

from labeling.models import Task
from training import selectors, services
from training.ml import checkpoint as ml_checkpoint
from training.ml.config import TrainingConfig
from training.ml.models import atomic_directory, load_model, load_tokenizer
from training.ml.ppo import train_policy
from training.ml.reward import bounded_replay, evaluate_reward_model, train_reward_model
from training.ml.sampling import (
    CANDIDATES_PER_K,
    candidates_for,
    sample_ended_comparisons,
)
from training.models import PolicyVersion, RewardModelVersion, TrainingRun

logger = logging.getLogger(__name__)
DEFAULT_PRESET = "cpu-small"


class RunLost(Exception):
    """The run is no longer ours (reaped as stale): stop without publishing."""


def _refresh_db() -> None:
    """After minutes of training the database connection may have gone stale: drop it (not
    inside a transaction, e.g. a test's)."""
    if not connection.in_atomic_block:
        close_old_connections()


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def task_dir(task_id: int) -> Path:
    return Path(settings.ARTIFACTS_DIR) / f"task-{task_id}"


def training_config(task: Task) -> TrainingConfig:
    """The task's training settings over their preset, with the task's own generation
    fields (K, lengths, temperature, truncation) taking precedence."""
    data = dict(task.training_settings or {})
    preset = data.pop("preset", DEFAULT_PRESET)
    sampling = dict(data.get("sampling") or {})
    sampling.update(
        k=task.k,
        query_length=task.query_length,
        response_length=task.response_length,
        temperature=task.temperature,
        truncate_token=task.truncation_token or None,
        truncate_after=task.truncation_min_position,
    )
    data["sampling"] = sampling
    return TrainingConfig.from_dict(data, base=preset)


def policy_model_path(task: Task, version: PolicyVersion | None) -> str:
    if version is None or not version.artifact_path:
        return task.base_model
    return str(Path(version.artifact_path) / "model")


@lru_cache(maxsize=2)
def _cached_model(path: str) -> tuple[Any, Any]:
    return load_model(path), load_tokenizer(path)


@contextmanager
def heartbeating(run_id: int, every: float | None = None) -> Iterator[Callable[[], None]]:
    """Beat the run's heartbeat from a thread while the body runs; the yielded ``check()``
    raises RunLost once the run was taken away (reaped)."""
    every = every or float(getattr(settings, "TRAINING_HEARTBEAT_SECONDS", 15))
    stop = threading.Event()
    lost = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(every):
                if not services.heartbeat(run_id=run_id):
                    lost.set()
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"heartbeat-{run_id}", daemon=True)
    thread.start()

    def check() -> None:
        if lost.is_set():
            raise RunLost(f"run {run_id} is no longer running")

    try:
        yield check
    finally:
        stop.set()
        thread.join(timeout=5)


def _hardlink_copy(source: Path, final: Path) -> None:
    """Copy a directory tree by hard links (no extra disk), atomically into ``final``."""
    tmp, commit = atomic_directory(final)
    shutil.rmtree(tmp)
    try:
        shutil.copytree(source, tmp, copy_function=os.link)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, tmp)
    commit()


# --- sampling -----------------------------------------------------------------------------


SAMPLING_PASSES = 2
"""A sampling job samples again, from other prompts, for the prompts it had to drop (they
never got K ended responses), so that one job fills the buffer."""
MEASURED_CANDIDATES = 64
"""Once a version has this many sampled candidates, its ended fraction sizes round 1."""
FIRST_ROUND_CONFIDENCE = 0.9
"""Round 1 gives a prompt K ended responses with this probability, at the version's ended
fraction; the few prompts left short get a re-sampling round of their own."""


def first_round_candidates(k: int, version: PolicyVersion) -> int | None:
    """Candidates per prompt for round 1 from the version's ended fraction so far, between K
    and 8*K (None: the default 4*K, while the version has not been measured)."""
    if version.candidates_sampled < MEASURED_CANDIDATES:
        return None
    return candidates_for(
        k,
        version.ended_fraction,
        low=k,
        high=2 * CANDIDATES_PER_K * k,
        confidence=FIRST_ROUND_CONFIDENCE,
    )


def sample_comparisons(task_id: int, policy_version_id: int, n: int) -> int:
    """Top the task's buffer up with at most ``n`` comparisons from the version, each of K
    responses that ended under the truncation rule (what labelers see); how many."""
    task = Task.objects.get(pk=task_id)
    wanted = services.sampling_deficit(task=task, policy_version_id=policy_version_id, requested=n)
    if wanted <= 0:
        return 0
    version = PolicyVersion.objects.get(pk=policy_version_id)
    config = training_config(task)
    model, tokenizer = _cached_model(policy_model_path(task, version))
    candidates = first_round_candidates(config.sampling.k, version)
    started = time.perf_counter()
    created = sampled = ended = rounds = 0
    dropped: list[int] = []  # prompt ids
    for _ in range(SAMPLING_PASSES):
        prompts = selectors.prompts_to_sample(
            task_id=task_id, n=wanted - created, exclude_ids=dropped
        )
        if not prompts:
            if not dropped:
                logger.warning("task %s has no train prompts to sample", task_id)
            break
        prompts = (prompts * ((wanted - created) // len(prompts) + 1))[: wanted - created]
        queries = [p.token_ids if p.token_ids else p.text for p in prompts]
        if any(isinstance(q, str) for q in queries):
            queries = [p.text for p in prompts]
        result = sample_ended_comparisons(
            model, tokenizer, queries, config.sampling, candidates=candidates
        )
        sampled, ended = sampled + result.candidates, ended + result.ended
        rounds = max(rounds, len(result.rounds))
        dropped.extend(prompts[i].pk for i in result.dropped)
        _refresh_db()
        created += len(
            services.create_comparisons(
                task=task,
                policy_version_id=policy_version_id,
                sampled=[
                    services.SampledComparison(
                        prompt_id=prompts[i].pk,
                        query_token_ids=sample.query_token_ids,
                        samples=sample.responses,
                        sample_token_ids=sample.response_token_ids,
                        sample_ended=sample.ended,
                    )
                    for i, sample in result.kept
                ],
                counts=services.SamplingCounts(candidates=result.candidates, ended=result.ended),
            )
        )
        if created >= wanted or not result.dropped:
            break
    logger.info(
        "task %s: policy v%d: %d comparisons of %d ended responses from %d candidates "
        "(%.0f%% ended, %d rounds, %d prompts dropped) in %.1f s",
        task_id, version.number, created, config.sampling.k, sampled,
        100 * ended / sampled if sampled else 0.0, rounds, len(set(dropped)),
        time.perf_counter() - started,
    )  # fmt: skip
    return created


# --- reward model --------------------------------------------------------------------------


def run_reward_training(run: TrainingRun) -> RewardModelVersion | None:
    """Train the next reward model on the labels so far. Warm-started (``reward.warm_start``):
    the labels new since the previous model plus a bounded replay of older ones; else all of
    them. Before training, the previous model is scored on the new labels, which it never saw:
    its prospective accuracy, stored with that version."""
    task = run.task
    config = training_config(task)
    cutoff = _max_label_id(task.pk)
    labels = selectors.training_labels(task_id=task.pk).filter(pk__lte=cutoff)
    previous = selectors.latest_reward_model(task_id=task.pk)
    init_from = previous.artifact_path if previous and config.reward.warm_start else None
    seen_up_to = selectors.reward_model_label_cutoff(version=previous) if previous else 0
    fresh = list(selectors.paper_records(labels=labels.filter(pk__gt=seen_up_to)))
    if previous is not None and fresh:
        prospective = evaluate_reward_model(previous.artifact_path, fresh, config.sampling)
        services.record_prospective_accuracy(
            version_id=previous.pk,
            labels=int(prospective["labels"]),
            accuracy=prospective.get("accuracy"),
            loss=prospective.get("loss"),
        )
        logger.info(
            "task %s: reward model v%d on the %d labels that arrived after it: accuracy %s",
            task.pk, previous.number, prospective["labels"], prospective.get("accuracy"),
        )  # fmt: skip
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
    out_dir = task_dir(task.pk) / "reward" / f"run-{run.pk}"
    started = time.perf_counter()
    logger.info(
        "task %s: reward run %s on %d labels (%d new; %s)",
        task.pk, run.pk, len(records), len(fresh),
        "warm start" if init_from else "from the base model",
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
    _refresh_db()
    label_count = labels.count()
    metrics = {
        "label_count": label_count,
        "last_label_id": cutoff,
        "labels_trained": len(records),
        "labels_new": len(fresh),
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
        entries=[{k: v for k, v in metrics.items() if isinstance(v, int | float)}],
    )
    version = services.publish_reward_model_version(
        run_id=run.pk,
        artifact_path=str(result.out_dir),
        gain=result.gain,
        bias=result.bias,
        label_ids=label_ids,
        label_count=label_count,
        metrics=metrics,
    )
    if version is not None:
        logger.info(
            "task %s: published reward model v%d: %d labels (%d trained on), train accuracy "
            "%.3f, %.0f s",
            task.pk, version.number, label_count, len(records),
            metrics["train_accuracy"] or float("nan"), metrics["seconds"],
        )  # fmt: skip
        from training import scoring  # it imports this module's helpers

        scoring.score_comparisons(version)
    return version


def _max_label_id(task_id: int) -> int:
    last = selectors.training_labels(task_id=task_id).order_by("-pk").values_list("pk", flat=True)
    return last.first() or 0


# --- policy (PPO) --------------------------------------------------------------------------


def _seed_state_dir(state_dir: Path, head: PolicyVersion | None) -> None:
    """A PPO state directory continuing ``head``: its final checkpoint, hard-linked."""
    if ml_checkpoint.latest_checkpoint(state_dir) is not None:
        return  # resuming an interrupted chunk
    if head is None or not head.artifact_path:
        return  # fresh PPO from the base model
    source = Path(head.artifact_path)
    name = source.name if source.name.startswith("step-") else "step-00000000"
    state_dir.mkdir(parents=True, exist_ok=True)
    _hardlink_copy(source, state_dir / ml_checkpoint.CHECKPOINTS / name)
    pointer = state_dir / f".{ml_checkpoint.LATEST}.tmp"
    pointer.write_text(name)
    os.replace(pointer, state_dir / ml_checkpoint.LATEST)


def _episodes_in(state_dir: Path) -> int:
    latest = ml_checkpoint.latest_checkpoint(state_dir)
    if latest is None:
        return 0
    state = torch.load(latest / "state.pt", weights_only=False, map_location="cpu")
    return int(state["episodes"])


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
    state_dir = task_dir(task.pk) / "ppo" / f"from-v{head.number if head else 0}"
    _seed_state_dir(state_dir, head)
    services.set_checkpoint(run_id=run.pk, checkpoint_path=str(state_dir))
    done = _episodes_in(state_dir)
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
    _refresh_db()
    final = ml_checkpoint.latest_checkpoint(state_dir)
    if final is None:
        services.fail_run(run_id=run.pk, error="PPO wrote no checkpoint")
        return None
    state = torch.load(final / "state.pt", weights_only=False, map_location="cpu")
    artifact = task_dir(task.pk) / "policy" / f"run-{run.pk}" / final.name
    if not artifact.is_dir():
        _hardlink_copy(final, artifact)
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
        from training import scoring

        scoring.write_eval_samples(version, reward_model, config)
    return version
