"""Numerics of the sub-cluster sampler over data shards (``engines/sharded.py``): the per-shard
kernels a worker runs on its own points, and the master's per-sweep steps that need only the
global sufficient statistics.  No Dask here.

A shard holds points off..off+m-1 of the data set (``off``: its global offset) and their labels.
Every per-point random number is the counter-based uniform of the point's *global* index
(``subcluster._unif(key, off + i)``), so a shard draws exactly the numbers the single-machine
engine draws for those points, whatever the layout of shards and workers.

Split-merge over shards (Dahl 2003; the move of ``split_merge.split_merge``, run in pieces):
the master picks i != j and a move key; each shard in turn (fixed shard order) allocates its
members of the two clusters (``sm_allocate``), starting from the partial sub-cluster states
(A holds x_i, B holds x_j, then the earlier shards' members) and handing them on.  Within a
shard the order is random: members sorted by the uniform of (move key, global index).  That
order depends only on the merged set S = A u B and the move key, never on how S is split, so
the split proposal and the reverse merge's "would-be split" are scored with the same order:
each order defines a valid Metropolis-Hastings move (Dahl's argument holds for any order drawn
independently of the split of S), and their mixture over orders is one as well.  Each shard
returns its members' raw per-side sums (n, sum x, sum x x^T), from which the master forms the
closed-form marginals m(A), m(B), m(A u B) and accepts or rejects; the shards then apply or
drop their pending sides.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from bayesmix.engines.gibbs.split_merge import log_split_ratio, moments
from bayesmix.engines.gibbs.subcluster import _unif, _z_chunk, reduce_chunks
from bayesmix.kernels.niw import cl_add, cl_logpred

NEG_INF = -np.inf


# --------------------------------------------------------------------------
# Shard side
# --------------------------------------------------------------------------


@njit(cache=True, nogil=True, parallel=True)
def shard_z_pass(x, z, mu, li, c, logw, n_dest, n_lik, use_slice, t_ll, ll_fac, fam, key, off,
                 nch, ccnt, csx, csxx, cll, cnt, sx, sxx, want_ll):  # fmt: skip
    """``subcluster.z_pass`` on one shard (points off.., the counters of their global indices),
    in parallel over nch chunks; then cnt, sx, sxx[:n_dest] <- the chunk sums in chunk order
    (``reduce_chunks``, sxx symmetric).  Returns the shard's log-likelihood sum (0 unless
    ``want_ll``: a sweep whose draw is saved)."""
    m = x.shape[0]
    for ch in prange(nch):
        cll[ch] = _z_chunk(x, z, mu, li, c, logw, n_dest, n_lik, use_slice, t_ll, ll_fac, fam,
                           key, ch * m // nch, (ch + 1) * m // nch, ch, ccnt, csx, csxx, off,
                           want_ll)  # fmt: skip
    reduce_chunks(nch, n_dest, ccnt, csx, csxx, cnt, sx, sxx)
    tot = 0.0
    for ch in range(nch):
        tot += cll[ch]
    return tot


@njit(cache=True, nogil=True, parallel=True)
def shard_logv_min(z, key, off, t, nch):
    """out[k] = min over the shard's points with z_i = k of log v_i, v_i = U(key, off + i)
    (k < t; +inf where none).  The smallest slice of the data set is then
    min_k (log pi_k + out[k]) over every shard: with u_i = v_i pi_{z_i} (Walker 2007),
    min_i log u_i = min_k (log pi_k + min_{z_i = k} log v_i), bitwise (rounding is monotone)."""
    m = z.shape[0]
    part = np.full((nch, t), np.inf)
    for ch in prange(nch):
        for i in range(ch * m // nch, (ch + 1) * m // nch):
            v = math.log(_unif(key, off + i))
            k = z[i]
            if v < part[ch, k]:
                part[ch, k] = v
    out = np.full(t, np.inf)
    for ch in range(nch):
        for k in range(t):
            out[k] = min(out[k], part[ch, k])
    return out


@njit(cache=True, nogil=True)
def sm_members(z, ci, cj, skip_i, skip_j, members):
    """Local indices of the shard's points in clusters ci or cj, except the move's anchors
    (local indices skip_i, skip_j; -1 when not on this shard); returns their number."""
    nm = 0
    for k in range(z.shape[0]):
        if k != skip_i and k != skip_j and (z[k] == ci or z[k] == cj):
            members[nm] = k
            nm += 1
    return nm


@njit(cache=True, nogil=True)
def sm_allocate(x, z, members, nm, off, mkey, split, ci, tcnt, tmean, tscl, tcst, tq, tc, tp,
                logn, hyp, fam, side, scnt, ssx, ssxx):  # fmt: skip
    """Dahl's sequential allocation of one shard's members of the merged set (module docstring).

    In the order of U(mkey, off + k): P(k -> side s) ∝ |S_s| t(x_k | S_s) (Student-t predictive
    of the partial side, ``niw.cl_logpred``); a split draws the side with U(mkey + 1, off + k),
    a merge scores the current one (side 0 = cluster ci).  x_k then joins its side
    (``niw.cl_add``).  side[r] is members[r]'s side; scnt, ssx, ssxx <- the raw per-side sums
    of the shard's members (n, sum x, sum x x^T).  Returns the shard's part of log q."""
    d = x.shape[1]
    u = np.empty(d)
    for s in range(2):
        scnt[s] = 0
        for a in range(d):
            ssx[s, a] = 0.0
            for b in range(d):
                ssxx[s, a, b] = 0.0
    keys = np.empty(nm)
    for r in range(nm):
        keys[r] = _unif(mkey, off + members[r])
    order = np.argsort(keys)
    key2 = mkey + np.uint64(1)
    lq = 0.0
    for r in range(nm):
        pos = order[r]
        k = members[pos]
        p0 = logn[tcnt[0]] + cl_logpred(x, k, 0, tmean, tscl, tcst, tq, tp[tcnt[0]], fam, u)
        p1 = logn[tcnt[1]] + cl_logpred(x, k, 1, tmean, tscl, tcst, tq, tp[tcnt[1]], fam, u)
        mx = max(p0, p1)
        lse = mx + math.log(math.exp(p0 - mx) + math.exp(p1 - mx))
        if split:
            s = 0 if _unif(key2, off + k) < math.exp(p0 - lse) else 1
        else:
            s = 0 if z[k] == ci else 1
        lq += (p0 if s == 0 else p1) - lse
        side[pos] = s
        cl_add(x, k, s, tcnt, tmean, tscl, tcst, tq, tc, hyp, fam, u)
        scnt[s] += 1
        for a in range(d):
            ssx[s, a] += x[k, a]
            for b in range(d):
                ssxx[s, a, b] += x[k, a] * x[k, b]
    return lq


@njit(cache=True, nogil=True)
def sm_apply(z, members, side, nm, split, ci, kb, j_local):
    """An accepted move on one shard: split, side-1 members (and x_j) -> label kb; merge,
    every member (and x_j) -> ci."""
    for r in range(nm):
        if not split or side[r] == 1:
            z[members[r]] = kb if split else ci
    if j_local >= 0:
        z[j_local] = kb if split else ci


# --------------------------------------------------------------------------
# Master side (global sufficient statistics only)
# --------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def slice_min_of(logw, mins, t):
    """min_k (log pi_k + mins[k]) over k < t: the smallest slice from the shards' minima."""
    m = np.inf
    for k in range(t):
        m = min(m, logw[k] + mins[k])
    return m


@njit(cache=True, nogil=True)
def sm_log_ratio(split, na, sxa, sxxa, nb, sxb, sxxb, lq, rr, sig, c1, labelled, nfree, hyp, fam,
                 xb3, sc3, psi, wl):  # fmt: skip
    """log of the MH ratio of the move from the sides' raw sums (``split_merge.split_merge``,
    ``split_merge.log_split_ratio``: log pi(split) - log pi(merged)); split: that - log q
    (+ log #empty slots, finite); merge: minus that + log q (- log(#empty + 1)).  xb3, sc3:
    (3, D) and (3, D, D) work arrays (A, B and their union)."""
    moments(na, sxa, sxxa, xb3[0], sc3[0])
    moments(nb, sxb, sxxb, xb3[1], sc3[1])
    moments(na + nb, sxa + sxb, sxxa + sxxb, xb3[2], sc3[2])
    lpr, _ = log_split_ratio(na, nb, xb3, sc3, rr, sig, c1, hyp, fam, psi, wl)
    if split:
        return lpr - lq + (math.log(nfree) if labelled else 0.0)
    return -lpr + lq - (math.log(nfree + 1.0) if labelled else 0.0)


@njit(cache=True, nogil=True)
def seed_numba(seed):
    """Seed numba's generator of the calling thread."""
    np.random.seed(seed)


@njit(cache=True, nogil=True)
def draw_pair(n):
    """Points i != j, uniformly (the split-merge move's anchors)."""
    i = np.random.randint(0, n)
    j = np.random.randint(0, n - 1)
    if j >= i:
        j += 1
    return i, j


@njit(cache=True, nogil=True)
def uniform_log():
    """log(1 - U), U ~ U(0, 1): the MH test's log uniform."""
    return math.log(1.0 - np.random.random())


@njit(cache=True, nogil=True)
def randint(n):
    """A uniform integer in 0..n-1."""
    return np.random.randint(0, n)
