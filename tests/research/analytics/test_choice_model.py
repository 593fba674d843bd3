import math

import numpy as np
import pytest

from research.analytics.choice_model import (
    dominant_feature,
    fit_conditional_logit,
    flagged_features,
    penalized_log_likelihood,
    penalized_score,
)


def _binary(chose_first: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """K = 2, one feature that is 1 on sample 0 and 0 on sample 1; sample 0 chosen
    ``chose_first`` times of ``n``."""
    x = np.zeros((n, 2, 1))
    x[:, 0, 0] = 1.0
    return x, np.array([0] * chose_first + [1] * (n - chose_first))


def _synthetic(n: int, true: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4, len(true)))
    utility = x @ true + rng.gumbel(size=(n, 4))  # Gumbel noise: exactly a conditional logit
    return x, utility.argmax(axis=1)


def test_plain_binary_choice_has_the_closed_form_solution():
    x, y = _binary(30, 40)
    fit = fit_conditional_logit(x, y, names=["f"], penalty="none")
    assert fit.converged
    assert fit.coef[0] == pytest.approx(math.log(30 / 10), abs=1e-6)
    assert fit.se[0] == pytest.approx(math.sqrt(1 / (40 * 0.75 * 0.25)), rel=1e-6)
    assert fit.log_likelihood == pytest.approx(30 * math.log(0.75) + 10 * math.log(0.25))
    # LR against b = 0 (both samples equally likely).
    assert fit.lr[0] == pytest.approx(2 * (fit.log_likelihood - 40 * math.log(0.5)))


@pytest.mark.parametrize(("chose_first", "n"), [(30, 40), (40, 40), (0, 25)])
def test_firth_adds_half_a_choice_to_each_side(chose_first, n):
    """For one binary contrast Firth's estimate is log((y + 1/2) / (n - y + 1/2)): finite
    even when every choice went one way (where the plain estimate is infinite)."""
    x, y = _binary(chose_first, n)
    fit = fit_conditional_logit(x, y, names=["f"])
    assert fit.converged
    expected = math.log((chose_first + 0.5) / (n - chose_first + 0.5))
    assert fit.coef[0] == pytest.approx(expected, abs=1e-6)


def test_the_penalized_score_is_the_gradient_of_the_penalized_likelihood():
    x, y = _synthetic(60, np.array([1.0, -0.5, 0.2]), seed=3)
    beta = np.array([0.4, -0.3, 0.9])
    for penalty in ("firth", "none"):
        numeric = np.array(
            [
                (
                    penalized_log_likelihood(x, y, beta + h, penalty)
                    - penalized_log_likelihood(x, y, beta - h, penalty)
                )
                / 2e-6
                for h in np.eye(3) * 1e-6
            ]
        )
        assert penalized_score(x, y, beta, penalty) == pytest.approx(numeric, rel=1e-5, abs=1e-6)
    # The penalty is there: the two scores differ.
    assert not np.allclose(penalized_score(x, y, beta), penalized_score(x, y, beta, "none"))


def test_plain_fit_matches_statsmodels_conditional_logit():
    from statsmodels.discrete.conditional_models import ConditionalLogit

    x, y = _synthetic(300, np.array([0.8, -0.4, 0.0]), seed=1)
    n, k, p = x.shape
    fit = fit_conditional_logit(x, y, names=["a", "b", "c"], penalty="none")
    endog = np.zeros((n, k))
    endog[np.arange(n), y] = 1
    groups = np.repeat(np.arange(n), k)
    reference = ConditionalLogit(endog.ravel(), x.reshape(-1, p), groups=groups).fit(
        method="newton", disp=0
    )
    assert fit.coef == pytest.approx(reference.params, abs=1e-6)
    assert fit.se == pytest.approx(reference.bse, rel=1e-5)
    assert fit.log_likelihood == pytest.approx(reference.llf, abs=1e-6)
    for j in range(p):
        keep = [i for i in range(p) if i != j]
        restricted = ConditionalLogit(
            endog.ravel(), x[:, :, keep].reshape(-1, p - 1), groups=groups
        )
        expected = 2 * (reference.llf - restricted.fit(method="newton", disp=0).llf)
        assert fit.lr[j] == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_recovers_known_coefficients_and_firth_agrees_with_the_plain_fit_on_much_data():
    true = np.array([1.0, -0.5, 0.0])
    x, y = _synthetic(4000, true)
    fit = fit_conditional_logit(x, y, names=["a", "b", "c"])
    plain = fit_conditional_logit(x, y, names=["a", "b", "c"], penalty="none")
    assert np.all(np.abs(fit.coef - true) < 3 * fit.se)
    assert np.all(fit.se < 0.05)
    assert np.all((fit.lower < true) & (true < fit.upper))
    assert fit.coef == pytest.approx(plain.coef, abs=0.01)
    assert fit.pseudo_r2 > 0.1
    # Where the fit is regular the signed likelihood-ratio root is near Wald's z (above it,
    # for large effects: Wald's test understates them).
    wald = fit.coef[:2] / fit.se[:2]
    assert np.all(np.abs(fit.z[:2]) >= np.abs(wald)) and fit.z[:2] == pytest.approx(wald, rel=0.2)
    assert abs(fit.z[2]) < 3
    assert flagged_features(fit) == ["a", "b"]
    assert dominant_feature(fit, ratio=3.0) is None  # a is only about twice b
    only_a = fit_conditional_logit(x[:, :, [0, 2]], y, names=["a", "c"])
    assert dominant_feature(only_a) == "a"


def test_separation_gives_more_evidence_with_more_labels_not_a_stuck_z():
    """A chooser who always takes the largest x: the plain fit runs off (its Wald z stays
    small); the likelihood ratio grows with the number of choices."""
    zs = []
    for n in (50, 100, 200):
        rng = np.random.default_rng(n)
        x = rng.normal(size=(n, 4, 2))
        y = x[:, :, 0].argmax(axis=1)
        fit = fit_conditional_logit(x, y, names=["follows", "noise"])
        assert fit.converged and np.isfinite(fit.coef).all()
        assert flagged_features(fit) == ["follows"]
        zs.append(fit.z[0])
        plain = fit_conditional_logit(x, y, names=["follows", "noise"], penalty="none")
        assert abs(plain.coef[0] / plain.se[0]) < 4  # the Wald z that hid it
    assert 4 < zs[0] < zs[1] < zs[2]


def test_a_feature_without_variation_inside_comparisons_is_not_tested():
    x, y = _synthetic(200, np.array([1.0, 0.0]), seed=2)
    x[:, :, 1] = np.arange(200)[:, None]  # the same for every sample of a comparison
    fit = fit_conditional_logit(x, y, names=["a", "constant"])
    assert fit.coef[1] == fit.se[1] == fit.lr[1] == 0
    assert np.isfinite(fit.upper).all()  # plotted as error bars
    assert flagged_features(fit) == ["a"]
    nothing = fit_conditional_logit(x[:, :, [1]], y, names=["constant"])
    assert nothing.converged and nothing.coef[0] == 0 and flagged_features(nothing) == []


def test_bad_input_is_rejected():
    with pytest.raises(ValueError):
        fit_conditional_logit(np.zeros((3, 2, 1)), [0, 1, 2], names=["f"])
    with pytest.raises(ValueError):
        fit_conditional_logit(np.zeros((0, 2, 1)), [], names=["f"])
    with pytest.raises(ValueError):
        fit_conditional_logit(np.zeros((2, 2, 1)), [0, 1], names=["f", "g"])
