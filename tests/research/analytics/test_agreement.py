import random

import numpy as np
import pytest

from research.analytics.agreement import (
    ChoiceRecord,
    agreement_report,
    fleiss_kappa,
    krippendorff_alpha_nominal,
)

WIKIPEDIA_FLEISS = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_on_a_tiny_table_by_hand():
    # P_i = 1, 1, 0 -> P_bar = 2/3; p = (1/2, 1/2) -> P_e = 1/2; kappa = (2/3 - 1/2) / (1/2)
    assert fleiss_kappa([[2, 0], [0, 2], [1, 1]]) == pytest.approx(1 / 3)


def test_fleiss_kappa_matches_the_published_example():
    assert fleiss_kappa(WIKIPEDIA_FLEISS) == pytest.approx(0.2099, abs=1e-4)


def test_fleiss_kappa_perfect_and_undefined():
    assert fleiss_kappa([[3, 0, 0], [0, 3, 0], [0, 0, 3]]) == pytest.approx(1.0)
    assert fleiss_kappa([[2, 0], [2, 0]]) is None  # one category only
    with pytest.raises(ValueError):
        fleiss_kappa([[2, 0], [1, 2]])


def test_krippendorff_alpha_by_hand():
    # coincidences: o00 = 2, o11 = 2, o01 = o10 = 1; n = 6, n0 = n1 = 3
    # alpha = 1 - (n - 1) * 2 / (2 * 3 * 3) = 1 - 10 / 18
    assert krippendorff_alpha_nominal([[0, 0], [1, 1], [0, 1]]) == pytest.approx(4 / 9)


def test_krippendorff_alpha_matches_krippendorffs_nominal_example():
    units = [
        [1, 1, 1], [2, 2, 3, 2], [3, 3, 3, 3], [3, 3, 3, 3], [2, 2, 2, 2], [1, 2, 3, 4],
        [4, 4, 4, 4], [1, 1, 2, 1], [2, 2, 2, 2], [5, 5, 5], [1, 1], [3],
    ]  # fmt: skip
    assert krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=1e-3)
    assert krippendorff_alpha_nominal([[1], [2]]) is None


def _simulate(seed: int = 0):
    """Three careful labelers who mostly pick the gold/true best, one random labeler."""
    rng = random.Random(seed)
    k = 4
    truth = {c: rng.randrange(k) for c in range(80)}
    records = []
    for name, accuracy in [("ann", 0.9), ("bob", 0.85), ("cat", 0.8), ("rnd", None)]:
        for c, best in truth.items():
            if accuracy is None:
                choice = rng.randrange(k)
            else:
                choice = best if rng.random() < accuracy else rng.randrange(k)
            records.append(ChoiceRecord(labeler=name, comparison=c, choice=choice))
    gold = {c: truth[c] for c in range(10)}
    rm = {c: truth[c] for c in range(40, 80)}
    return records, gold, rm, k


def test_random_labeler_ranks_last_and_is_flagged():
    records, gold, rm, k = _simulate()
    report = agreement_report(records, k=k, gold=gold, rm_argmax=rm, threshold=0.6)
    assert [s.labeler for s in report.labelers][-1] == "rnd"
    flagged = {s.labeler for s in report.labelers if s.flagged}
    assert flagged == {"rnd"}
    rnd = report.labelers[-1]
    assert rnd.gold_accuracy is not None and rnd.gold_accuracy < 0.6
    assert rnd.peer_kappa is not None and abs(rnd.peer_kappa) < 0.2
    assert report.labelers[0].peer_kappa > 0.4
    assert report.overlap_items == 80 and report.fleiss_items == 80
    assert 0.2 < report.alpha < 0.8


def test_per_labeler_counts_by_hand():
    records = [
        ChoiceRecord("a", 1, 0), ChoiceRecord("b", 1, 0), ChoiceRecord("c", 1, 1),
        ChoiceRecord("a", 2, 1), ChoiceRecord("b", 2, 1),
        ChoiceRecord("a", 3, 2),
    ]  # fmt: skip
    report = agreement_report(records, k=3, gold={3: 2}, rm_argmax={1: 1}, threshold=0.5)
    by = {s.labeler: s for s in report.labelers}
    assert (by["a"].peer_pairs, by["a"].peer_agreements) == (3, 2)
    assert (by["c"].peer_pairs, by["c"].peer_agreements) == (2, 0)
    assert by["a"].gold_accuracy == 1.0 and by["b"].gold_accuracy is None
    assert by["c"].rm_agreement == 1.0 and by["a"].rm_agreement == 0.0
    # pooled choices on shared items: 0,0,1,1,1 -> chance = (2/5)^2 + (3/5)^2 = 0.52
    assert report.chance_agreement == pytest.approx(0.52)
    # b agrees with a on item 1 (not c) and on item 2: 2 of 3 pairs
    assert by["b"].peer_kappa == pytest.approx((2 / 3 - 0.52) / 0.48)
    assert not any(s.flagged for s in report.labelers)  # too few items to flag anyone


def test_out_of_range_choice_is_rejected():
    with pytest.raises(ValueError):
        agreement_report([ChoiceRecord("a", 1, 5)], k=4, gold={}, rm_argmax={}, threshold=0.5)


@pytest.mark.parametrize("seed", range(5))
def test_fleiss_kappa_matches_statsmodels(seed):
    from statsmodels.stats.inter_rater import fleiss_kappa as reference

    rng = np.random.default_rng(seed)
    raters, k = int(rng.integers(2, 6)), 4
    # Items with a preferred sample and some noise, so that kappa is away from 0.
    table = np.zeros((int(rng.integers(5, 60)), k), dtype=int)
    for row in table:
        favourite = rng.integers(k)
        for _ in range(raters):
            row[favourite if rng.random() < 0.6 else rng.integers(k)] += 1
    assert fleiss_kappa(table) == pytest.approx(reference(table, method="fleiss"), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_krippendorff_alpha_matches_the_krippendorff_package(seed):
    import krippendorff

    rng = np.random.default_rng(seed)
    units = []
    for _ in range(int(rng.integers(5, 50))):
        favourite = int(rng.integers(4))
        m = int(rng.integers(1, 6))  # any number of raters, single ones too (not pairable)
        units.append([favourite if rng.random() < 0.6 else int(rng.integers(4)) for _ in range(m)])
    width = max(len(u) for u in units)
    data = np.full((width, len(units)), np.nan)  # raters x units, nan = missing
    for j, values in enumerate(units):
        data[: len(values), j] = values
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert krippendorff_alpha_nominal(units) == pytest.approx(expected, abs=1e-12)
