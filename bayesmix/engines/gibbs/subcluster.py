"""The sub-cluster engine for large N: parallel sweeps over the points given the weights and
component parameters (after Chang & Fisher 2013), with exact split-merge moves.

One sweep, with t occupied clusters (labels 0..t-1; the finite mixture keeps its K labelled
slots):

1. the mixing's hyperparameters | partition (``registry.collapsed_update``, weights integrated
   out); a static MFM then draws K | K+ (``mfm.draw_k_given_kplus``);
2. weights and component parameters | z (``weights_given_z``): finite, Dir(gamma + n) over its
   K slots; static MFM given K, the t clusters and K - t empty slots; DP and Pitman-Yor, the
   occupied atoms of the random measure and its rest, (pi_1, ..., pi_t, R) ~ Dir(n_1 - sigma,
   ..., n_t - sigma, theta + t sigma) (Pitman 1996), with new atoms broken off R by
   stick-breaking as far as the slices need.  theta_k | x_k from the NIW/NIG conditional
   posterior (``niw.draw_params_all``; empty slots and new atoms from the prior);
3. z | weights, parameters in parallel over a fixed layout of chunks of points
   (``z_pass``): P(z_i = k) ∝ w_k N(x_i | theta_k) over the K slots, or for the DP and
   Pitman-Yor the slice sampler (Walker 2007; Kalli, Griffin & Walker 2011), u_i ~ U(0,
   pi_{z_i}) and P(z_i = k) ∝ N(x_i | theta_k) 1[pi_k > u_i], which can open new clusters;
4. ``n_sm`` sequentially-allocated split-merge moves (Dahl 2003; ``split_merge.split_merge``,
   the collapsed sampler's move) on the collapsed posterior p(z | x).

The chain starts from one cluster: split moves find the groups within a few sweeps, whereas
from many clusters every over-split pair waits for a merge proposal (N = 10^5, 6 groups:
K+ 1 -> 6 in about 12 sweeps; from 10 clusters still 9 after 60).

What is kept of Chang & Fisher, and why not the rest.  Their restricted sweep (z_i over the
occupied clusters only, weights Dir(n_1, ..., n_t, alpha)) is not invariant once a cluster
can empty in the sweep (a singleton that leaves cannot come back; the enumeration test of the
DP gave a K+ pmf at TV 0.27 from the exact one), and their two persistent sub-clusters per
cluster are auxiliary variables whose joint law with the clusters is not normalised once points
move between clusters (the reference implementation, DPMMSubClusters.jl, adds a burn-out period
and a fixed merge threshold), so their chain is not Metropolis-Hastings for the posterior.
Two-component sub-mixtures launched afresh from the merged set for each proposal (Jain & Neal
2004, 2007; uncollapsed, so parallel) propose good splits but almost never merge: the reverse
proposal regenerates the current labelling point by point, so log q carries its entropy (-116
nats for a 2 x 150-point over-split of one Gaussian, against a prior-times-likelihood ratio of
+83 for the merge; no merge in 200 sweeps).  Dahl's sequential allocation scores the current
labelling by sequential predictive probabilities, in which that entropy cancels against the
target; its cost is one sequential pass over the two clusters involved per move.  What remains
of Chang & Fisher is the design: a point loop that is parallel given the cluster parameters,
with per-thread sufficient statistics reduced after the sweep, and splits and merges to move
between numbers of clusters.

DP and Pitman-Yor sweeps hold at most ``cap`` atoms (clusters and the new atoms of the
slices); a sweep whose slices would need more is counted (``CAP_HITS``), a truncation.  The
code is generic over sigma and exact for Pitman-Yor when the atoms suffice (its enumeration
cases passed), but the engine does not offer Pitman-Yor (``mixings.MIXINGS``): the atoms
the slices need grow with its tail, and with 64 its 1-D SBC failed (K+ p = 1e-19).

Reproducibility: the per-point random numbers are counter-based uniforms (SplitMix64 of a
per-sweep key and the point's index) and the per-chunk sufficient statistics are reduced in
chunk order over a chunk layout fixed by N alone, so the draws do not depend on the number of
threads.  Per-sweep scalars (weights, parameters, keys, the split-merge moves) come from
numba's sequential generator of the calling thread.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from bayesmix.engines.gibbs.blocked import store_params
from bayesmix.engines.gibbs.split_merge import log_counts, moments, scratch, split_merge
from bayesmix.kernels.niw import (
    FULL,
    draw_params_all,
    mixture_prepare,
    predictive_tables,
)
from bayesmix.mixings import mfm, registry
from bayesmix.numerics.linalg import logsumexp
from bayesmix.numerics.rng import log_gamma_rv

NEG_INF = -np.inf
CAP_HITS = registry.K_SLOT  # DP / Pitman-Yor: sweeps whose sticks ran out of slots (K_SLOT
# carries K only for an MFM)
NCH = 64  # at most this many chunks of points: the reduction order, fixed by N alone
MIN_CHUNK = 256  # points per chunk at least
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2^-53


# --------------------------------------------------------------------------
# Counter-based uniforms (SplitMix64; Steele, Lea & Flood 2014)
# --------------------------------------------------------------------------


@njit(cache=True, nogil=True, inline="always")
def _unif(key, i):
    """U(0, 1) from (key, i): the SplitMix64 finaliser of key + (i + 1) * golden; 53 bits."""
    v = key + np.uint64(i + 1) * _GOLDEN
    v = (v ^ (v >> _S30)) * _M1
    v = (v ^ (v >> _S27)) * _M2
    v = v ^ (v >> _S31)
    return float(v >> _S11) * _TO_UNIT


@njit(cache=True, nogil=True)
def new_key():
    """A fresh 64-bit pass key from numba's sequential generator."""
    hi = np.uint64(np.random.randint(0, 2147483647))
    lo = np.uint64(np.random.randint(0, 2147483647))
    return (hi << np.uint64(33)) ^ (lo << np.uint64(2)) ^ np.uint64(np.random.randint(0, 4))


@njit(cache=True, nogil=True)
def n_chunks(m):
    """Chunks of a pass over m points: min(NCH, m // MIN_CHUNK), at least 1 (depends on m only)."""
    return max(1, min(NCH, m // MIN_CHUNK))


@njit(cache=True, nogil=True, inline="always")
def _quad(x, i, mu, li, k, d, fam):
    """|L_k^{-1} (x_i - mu_k)|^2 (li lower triangular; diagonal unless FULL; 1-D and 2-D
    unrolled)."""
    if d == 1:
        y = (x[i, 0] - mu[k, 0]) * li[k, 0, 0]
        return y * y
    if d == 2:
        d0 = x[i, 0] - mu[k, 0]
        d1 = x[i, 1] - mu[k, 1]
        y0 = li[k, 0, 0] * d0
        y1 = li[k, 1, 0] * d0 + li[k, 1, 1] * d1
        return y0 * y0 + y1 * y1
    q = 0.0
    if fam != FULL:
        for a in range(d):
            y = (x[i, a] - mu[k, a]) * li[k, a, a]
            q += y * y
        return q
    for a in range(d):
        y = 0.0
        for b in range(a + 1):
            y += li[k, a, b] * (x[i, b] - mu[k, b])
        q += y * y
    return q


# --------------------------------------------------------------------------
# Parallel passes
# --------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _slice_min_chunk(z, logw, key, lo, hi, off):
    """min over points lo..hi-1 of log v_i + log pi_{z_i}; point i's uniform has counter
    off + i (its index in the whole data set when z is one shard of it)."""
    m = np.inf
    for i in range(lo, hi):
        m = min(m, math.log(_unif(key, off + i)) + logw[z[i]])
    return m


@njit(cache=True, nogil=True, parallel=True)
def slice_min(z, logw, key, nch):
    """min_i log u_i with u_i = v_i pi_{z_i}, v_i the counter-based uniform of (key, i): the
    smallest slice (Walker 2007), reduced over chunks."""
    n = z.shape[0]
    mins = np.empty(nch)
    for ch in prange(nch):
        mins[ch] = _slice_min_chunk(z, logw, key, ch * n // nch, (ch + 1) * n // nch, 0)
    return mins.min()


@njit(cache=True, nogil=True)
def _z_chunk(x, z, mu, li, c, logw, n_dest, n_lik, use_slice, t_ll, ll_fac, fam, key, lo, hi,
             ch, ccnt, csx, csxx, off, want_ll):  # fmt: skip
    """The z step for points lo..hi-1 (``z_pass``); returns their log-likelihood sum (0 unless
    ``want_ll``).  With want_ll, one exp per point and slot: within the slice the weights
    N(x_i | theta_k) are e_ik / w_k, with e_ik = w_k N(x_i | theta_k) / max_l (...).  Without,
    only the destinations inside the slice (w_k > u_i) are evaluated, in log space (same law;
    a sweep whose draw is not saved: Gaussians of the slots outside the slice are never
    computed).  Point i's uniforms have counter off + i (its index in the whole data set when
    x is one shard of it)."""
    d = x.shape[1]
    key2 = key + np.uint64(1)
    lv = np.empty(n_lik)
    e = np.empty(n_lik)
    pr = np.empty(n_dest)
    invw = np.empty(n_dest)
    for k in range(n_dest):
        invw[k] = math.exp(-logw[k]) if use_slice else 1.0
        ccnt[ch, k] = 0
        for a in range(d):
            csx[ch, k, a] = 0.0
            for b in range(d):
                csxx[ch, k, a, b] = 0.0
    ll = 0.0
    for i in range(lo, hi):
        lu = math.log(_unif(key, off + i)) + logw[z[i]] if use_slice else NEG_INF
        if not want_ll:  # the destinations within the slice only (z_i's own slot is one)
            mx = NEG_INF
            for k in range(n_dest):
                v = NEG_INF
                if logw[k] > lu and c[k] > NEG_INF:
                    v = c[k] - 0.5 * _quad(x, i, mu, li, k, d, fam)
                    if use_slice:
                        v -= logw[k]
                lv[k] = v
                if v > mx:
                    mx = v
            ptot = 0.0
            for k in range(n_dest):
                dl = lv[k] - mx
                p = math.exp(dl) if dl > -60.0 else 0.0
                pr[k] = p
                ptot += p
            _draw_and_add(x, z, i, pr, ptot, n_dest, key2, off, ch, ccnt, csx, csxx)
            continue
        mx = NEG_INF
        for k in range(n_lik):
            v = NEG_INF
            if c[k] > NEG_INF:
                v = c[k] - 0.5 * _quad(x, i, mu, li, k, d, fam)
            lv[k] = v
            if v > mx:
                mx = v
        tot = 0.0
        for k in range(n_lik):
            dl = lv[k] - mx
            ek = math.exp(dl) if dl > -60.0 else 0.0
            e[k] = ek
            tot += ek if k < t_ll else 0.0
        if t_ll < n_lik:  # the saved draw's lumped rest: slot t_ll's density, weight x ll_fac
            tot += ll_fac * e[t_ll]
        ll += mx + math.log(tot)
        # the categorical over the destinations: w_k N (or N within the slice)
        ptot = 0.0
        for k in range(n_dest):
            p = 0.0
            if logw[k] > lu:
                p = e[k] * invw[k]
            pr[k] = p
            ptot += p
        if not ptot > 0.0:  # every candidate underflowed: normalise in log space
            pm = NEG_INF
            for k in range(n_dest):
                if logw[k] > lu:
                    pm = max(pm, lv[k] - (logw[k] if use_slice else 0.0))
            for k in range(n_dest):
                p = 0.0
                if logw[k] > lu:
                    p = math.exp(lv[k] - (logw[k] if use_slice else 0.0) - pm)
                pr[k] = p
                ptot += p
        _draw_and_add(x, z, i, pr, ptot, n_dest, key2, off, ch, ccnt, csx, csxx)
    return ll


@njit(cache=True, nogil=True, inline="always")
def _draw_and_add(x, z, i, pr, ptot, n_dest, key2, off, ch, ccnt, csx, csxx):
    """z_i ~ Categorical(pr / ptot) by the counter-based uniform of (key2, off + i); x_i added
    to chunk ch's count, sum and lower triangle of sum x x^T."""
    u = _unif(key2, off + i) * ptot
    t = 0
    acc = pr[0]
    while t < n_dest - 1 and u >= acc:
        t += 1
        acc += pr[t]
    while pr[t] == 0.0:  # rounding at the top end: back off to a positive entry
        t -= 1
    z[i] = t
    ccnt[ch, t] += 1
    d = x.shape[1]
    for a in range(d):
        csx[ch, t, a] += x[i, a]
        for b in range(a + 1):
            csxx[ch, t, a, b] += x[i, a] * x[i, b]


@njit(cache=True, nogil=True, parallel=True)
def z_pass(x, z, mu, li, c, logw, n_dest, n_lik, use_slice, t_ll, ll_fac, fam, key, nch, ccnt,
           csx, csxx, cll, want_ll):  # fmt: skip
    """z_i | pi, theta over the first n_dest slots, in parallel over nch chunks of points.

    c_k = log w_k + log N normalising constant (``niw.mixture_prepare``).  Without slices,
    P(z_i = k) ∝ w_k N(x_i | theta_k).  With slices (DP, Pitman-Yor; Kalli, Griffin & Walker
    2011), u_i = v_i pi_{z_i} with v_i the counter-based uniform of (key, i) (as in
    ``slice_min``) and P(z_i = k) ∝ N(x_i | theta_k) 1[w_k > u_i].  cll[ch] = the chunk's
    sum_i log sum_{k < n_lik} w_k N(x_i | theta_k) (slots n_dest.. counted, not chosen), or,
    when t_ll < n_lik, that of the saved draw: slots < t_ll, and slot t_ll's density with the
    weight w_{t_ll} ll_fac (the rest mass lumped on one atom).
    Per-chunk counts, sums and lower triangles of sum x x^T of the new allocations; a second
    uniform stream (key + 1) draws the categories.  ``want_ll`` False (a sweep whose draw is
    not saved): cll is 0, and only the slots inside each point's slice are evaluated."""
    n = x.shape[0]
    for ch in prange(nch):
        cll[ch] = _z_chunk(x, z, mu, li, c, logw, n_dest, n_lik, use_slice, t_ll, ll_fac, fam,
                           key, ch * n // nch, (ch + 1) * n // nch, ch, ccnt, csx, csxx, 0,
                           want_ll)  # fmt: skip


@njit(cache=True, nogil=True, parallel=True)
def relabel_pass(z, remap):
    """z_i <- remap[z_i] (compaction of the labels), in parallel."""
    n = z.shape[0]
    for i in prange(n):
        z[i] = remap[z[i]]


# --------------------------------------------------------------------------
# Sufficient statistics
# --------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def reduce_chunks(nch, kk, ccnt, csx, csxx, cnt, sx, sxx):
    """cnt, sx, sxx[:kk] <- the chunk sums in chunk order (sxx made symmetric)."""
    d = sx.shape[1]
    for k in range(kk):
        cnt[k] = 0
        for a in range(d):
            sx[k, a] = 0.0
            for b in range(d):
                sxx[k, a, b] = 0.0
    for ch in range(nch):
        for k in range(kk):
            cnt[k] += ccnt[ch, k]
            for a in range(d):
                sx[k, a] += csx[ch, k, a]
                for b in range(a + 1):
                    sxx[k, a, b] += csxx[ch, k, a, b]
    for k in range(kk):
        for a in range(d):
            for b in range(a):
                sxx[k, b, a] = sxx[k, a, b]


@njit(cache=True, nogil=True)
def stats_from_z(x, z, kk, cnt, sx, sxx):
    """Counts, sums and sum x x^T of labels 0..kk-1 (one sequential pass)."""
    n, d = x.shape
    cnt[:kk] = 0
    sx[:kk] = 0.0
    sxx[:kk] = 0.0
    for i in range(n):
        k = z[i]
        cnt[k] += 1
        for a in range(d):
            sx[k, a] += x[i, a]
            for b in range(d):
                sxx[k, a, b] += x[i, a] * x[i, b]


@njit(cache=True, nogil=True)
def draw_components(kk, cnt, sx, sxx, logw, hyp, fam, mu, lc, c, li, xbar, scat, wk):
    """theta_k | x_k for k < kk (empty slots from the prior), then the log-density constants
    c_k = log w_k - log|L_k| - D/2 log 2 pi and li = L^{-1} (``niw.mixture_prepare``)."""
    for k in range(kk):
        moments(cnt[k], sx[k], sxx[k], xbar[k], scat[k])
    psi, wa, wb, wcc, wl = wk
    draw_params_all(kk, cnt, xbar, scat, hyp, fam, mu, lc, psi, wa, wb, wcc, wl)
    mixture_prepare(logw[:kk], lc[:kk], fam, c[:kk], li[:kk])


# --------------------------------------------------------------------------
# The chain
# --------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def compact(z, t_slots, cnt, sx, sxx, remap):
    """Relabel the occupied clusters 0..t-1 in label order (parallel pass over z only when a
    label is freed); returns t."""
    t = 0
    moved = False
    for k in range(t_slots):
        if cnt[k] > 0:
            remap[k] = t
            if t != k:
                moved = True
                cnt[t] = cnt[k]
                sx[t] = sx[k]
                sxx[t] = sxx[k]
            t += 1
    for k in range(t, t_slots):
        cnt[k] = 0
    if moved:
        relabel_pass(z, remap)
    return t


@njit(cache=True, nogil=True)
def _normalise(logw, m):
    """logw[:m] -= logsumexp(logw[:m]); logw[m:] = -inf."""
    lse = logsumexp(logw, m)
    for k in range(m):
        logw[k] -= lse
    for k in range(m, logw.shape[0]):
        logw[k] = NEG_INF


@njit(cache=True, nogil=True)
def weights_given_z(kind, state, kk_lab, t, cnt, logw, z, key, nch):
    """Weights | z (module docstring, step 2); returns (n_dest, n_lik, slice, capped).

    Finite: Dir(gamma + n) over its K slots.  Static MFM given K: the t occupied clusters
    and K - t empty slots, Dir(gamma + n_1, ..., gamma + n_t, gamma, ..., gamma).  DP and
    Pitman-Yor: (pi_1..pi_t, R) ~ Dir(n_k - sigma, theta + t sigma), and the rest measure R G',
    G' ~ PY(sigma, theta + t sigma), is broken into sticks v_j ~ Beta(1 - sigma, theta +
    t sigma + j sigma) until the mass left is below the smallest slice (``slice_min``), so
    that no atom left out can be chosen; that mass sits in one last slot (not a destination;
    ``capped`` if the slots ran out first: a truncation, counted by the caller)."""
    if kk_lab > 0 or kind == registry.MFM:
        kk = kk_lab if kk_lab > 0 else int(state[registry.K_SLOT])
        for k in range(kk):
            logw[k] = log_gamma_rv(state[0] + cnt[k])
        _normalise(logw, kk)
        return kk, kk, False, False
    slice_weights_head(kind, state, t, cnt, logw)
    j, n_lik, capped = slice_sticks(kind, state, t, logw, slice_min(z, logw, key, nch))
    return j, n_lik, True, capped


@njit(cache=True, nogil=True)
def slice_weights_head(kind, state, t, cnt, logw):
    """DP / Pitman-Yor weights | z before the slices (``weights_given_z``):
    (pi_1..pi_t, R) ~ Dir(n_k - sigma, theta + t sigma), in logw[:t + 1]."""
    sig = registry.sigma_of(kind, state)
    for k in range(t):
        logw[k] = log_gamma_rv(cnt[k] - sig)
    logw[t] = log_gamma_rv(state[0] + t * sig)
    _normalise(logw, t + 1)


@njit(cache=True, nogil=True)
def slice_sticks(kind, state, t, logw, lmin):
    """The rest R = exp(logw[t]) broken into sticks v_j ~ Beta(1 - sigma, theta + t sigma +
    j sigma) until the mass left is below the smallest slice lmin, that mass in the last slot
    (``weights_given_z``); returns (n_dest, n_lik, capped)."""
    slots = logw.shape[0]
    sig = registry.sigma_of(kind, state)
    strength = state[0] + t * sig
    rest = logw[t]
    j = t
    while rest > lmin and j < slots - 1:
        ga = log_gamma_rv(1.0 - sig)
        gb = log_gamma_rv(strength + (j - t + 1) * sig)
        mx = max(ga, gb)
        lse = mx + math.log(math.exp(ga - mx) + math.exp(gb - mx))
        logw[j] = rest + ga - lse  # w_j = rest v_j
        rest = rest + gb - lse  # rest (1 - v_j)
        j += 1
    logw[j] = rest
    return j, j + 1, rest > lmin


@njit(cache=True, nogil=True)
def partition_hypers(hyper_random, kind, state, hp, it, tune, cnt, act, pos, free, kk_lab, t,
                     slots, n, logpk, vtab, rtab):  # fmt: skip
    """Step 1 of a sweep: the mixing's hyperparameters | partition (``registry.
    collapsed_update``; the memoised urn tables vtab, rtab reset since they depend on them),
    then K | K+ for a static MFM."""
    if hyper_random:
        na, _ = _sm_lists(kk_lab > 0, kk_lab, t, slots, cnt, act, pos, free)
        registry.collapsed_update(kind, state, hp, it, tune, cnt, act, na, n, kk_lab, logpk)
        vtab[:] = np.nan
        rtab[:] = np.nan
    if kind == registry.MFM:
        state[registry.K_SLOT] = mfm.draw_k_given_kplus(t, state[0], n, logpk)


@njit(cache=True, nogil=True)
def rest_lump(sliced, logw, t, n_lik):
    """(t_ll, ll_fac, lw_tail) of the saved draw: with slices, the rest mass (slots t..n_lik-1,
    log lw_tail) lumped on atom t, whose weight is scaled by ll_fac; else (n_lik, 1, -inf)."""
    if sliced and logw[t] > NEG_INF:
        lw_tail = logsumexp(logw[t:], n_lik - t)
        return t, math.exp(lw_tail - logw[t]), lw_tail
    return n_lik, 1.0, NEG_INF


@njit(cache=True, nogil=True)
def save_params(s, sliced, t, lw_tail, logw, mu, lc, out_w, out_mu, out_cov):
    """Row s of the outputs <- (w, mu, Sigma) of every slot (``blocked.store_params``); with
    slices, the t clusters, then their rest mass in slot t and zero weight past it."""
    if not sliced:
        store_params(s, logw, mu, lc, out_w, out_mu, out_cov)
        return
    lw_t = logw[t]
    logw[t] = lw_tail
    store_params(s, logw, mu, lc, out_w, out_mu, out_cov)
    logw[t] = lw_t
    for k in range(t + 1, logw.shape[0]):
        out_w[s, k] = 0.0


@njit(cache=True, nogil=True)
def _sm_lists(labelled, kk_lab, t, slots, cnt, act, pos, free):
    """The split-merge move's slot lists: occupied slots (act, pos) and free ones, the next
    label t last (unlabelled: labels 0..t-1 are compact); returns (nact, nfree)."""
    nact = 0
    nfree = 0
    top = kk_lab if labelled else slots - 1
    for k in range(top - 1, -1, -1):
        if (labelled and cnt[k] == 0) or (not labelled and k >= t):
            free[nfree] = k
            nfree += 1
    for k in range(top):
        if (labelled and cnt[k] > 0) or (not labelled and k < t):
            act[nact] = k
            pos[k] = nact
            nact += 1
    return nact, nfree


@njit(cache=True, nogil=True)
def subcluster_chain(
    x,
    z,
    state,
    hyp,
    fam,
    kind,
    kk_lab,
    cap,
    hp,
    logpk,
    it0,
    n_iter,
    tune,
    thin,
    seed,
    n_sm,
    out_z,
    out_w,
    out_mu,
    out_cov,
    out_state,
    out_ll,
    out_k,
):
    """Run sweeps it0 .. it0+n_iter-1 (module docstring), mutating the chain state.

    z: labels (0..t-1 compact, or K labelled slots if kk_lab > 0); out_w, out_mu, out_cov:
    cap + 1 slots per draw (kk_lab if labelled; DP and Pitman-Yor: the t clusters, then
    their rest mass, with its new atoms' parameters replaced by one prior draw, in slot t);
    state: ``registry`` layout (state[4] counts the accepted split-merge moves after tune,
    state[CAP_HITS] the truncated sweeps); seed >= 0 reseeds numba's RNG; it0 == 0 starts
    from one cluster.  Saved draw s holds z with the (w, theta) drawn given it, and their
    log-likelihood, sum_i log sum_k w_k N(x_i | theta_k) over the saved slots, summed by the
    z pass of the same sweep.
    """
    n, d = x.shape
    labelled = kk_lab > 0
    slots = kk_lab if labelled else cap + 1
    sliced = not labelled and kind != registry.MFM
    atoms = slots
    logw = np.full(atoms, NEG_INF)
    mu = np.zeros((atoms, d))
    lc = np.zeros((atoms, d, d))
    if seed >= 0:
        np.random.seed(seed)
    cnt = np.zeros(atoms, np.int64)
    sx = np.zeros((atoms, d))
    sxx = np.zeros((atoms, d, d))
    nch = n_chunks(n)
    ccnt = np.zeros((nch, atoms), np.int64)
    csx = np.zeros((nch, atoms, d))
    csxx = np.zeros((nch, atoms, d, d))
    cll = np.zeros(nch)
    c = np.zeros(atoms)
    li = np.zeros((atoms, d, d))
    xbar = np.zeros((atoms, d))
    scat = np.zeros((atoms, d, d))
    wk = (np.zeros((d, d)), np.zeros((d, d)), np.zeros((d, d)), np.zeros((d, d)), np.zeros((d, d)))
    remap = np.zeros(atoms, np.int64)
    act = np.zeros(slots, np.int64)
    pos = np.zeros(slots, np.int64)
    free = np.zeros(slots, np.int64)
    vtab = np.full(n + 3, np.nan)  # the urn's memoised log V_n(t) and r[t] (NaN: not yet);
    rtab = np.full(n + 3, np.nan)  # they depend on the state, so reset when it changes
    hyper_random = hp[0] == 0.0 or hp[3] == 0.0
    # the split-merge move's tables and scratch (its own collapsed slot state is not kept)
    tc, tp = predictive_tables(n + 1, d, hyp, fam)
    logn = log_counts(n)
    lwn = np.zeros(n + 2)
    sm_slots = (
        cnt,
        np.zeros((slots, d)),
        np.zeros((slots, d, d)),
        np.zeros(slots),
        np.zeros((slots, d)),
        np.zeros(slots),
    )
    tmp = scratch(n, d)
    if it0 == 0:  # one cluster: the split moves find the groups (started from many
        # clusters, merges wait on a proposal for each over-split pair)
        z[:] = 0
    stats_from_z(x, z, slots, cnt, sx, sxx)
    t = 0
    if labelled:
        for k in range(kk_lab):
            if cnt[k] > 0:
                t += 1
    else:
        t = compact(z, slots, cnt, sx, sxx, remap)
    for it in range(it0, it0 + n_iter):
        # 1. hyperparameters | partition (and K | K+ for a static MFM)
        partition_hypers(hyper_random, kind, state, hp, it, tune, cnt, act, pos, free, kk_lab,
                         t, slots, n, logpk, vtab, rtab)  # fmt: skip
        # 2. weights and parameters | z
        key = new_key()
        n_dest, n_lik, use_slice, capped = weights_given_z(
            kind, state, kk_lab, t, cnt, logw, z, key, nch
        )
        if capped:
            state[CAP_HITS] += 1.0
        draw_components(n_lik, cnt, sx, sxx, logw, hyp, fam, mu, lc, c, li, xbar, scat, wk)
        t_ll, ll_fac, lw_tail = rest_lump(sliced, logw, t, n_lik)
        pending = -1
        if it >= tune and (it - tune + 1) % thin == 0:
            pending = (it - tune) // thin
            out_k[pending] = t
            for j in range(out_state.shape[1]):
                out_state[pending, j] = state[j]
            zr, zs = out_z.shape[0], out_w.shape[0]  # z of R of the S draws (even rows)
            if (pending * zr) % zs < zr:
                for i in range(n):
                    out_z[pending * zr // zs, i] = z[i]
            save_params(pending, sliced, t, lw_tail, logw, mu, lc, out_w, out_mu, out_cov)
        # 3. z | weights, parameters (within the slices for the DP and Pitman-Yor)
        z_pass(x, z, mu, li, c, logw, n_dest, n_lik, use_slice, t_ll, ll_fac, fam, key, nch, ccnt,
               csx, csxx, cll, pending >= 0)  # fmt: skip
        reduce_chunks(nch, n_dest, ccnt, csx, csxx, cnt, sx, sxx)
        if pending >= 0:
            tot = 0.0
            for ch in range(nch):
                tot += cll[ch]
            out_ll[pending] = tot
        if labelled:
            t = 0
            for k in range(kk_lab):
                if cnt[k] > 0:
                    t += 1
        else:
            t = compact(z, n_dest, cnt, sx, sxx, remap)
        # 4. split-merge moves on the partition
        if n_sm > 0:
            labs, c1 = registry.split_merge_constants(kind, state)
            sig = registry.sigma_of(kind, state)
        for _ in range(n_sm):
            nact, nfree = _sm_lists(labelled, kk_lab, t, slots, cnt, act, pos, free)
            for tt in (nact - 1, nact):
                if tt >= 0 and rtab[tt] != rtab[tt]:
                    rtab[tt] = registry.urn_r(kind, tt, state, kk_lab, n, logpk, vtab)
            nact2, _, acc = split_merge(
                x, z, sm_slots, tmp, act, pos, free, nact, nfree, tc, tp, logn, lwn, rtab, hyp,
                fam, labs, sig, c1, sx, sxx,
            )  # fmt: skip
            if not acc:
                continue
            if it >= tune:
                state[4] += 1.0
            stats_from_z(x, z, slots, cnt, sx, sxx)
            if labelled:
                t = nact2
            else:
                t = compact(z, slots, cnt, sx, sxx, remap)
