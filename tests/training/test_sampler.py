"""The sampler applies the task's selection strategy when it tops up the buffer (tiny models):
uniform until a reward model exists, then the least sure prompts and K-sets by the reward
model's raw rewards, with the task's uniform share kept and every comparison scored."""

from __future__ import annotations

import math

import pytest

from labeling.models import Comparison, Label, Task
from tests.factories import UserFactory
from tests.training.conftest import save_tiny_model, tiny_task
from training import selectors, services
from training.models import ComparisonScores, TrainingRun

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory) -> str:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-sampler-model"))


def label_open(task) -> None:
    labeler = UserFactory()
    for comparison in Comparison.objects.filter(task=task, status="open", label_count=0):
        Label.objects.create(
            comparison=comparison,
            labeler=labeler,
            task=task,
            kind="choice",
            choice=1,
            k=comparison.k,
            display_order=[0, 1, 2, 3],
        )
        Comparison.objects.filter(pk=comparison.pk).update(label_count=1, status="complete")


def train_reward_model(task):
    from training import jobs

    services.tick(task_id=task.pk)
    run = selectors.live_run(task_id=task.pk, kind=TrainingRun.Kind.REWARD)
    assert run is not None
    return jobs.run_reward_training(services.claim_run(run_id=run.pk, worker="test"))


def test_a_uniform_task_samples_the_prompts_in_turn_unscored(tiny_model_path):
    from training import sampler

    task = tiny_task(tiny_model_path)
    services.tick(task_id=task.pk)
    v0 = selectors.promoted_policy(task_id=task.pk)
    assert sampler.sample_comparisons(task.pk, v0.pk, 10) == 4
    assert set(Comparison.objects.values_list("selection", flat=True)) == {"uniform"}
    assert not ComparisonScores.objects.exists()


def test_uncertainty_shows_the_least_sure_k_sets_and_keeps_the_uniform_share(
    tiny_model_path, settings, tmp_path, monkeypatch
):
    from training import sampler
    from training.ml import ended, selection
    from training.ml.reward import load_reward_model, score_token_ids

    settings.ARTIFACTS_DIR = tmp_path
    task = tiny_task(tiny_model_path, buffer=8)
    Task.objects.filter(pk=task.pk).update(selection_strategy="uncertainty", uniform_share=0.5)
    services.tick(task_id=task.pk)
    v0 = selectors.promoted_policy(task_id=task.pk)
    # No reward model yet: nothing to be unsure with, so the first comparisons are uniform.
    assert sampler.sample_comparisons(task.pk, v0.pk, 4) == 4
    assert set(Comparison.objects.values_list("selection", flat=True)) == {"uniform"}
    label_open(task)
    rm = train_reward_model(task)
    assert rm is not None

    pools: list[ended.EndedSamples] = []
    ranked: list[tuple[list[list[float]], list[selection.Ranked]]] = []

    def sample_spy(*args, **kwargs):
        result = ended.sample_ended_comparisons(*args, **kwargs)
        pools.append(result)
        return result

    def rank_spy(rewards, k, n):
        out = selection.rank_by_uncertainty(rewards, k, n)
        ranked.append(([list(r) for r in rewards], out))
        return out

    monkeypatch.setattr(sampler, "sample_ended_comparisons", sample_spy)
    monkeypatch.setattr(sampler, "rank_by_uncertainty", rank_spy)
    first_new = Comparison.objects.order_by("-pk").values_list("pk", flat=True).first()
    assert sampler.sample_comparisons(task.pk, v0.pk, 8) == 8

    new = list(Comparison.objects.filter(pk__gt=first_new).order_by("pk"))
    # 4 uniform so far of 4; 8 more with a share of 0.5: ceil(0.5 * 12) - 4 = 2 uniform.
    assert [c.selection for c in new].count("uniform") == 2
    assert [c.selection for c in new].count("uncertainty") == 6
    uniform, total = selectors.selection_counts(task_id=task.pk, policy_version_id=v0.pk)
    assert (uniform, total) == (6, 12)
    assert all(c.sample_ended == [True] * 4 for c in new)

    # The uncertainty pool: 2 prompts per comparison wanted, 6 ended responses each (1.5 K).
    pool = pools[-1]
    assert all(len(s.responses) == 6 for _, s in pool.kept)
    [(rewards, chosen)] = ranked
    assert len(rewards) == len(pool.kept) and len(chosen) == 6
    # Ranked on the reward model's raw rewards (its K-way choice distribution), not the
    # normalized ones.
    model, tokenizer, _ = load_reward_model(rm.artifact_path)
    pad = int(tokenizer.pad_token_id or 0)
    for (_, sample), given in zip(pool.kept, rewards, strict=True):
        raw = score_token_ids(
            model, [sample.query_token_ids] * 6, sample.response_token_ids, pad, normalized=False
        )
        assert given == pytest.approx(raw.tolist(), abs=1e-5)
    # The most uncertain prompts and their best K-sets are what labelers see.
    entropies = sorted((selection.best_k_subset(r, 4)[1] for r in rewards), reverse=True)
    assert [r.entropy for r in chosen] == pytest.approx(entropies[:6])
    shown = {tuple(map(tuple, c.sample_token_ids)) for c in new if c.selection == "uncertainty"}
    expected = {
        tuple(tuple(pool.kept[r.candidate][1].response_token_ids[j]) for j in r.responses)
        for r in chosen
    }
    assert shown == expected

    # Every new comparison is scored by the reward model it was chosen with (normalized), so
    # the dashboard can judge that model on the uniform ones once they are labeled.
    stored = dict(
        ComparisonScores.objects.filter(reward_model_version=rm).values_list(
            "comparison_id", "scores"
        )
    )
    for comparison in new:
        normalized = score_token_ids(
            model,
            [comparison.prompt.token_ids] * 4,
            comparison.sample_token_ids,
            pad,
            normalized=True,
        )
        assert stored[comparison.pk] == pytest.approx(normalized.tolist(), abs=1e-5)
    assert all(math.isfinite(s) for scores in stored.values() for s in scores)


def test_the_disagreement_measure_shows_the_k_sets_the_ensemble_disputes_most(
    tiny_model_path, settings, tmp_path, monkeypatch
):
    from training import sampler
    from training.ml import ended, selection
    from training.ml.reward import load_reward_model, score_token_ids

    settings.ARTIFACTS_DIR = tmp_path
    task = tiny_task(tiny_model_path, buffer=8)
    training_settings = {
        **task.training_settings,
        "reward": {"normalization_samples": 8, "ensemble_members": 3},
        "selection": {"measure": "disagreement"},
    }
    Task.objects.filter(pk=task.pk).update(
        selection_strategy="uncertainty", uniform_share=0.0, training_settings=training_settings
    )
    services.tick(task_id=task.pk)
    v0 = selectors.promoted_policy(task_id=task.pk)
    assert sampler.sample_comparisons(task.pk, v0.pk, 4) == 4
    label_open(task)
    rm = train_reward_model(task)
    model, tokenizer, _ = load_reward_model(rm.artifact_path)
    assert model.head.size == 3

    pools: list[ended.EndedSamples] = []
    ranked: list[tuple[list, list[selection.Ranked]]] = []

    def sample_spy(*args, **kwargs):
        pools.append(ended.sample_ended_comparisons(*args, **kwargs))
        return pools[-1]

    def rank_spy(member_rewards, k, n):
        out = selection.rank_by_disagreement(member_rewards, k, n)
        ranked.append((member_rewards, out))
        return out

    monkeypatch.setattr(sampler, "sample_ended_comparisons", sample_spy)
    monkeypatch.setattr(sampler, "rank_by_disagreement", rank_spy)
    monkeypatch.setattr(sampler, "rank_by_uncertainty", None)  # entropy is not consulted
    first_new = Comparison.objects.order_by("-pk").values_list("pk", flat=True).first()
    assert sampler.sample_comparisons(task.pk, v0.pk, 4) == 4

    [(members, chosen)] = ranked
    pool = pools[-1]
    pad = int(tokenizer.pad_token_id or 0)
    for (_, sample), given in zip(pool.kept, members, strict=True):
        each = score_token_ids(
            model, [sample.query_token_ids] * 6, sample.response_token_ids, pad, members=True
        )  # (6 responses, 3 members): given as 3 rows of 6
        assert torch.allclose(torch.tensor(given), each.T, atol=1e-5)
    values = sorted((selection.most_disputed_k_subset(m, 4)[1] for m in members), reverse=True)
    assert [r.entropy for r in chosen] == pytest.approx(values[:4])
    new = Comparison.objects.filter(pk__gt=first_new)
    assert set(new.values_list("selection", flat=True)) == {"uncertainty"}
    shown = {tuple(map(tuple, c.sample_token_ids)) for c in new}
    assert shown == {
        tuple(tuple(pool.kept[r.candidate][1].response_token_ids[j]) for j in r.responses)
        for r in chosen
    }
