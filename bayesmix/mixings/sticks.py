"""Stick-breaking weights for blocked samplers (DP and Pitman-Yor, truncated at T sticks).

v_k ~ Beta(1 - sigma + n_k, theta + k sigma + sum_{l>k} n_l) given the allocations
(k = 1..T-1; sigma = 0, theta = alpha for the DP; Ishwaran & James 2001), v_T = 1, and
w_k = v_k prod_{l<k} (1 - v_l). log v_k and log(1 - v_k) are kept for the hyperparameter
updates and the DP's label-switching moves.
"""

from __future__ import annotations

import math

from numba import njit

from bayesmix.numerics.rng import log_gamma_rv


@njit(cache=True, nogil=True)
def sticks_to_logw(lv, l1v, logw):
    """log w_k = log v_k + sum_{l<k} log(1 - v_l), v_T = 1; returns sum_{k<T} log(1 - v_k)."""
    kk = logw.shape[0]
    acc = 0.0
    for k in range(kk - 1):
        logw[k] = acc + lv[k]
        acc += l1v[k]
    logw[kk - 1] = acc
    return acc


@njit(cache=True, nogil=True)
def stick_weights(cnt, strength, discount, lv, l1v, logw):
    """Draw the sticks given the counts (v_k = G1 / (G1 + G2), G1 ~ Gamma(1 - sigma + n_k),
    G2 ~ Gamma(theta + k sigma + tail), in log space) and write log w."""
    kk = logw.shape[0]
    tail = 0
    for k in range(kk):
        tail += cnt[k]
    for k in range(kk - 1):
        tail -= cnt[k]
        g1 = log_gamma_rv(1.0 - discount + cnt[k])
        g2 = log_gamma_rv(strength + (k + 1) * discount + tail)
        m = max(g1, g2)
        lse = m + math.log(math.exp(g1 - m) + math.exp(g2 - m))
        lv[k] = g1 - lse
        l1v[k] = g2 - lse
    sticks_to_logw(lv, l1v, logw)
