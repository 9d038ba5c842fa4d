"""Posterior co-clustering and point estimates of the partition.

Conventions: ``z`` is an int array (S, N) of allocations (S draws, N observations) with labels
in 0..K-1; a partition ``c`` is an int array (N,) whose label values are arbitrary (only which
items share a label matters). All logarithms in the VI distance are base 2 (bits).

References: Meila (2007) variation of information; Binder (1978); Wade & Ghahramani (2018)
"Bayesian cluster analysis: point estimation and credible balls"; Dahl, Johnson & Mueller
(2022) "Search algorithms and loss functions for Bayesian clustering" (SALSO).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numba as nb
import numpy as np

__all__ = [
    "adjusted_rand_index",
    "binder_distance",
    "credible_ball",
    "expected_binder",
    "expected_vi",
    "expected_vi_lb",
    "membership_certainty",
    "psm",
    "psm_subset",
    "salso",
    "vi_distance",
]

_LN2 = math.log(2.0)
_EPS = 1e-10  # strict-improvement threshold of the greedy search (loss in nats or pair units)


# --------------------------------------------------------------------------- helpers


def _threads(fn, n_items: int) -> None:
    """Run fn(start, stop) over contiguous shares of range(n_items) in threads. The compiled
    kernels release the GIL (nogil), which avoids numba's parallel threading layer."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = max(1, min(cpus or 1, n_items))
    bounds = np.linspace(0, n_items, workers + 1).astype(int)
    if workers == 1:
        fn(0, n_items)
        return
    with ThreadPoolExecutor(workers) as pool:
        for f in [pool.submit(fn, a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]:
            f.result()


def _as_partition(c) -> np.ndarray:
    """Relabel any 1-D label vector to 0..k-1 (order of first appearance is not kept)."""
    c = np.asarray(c)
    if c.ndim != 1:
        raise ValueError(f"a partition must be 1-D, got shape {c.shape}")
    return np.unique(c, return_inverse=True)[1].astype(np.int64)


def _as_draws(z) -> np.ndarray:
    z = np.asarray(z)
    if z.ndim != 2:
        raise ValueError(f"z must have shape (S, N), got {z.shape}")
    if not np.issubdtype(z.dtype, np.integer):
        raise ValueError("z must hold integer labels")
    if z.size and z.min() < 0:
        raise ValueError("z labels must be >= 0")
    return z


def _order_by_size(c: np.ndarray) -> np.ndarray:
    """Labels 0..k-1 ordered by cluster size descending (ties: first appearance)."""
    _, first, inv, counts = np.unique(c, return_index=True, return_inverse=True, return_counts=True)
    order = np.lexsort((first, -counts))  # primary: -size, secondary: first index
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inv].astype(np.int64)


def _contingency(a, b) -> np.ndarray:
    a, b = _as_partition(a), _as_partition(b)
    if a.size != b.size:
        raise ValueError("partitions must have the same length")
    ka, kb = a.max(initial=-1) + 1, b.max(initial=-1) + 1
    return np.bincount(a * kb + b, minlength=ka * kb).reshape(ka, kb)


def _xlog2x(n: np.ndarray) -> float:
    n = n[n > 0].astype(np.float64)
    return float(np.sum(n * np.log2(n)))


def _pairs(n: np.ndarray) -> float:
    n = n.astype(np.float64)
    return float(np.sum(n * (n - 1.0) / 2.0))


# --------------------------------------------------------------------------- distances


def vi_distance(a, b) -> float:
    """Variation of information VI(a, b) = H(a) + H(b) - 2 I(a, b), in bits (Meila 2007).

    With contingency counts n_kl, row sums n_k, column sums m_l and N items:
    VI = (1/N) [sum_k n_k log2 n_k + sum_l m_l log2 m_l - 2 sum_kl n_kl log2 n_kl].
    """
    t = _contingency(a, b)
    n = t.sum()
    if n == 0:
        return 0.0
    v = (_xlog2x(t.sum(1)) + _xlog2x(t.sum(0)) - 2.0 * _xlog2x(t.ravel())) / n
    return max(0.0, v) if v > 1e-12 else 0.0


def binder_distance(a, b) -> float:
    """Binder distance: fraction of the N(N-1)/2 unordered pairs {i, j} on which a and b
    disagree (together in one, apart in the other). Lies in [0, 1]; 0 iff a == b."""
    t = _contingency(a, b)
    n = int(t.sum())
    if n < 2:
        return 0.0
    dis = _pairs(t.sum(1)) + _pairs(t.sum(0)) - 2.0 * _pairs(t.ravel())
    return dis / (n * (n - 1) / 2.0)


def adjusted_rand_index(a, b) -> float:
    """Adjusted Rand index (Hubert & Arabie 1985); 1.0 iff a == b up to relabelling."""
    t = _contingency(a, b)
    n = int(t.sum())
    if n < 2:
        return 1.0
    sum_ij, sum_a, sum_b = _pairs(t.ravel()), _pairs(t.sum(1)), _pairs(t.sum(0))
    total = n * (n - 1) / 2.0
    expected = sum_a * sum_b / total
    maximum = 0.5 * (sum_a + sum_b)
    if maximum == expected:  # both partitions trivial (all-one or all-singletons) and equal
        return 1.0
    return float((sum_ij - expected) / (maximum - expected))


# --------------------------------------------------------------------------- PSM


@nb.njit(nogil=True, cache=True)
def _psm_tiles(zt, tile_i, tile_j, block, out):  # pragma: no cover - compiled
    n, s = zt.shape
    inv_s = 1.0 / s
    for t in range(tile_i.size):
        i0 = tile_i[t] * block
        j0 = tile_j[t] * block
        i1 = min(i0 + block, n)
        j1 = min(j0 + block, n)
        for i in range(i0, i1):
            for j in range(max(j0, i), j1):
                cnt = 0
                for r in range(s):
                    cnt += zt[i, r] == zt[j, r]
                v = cnt * inv_s
                out[i, j] = v
                out[j, i] = v


def psm(z, block: int = 64, dtype=np.float64) -> np.ndarray:
    """Posterior similarity matrix P[i, j] = (1/S) sum_s 1(z_si = z_sj) ~ P(z_i = z_j | data).

    Exact pair counting in compiled code over ``block`` x ``block`` tiles of observations (upper
    triangle only, mirrored). Extra memory beyond the (N, N) output is one (N, S) copy of ``z``
    in the smallest integer type, so N = 5000, S = 4000 needs ~220 MB (float64 output).
    """
    z = _as_draws(z)
    s, n = z.shape
    out = np.empty((n, n), dtype=dtype)
    if n == 0:
        return out
    if s == 0:
        raise ValueError("z has no draws")
    kmax = int(z.max()) + 1
    small = np.int8 if kmax <= 127 else (np.int16 if kmax <= 32767 else np.int32)
    zt = np.ascontiguousarray(z.T, dtype=small)
    block = max(1, int(block))
    nbk = -(-n // block)
    ti, tj = np.triu_indices(nbk)
    perm = np.random.default_rng(0).permutation(ti.size)  # balance tile sizes across threads
    ti, tj = ti[perm].astype(np.int64), tj[perm].astype(np.int64)
    _threads(lambda a, b: _psm_tiles(zt, ti[a:b], tj[a:b], block, out), ti.size)
    return out


_psm = psm  # alias: some functions take a ``psm`` argument that shadows the name


def psm_subset(z, max_n: int = 2000, rng=None) -> tuple[np.ndarray, np.ndarray]:
    """PSM of a random subset of at most ``max_n`` observations: returns (psm, sorted index)."""
    z = _as_draws(z)
    n = z.shape[1]
    if n <= max_n:
        idx = np.arange(n)
    else:
        idx = np.sort(np.random.default_rng(rng).choice(n, size=max_n, replace=False))
    return psm(z[:, idx]), idx


# --------------------------------------------------------------------------- expected losses


@nb.njit(cache=True)
def _objective(labels, p, vi):  # pragma: no cover - compiled
    """c-dependent part of the loss for labels >= 0 (any gaps allowed), natural logs.

    vi:     sum_k n_k ln n_k - 2 sum_i ln R_i,   R_i = sum_{j: c_j = c_i} p_ij (p_ii := 1)
    binder: sum_{i<j, c_i = c_j} (1 - 2 p_ij)
    """
    n = labels.size
    k = 0
    for i in range(n):
        k = max(k, labels[i] + 1)
    counts = np.zeros(k + 1, np.int64)
    for i in range(n):
        counts[labels[i] + 1] += 1
    for c in range(k):
        counts[c + 1] += counts[c]
    order = np.empty(n, np.int64)
    fill = counts[:k].copy()
    for i in range(n):
        order[fill[labels[i]]] = i
        fill[labels[i]] += 1
    total = 0.0
    for c in range(k):
        a, b = counts[c], counts[c + 1]
        m = b - a
        if m == 0:
            continue
        if vi:
            total += m * math.log(m)
        for ii in range(a, b):
            i = order[ii]
            if vi:
                r = 1.0
                for jj in range(a, b):
                    if jj != ii:
                        r += p[i, order[jj]]
                total -= 2.0 * math.log(r)
            else:
                for jj in range(ii + 1, b):
                    total += 1.0 - 2.0 * p[i, order[jj]]
    return total


@nb.njit(nogil=True, cache=True)
def _objectives_into(draws, p, vi, out):  # pragma: no cover - compiled
    for s in range(draws.shape[0]):
        out[s] = _objective(draws[s], p, vi)


def _objectives(draws: np.ndarray, p: np.ndarray, vi: bool) -> np.ndarray:
    """_objective for every row of draws (int64, labels >= 0), in threads."""
    out = np.empty(draws.shape[0])
    _threads(lambda a, b: _objectives_into(draws[a:b], p, vi, out[a:b]), draws.shape[0])
    return out


def _check_psm(p, n: int) -> np.ndarray:
    p = np.asarray(p)
    if p.shape != (n, n):
        raise ValueError(f"psm must have shape ({n}, {n}), got {p.shape}")
    return p if p.dtype in (np.float32, np.float64) else p.astype(np.float64)


def _binder_value(obj: float, p: np.ndarray) -> float:
    n = p.shape[0]
    if n < 2:
        return 0.0
    upper = (float(p.sum(dtype=np.float64)) - float(np.trace(p))) / 2.0  # sum_{i<j} p_ij
    return (upper + obj) / (n * (n - 1) / 2.0)


def _vi_lb_value(obj: float, p: np.ndarray) -> float:
    n = p.shape[0]
    if n == 0:
        return 0.0
    rows = p.sum(1, dtype=np.float64) - np.diagonal(p) + 1.0  # p_ii := 1
    return max(0.0, (obj + float(np.log(rows).sum())) / (n * _LN2))


def expected_binder(c, psm) -> float:
    """Posterior expected Binder distance E[binder_distance(c, z) | data]
    = sum_{i<j} |1(c_i = c_j) - p_ij| / (N(N-1)/2), exact given the PSM ``psm``."""
    c = _as_partition(c)
    p = _check_psm(psm, c.size)
    return _binder_value(_objective(c, p, False), p)


def expected_vi_lb(c, psm) -> float:
    """Wade & Ghahramani (2018) lower bound (Jensen) of the posterior expected VI, in bits:
    (1/N) sum_i [log2 n_{c_i} + log2 sum_j p_ij - 2 log2 sum_{j: c_j = c_i} p_ij]."""
    c = _as_partition(c)
    p = _check_psm(psm, c.size)
    return _vi_lb_value(_objective(c, p, True), p)


@nb.njit(nogil=True, cache=True)
def _vi_to_draws(c, z, kc, kz, out):  # pragma: no cover - compiled
    """out[s] = VI (bits) between c (labels 0..kc-1) and row s of z (labels 0..kz-1)."""
    s_draws, n = z.shape
    hc = 0.0
    cnt_c = np.zeros(kc, np.int64)
    for i in range(n):
        cnt_c[c[i]] += 1
    for k in range(kc):
        if cnt_c[k] > 0:
            hc += cnt_c[k] * math.log(cnt_c[k])
    tab = np.zeros((kc, kz), np.int64)
    cnt = np.zeros(kz, np.int64)
    for s in range(s_draws):
        for i in range(n):
            tab[c[i], z[s, i]] += 1
            cnt[z[s, i]] += 1
        acc = hc
        for i in range(n):  # visit each non-empty cell once, zeroing it afterwards
            lz = z[s, i]
            m = tab[c[i], lz]
            if m > 0:
                acc -= 2.0 * m * math.log(m)
                tab[c[i], lz] = 0
            m = cnt[lz]
            if m > 0:
                acc += m * math.log(m)
                cnt[lz] = 0
        v = acc / (n * math.log(2.0))
        out[s] = v if v > 1e-12 else 0.0


def _vi_all(c, z) -> np.ndarray:
    """VI(c, z_s) in bits for every draw s (compiled contingency tables, threads over draws)."""
    c = _as_partition(c)
    z = _as_draws(z)
    if z.shape[1] != c.size:
        raise ValueError("c and z disagree on N")
    out = np.zeros(z.shape[0])
    if c.size == 0 or z.shape[0] == 0:
        return out
    zz = np.ascontiguousarray(z, dtype=np.int64)
    kc, kz = int(c.max()) + 1, int(zz.max()) + 1
    _threads(lambda a, b: _vi_to_draws(c, zz[a:b], kc, kz, out[a:b]), zz.shape[0])
    return out


def expected_vi(c, z, max_draws: int | None = None, seed=0) -> float:
    """Posterior expected VI, exact Monte Carlo average (1/S) sum_s VI(c, z_s) in bits, over all
    draws or a random subsample of ``max_draws`` of them (compiled contingency tables, O(S N))."""
    z = _as_draws(z)
    if max_draws is not None and z.shape[0] > max_draws:
        rows = np.random.default_rng(seed).choice(z.shape[0], size=max_draws, replace=False)
        z = z[np.sort(rows)]
    return float(_vi_all(c, z).mean())


# --------------------------------------------------------------------------- SALSO kernel
# State of one search: labels (N,) with -1 = unallocated, sizes (N + 1,), kmax (labels used are
# < kmax), R (N,) with R_i = 1 + sum_{j != i, c_j = c_i} p_ij over allocated items. The loss
# kept is the c-dependent part documented in _objective; both losses are O(N + kmax) given R.


@nb.njit(cache=True)
def _gains(i, labels, kmax, p, r_in, vi, t_sum, g_sum):  # pragma: no cover - compiled
    for k in range(kmax):
        t_sum[k] = 0.0
        g_sum[k] = 0.0
    for j in range(labels.size):
        k = labels[j]
        if k < 0 or j == i:
            continue
        pij = p[i, j]
        if pij == 0.0:
            continue
        t_sum[k] += pij
        if vi:
            g_sum[k] += math.log1p(pij / r_in[j])


@nb.njit(cache=True)
def _delta(m, t, g, vi):  # pragma: no cover - compiled
    """Loss change of adding an item to a cluster of size m (0 for a new cluster)."""
    if m == 0:
        return 0.0
    if vi:
        return (m + 1) * math.log(m + 1) - m * math.log(m) - 2.0 * (g + math.log1p(t))
    return m - 2.0 * t


@nb.njit(cache=True)
def _remove(i, labels, sizes, p, r_in):  # pragma: no cover - compiled
    k = labels[i]
    labels[i] = -1
    sizes[k] -= 1
    for j in range(labels.size):
        if labels[j] == k:
            r_in[j] -= p[i, j]
    r_in[i] = 1.0


@nb.njit(cache=True)
def _place(i, k, labels, sizes, p, r_in):  # pragma: no cover - compiled
    r = 1.0
    for j in range(labels.size):
        if labels[j] == k:
            pij = p[i, j]
            r_in[j] += pij
            r += pij
    r_in[i] = r
    labels[i] = k
    sizes[k] += 1


@nb.njit(cache=True)
def _best(i, prefer, labels, sizes, kmax, p, r_in, vi, t_sum, g_sum):  # pragma: no cover
    """Best cluster for unallocated item i; keeps ``prefer`` unless strictly beaten."""
    _gains(i, labels, kmax, p, r_in, vi, t_sum, g_sum)
    best_k, best_d = -1, 0.0  # -1: a new cluster, delta 0
    if prefer >= 0 and sizes[prefer] > 0:
        best_k = prefer
        best_d = _delta(sizes[prefer], t_sum[prefer], g_sum[prefer], vi)
        if best_d > _EPS:
            best_k, best_d = -1, 0.0
    for k in range(kmax):
        if sizes[k] == 0 or k == best_k:
            continue
        d = _delta(sizes[k], t_sum[k], g_sum[k], vi)
        if d < best_d - _EPS:
            best_k, best_d = k, d
    if best_k >= 0:
        return best_k
    if prefer >= 0 and sizes[prefer] == 0:
        return prefer
    for k in range(kmax):
        if sizes[k] == 0:
            return k
    return kmax


@nb.njit(cache=True)
def _allocate(items, labels, sizes, kmax, p, r_in, vi, t_sum, g_sum):  # pragma: no cover
    for i in items:
        k = _best(i, -1, labels, sizes, kmax, p, r_in, vi, t_sum, g_sum)
        if k >= kmax:
            kmax = k + 1
        _place(i, k, labels, sizes, p, r_in)
    return kmax


@nb.njit(cache=True)
def _compact(labels, sizes, kmax):  # pragma: no cover - compiled
    new_id = np.full(kmax, -1, np.int64)
    nk = 0
    for k in range(kmax):
        if sizes[k] > 0:
            new_id[k] = nk
            sizes[nk] = sizes[k]
            nk += 1
    for k in range(nk, kmax):
        sizes[k] = 0
    for i in range(labels.size):
        labels[i] = new_id[labels[i]]
    return nk


@nb.njit(cache=True)
def _recompute_r(labels, p, r_in):  # pragma: no cover - compiled
    n = labels.size
    for i in range(n):
        r_in[i] = 1.0
    for i in range(n):
        for j in range(i + 1, n):
            if labels[i] == labels[j]:
                r_in[i] += p[i, j]
                r_in[j] += p[i, j]


@nb.njit(cache=True)
def _state_loss(sizes, kmax, r_in, vi):  # pragma: no cover - compiled
    total = 0.0
    for k in range(kmax):
        m = sizes[k]
        if m > 0:
            total += m * math.log(m) if vi else 0.5 * m * (m - 1)
    for i in range(r_in.size):
        total -= 2.0 * math.log(r_in[i]) if vi else r_in[i] - 1.0
    return total


@nb.njit(cache=True)
def _sweep(labels, sizes, kmax, p, r_in, vi, t_sum, g_sum):  # pragma: no cover - compiled
    changed = False
    for i in np.random.permutation(labels.size):
        old = labels[i]
        _remove(i, labels, sizes, p, r_in)
        k = _best(i, old, labels, sizes, kmax, p, r_in, vi, t_sum, g_sum)
        if k >= kmax:
            kmax = k + 1
        _place(i, k, labels, sizes, p, r_in)
        changed = changed or k != old
    return changed, kmax


@nb.njit(cache=True)
def _zealous(labels, sizes, kmax, p, r_in, vi, t_sum, g_sum, loss, max_tries):  # pragma: no cover
    """Zealous updates: empty one whole cluster, reallocate its items sequentially in random
    order (existing or new clusters); keep the result only if the loss strictly decreases."""
    improved = False
    targets = np.random.permutation(kmax)[:max_tries]
    for a in targets:
        if a >= kmax or sizes[a] < 2:
            continue
        old_labels, old_sizes, old_r, old_kmax = labels.copy(), sizes.copy(), r_in.copy(), kmax
        members = np.where(labels == a)[0]
        for i in members:  # members only interact with each other, so others' R is unchanged
            labels[i] = -1
            r_in[i] = 1.0
        sizes[a] = 0
        order = np.random.permutation(members)
        kmax = _allocate(order, labels, sizes, kmax, p, r_in, vi, t_sum, g_sum)
        new_loss = _state_loss(sizes, kmax, r_in, vi)
        if new_loss < loss - _EPS:
            loss, improved = new_loss, True
        else:
            labels[:] = old_labels
            sizes[:] = old_sizes
            r_in[:] = old_r
            kmax = old_kmax
    return improved, _compact(labels, sizes, kmax), loss


@nb.njit(nogil=True, cache=True)
def _search(p, start, seed, vi, max_sweeps, max_zealous):  # pragma: no cover - compiled
    np.random.seed(seed)
    n = p.shape[0]
    labels = np.full(n, -1, np.int64)
    sizes = np.zeros(n + 1, np.int64)
    r_in = np.ones(n)
    t_sum = np.zeros(n + 1)
    g_sum = np.zeros(n + 1)
    if start[0] < 0:  # sequential allocation in random order
        kmax = _allocate(np.random.permutation(n), labels, sizes, 0, p, r_in, vi, t_sum, g_sum)
    else:
        kmax = 0
        for i in range(n):
            labels[i] = start[i]
            sizes[start[i]] += 1
            kmax = max(kmax, start[i] + 1)
    kmax = _compact(labels, sizes, kmax)
    sweeps = 0
    loss = 0.0
    while True:
        while sweeps < max_sweeps:
            sweeps += 1
            _recompute_r(labels, p, r_in)  # drop accumulated rounding
            changed, kmax = _sweep(labels, sizes, kmax, p, r_in, vi, t_sum, g_sum)
            kmax = _compact(labels, sizes, kmax)
            if not changed:
                break
        _recompute_r(labels, p, r_in)
        loss = _state_loss(sizes, kmax, r_in, vi)
        if max_zealous <= 0 or sweeps >= max_sweeps:
            break
        improved, kmax, loss = _zealous(
            labels, sizes, kmax, p, r_in, vi, t_sum, g_sum, loss, max_zealous
        )
        if not improved:
            break
    return labels, loss


def _search_many(p, starts, seeds, vi, max_sweeps, max_zealous):
    """Independent searches (one per row of starts; -1 rows: random sequential allocation)."""
    out = np.empty(starts.shape, np.int64)
    losses = np.empty(starts.shape[0])

    def work(a: int, b: int) -> None:
        for r in range(a, b):
            out[r], losses[r] = _search(p, starts[r], seeds[r], vi, max_sweeps, max_zealous)

    _threads(work, starts.shape[0])
    return out, losses


def _unique_draws(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct partitions among the draws (up to relabelling) and how often each occurs."""
    seen: dict[bytes, int] = {}
    rows, counts = [], []
    for row in z:
        _, first, inv = np.unique(row, return_index=True, return_inverse=True)
        canon = np.argsort(np.argsort(first))[inv]  # labels by order of first appearance
        key = canon.astype(np.int32).tobytes()
        if key in seen:
            counts[seen[key]] += 1
        else:
            seen[key] = len(rows)
            rows.append(canon)
            counts.append(1)
    return np.asarray(rows, dtype=np.int64), np.asarray(counts)


def salso(
    z,
    loss: str = "VI",
    n_runs: int = 16,
    max_sweeps: int = 50,
    max_zealous: int = 10,
    n_draw_starts: int = 4,
    seed: int = 0,
    psm=None,
) -> tuple[np.ndarray, float]:
    """SALSO-style point estimate of the partition (Dahl, Johnson & Mueller 2022).

    Minimises, from the PSM, either the expected Binder distance (``loss="binder"``, exact) or
    the Wade-Ghahramani lower bound of the expected VI (``loss="VI"``; the R package salso uses
    the draws themselves for VI, here the PSM bound is used for speed). Search: ``n_runs``
    random sequential allocations (items in random order, each to the existing or new cluster
    that minimises the loss of the items placed so far) plus the ``n_draw_starts`` best draws'
    partitions as starts; each is improved by sweeps of single-item moves (to any cluster or a
    new one) until none helps, then by up to ``max_zealous`` zealous updates (dissolve one
    cluster, reallocate its items sequentially), alternating until nothing improves.
    Every draw's partition is scored, so the result is never worse than the best draw.

    Returns (labels 0..k-1 ordered by cluster size descending, the minimised expected loss:
    expected Binder distance or the expected-VI lower bound in bits).
    """
    kind = loss.lower()
    if kind not in ("vi", "binder"):
        raise ValueError("loss must be 'VI' or 'binder'")
    vi = kind == "vi"
    z = _as_draws(z)
    n = z.shape[1]
    if n == 0:
        return np.zeros(0, np.int64), 0.0
    p = _check_psm(_psm(z) if psm is None else psm, n)
    value = _vi_lb_value if vi else _binder_value

    uniq, _ = _unique_draws(z)
    draw_obj = _objectives(uniq, p, vi)
    best_draws = np.argsort(draw_obj, kind="stable")[: max(1, n_draw_starts)]
    starts = np.vstack([np.full((max(0, n_runs), n), -1, np.int64), uniq[best_draws]]).astype(
        np.int64
    )
    seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, size=starts.shape[0])
    labels, objs = _search_many(p, starts, seeds.astype(np.int64), vi, max_sweeps, max_zealous)
    r = int(np.argmin(objs))
    best_labels, best_obj = labels[r], float(objs[r])
    if draw_obj[best_draws[0]] < best_obj:  # cannot happen (search only improves), kept as guard
        best_labels, best_obj = uniq[best_draws[0]], float(draw_obj[best_draws[0]])
    best_labels = _order_by_size(best_labels)
    return best_labels, value(_objective(best_labels, p, vi), p)


# --------------------------------------------------------------------------- uncertainty


def _n_clusters(z: np.ndarray) -> np.ndarray:
    srt = np.sort(z, axis=1)
    return 1 + (np.diff(srt, axis=1) != 0).sum(axis=1)


def credible_ball(c, z, level: float = 0.95) -> dict:
    """Credible ball around the estimate c in VI distance (Wade & Ghahramani 2018).

    d_s = VI(c, z_s); radius eps = the ceil(level * S)-th smallest d_s, i.e. the smallest eps with
    at least ``level`` of the draws within eps; the ball holds all draws with d_s <= eps.
    Bounds (as in mcclust.ext): ``upper`` (vertical upper) = among draws in the ball with the
    fewest clusters, the one furthest from c; ``lower`` (vertical lower) = among those with the
    most clusters, the furthest; ``horizontal`` = the furthest draw in the ball. Each bound is
    {labels (0..k-1 by size), n_clusters, distance, draw (index into z)}; ties: first draw.
    """
    if not 0.0 < level <= 1.0:
        raise ValueError("level must lie in (0, 1]")
    z = _as_draws(z)
    d = _vi_all(c, z)
    s = d.size
    if s == 0:
        raise ValueError("z has no draws")
    radius = float(np.sort(d)[max(0, math.ceil(level * s - 1e-9) - 1)])
    inside = np.flatnonzero(d <= radius + 1e-12)
    k = _n_clusters(z[inside])
    din = d[inside]

    def bound(mask: np.ndarray) -> dict:
        cand = np.flatnonzero(mask)
        pick = inside[cand[np.argmax(din[cand])]]
        lab = _order_by_size(z[pick])
        return {
            "labels": lab,
            "n_clusters": int(lab.max() + 1),
            "distance": float(d[pick]),
            "draw": int(pick),
        }

    return {
        "radius": radius,
        "level": float(level),
        "n_in_ball": int(inside.size),
        "upper": bound(k == k.min()),
        "lower": bound(k == k.max()),
        "horizontal": bound(np.ones(inside.size, bool)),
    }


def membership_certainty(c, psm) -> np.ndarray:
    """Per observation i: mean of psm[i, j] over the other members j of i's estimated cluster,
    i.e. the average posterior probability of being co-clustered with them; 1.0 for singletons."""
    c = _as_partition(c)
    p = _check_psm(psm, c.size)
    k = int(c.max(initial=-1)) + 1
    onehot = np.zeros((c.size, k))
    onehot[np.arange(c.size), c] = 1.0
    within = (p @ onehot)[np.arange(c.size), c] - np.diagonal(p)
    size = np.bincount(c, minlength=k)[c]
    out = np.ones(c.size)
    many = size > 1
    out[many] = within[many] / (size[many] - 1)
    return out


# --------------------------------------------------------------------------- joining the rest


@nb.njit(nogil=True, cache=True)
def _share_into(z, sub, labels_sub, n_labels, rest, out):  # pragma: no cover - compiled
    """out[r, c] += sum_s #{j in subset cluster c: z[s, sub_j] = z[s, rest_r]} (see below)."""
    s_total = z.shape[0]
    k = out.shape[1]
    table = np.zeros((n_labels, k))
    for s in range(s_total):
        table[:, :] = 0.0
        for j in range(sub.shape[0]):
            table[z[s, sub[j]], labels_sub[j]] += 1.0
        for r in range(rest.shape[0]):
            lab = z[s, rest[r]]
            for c in range(k):
                out[r, c] += table[lab, c]


def join_share(z, sub, labels_sub, rest) -> np.ndarray:
    """share[r, c] = (1/S) sum_s (1/|C_c|) #{j in C_c : z_s,sub_j = z_s,rest_r}: for each row
    ``rest[r]`` outside the SALSO subset, the mean over draws of the share of subset cluster
    C_c's members with which it shares a component (a count table per draw: O(S (N k +
    n_subset)) time, O(N k + K k) memory beyond z; z any integer dtype)."""
    z = np.ascontiguousarray(z)
    labels_sub = np.ascontiguousarray(labels_sub, dtype=np.int64)
    k = int(labels_sub.max()) + 1
    out = np.zeros((len(rest), k))
    n_labels = int(z.max(initial=0)) + 1
    _share_into(
        z,
        np.ascontiguousarray(sub, dtype=np.int64),
        labels_sub,
        n_labels,
        np.ascontiguousarray(rest, dtype=np.int64),
        out,
    )
    sizes = np.bincount(labels_sub, minlength=k).astype(float)
    return out / (z.shape[0] * sizes[None, :])
