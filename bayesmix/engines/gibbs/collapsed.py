"""Collapsed Gibbs sampler (Neal 2000, algorithm 3) with split-merge moves, generic over the
mixing (a Gibbs-type partition prior given as data, see ``bayesmix/mixings``) and over the
conjugate Gaussian kernel (``bayesmix/kernels/niw.py``: NIW full, NIG per feature, or one NIG
variance shared by the features; the integer ``fam``).

Performance note: the per-observation loop inlines the kernel's cluster updates (remove,
Student-t predictive, add) by hand. Calling a helper with array arguments from numba code costs
two atomic reference-count operations per array, which took ~40% of the collapsed sweep; the
``cl_*`` functions in ``kernels/niw.py`` are the reference versions of the inlined updates
(tested against scipy), and ``tests/test_golden_gibbs.py`` pins the draws.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bayesmix.engines.gibbs.blocked import store_params
from bayesmix.engines.gibbs.split_merge import log_counts, scratch, split_merge
from bayesmix.engines.gibbs.start import init_by_centres
from bayesmix.kernels.niw import (
    DIAG,
    FULL,
    SPHERICAL,
    cl_logpred,
    cl_rebuild_one,
    cl_reset,
    cluster_stats,
    draw_params_all,
    draw_scale,
    mixture_loglik,
    predictive_tables,
)
from bayesmix.mixings import mfm, registry
from bayesmix.numerics.linalg import chol_lower, logsumexp
from bayesmix.numerics.rng import log_gamma_rv

NEG_INF = -np.inf


@njit(cache=True, nogil=True)
def grow_slots(cnt, mean, scl, cst, q, lw, act, pos):
    """Double the capacity of the per-slot arrays (DP); returns them and a free stack of the new slots."""
    cap = cnt.shape[0]
    ncap = 2 * cap
    d = mean.shape[1]
    cnt2 = np.zeros(ncap, np.int64)
    mean2 = np.zeros((ncap, d))
    scl2 = np.zeros((ncap, d, d))
    cst2 = np.zeros(ncap)
    q2 = np.zeros((ncap, d))
    lw2 = np.zeros(ncap)
    act2 = np.zeros(ncap, np.int64)
    pos2 = np.zeros(ncap, np.int64)
    cnt2[:cap] = cnt
    mean2[:cap] = mean
    scl2[:cap] = scl
    cst2[:cap] = cst
    q2[:cap] = q
    lw2[:cap] = lw
    act2[:cap] = act
    pos2[:cap] = pos
    free2 = np.zeros(ncap, np.int64)
    for j in range(cap):
        free2[j] = ncap - 1 - j
    return cnt2, mean2, scl2, cst2, q2, lw2, act2, pos2, free2


@njit(cache=True, nogil=True)
def collapsed_chain(
    x,
    z,
    state,
    hyp,
    fam,
    kind,
    kfin,
    hp,
    logpk,
    it0,
    n_iter,
    tune,
    thin,
    seed,
    n_sm,
    out_z,
    out_state,
    out_k,
):
    """Run sweeps it0 .. it0+n_iter-1 of collapsed Gibbs (Neal 2000, algorithm 3) for a
    Gibbs-type mixing (``kind``, see ``bayesmix.mixings.registry``).

    P(z_i = k | rest) ∝ (n_k^{-i} - sigma) t_k(x_i), P(new) ∝ exp(r[t]) t_0(x_i), with t the
    number of occupied clusters and r the mixing's urn (DP: log alpha; PY: log(theta + t sigma);
    static MFM: log gamma V_n(t+1)/V_n(t); dynamic MFM given K: log((K - t) alpha / K), with K
    in state[K_SLOT] updated every sweep). The finite mixture (kfin labelled slots, sigma =
    -gamma, r = log((K - t) gamma)) picks one of the empty slots uniformly; the others are
    untruncated and grow their slot arrays as needed. Cluster statistics are recomputed exactly
    at every sweep and updated incrementally (rank-one Cholesky up/downdates) within it.
    Each sweep ends with |n_sm| split-merge moves (``split_merge``); n_sm < 0 skips the
    single-site updates (split-merge only: for testing that move on its own); then the mixing's
    hyperparameters are updated (``registry.collapsed_update``) unless all are fixed.
    state: see ``registry`` (a copy of it is saved per kept draw in out_state; for the MFM
    state[K_SLOT] holds a draw of K | K+). z holds slot ids (arbitrary labels; 0..kfin-1 for
    finite). seed >= 0 reseeds numba's RNG; it0 == 0 initialises z. logpk: log p(K = k),
    k = 0..K_max (MFM only).
    """
    finite = kind == registry.FINITE
    hyper_random = hp[0] == 0.0 or hp[3] == 0.0
    scale_random = hyp.shape[0] > 5 and hyp[4] > 0.0  # psi0 ~ Gamma(hyp[4], hyp[5])
    if scale_random and state[registry.SCALE_SLOT] > 0.0:
        hyp[3] = state[registry.SCALE_SLOT]  # the chain's current psi0 (hyp is a copy)
    n, d = x.shape
    if seed >= 0:
        np.random.seed(seed)
    if it0 == 0:
        init_by_centres(x, min(10, kfin) if (finite or registry.is_mfm(kind)) else 10, z)
    tc, tp = predictive_tables(n + 1, d, hyp, fam)
    # prior predictive (slot 0 of 1-slot arrays)
    cnt0 = np.zeros(1, np.int64)
    mean0 = np.zeros((1, d))
    scl0 = np.zeros((1, d, d))
    cst0 = np.zeros(1)
    q0 = np.zeros((1, d))
    cl_reset(0, cnt0, mean0, scl0, cst0, q0, tc, hyp, fam)
    u = np.zeros(d)
    # prior predictive of every point (the new-cluster term) and log n
    lp0 = np.empty(n)
    for i in range(n):
        lp0[i] = cl_logpred(x, i, 0, mean0, scl0, cst0, q0, tp[0], fam, u)
    logn = log_counts(n)
    # log(n - sigma) for existing clusters (sigma = 0: the log n table), refreshed when sigma
    # changes; r[t] and V_n(t) memoised per sweep (NaN = not computed)
    lwn = np.empty(n + 2)
    lwn_sigma = np.nan
    rtab = np.empty(n + 3)
    vtab = np.empty(n + 3)
    # compact labels / capacity
    if finite:
        cap = kfin
    else:
        zmax = 0
        for i in range(n):
            zmax = max(zmax, z[i])
        lab = np.full(zmax + 1, -1, np.int64)
        nl = 0
        for i in range(n):
            if lab[z[i]] < 0:
                lab[z[i]] = nl
                nl += 1
            z[i] = lab[z[i]]
        cap = max(16, 2 * nl)
    cnt = np.zeros(cap, np.int64)
    mean = np.zeros((cap, d))
    scl = np.zeros((cap, d, d))
    cst = np.zeros(cap)
    q = np.zeros((cap, d))
    lw = np.zeros(cap)
    act = np.zeros(cap, np.int64)
    pos = np.zeros(cap, np.int64)
    free = np.zeros(cap, np.int64)
    lp = np.zeros(cap + 1)
    xb = np.zeros((cap, d))
    sc = np.zeros((cap, d, d))
    psi = np.zeros((d, d))
    wl = np.zeros((d, d))
    m0, k0, psi0 = hyp[0], hyp[1], hyp[3]
    tmp = scratch(n, d)
    no_sums, no_sums2 = np.zeros((0, d)), np.zeros((0, d, d))  # split_merge: no early rejection
    for it in range(it0, it0 + n_iter):
        sig = registry.sigma_of(kind, state)
        if sig != lwn_sigma:
            lwn[0] = NEG_INF if sig == 0.0 else math.log(-sig)
            for j in range(1, n + 2):
                lwn[j] = logn[j] if sig == 0.0 else math.log(j - sig)
            lwn_sigma = sig
        rtab[:] = np.nan
        vtab[:] = np.nan
        labelled, c1 = registry.split_merge_constants(kind, state)
        # exact rebuild of all cluster statistics from z
        cluster_stats(x, z, cap, cnt, xb, sc, fam)
        if scale_random:  # psi0 | partition, then the prior predictive under the new psi0
            w5 = tmp[10]
            psi0 = draw_scale(cap, cnt, xb, sc, hyp, fam, psi, wl, w5, tmp[11], tmp[9][0])
            hyp[3] = psi0
            state[registry.SCALE_SLOT] = psi0
            cl_reset(0, cnt0, mean0, scl0, cst0, q0, tc, hyp, fam)
            for i in range(n):
                lp0[i] = cl_logpred(x, i, 0, mean0, scl0, cst0, q0, tp[0], fam, u)
        nact = 0
        nfree = 0
        for k in range(cap - 1, -1, -1):
            if cnt[k] > 0:  # slot k <- its conditional posterior (as cl_set_from_stats)
                nk = cnt[k]
                kn = k0 + nk
                f = k0 * nk / kn
                for a in range(d):
                    mean[k, a] = (k0 * m0 + nk * xb[k, a]) / kn
                sl = 0.0
                if fam == SPHERICAL:
                    v = psi0
                    for a in range(d):
                        v += sc[k, a, a] + f * (xb[k, a] - m0) ** 2
                        for b in range(d):
                            scl[k, a, b] = 0.0
                    scl[k, 0, 0] = v
                    q[k, 0] = kn / ((kn + 1.0) * v)
                    cst[k] = tc[nk] - 0.5 * d * math.log(v)
                elif fam == DIAG:
                    for a in range(d):
                        v = psi0 + sc[k, a, a] + f * (xb[k, a] - m0) ** 2
                        for b in range(d):
                            scl[k, a, b] = 0.0
                        scl[k, a, a] = v
                        sl += math.log(v)
                        q[k, a] = kn / ((kn + 1.0) * v)
                    cst[k] = tc[nk] - 0.5 * sl
                else:
                    for a in range(d):
                        for b in range(d):
                            v = sc[k, a, b] + f * (xb[k, a] - m0) * (xb[k, b] - m0)
                            psi[a, b] = v + psi0 if a == b else v
                    chol_lower(psi, wl)
                    for a in range(d):
                        for b in range(d):
                            scl[k, a, b] = wl[a, b]
                        sl += math.log(wl[a, a])
                    cst[k] = tc[nk] - sl
                    q[k, 0] = kn / (kn + 1.0)
                lw[k] = cst[k] + lwn[nk]
                act[nact] = k
                pos[k] = nact
                nact += 1
            else:
                free[nfree] = k
                nfree += 1
        # The point loop below inlines cl_remove / cl_kernel / cl_add / cl_consts by hand:
        # calling them (even with inline="always") costs two atomic reference-count operations
        # per array argument, which doubled the time per point.
        for i in range(n if n_sm >= 0 else 0):
            # --- remove x_i from its cluster k ---
            k = z[i]
            z[i] = -1
            if cnt[k] == 1:
                cnt[k] = 0
                p = pos[k]
                last = act[nact - 1]
                act[p] = last
                pos[last] = p
                nact -= 1
                free[nfree] = k
                nfree += 1
            else:
                kp = k0 + cnt[k]
                kap = kp - 1.0
                f = kp / kap
                ok = True
                if fam == SPHERICAL:
                    r2 = 0.0
                    for a in range(d):
                        r = x[i, a] - mean[k, a]
                        r2 += r * r
                        mean[k, a] = (kp * mean[k, a] - x[i, a]) / kap
                    v = scl[k, 0, 0] - f * r2
                    if not v > 0.0:
                        ok = False
                    scl[k, 0, 0] = v
                elif fam == DIAG:
                    for a in range(d):
                        r = x[i, a] - mean[k, a]
                        v = scl[k, a, a] - f * r * r
                        if not v > 0.0:
                            ok = False
                        scl[k, a, a] = v
                        mean[k, a] = (kp * mean[k, a] - x[i, a]) / kap
                else:
                    sf = math.sqrt(f)
                    for a in range(d):
                        u[a] = sf * (x[i, a] - mean[k, a])
                        mean[k, a] = (kp * mean[k, a] - x[i, a]) / kap
                    for a in range(d):  # Cholesky rank-one downdate
                        lkk = scl[k, a, a]
                        r2 = lkk * lkk - u[a] * u[a]
                        if not r2 > 0.0:
                            ok = False
                            break
                        r = math.sqrt(r2)
                        c = r / lkk
                        sn = u[a] / lkk
                        scl[k, a, a] = r
                        for b in range(a + 1, d):
                            scl[k, b, a] = (scl[k, b, a] - sn * u[b]) / c
                            u[b] = c * u[b] - sn * scl[k, b, a]
                cnt[k] -= 1
                if ok:
                    nk = cnt[k]
                    kap = k0 + nk
                    sl = 0.0
                    if fam == SPHERICAL:
                        q[k, 0] = kap / ((kap + 1.0) * scl[k, 0, 0])
                        cst[k] = tc[nk] - 0.5 * d * math.log(scl[k, 0, 0])
                    elif fam == DIAG:
                        for a in range(d):
                            sl += math.log(scl[k, a, a])
                            q[k, a] = kap / ((kap + 1.0) * scl[k, a, a])
                        cst[k] = tc[nk] - 0.5 * sl
                    else:
                        for a in range(d):
                            sl += math.log(scl[k, a, a])
                        cst[k] = tc[nk] - sl
                        q[k, 0] = kap / (kap + 1.0)
                else:  # lost definiteness to rounding: recompute the cluster exactly
                    cl_rebuild_one(x, z, k, cnt, mean, scl, cst, q, tc, hyp, fam, psi)
                lw[k] = cst[k] + lwn[cnt[k]]
            # --- log p(z_i = j | rest) for the occupied clusters and a new / empty one ---
            mx = NEG_INF
            for t in range(nact):
                j = act[t]
                if fam == SPHERICAL:
                    r2 = 0.0
                    for a in range(d):
                        r = x[i, a] - mean[j, a]
                        r2 += r * r
                    sk = math.log1p(q[j, 0] * r2)
                elif fam == DIAG:
                    sk = 0.0
                    for a in range(d):
                        r = x[i, a] - mean[j, a]
                        sk += math.log1p(q[j, a] * r * r)
                else:
                    r2 = 0.0
                    for a in range(d):
                        r = x[i, a] - mean[j, a]
                        for b in range(a):
                            r -= scl[j, a, b] * u[b]
                        r /= scl[j, a, a]
                        u[a] = r
                        r2 += r * r
                    sk = math.log1p(q[j, 0] * r2)
                v = lw[j] - tp[cnt[j]] * sk
                lp[t] = v
                if v > mx:
                    mx = v
            if rtab[nact] != rtab[nact]:  # finite: -inf when every slot is occupied
                rtab[nact] = registry.urn_r(kind, nact, state, kfin, n, logpk, vtab)
            v = rtab[nact] + lp0[i]
            lp[nact] = v
            if v > mx:
                mx = v
            tot = 0.0
            for t in range(nact + 1):
                e = math.exp(lp[t] - mx)
                lp[t] = e
                tot += e
            uu = np.random.random() * tot
            t = 0
            acc = lp[0]
            while t < nact and uu >= acc:
                t += 1
                acc += lp[t]
            while lp[t] == 0.0:  # rounding at the top end: back off to a positive entry
                t -= 1
            # --- add x_i to the chosen cluster ---
            if t == nact:
                if nfree == 0:  # DP only: double the capacity
                    cnt, mean, scl, cst, q, lw, act, pos, free = grow_slots(
                        cnt, mean, scl, cst, q, lw, act, pos
                    )
                    nfree = cap
                    cap = 2 * cap
                    lp = np.zeros(cap + 1)
                    xb = np.zeros((cap, d))
                    sc = np.zeros((cap, d, d))
                if finite:
                    r = np.random.randint(0, nfree)
                    k = free[r]
                    free[r] = free[nfree - 1]
                else:
                    k = free[nfree - 1]
                nfree -= 1
                act[nact] = k
                pos[k] = nact
                nact += 1
                cnt[k] = 0
                for a in range(d):  # prior: m = m0, Psi = psi0 I (spherical: scl[k, 0, 0])
                    mean[k, a] = m0
                    for b in range(d):
                        scl[k, a, b] = 0.0
                    if fam == FULL:
                        scl[k, a, a] = math.sqrt(psi0)
                    elif fam == DIAG or a == 0:
                        scl[k, a, a] = psi0
            else:
                k = act[t]
            kap = k0 + cnt[k]
            f = kap / (kap + 1.0)
            if fam == SPHERICAL:
                r2 = 0.0
                for a in range(d):
                    r = x[i, a] - mean[k, a]
                    r2 += r * r
                    mean[k, a] += r / (kap + 1.0)
                scl[k, 0, 0] += f * r2
            elif fam == DIAG:
                for a in range(d):
                    r = x[i, a] - mean[k, a]
                    scl[k, a, a] += f * r * r
                    mean[k, a] += r / (kap + 1.0)
            else:
                sf = math.sqrt(f)
                for a in range(d):
                    r = x[i, a] - mean[k, a]
                    u[a] = sf * r
                    mean[k, a] += r / (kap + 1.0)
                for a in range(d):  # Cholesky rank-one update
                    lkk = scl[k, a, a]
                    r = math.sqrt(lkk * lkk + u[a] * u[a])
                    c = r / lkk
                    sn = u[a] / lkk
                    scl[k, a, a] = r
                    for b in range(a + 1, d):
                        scl[k, b, a] = (scl[k, b, a] + sn * u[b]) / c
                        u[b] = c * u[b] - sn * scl[k, b, a]
            cnt[k] += 1
            nk = cnt[k]
            kap = k0 + nk
            sl = 0.0
            if fam == SPHERICAL:
                q[k, 0] = kap / ((kap + 1.0) * scl[k, 0, 0])
                cst[k] = tc[nk] - 0.5 * d * math.log(scl[k, 0, 0])
            elif fam == DIAG:
                for a in range(d):
                    sl += math.log(scl[k, a, a])
                    q[k, a] = kap / ((kap + 1.0) * scl[k, a, a])
                cst[k] = tc[nk] - 0.5 * sl
            else:
                for a in range(d):
                    sl += math.log(scl[k, a, a])
                cst[k] = tc[nk] - sl
                q[k, 0] = kap / (kap + 1.0)
            lw[k] = cst[k] + lwn[nk]
            z[i] = k
        # split-merge moves
        for _ in range(abs(n_sm)):
            if nfree == 0 and not finite:
                cnt, mean, scl, cst, q, lw, act, pos, free = grow_slots(
                    cnt, mean, scl, cst, q, lw, act, pos
                )
                nfree = cap
                cap = 2 * cap
                lp = np.zeros(cap + 1)
                xb = np.zeros((cap, d))
                sc = np.zeros((cap, d, d))
            for tt in (nact - 1, nact):  # the urn terms a split or a merge needs
                if tt >= 0 and rtab[tt] != rtab[tt]:
                    rtab[tt] = registry.urn_r(kind, tt, state, kfin, n, logpk, vtab)
            nact, nfree, acc = split_merge(
                x, z, (cnt, mean, scl, cst, q, lw), tmp, act, pos, free, nact, nfree, tc, tp,
                logn, lwn, rtab, hyp, fam, labelled, sig, c1, no_sums, no_sums2,
            )  # fmt: skip
            if acc and it >= tune:
                state[4] += 1.0
        # the mixing's hyperparameters | partition
        if hyper_random or kind == registry.MFM_DYNAMIC:  # its K is always updated
            registry.collapsed_update(kind, state, hp, it, tune, cnt, act, nact, n, kfin, logpk)
        if it >= tune and (it - tune + 1) % thin == 0:
            s = (it - tune) // thin
            if kind == registry.MFM:
                state[registry.K_SLOT] = mfm.draw_k_given_kplus(nact, state[0], n, logpk)
            out_k[s] = nact
            for j in range(out_state.shape[1]):
                out_state[s, j] = state[j]
            for i in range(n):
                out_z[s, i] = z[i]


@njit(cache=True, nogil=True)
def collapsed_params(x, zs, states, hyp, fam, kind, seed, out_w, out_mu, out_cov, out_ll):
    """Per saved draw, sample (w, mu, Sigma) given z and the mixing's state.

    Finite: w ~ Dirichlet(gamma + n), all K slots. Otherwise the occupied clusters are
    relabelled 0..k-1 by decreasing size (zs is rewritten) and
    DP / Pitman-Yor: (w_1..w_k, w_rest) ~ Dirichlet(n_1 - sigma, .., n_k - sigma, theta + k sigma)
    (sigma = 0, theta = alpha for the DP), the rest mass in slot k with prior parameters;
    MFM: K from the state, w ~ Dirichlet(g + n_1, .., g + n_k, g, .., g) over K (g = gamma, or
    alpha / K for the dynamic MFM)
    slots (the K - k empty ones with prior parameters). Slots beyond get zero weight and prior
    parameters. Parameters come from the NIW/NIG conditional posterior (the prior when empty),
    with the draw's psi0 when the kernel's scale has a prior (hyp is then modified).
    out_ll[s] = sum_i log sum_k w_k N(x_i | mu_k, Sigma_k).
    """
    np.random.seed(seed)
    ns, n = zs.shape
    d = x.shape[1]
    kc = out_w.shape[1]
    finite = kind == registry.FINITE
    zmax = 0
    for s in range(ns):
        for i in range(n):
            zmax = max(zmax, zs[s, i])
    lcnt = np.zeros(zmax + 1, np.int64)
    lab = np.zeros(zmax + 1, np.int64)
    z = np.zeros(n, np.int64)
    cnt = np.zeros(kc, np.int64)
    xb = np.zeros((kc, d))
    sc = np.zeros((kc, d, d))
    logw = np.zeros(kc)
    mu = np.zeros((kc, d))
    lo = np.zeros((kc, d, d))
    wk = (np.zeros((d, d)), np.zeros((d, d)), np.zeros((d, d)), np.zeros((d, d)), np.zeros((d, d)))
    occ = np.zeros(zmax + 1, np.int64)
    for s in range(ns):
        if finite:
            for i in range(n):
                z[i] = zs[s, i]
            ncl = kc
        else:
            lcnt[:] = 0
            for i in range(n):
                lcnt[zs[s, i]] += 1
            ncl = 0
            for j in range(zmax + 1):
                if lcnt[j] > 0:
                    occ[ncl] = j
                    ncl += 1
            neg = np.empty(ncl)
            for t in range(ncl):
                neg[t] = -lcnt[occ[t]]
            order = np.argsort(neg, kind="mergesort")
            for t in range(ncl):
                lab[occ[order[t]]] = t
            for i in range(n):
                z[i] = lab[zs[s, i]]
                zs[s, i] = z[i]
        cluster_stats(x, z, kc, cnt, xb, sc, fam)
        conc = states[s, 0]
        if finite:
            for k in range(kc):
                logw[k] = log_gamma_rv(conc + cnt[k])
        elif registry.is_mfm(kind):
            kk = int(states[s, registry.K_SLOT])
            g = mfm.gamma_of(conc, kk, kind == registry.MFM_DYNAMIC)
            for k in range(kc):
                logw[k] = NEG_INF
            for k in range(kk):
                logw[k] = log_gamma_rv(g + cnt[k])
        else:
            sig = registry.sigma_of(kind, states[s])
            for k in range(kc):
                logw[k] = NEG_INF
            for k in range(ncl):
                logw[k] = log_gamma_rv(cnt[k] - sig)
            if ncl < kc:
                logw[ncl] = log_gamma_rv(conc + ncl * sig)
        lse = logsumexp(logw, kc)
        if hyp.shape[0] > 5 and hyp[4] > 0.0:  # this draw's psi0
            hyp[3] = states[s, registry.SCALE_SLOT]
        draw_params_all(kc, cnt, xb, sc, hyp, fam, mu, lo, wk[0], wk[1], wk[2], wk[3], wk[4])
        for k in range(kc):
            logw[k] -= lse
        store_params(s, logw, mu, lo, out_w, out_mu, out_cov)
        out_ll[s] = mixture_loglik(x, logw, mu, lo, fam)
