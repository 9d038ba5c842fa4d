"""Exact posteriors of Bayesian Gaussian mixtures on tiny data sets, by enumerating every set
partition (N = 6: 203 partitions).  A helper for the tests of the Gibbs samplers: independent
numpy/scipy code that never imports the samplers.

For a partition C = {B_1, ..., B_k} of the N points,

    p(C, x | eta) = EPPF(n_1, ..., n_k | eta) * prod_j m(x_{B_j}),

where m(.) is the closed-form marginal likelihood of one cluster under the conjugate
Normal-Inverse-Wishart kernel prior (``block_log_marginal``) and the EPPF (exchangeable
partition probability function) is the mixing's prior probability of C (``log_eppf_*``).
Summing over all partitions gives p(x | eta) and the exact posterior of the number of occupied
clusters K+ = k; random hyperparameters eta are integrated on a fine grid.

Kernel prior, ``hyp = (m0, kappa0, nu0, psi0)``:
    full covariance (d features): Sigma ~ IW(nu0, psi0 * I), mu | Sigma ~ N(m0 * 1, Sigma/kappa0);
    ``diag``: the same prior with d = 1, independently per feature (a Normal-Inverse-Gamma,
    sigma^2 ~ IG(a0, b0) with nu0 = 2 a0 and psi0 = 2 b0);
    ``diag = "spherical"``: one such sigma^2 shared by the d features, Sigma = sigma^2 I,
    mu | sigma^2 ~ N(m0 1, sigma^2 / kappa0 I).

Mixings (``exact_posterior(mixing=..., params=...)``), with n = N and block sizes n_1..n_k:
    ``"dp"``          params {"concentration": alpha}
                      EPPF = alpha^k Gamma(alpha) / Gamma(alpha + n) prod_j Gamma(n_j)
    ``"pitman_yor"``  params {"strength": theta, "discount": sigma}, 0 <= sigma < 1, theta > -sigma
                      EPPF = prod_{i=1}^{k-1} (theta + i sigma) / (theta + 1)_(n-1)
                             * prod_j (1 - sigma)_(n_j - 1)
    ``"pitman_yor_truncated"``  params {"strength", "discount", "truncation": T}: the sticks
                      truncated at T, as in the blocked sampler (``log_eppf_pitman_yor_truncated``:
                      a sum over the maps of the blocks to the T labelled slots)
    ``"finite"``      params {"concentration": gamma, "n_components": K}; w ~ Dir(gamma, .., gamma)
                      EPPF = K!/(K-k)! Gamma(K gamma)/Gamma(K gamma + n) prod_j (gamma)_(n_j)
                      (unlabelled partition; 0 if k > K)
    ``"mfm_static"``  params {"concentration": gamma, "k_prior": log p(K)}  (Miller & Harrison
                      2018): K ~ p(K) on 1..K_max, w | K ~ Dir(gamma, .., gamma)
                      EPPF = sum_K p(K) finite(gamma, K) = V_n(k) prod_j (gamma)_(n_j),
                      V_n(k) = sum_K K_(k) / (gamma K)_(n) p(K)
    ``"mfm_dynamic"`` params {"concentration": alpha, "k_prior": log p(K)}  (Fruehwirth-Schnatter,
                      Malsiner-Walli & Gruen 2021): w | K ~ Dir(alpha/K, .., alpha/K)
                      EPPF = sum_K p(K) finite(alpha / K, K)
(a)_(m) = a (a+1) ... (a+m-1) is the rising and K_(k) = K (K-1) ... (K-k+1) the falling
factorial.  ``k_prior`` is a log-pmf array over K = 1..K_max (entry K - 1): ``uniform_k``,
``poisson_k``, ``bnb_k``, ``point_k``, or a spec tuple such as ``("poisson", 3.0)`` with
``k_max``.

Hyperparameter priors (``hyper_priors={name: spec}``), integrated on a grid that is uniform in
a transformed coordinate (``hyper_grid``): ``("gamma", shape, rate)`` and ``("f", df1, df2)``
for positive parameters (log grid), ``("beta", a, b)`` for the discount (logit grid).  For the
Pitman-Yor strength the prior is on theta + sigma (so that theta > -sigma); when both are
random, theta + sigma and sigma are independent a priori.

Grid accuracy.  The integrands are analytic and decay at both ends in the log / logit
coordinate, so the rectangle rule on a uniform grid converges geometrically in the step
(error ~ exp(-pi^2 / h) for a unit-scale prior) and the only other error is the range
truncation, set by ``grid_tail`` (prior mass, and prior mass weighted by x and x^2, outside the
range).  The default step (0.1 times the prior's sd in the transformed coordinate, at most 0.1)
and tail (1e-14) were checked by halving the step and by widening the range (tail 1e-18): every
reported number moved by <= 1.2e-14 (halving) and <= 4e-13 (widening) in all of the tests'
cases, and even a step of 0.2 is within 2e-14; flat-likelihood moments match the priors' closed
forms and posterior means match scipy quadrature (tests/test_exact_partitions.py).

Caution: alpha ~ F(6, 3) (the dynamic-MFM default of Fruehwirth-Schnatter et al.) has an
infinite prior and posterior variance (second_moment is reported as inf), so a sampler's mean
of alpha has no finite MCSE: compare E[log alpha] (``mean_log``) or the grid cdf instead.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from functools import cache

import numpy as np
from scipy import stats
from scipy.special import betaln, expit, gammaln, logsumexp, multigammaln, polygamma

# --------------------------------------------------------------------------
# Data sets and kernel hyperparameters
# --------------------------------------------------------------------------

ENUM_X1 = np.array([-1.5, -1.2, -1.0, 0.9, 1.1, 1.6])[:, None]
ENUM_X2 = np.array([[-1, -1], [-1.2, -0.7], [-0.8, -1.1], [1, 0.8], [1.2, 1.3], [0.3, -0.2]])

#: recommended kernel hyperparameters (m0, kappa0, nu0, psi0), as in tests/test_gibbs.py
HYP_X1 = (0.0, 0.1, 4.0, 0.5)  # 1-D NIG: a0 = 2, b0 = 0.25
HYP_X2_FULL = (0.0, 0.1, 4.0, 0.25)  # NIW, nu0 = d + 2 (E[Sigma] = psi0 I)
HYP_X2_DIAG = (0.0, 0.1, 4.0, 0.5)  # NIG per feature: a0 = 2, b0 = 0.25


def recommended_hyp(x: np.ndarray, diag: bool) -> tuple[float, float, float, float]:
    """(m0, kappa0, nu0, psi0) used by the enumeration tests: NIG(a0 = 2, b0 = 0.25) for 1-D
    or diagonal kernels, NIW with nu0 = d + 2 and psi0 = 0.25 for full covariance."""
    d = np.asarray(x).reshape(len(x), -1).shape[1]
    return HYP_X1 if (diag or d == 1) else (0.0, 0.1, d + 2.0, 0.25)


# --------------------------------------------------------------------------
# Set partitions and the block marginal likelihood
# --------------------------------------------------------------------------


def tv(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation 1/2 sum |p_k - q_k| of two pmfs on 0, 1, ... (the shorter padded)."""
    n = max(len(p), len(q))
    return 0.5 * float(np.abs(np.pad(p, (0, n - len(p))) - np.pad(q, (0, n - len(q)))).sum())


@cache
def set_partitions(n: int) -> np.ndarray:
    """All set partitions of n points as a read-only (Bell(n), n) int array of labels:
    restricted growth strings (label of point 0 is 0, each new label is max + 1), in
    lexicographic order (the order of test_gibbs._partitions).  Bell(6) = 203."""
    if n < 1:
        raise ValueError("n must be >= 1")
    out = []

    def rec(a: list[int], m: int) -> None:
        if len(a) == n:
            out.append(list(a))
            return
        for v in range(m + 2):
            a.append(v)
            rec(a, max(m, v))
            a.pop()

    rec([0], 0)
    arr = np.array(out, dtype=np.int64)
    arr.flags.writeable = False
    return arr


def block_log_marginal(x_block: np.ndarray, hyp: Sequence[float], diag: bool | str) -> float:
    """log m(x_B): closed-form marginal likelihood of the points of one cluster (rows of
    ``x_block``; a 1-D array is n points of one feature) under
    Sigma ~ IW(nu0, psi0 I), mu | Sigma ~ N(m0 1, Sigma / kappa0)   (Murphy 2007, eq. 266),
    or, if ``diag``, the product over features of the d = 1 case (NIG, a0 = nu0/2, b0 = psi0/2),
    or, if ``diag == "spherical"``, Sigma = sigma^2 I with sigma^2 ~ IG(a0, b0) and
    mu | sigma^2 ~ N(m0 1, sigma^2 / kappa0 I): given sigma^2 the features are independent
    NIG-normal models, and integrating sigma^2 out gives
        m = (2 pi)^(-nd/2) (kappa0/kappa_n)^(d/2) Gamma(a_n)/Gamma(a0) b0^a0 / b_n^a_n,
        a_n = a0 + n d / 2,  b_n = b0 + 1/2 sum_d [S_dd + kappa0 n / kappa_n (xbar_d - m0)^2]
    (Murphy 2007, sec. 6, with the n d values as observations sharing sigma^2).
    An empty block gives 0."""
    m0, k0, nu0, psi0 = (float(v) for v in hyp)
    x = np.asarray(x_block, dtype=float)
    x = x[:, None] if x.ndim == 1 else x
    n, d = x.shape
    if n == 0:
        return 0.0
    if isinstance(diag, str):
        if diag != "spherical":
            raise ValueError(f"diag must be a bool or 'spherical', got {diag!r}")
        a0, b0 = nu0 / 2, psi0 / 2
        kn = k0 + n
        xb = x.mean(axis=0)
        an = a0 + n * d / 2
        bn = b0 + 0.5 * float(((x - xb) ** 2).sum() + k0 * n / kn * ((xb - m0) ** 2).sum())
        return float(
            -n * d / 2 * math.log(2 * math.pi)
            + d / 2 * math.log(k0 / kn)
            + gammaln(an)
            - gammaln(a0)
            + a0 * math.log(b0)
            - an * math.log(bn)
        )
    if diag and d > 1:
        return sum(block_log_marginal(x[:, [j]], hyp, False) for j in range(d))
    xb = x.mean(axis=0)
    s = (x - xb).T @ (x - xb)
    kn, nun = k0 + n, nu0 + n
    psin = psi0 * np.eye(d) + s + k0 * n / kn * np.outer(xb - m0, xb - m0)
    return float(
        -n * d / 2 * math.log(math.pi)
        + multigammaln(nun / 2, d)
        - multigammaln(nu0 / 2, d)
        + nu0 / 2 * d * math.log(psi0)
        - nun / 2 * np.linalg.slogdet(psin)[1]
        + d / 2 * math.log(k0 / kn)
    )


def partition_log_likelihoods(x: np.ndarray, hyp: Sequence[float] | None, diag: bool) -> np.ndarray:
    """sum_j log m(x_{B_j}) for every partition in ``set_partitions(len(x))`` (same order);
    ``hyp=None`` gives a flat likelihood (all zeros), so that posteriors are priors."""
    x = np.asarray(x, dtype=float)
    x = x[:, None] if x.ndim == 1 else x
    n = len(x)
    parts = set_partitions(n)
    if hyp is None:
        return np.zeros(len(parts))
    memo: dict[int, float] = {}
    out = np.empty(len(parts))
    for r, p in enumerate(parts):
        tot = 0.0
        for j in range(p.max() + 1):
            idx = np.flatnonzero(p == j)
            key = int(np.sum(1 << idx))
            if key not in memo:
                memo[key] = block_log_marginal(x[idx], hyp, diag)
            tot += memo[key]
        out[r] = tot
    return out


@cache
def size_classes(n: int) -> tuple[tuple[tuple[int, ...], ...], np.ndarray]:
    """The integer partitions of n (block-size multisets, sorted decreasingly) and the class
    of each set partition: every EPPF depends on a partition only through its class."""
    keys, cls = {}, []
    for p in set_partitions(n):
        sz = tuple(sorted(np.bincount(p).tolist(), reverse=True))
        cls.append(keys.setdefault(sz, len(keys)))
    out = np.array(cls)
    out.flags.writeable = False
    return tuple(keys), out


# --------------------------------------------------------------------------
# Log EPPFs (block sizes -> log prior probability of one set partition), vectorised over
# arrays of hyperparameter values by numpy broadcasting
# --------------------------------------------------------------------------


def log_rising(a, m: int):
    """log (a)_(m) = sum_{i<m} log(a + i) for an integer m >= 0 (stable for any a > 0, also
    a ~ 1e30 where gammaln(a + m) - gammaln(a) would cancel)."""
    a = np.asarray(a, dtype=float)
    out = np.zeros(a.shape)
    with np.errstate(divide="ignore"):
        for i in range(int(m)):
            out = out + np.log(a + i)
    return out


def _sizes(sizes) -> np.ndarray:
    s = np.asarray(sizes, dtype=np.int64).ravel()
    if s.size == 0 or np.any(s < 1):
        raise ValueError("block sizes must be positive integers")
    return s


def log_eppf_dp(sizes, concentration):
    """DP(alpha): k log alpha + log Gamma(alpha) - log Gamma(alpha + n) + sum_j log Gamma(n_j)."""
    s = _sizes(sizes)
    a = np.asarray(concentration, dtype=float)
    return len(s) * np.log(a) - log_rising(a, s.sum()) + gammaln(s).sum()


def log_eppf_pitman_yor(sizes, strength, discount):
    """Pitman-Yor(theta, sigma): sum_{i=1}^{k-1} log(theta + i sigma) - log (theta + 1)_(n-1)
    + sum_j log (1 - sigma)_(n_j - 1).  Valid for 0 <= sigma < 1, theta > -sigma; also for
    sigma < 0 with theta = -K sigma, which is the finite Dirichlet(-sigma) with K components
    (-inf for k > K)."""
    s = _sizes(sizes)
    th, sg = np.broadcast_arrays(np.asarray(strength, float), np.asarray(discount, float))
    out = -log_rising(th + 1.0, s.sum() - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(1, len(s)):
            v = th + i * sg
            out = out + np.where(v > 0, np.log(np.where(v > 0, v, 1.0)), -np.inf)
    for nj in s:
        out = out + log_rising(1.0 - sg, nj - 1)
    return out


def log_eppf_pitman_yor_truncated(sizes, strength, discount, truncation: int):
    """Pitman-Yor sticks truncated at T (v_t ~ Beta(1 - sigma, theta + t sigma), t < T,
    v_T = 1; the blocked sampler's model).  The labels are not exchangeable, so the
    probability of a set partition sums over the T!/(T-k)! injective maps of its k blocks to
    the T slots the probability of the labelled allocation,
        prod_{t<T} B(1 - sigma + n_t, theta + t sigma + m_t) / B(1 - sigma, theta + t sigma),
    with n_t the size of the block in slot t and m_t = sum_{u>t} n_u (-inf for k > T)."""
    s = _sizes(sizes)
    t_max = int(truncation)
    th, sg = np.broadcast_arrays(np.asarray(strength, float), np.asarray(discount, float))
    if len(s) > t_max:
        return np.full(th.shape, -np.inf)
    a = 1.0 - sg
    terms = []
    for slots in itertools.permutations(range(t_max), len(s)):
        cnt = np.zeros(t_max, dtype=np.int64)
        cnt[list(slots)] = s
        tail = np.concatenate([np.cumsum(cnt[::-1])[::-1][1:], [0]])
        v = np.zeros(th.shape)
        for t in range(t_max - 1):
            b = th + (t + 1) * sg
            v = v + betaln(a + cnt[t], b + tail[t]) - betaln(a, b)
        terms.append(v)
    return logsumexp(np.stack(terms), axis=0)


def log_falling(kk, k: int):
    """log K_(k) = log K!/(K-k)! for integer-valued K (array) and k >= 0; -inf where K < k."""
    kk = np.asarray(kk, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.where(kk >= k, gammaln(kk + 1) - gammaln(np.maximum(kk - k, 0) + 1), -np.inf)


def log_eppf_finite(sizes, concentration, n_components):
    """Finite symmetric Dirichlet(gamma) mixture with K components, unlabelled partition:
    log K!/(K-k)! - log (K gamma)_(n) + sum_j log (gamma)_(n_j); -inf if k > K.  Both gamma
    and K may be arrays (broadcast together)."""
    s = _sizes(sizes)
    g, kk = np.broadcast_arrays(np.asarray(concentration, float), np.asarray(n_components, float))
    out = log_falling(kk, len(s)) - log_rising(kk * g, s.sum())
    for nj in s:
        out = out + log_rising(g, nj)
    return out


def _k_axis(log_pk, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    lpk = np.asarray(log_pk, dtype=float).ravel()
    kk = np.arange(1, len(lpk) + 1, dtype=float)
    shape = (len(lpk),) + (1,) * ndim
    return kk.reshape(shape), lpk.reshape(shape)


def log_mfm_terms(sizes, concentration, log_pk, dynamic: bool = False):
    """log p(K) + log finite EPPF(sizes | gamma_K, K) for K = 1..K_max on axis 0 (the other
    axes broadcast ``concentration``), with gamma_K = gamma (static MFM) or alpha / K
    (dynamic MFM).  logsumexp over axis 0 is the MFM log EPPF."""
    c = np.asarray(concentration, dtype=float)
    kk, lpk = _k_axis(log_pk, c.ndim)
    g = c / kk if dynamic else c + 0 * kk
    return lpk + log_eppf_finite(sizes, g, kk)


def log_mfm_vn(n: int, k: int, concentration, log_pk):
    """Static MFM coefficient log V_n(k) = log sum_K K_(k) / (gamma K)_(n) p(K)
    (Miller & Harrison 2018, eq. 3.2)."""
    c = np.asarray(concentration, dtype=float)
    kk, lpk = _k_axis(log_pk, c.ndim)
    return logsumexp(lpk + log_falling(kk, k) - log_rising(kk * c, n), axis=0)


def log_eppf_mfm_static(sizes, concentration, log_pk):
    """Static MFM: log V_n(k) + sum_j log (gamma)_(n_j); ``log_pk`` over K = 1..K_max."""
    s = _sizes(sizes)
    out = log_mfm_vn(s.sum(), len(s), concentration, log_pk)
    for nj in s:
        out = out + log_rising(concentration, nj)
    return out


def log_eppf_mfm_dynamic(sizes, concentration, log_pk):
    """Dynamic MFM: log sum_K p(K) finite(sizes | alpha / K, K); ``log_pk`` over K = 1..K_max."""
    return logsumexp(log_mfm_terms(sizes, concentration, log_pk, dynamic=True), axis=0)


def log_k_given_partition(sizes, concentration, log_pk, dynamic: bool = False):
    """log p(K | partition, gamma) on axis 0 (K = 1..K_max), proportional to
    p(K) finite(gamma_K, K): it depends on the partition only through n, k and the sizes."""
    t = log_mfm_terms(sizes, concentration, log_pk, dynamic)
    return t - logsumexp(t, axis=0, keepdims=True)


def log_eppf(sizes, mixing: str, params: dict):
    """Dispatch on ``mixing`` (see the module docstring for the names of ``params``)."""
    if mixing == "dp":
        return log_eppf_dp(sizes, params["concentration"])
    if mixing == "pitman_yor":
        return log_eppf_pitman_yor(sizes, params["strength"], params["discount"])
    if mixing == "pitman_yor_truncated":
        return log_eppf_pitman_yor_truncated(
            sizes, params["strength"], params["discount"], params["truncation"]
        )
    if mixing == "finite":
        return log_eppf_finite(sizes, params["concentration"], params["n_components"])
    if mixing == "mfm_static":
        return log_eppf_mfm_static(sizes, params["concentration"], params["k_prior"])
    if mixing == "mfm_dynamic":
        return log_eppf_mfm_dynamic(sizes, params["concentration"], params["k_prior"])
    raise ValueError(f"unknown mixing {mixing!r}")


# --------------------------------------------------------------------------
# Priors on the number of components K of an MFM: log-pmf arrays over K = 1..K_max
# --------------------------------------------------------------------------


def _truncate(logp: np.ndarray, max_tail: float | None, what: str) -> np.ndarray:
    """Renormalise a log pmf over K = 1..K_max, after checking the mass dropped beyond K_max."""
    kept = math.fsum(np.exp(logp))
    if max_tail is not None and 1.0 - kept > max_tail:
        raise ValueError(f"{what}: mass {1 - kept:.3g} beyond K_max exceeds {max_tail:g}")
    return logp - math.log(kept)


def uniform_k(k_max: int) -> np.ndarray:
    """K ~ Uniform{1, ..., K_max}."""
    return np.full(int(k_max), -math.log(k_max))


def point_k(k: int, k_max: int | None = None) -> np.ndarray:
    """K = k with probability 1 (an MFM that is the finite mixture with k components)."""
    out = np.full(int(k_max or k), -np.inf)
    out[k - 1] = 0.0
    return out


def poisson_k(rate: float, k_max: int, max_tail: float | None = 1e-5) -> np.ndarray:
    """K - 1 ~ Poisson(rate): p(K) = rate^(K-1) e^-rate / (K-1)!, truncated to 1..K_max and
    renormalised (ValueError if the dropped mass exceeds ``max_tail``)."""
    j = np.arange(int(k_max), dtype=float)
    logp = j * math.log(rate) - rate - gammaln(j + 1)
    return _truncate(logp, max_tail, f"poisson_k({rate}, {k_max})")


def bnb_k(
    a_lambda: float, a_pi: float, b_pi: float, k_max: int, max_tail: float | None = 1e-5
) -> np.ndarray:
    """K - 1 ~ BNB(a_lambda, a_pi, b_pi) (beta-negative-binomial; Fruehwirth-Schnatter et al.
    2021 recommend (1, 4, 3)): for j = K - 1 = 0, 1, ...

        p(j) = Gamma(a_lambda + j) / (Gamma(a_lambda) j!)
               * B(a_lambda + a_pi, j + b_pi) / B(a_pi, b_pi),

    truncated to K = 1..K_max and renormalised (ValueError if the dropped mass exceeds
    ``max_tail``; the tail decays like K^-a_pi: BNB(1, 4, 3) drops 3.0e-6 at K_max = 100)."""
    j = np.arange(int(k_max), dtype=float)

    def lbeta(a, b):
        return gammaln(a) + gammaln(b) - gammaln(a + b)

    logp = (
        gammaln(a_lambda + j)
        - gammaln(a_lambda)
        - gammaln(j + 1)
        + lbeta(a_lambda + a_pi, j + b_pi)
        - lbeta(a_pi, b_pi)
    )
    return _truncate(logp, max_tail, f"bnb_k({a_lambda}, {a_pi}, {b_pi}, {k_max})")


def k_prior_from_spec(spec, k_max: int | None = None) -> np.ndarray:
    """A log-pmf array as is, or ("uniform",), ("poisson", rate), ("bnb", a_l, a_pi, b_pi),
    ("point", k) with ``k_max``."""
    if isinstance(spec, tuple | list) and spec and isinstance(spec[0], str):
        name, *args = spec
        if name == "point":
            return point_k(int(args[0]), k_max)
        if k_max is None:
            raise ValueError(f"k_prior {spec!r} needs k_max")
        makers: dict[str, Callable[..., np.ndarray]] = {
            "uniform": uniform_k,
            "poisson": poisson_k,
            "bnb": bnb_k,
        }
        return makers[name](*args, k_max)
    arr = np.asarray(spec, dtype=float).ravel()
    if k_max is not None and len(arr) != k_max:
        raise ValueError(f"k_prior has {len(arr)} entries but k_max = {k_max}")
    if not math.isclose(math.fsum(np.exp(arr)), 1.0, rel_tol=0, abs_tol=1e-9):
        raise ValueError("k_prior must be a normalised log pmf over K = 1..K_max")
    return arr


# --------------------------------------------------------------------------
# Grids for random hyperparameters
# --------------------------------------------------------------------------

DEFAULT_GRID_STEP = 0.1
DEFAULT_GRID_TAIL = 1e-14


def _moment_orders(spec) -> tuple[int, ...]:
    """Moments r of the parameter reported (and whose tails the range must cover)."""
    if spec[0] == "f":
        return tuple(r for r in (1, 2) if spec[2] > 2 * r)
    return (1, 2)


def _beta_lower_q(p: float, a: float, b: float) -> float:
    """The p-quantile of Beta(a, b) for small p: the leading term of the lower tail,
    P(B < q) ~ q^a / (a B(a, b)), when it is < 1e-3 (scipy's root finder can fail there),
    else scipy."""
    q = math.exp((math.log(p) + math.log(a) + gammaln(a) + gammaln(b) - gammaln(a + b)) / a)
    return q if q < 1e-3 else float(stats.beta.ppf(p, a, b))


def hyper_grid(spec, step: float = DEFAULT_GRID_STEP, tail: float = DEFAULT_GRID_TAIL):
    """Nodes (natural scale) and normalised log weights of the prior ``spec`` on a grid that
    is uniform in t = log x (gamma, f) or t = logit x (beta), the weights being the prior
    density in t (the rectangle rule).  Range: prior mass < ``tail`` beyond each end, and
    E[x^r; beyond the upper end] < ``tail`` for the reported moments r = 1, 2 (when finite).
    Step: ``step`` times min(1, sd of t under the prior)."""
    name, a, b = spec[0], float(spec[1]), float(spec[2])
    if a <= 0 or b <= 0:
        raise ValueError(f"bad prior {spec!r}")
    if name == "gamma":
        lo = math.log(stats.gamma.ppf(tail, a, scale=1 / b))
        his = [stats.gamma.isf(tail, a, scale=1 / b)]
        for r in _moment_orders(spec):
            c = math.exp(gammaln(a + r) - gammaln(a) - r * math.log(b))
            his.append(stats.gamma.isf(min(tail / c, 0.5), a + r, scale=1 / b))
        hi = math.log(max(his))
        sd = math.sqrt(polygamma(1, a))
    elif name == "f":
        # x = (d2/d1) B/(1-B), B ~ Beta(d1/2, d2/2); E[x^r; x > c] is (d2/d1)^r
        # B(d1/2+r, d2/2-r)/B(d1/2, d2/2) times P(1 - B' < q), 1 - B' ~ Beta(d2/2-r, d1/2+r)
        ql = _beta_lower_q(tail, a / 2, b / 2)
        lo = math.log(b / a) + math.log(ql) - math.log1p(-ql)
        his = []
        for r in (0, *_moment_orders(spec)):
            p, q = a / 2 + r, b / 2 - r
            lc = r * math.log(b / a) + gammaln(p) + gammaln(q) - gammaln(a / 2) - gammaln(b / 2)
            qq = _beta_lower_q(min(tail / math.exp(lc), 0.5), q, p)
            his.append(math.log(b / a) + math.log1p(-qq) - math.log(qq))
        hi = max(his)
        sd = math.sqrt(polygamma(1, a / 2) + polygamma(1, b / 2))
    elif name == "beta":
        ql, qh = _beta_lower_q(tail, a, b), _beta_lower_q(tail, b, a)
        lo, hi = math.log(ql) - math.log1p(-ql), math.log1p(-qh) - math.log(qh)
        sd = math.sqrt(polygamma(1, a) + polygamma(1, b))
    else:
        raise ValueError(f"unknown prior {spec!r}")
    h = step * min(1.0, sd)
    t = np.linspace(lo, hi, int(math.ceil((hi - lo) / h)) + 1)
    return _nodes_weights(spec, t)


def _nodes_weights(spec, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    name, a, b = spec[0], float(spec[1]), float(spec[2])
    if name == "gamma":
        x, lw = np.exp(t), a * t - b * np.exp(t)
    elif name == "f":
        x = np.exp(t)
        lw = a / 2 * t - (a + b) / 2 * np.logaddexp(0.0, math.log(a / b) + t)
    else:  # beta on the logit scale: x^a (1 - x)^b; nodes kept inside (0, 1) in floating point
        x = np.clip(expit(t), np.nextafter(0.0, 1.0), np.nextafter(1.0, 0.0))
        lw = -a * np.logaddexp(0.0, -t) - b * np.logaddexp(0.0, t)
    return x, lw - logsumexp(lw)


def grid_from_nodes(spec, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log weights for user nodes (natural scale) assumed uniform in log x (gamma, f) or
    logit x (beta), e.g. np.exp(np.linspace(-12, 5, 3000)) as in tests/test_gibbs.py."""
    nodes = np.asarray(nodes, dtype=float)
    t = np.log(nodes) if spec[0] != "beta" else np.log(nodes) - np.log1p(-nodes)
    return _nodes_weights(spec, t)


# --------------------------------------------------------------------------
# The exact posterior
# --------------------------------------------------------------------------

_PARAMS = {
    "dp": ("concentration",),
    "pitman_yor": ("strength", "discount"),
    "pitman_yor_truncated": ("strength", "discount", "truncation"),
    "finite": ("concentration", "n_components"),
    "mfm_static": ("concentration", "k_prior"),
    "mfm_dynamic": ("concentration", "k_prior"),
}
_RANDOMISABLE = {"concentration", "strength", "discount"}


def exact_posterior(
    x,
    hyp: Sequence[float] | None,
    diag: bool,
    mixing: str,
    params: dict,
    hyper_priors: dict | None = None,
    k_max: int | None = None,
    *,
    grid_step: float = DEFAULT_GRID_STEP,
    grid_tail: float = DEFAULT_GRID_TAIL,
    grids: dict | None = None,
    partition_ll: np.ndarray | None = None,
) -> dict:
    """Exact posterior of a Gaussian mixture by enumerating all set partitions of x.

    x: (N, d) data (a 1-D array is N points of one feature); with ``hyp=None`` the likelihood
        is flat and x may be the integer N (the result is then the prior for N points).
    hyp: (m0, kappa0, nu0, psi0), see ``block_log_marginal``; diag: NIG per feature.
    mixing, params: see the module docstring; a parameter named in ``hyper_priors`` is random
        and its ``params`` entry is ignored (may be absent).  ``params["k_prior"]`` (MFMs) is a
        log pmf over K = 1..K_max or a spec tuple (then ``k_max`` is required).
    hyper_priors: {"concentration" | "strength" | "discount": ("gamma", shape, rate) |
        ("f", df1, df2) | ("beta", a, b)}; "strength" (Pitman-Yor) puts the prior on
        theta + sigma; "discount" takes a beta prior (and then theta must be >= 0 if fixed).
    grid_step, grid_tail: see ``hyper_grid``; grids: {name: nodes} overrides a grid.
    partition_ll: the kernel side log L(partition) over ``set_partitions(N)`` when it is not
        the conjugate product of ``partition_log_likelihoods`` (e.g. ``exact_semiconj``);
        ``hyp`` is then ignored.

    Returns a dict:
        n, kplus_pmf (k = 0..N; entry 0 is 0), log_evidence (log p(x)),
        partition_pmf (over ``set_partitions(N)``), coclustering ((N, N): P(z_i = z_j | x)),
        for MFMs k_pmf (over K = 1..K_max, entry K - 1) and k_values,
        mean, second_moment (dicts over the random hyperparameters; for the Pitman-Yor strength
        these are moments of theta itself; inf where the prior moment is infinite), mean_log
        (E[log x | data] for the random positive hyperparameters other than the PY strength),
        hyper_grid ({name: (nodes, posterior pmf)}: marginal on the grid of the prior variable,
        theta + sigma for the PY strength).
    """
    if mixing not in _PARAMS:
        raise ValueError(f"unknown mixing {mixing!r}")
    hyper_priors = dict(hyper_priors or {})
    grids = dict(grids or {})
    for name in hyper_priors:
        if name not in _PARAMS[mixing] or name not in _RANDOMISABLE:
            raise ValueError(f"{mixing}: {name!r} cannot be random")
    params = dict(params)
    for name in _PARAMS[mixing]:
        if name not in hyper_priors and name not in params:
            raise ValueError(f"{mixing}: missing parameter {name!r}")
    if isinstance(x, int | np.integer):
        if hyp is not None:
            raise ValueError("an integer x needs hyp=None (flat likelihood)")
        x = np.zeros((int(x), 1))
    x = np.asarray(x, dtype=float)
    x = x[:, None] if x.ndim == 1 else x
    n = len(x)

    # Kernel side: log likelihood of each set partition, summed within size classes
    ll = partition_log_likelihoods(x, hyp, diag) if partition_ll is None else partition_ll
    classes, cls = size_classes(n)
    log_l = np.array([logsumexp(ll[cls == c]) for c in range(len(classes))])

    # Hyperparameter grid: one axis per random hyperparameter
    names = [nm for nm in _PARAMS[mixing] if nm in hyper_priors]
    nodes, log_w = {}, np.zeros(())
    for ax, nm in enumerate(names):
        spec = tuple(hyper_priors[nm])
        if nm == "discount" and spec[0] != "beta":
            raise ValueError("the discount takes a ('beta', a, b) prior")
        if nm != "discount" and spec[0] not in ("gamma", "f"):
            raise ValueError(f"{nm!r} takes a ('gamma', shape, rate) or ('f', df1, df2) prior")
        if nm in grids:
            v, lw = grid_from_nodes(spec, grids[nm])
        else:
            v, lw = hyper_grid(spec, grid_step, grid_tail)
        shape = [1] * len(names)
        shape[ax] = len(v)
        nodes[nm] = v.reshape(shape)
        log_w = log_w + lw.reshape(shape)
    grid_shape = log_w.shape
    pv = {nm: (nodes[nm] if nm in nodes else params[nm]) for nm in _PARAMS[mixing]}
    if mixing in ("pitman_yor", "pitman_yor_truncated"):
        sg = np.asarray(pv["discount"], dtype=float)
        if "strength" in nodes:
            pv["strength"] = nodes["strength"] - sg  # the prior is on theta + sigma
        th = np.asarray(pv["strength"], dtype=float)
        if np.any(sg < 0) or np.any(sg >= 1) or np.any(th <= -sg):
            raise ValueError("Pitman-Yor needs 0 <= discount < 1 and strength > -discount")
    if mixing in ("mfm_static", "mfm_dynamic"):
        pv["k_prior"] = k_prior_from_spec(pv["k_prior"], k_max)
    elif mixing == "finite" and int(pv["n_components"]) != pv["n_components"]:
        raise ValueError("n_components must be an integer")

    # Joint over (size class, grid): log L_c + log EPPF(c | eta) + log w(eta)
    grid_axes = tuple(range(1, 1 + len(grid_shape)))
    log_q = np.full(grid_shape, -np.inf)  # log p(x, eta), summed over partitions
    log_a = np.empty(len(classes))  # log p(x, class)
    log_k = None  # MFM: log p(x, K)
    with np.errstate(divide="ignore", invalid="ignore"):
        for c, sizes in enumerate(classes):
            if mixing in ("mfm_static", "mfm_dynamic"):
                terms = log_mfm_terms(
                    sizes, pv["concentration"], pv["k_prior"], mixing == "mfm_dynamic"
                )
                terms = terms + (log_l[c] + log_w)
                lk = logsumexp(terms, axis=grid_axes) if grid_axes else terms
                log_k = lk if log_k is None else np.logaddexp(log_k, lk)
                joint = logsumexp(terms, axis=0)
            else:
                joint = log_eppf(sizes, mixing, pv) + log_l[c] + log_w
            joint = np.broadcast_to(joint, grid_shape)
            log_a[c] = logsumexp(joint)
            log_q = np.logaddexp(log_q, joint)
    log_z = float(logsumexp(log_a))

    kplus = np.zeros(n + 1)
    for c, sizes in enumerate(classes):
        kplus[len(sizes)] += math.exp(log_a[c] - log_z)
    pp = np.exp(ll - log_l[cls] + log_a[cls] - log_z)
    parts = set_partitions(n)
    same = parts[:, :, None] == parts[:, None, :]
    out: dict = {
        "n": n,
        "kplus_pmf": kplus,
        "log_evidence": log_z,
        "partition_pmf": pp,
        "coclustering": np.tensordot(pp, same, axes=1),
        "mean": {},
        "second_moment": {},
        "mean_log": {},
        "hyper_grid": {},
    }
    if log_k is not None:
        out["k_pmf"] = np.exp(log_k - log_z)
        out["k_values"] = np.arange(1, len(log_k) + 1)
    q = np.exp(log_q - log_z)
    for ax, nm in enumerate(names):
        v = np.broadcast_to(np.asarray(pv[nm], dtype=float), grid_shape)
        orders = _moment_orders(tuple(hyper_priors[nm]))
        out["mean"][nm] = float((q * v).sum()) if 1 in orders else math.inf
        out["second_moment"][nm] = float((q * v * v).sum()) if 2 in orders else math.inf
        if not (mixing.startswith("pitman_yor") and nm == "strength"):
            out["mean_log"][nm] = float((q * np.log(v)).sum())
        other = tuple(i for i in range(len(names)) if i != ax)
        out["hyper_grid"][nm] = (nodes[nm].ravel(), q.sum(axis=other) if other else q)
    return out


def prior_kplus_pmf(n: int, mixing: str, params: dict, hyper_priors=None, k_max=None, **kw):
    """The prior pmf of K+ for n points (k = 0..n): ``exact_posterior`` with a flat likelihood."""
    return exact_posterior(n, None, False, mixing, params, hyper_priors, k_max, **kw)["kplus_pmf"]
