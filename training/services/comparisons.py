"""Writes of worker results: sampled comparisons, reward-model scores, eval samples."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from django.db import transaction

from labeling.models import Comparison, Prompt, Task
from training import selectors
from training.models import ComparisonScores, EvalSample, PolicyVersion, VersionStatus


@dataclass(frozen=True)
class SampledComparison:
    prompt_id: int
    query_token_ids: list[int]
    samples: list[str]
    sample_token_ids: list[list[int]]


@dataclass(frozen=True)
class EvalRow:
    prompt_id: int
    text: str
    token_ids: list[int]
    reward: float | None


def clean_text(text: str) -> str:
    """PostgreSQL text and jsonb cannot hold NUL, which byte-level models can emit."""
    return text.replace("\x00", "\ufffd")


def sampling_deficit(*, task: Task, policy_version_id: int, requested: int) -> int:
    """How many comparisons to sample now: none unless the version is promoted and the task
    active and under its label budget; at most the buffer's shortfall."""
    if task.status != Task.Status.ACTIVE:
        return 0
    version = selectors.promoted_policy(task_id=task.pk)
    if version is None or version.pk != policy_version_id:
        return 0
    if task.labels.count() >= task.label_budget:
        return 0
    schedule = selectors.task_schedule(task=task)
    shortfall = schedule.buffer - selectors.open_comparison_count(
        task_id=task.pk, policy_version_id=policy_version_id
    )
    return max(0, min(requested, shortfall))


@transaction.atomic
def create_comparisons(
    *, task: Task, policy_version_id: int, sampled: Sequence[SampledComparison]
) -> list[Comparison]:
    """Store sampled comparisons (nothing when the version is no longer promoted). Prompts
    without token ids get the query ids the model saw, so nothing is re-tokenized later."""
    promoted = PolicyVersion.objects.filter(
        pk=policy_version_id, task=task, status=VersionStatus.PROMOTED
    ).exists()
    if not promoted:
        return []
    for item in sampled:
        Prompt.objects.filter(pk=item.prompt_id, token_ids__isnull=True).update(
            token_ids=item.query_token_ids
        )
    comparisons = [
        Comparison(
            task=task,
            prompt_id=item.prompt_id,
            k=len(item.samples),
            samples=[clean_text(t) for t in item.samples],
            sample_token_ids=[list(ids) for ids in item.sample_token_ids],
            policy_version_id=policy_version_id,
            overlap=task.labels_per_comparison,
            open_slots=task.labels_per_comparison,
        )
        for item in sampled
    ]
    return Comparison.objects.bulk_create(comparisons)


@transaction.atomic
def store_comparison_scores(
    *, reward_model_version_id: int, scores: Mapping[int, Sequence[float]]
) -> int:
    """Scores of comparisons by a reward-model version; existing ones are kept (idempotent)."""
    rows = [
        ComparisonScores(
            comparison_id=comparison_id,
            reward_model_version_id=reward_model_version_id,
            scores=[float(s) for s in values],
        )
        for comparison_id, values in scores.items()
    ]
    return len(ComparisonScores.objects.bulk_create(rows, ignore_conflicts=True))


@transaction.atomic
def store_eval_samples(
    *, policy_version_id: int, reward_model_version_id: int | None, rows: Sequence[EvalRow]
) -> int:
    """Replace a policy version's eval samples (idempotent)."""
    EvalSample.objects.filter(policy_version_id=policy_version_id).delete()
    EvalSample.objects.bulk_create(
        EvalSample(
            policy_version_id=policy_version_id,
            prompt_id=row.prompt_id,
            text=clean_text(row.text),
            token_ids=row.token_ids,
            reward=row.reward,
            reward_model_version_id=reward_model_version_id,
        )
        for row in rows
    )
    return len(rows)
