"""The telescoping sampler (Frühwirth-Schnatter, Malsiner-Walli & Grün 2021, Algorithm 1) for
mixtures of finite mixtures, static (gamma_K = gamma) or dynamic (gamma_K = alpha / K).

A blocked sampler conditional on the number of components K. Sweep:
1. z_i | w, theta over the K components;
2. the K+ occupied components are moved to the front (their order kept);
3. K | z ~ p(k) k! / (k - K+)! Γ(k gamma_k) / Γ(k gamma_k + n) prod_j Γ(n_j + gamma_k) / Γ(gamma_k),
   k = K+..K_max (``mfm.draw_k_given_z``);
4. gamma (static) or alpha (dynamic) | K, z by random-walk MH (``mfm.telescoping_update``);
5. w | z, K ~ Dirichlet(gamma_K + n_1, .., gamma_K + n_K+, gamma_K, .., gamma_K);
6. theta_k | z from the kernel's conditional posterior, the K - K+ empty ones from the prior.
Slots K..K_max-1 carry zero weight.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from bayesmix.engines.gibbs.blocked import save_draw
from bayesmix.engines.gibbs.start import init_by_centres
from bayesmix.kernels.niw import (
    cluster_stats,
    mixture_loglik,
    mixture_pass,
    mixture_prepare,
)
from bayesmix.kernels.semiconj import draw_kernel_params
from bayesmix.mixings import mfm, registry
from bayesmix.numerics.linalg import logsumexp
from bayesmix.numerics.rng import log_gamma_rv

NEG_INF = -np.inf


@njit(cache=True, nogil=True)
def _front_occupied(z, cnt, kk, mu, lc, perm):
    """Relabel so that the occupied components are 0..K+-1 (their order kept), moving mu and
    L with them; returns K+. perm[old] = new."""
    kp = 0
    for k in range(kk):
        if cnt[k] > 0:
            perm[k] = kp
            kp += 1
    e = kp
    for k in range(kk):
        if cnt[k] == 0:
            perm[k] = e
            e += 1
    d = mu.shape[1]
    mu2 = mu[:kk].copy()
    lc2 = lc[:kk].copy()
    for k in range(kk):
        j = perm[k]
        for a in range(d):
            mu[j, a] = mu2[k, a]
            for b in range(d):
                lc[j, a, b] = lc2[k, a, b]
    for i in range(z.shape[0]):
        z[i] = perm[z[i]]
    return kp


@njit(cache=True, nogil=True)
def _weights_and_params(x, z, kk, logw, mu, lc, state, dynamic, kern, hyp, hs, c0m, fam, ws, start):
    """w | z, K and theta | z over the first kk components (slots >= kk: weight 0)."""
    cnt, xbar, scat, psi, wa, wb, wc, wl = ws
    cluster_stats(x, z, kk, cnt, xbar, scat, fam)
    g = mfm.gamma_of(state[0], kk, dynamic)
    for k in range(logw.shape[0]):
        logw[k] = log_gamma_rv(g + cnt[k]) if k < kk else NEG_INF
    lse = logsumexp(logw, kk)
    for k in range(kk):
        logw[k] -= lse
    wk = (psi, wa, wb, wc, wl)
    draw_kernel_params(kern, kk, cnt, xbar, scat, hyp, hs, c0m, fam, mu, lc, wk, start)


@njit(cache=True, nogil=True)
def telescoping_chain(
    x, z, logw, mu, lc, state, hyp, fam, dynamic, hp, logpk, kern, hs, c0m, it0, n_iter, tune,
    thin, seed, out_z, out_w, out_mu, out_cov, out_state, out_ll, out_k, out_c0,
):  # fmt: skip
    """Run sweeps it0 .. it0+n_iter-1 of the telescoping sampler (module docstring), mutating
    the chain state; state[registry.K_SLOT] holds K. Slot arrays have K_max rows. kern, hs,
    c0m: the kernel, as in ``blocked.blocked_chain``; C0 | Sigma_1..K uses the K components."""
    n, d = x.shape
    kmax = logw.shape[0]
    if seed >= 0:
        np.random.seed(seed)
    ws = (
        np.zeros(kmax, np.int64),
        np.zeros((kmax, d)),
        np.zeros((kmax, d, d)),
        np.zeros((d, d)),
        np.zeros((d, d)),
        np.zeros((d, d)),
        np.zeros((d, d)),
        np.zeros((d, d)),
    )
    cnt = ws[0]
    perm = np.zeros(kmax, np.int64)
    c = np.empty(kmax)
    li = np.empty((kmax, d, d))
    kk = int(state[registry.K_SLOT])
    if it0 == 0:
        init_by_centres(x, min(kk, 10), z)
        _weights_and_params(
            x, z, kk, logw, mu, lc, state, dynamic, kern, hyp, hs, c0m, fam, ws, True
        )
    pending = -1
    for it in range(it0, it0 + n_iter):
        # 1. z | w, theta over the K components
        mixture_prepare(logw[:kk], lc[:kk], fam, c, li)
        ll = mixture_pass(x, mu, li, c, kk, fam, z, True)
        if pending >= 0:
            out_ll[pending] = ll
            pending = -1
        # 2. occupied components first
        for k in range(kk):
            cnt[k] = 0
        for i in range(n):
            cnt[z[i]] += 1
        kp = _front_occupied(z, cnt, kk, mu, lc, perm)
        for k in range(kmax):
            cnt[k] = 0
        for i in range(n):
            cnt[z[i]] += 1
        # 3. K | z, then 4. the concentration | K, z
        kk = mfm.draw_k_given_z(state[0], dynamic, cnt, kp, n, logpk)
        state[registry.K_SLOT] = kk
        if hp[0] == 0.0:
            mfm.telescoping_update(state, hp, it, tune, kk, dynamic, cnt, kp, n)
        # 5.-6. w, theta | z, K
        _weights_and_params(
            x, z, kk, logw, mu, lc, state, dynamic, kern, hyp, hs, c0m, fam, ws, False
        )
        if it >= tune and (it - tune + 1) % thin == 0:
            s = (it - tune) // thin
            out_k[s] = kp
            save_draw(s, z, logw, mu, lc, state, out_z, out_w, out_mu, out_cov, out_state)
            out_c0[s] = c0m
            pending = s
    if pending >= 0:
        out_ll[pending] = mixture_loglik(x, logw[:kk], mu[:kk], lc[:kk], fam)
