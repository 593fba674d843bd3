"""The sampler's writes: each comparison's selection and the scores it was chosen with; the
version's share of uniform comparisons (selectors.selection_counts)."""

from __future__ import annotations

import pytest

from labeling.models import Comparison
from tests.factories import ComparisonFactory, PromptFactory
from tests.research.factories import RewardModelVersionFactory
from training import selectors, services
from training.models import ComparisonScores

pytestmark = pytest.mark.django_db


def sampled(prompt, **changes):
    item = {
        "prompt_id": prompt.pk,
        "query_token_ids": [1],
        "samples": ["a", "b", "c", "d"],
        "sample_token_ids": [[3], [4], [5], [6]],
        "sample_ended": [True] * 4,
        **changes,
    }
    return services.SampledComparison(**item)


def test_comparisons_store_their_selection_and_scores(loop_task):
    v0 = services.ensure_base_policy(task=loop_task)
    rm = RewardModelVersionFactory(task=loop_task)
    prompt = PromptFactory(task=loop_task)
    created = services.create_comparisons(
        task=loop_task,
        policy_version_id=v0.pk,
        sampled=[
            sampled(prompt, selection="uncertainty", scores=[0.1, 0.2, 0.3, 0.4]),
            sampled(prompt, scores=[1.0, 0.0, 0.0, 0.0]),
            sampled(prompt),  # not scored
        ],
        reward_model_version_id=rm.pk,
    )
    assert [c.selection for c in Comparison.objects.order_by("pk")] == [
        "uncertainty",
        "uniform",
        "uniform",
    ]
    stored = dict(ComparisonScores.objects.values_list("comparison_id", "scores"))
    assert stored == {created[0].pk: [0.1, 0.2, 0.3, 0.4], created[1].pk: [1.0, 0.0, 0.0, 0.0]}
    ComparisonFactory(task=loop_task, policy_version=v0, is_gold=True, gold_choice=0)
    assert selectors.selection_counts(task_id=loop_task.pk, policy_version_id=v0.pk) == (2, 3)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"selection": "random"}, "unknown selection"),
        ({"scores": [0.1, 0.2]}, "one score per sample"),
    ],
)
def test_bad_selections_and_scores_store_nothing(loop_task, changes, message):
    v0 = services.ensure_base_policy(task=loop_task)
    prompt = PromptFactory(task=loop_task)
    with pytest.raises(ValueError, match=message):
        services.create_comparisons(
            task=loop_task,
            policy_version_id=v0.pk,
            sampled=[sampled(prompt), sampled(prompt, **changes)],
            counts=services.SamplingCounts(candidates=8, ended=8),
        )
    assert not Comparison.objects.filter(task=loop_task).exists()
    v0.refresh_from_db()
    assert v0.candidates_sampled == 0
