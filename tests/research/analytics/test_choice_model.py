import math

import numpy as np
import pytest

from research.analytics.choice_model import dominant_feature, fit_conditional_logit


def test_binary_choice_has_the_closed_form_solution():
    # K = 2, one feature that is 1 on sample 0 and 0 on sample 1; sample 0 chosen 30 of 40
    x = np.zeros((40, 2, 1))
    x[:, 0, 0] = 1.0
    y = np.array([0] * 30 + [1] * 10)
    fit = fit_conditional_logit(x, y, names=["f"], ridge=1e-12)
    assert fit.converged
    assert fit.coef[0] == pytest.approx(math.log(30 / 10), abs=1e-6)
    assert fit.se[0] == pytest.approx(math.sqrt(1 / (40 * 0.75 * 0.25)), rel=1e-6)
    assert fit.log_likelihood == pytest.approx(30 * math.log(0.75) + 10 * math.log(0.25))


def test_recovers_known_coefficients_on_synthetic_choices():
    rng = np.random.default_rng(0)
    n, k, true = 4000, 4, np.array([1.0, -0.5, 0.0])
    x = rng.normal(size=(n, k, 3))
    utility = x @ true + rng.gumbel(size=(n, k))  # Gumbel noise: exactly a conditional logit
    y = utility.argmax(axis=1)
    fit = fit_conditional_logit(x, y, names=["a", "b", "c"])
    assert np.all(np.abs(fit.coef - true) < 3 * fit.se)
    assert np.all(fit.se < 0.05)
    assert np.all((fit.lower < true) & (true < fit.upper))
    assert fit.pseudo_r2 > 0.1
    assert dominant_feature(fit, ratio=3.0) is None  # a is only about twice b
    only_a = fit_conditional_logit(x[:, :, [0, 2]], y, names=["a", "c"])
    assert dominant_feature(only_a) == "a"


def test_bad_input_is_rejected():
    with pytest.raises(ValueError):
        fit_conditional_logit(np.zeros((3, 2, 1)), [0, 1, 2], names=["f"])
    with pytest.raises(ValueError):
        fit_conditional_logit(np.zeros((0, 2, 1)), [], names=["f"])
