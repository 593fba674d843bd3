"""Selection math: the K-way choice entropy, the best K-set of a prompt's candidates, the
ranking of prompts by it, and the uniform share the sampler keeps (pure Python)."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from training.ml.config import TrainingConfig
from training.ml.selection import (
    SelectionConfig,
    best_k_subset,
    choice_entropy,
    rank_by_uncertainty,
    uniform_picks,
    uniform_quota,
)


def test_choice_entropy_of_hand_made_rewards():
    assert choice_entropy([0.0, 0.0, 0.0, 0.0]) == pytest.approx(math.log(4))
    # softmax([log 3, 0]) = (3/4, 1/4)
    expected = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert choice_entropy([math.log(3), 0.0]) == pytest.approx(expected)
    assert choice_entropy([50.0, 0.0, 0.0, 0.0]) < 1e-15
    # The model's own distribution: shifting every reward changes nothing, scaling does.
    assert choice_entropy([1.0, 2.0, 4.0]) == pytest.approx(choice_entropy([11.0, 12.0, 14.0]))
    assert choice_entropy([2.0, 4.0, 8.0]) < choice_entropy([1.0, 2.0, 4.0])


def test_best_k_subset_keeps_the_rewards_closest_together_in_sampling_order():
    rewards = [5.0, 0.1, 0.0, 3.0, 0.2, -4.0]
    chosen, entropy = best_k_subset(rewards, 3)
    assert chosen == (1, 2, 4)
    assert entropy == pytest.approx(choice_entropy([0.1, 0.0, 0.2]))
    assert best_k_subset([1.0, 2.0, 3.0, 4.0], 4)[0] == (0, 1, 2, 3)
    with pytest.raises(ValueError, match="at least K=4"):
        best_k_subset([1.0, 2.0, 3.0], 4)


def test_best_k_subset_is_the_best_of_every_subset():
    rng = random.Random(0)
    for _ in range(500):
        c = rng.randint(2, 9)
        k = rng.randint(2, c)
        scale = rng.choice([0.1, 1.0, 5.0])
        rewards = [rng.gauss(0, scale) for _ in range(c)]
        best = max(
            choice_entropy([rewards[i] for i in subset])
            for subset in itertools.combinations(range(c), k)
        )
        chosen, entropy = best_k_subset(rewards, k)
        assert len(set(chosen)) == k and list(chosen) == sorted(chosen)
        assert entropy == pytest.approx(best, abs=1e-12)
        assert entropy == pytest.approx(choice_entropy([rewards[i] for i in chosen]))


def test_prompts_are_ranked_by_the_entropy_of_all_k_not_the_top_two_margin():
    candidates = [
        [10.0, 0.0, 0.0, -10.0],  # sure: H ~ 0
        [1.0, 1.0, -5.0, -5.0],  # a tie between two, the other two out: H ~ log 2
        [0.5, 0.0, 0.0, 0.0],  # unsure among all four: H ~ 1.36
        [0.0, 0.0, 0.0],  # fewer than K responses: never chosen
        [3.0, 3.0, 3.0, 3.0],  # a four-way tie: H = log 4
    ]
    ranked = rank_by_uncertainty(candidates, 4, 3)
    assert [r.candidate for r in ranked] == [4, 2, 1]
    assert ranked[0].entropy == pytest.approx(math.log(4))
    assert all(r.responses == (0, 1, 2, 3) for r in ranked)
    assert len(rank_by_uncertainty(candidates, 4, 10)) == 4
    assert rank_by_uncertainty(candidates, 4, 0) == []


def test_ranking_chooses_a_k_set_per_prompt():
    ranked = rank_by_uncertainty([[0.0, 9.0, 0.1, -9.0, 0.2, 0.3], [0.0, 5.0, 10.0, 15.0]], 4, 2)
    assert [(r.candidate, r.responses) for r in ranked] == [(0, (0, 2, 4, 5)), (1, (0, 1, 2, 3))]


@pytest.mark.parametrize("share", [0.0, 0.1, 0.25, 0.5, 1.0])
def test_the_uniform_share_holds_over_any_top_ups(share):
    rng = random.Random(1)
    uniform = total = 0
    for _ in range(300):
        wanted = rng.choice([1, 1, 1, 2, 3, 7, 16])
        quota = uniform_quota(
            wanted=wanted, share=share, uniform_so_far=uniform, total_so_far=total
        )
        assert 0 <= quota <= wanted
        uniform, total = uniform + quota, total + wanted
        # At least the share, and no more uniform comparisons than it needs.
        assert uniform >= share * total - 1e-9
        assert uniform == math.ceil(share * total - 1e-9)


def test_the_uniform_quota_makes_up_for_a_history_without_uniform_comparisons():
    assert uniform_quota(wanted=10, share=0.25, uniform_so_far=0, total_so_far=30) == 10
    assert uniform_quota(wanted=10, share=0.25, uniform_so_far=30, total_so_far=30) == 0
    assert uniform_quota(wanted=0, share=0.25, uniform_so_far=0, total_so_far=0) == 0
    with pytest.raises(ValueError, match="share"):
        uniform_quota(wanted=1, share=1.5, uniform_so_far=0, total_so_far=0)


def test_uniform_picks_are_distinct_and_reproducible():
    picks = uniform_picks(5, 20, random.Random(3))
    assert len(set(picks)) == 5 and all(0 <= p < 20 for p in picks)
    assert picks == uniform_picks(5, 20, random.Random(3))
    assert uniform_picks(5, 3, random.Random(3)) == [0, 1, 2]


def test_selection_settings_are_validated_in_the_training_settings():
    config = TrainingConfig.from_dict({"selection": {"pool_factor": 3}}, base="cpu-small")
    assert config.selection == SelectionConfig(pool_factor=3)
    assert config.selection.responses_for(4) == 6
    assert SelectionConfig(responses_per_prompt=12).responses_for(4) == 12
    assert SelectionConfig(responses_per_prompt=2).responses_for(4) == 4
    for bad, message in [
        ({"strategy": "random"}, "selection.strategy"),
        ({"uniform_share": 1.5}, "selection.uniform_share"),
        ({"pool_factor": 0}, "selection.pool_factor"),
        ({"responses_per_prompt": -1}, "selection.responses_per_prompt"),
    ]:
        with pytest.raises(ValueError, match=message):
            TrainingConfig.from_dict({"selection": bad})
