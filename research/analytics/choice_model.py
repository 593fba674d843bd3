"""McFadden's conditional logit over the K samples of a comparison.

P(choose j | comparison i) = exp(x_ij . b) / sum_l exp(x_il . b). Fitted by Newton-Raphson
on the ridge-penalized log-likelihood; standard errors from the inverse (penalized) Hessian.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054


@dataclass(frozen=True)
class LogitFit:
    names: tuple[str, ...]
    coef: np.ndarray
    se: np.ndarray
    n: int
    log_likelihood: float
    null_log_likelihood: float
    converged: bool
    iterations: int

    @property
    def z(self) -> np.ndarray:
        return self.coef / self.se

    @property
    def lower(self) -> np.ndarray:
        return self.coef - Z95 * self.se

    @property
    def upper(self) -> np.ndarray:
        return self.coef + Z95 * self.se

    @property
    def p_values(self) -> np.ndarray:
        return np.array([math.erfc(abs(z) / math.sqrt(2.0)) for z in self.z])

    @property
    def pseudo_r2(self) -> float:
        """McFadden's pseudo R^2 = 1 - LL / LL0."""
        if self.null_log_likelihood == 0:
            return 0.0
        return 1.0 - self.log_likelihood / self.null_log_likelihood

    def rows(self) -> list[dict]:
        return [
            {
                "name": name,
                "coef": float(self.coef[i]),
                "se": float(self.se[i]),
                "z": float(self.z[i]),
                "p": float(self.p_values[i]),
                "lower": float(self.lower[i]),
                "upper": float(self.upper[i]),
            }
            for i, name in enumerate(self.names)
        ]


def _probabilities(x: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    utility = x @ beta  # (n, K)
    utility -= utility.max(axis=1, keepdims=True)
    expu = np.exp(utility)
    denom = expu.sum(axis=1, keepdims=True)
    return expu / denom, utility - np.log(denom)


def fit_conditional_logit(
    x: np.ndarray,
    chosen: Sequence[int] | np.ndarray,
    *,
    names: Sequence[str],
    ridge: float = 1e-3,
    max_iter: int = 50,
    tol: float = 1e-8,
) -> LogitFit:
    """Fit b on x of shape (n, K, p) and chosen indices of shape (n,)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(chosen, dtype=int)
    if x.ndim != 3 or x.shape[0] != y.shape[0] or x.shape[2] != len(names):
        raise ValueError("x must be (n, K, p) with n choices and p names")
    n, k, p = x.shape
    if n == 0:
        raise ValueError("no choices to fit")
    if np.any((y < 0) | (y >= k)):
        raise ValueError("chosen index out of range")
    rows = np.arange(n)
    beta = np.zeros(p)
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):  # noqa: B007
        prob, _ = _probabilities(x, beta)
        mean_x = np.einsum("nk,nkp->np", prob, x)
        grad = (x[rows, y] - mean_x).sum(axis=0) - ridge * beta
        centred = x - mean_x[:, None, :]
        info = np.einsum("nk,nkp,nkq->pq", prob, centred, centred) + ridge * np.eye(p)
        step = np.linalg.solve(info, grad)
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            converged = True
            break
    prob, logp = _probabilities(x, beta)
    mean_x = np.einsum("nk,nkp->np", prob, x)
    centred = x - mean_x[:, None, :]
    info = np.einsum("nk,nkp,nkq->pq", prob, centred, centred) + ridge * np.eye(p)
    cov = np.linalg.inv(info)
    se = np.sqrt(np.clip(np.diag(cov), 1e-300, None))
    return LogitFit(
        names=tuple(names),
        coef=beta,
        se=se,
        n=n,
        log_likelihood=float(logp[rows, y].sum()),
        null_log_likelihood=float(-n * math.log(k)),
        converged=converged,
        iterations=iteration,
    )


def dominant_feature(
    fit: LogitFit, *, min_abs_z: float = 4.0, ratio: float = 2.0, min_effect: float = 0.5
) -> str | None:
    """The feature that dominates choices, if one does.

    Dominant: significant (|z| >= min_abs_z), material (|coef| >= min_effect per SD) and at
    least ``ratio`` times larger in magnitude than every other coefficient.
    """
    magnitude = np.abs(fit.coef)
    if magnitude.size == 0:
        return None
    top = int(np.argmax(magnitude))
    others = np.delete(magnitude, top)
    if abs(fit.z[top]) < min_abs_z or magnitude[top] < min_effect:
        return None
    if others.size and magnitude[top] < ratio * others.max():
        return None
    return fit.names[top]
