"""Reads for the dashboard: gather rows from the ORM, hand them to the pure statistics.

Heavy results (agreement, drift) are cached under the task and its last label id, so they
are recomputed only when labels (or reward-model scores) change.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, TruncHour

from labeling.models import Comparison, Label, SelectionStrategy, Task
from research.analytics.agreement import AgreementReport, ChoiceRecord, agreement_report
from research.analytics.drift import ChoiceObservation, DriftReport, drift_report
from research.analytics.features import ComparisonView
from research.analytics.selection import (
    LabelOnComparison,
    SelectionAccuracy,
    StoredScores,
    prospective_accuracy,
)
from training import schedule as loop_schedule
from training import selectors as training_selectors
from training.models import (
    ComparisonScores,
    EvalSample,
    PolicyVersion,
    RewardModelVersion,
    TrainingRun,
)
from training.task_settings import training_config

CACHE_SECONDS = 6 * 3600
DRIFT_MAX_LABELS = 5000
SELECTION_MAX_LABELS = 5000
HOURS_SHOWN = 7 * 24


def last_label_id(*, task: Task) -> int:
    return Label.objects.filter(task=task).aggregate(m=Max("id"))["m"] or 0


@dataclass
class ScheduleState:
    label_count: int
    episodes_done: int
    next_retrain_at: int | None = None
    labels_to_next_retrain: int | None = None
    labels_required_now: int | None = None
    episodes_allowed: int | None = None
    thresholds: list[int] = field(default_factory=list)
    error: str = ""


def schedule_state(*, task: Task) -> ScheduleState:
    """Where the task stands on the loop's l(n) schedule (training/schedule.py)."""
    label_count = Label.objects.filter(task=task, kind=Label.Kind.CHOICE).count()
    episodes = PolicyVersion.objects.filter(task=task).aggregate(m=Max("episodes"))["m"] or 0
    state = ScheduleState(label_count=label_count, episodes_done=episodes)
    try:
        sched = training_selectors.task_schedule(task=task)
    except (ValueError, TypeError) as exc:
        state.error = f"invalid schedule: {exc}"
        return state
    state.thresholds = loop_schedule.retrain_thresholds(sched)
    upcoming = [t for t in state.thresholds if t > label_count]
    if upcoming:
        state.next_retrain_at = upcoming[0]
        state.labels_to_next_retrain = upcoming[0] - label_count
    state.labels_required_now = loop_schedule.labels_required(sched, episodes)
    state.episodes_allowed = loop_schedule.episodes_allowed(sched, label_count)
    return state


@dataclass
class LabelerActivity:
    username: str
    labels: int
    choices: int
    skips: int
    nones: int
    median_ms: float | None


def labeler_activity(*, task: Task) -> list[LabelerActivity]:
    rows = (
        Label.objects.filter(task=task)
        .values("labeler__username")
        .annotate(
            labels=Count("id"),
            choices=Count("id", filter=Q(kind=Label.Kind.CHOICE)),
            skips=Count("id", filter=Q(kind=Label.Kind.SKIP)),
            nones=Count("id", filter=Q(kind=Label.Kind.NONE_ACCEPTABLE)),
        )
        .order_by("-labels", "labeler__username")
    )
    times: dict[str, list[int]] = defaultdict(list)
    for username, ms in Label.objects.filter(task=task).values_list(
        "labeler__username", "time_spent_ms"
    ):
        times[username].append(ms)
    return [
        LabelerActivity(
            username=row["labeler__username"],
            labels=row["labels"],
            choices=row["choices"],
            skips=row["skips"],
            nones=row["nones"],
            median_ms=statistics.median(times[row["labeler__username"]]) if row["labels"] else None,
        )
        for row in rows
    ]


def median_time_ms(*, task: Task) -> float | None:
    values = list(Label.objects.filter(task=task).values_list("time_spent_ms", flat=True))
    return statistics.median(values) if values else None


def labels_per_hour(*, task: Task, now: datetime) -> list[dict[str, Any]]:
    """[{hour, labeler, count}] over the last week, oldest first."""
    since = now.timestamp() - HOURS_SHOWN * 3600
    rows = (
        Label.objects.filter(task=task, created_at__gte=datetime.fromtimestamp(since, now.tzinfo))
        .annotate(hour=TruncHour("created_at"))
        .values("hour", "labeler__username")
        .annotate(count=Count("id"))
        .order_by("hour", "labeler__username")
    )
    return [
        {"hour": r["hour"], "labeler": r["labeler__username"], "count": r["count"]} for r in rows
    ]


def reward_model_versions(*, task: Task) -> list[RewardModelVersion]:
    return list(RewardModelVersion.objects.filter(task=task).order_by("number"))


def last_prospectively_scored(*, versions: list[RewardModelVersion]) -> RewardModelVersion | None:
    """The newest reward-model version already scored on the labels that arrived after it."""
    scored = [v for v in versions if (v.metrics or {}).get("prospective_accuracy") is not None]
    return max(scored, key=lambda v: v.number, default=None)


def policy_versions(*, task: Task) -> list[PolicyVersion]:
    return list(PolicyVersion.objects.filter(task=task).order_by("number"))


@dataclass(frozen=True)
class EndedFraction:
    """Of the responses sampled from a policy version for comparisons, how many ended under
    the truncation rule (labelers see only those; PPO scores the rest -1)."""

    version: int
    candidates: int
    ended: int

    @property
    def fraction(self) -> float:
        return self.ended / self.candidates


def ended_fractions(*, task: Task) -> list[EndedFraction]:
    """Per policy version sampled for comparisons so far, oldest first."""
    rows = (
        PolicyVersion.objects.filter(task=task, candidates_sampled__gt=0)
        .order_by("number")
        .values_list("number", "candidates_sampled", "candidates_ended")
    )
    return [EndedFraction(version=n, candidates=c, ended=e) for n, c, e in rows]


def ppo_metrics(*, task: Task) -> list[dict[str, float]]:
    """Per-step PPO metrics of every policy run of the task, sorted by episode."""
    steps: list[dict[str, float]] = []
    runs = TrainingRun.objects.filter(task=task, kind=TrainingRun.Kind.POLICY).order_by("id")
    for metrics in runs.values_list("metrics", flat=True):
        if not isinstance(metrics, list):
            continue
        steps.extend(s for s in metrics if isinstance(s, dict) and "episode" in s)
    return sorted(steps, key=lambda s: s["episode"])


def _cached(key: str, compute):
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, CACHE_SECONDS)
    return value


def task_agreement(*, task: Task) -> tuple[AgreementReport, RewardModelVersion | None]:
    rm = training_selectors.latest_reward_model(task_id=task.pk)
    scores_seen = (
        ComparisonScores.objects.filter(reward_model_version=rm).aggregate(m=Max("id"))["m"]
        if rm
        else 0
    )
    key = (
        f"dashboard:agreement:{task.pk}:{last_label_id(task=task)}:"
        f"{rm.pk if rm else 0}:{scores_seen}:{task.agreement_threshold}"
    )

    def compute() -> AgreementReport:
        labels = Label.objects.filter(task=task, kind=Label.Kind.CHOICE, choice__lt=task.k)
        records = [
            ChoiceRecord(labeler=username, comparison=comparison_id, choice=choice)
            for username, comparison_id, choice in labels.values_list(
                "labeler__username", "comparison_id", "choice"
            ).iterator(chunk_size=5000)
            if choice is not None
        ]
        gold = {
            comparison_id: choice
            for comparison_id, choice in Comparison.objects.filter(
                task=task, is_gold=True, gold_choice__isnull=False
            ).values_list("id", "gold_choice")
            if choice is not None
        }
        rm_argmax: dict[int, int] = {}
        if rm is not None:
            for comparison_id, scores in ComparisonScores.objects.filter(
                reward_model_version=rm
            ).values_list("comparison_id", "scores"):
                if isinstance(scores, list) and len(scores) == task.k:
                    rm_argmax[comparison_id] = max(range(task.k), key=lambda i: scores[i])
        return agreement_report(
            records, k=task.k, gold=gold, rm_argmax=rm_argmax, threshold=task.agreement_threshold
        )

    return _cached(key, compute), rm


def task_drift(*, task: Task) -> DriftReport:
    key = f"dashboard:drift:{task.pk}:{last_label_id(task=task)}"

    def compute() -> DriftReport:
        labels = (
            Label.objects.filter(task=task, kind=Label.Kind.CHOICE, k=task.k)
            .order_by("-id")
            .values_list(
                "labeler__username",
                "choice",
                "display_order",
                "comparison__samples",
                "comparison__sample_token_ids",
                "comparison__prompt__text",
            )[:DRIFT_MAX_LABELS]
        )
        observations = []
        for username, choice, order, samples, token_ids, prompt in reversed(list(labels)):
            if not isinstance(samples, list) or len(samples) != task.k:
                continue
            if not isinstance(order, list) or sorted(order) != list(range(task.k)):
                continue
            lengths = (
                [len(t) for t in token_ids]
                if isinstance(token_ids, list) and len(token_ids) == task.k
                else None
            )
            view = ComparisonView(
                prompt=prompt, samples=samples, display_order=order, token_lengths=lengths
            )
            observations.append(ChoiceObservation(labeler=username, view=view, chosen=choice))
        return drift_report(observations)

    return _cached(key, compute)


@dataclass
class SideBySide:
    prompt: str
    a: EvalSample | None
    b: EvalSample | None


def side_by_side(*, a: PolicyVersion, b: PolicyVersion) -> list[SideBySide]:
    """Eval prompts answered by either version, with each version's answer."""
    samples = EvalSample.objects.filter(policy_version__in=[a, b]).select_related("prompt")
    rows: dict[int, SideBySide] = {}
    for sample in samples.order_by("prompt_id", "id"):
        row = rows.setdefault(sample.prompt_id, SideBySide(sample.prompt.text, None, None))
        if sample.policy_version_id == a.pk:
            row.a = sample
        if sample.policy_version_id == b.pk:
            row.b = sample
    return list(rows.values())


def mean_reward(rows: list[SideBySide], side: str) -> float | None:
    values = [
        getattr(r, side).reward
        for r in rows
        if getattr(r, side) is not None and getattr(r, side).reward is not None
    ]
    return statistics.fmean(values) if values else None


@dataclass
class SelectionSummary:
    """How the task chooses what labelers see, and the reward model measured on each kind."""

    strategy: str
    """The task's strategy, as the admin shows it."""
    uncertainty: bool
    uniform_share: float
    """The task's setting (applies with the uncertainty strategy)."""
    measure: str
    """With uncertainty: ``entropy`` or ``disagreement`` (of the reward model's ensemble)."""
    comparisons: dict[str, int]
    """Sampled (non-gold) comparisons per selection, over all policy versions."""
    accuracy: dict[str, SelectionAccuracy]
    """Per selection: the reward model's prospective accuracy on the latest labels."""

    @property
    def uniform_fraction(self) -> float | None:
        total = sum(self.comparisons.values())
        return self.comparisons.get(SelectionStrategy.UNIFORM, 0) / total if total else None

    @property
    def rows(self) -> list[tuple[str, int, SelectionAccuracy | None]]:
        """(selection, comparisons, accuracy) for each selection, uniform first."""
        return [
            (value, self.comparisons.get(value, 0), self.accuracy.get(value))
            for value in SelectionStrategy.values
        ]


def selection_summary(*, task: Task) -> SelectionSummary:
    """The task's selection strategy, its comparisons per selection, and the reward model's
    accuracy per selection on the latest labels (each judged by the newest reward model
    trained before it: scores stored by the sampler or after each retrain)."""

    # One query: the comparisons per selection, and the newest label and scores (the cache key).
    def newest(rows: QuerySet[Any]) -> Subquery:
        return Subquery(rows.order_by("-id").values("id")[:1])

    def sampled(selection: str) -> Coalesce:
        rows = Comparison.objects.filter(
            task_id=OuterRef("pk"), is_gold=False, selection=selection
        ).order_by()
        return Coalesce(Subquery(rows.values("task_id").annotate(n=Count("id")).values("n")[:1]), 0)

    row = (
        Task.objects.filter(pk=task.pk)
        .annotate(
            last_label=newest(Label.objects.filter(task_id=OuterRef("pk"))),
            last_scores=newest(ComparisonScores.objects.filter(comparison__task_id=OuterRef("pk"))),
            **{f"n_{value}": sampled(value) for value in SelectionStrategy.values},
        )
        .values("last_label", "last_scores", *(f"n_{v}" for v in SelectionStrategy.values))
        .get()
    )
    counts = {value: row[f"n_{value}"] for value in SelectionStrategy.values if row[f"n_{value}"]}
    key = f"dashboard:selection:{task.pk}:{row['last_label'] or 0}:{row['last_scores'] or 0}"

    def compute() -> dict[str, SelectionAccuracy]:
        labels = [
            LabelOnComparison(label_id, comparison_id, choice, selection)
            for label_id, comparison_id, choice, selection in Label.objects.filter(
                task=task, kind=Label.Kind.CHOICE, comparison__is_gold=False
            )
            .order_by("-id")
            .values_list("id", "comparison_id", "choice", "comparison__selection")[
                :SELECTION_MAX_LABELS
            ]
            if choice is not None
        ]
        cutoffs = {
            v.pk: (v.number, training_selectors.reward_model_label_cutoff(version=v))
            for v in RewardModelVersion.objects.filter(task=task)
        }
        scores: dict[int, list[StoredScores]] = defaultdict(list)
        rows = ComparisonScores.objects.filter(
            comparison_id__in=[label.comparison_id for label in labels]
        ).values_list("comparison_id", "reward_model_version_id", "scores")
        for comparison_id, version_id, values in rows.iterator(chunk_size=2000):
            if version_id in cutoffs and isinstance(values, list):
                number, cutoff = cutoffs[version_id]
                scores[comparison_id].append(StoredScores(number, cutoff, values))
        return prospective_accuracy(labels, scores)

    return SelectionSummary(
        strategy=task.get_selection_strategy_display(),
        uncertainty=task.selection_strategy == SelectionStrategy.UNCERTAINTY,
        uniform_share=task.uniform_share,
        measure=training_config(task).selection.measure,
        comparisons={str(k): int(v) for k, v in counts.items()},
        accuracy=_cached(key, compute),
    )
