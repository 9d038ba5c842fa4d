"""Blocked Gibbs sampler (Ishwaran & James 2001) over a truncated or finite mixture: z | w, theta;
w | z (the mixing's weights); theta | z (the kernel's conditional posterior)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bayesmix.engines.gibbs.start import init_by_centres
from bayesmix.kernels.niw import (
    cluster_stats,
    mixture_loglik,
    mixture_pass,
    mixture_prepare,
)
from bayesmix.kernels.semiconj import draw_kernel_params
from bayesmix.mixings import registry
from bayesmix.mixings.dp import dp_label_moves

NEG_INF = -np.inf


@njit(cache=True, nogil=True)
def blocked_update_given_z(
    x, z, logw, mu, lc, state, kind, kern, hyp, hs, c0m, fam, ws, start, hp, it, tune
):
    """Where the mixing samples them so (``registry.hyper_given_counts``; not at the start),
    label swaps and the hyperparameters | z with the weights integrated out; weights | z (the mixing's, ``registry.blocked_weights``: sticks or Dirichlet; log v_k and
    log(1 - v_k) kept in ws for the hyperparameters and the label moves), then component
    parameters | z (the kernel's, ``semiconj.draw_kernel_params``; empty components from the
    prior)."""
    cnt, xbar, scat, _, psi, wa, wb, wc, wl, lv, l1v = ws[:11]
    kk = logw.shape[0]
    cluster_stats(x, z, kk, cnt, xbar, scat, fam)
    if not start and registry.hyper_given_counts(kind):
        lab_of, old_of = ws[11], ws[12]
        if registry.blocked_update_counts(
            kind, state, hp, it, tune, z, cnt, mu, lc, lab_of, old_of
        ):
            cluster_stats(x, z, kk, cnt, xbar, scat, fam)
    registry.blocked_weights(kind, cnt, state, lv, l1v, logw)
    wk = (psi, wa, wb, wc, wl)
    draw_kernel_params(kern, kk, cnt, xbar, scat, hyp, hs, c0m, fam, mu, lc, wk, start)


@njit(cache=True, nogil=True)
def save_draw(s, z, logw, mu, lc, state, out_z, out_w, out_mu, out_cov, out_state):
    """Copy the chain's current draw into row s of the outputs (Sigma = L L^T).

    z is kept for R = out_z.shape[0] of the S = out_w.shape[0] draws: draw s when
    (s R) mod S < R, in row s R // S (every draw when R = S; storage.even_rows)."""
    n = z.shape[0]
    for j in range(out_state.shape[1]):
        out_state[s, j] = state[j]
    rows, total = out_z.shape[0], out_w.shape[0]
    if (s * rows) % total < rows:
        r = (s * rows) // total
        for i in range(n):
            out_z[r, i] = z[i]
    store_params(s, logw, mu, lc, out_w, out_mu, out_cov)


@njit(cache=True, nogil=True)
def store_params(s, logw, mu, lc, out_w, out_mu, out_cov):
    """Row s of the outputs <- w = exp(logw), mu and Sigma = L L^T of every slot."""
    kk, d = mu.shape
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


@njit(cache=True, nogil=True)
def blocked_chain(
    x,
    z,
    logw,
    mu,
    lc,
    state,
    hyp,
    fam,
    kind,
    hp,
    kern,
    hs,
    c0m,
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
    out_state,
    out_ll,
    out_k,
    out_c0,
):
    """Run sweeps it0 .. it0+n_iter-1 of the blocked Gibbs sampler, mutating the chain state.

    Sweep: z_i | w, theta (categorical, log space); w | z (the mixing's: truncated sticks for
    the DP and Pitman-Yor, Dirichlet for the finite mixture); theta | z (NIW/NIG); for the DP
    and Pitman-Yor (if label_moves) the label-switching moves of ``dp_label_moves``; then the mixing's
    hyperparameters (``registry.blocked_update``: DP alpha | v ~ Gamma(a + T - 1,
    b - sum_{k<T} log(1 - v_k)); finite gamma | w by random-walk MH). Pitman-Yor's
    (theta, sigma) are updated | z, sticks integrated out, just before the sticks | z.
    state: see ``bayesmix.mixings.registry`` (copied into out_state per kept draw).
    kern, hs, c0m: the kernel (``bayesmix.kernels.semiconj``: conjugate with ``hyp``, or
    semi-conjugate with ``hs`` and the scale C0 in c0m, copied into out_c0 per kept draw).
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
        blocked_update_given_z(
            x, z, logw, mu, lc, state, kind, kern, hyp, hs, c0m, fam, ws, True, hp, 0, tune
        )
    pending = -1
    for it in range(it0, it0 + n_iter):
        # z | w, theta
        mixture_prepare(logw, lc, fam, c, li)
        ll = mixture_pass(x, mu, li, c, kk, fam, z, True)
        if pending >= 0:
            out_ll[pending] = ll
            pending = -1
        # w, theta | z
        blocked_update_given_z(
            x, z, logw, mu, lc, state, kind, kern, hyp, hs, c0m, fam, ws, False, hp, it, tune
        )
        if label_moves and (kind == registry.DP or kind == registry.PITMAN_YOR):
            dp_label_moves(z, logw, mu, lc, ws, state[5] if kind == registry.PITMAN_YOR else 0.0)
        # the mixing's hyperparameters | weights
        if (hp[0] == 0.0 or hp[3] == 0.0) and not registry.hyper_given_counts(kind):
            registry.blocked_update(kind, state, hp, it, tune, logw, ws[9], ws[10])
        # save
        if it >= tune and (it - tune + 1) % thin == 0:
            s = (it - tune) // thin
            kp = 0
            for k in range(kk):
                if cnt[k] > 0:
                    kp += 1
            out_k[s] = kp
            save_draw(s, z, logw, mu, lc, state, out_z, out_w, out_mu, out_cov, out_state)
            out_c0[s] = c0m
            pending = s
    if pending >= 0:
        out_ll[pending] = mixture_loglik(x, logw, mu, lc, fam)
