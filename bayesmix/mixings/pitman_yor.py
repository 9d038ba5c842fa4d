"""Pitman-Yor process PY(theta, sigma) (Pitman & Yor 1997): strength theta > -sigma, discount
sigma in [0, 1). Gibbs-type with V(n, t + 1) / V(n, t) = theta + t sigma: in a collapsed sweep
an existing cluster j weighs n_j - sigma and a new one theta + t sigma (t occupied clusters).
Blocked samplers use the truncated sticks v_k ~ Beta(1 - sigma, theta + k sigma)
(``sticks.py``). Hyperparameters: theta + sigma ~ Gamma(a, b) and sigma ~ Beta(c, d), each by
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
def log_sticks(strength, discount, lv, l1v):
    """log p(v_1..v_{T-1} | theta, sigma): Beta(1 - sigma, theta + k sigma) densities."""
    v = 0.0
    for k in range(lv.shape[0] - 1):
        a = 1.0 - discount
        b = strength + (k + 1) * discount
        v += math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
        v += (a - 1.0) * lv[k] + (b - 1.0) * l1v[k]
    return v


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
def _mh(state, hp, it, tune, cnt, act, nact, n, lv, l1v, collapsed):
    """MH_STEPS steps for each random parameter; the likelihood is the EPPF (collapsed) or
    the stick densities (blocked)."""
    th, sg = state[STRENGTH], state[DISCOUNT]

    def target(th, sg):
        prior = _log_prior(th, sg, hp)
        if collapsed:
            return prior + log_eppf(th, sg, cnt, act, nact, n)
        return prior + log_sticks(th, sg, lv, l1v)

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
    dummy = np.zeros(1)
    _mh(state, hp, it, tune, cnt, act, nact, n, dummy, dummy, True)


@njit(cache=True, nogil=True)
def blocked_update(state, hp, it, tune, lv, l1v):
    """(theta, sigma) | sticks, by MH on the Beta(1 - sigma, theta + k sigma) densities."""
    dummy = np.zeros(1, np.int64)
    _mh(state, hp, it, tune, dummy, dummy, 0, 0, lv, l1v, False)
