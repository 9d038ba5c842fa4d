"""Dirichlet process DP(alpha): a Gibbs-type partition prior with sigma = 0 and
V(n, t + 1) / V(n, t) = alpha (the Chinese restaurant), stick-breaking weights
v_k ~ Beta(1, alpha) for blocked samplers, and the Escobar & West (1995) update of alpha."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bayesmix.mixings.sticks import sticks_to_logw


@njit(cache=True, nogil=True)
def escobar_west(alpha, k, n, a, b):
    """Escobar & West (1995): eta ~ Beta(alpha + 1, n), then
    alpha ~ pi Gamma(a + k, b - log eta) + (1 - pi) Gamma(a + k - 1, b - log eta),
    pi / (1 - pi) = (a + k - 1) / (n (b - log eta))."""
    eta = np.random.beta(alpha + 1.0, n)
    rate = b - math.log(eta)
    odds = (a + k - 1.0) / (n * rate)
    shape = a + k if np.random.random() * (1.0 + odds) < odds else a + k - 1.0
    return np.random.gamma(shape, 1.0 / rate)


@njit(cache=True, nogil=True)
def _swap_labels(a, b, cnt, mu, lc, lab_of, old_of):
    """Exchange current labels a and b of (n, mu, L) and record it in the label maps."""
    cnt[a], cnt[b] = cnt[b], cnt[a]
    d = mu.shape[1]
    for i in range(d):
        mu[a, i], mu[b, i] = mu[b, i], mu[a, i]
        for j in range(d):
            lc[a, i, j], lc[b, i, j] = lc[b, i, j], lc[a, i, j]
    oa = old_of[a]
    ob = old_of[b]
    old_of[a] = ob
    old_of[b] = oa
    lab_of[oa] = b
    lab_of[ob] = a


@njit(cache=True, nogil=True)
def dp_label_moves(z, logw, mu, lc, ws, sigma):
    """Label-switching MH moves for stick-breaking weights, invariant for p(z, v, theta | x, .)
    (Papaspiliopoulos & Roberts 2008; Hastie, Liverani & Richardson 2015):

    1. swap the labels (z, theta) of two occupied components j, l keeping w:
       accept with (w_j / w_l)^(n_l - n_j);
    2. for j = 0 .. T-3 in turn, swap labels j, j+1 together with (v_j, v_{j+1}):
       accept with (1 - v_{j+1})^(n_j) / (1 - v_j)^(n_{j+1}) times the sticks' prior ratio,
       1 for the DP (v_k iid Beta(1, alpha)) and ((1 - v_j) / (1 - v_{j+1}))^sigma for
       Pitman-Yor sticks v_k ~ Beta(1 - sigma, theta + k sigma) (discount ``sigma``).
    Relabels z once at the end; returns the number of accepted swaps.
    """
    cnt, lv, l1v, lab_of, old_of, occ = ws[0], ws[9], ws[10], ws[11], ws[12], ws[13]
    kk = logw.shape[0]
    for k in range(kk):
        lab_of[k] = k
        old_of[k] = k
    nacc = 0
    nocc = 0
    for k in range(kk):
        if cnt[k] > 0:
            occ[nocc] = k
            nocc += 1
    if nocc >= 2:
        r1 = np.random.randint(0, nocc)
        r2 = np.random.randint(0, nocc - 1)
        if r2 >= r1:
            r2 += 1
        a, b = occ[r1], occ[r2]
        lr = (cnt[b] - cnt[a]) * (logw[a] - logw[b])
        if math.log(1.0 - np.random.random()) < lr:
            _swap_labels(a, b, cnt, mu, lc, lab_of, old_of)
            nacc += 1
    for j in range(kk - 2):
        if cnt[j] == 0 and cnt[j + 1] == 0:
            lr = 0.0
        else:
            lr = cnt[j] * l1v[j + 1] - cnt[j + 1] * l1v[j]
        if sigma != 0.0:
            lr += sigma * (l1v[j] - l1v[j + 1])
        if lr >= 0.0 or math.log(1.0 - np.random.random()) < lr:
            _swap_labels(j, j + 1, cnt, mu, lc, lab_of, old_of)
            lv[j], lv[j + 1] = lv[j + 1], lv[j]
            l1v[j], l1v[j + 1] = l1v[j + 1], l1v[j]
            nacc += 1
    if nacc > 0:
        sticks_to_logw(lv, l1v, logw)
        for i in range(z.shape[0]):
            z[i] = lab_of[z[i]]
    return nacc


@njit(cache=True, nogil=True)
def urn_r(t, alpha):
    """log of the new-cluster weight: log alpha, whatever the number t of occupied clusters."""
    return math.log(alpha)


@njit(cache=True, nogil=True)
def blocked_update(state, l1v, ca, cb):
    """alpha | v ~ Gamma(a + T - 1, b - sum_{k<T} log(1 - v_k)) (conjugate)."""
    kk = l1v.shape[0]
    slog1mv = 0.0
    for k in range(kk - 1):
        slog1mv += l1v[k]
    return np.random.gamma(ca + kk - 1.0, 1.0 / (cb - slog1mv))
