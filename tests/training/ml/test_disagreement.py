"""An ensemble's disagreement about a K-set (the mutual information between the choice and the
member), the most disputed K-set of a prompt's candidates and the ranking by it, hand-computed."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from training.ml.selection import (
    MAX_SUBSETS,
    choice_entropy,
    disagreement,
    most_disputed_k_subset,
    rank_by_disagreement,
)

LN3 = math.log(3)


def test_two_members_with_opposite_preferences_disagree_by_the_hand_computed_amount():
    # Member 0 chooses response 0 with p = 3/4, member 1 response 1 with p = 3/4: the mean is
    # flat (ln 2) and each member's entropy is H(3/4, 1/4).
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert disagreement([[LN3, 0.0], [0.0, LN3]]) == pytest.approx(math.log(2) - h)
    assert math.log(2) - h == pytest.approx(0.130812, abs=1e-6)


def test_members_that_agree_do_not_disagree_even_on_a_tie():
    # The tie has the highest choice entropy there is, and no disagreement: a label about it
    # teaches nothing (what entropy ranking gets wrong).
    tie = [0.3, 0.3, 0.3, 0.3]
    assert choice_entropy(tie) == pytest.approx(math.log(4))
    assert disagreement([tie, tie, tie]) == pytest.approx(0.0, abs=1e-12)
    assert disagreement([[1.0, 2.0, 0.5], [1.0, 2.0, 0.5]]) == pytest.approx(0.0, abs=1e-12)
    # A shift of one member's rewards changes none of its choice probabilities.
    assert disagreement([[1.0, 2.0], [11.0, 12.0]]) == pytest.approx(0.0, abs=1e-12)


def test_disagreement_is_taken_over_members_not_over_responses():
    # Members agree (rows equal), responses differ: 0. Transposed (each member is sure of its
    # own different response): large. Averaging over the wrong axis swaps the two.
    agree = [[5.0, 0.0, 0.0], [5.0, 0.0, 0.0]]
    assert disagreement(agree) == pytest.approx(0.0, abs=1e-12)
    assert disagreement([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]]) > 0.5


def test_the_most_disputed_k_set_avoids_what_the_members_agree_is_a_tie():
    # Candidates 0-2 tie for every member; members 0 and 1 disagree about 3 and 4.
    members = [[0.0, 0.0, 0.0, 2.0, -2.0], [0.0, 0.0, 0.0, -2.0, 2.0]]
    chosen, value = most_disputed_k_subset(members, 2)
    assert chosen == (3, 4)
    assert value == pytest.approx(disagreement([[2.0, -2.0], [-2.0, 2.0]]))


def test_the_most_disputed_k_set_is_the_best_of_every_subset():
    rng = random.Random(3)
    for _ in range(100):
        e, c = rng.randint(2, 4), rng.randint(2, 7)
        k = rng.randint(1, c)
        members = [[rng.gauss(0, 2) for _ in range(c)] for _ in range(e)]
        best = max(
            disagreement([[m[i] for i in s] for m in members])
            for s in itertools.combinations(range(c), k)
        )
        chosen, value = most_disputed_k_subset(members, k)
        assert value == pytest.approx(best, abs=1e-12)
        assert chosen == tuple(sorted(chosen)) and len(set(chosen)) == k


def test_many_candidates_fall_back_to_runs_of_the_mean_reward_order():
    c, k = 16, 4
    assert math.comb(c, k) > MAX_SUBSETS
    members = [[float(i) for i in range(c)], [float(c - i) for i in range(c)]]
    chosen, value = most_disputed_k_subset(members, k)
    assert len(chosen) == k and value > 0
    with pytest.raises(ValueError, match="K=5"):
        most_disputed_k_subset([[0.0] * 4], 5)


def test_prompts_are_ranked_by_disagreement_most_disputed_first_ties_in_order():
    agreed_tie = [[0.0] * 4] * 3
    mild = [[0.5, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.0]]
    strong = [[3.0, 0.0, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0], [0.0, 0.0, 3.0, 0.0]]
    too_few = [[1.0, 2.0]] * 3
    ranked = rank_by_disagreement([agreed_tie, mild, strong, too_few, strong], 4, 3)
    assert [r.candidate for r in ranked] == [2, 4, 1]
    assert ranked[0].responses == (0, 1, 2, 3)
    assert ranked[2].entropy == pytest.approx(disagreement(mild))
    assert rank_by_disagreement([agreed_tie], 4, 0) == []


def test_the_disagreement_measure_needs_an_ensemble():
    from training.ml.config import TrainingConfig

    config = TrainingConfig.from_dict(
        {"selection": {"measure": "disagreement"}, "reward": {"ensemble_members": 4}},
        base="cpu-small",
    )
    assert (config.selection.measure, config.reward.ensemble_members) == ("disagreement", 4)
    assert TrainingConfig.from_dict({}, base="cpu-small").selection.measure == "entropy"
    for bad, message in [
        ({"selection": {"measure": "disagreement"}}, "needs an ensemble"),
        ({"selection": {"measure": "margin"}}, "selection.measure"),
        ({"reward": {"ensemble_members": 0}}, "reward.ensemble_members"),
    ]:
        with pytest.raises(ValueError, match=message):
            TrainingConfig.from_dict(bad)
