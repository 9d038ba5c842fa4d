"""Pitman-Yor process PY(theta, sigma) (Pitman & Yor 1997): strength theta > -sigma, discount
sigma in [0, 1). Gibbs-type with V(n, t + 1) / V(n, t) = theta + t sigma: in a collapsed sweep
an existing cluster j weighs n_j - sigma and a new one theta + t sigma (t occupied clusters).
Blocked samplers use the truncated sticks v_k ~ Beta(1 - sigma, theta + k sigma)
(``sticks.py``), and update (theta, sigma) | z with the sticks integrated out, before the
sticks are drawn. Hyperparameters: theta + sigma ~ Gamma(a, b) and sigma ~ Beta(c, d), each by
random-walk MH (on log(theta + sigma) and on logit sigma, keeping theta + sigma fixed when
sigma moves, so theta > -sigma always holds).

Blocked PY uses the DP's label-switching moves (``dp.dp_label_moves``) with the sticks' prior
ratio ((1 - v_j) / (1 - v_{j+1}))^sigma in the adjacent swap, since PY sticks are not
exchangeable.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bayesmix.mixings.dp import _swap_labels
from bayesmix.numerics.mh import MH_STEPS, mh_record

# slots of the chain state: strength (0), its log step (1), accepted (2), proposed (3);
# discount (5), its log step (6), accepted (7), proposed (8)
STRENGTH, DISCOUNT = 0, 5


@njit(cache=True, nogil=True)
def urn_r(t, strength, discount):
    """log of the new-cluster weight with t occupied clusters: log(theta + t sigma)."""
    return math.log(strength + t * discount)


@njit(cache=True, nogil=True)
def log_eppf(strength, discount, cnt, act, nact, n):
    """log p(partition | theta, sigma) = sum_{i=1}^{k-1} log(theta + i sigma)
    - log (theta + 1)_(n-1) + sum_j log (1 - sigma)_(n_j - 1) (Pitman 2006, eq. 3.6)."""
    if not strength > -discount:
        return -math.inf
    v = math.lgamma(strength + 1.0) - math.lgamma(strength + n)
    for i in range(1, nact):
        v += math.log(strength + i * discount)
    l1 = math.lgamma(1.0 - discount)
    for t in range(nact):
        v += math.lgamma(cnt[act[t]] - discount) - l1
    return v


@njit(cache=True, nogil=True)
def _stick_norms(strength, discount, kk, out):
    """out[k] = log B(1 - sigma, theta + (k + 1) sigma), the normaliser of stick k (0-based)."""
    a = 1.0 - discount
    for k in range(kk - 1):
        b = strength + (k + 1) * discount
        out[k] = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


@njit(cache=True, nogil=True)
def _stick_terms(strength, discount, cnt, lo, hi, norms):
    """sum_{k=lo}^{hi} log B(1 - sigma + n_k, theta + k sigma + m_k) - log B(1 - sigma,
    theta + k sigma), m_k = sum_{l>k} n_l (0-based k, hi <= T - 2; norms from
    ``_stick_norms``); terms with n_k = m_k = 0 are 0 and skipped."""
    m = 0
    for k in range(hi + 1, cnt.shape[0]):
        m += cnt[k]
    a = 1.0 - discount
    v = 0.0
    for k in range(hi, lo - 1, -1):
        nk = cnt[k]
        if nk > 0 or m > 0:
            b = strength + (k + 1) * discount
            v += math.lgamma(a + nk) + math.lgamma(b + m) - math.lgamma(a + b + nk + m) - norms[k]
        m += nk
    return v


@njit(cache=True, nogil=True)
def log_truncated_marginal(strength, discount, cnt):
    """log p(z | theta, sigma) under T truncated sticks v_k ~ Beta(1 - sigma, theta + k sigma),
    k < T, v_T = 1, with the sticks integrated out (labelled allocations; Ishwaran & James 2001):
    the sum over k < T of ``_stick_terms``."""
    if not strength > -discount:
        return -math.inf
    kk = cnt.shape[0]
    norms = np.empty(kk)
    _stick_norms(strength, discount, kk, norms)
    return _stick_terms(strength, discount, cnt, 0, kk - 2, norms)


@njit(cache=True, nogil=True)
def label_swaps(strength, discount, z, cnt, mu, lc, lab_of, old_of, n_prop):
    """n_prop MH swaps of the labels (z, mu, L) of an occupied slot j and any other slot l
    (uniform: a symmetric proposal), targeting p(z | theta, sigma) with the sticks integrated
    out (``log_truncated_marginal``; the likelihood is unchanged by a relabelling that moves
    the component parameters along). The truncated sticks are not exchangeable, so the slots'
    order carries information on sigma; without these swaps, sigma | z mixed as slowly as the
    arrangement of the occupied slots. Relabels z once at the end; returns the accepted count."""
    kk = cnt.shape[0]
    for k in range(kk):
        lab_of[k] = k
        old_of[k] = k
    nocc = 0
    for k in range(kk):
        if cnt[k] > 0:
            nocc += 1
    norms = np.empty(kk)
    _stick_norms(strength, discount, kk, norms)
    nacc = 0
    for _ in range(n_prop):
        r = np.random.randint(0, nocc)
        j = 0
        while cnt[j] == 0 or r > 0:
            if cnt[j] > 0:
                r -= 1
            j += 1
        ll = np.random.randint(0, kk - 1)
        if ll >= j:
            ll += 1
        lo, hi = min(j, ll), min(max(j, ll), kk - 2)  # only these terms change
        old = _stick_terms(strength, discount, cnt, lo, hi, norms)
        cnt[j], cnt[ll] = cnt[ll], cnt[j]
        new = _stick_terms(strength, discount, cnt, lo, hi, norms)
        cnt[j], cnt[ll] = cnt[ll], cnt[j]
        if math.log(1.0 - np.random.random()) < new - old:
            _swap_labels(j, ll, cnt, mu, lc, lab_of, old_of)
            nacc += 1
    if nacc > 0:
        for i in range(z.shape[0]):
            z[i] = lab_of[z[i]]
    return nacc


@njit(cache=True, nogil=True)
def _log_prior(strength, discount, hp):
    """log prior with the MH Jacobians: u = theta + sigma ~ Gamma(a, b) (on log u);
    sigma ~ Beta(c, d) (on logit sigma). Fixed parameters contribute 0."""
    v = 0.0
    if hp[0] == 0.0:
        u = strength + discount
        v += hp[1] * math.log(u) - hp[2] * u
    if hp[3] == 0.0:
        v += hp[4] * math.log(discount) + hp[5] * math.log1p(-discount)
    return v


@njit(cache=True, nogil=True)
def _mh(state, hp, it, tune, cnt, act, nact, n, collapsed):
    """MH_STEPS steps for each random parameter; the likelihood is the EPPF (collapsed) or
    the truncated sticks' marginal of the labelled allocations (blocked)."""
    th, sg = state[STRENGTH], state[DISCOUNT]

    def target(th, sg):
        prior = _log_prior(th, sg, hp)
        if collapsed:
            return prior + log_eppf(th, sg, cnt, act, nact, n)
        return prior + log_truncated_marginal(th, sg, cnt)

    cur = target(th, sg)
    if hp[0] == 0.0:  # strength: random walk on log(theta + sigma)
        for _ in range(MH_STEPS):
            lu = math.log(th + sg) + math.exp(state[STRENGTH + 1]) * np.random.standard_normal()
            prop = math.exp(lu) - sg
            new = target(prop, sg)
            r = new - cur
            accept = math.log(1.0 - np.random.random()) < r
            mh_record(state, STRENGTH + 1, it, tune, r, accept)
            if accept:
                th, cur = prop, new
    if hp[3] == 0.0:  # discount: random walk on logit sigma, theta + sigma kept if random
        for _ in range(MH_STEPS):
            ls = math.log(sg) - math.log1p(-sg)
            ls += math.exp(state[DISCOUNT + 1]) * np.random.standard_normal()
            prop = 1.0 / (1.0 + math.exp(-ls))
            th_new = th + sg - prop if hp[0] == 0.0 else th
            new = target(th_new, prop)
            r = new - cur
            accept = math.log(1.0 - np.random.random()) < r
            mh_record(state, DISCOUNT + 1, it, tune, r, accept)
            if accept:
                th, sg, cur = th_new, prop, new
    state[STRENGTH] = th
    state[DISCOUNT] = sg


@njit(cache=True, nogil=True)
def collapsed_update(state, hp, it, tune, cnt, act, nact, n):
    """(theta, sigma) | partition, by MH on the EPPF."""
    _mh(state, hp, it, tune, cnt, act, nact, n, True)


@njit(cache=True, nogil=True)
def blocked_update(state, hp, it, tune, z, cnt, mu, lc, lab_of, old_of):
    """Label swaps (``label_swaps``, T proposals), then (theta, sigma) | z by MH, both with
    the sticks integrated out (``log_truncated_marginal``); the blocked sampler then draws the
    sticks | z, theta, sigma. Returns whether z was relabelled. Given the sticks instead,
    sigma mixed badly (ESS 30 in 40,000 draws, N = 100, T = 20, true sigma 0.8): the
    T - K+ empty sticks, drawn from their prior, pin sigma to its current value."""
    moved = label_swaps(state[STRENGTH], state[DISCOUNT], z, cnt, mu, lc, lab_of, old_of,
                        cnt.shape[0])  # fmt: skip
    if hp[0] == 0.0 or hp[3] == 0.0:
        _mh(state, hp, it, tune, cnt, cnt, 0, 0, False)
    return moved > 0
