"""Fast exact prior of K+ for finite Dirichlet mixtures and MFMs at large n (pure numerics).

The finite Dirichlet(gamma, ..., gamma) with K components is a Chinese restaurant with
concentration alpha = K gamma whose tables each take one of K atoms uniformly at random
(the Polya urn's new-component probability (K - k) gamma / (K gamma + m) is
alpha / (alpha + m) times (K - k) / K). So, with C the number of tables among n customers,

    P(K+ = t | K, gamma) = sum_c P(C = c | alpha = K gamma) Occ_K(c, t),

Occ_K(c, t) = P(c balls thrown uniformly into K boxes fill exactly t of them) (Johnson &
Kotz 1977, ch. 3). P(C = c | alpha) = |s(n, c)| alpha^c / (alpha)^(n) (Antoniak 1974) comes
from its probability generating function (alpha t)^(n) / (alpha)^(n) by one FFT (aliasing
error <= P(C > c_top) <= 1e-16, ``crp_k_top``), whatever n; the occupancy
chain costs O(c_top K) and does not depend on gamma. Every step adds non-negative numbers.

The MFMs (Miller & Harrison 2018; Fruehwirth-Schnatter, Malsiner-Walli & Gruen 2021,
Bayesian Analysis 16(4), whose prior of K+ is sum_K p(K) P(K+ = t | K)) are mixtures of these
over K: static, gamma fixed per K (concentration K gamma); dynamic, gamma = alpha / K (one
concentration alpha for every K). Each K's chain stops at c_end(K), past which every box is
full but for p(K) P(empty box) <= 1e-17 (union bound); a hyperprior on gamma or alpha is
integrated by the trapezoid rule in log(concentration) on one grid of table pmfs shared by
every K, so the cost is O(nodes c_top log c_top + sum_K c_end(K) band(K)), not O(n k) per node.

The log rising-factorial ratio log[(z)^(n) / (a)^(n)] is taken from a Stirling expansion of
the difference log Gamma(n + z) - log Gamma(n + a) when n >> |z|, |a|: scipy's loggamma at
argument ~n carries an absolute rounding of ~1e-16 n log n (~1e-9 at n = 1e6), the
difference only ~1e-16 max(|z|, |a|).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numba import njit
from scipy import special

# B_2k / (2k (2k - 1)), k = 1..6: log Gamma(w) = (w - 1/2) log w - w + log(2 pi)/2 + sum c_k w^(1-2k)
_STIRLING = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360)


def _stirling_tail(w: np.ndarray) -> np.ndarray:
    """sum_k B_2k / (2k (2k-1) w^(2k-1)), k = 1..6 (error < 1e-17 for |w| >= 20)."""
    inv = 1.0 / w
    inv2 = inv * inv
    acc = np.zeros_like(w)
    for c in reversed(_STIRLING):
        acc = acc * inv2 + c
    return acc * inv


def _log1p_complex(u: np.ndarray) -> np.ndarray:
    """log(1 + u) for complex u, accurate for small |u| (numpy's is not: it forms 1 + u)."""
    x, y = u.real, u.imag
    return 0.5 * np.log1p(x * (2.0 + x) + y * y) + 1j * np.arctan2(y, 1.0 + x)


def log_rising_ratio(n: int, z: np.ndarray, a: np.ndarray) -> np.ndarray:
    """log[(z)^(n) / (a)^(n)], (x)^(n) = Gamma(x + n) / Gamma(x), z complex, a > 0 (broadcast).

    = [log Gamma(n + z) - log Gamma(n + a)] - [log Gamma(z) - log Gamma(a)], the first
    bracket from Stirling's series written as a difference when n >= max(40, 4 |z|, 4 a):
    (z - a) log n + (n + z - 1/2) log1p(z/n) - (n + a - 1/2) log1p(a/n) - (z - a)
    + tail(n + z) - tail(n + a); else scipy's loggamma directly.
    """
    z = np.asarray(z, dtype=complex)
    a = np.asarray(a, dtype=float)
    z, a = np.broadcast_arrays(z, a)
    small = special.loggamma(z) - special.gammaln(a)
    out = np.empty(z.shape, dtype=complex)
    ok = (np.abs(z) * 4.0 <= n) & (a * 4.0 <= n) & (n >= 40)
    if ok.any():
        zo, ao = z[ok], a[ok]
        diff = (
            (zo - ao) * math.log(n)
            + (n + zo - 0.5) * _log1p_complex(zo / n)
            - (n + ao - 0.5) * np.log1p(ao / n)
            - (zo - ao)
            + _stirling_tail(n + zo)
            - _stirling_tail(n + ao)
        )
        out[ok] = diff - small[ok]
    bad = ~ok
    if bad.any():
        out[bad] = special.loggamma(z[bad] + n) - special.gammaln(a[bad] + n) - small[bad]
    return out


def crp_table_pmf(n: int, alphas: np.ndarray, c_top: int) -> np.ndarray:
    """P(C = c | alpha), c = 1..c_top, rows = alphas: the number of tables of a Chinese
    restaurant with concentration alpha after n customers (|s(n, c)| alpha^c / (alpha)^(n)).

    Its generating function E[t^C] = (alpha t)^(n) / (alpha)^(n) is evaluated at the M >=
    c_top + 1 points t_l = exp(2 pi i (l + 1/2) / M) and inverted by one FFT: exact up to
    the aliasing P(C > c_top) and rounding (~1e-16 absolute per entry), O(M log M) per row.
    """
    m = max(16, 1 << int(math.ceil(math.log2(c_top + 1))))
    a = np.asarray(alphas, dtype=float).reshape(-1, 1)
    t = np.exp(2j * np.pi * (np.arange(m) + 0.5) / m)
    g = np.exp(log_rising_ratio(n, a * t[None, :], a))
    coef = np.fft.fft(g, axis=1) / m * np.exp(-1j * np.pi * np.arange(m) / m)[None, :]
    return np.clip(coef.real[:, 1 : c_top + 1], 0.0, None)


@njit(cache=True, nogil=True)
def occupancy_matrix(K: int, c_top: int) -> np.ndarray:
    """Occ[c - 1, t - 1] = P(c balls thrown uniformly into K boxes occupy exactly t),
    c = 1..c_top, t = 1..K, by the chain Occ(c+1, t) = Occ(c, t) t/K + Occ(c, t-1) (K-t+1)/K."""
    occ = np.zeros((c_top, K))
    occ[0, 0] = 1.0
    for c in range(1, c_top):
        hi = min(c + 1, K)
        for t in range(1, hi + 1):  # t occupied after c + 1 balls
            v = occ[c - 1, t - 1] * (t / K)
            if t >= 2:
                v += occ[c - 1, t - 2] * ((K - t + 1) / K)
            occ[c, t - 1] = v
    return occ


def crp_k_top(n: int, alpha: float, tail: float = 1e-16) -> int:
    """c_top with P(C > c_top | alpha) <= tail, C the number of tables after n customers.

    C is a sum of independent Bernoulli(alpha / (alpha + i)), i < n, with mean
    mu = alpha (psi(alpha + n) - psi(alpha)), so the Chernoff bound P(C >= k) <= exp(-mu)
    (e mu / k)^k (k > mu) applies (as ``bayesmix.priors.dp_k_top``).
    """
    mu = float(alpha * (special.digamma(alpha + n) - special.digamma(alpha))) if alpha > 0 else 0.0
    mu = max(mu, 1e-300)
    k = max(int(math.ceil(mu)) + 1, 8)
    log_tail = math.log(tail)
    while k < n and -mu + k * (1.0 + math.log(mu) - math.log(k)) > log_tail:
        k += max(1, k // 20)
    return min(n, k + 1)


def finite_pmf_fast(n: int, K: int, gammas: np.ndarray) -> np.ndarray:
    """P(K+ = t | K, gamma), rows = gammas, t = 1..min(K, n): sum_c P(C = c | K gamma)
    Occ_K(c, t) (module docstring). Error <= 1e-16 (aliasing) + ~1e-15 rounding per entry."""
    g = np.asarray(gammas, dtype=float).ravel()
    c_top = crp_k_top(n, K * float(g.max()))
    q = crp_table_pmf(n, K * g, c_top)  # (rows, c_top)
    occ = occupancy_matrix(K, c_top)  # (c_top, K)
    out = q @ occ
    return out[:, : min(K, n)]


# --------------------------------------------------------------------------
# Mixtures over K (MFMs): occupancy of the tables, truncated where every box is full
# --------------------------------------------------------------------------

FULL_EPS = 1e-17  # per K: p(K) P(some box empty | c >= c_end(K) tables) is below this
_OCC_FLUSH = 1e-30  # occupancy probabilities below this are set to 0 (the band's edges)
_FLUSH_WEIGHTED = 1e-22  # ... or below this / p(K) (<= 1e-8): p(K) x the mass dropped per
# step stays below 2e-22, i.e. < 1e-16 over the chain's c_end <= ~1e5 steps


def full_after(K: int, weight: float, eps: float = FULL_EPS) -> int:
    """c_end with weight * K (1 - 1/K)^c_end <= eps: by the union bound, c >= c_end balls
    leave a box of K empty with probability at most K (1 - 1/K)^c."""
    if K <= 1 or weight <= 0.0:
        return 1
    need = math.log(K) + math.log(weight) - math.log(eps)
    return max(K, int(math.ceil(need / -math.log1p(-1.0 / K))))


def crp_c_lo(n: int, alpha: float, tail: float = 1e-18) -> int:
    """A c_lo with P(C < c_lo | alpha) <= tail (Chernoff: P(C <= k) <= e^-mu (e mu / k)^k
    for k < mu), 1 when none is found."""
    mu = float(alpha * (special.digamma(alpha + n) - special.digamma(alpha)))
    log_tail = math.log(tail)

    def ok(k: int) -> bool:  # the bound on P(C <= k) is below tail
        return k < mu and -mu + k * (1.0 + math.log(mu) - math.log(k)) <= log_tail

    if not ok(1):
        return 1
    lo, hi = 1, max(1, int(math.floor(mu)))  # ok(lo); find the largest ok k below mu
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo + 1


@njit(cache=True, nogil=True)
def occupancy_mix(K: int, q: np.ndarray, flush: float = _OCC_FLUSH) -> np.ndarray:
    """v[t - 1] = sum_c q[c - 1] Occ_K(c, t), t = 1..K, c = 1..len(q): the occupancy chain
    over c (a ball lands in an empty box w.p. (K - t)/K), kept to the band of t where it
    is >= ``flush`` (the mass so dropped is < flush per band edge and step)."""
    v = np.zeros(K)
    occ = np.zeros(K + 2)
    occ[1] = 1.0
    lo, hi = 1, 1
    inv = 1.0 / K
    for c in range(1, len(q) + 1):
        w = q[c - 1]
        if w != 0.0:
            for t in range(lo, hi + 1):
                v[t - 1] += w * occ[t]
        if c == len(q):
            break
        top = min(hi + 1, K)
        for t in range(top, lo - 1, -1):
            occ[t] = occ[t] * (t * inv) + occ[t - 1] * ((K - t + 1) * inv)
        hi = top
        while lo < hi and occ[lo] < flush:
            occ[lo] = 0.0
            lo += 1
        while hi > lo and occ[hi] < flush:
            occ[hi] = 0.0
            hi -= 1
    return v


@njit(cache=True, nogil=True)
def mix_rows(
    flat: np.ndarray, start: np.ndarray, length: np.ndarray, w: np.ndarray, c_len: int
) -> np.ndarray:
    """sum_j w[j] row_j[:c_len], row j stored as flat[start[j] : start[j] + length[j]]."""
    out = np.zeros(c_len)
    for j in range(len(w)):
        wj = w[j]
        if wj == 0.0:
            continue
        m = min(length[j], c_len)
        s = start[j]
        for c in range(m):
            out[c] += wj * flat[s + c]
    return out


def table_rows(n: int, alphas: np.ndarray, c_cap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P(C = c | alpha_j), c = 1..min(c_top_j, c_cap), for each alpha_j, as (flat, start,
    length); a row whose mass lies above c_cap (P(C <= c_cap) <= 1e-18) is left empty."""
    rows = []
    for a in np.asarray(alphas, dtype=float):
        if crp_c_lo(n, a) > c_cap:
            rows.append(np.zeros(0))
            continue
        c_top = crp_k_top(n, a)
        rows.append(crp_table_pmf(n, np.array([a]), c_top)[0][:c_cap])
    length = np.array([len(r) for r in rows], dtype=np.int64)
    start = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
    flat = np.concatenate(rows) if rows else np.zeros(0)
    return flat, start, length


def k_mixture(n: int, weights: np.ndarray, tables: object, eps: float = FULL_EPS) -> np.ndarray:
    """sum_K p(K) P(K+ = t | K), t = 1..len(weights), where given K the table count C has
    the distribution ``tables(K, c_end)`` on c = 1..c_end (its mass above c_end implied) and
    the tables take K atoms uniformly: P(K+ = t | K) = sum_c P(C = c) Occ_K(c, t). Past
    c_end = ``full_after(K, p(K))`` every box is full (error <= eps per K), so that mass
    goes to t = K."""
    w = np.asarray(weights, dtype=float)
    out = np.zeros(len(w))
    for K in np.nonzero(w)[0] + 1:
        c_end = full_after(int(K), float(w[K - 1]), eps)
        q = np.asarray(tables(int(K), c_end), dtype=float)
        flush = min(1e-8, max(_OCC_FLUSH, _FLUSH_WEIGHTED / float(w[K - 1])))
        v = occupancy_mix(int(K), q, flush)
        v[K - 1] += max(0.0, 1.0 - float(q.sum()))
        out[:K] += w[K - 1] * v
    return out


# --------------------------------------------------------------------------
# The MFMs' priors of K+ (Fruehwirth-Schnatter, Malsiner-Walli & Gruen 2021)
# --------------------------------------------------------------------------

GRID_STEP = 0.2  # trapezoid step in log(concentration): halving it moves the pmf < 2e-13


def _log_grid(lo: float, hi: float, h: float) -> np.ndarray:
    """log-spaced nodes u = log lo + j h, j = 0.., up to and including log hi."""
    u_lo, u_hi = math.log(lo), math.log(hi)
    return u_lo + h * np.arange(int(math.ceil((u_hi - u_lo) / h)) + 1)


def _delta1_mix(
    flat: np.ndarray, start: np.ndarray, length: np.ndarray, dens: np.ndarray, h: float, c_end: int
) -> np.ndarray:
    """delta_1 + h sum_j dens_j (q_j - delta_1) on c = 1..c_end: the trapezoid rule in
    log(concentration) for E[q_alpha], written around its alpha -> 0 limit delta_1."""
    q = mix_rows(flat, start, length, h * dens, c_end)
    q[0] += 1.0 - h * float(dens.sum())
    return q


def mfm_static_fixed_pmf(n: int, weights: np.ndarray, gamma: float) -> np.ndarray:
    """Static MFM, gamma fixed: P(K+ = t) = sum_K p(K) sum_c P(C = c | K gamma) Occ_K(c, t),
    t = 1..len(weights) (w | K ~ Dir(gamma), so given K the tables are a Chinese restaurant
    with concentration K gamma, module docstring)."""

    def tables(K: int, c_end: int) -> np.ndarray:
        a = K * gamma
        if crp_c_lo(n, a) > c_end:  # every box full: all mass above c_end
            return np.zeros(0)
        return crp_table_pmf(n, np.array([a]), crp_k_top(n, a))[0][:c_end]

    return k_mixture(n, weights, tables)


def mfm_static_gamma_pmf(
    n: int,
    weights: np.ndarray,
    lo: float,
    hi: float,
    log_pdf: Callable[[np.ndarray], np.ndarray],
    h: float = GRID_STEP,
) -> np.ndarray:
    """Static MFM, gamma ~ density exp(log_pdf) with its mass in [lo, hi]: the gamma
    integral moved inside the sum over K, P(K+ = t) = sum_K p(K) sum_c Q_K(c) Occ_K(c, t),
    Q_K(c) = E_gamma[P(C = c | alpha = K gamma)] by the trapezoid rule in u = log alpha on
    one grid shared by every K (node alpha_j, weight h K-shifted density of log gamma at
    u_j - log K): the table pmfs are computed once per node, not once per (node, K)."""
    w = np.asarray(weights, dtype=float)
    ks = np.nonzero(w)[0] + 1
    u = _log_grid(ks[0] * lo, ks[-1] * hi, h)
    alphas = np.exp(u)
    c_cap = max(full_after(int(K), float(w[K - 1])) for K in ks)
    flat, start, length = table_rows(n, alphas, c_cap)
    log_lo, log_hi = math.log(lo), math.log(hi)

    def tables(K: int, c_end: int) -> np.ndarray:
        ug = u - math.log(K)
        inside = (ug >= log_lo - 1e-12) & (ug <= log_hi + 1e-12)
        dens = np.zeros(len(u))
        dens[inside] = np.exp(log_pdf(np.exp(ug[inside])) + ug[inside])
        return _delta1_mix(flat, start, length, dens, h, c_end)

    return k_mixture(n, w, tables)


def mfm_dynamic_pmf(
    n: int,
    weights: np.ndarray,
    alpha: float | None = None,
    lo: float = 0.0,
    hi: float = 0.0,
    log_pdf: Callable[[np.ndarray], np.ndarray] | None = None,
    h: float = GRID_STEP,
) -> np.ndarray:
    """Dynamic MFM, w | K ~ Dir(alpha/K): the tables are a Chinese restaurant with
    concentration alpha whatever K, so P(K+ = t) = sum_K p(K) sum_c Q(c) Occ_K(c, t) with
    one table pmf Q: alpha fixed, or E_alpha[P(C = c | alpha)] for alpha ~ exp(log_pdf) on
    [lo, hi] by the trapezoid rule in log alpha."""
    w = np.asarray(weights, dtype=float)
    ks = np.nonzero(w)[0] + 1
    c_cap = max(full_after(int(K), float(w[K - 1])) for K in ks)
    if alpha is not None:
        if crp_c_lo(n, alpha) > c_cap:  # every box full for every K
            q = np.zeros(0)
        else:
            q = crp_table_pmf(n, np.array([alpha]), crp_k_top(n, alpha))[0][:c_cap]
    else:
        u = _log_grid(lo, hi, h)
        flat, start, length = table_rows(n, np.exp(u), c_cap)
        dens = np.exp(log_pdf(np.exp(u)) + u)
        q = _delta1_mix(flat, start, length, dens, h, c_cap)

    def tables(K: int, c_end: int) -> np.ndarray:
        return q[:c_end]

    return k_mixture(n, w, tables)
