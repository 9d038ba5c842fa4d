"""Blocked Gibbs sampler (Ishwaran & James 2001) over a truncated or finite mixture: z | w, theta;
w | z (the mixing's weights); theta | z (the kernel's conditional posterior)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bayesmix.engines.gibbs.concentration import MH_STEPS, mh_adapt
from bayesmix.engines.gibbs.linalg import logsumexp
from bayesmix.engines.gibbs.rng import log_gamma_rv
from bayesmix.engines.gibbs.start import init_by_centres
from bayesmix.kernels.niw import (
    cluster_stats,
    draw_params_all,
    mixture_loglik,
    mixture_pass,
    mixture_prepare,
)
from bayesmix.mixings.dp import dp_label_moves, sticks_to_logw
from bayesmix.mixings.finite import log_target_dirichlet

NEG_INF = -np.inf


@njit(cache=True, nogil=True)
def blocked_update_given_z(x, z, logw, mu, lc, conc, hyp, diag, finite, ws):
    """Weights | z, then component parameters | z (empty components from the prior).

    DP: v_k ~ Beta(1 + n_k, alpha + sum_{l>k} n_l), v_T = 1, w_k = v_k prod_{l<k} (1 - v_l)
    (log v_k, log(1 - v_k) kept in ws for the label moves); finite: w ~ Dirichlet(gamma + n).
    """
    cnt, xbar, scat, _, psi, wa, wb, wc, wl, lv, l1v = ws[:11]
    kk = logw.shape[0]
    cluster_stats(x, z, kk, cnt, xbar, scat, diag)
    if finite:
        for k in range(kk):
            logw[k] = log_gamma_rv(conc + cnt[k])
        lse = logsumexp(logw, kk)
        for k in range(kk):
            logw[k] -= lse
    else:
        tail = 0
        for k in range(kk):
            tail += cnt[k]
        for k in range(kk - 1):
            tail -= cnt[k]
            g1 = log_gamma_rv(1.0 + cnt[k])
            g2 = log_gamma_rv(conc + tail)
            m = max(g1, g2)
            lse = m + math.log(math.exp(g1 - m) + math.exp(g2 - m))
            lv[k] = g1 - lse
            l1v[k] = g2 - lse
        sticks_to_logw(lv, l1v, logw)
    draw_params_all(kk, cnt, xbar, scat, hyp, diag, mu, lc, psi, wa, wb, wc, wl)


@njit(cache=True, nogil=True)
def blocked_chain(
    x,
    z,
    logw,
    mu,
    lc,
    state,
    hyp,
    diag,
    finite,
    conc_fixed,
    ca,
    cb,
    it0,
    n_iter,
    tune,
    thin,
    seed,
    label_moves,
    out_z,
    out_w,
    out_mu,
    out_cov,
    out_conc,
    out_ll,
    out_k,
):
    """Run sweeps it0 .. it0+n_iter-1 of the blocked Gibbs sampler, mutating the chain state.

    Sweep: z_i | w, theta (categorical, log space); w | z; theta | z (NIW/NIG); for the DP
    (if label_moves) the label-switching moves of ``dp_label_moves``; then the concentration:
    DP alpha | v ~ Gamma(a + T - 1, b - sum_{k<T} log(1 - v_k)); finite gamma by
    random-walk MH on log gamma with the Dirichlet(gamma) density of w.
    state = [concentration, log MH step, accepted, proposed] (counts over the saved phase).
    seed >= 0 reseeds numba's RNG; it0 == 0 initialises z by random centres.
    The log-likelihood of saved draw s is the log-sum-exp of the next z step (or computed at
    the end of the call).
    """
    n, d = x.shape
    kk = logw.shape[0]
    if seed >= 0:
        np.random.seed(seed)
    ws = (
        np.zeros(kk, np.int64),
        np.zeros((kk, d)),
        np.zeros((kk, d, d)),
        np.zeros(d),
        np.zeros((d, d)),
        np.zeros((d, d)),
        np.zeros((d, d)),
        np.zeros((d, d)),
        np.zeros((d, d)),
        np.zeros(kk),
        np.zeros(kk),
        np.zeros(kk, np.int64),
        np.zeros(kk, np.int64),
        np.zeros(kk, np.int64),
    )
    cnt = ws[0]
    c = np.empty(kk)
    li = np.empty((kk, d, d))
    if it0 == 0:
        init_by_centres(x, min(kk, 10), z)
        blocked_update_given_z(x, z, logw, mu, lc, state[0], hyp, diag, finite, ws)
    pending = -1
    for it in range(it0, it0 + n_iter):
        # z | w, theta
        mixture_prepare(logw, lc, diag, c, li)
        ll = mixture_pass(x, mu, li, c, kk, diag, z, True)
        if pending >= 0:
            out_ll[pending] = ll
            pending = -1
        # w, theta | z
        blocked_update_given_z(x, z, logw, mu, lc, state[0], hyp, diag, finite, ws)
        if not finite and label_moves:
            dp_label_moves(z, logw, mu, lc, ws)
        # concentration
        if not conc_fixed:
            if finite:
                lg = math.log(state[0])
                cur = log_target_dirichlet(lg, logw, kk, ca, cb)
                for _ in range(MH_STEPS):
                    prop = lg + math.exp(state[1]) * np.random.standard_normal()
                    new = log_target_dirichlet(prop, logw, kk, ca, cb)
                    r = new - cur
                    accept = math.log(1.0 - np.random.random()) < r
                    if it < tune:
                        mh_adapt(state, it, r)
                    else:
                        state[3] += 1.0
                        if accept:
                            state[2] += 1.0
                    if accept:
                        lg = prop
                        cur = new
                state[0] = math.exp(lg)
            else:
                slog1mv = 0.0
                for k in range(kk - 1):
                    slog1mv += ws[10][k]
                state[0] = np.random.gamma(ca + kk - 1.0, 1.0 / (cb - slog1mv))
        # save
        if it >= tune and (it - tune + 1) % thin == 0:
            s = (it - tune) // thin
            kp = 0
            for k in range(kk):
                if cnt[k] > 0:
                    kp += 1
            out_k[s] = kp
            out_conc[s] = state[0]
            for i in range(n):
                out_z[s, i] = z[i]
            for k in range(kk):
                out_w[s, k] = math.exp(logw[k])
                for a in range(d):
                    out_mu[s, k, a] = mu[k, a]
                    for b in range(a + 1):
                        t = 0.0
                        for e in range(b + 1):
                            t += lc[k, a, e] * lc[k, b, e]
                        out_cov[s, k, a, b] = t
                        out_cov[s, k, b, a] = t
            pending = s
    if pending >= 0:
        out_ll[pending] = mixture_loglik(x, logw, mu, lc, diag)
