"""Reads for the training loop (no writes, no torch)."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime
from typing import Any

from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet

from labeling.models import Comparison, Label, Prompt, SelectionStrategy, Task
from training.models import (
    EvalSample,
    PolicyVersion,
    RewardModelVersion,
    TrainingRun,
    VersionStatus,
)
from training.schedule import Schedule


def task_schedule(*, task: Task) -> Schedule:
    """The task's schedule (its JSON over the defaults); ValueError when invalid."""
    return Schedule.from_dict(task.schedule)


def promoted_policy(*, task_id: int) -> PolicyVersion | None:
    return PolicyVersion.objects.filter(task_id=task_id, status=VersionStatus.PROMOTED).first()


def base_policy(*, task_id: int) -> PolicyVersion | None:
    """Policy v0, the task's base model."""
    return PolicyVersion.objects.filter(task_id=task_id, number=0).first()


def latest_reward_model(*, task_id: int) -> RewardModelVersion | None:
    return (
        RewardModelVersion.objects.filter(task_id=task_id)
        .exclude(status__in=[VersionStatus.FAILED, VersionStatus.RETIRED])
        .order_by("-number")
        .first()
    )


def next_version_number(
    *, model: type[PolicyVersion] | type[RewardModelVersion], task_id: int
) -> int:
    current = model.objects.filter(task_id=task_id).aggregate(m=Max("number"))["m"]
    return 0 if current is None else current + 1


def reward_model_label_cutoff(*, version: RewardModelVersion) -> int:
    """The newest label id a reward-model version could have seen (labels up to it existed
    when it was trained, whether or not a bounded replay trained on each)."""
    recorded = version.metrics.get("last_label_id") if version.metrics else None
    if recorded is not None:
        return int(recorded)
    newest = version.labels_used.order_by("-pk").values_list("pk", flat=True).first()
    return int(newest or 0)


def training_labels(*, task_id: int) -> QuerySet[Label]:
    """Labels a reward model learns from: best-of-K choices."""
    return Label.objects.filter(task_id=task_id, kind=Label.Kind.CHOICE)


def training_label_count(*, task_id: int) -> int:
    return training_labels(task_id=task_id).count()


def open_comparison_count(*, task_id: int, policy_version_id: int | None) -> int:
    """Unlabeled, non-gold comparisons of a policy version still open for labelers."""
    return Comparison.objects.filter(
        task_id=task_id,
        policy_version_id=policy_version_id,
        is_gold=False,
        status=Comparison.Status.OPEN,
        label_count=0,
    ).count()


def selection_counts(*, task_id: int, policy_version_id: int) -> tuple[int, int]:
    """(chosen uniformly, all) of the sampled, non-gold comparisons of a policy version: the
    uniform share the sampler keeps (training/ml/selection.py uniform_quota)."""
    rows = Comparison.objects.filter(
        task_id=task_id, policy_version_id=policy_version_id, is_gold=False
    ).aggregate(
        uniform=Count("pk", filter=Q(selection=SelectionStrategy.UNIFORM)), total=Count("pk")
    )
    return int(rows["uniform"]), int(rows["total"])


def comparisons_started_since(*, task_id: int, since: datetime) -> int:
    """Non-gold comparisons whose first label arrived at or after ``since``: how fast
    labelers take fresh comparisons (the sampler's demand)."""
    recent = Label.objects.filter(task_id=task_id, created_at__gte=since).values("comparison_id")
    earlier = Label.objects.filter(comparison_id=OuterRef("pk"), created_at__lt=since)
    return Comparison.objects.filter(pk__in=recent, is_gold=False).exclude(Exists(earlier)).count()


def live_runs(*, task_id: int) -> QuerySet[TrainingRun]:
    """The task's queued or running training runs (at most one per kind)."""
    return TrainingRun.objects.filter(
        task_id=task_id, status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING]
    )


def any_live_run(*, task_id: int) -> bool:
    """A training run of the task is queued or running (it will take the training worker)."""
    return live_runs(task_id=task_id).exists()


def needs_eval_samples(*, version: PolicyVersion) -> bool:
    """The version has not answered the task's eval prompts yet (and there are some)."""
    if EvalSample.objects.filter(policy_version=version).exists():
        return False
    return Prompt.objects.filter(task_id=version.task_id, split=Prompt.Split.EVAL).exists()


def eval_samples(*, policy_version_id: int) -> list[EvalSample]:
    """A version's stored eval samples with their prompts, in prompt order."""
    samples = EvalSample.objects.filter(policy_version_id=policy_version_id)
    return list(samples.select_related("prompt").order_by("prompt_id", "id"))


def live_run(*, task_id: int, kind: str) -> TrainingRun | None:
    return TrainingRun.objects.filter(
        task_id=task_id,
        kind=kind,
        status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING],
    ).first()


def queued_runs_enqueued_before(*, task_id: int, before: datetime) -> list[TrainingRun]:
    return list(
        TrainingRun.objects.filter(
            task_id=task_id, status=TrainingRun.Status.QUEUED, created_at__lt=before
        ).exclude(heartbeat_at__gte=before)
    )


def recent_failures(*, task_id: int, kind: str, limit: int = 8) -> tuple[int, datetime | None]:
    """How many of the latest runs of this kind failed in a row, and when the last one ended."""
    finished = TrainingRun.objects.filter(
        task_id=task_id,
        kind=kind,
        status__in=[TrainingRun.Status.SUCCEEDED, TrainingRun.Status.FAILED],
    ).order_by("-created_at")[:limit]
    failures = 0
    last_end = None
    for run in finished.only("status", "finished_at"):
        if run.status != TrainingRun.Status.FAILED:
            break
        failures += 1
        last_end = last_end or run.finished_at
    return failures, last_end


def stale_runs(*, before: datetime) -> QuerySet[TrainingRun]:
    """Running runs whose worker has not beaten since ``before`` (the worker died)."""
    return TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING, heartbeat_at__lt=before)


def active_task_ids() -> list[int]:
    return list(Task.objects.filter(status=Task.Status.ACTIVE).values_list("pk", flat=True))


def paper_records(*, labels: QuerySet[Label]) -> Iterator[dict[str, Any]]:
    """Labels as the paper's format (what ``training.ml.reward`` reads), streamed."""
    rows = labels.select_related("comparison__prompt").order_by("pk")
    for label in rows.iterator(chunk_size=500):
        comparison = label.comparison
        record: dict[str, Any] = {
            "label_id": label.pk,
            "comparison_id": comparison.pk,
            "query": comparison.prompt.text,
            "query_token_ids": comparison.prompt.token_ids,
            "sample_token_ids": comparison.sample_token_ids,
            "best": label.choice,
        }
        for i, text in enumerate(comparison.samples):
            record[f"sample{i}"] = text
        yield record


def prompts_to_sample(*, task_id: int, n: int, exclude_ids: Collection[int] = ()) -> list[Prompt]:
    """Train prompts with the fewest comparisons so far (round robin over the prompt set),
    except ``exclude_ids``."""
    return list(
        Prompt.objects.filter(task_id=task_id, split=Prompt.Split.TRAIN)
        .exclude(pk__in=list(exclude_ids))
        .annotate(used=Count("comparisons"))
        .order_by("used", "?")[:n]
    )


def train_queries(*, task_id: int) -> list[str] | list[list[int]]:
    """PPO's queries: the train prompts' token ids when every one has them (a summarization
    task's articles, cut to the budget at import, or ids the sampler stored), as the sampler
    used them; else their texts (encoded by PPO)."""
    rows = list(
        Prompt.objects.filter(task_id=task_id, split=Prompt.Split.TRAIN)
        .order_by("id")
        .values_list("text", "token_ids")
    )
    if rows and all(isinstance(ids, list) and ids for _, ids in rows):
        return [list(ids or []) for _, ids in rows]
    return [text for text, _ in rows]


def eval_prompts(*, task_id: int, n: int) -> list[Prompt]:
    prompts = Prompt.objects.filter(task_id=task_id).order_by("id")
    chosen = list(prompts.filter(split=Prompt.Split.EVAL)[:n])
    return chosen or list(prompts[:n])


def comparisons_to_score(*, task_id: int, limit: int) -> QuerySet[Comparison]:
    """Recent comparisons (open or labeled) whose K samples the reward model should score."""
    return (
        Comparison.objects.filter(task_id=task_id)
        .exclude(status=Comparison.Status.RETIRED, label_count=0)
        .select_related("prompt")
        .order_by("-pk")[:limit]
    )


def ppo_head(*, task_id: int) -> PolicyVersion | None:
    """The policy version PPO continues from: the newest one not retired or failed (after a
    rollback, the version rolled back to)."""
    return (
        PolicyVersion.objects.filter(task_id=task_id)
        .exclude(status__in=[VersionStatus.RETIRED, VersionStatus.FAILED])
        .order_by("-number")
        .first()
    )
