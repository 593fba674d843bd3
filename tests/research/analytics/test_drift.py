import random

from research.analytics.drift import ChoiceObservation, drift_report
from research.analytics.features import ComparisonView
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
    assert any("copier rewards copied from prompt" in w for w in report.warnings)
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
