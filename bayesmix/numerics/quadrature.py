"""Expectations over a positive hyperparameter by the trapezoid rule on the log scale (numpy)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np


def log_scale_expectation(
    fn: Callable[[np.ndarray], np.ndarray],
    f0: np.ndarray,
    log_pdf: Callable[[np.ndarray], np.ndarray],
    lo: float,
    hi: float,
    tol: float = 1e-10,
    what: str = "quadrature",
) -> np.ndarray:
    """E[fn(X)] for X with density exp(log_pdf(x)), all but a negligible part of its mass in
    [lo, hi], where fn(x) -> f0 as x -> 0.

    Written as f0 + E[fn(X) - f0] and integrated over t = log x with the trapezoid rule,
    halving the step until two successive estimates agree to ``tol`` (max abs). The integrand
    vanishes at both ends of t, so the rule converges geometrically. Warns (naming ``what``)
    if 12 halvings do not reach ``tol``.
    """
    if not hi > lo:  # all the mass sits where fn(x) == f0
        return f0.copy()
    t_lo, t_hi = math.log(lo), math.log(hi)

    def weighted(t: np.ndarray) -> np.ndarray:
        dens = np.exp(log_pdf(np.exp(t)) + t)  # density of log X
        return np.sum(dens[:, None] * (fn(np.exp(t)) - f0), axis=0)

    nodes = 65
    h = (t_hi - t_lo) / (nodes - 1)
    t = np.linspace(t_lo, t_hi, nodes)
    total = weighted(t[1:-1]) + 0.5 * weighted(t[[0, -1]])
    estimate = f0 + h * total
    change = math.inf
    for level in range(1, 13):
        total = total + weighted(t_lo + h * (np.arange(nodes - 1) + 0.5))
        h, nodes = h / 2, 2 * nodes - 1
        refined = f0 + h * total
        change = float(np.max(np.abs(refined - estimate)))
        estimate = refined
        if change < tol and level >= 2 and h < 0.25:
            return estimate
    warnings.warn(f"{what} stopped at accuracy ~{change:.1e}", RuntimeWarning, stacklevel=3)
    return estimate
