"""McFadden's conditional logit over the K samples of a comparison, with Firth's penalty and
likelihood-ratio tests, so that the strongest biases show the strongest evidence.

P(choose j | comparison i) = exp(x_ij . b) / sum_l exp(x_il . b).

Why not the plain maximum-likelihood fit with Wald tests: a labeler who follows one feature
every time separates the data, the likelihood has no maximum, the coefficient runs off and
its standard error with it, so that z = b / se stays near 4 however strong the preference
(Hauck-Donner). Here:

- Firth's penalty (Firth 1993; Heinze & Schemper 2002) maximizes l*(b) = l(b) + 1/2 log det
  I(b), whose maximum is finite under separation. For this model I(b) = sum_ik p_ik c_ik
  c_ik^T with c_ik = x_ik - sum_l p_il x_il, and the penalty's gradient is
  1/2 sum_ik p_ik h_ik c_ik with h_ik = c_ik^T I^-1 c_ik (the leverages).
- each feature is tested by the penalized likelihood ratio LR_j = 2 (l*(b) - l*(b | b_j = 0))
  (the restricted fit keeps the full model's penalty), chi-square with 1 df. ``z`` is the
  signed root, sign(b_j) sqrt(LR_j): equal to Wald's z where the fit is regular, and growing
  with the number of labels under separation.

``penalty="none"`` gives the plain fit (checked against statsmodels' ConditionalLogit in
tests). Features without variation inside any comparison carry no information: they get
coefficient 0, standard error 0 and likelihood ratio 0 (not tested).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Z95 = 1.959963984540054
Penalty = Literal["firth", "none"]


@dataclass(frozen=True)
class LogitFit:
    names: tuple[str, ...]
    coef: np.ndarray
    se: np.ndarray
    lr: np.ndarray
    """Likelihood-ratio statistic of each coefficient (0 where it is not tested)."""
    n: int
    log_likelihood: float
    null_log_likelihood: float
    converged: bool
    iterations: int
    penalty: str = "firth"

    @property
    def z(self) -> np.ndarray:
        """Signed root of the likelihood ratio: sign(coef) * sqrt(LR)."""
        return np.sign(self.coef) * np.sqrt(np.clip(self.lr, 0.0, None))

    @property
    def lower(self) -> np.ndarray:
        return self.coef - Z95 * self.se

    @property
    def upper(self) -> np.ndarray:
        return self.coef + Z95 * self.se

    @property
    def p_values(self) -> np.ndarray:
        """P(chi-square with 1 df > LR)."""
        return np.array([math.erfc(math.sqrt(max(lr, 0.0) / 2.0)) for lr in self.lr])

    @property
    def pseudo_r2(self) -> float:
        """McFadden's pseudo R^2 = 1 - LL / LL0 (unpenalized log-likelihoods)."""
        if self.null_log_likelihood == 0:
            return 0.0
        return 1.0 - self.log_likelihood / self.null_log_likelihood

    def rows(self) -> list[dict]:
        return [
            {
                "name": name,
                "coef": float(self.coef[i]),
                "se": float(self.se[i]),
                "lr": float(self.lr[i]),
                "z": float(self.z[i]),
                "p": float(self.p_values[i]),
                "lower": float(self.lower[i]),
                "upper": float(self.upper[i]),
            }
            for i, name in enumerate(self.names)
        ]


def _probabilities(x: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    utility = x @ beta  # (n, K)
    utility = utility - utility.max(axis=1, keepdims=True)
    log_prob = utility - np.log(np.exp(utility).sum(axis=1, keepdims=True))
    return np.exp(log_prob), log_prob


def _pieces(x: np.ndarray, y: np.ndarray, beta: np.ndarray) -> tuple:
    """(log-likelihood, score, information, probabilities, centred x) at beta."""
    prob, log_prob = _probabilities(x, beta)
    rows = np.arange(len(y))
    mean_x = np.einsum("nk,nkp->np", prob, x)  # (n, p)
    centred = x - mean_x[:, None, :]  # (n, K, p)
    score = centred[rows, y].sum(axis=0)  # (p,)
    info = np.einsum("nk,nkp,nkq->pq", prob, centred, centred)  # (p, p)
    return float(log_prob[rows, y].sum()), score, info, prob, centred


def _logdet(info: np.ndarray) -> float:
    sign, value = np.linalg.slogdet(info)
    return float(value) if sign > 0 else -np.inf


def penalized_log_likelihood(
    x: np.ndarray, y: np.ndarray, beta: np.ndarray, penalty: Penalty = "firth"
) -> float:
    log_likelihood, _, info, _, _ = _pieces(x, y, beta)
    return log_likelihood + (0.5 * _logdet(info) if penalty == "firth" else 0.0)


def penalized_score(
    x: np.ndarray, y: np.ndarray, beta: np.ndarray, penalty: Penalty = "firth"
) -> np.ndarray:
    """The gradient of :func:`penalized_log_likelihood` (closed form)."""
    _, score, info, prob, centred = _pieces(x, y, beta)
    if penalty != "firth":
        return score
    leverage = np.einsum("nkp,pq,nkq->nk", centred, np.linalg.pinv(info), centred)
    return score + 0.5 * np.einsum("nk,nk,nkp->p", prob, leverage, centred)


def _maximize(
    x: np.ndarray,
    y: np.ndarray,
    free: np.ndarray,
    penalty: Penalty,
    max_iter: int,
    tol: float,
) -> tuple[np.ndarray, bool, int]:
    """Fisher scoring with step halving on the coefficients ``free`` (the others stay 0)."""
    beta = np.zeros(x.shape[2])
    if not free.any():
        return beta, True, 0
    objective = penalized_log_likelihood(x, y, beta, penalty)
    for iteration in range(1, max_iter + 1):
        _, _, info, _, _ = _pieces(x, y, beta)
        gradient = penalized_score(x, y, beta, penalty)[free]
        step = np.zeros_like(beta)
        step[free] = np.linalg.lstsq(info[np.ix_(free, free)], gradient, rcond=None)[0]
        step *= min(1.0, 5.0 / max(np.max(np.abs(step)), 1e-300))  # at most 5 per SD a step
        for _ in range(30):
            candidate = penalized_log_likelihood(x, y, beta + step, penalty)
            if candidate >= objective - 1e-12:
                break
            step /= 2.0
        beta, objective = beta + step, candidate
        if np.max(np.abs(step)) < tol:
            return beta, True, iteration
    return beta, False, max_iter


def fit_conditional_logit(
    x: np.ndarray,
    chosen: Sequence[int] | np.ndarray,
    *,
    names: Sequence[str],
    penalty: Penalty = "firth",
    test: bool = True,
    max_iter: int = 100,
    tol: float = 1e-8,
) -> LogitFit:
    """Fit b on x of shape (n, K, p) and chosen indices of shape (n,); with ``test``, a
    likelihood-ratio test of each coefficient (p more fits)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(chosen, dtype=int)
    if x.ndim != 3 or x.shape[0] != y.shape[0] or x.shape[2] != len(names):
        raise ValueError("x must be (n, K, p) with n choices and p names")
    n, k, p = x.shape
    if n == 0:
        raise ValueError("no choices to fit")
    if np.any((y < 0) | (y >= k)):
        raise ValueError("chosen index out of range")
    varies = np.ptp(x, axis=1).max(axis=0) > 1e-12  # (p,): informative features
    informative = x[:, :, varies]  # (n, K, q): the fit's design (a singular I otherwise)
    q = informative.shape[2]
    beta, converged, iterations = _maximize(
        informative, y, np.ones(q, bool), penalty, max_iter, tol
    )
    full = penalized_log_likelihood(informative, y, beta, penalty)
    log_likelihood, _, info, _, _ = _pieces(informative, y, beta)
    coef, se, lr = np.zeros(p), np.zeros(p), np.zeros(p)  # 0 for features without variation
    coef[varies] = beta
    if q:
        se[varies] = np.sqrt(np.clip(np.diag(np.linalg.pinv(info)), 1e-300, None))
    for i, j in enumerate(np.flatnonzero(varies)) if test else []:
        free = np.ones(q, bool)
        free[i] = False
        restricted, _, _ = _maximize(informative, y, free, penalty, max_iter, tol)
        restricted_value = penalized_log_likelihood(informative, y, restricted, penalty)
        lr[j] = max(0.0, 2.0 * (full - restricted_value))
    return LogitFit(
        names=tuple(names),
        coef=coef,
        se=se,
        lr=lr,
        n=n,
        log_likelihood=log_likelihood,
        null_log_likelihood=float(-n * math.log(k)),
        converged=converged,
        iterations=iterations,
        penalty=penalty,
    )


def flagged_features(
    fit: LogitFit, *, min_abs_z: float = 4.0, min_effect: float = 0.5
) -> list[str]:
    """Features that predict choices: |z| >= min_abs_z (likelihood ratio, so p < 6e-5 at 4)
    and |coef| >= min_effect per SD; strongest evidence first."""
    z = fit.z
    flagged = [
        i
        for i in range(len(fit.names))
        if abs(z[i]) >= min_abs_z and abs(fit.coef[i]) >= min_effect
    ]
    return [fit.names[i] for i in sorted(flagged, key=lambda i: -abs(z[i]))]


def dominant_feature(
    fit: LogitFit, *, min_abs_z: float = 4.0, ratio: float = 2.0, min_effect: float = 0.5
) -> str | None:
    """The one feature that dominates choices, if one does: flagged, and its evidence at
    least ``ratio`` times every other feature's (|z|)."""
    flagged = flagged_features(fit, min_abs_z=min_abs_z, min_effect=min_effect)
    if not flagged:
        return None
    top = fit.names.index(flagged[0])
    others = np.delete(np.abs(fit.z), top)
    if others.size and abs(fit.z[top]) < ratio * others.max():
        return None
    return flagged[0]
