"""Finite symmetric Dirichlet mixture w ~ Dirichlet(gamma, ..., gamma) with K labelled
components: Gibbs-type with sigma = -gamma and V(n, t + 1) / V(n, t) = gamma (K - t); gamma by
random-walk MH on log gamma (Dirichlet density of w, or the Dirichlet-multinomial of the
counts)."""

from __future__ import annotations

import math

from numba import njit


@njit(cache=True, nogil=True)
def log_target_dirichlet(lg, logw, kk, a, b):
    """log p(log gamma | w): Gamma(a, b) prior (with Jacobian) x Dirichlet(gamma) density of w."""
    g = math.exp(lg)
    s = 0.0
    for k in range(kk):
        s += logw[k]
    return a * lg - b * g + math.lgamma(kk * g) - kk * math.lgamma(g) + (g - 1.0) * s


@njit(cache=True, nogil=True)
def log_target_dirmult(lg, cnt, act, nact, kk, n, a, b):
    """log p(log gamma | z): Gamma(a, b) prior (with Jacobian) x Dirichlet-multinomial of counts,
    log G(K g) - log G(K g + N) + sum_k [log G(n_k + g) - log G(g)] (empty k contribute 0)."""
    g = math.exp(lg)
    v = a * lg - b * g + math.lgamma(kk * g) - math.lgamma(kk * g + n)
    lgg = math.lgamma(g)
    for t in range(nact):
        v += math.lgamma(cnt[act[t]] + g) - lgg
    return v
