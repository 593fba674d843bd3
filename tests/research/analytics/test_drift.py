import random

import numpy as np
import pytest

from research.analytics.drift import ChoiceObservation, drift_report
from research.analytics.features import FEATURES, ComparisonView, raw_features
from tests.synthetic_text import choose, prompt_and_samples


def _observations(preferences: dict[str, str], n: int, seed: int = 1):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        prompt, samples = prompt_and_samples(rng)
        for labeler, preference in preferences.items():
            order = list(range(len(samples)))
            rng.shuffle(order)
            view = ComparisonView(prompt=prompt, samples=samples, display_order=order)
            out.append(ChoiceObservation(labeler, view, choose(preference, prompt, samples, rng)))
    return out


def test_a_labeler_who_rewards_copying_is_flagged_and_a_random_one_is_not():
    report = drift_report(_observations({"copier": "copy", "rando": "random"}, n=250))
    by = {g.key: g for g in report.per_labeler}
    assert by["copier"].dominant == "copy"
    assert by["rando"].dominant is None
    copier = {r["name"]: r for r in by["copier"].fit.rows()}
    assert copier["copy"]["coef"] > 0.8 and copier["copy"]["z"] > 8
    rando = {r["name"]: r for r in by["rando"].fit.rows()}
    assert all(abs(r["z"]) < 3.5 for r in rando.values())
    assert any("Labeler copier rewards copied from prompt" in w for w in report.warnings)
    assert not any("rando" in w for w in report.warnings)
    assert len(report.windows) == 4 and sum(w.n for w in report.windows) == 500


def test_sentiment_preference_shows_up_as_the_sentiment_coefficient():
    report = drift_report(_observations({"sunny": "sentiment"}, n=200, seed=3))
    assert report.per_labeler[0].dominant == "sentiment"


def test_small_and_empty_inputs_do_not_fit():
    assert drift_report([]).overall is None
    report = drift_report(_observations({"a": "random"}, n=5))
    assert report.overall is not None and report.overall.fit is None
    assert report.as_dict()["overall"]["rows"] == []


def _following(feature: str, sign: int, n: int, seed: int, consistency: float = 1.0):
    """A labeler who picks the sample with the most (sign 1) or least (-1) of ``feature`` as
    seen on screen, ``consistency`` of the time (else at random); ties broken at random."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        prompt, samples = prompt_and_samples(rng)
        order = list(range(len(samples)))
        rng.shuffle(order)
        view = ComparisonView(prompt=prompt, samples=samples, display_order=order)
        column = sign * raw_features(view)[:, FEATURES.index(feature)]
        if rng.random() < consistency:
            chosen = rng.choice(list(np.flatnonzero(column == column.max())))
        else:
            chosen = rng.randrange(len(samples))
        out.append(ChoiceObservation(f"{feature}{sign:+d}", view, int(chosen)))
    return out


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("feature", FEATURES)
def test_a_labeler_who_always_follows_a_feature_is_flagged_on_it_alone(feature, sign):
    report = drift_report(_following(feature, sign, n=100, seed=11), windows=1)
    group = report.per_labeler[0]
    assert group.flagged == [feature]
    row = next(r for r in group.fit.rows() if r["name"] == feature)
    assert np.sign(row["coef"]) == sign and np.sign(row["z"]) == sign
    assert abs(row["z"]) > 8  # strong evidence, not a borderline 4
    assert len(report.warnings) == 2  # the labeler and "overall" (the same labels)
    assert ("rewards" if sign > 0 else "penalizes") in report.warnings[0]


def test_always_following_gives_more_evidence_than_following_most_of_the_time():
    """The issue's case: the most negative sample every time was z = -3.97 (not flagged)
    while 90% of the time gave z = -11."""
    always = drift_report(_following("sentiment", -1, n=100, seed=5), windows=1)
    mostly = drift_report(_following("sentiment", -1, n=100, seed=5, consistency=0.9), windows=1)
    z_always = always.per_labeler[0].fit.z[FEATURES.index("sentiment")]
    z_mostly = mostly.per_labeler[0].fit.z[FEATURES.index("sentiment")]
    assert always.per_labeler[0].flagged == mostly.per_labeler[0].flagged == ["sentiment"]
    assert z_always < z_mostly < -4


@pytest.mark.slow
def test_a_random_labeler_is_flagged_on_nothing_in_at_least_95_of_100_seeds():
    flagged = []
    for seed in range(100):
        rng = random.Random(seed)
        observations = []
        for _ in range(100):
            prompt, samples = prompt_and_samples(rng)
            order = list(range(len(samples)))
            rng.shuffle(order)
            view = ComparisonView(prompt=prompt, samples=samples, display_order=order)
            observations.append(ChoiceObservation("rando", view, rng.randrange(len(samples))))
        group = drift_report(observations, windows=1).per_labeler[0]
        if group.flagged:
            flagged.append((seed, group.flagged))
    assert len(flagged) <= 5, flagged
