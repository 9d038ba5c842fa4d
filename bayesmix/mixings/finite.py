"""Finite symmetric Dirichlet mixture w ~ Dirichlet(gamma, ..., gamma) with K labelled
components: Gibbs-type with sigma = -gamma and V(n, t + 1) / V(n, t) = gamma (K - t); gamma by
random-walk MH on log gamma (Dirichlet density of w, or the Dirichlet-multinomial of the
counts)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bayesmix.numerics.linalg import logsumexp
from bayesmix.numerics.mh import MH_STEPS, mh_record
from bayesmix.numerics.rng import log_gamma_rv

NEG_INF = -math.inf


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


@njit(cache=True, nogil=True)
def urn_r(t, gamma, kfin):
    """log of the new-cluster weight with t occupied clusters: log(K - t) + log(gamma) (the
    (K - t) empty labelled slots share it); -inf when every slot is occupied."""
    if t >= kfin:
        return NEG_INF
    return math.log(kfin - t) + math.log(gamma)


@njit(cache=True, nogil=True)
def collapsed_update(state, cnt, act, nact, kfin, n, ca, cb, it, tune):
    """Random-walk MH on log gamma with the Dirichlet-multinomial marginal of the counts
    (``log_target_dirmult``), MH_STEPS steps; the step adapts during burn-in (state[1])."""
    lg = math.log(state[0])
    cur = log_target_dirmult(lg, cnt, act, nact, kfin, n, ca, cb)
    for _ in range(MH_STEPS):
        prop = lg + math.exp(state[1]) * np.random.standard_normal()
        new = log_target_dirmult(prop, cnt, act, nact, kfin, n, ca, cb)
        r = new - cur
        accept = math.log(1.0 - np.random.random()) < r
        mh_record(state, 1, it, tune, r, accept)
        if accept:
            lg = prop
            cur = new
    return math.exp(lg)


@njit(cache=True, nogil=True)
def blocked_weights(cnt, gamma, logw):
    """w | z ~ Dirichlet(gamma + n_1, ..., gamma + n_K), in log space."""
    kk = logw.shape[0]
    for k in range(kk):
        logw[k] = log_gamma_rv(gamma + cnt[k])
    lse = logsumexp(logw, kk)
    for k in range(kk):
        logw[k] -= lse


@njit(cache=True, nogil=True)
def blocked_update(state, logw, ca, cb, it, tune):
    """Random-walk MH on log gamma with the Dirichlet(gamma) density of w (``log_target_dirichlet``)."""
    kk = logw.shape[0]
    lg = math.log(state[0])
    cur = log_target_dirichlet(lg, logw, kk, ca, cb)
    for _ in range(MH_STEPS):
        prop = lg + math.exp(state[1]) * np.random.standard_normal()
        new = log_target_dirichlet(prop, logw, kk, ca, cb)
        r = new - cur
        accept = math.log(1.0 - np.random.random()) < r
        mh_record(state, 1, it, tune, r, accept)
        if accept:
            lg = prop
            cur = new
    return math.exp(lg)
