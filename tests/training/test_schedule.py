import pytest

from training.schedule import (
    Schedule,
    comparisons_to_sample,
    due_retrain_threshold,
    episodes_allowed,
    labels_required,
    next_chunk_target,
    policy_chunk_due,
    retrain_thresholds,
    retrain_waits_for_first_policy,
)

S = Schedule(n0=100, n=1100, episodes=1000, retrains=11, chunk_episodes=250)


@pytest.mark.parametrize(
    ("episode", "labels"),
    [(0, 100), (250, 538), (500, 850), (750, 1038), (1000, 1100), (2000, 1100), (-5, 100)],
)
def test_l_of_n_hand_values(episode, labels):
    # l(n) = N0 + (N - N0) (1 - (1 - n/N_pi)^2), rounded up: 100 + 1000 * 0.4375 = 537.5 -> 538
    assert labels_required(S, episode) == labels


@pytest.mark.parametrize(
    ("labels", "episodes"),
    [(0, 0), (99, 0), (100, 0), (537, 249), (538, 250), (850, 500), (1100, 1000), (5000, 1000)],
)
def test_episodes_allowed_inverts_l(labels, episodes):
    assert episodes_allowed(S, labels) == episodes
    if 0 < episodes < S.episodes:
        assert labels_required(S, episodes) <= labels < labels_required(S, episodes + 1)


def test_retrain_thresholds_are_evenly_spaced_from_n0_to_n():
    assert retrain_thresholds(S) == list(range(100, 1101, 100))
    assert len(retrain_thresholds(Schedule(n0=64, n=2000, retrains=20))) == 20
    assert retrain_thresholds(Schedule(n0=10, n=10, retrains=5)) == [10]


def test_due_retrain_threshold():
    assert due_retrain_threshold(S, 99, None) is None
    assert due_retrain_threshold(S, 100, None) == 100
    assert due_retrain_threshold(S, 150, 100) is None  # next threshold is 200
    assert due_retrain_threshold(S, 420, 100) == 400  # skipped ones collapse into the highest
    assert due_retrain_threshold(S, 420, 400) is None


def test_policy_chunks_wait_for_labels():
    assert next_chunk_target(S, 0) == 250
    assert next_chunk_target(S, 900) == 1000
    assert next_chunk_target(S, 1000) is None
    assert not policy_chunk_due(S, 0, 537)
    assert policy_chunk_due(S, 0, 538)
    assert not policy_chunk_due(S, 1000, 10_000)


def test_from_dict_validates_with_clear_messages():
    assert Schedule.from_dict({"n0": 8, "n": 16, "buffer": 4}).buffer == 4
    assert Schedule.from_dict(None) == Schedule()
    with pytest.raises(ValueError, match=r"schedule\.bogus: unknown key"):
        Schedule.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match=r"schedule\.n: must be >= n0"):
        Schedule.from_dict({"n0": 10, "n": 5})
    with pytest.raises(ValueError, match=r"schedule\.auto_promote: expected bool"):
        Schedule.from_dict({"auto_promote": 1})
    with pytest.raises(ValueError, match=r"schedule\.buffer: expected int"):
        Schedule.from_dict({"buffer": "3"})


def test_retrain_waits_only_for_the_first_policy():
    waits = retrain_waits_for_first_policy
    assert waits(episodes_done=0, has_reward_model=True, policy_due_or_live=True)
    assert not waits(episodes_done=32, has_reward_model=True, policy_due_or_live=True)
    assert not waits(episodes_done=0, has_reward_model=False, policy_due_or_live=True)
    assert not waits(episodes_done=0, has_reward_model=True, policy_due_or_live=False)


B = Schedule(buffer=16)


@pytest.mark.parametrize(
    ("open_count", "demand", "training", "wanted"),
    [
        (9, 0, False, 0),  # more than half the buffer left
        (8, 0, False, 8),  # the low-water mark: top up to 16
        (3, 0, False, 13),
        (8, 8, True, 0),  # training, and 8 open cover what labelers took lately
        (8, 9, True, 8),  # labelers would run short: sample despite the run
        (1, 0, True, 0),
        (0, 0, True, 16),  # an empty buffer is always refilled
    ],
)
def test_comparisons_to_sample(open_count, demand, training, wanted):
    assert (
        comparisons_to_sample(B, open_count=open_count, demand=demand, training_live=training)
        == wanted
    )


def test_no_buffer_never_samples():
    none = Schedule(buffer=0)
    assert comparisons_to_sample(none, open_count=0, demand=50, training_live=False) == 0
    with pytest.raises(ValueError, match=r"schedule\.lookahead_seconds: must be >= 1"):
        Schedule.from_dict({"lookahead_seconds": 0})
