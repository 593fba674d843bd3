"""Writes of worker results: sampled comparisons, reward-model scores, eval samples."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F

from labeling.models import Comparison, Prompt, SelectionStrategy, Task
from training import selectors
from training.models import ComparisonScores, EvalSample, PolicyVersion, VersionStatus


@dataclass(frozen=True)
class SampledComparison:
    prompt_id: int
    query_token_ids: list[int]
    samples: list[str]
    sample_token_ids: list[list[int]]
    sample_ended: list[bool]
    """Per sample: ended under the truncation rule (labelers see only ended samples)."""
    selection: str = SelectionStrategy.UNIFORM
    """How the sampler chose it (``uniform`` or ``uncertainty``)."""
    scores: list[float] | None = None
    """The current reward model's normalized rewards of the K samples, when the sampler
    scored them (stored as that version's ComparisonScores)."""


@dataclass(frozen=True)
class SamplingCounts:
    """Responses sampled from a policy version (kept or not) and how many of them ended."""

    candidates: int
    ended: int


@dataclass(frozen=True)
class EvalRow:
    prompt_id: int
    text: str
    token_ids: list[int]
    reward: float | None
    ended: bool | None = None


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
def record_sampling(*, policy_version_id: int, counts: SamplingCounts) -> None:
    """Add a sampling job's candidates and ended responses to the version's counters (one
    UPDATE with F() expressions: concurrent jobs add up, none is lost)."""
    if not 0 <= counts.ended <= counts.candidates:
        raise ValueError(f"ended ({counts.ended}) must be in 0..candidates ({counts.candidates})")
    PolicyVersion.objects.filter(pk=policy_version_id).update(
        candidates_sampled=F("candidates_sampled") + counts.candidates,
        candidates_ended=F("candidates_ended") + counts.ended,
    )


@transaction.atomic
def create_comparisons(
    *,
    task: Task,
    policy_version_id: int,
    sampled: Sequence[SampledComparison],
    counts: SamplingCounts | None = None,
    reward_model_version_id: int | None = None,
) -> list[Comparison]:
    """Store sampled comparisons (nothing when the version is no longer promoted), and in the
    same transaction the job's sampling ``counts`` (recorded either way: they describe the
    version) and the scores the sampler gave them with reward model
    ``reward_model_version_id``. Labelers see only responses that ended: a sample that did
    not end is a ValueError, as is an unknown selection strategy. Prompts without token ids
    get the query ids the model saw, so nothing is re-tokenized later."""
    for item in sampled:
        if len(item.sample_ended) != len(item.samples) or not all(item.sample_ended):
            raise ValueError(f"prompt {item.prompt_id}: every sample must have ended")
        if item.selection not in SelectionStrategy.values:
            raise ValueError(f"prompt {item.prompt_id}: unknown selection {item.selection!r}")
        if item.scores is not None and len(item.scores) != len(item.samples):
            raise ValueError(f"prompt {item.prompt_id}: one score per sample")
    if counts is not None:
        record_sampling(policy_version_id=policy_version_id, counts=counts)
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
            sample_ended=[bool(e) for e in item.sample_ended],
            policy_version_id=policy_version_id,
            overlap=task.labels_per_comparison,
            open_slots=task.labels_per_comparison,
            selection=item.selection,
        )
        for item in sampled
    ]
    created = Comparison.objects.bulk_create(comparisons)
    if reward_model_version_id is not None:
        store_comparison_scores(
            reward_model_version_id=reward_model_version_id,
            scores={
                c.pk: item.scores for c, item in zip(created, sampled, strict=True) if item.scores
            },
        )
    return created


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
            ended=row.ended,
            reward_model_version_id=reward_model_version_id,
        )
        for row in rows
    )
    return len(rows)
