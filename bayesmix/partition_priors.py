"""Exact prior of K+ (occupied clusters among n observations) for Gibbs-type partition priors.

Every mixing here has an EPPF of Gibbs type (Gnedin & Pitman 2006, "Exchangeable Gibbs
partitions and Stirling triangles"), or is a mixture of such:

    p(n_1, ..., n_k) = V(n, k) prod_j (1 - sigma)_(n_j - 1),   (a)_(m) = a (a+1) ... (a+m-1),

so that P(K+ = k) = V(n, k) S_sigma(n, k), where S_sigma(n, k) = sum over the set partitions
of {1..n} into k blocks of prod_j (1 - sigma)_(n_j - 1) obeys (add element n+1 to one of the
k blocks, factor n_j - sigma, or open a new block, factor 1)

    S(n+1, k) = (n - k sigma) S(n, k) + S(n, k-1),   S(1, 1) = 1                      (*)

(sigma = 0: unsigned Stirling numbers of the first kind; sigma < 0 is a finite Dirichlet).

* Pitman-Yor(theta, sigma), 0 <= sigma < 1, theta > -sigma (Pitman 2006, "Combinatorial
  Stochastic Processes", eq. 3.12): V(n, k) = prod_{i=1}^{k-1} (theta + i sigma) / (theta+1)_(n-1).
  S_sigma(n, k) = C(n, k; sigma) / sigma^k (generalised factorial coefficients).
* Static MFM (Miller & Harrison 2018, JASA 113:340): K ~ p(K), w | K ~ Dir(gamma, .., gamma),
  V_n(t) = sum_{k >= t} k_(t) / (gamma k)^(n) p(k) and prod_j (gamma)^(n_j) = gamma^t prod_j
  (1 + gamma)_(n_j - 1): sigma = -gamma.
* Dynamic MFM (Fruehwirth-Schnatter, Malsiner-Walli & Gruen 2021, Bayesian Analysis 16(4);
  R package fipp, Greve et al. 2022, ANZJS): w | K ~ Dir(alpha/K, .., alpha/K).

Numerics. All pmfs are over k = 1..n (entry k - 1; zeros where impossible or below ~1e-300).
Fixed parameters use a Polya-urn forward recursion in probability space (convex
combinations: no cancellation, no overflow). Where many parameter values are needed (a
quadrature over theta, gamma), the coefficients S of (*) are computed once in log space
(logaddexp) and combined with V per node. Gamma hyperpriors are integrated with
``bayesmix.numerics.quadrature.log_scale_expectation`` (trapezoid in log x, ~1e-10 absolute), an F hyperprior
with the same rule, a Beta hyperprior on the discount with Gauss-Jacobi quadrature (node count
raised by half until two estimates agree to ~1e-10). For n > ``MFM_FAST_N`` the MFMs use
``bayesmix.numerics.kplus_fast`` instead (the table count of a Chinese restaurant by one FFT
and its occupancy of K atoms, summed over K; cost independent of n). Hyperprior specs are tuples:
``("gamma", shape, rate)`` (rate = inverse scale), ``("beta", a, b)``, ``("f", df1, df2)``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import integrate, special, stats

from bayesmix.errors import InputError
from bayesmix.numerics import kplus_fast
from bayesmix.numerics.quadrature import log_scale_expectation
from bayesmix.priors import (
    _TAIL_MASS,
    _clean,
    _count,
    _dp_pmf_grid,
    _gamma_mixture,
    _gamma_range,
    _harmonic,
    _positive,
    _solve_log,
    calibrate_alpha,
    dp_gamma_k_pmf,
    dp_k_pmf,
    expected_k_dp,
    finite_gamma_k_pmf,
    finite_k_pmf,
)

K_TAIL = 1e-12  # default mass of p(K) neglected beyond k_max, and relative tail of V_n(t)
_FLUSH = 1e-300  # urn probabilities below this are set to 0 (keeps the band narrow)
_V_K_CAP = 1 << 22  # largest K summed for V_n(t) under an infinite-support p(K)
_CHUNK = 4_000_000  # elements per temporary array in the vectorised log-space sums
MFM_FAST_N = 200  # above this n the MFMs' priors of K+ come from ``numerics.kplus_fast``


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise InputError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise InputError(f"{name} must be finite, got {value!r}")
    return float(value)


def _lse(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """log sum exp along ``axis``; -inf where every entry is -inf."""
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(a - m), axis=axis))
    return out + np.squeeze(m, axis=axis)


def _delta1(n: int) -> np.ndarray:
    f0 = np.zeros(n)
    f0[0] = 1.0
    return f0


def _pad(pmf: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n)
    out[: min(len(pmf), n)] = pmf[:n]
    return out


def _hyper(name: str, spec: Any, families: tuple[str, ...]) -> tuple[str, float, float]:
    """Check a hyperprior tuple such as ("gamma", shape, rate)."""
    if (
        not isinstance(spec, (tuple, list))
        or len(spec) != 3
        or not isinstance(spec[0], str)
        or spec[0].lower() not in families
    ):
        shown = " or ".join(f'("{f}", p1, p2)' for f in families)
        raise InputError(f"{name} must be {shown}, got {spec!r}")
    return spec[0].lower(), _positive(f"{name}[1]", spec[1]), _positive(f"{name}[2]", spec[2])


def _beta_mixture(
    fn: Callable[[np.ndarray], np.ndarray], a: float, b: float, tol: float = 1e-10
) -> np.ndarray:
    """E[fn(S)] for S ~ Beta(a, b) by Gauss-Jacobi quadrature (weight s^(a-1) (1-s)^(b-1)
    exactly, so endpoint singularities of the density cost nothing), 12, 18, 27, ... nodes
    (x 1.5) until two successive estimates agree to ``tol`` (max abs; the error falls
    geometrically in the node count, so the later estimate is far better than that). fn maps
    a node array to rows."""
    previous = None
    change = math.inf
    for m in (12, 18, 27, 40, 60, 90, 135, 200, 300, 450, 675):
        x, w = special.roots_jacobi(m, b - 1.0, a - 1.0)
        s = np.clip(0.5 * (1.0 + x), 0.0, np.nextafter(1.0, 0.0))
        estimate = np.einsum("i,ij->j", w / w.sum(), fn(s))
        if previous is not None:
            change = float(np.max(np.abs(estimate - previous)))
            if change < tol:
                return estimate
        previous = estimate
    warnings.warn(
        f"Beta quadrature stopped at accuracy ~{change:.1e}", RuntimeWarning, stacklevel=3
    )
    return previous


# --------------------------------------------------------------------------
# The coefficients S_sigma(n, k) of (*), in log space
# --------------------------------------------------------------------------


def log_gibbs_coefficients(
    n: int, sigma: float | np.ndarray, k_top: int | None = None
) -> np.ndarray:
    """log S_sigma(n, k), k = 0..k_top (default n): the sum over set partitions of {1..n} into
    k blocks of prod_j (1 - sigma)_(n_j - 1), for sigma < 1 (negative allowed).

    Recursion (*) S(m+1, k) = (m - k sigma) S(m, k) + S(m, k-1) in log space; truncating at
    k_top is exact (row k only feeds rows >= k). sigma = 0: log |s(n, k)|; sigma = -gamma:
    S_{-gamma}(n, k) = gamma^-k sum_partitions prod_j (gamma)^(n_j). An array of sigmas gives
    one row each. O(n k_top) per sigma.
    """
    sig = np.atleast_1d(np.asarray(sigma, dtype=float))
    if np.any(sig >= 1.0):
        raise InputError(f"sigma must be < 1, got {sigma!r}")
    top = n if k_top is None else max(1, min(int(k_top), n))
    out = np.full((len(sig), top + 1), -np.inf)
    out[:, 1] = 0.0
    k = np.arange(1, top + 1, dtype=float)
    for m in range(1, n):
        hi = min(m, top)
        stay = np.log(m - k[:hi] * sig[:, None]) + out[:, 1 : hi + 1]
        new = np.logaddexp(stay, out[:, 0:hi])
        if m + 1 <= top:
            out[:, m + 1] = out[:, m]
        out[:, 1 : hi + 1] = new
    return out[0] if np.ndim(sigma) == 0 else out


# --------------------------------------------------------------------------
# Pitman-Yor
# --------------------------------------------------------------------------


def _check_py(strength: float, discount: float) -> tuple[float, float]:
    theta, sigma = _number("strength", strength), _number("discount", discount)
    if not 0.0 <= sigma < 1.0:
        raise InputError(f"discount must be in [0, 1), got {discount!r}")
    if not theta > -sigma:
        raise InputError(f"strength must be > -discount = {-sigma:g}, got {strength!r}")
    return theta, sigma


def _py_urn(n: int, theta: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """P(K+ = k | theta_r, sigma_r), rows r, k = 1..n, by the urn: with k tables after m
    customers, customer m+1 opens a new one with probability (theta + k sigma)/(theta + m)
    (Pitman 2006, ch. 3). Banded over the union of the rows' non-negligible k."""
    th, sg = np.broadcast_arrays(
        np.asarray(theta, dtype=float).reshape(-1, 1), np.asarray(sigma, dtype=float).reshape(-1, 1)
    )
    f = np.zeros((th.shape[0], n + 1))
    f[:, 1] = 1.0
    kk = np.arange(n + 1, dtype=float)
    lo, top = 1, 1
    for m in range(1, n):
        k = kk[lo : top + 1]
        denom = th + m
        band = f[:, lo : top + 1].copy()
        new = np.zeros((f.shape[0], top + 2 - lo))
        new[:, :-1] = band * ((m - k * sg) / denom)
        new[:, 1:] += band * ((th + k * sg) / denom)
        new[new < _FLUSH] = 0.0
        f[:, lo : top + 2] = new
        if top + 1 <= n and f[:, top + 1].any():
            top += 1
        while lo < top and not f[:, lo].any():
            lo += 1
    return f[:, 1:]


def _py_pmf_from_coefficients(
    n: int, log_s: np.ndarray, sigma: float, thetas: np.ndarray
) -> np.ndarray:
    """P(K+ = k | theta) = V(n, k) S_sigma(n, k) for each theta (rows), k = 1..n, from
    log S_sigma(n, k), k = 0..k_top (zero above k_top)."""
    k_top = len(log_s) - 1
    out = np.zeros((len(thetas), n))
    i_num = np.arange(1, k_top, dtype=float)  # i = 1..k_top-1 in prod (theta + i sigma)
    i_den = np.arange(1, n, dtype=float)  # i = 1..n-1 in (theta + 1)_(n-1)
    k = np.arange(1, k_top + 1, dtype=float)
    step = max(1, _CHUNK // max(n, 1))
    for s in range(0, len(thetas), step):
        th = np.asarray(thetas[s : s + step], dtype=float)[:, None]
        big = th[:, 0] > 1.0
        num = np.zeros((len(th), k_top))
        den = np.zeros(len(th))
        # theta > 1: factor out log theta ((k - n) log theta), the rest is log1p: no cancellation
        if big.any():
            tb = th[big]
            lt = np.log(tb)
            num[big, 1:] = np.cumsum(np.log1p(i_num * sigma / tb), axis=1)
            num[big] += (k - n) * lt
            den[big] = np.sum(np.log1p(i_den / tb), axis=1)
        if (~big).any():
            ts = th[~big]
            num[~big, 1:] = np.cumsum(np.log(ts + i_num * sigma), axis=1)
            den[~big] = np.sum(np.log(ts + i_den), axis=1)
        out[s : s + step, :k_top] = np.exp(log_s[1:] + num - den[:, None])
    return out


def _py_strength_mixture(n: int, sigma: float, shape: float, rate: float, tol: float) -> np.ndarray:
    """P(K+ = k) with theta + sigma ~ Gamma(shape, rate) and sigma fixed."""
    f0 = _delta1(n)
    if n == 1:
        return f0
    # P(K+ > 1 | theta) <= (theta + sigma) sum_{m=1}^{n-1} 1/(m - sigma): the first customer
    # is alone until someone opens table 2 with probability (theta + sigma)/(theta + m)
    h_sigma = float(np.sum(1.0 / (np.arange(1, n) - sigma)))
    small = _TAIL_MASS / h_sigma
    x_hi = float(special.gammainccinv(shape, _TAIL_MASS)) / rate
    # k_top: above it P(K+ = k | theta) < 1e-300 for every theta <= x_hi - sigma (K+ grows
    # stochastically with theta), so S is only needed up to there
    top_pmf = _py_urn(n, np.array([max(x_hi - sigma, 1e-300 - sigma)]), np.array([sigma]))[0]
    nz = np.nonzero(top_pmf)[0]
    k_top = min(n, (int(nz[-1]) + 1 if len(nz) else 1) + 2)
    log_s = log_gibbs_coefficients(n, sigma, k_top)

    def fn(x: np.ndarray) -> np.ndarray:
        return _py_pmf_from_coefficients(n, log_s, sigma, x - sigma)

    return _clean(_gamma_mixture(fn, f0, shape, rate, small, tol))


def py_kplus_pmf(
    n: int,
    strength: float | None = None,
    discount: float | None = None,
    *,
    strength_prior: tuple[str, float, float] | None = None,
    discount_prior: tuple[str, float, float] | None = None,
    tol: float = 1e-10,
) -> np.ndarray:
    """P(K+ = k), k = 1..n, under Pitman-Yor(strength theta, discount sigma).

    P(K+ = k) = prod_{i=1}^{k-1} (theta + i sigma) / (theta + 1)_(n-1) * C(n, k; sigma) / sigma^k
    (Pitman 2006, eq. 3.12); sigma = 0 is DP(theta) exactly (Antoniak 1974).

    * theta, sigma fixed (theta > -sigma, 0 <= sigma < 1; ``discount`` None means 0): urn
      recursion P(new table at customer m+1 | k tables) = (theta + k sigma)/(theta + m).
    * ``strength_prior=("gamma", shape, rate)``: theta + sigma ~ Gamma(shape, rate) (the prior
      sits on theta + sigma > 0 so that theta > -sigma), ``strength`` left out.
    * ``discount_prior=("beta", a, b)``: sigma ~ Beta(a, b), ``discount`` left out; a fixed
      strength must then be >= 0. With both priors, theta + sigma and sigma are independent.

    Random hyperparameters are integrated to ~``tol`` (absolute, per entry). Cost: fixed
    O(n * band); Gamma strength O(n k_top) once plus O(n) per node; a Beta discount repeats
    that per Gauss-Jacobi node (12 to 675), so n = 10^4 with both random takes minutes.
    """
    n = _count("n", n)
    if (strength is None) == (strength_prior is None):
        raise InputError("give either strength, or strength_prior=('gamma', shape, rate)")
    if discount is not None and discount_prior is not None:
        raise InputError("give either discount or discount_prior=('beta', a, b), not both")
    sprior = (
        None if strength_prior is None else _hyper("strength_prior", strength_prior, ("gamma",))
    )
    dprior = None if discount_prior is None else _hyper("discount_prior", discount_prior, ("beta",))
    if dprior is None:
        sigma = 0.0 if discount is None else _number("discount", discount)
        if sprior is None:
            theta, sigma = _check_py(strength, sigma)
            return _py_urn(n, np.array([theta]), np.array([sigma]))[0]
        _check_py(1.0, sigma)
        return _py_strength_mixture(n, sigma, sprior[1], sprior[2], tol)
    _, a, b = dprior
    if sprior is None:
        theta = _number("strength", strength)
        if theta < 0:
            raise InputError(
                "with a random discount (sigma in (0, 1)) the strength must be >= 0 so that "
                f"strength > -discount for every discount, got {strength!r}"
            )
        return _clean(_beta_mixture(lambda s: _py_urn(n, np.array([theta]), s), a, b, tol))

    def per_sigma(s: np.ndarray) -> np.ndarray:
        return np.array([_py_strength_mixture(n, float(v), sprior[1], sprior[2], tol) for v in s])

    return _clean(_beta_mixture(per_sigma, a, b, tol))


def py_expected_kplus(n: int, strength: float, discount: float) -> float:
    """E[K+] under Pitman-Yor(theta, sigma): (theta/sigma) [(theta+sigma)_(n) / (theta)_(n) - 1]
    for sigma > 0 (Pitman 2006, ch. 3), sum_{i<n} theta/(theta + i) for sigma = 0 (DP).

    Evaluated as P + theta (P - 1)/sigma with log P = sum_{i=1}^{n-1} log1p(sigma/(theta + i))
    (the same number; valid for -sigma < theta <= 0 too, and continuous as sigma -> 0).
    """
    n = _count("n", n)
    theta, sigma = _check_py(strength, discount)
    if sigma == 0.0:
        return float(expected_k_dp(n, theta))
    log_p = float(np.sum(np.log1p(sigma / (theta + np.arange(1, n)))))
    return math.exp(log_p) + theta * math.expm1(log_p) / sigma


def calibrate_py_strength(n: int, expected_k: float, discount: float) -> float:
    """Strength theta with E[K+] = expected_k under Pitman-Yor(theta, sigma = discount)
    (the role of BNPmix's ``PYcalibrate``).

    E[K+] increases in theta from 1 (theta -> -sigma: no second table ever opens) to n
    (theta -> inf), so every expected_k in (1, n) is met exactly
    (brentq on log(theta + sigma), 1e-13); one outside raises InputError (a ValueError).
    sigma = 0 is ``bayesmix.priors.calibrate_alpha``.
    """
    n = _count("n", n)
    _check_py(1.0, discount)
    sigma = float(discount)
    e = _number("expected_k", expected_k)
    if not 1.0 < e < n:
        raise InputError(
            f"expected_k must be in (1, n) = (1, {n}) for a Pitman-Yor prior with n = {n}: "
            "E[K+] tends to 1 as strength -> -discount and to n as strength -> infinity; "
            f"got {expected_k!r}"
        )
    if sigma == 0.0:
        return calibrate_alpha(n, e)

    def fun(u: float) -> float:
        return py_expected_kplus(n, math.exp(u) - sigma, sigma) - e

    u = _solve_log(fun, 0.0)
    return math.exp(u) - sigma


# --------------------------------------------------------------------------
# Priors on the number of components K
# --------------------------------------------------------------------------


_K_FAMILIES = {
    "uniform": ("max",),
    "point": ("k",),
    "poisson": ("rate",),
    "geometric": ("p",),
    "negbin": ("r", "p"),
    "bnb": ("a_lambda", "a_pi", "b_pi"),
}


@dataclass(frozen=True, eq=False)
class KPrior:
    """A prior on K in {1, 2, ...}; j = K - 1 in the formulas.

    * ``uniform`` {"max": M}: K ~ U{1..M}.
    * ``point`` {"k": K0}: K = K0 (the MFM is then the finite mixture with K0 components).
    * ``poisson`` {"rate": lam}: j ~ Poisson(lam), p(K) = lam^j e^-lam / j!.
    * ``geometric`` {"p": p}: j ~ Geometric(p) on {0, 1, ..}, p(K) = p (1 - p)^j.
    * ``negbin`` {"r": r, "p": p}: j ~ NegBin(r, p), failures before the r-th success with
      success probability p: p(K) = Gamma(j + r)/(Gamma(r) j!) p^r (1 - p)^j, E[j] = r(1-p)/p
      (scipy.stats.nbinom(r, p)).
    * ``bnb`` {"a_lambda", "a_pi", "b_pi"}: j ~ BNB(a_lambda, a_pi, b_pi), beta-negative-binomial
      (NegBin(a_lambda, pi) with pi ~ Beta(a_pi, b_pi)): p(K) = Gamma(a_lambda + j) /
      (Gamma(a_lambda) j!) B(a_lambda + a_pi, j + b_pi) / B(a_pi, b_pi); tail ~ K^-a_pi.
      Fruehwirth-Schnatter, Malsiner-Walli & Gruen (2021) recommend BNB(1, 4, 3).
    """

    family: str
    params: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        fam = str(self.family).lower()
        if fam not in _K_FAMILIES:
            raise InputError(f"unknown K prior {self.family!r}; use one of {sorted(_K_FAMILIES)}")
        names = _K_FAMILIES[fam]
        given = dict(self.params or {})
        if set(given) != set(names):
            raise InputError(f"K prior {fam!r} takes parameters {list(names)}, got {sorted(given)}")
        vals = {}
        for key in names:
            if fam in ("uniform", "point"):
                vals[key] = _count(f"{fam}.{key}", given[key])
            else:
                vals[key] = _positive(f"{fam}.{key}", given[key])
        if fam in ("geometric", "negbin") and vals["p"] > 1.0:
            raise InputError(f"{fam}.p must be in (0, 1], got {vals['p']!r}")
        object.__setattr__(self, "family", fam)
        object.__setattr__(self, "params", vals)

    @property
    def support_max(self) -> int | None:
        """The largest K with p(K) > 0, or None for an unbounded support."""
        if self.family == "uniform":
            return self.params["max"]
        if self.family == "point":
            return self.params["k"]
        if self.family in ("geometric", "negbin") and self.params["p"] == 1.0:
            return 1
        return None

    def log_pmf(self, k: Any) -> np.ndarray:
        """log p(K = k) for integer k (array); -inf outside the support."""
        k = np.asarray(k, dtype=float)
        j = k - 1.0
        p = self.params
        out = np.full(k.shape, -np.inf)
        ok = (k >= 1) & (k == np.floor(k))
        if self.family == "uniform":
            out[ok & (k <= p["max"])] = -math.log(p["max"])
            return out
        if self.family == "point":
            out[ok & (k == p["k"])] = 0.0
            return out
        jj = j[ok]
        if self.family == "poisson":
            out[ok] = jj * math.log(p["rate"]) - p["rate"] - special.gammaln(jj + 1.0)
        elif self.family in ("geometric", "negbin"):
            r = 1.0 if self.family == "geometric" else p["r"]
            if p["p"] == 1.0:
                out[ok & (k == 1)] = 0.0
                return out
            out[ok] = (
                special.gammaln(jj + r)
                - special.gammaln(r)
                - special.gammaln(jj + 1.0)
                + r * math.log(p["p"])
                + jj * math.log1p(-p["p"])
            )
        else:  # bnb
            al, ap, bp = p["a_lambda"], p["a_pi"], p["b_pi"]
            out[ok] = (
                special.gammaln(al + jj)
                - special.gammaln(al)
                - special.gammaln(jj + 1.0)
                + special.betaln(al + ap, jj + bp)
                - special.betaln(ap, bp)
            )
        return out

    def log_sf(self, k: Any) -> np.ndarray:
        """log P(K > k) for integer k >= 0 (array).

        Exact (scipy's regularised incomplete gamma / beta functions) while that is above
        1e-280; beyond, the upper bound p(K = k+1) / (1 - rho) with rho >= every later pmf
        ratio (Poisson: lam/(k+1); negbin: (1-p) max(1, (k+r)/(k+1))), tight to a factor
        1/(1 - rho) -> 1. BNB: the Beta mixture of NegBin tails, by adaptive quadrature
        (relative ~1e-10).
        """
        k = np.asarray(k, dtype=float)
        out = np.zeros(k.shape)
        pos = k >= 1
        kk = np.floor(k[pos])
        p = self.params
        fam = self.family
        if fam == "uniform" or fam == "point":
            m = p["max"] if fam == "uniform" else p["k"]
            frac = (m - kk) / m if fam == "uniform" else (kk < m).astype(float)
            with np.errstate(divide="ignore"):
                out[pos] = np.log(np.clip(frac, 0.0, 1.0))
            return out
        if fam in ("geometric", "negbin") and p["p"] == 1.0:
            out[pos] = -np.inf
            return out
        if fam == "geometric":
            out[pos] = kk * math.log1p(-p["p"])
            return out
        if fam == "bnb":
            out[pos] = [_bnb_log_sf(p["a_lambda"], p["a_pi"], p["b_pi"], int(v)) for v in kk]
            return out
        if fam == "poisson":
            lam = p["rate"]
            exact = special.gammainc(kk, lam)  # P(j >= k)
            rho = lam / (kk + 1.0)
        else:  # negbin: P(j >= k) = I_{1-p}(k, r)
            r, q = p["r"], p["p"]
            exact = special.betainc(kk, r, 1.0 - q)
            rho = (1.0 - q) * np.maximum(1.0, (kk + r) / (kk + 1.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = self.log_pmf(kk + 1.0) - np.log1p(-np.minimum(rho, 1.0))
            out[pos] = np.where(exact > 1e-280, np.log(np.maximum(exact, 1e-300)), bound)
        return out

    def k_max(self, tail: float = K_TAIL) -> int:
        """Smallest k with P(K > k) <= tail."""
        if not 0.0 < tail < 1.0:
            raise InputError(f"tail must be in (0, 1), got {tail!r}")
        log_tail = math.log(tail)

        def ok(k: int) -> bool:
            return bool(self.log_sf(np.array([k]))[0] <= log_tail)

        hi = 1
        while not ok(hi):
            hi *= 2
            if hi > 1 << 50:
                raise InputError(f"K prior {self.family} {dict(self.params)}: tail too heavy")
        lo = hi // 2  # ok(lo) is False (or lo = 0)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if ok(mid):
                hi = mid
            else:
                lo = mid
        return hi


@lru_cache(maxsize=4096)
def _bnb_log_sf(a_lambda: float, a_pi: float, b_pi: float, k: int) -> float:
    """log P(j >= k), j ~ BNB: int Beta(pi; a_pi, b_pi) P(NegBin(a_lambda, pi) >= k) dpi,
    P(NegBin(r, pi) >= k) = I_{1-pi}(k, r), integrated over s = log pi (the integrand's
    step sits near pi = a_lambda/k)."""
    if k <= 0:
        return 0.0
    log_norm = -special.betaln(a_pi, b_pi)

    def integrand(s: float) -> float:
        pi = math.exp(s)
        tail = special.betainc(k, a_lambda, -math.expm1(s)) if pi < 1.0 else 0.0
        if tail <= 0.0:
            return 0.0
        return math.exp(log_norm + a_pi * s + (b_pi - 1.0) * math.log1p(-pi) + math.log(tail))

    centre = math.log(min(a_lambda / k, 0.5))
    s_lo = centre - 60.0 / a_pi - 10.0
    pieces = [s_lo, centre - 5.0, centre, centre + 3.0, 0.0]
    pieces = sorted({min(v, 0.0) for v in pieces})
    total = 0.0
    for u, v in zip(pieces[:-1], pieces[1:], strict=True):
        if v > u:
            total += integrate.quad(integrand, u, v, epsabs=0.0, epsrel=1e-11, limit=200)[0]
    return math.log(total) if total > 0 else -math.inf


def k_prior(family: str | KPrior, params: Mapping[str, float] | None = None) -> KPrior:
    """A KPrior from a family name and its parameters (see :class:`KPrior`)."""
    if isinstance(family, KPrior):
        return family
    return KPrior(family, dict(params or {}))


def k_prior_log_pmf(
    family: str, params: Mapping[str, float], k_max: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(k, log p(K = k)) for k = 1..k_max, not renormalised.

    k_max None: the support's end for ``uniform``/``point``, else the smallest k with
    P(K > k) <= 1e-12 (``KPrior.k_max``): BNB(1, 4, 3) needs ~4e3, Poisson(3) 23.
    """
    prior = k_prior(family, params)
    if k_max is None:
        k_max = prior.support_max or prior.k_max(K_TAIL)
    k_max = _count("k_max", k_max)
    k = np.arange(1, k_max + 1)
    return k, prior.log_pmf(k)


def _as_log_pk(spec: Any, k_max: int | None = None) -> np.ndarray:
    """A log p(K) array over K = 1..len from an array, a KPrior or (family, params)."""
    if spec is None:
        raise InputError(
            "the MFM needs k_prior, the prior on K: a log p(K) array over K = 1..len, a "
            "KPrior, or (family, params), e.g. ('bnb', {'a_lambda': 1, 'a_pi': 4, 'b_pi': 3})"
        )
    if isinstance(spec, KPrior):
        return k_prior_log_pmf(spec.family, spec.params, k_max)[1]
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[0], str):
        return k_prior_log_pmf(spec[0], spec[1], k_max)[1]
    arr = np.asarray(spec, dtype=float).ravel()
    if arr.size == 0 or np.any(np.isnan(arr)) or np.any(arr > 1e-9) or not np.isfinite(arr).any():
        raise InputError("log_pk must be log probabilities over K = 1..len(log_pk)")
    if k_max is not None:
        arr = _pad_log(arr, _count("k_max", k_max))
    return arr


def _pad_log(arr: np.ndarray, k_max: int) -> np.ndarray:
    out = np.full(k_max, -np.inf)
    out[: min(k_max, len(arr))] = arr[:k_max]
    return out


# --------------------------------------------------------------------------
# Static MFM (Miller & Harrison 2018)
# --------------------------------------------------------------------------


def _log_falling(k: np.ndarray, t: np.ndarray) -> np.ndarray:
    """log k_(t) = log k!/(k - t)!, -inf for k < t (broadcast)."""
    k = np.asarray(k, dtype=float)
    t = np.asarray(t, dtype=float)
    with np.errstate(invalid="ignore"):
        val = special.gammaln(k + 1.0) - special.gammaln(np.maximum(k - t, 0.0) + 1.0)
    return np.where(k >= t, val, -np.inf)


def _log_rising_n(x: np.ndarray, n: int) -> np.ndarray:
    """log (x)^(n) = log Gamma(x + n)/Gamma(x), x > 0."""
    x = np.asarray(x, dtype=float)
    return special.gammaln(x + n) - special.gammaln(x)


def _log_v_finite(n: int, gamma: float, log_pk: np.ndarray, t_values: np.ndarray) -> np.ndarray:
    """log V_n(t) = log sum_{k=t}^{len} k_(t)/(gamma k)^(n) p(k), exactly (finite support)."""
    k = np.arange(1, len(log_pk) + 1, dtype=float)
    base = log_pk - _log_rising_n(gamma * k, n)
    out = np.empty(len(t_values))
    step = max(1, _CHUNK // len(k))
    for s in range(0, len(t_values), step):
        t = np.asarray(t_values[s : s + step], dtype=float)[:, None]
        out[s : s + step] = _lse(_log_falling(k[None, :], t) + base[None, :])
    return out


def _log_v_infinite(
    n: int, gamma: float, prior: KPrior, t_values: np.ndarray, tol: float
) -> tuple[np.ndarray, np.ndarray]:
    """log V_n(t) for an unbounded p(K), and the K where each sum was stopped.

    The sum over k = 1..M is extended (doubling M, from max(k_max(1e-12), 2 t_max, 16)) until
    the rest is provably below ``tol`` times the partial sum: for k > M,
    k_(t)/(gamma k)^(n) <= gamma^-t / (gamma (M+1) + t)^(n - t) (each (k - i)/(gamma k + i)
    <= 1/gamma, and the other factors grow with k), so

        sum_{k > M} <= gamma^-t Gamma(gamma (M+1) + t) / Gamma(gamma (M+1) + n) P(K > M).
    """
    t_values = np.asarray(t_values, dtype=float)
    head = np.full(len(t_values), -np.inf)
    stop = np.zeros(len(t_values), dtype=np.int64)
    pending = np.arange(len(t_values))
    k_lo = 1
    k_hi = max(prior.k_max(min(tol, K_TAIL)), 2 * int(t_values.max(initial=1)), 16)
    log_tol = math.log(tol)
    while True:
        k = np.arange(k_lo, k_hi + 1, dtype=float)
        base = prior.log_pmf(k) - _log_rising_n(gamma * k, n)
        step = max(1, _CHUNK // len(k))
        for s in range(0, len(pending), step):
            idx = pending[s : s + step]
            t = t_values[idx][:, None]
            head[idx] = np.logaddexp(head[idx], _lse(_log_falling(k[None, :], t) + base))
        t = t_values[pending]
        x = gamma * (k_hi + 1)
        bound = (
            -t * math.log(gamma)
            + special.gammaln(x + t)
            - special.gammaln(x + n)
            + prior.log_sf(np.array([k_hi]))[0]
        )
        done = (bound - head[pending] <= log_tol) | (bound == -np.inf)
        stop[pending[done]] = k_hi
        pending = pending[~done]
        if len(pending) == 0:
            return head, stop
        if k_hi >= _V_K_CAP:
            worst = float(np.max(bound[~done] - head[pending]))
            warnings.warn(
                f"V_n(t) for t in {t_values[pending].astype(int).tolist()[:5]}...: sum over K "
                f"stopped at K = {k_hi}, relative tail bound {math.exp(min(worst, 700)):.1e}",
                RuntimeWarning,
                stacklevel=3,
            )
            stop[pending] = k_hi
            return head, stop
        k_lo, k_hi = k_hi + 1, min(2 * k_hi, _V_K_CAP)


def mfm_log_v(
    n: int, gamma: float, log_pk: np.ndarray | KPrior, t_max: int, tol: float = K_TAIL
) -> np.ndarray:
    """log V_n(t), t = 0..t_max, for the static MFM (Miller & Harrison 2018, eq. 3.2):

        V_n(t) = sum_{k >= t} k_(t) / (gamma k)^(n) p(k),  k_(t) = k!/(k-t)!,
        (gamma k)^(n) = Gamma(gamma k + n)/Gamma(gamma k);

    -inf for t > n (no partition) and for t above a finite support. The collapsed sampler's
    new-cluster weight is exp(log V_n(t+1) - log V_n(t)) gamma.

    ``log_pk``: an array of log p(K) over K = 1..len(log_pk) (p(K) = 0 beyond; summed
    exactly), or a :class:`KPrior` with unbounded support, summed in log space up to a K
    chosen per t so that the neglected tail is provably below ``tol`` (1e-12) relative (see
    ``_log_v_infinite``; BayesianMixtures.jl's ``MFM.coefficients`` stops on a heuristic
    instead). With a heavy-tailed p(K) (BNB) and t near n that K can pass 4e6: the sum then
    stops there with a RuntimeWarning.
    """
    n = _count("n", n)
    gamma = _positive("gamma", gamma)
    t_max = _count("t_max", t_max, minimum=0)
    out = np.full(t_max + 1, -np.inf)
    top = min(t_max, n)
    if isinstance(log_pk, KPrior) and log_pk.support_max is not None:
        log_pk = log_pk.log_pmf(np.arange(1, log_pk.support_max + 1))
    if isinstance(log_pk, KPrior):
        out[: top + 1] = _log_v_infinite(n, gamma, log_pk, np.arange(top + 1), tol)[0]
    else:
        arr = _as_log_pk(log_pk)
        top = min(top, len(arr))
        out[: top + 1] = _log_v_finite(n, gamma, arr, np.arange(top + 1))
    return out


def mfm_k_given_kplus(
    n: int, t: int, gamma: float, log_pk: np.ndarray | KPrior, k_max: int | None = None
) -> np.ndarray:
    """p(K = k | K+ = t), k = 1..k_max, for the static MFM (Miller & Harrison 2018, sec. 3.3):

        p(K = k | K+ = t) = k_(t) / (gamma k)^(n) p(k) / V_n(t),  k >= t (0 for k < t).

    It depends on the data only through t. V_n(t) is the full (tail-controlled) sum, so the
    entries sum to 1 minus the mass above k_max. k_max None: len(log_pk) for an array, the K
    where V_n(t)'s sum stopped for a KPrior.
    """
    n, t = _count("n", n), _count("t", t)
    gamma = _positive("gamma", gamma)
    if t > n:
        raise InputError(f"K+ = t needs 1 <= t <= n = {n}, got {t}")
    if isinstance(log_pk, KPrior) and log_pk.support_max is not None:
        log_pk = log_pk.log_pmf(np.arange(1, log_pk.support_max + 1))
    if isinstance(log_pk, KPrior):
        log_v, stop = _log_v_infinite(n, gamma, log_pk, np.array([t]), K_TAIL)
        k_max = int(stop[0]) if k_max is None else _count("k_max", k_max)
        k = np.arange(1, k_max + 1, dtype=float)
        logp = log_pk.log_pmf(k)
        lv = log_v[0]
    else:
        arr = _as_log_pk(log_pk)
        lv = _log_v_finite(n, gamma, arr, np.array([t]))[0]
        k_max = len(arr) if k_max is None else _count("k_max", k_max)
        logp = _pad_log(arr, k_max)
        k = np.arange(1, k_max + 1, dtype=float)
    if lv == -np.inf:
        raise InputError(f"K+ = {t} has prior probability 0 under this p(K)")
    return np.exp(_log_falling(k, t) - _log_rising_n(gamma * k, n) + logp - lv)


def _mfm_static_grid(n: int, gammas: np.ndarray, log_pk: np.ndarray) -> np.ndarray:
    """P(K+ = t | gamma) = V_n(t) gamma^t S_{-gamma}(n, t) for each gamma (rows), t = 1..n."""
    m = len(log_pk)
    t_top = min(n, m)
    k = np.arange(1, m + 1, dtype=float)
    t = np.arange(1, t_top + 1, dtype=float)
    out = np.zeros((len(gammas), n))
    log_s = log_gibbs_coefficients(n, -np.asarray(gammas, dtype=float), t_top)[:, 1:]
    log_s = log_s + t * np.log(np.asarray(gammas, dtype=float))[:, None]
    t_step = max(1, _CHUNK // m)
    for a in range(0, t_top, t_step):
        e = min(a + t_step, t_top)
        fall = _log_falling(k[None, :], t[a:e, None]) + log_pk  # (tb, m)
        g_step = max(1, _CHUNK // fall.size)
        for b in range(0, len(gammas), g_step):
            g = np.asarray(gammas[b : b + g_step], dtype=float)
            rise = _log_rising_n(g[:, None] * k, n)  # (gb, m)
            log_v = _lse(fall[None, :, :] - rise[:, None, :])  # (gb, tb)
            out[b : b + g_step, a:e] = np.exp(log_v + log_s[b : b + g_step, a:e])
    return out


def mfm_kplus_pmf(
    n: int,
    gamma: float | None = None,
    k_prior: Any = None,
    *,
    gamma_prior: tuple[str, float, float] | None = None,
    k_max: int | None = None,
    tol: float = 1e-10,
) -> np.ndarray:
    """P(K+ = t), t = 1..n, under the static MFM: K ~ p(K), w | K ~ Dir(gamma, .., gamma).

    P(K+ = t) = V_n(t) S_gamma(n, t), S_gamma(n, t) = sum over partitions into t blocks of
    prod_j (gamma)^(n_j), which obeys S(n+1, t) = (n + gamma t) S(n, t) + gamma S(n, t-1)
    ((*) with sigma = -gamma, times gamma^t). ``k_prior``: a log p(K) array over K =
    1..len, a :class:`KPrior`, or (family, params); an unbounded p(K) is cut at k_max
    (default: mass beyond <= 1e-12), and the pmf renormalised. ``gamma`` fixed, or
    ``gamma_prior=("gamma", shape, rate)``. Cost O(n min(n, k_max) + min(n, k_max) k_max)
    per gamma.
    """
    n = _count("n", n)
    log_pk = _as_log_pk(k_prior, k_max)
    if (gamma is None) == (gamma_prior is None):
        raise InputError("give either gamma, or gamma_prior=('gamma', shape, rate)")
    if gamma_prior is None:
        g = _positive("gamma", gamma)
        if n > MFM_FAST_N:
            return _clean(_pad(kplus_fast.mfm_static_fixed_pmf(n, _weights(log_pk), g), n))
        return _clean(_mfm_static_grid(n, np.array([g]), log_pk)[0])
    _, a, b = _hyper("gamma_prior", gamma_prior, ("gamma",))
    f0 = _delta1(n)
    w = np.exp(log_pk)
    mean_km1 = float(np.dot(np.arange(len(w)), w) / w.sum())  # E[K - 1]
    if n == 1 or mean_km1 == 0.0:
        return f0
    # P(K+ > 1 | K, gamma) <= (K - 1) gamma H_{n-1}
    small = _TAIL_MASS / (mean_km1 * _harmonic(n - 1))
    if n > MFM_FAST_N:
        lo, hi, log_pdf = _gamma_range(a, b, small)
        pmf = kplus_fast.mfm_static_gamma_pmf(n, _weights(log_pk), lo, hi, log_pdf)
        return _clean(_pad(pmf, n))
    return _clean(_gamma_mixture(lambda g: _mfm_static_grid(n, g, log_pk), f0, a, b, small, tol))


def _weights(log_pk: np.ndarray) -> np.ndarray:
    """p(K), K = 1..len, renormalised (the pmf of K+ is renormalised anyway)."""
    w = np.exp(log_pk)
    return w / w.sum()


def mfm_joint_pmf(n: int, gamma: float, k_prior: Any, k_max: int | None = None) -> np.ndarray:
    """P(K = k, K+ = t) for the static MFM with fixed gamma: rows k = 1..k_max, columns
    t = 1..min(n, k_max); p(k) k_(t)/(gamma k)^(n) S_gamma(n, t)."""
    n = _count("n", n)
    g = _positive("gamma", gamma)
    log_pk = _as_log_pk(k_prior, k_max)
    m = len(log_pk)
    t_top = min(n, m)
    k = np.arange(1, m + 1, dtype=float)[:, None]
    t = np.arange(1, t_top + 1, dtype=float)
    log_s = log_gibbs_coefficients(n, -g, t_top)[1:] + t * math.log(g)
    return np.exp(log_pk[:, None] + _log_falling(k, t[None, :]) - _log_rising_n(g * k, n) + log_s)


# --------------------------------------------------------------------------
# Dynamic MFM (Fruehwirth-Schnatter, Malsiner-Walli & Gruen 2021)
# --------------------------------------------------------------------------


def _occupancy_mixture(q: np.ndarray, log_pk: np.ndarray, n: int) -> np.ndarray:
    """sum_c q(c) sum_K p(K) P(c balls thrown uniformly into K boxes fill t of them),
    t = 1..n, by the occupancy chain over c (a ball lands in an empty box w.p. (K - t)/K).

    The rows K run in blocks (32 rows, then growing by ~15%), each over the columns
    t in [lo, min(c, its largest K)], where lo moves up once a column holds < 1e-30 in
    every row (the mass so dropped is < 1e-30 per entry per step: nothing at 1e-12). A block
    is retired once every row is full (P(t = K) >= 1 - 1e-15); its later mass goes to t = K.
    Cost ~ sum_K sum_c (band of t): O(k_max c_top min(c_top, k_max)) at worst.
    """
    nz = np.nonzero(q)[0]
    c_top = int(nz[-1]) + 1 if len(nz) else 1
    q_after = np.concatenate([np.cumsum(q[::-1])[::-1][1:], [0.0]])  # q_after[c-1] = P(c' > c)
    p = np.exp(log_pk)
    keep = np.nonzero(p)[0]
    m = int(keep[-1]) + 1 if len(keep) else 1
    t_top = min(m, c_top)
    result = np.zeros(m + 1)
    blocks = []
    k_a = 1
    while k_a <= m:
        k_b = min(m, max(k_a + 31, int(k_a * 1.15)))
        ks = np.arange(k_a, k_b + 1)
        k_a = k_b + 1
        ks = ks[p[ks - 1] > 0]
        if len(ks) == 0:
            continue
        width = min(int(ks[-1]), t_top)
        kk = ks.astype(float)[:, None]
        t = np.arange(1, width + 1, dtype=float)
        occ = np.zeros((len(ks), width + 1))
        occ[:, 1] = 1.0
        blocks.append(
            {
                "k": ks,
                "p": p[ks - 1],
                "occ": occ,
                "lo": 1,
                "stay": np.concatenate([np.zeros((len(ks), 1)), t / kk], axis=1),
                "move": np.concatenate(
                    [np.zeros((len(ks), 1)), np.maximum(kk - t + 1.0, 0.0) / kk], axis=1
                ),
                "full": bool(ks[-1] <= width),
                "diag": (np.arange(len(ks)), np.minimum(ks, width)),
            }
        )
    for c in range(1, c_top + 1):
        alive = []
        for blk in blocks:
            occ, lo = blk["occ"], blk["lo"]
            width = occ.shape[1] - 1
            hi = min(c, width)
            if q[c - 1] > 0.0:
                result[lo : hi + 1] += q[c - 1] * (blk["p"] @ occ[:, lo : hi + 1])
            if blk["full"] and c % 16 == 0 and occ[blk["diag"]].min() >= 1 - 1e-15:
                result[blk["k"]] += blk["p"] * q_after[c - 1]  # full from now on: t = K
                continue
            alive.append(blk)
            if c == c_top:
                continue
            hi2 = min(c + 1, width)
            moved = occ[:, lo - 1 : hi2] * blk["move"][:, lo : hi2 + 1]
            occ[:, lo : hi2 + 1] *= blk["stay"][:, lo : hi2 + 1]
            occ[:, lo : hi2 + 1] += moved
            while lo < hi2 and occ[:, lo].max() < 1e-30:
                occ[:, lo] = 0.0
                lo += 1
            blk["lo"] = lo
        blocks = alive
    return _pad(result[1:], n)


def _dp_table_pmf(n: int, alpha: float | None, alpha_prior: Any, tol: float) -> np.ndarray:
    """P(number of DP(alpha) tables = c), c = 1..n, alpha fixed or integrated."""
    if alpha_prior is None:
        return dp_k_pmf(n, _positive("alpha", alpha))
    fam, p1, p2 = _hyper("alpha_prior", alpha_prior, ("gamma", "f"))
    if fam == "gamma":
        return dp_gamma_k_pmf(n, p1, p2, tol)
    f0 = _delta1(n)
    if n == 1:
        return f0
    small = _TAIL_MASS / _harmonic(n - 1)  # P(c > 1 | alpha) <= alpha H_{n-1}
    dist = stats.f(p1, p2)
    lo = max(float(dist.ppf(_TAIL_MASS)), small)
    hi = float(dist.isf(_TAIL_MASS))
    return _clean(log_scale_expectation(lambda x: _dp_pmf_grid(n, x), f0, dist.logpdf, lo, hi, tol))


def _dynamic_fast(n: int, alpha: float | None, alpha_prior: Any, w: np.ndarray) -> np.ndarray:
    """``kplus_fast.mfm_dynamic_pmf`` with alpha fixed, Gamma or F (ranges as ``_dp_table_pmf``)."""
    if alpha_prior is None:
        return kplus_fast.mfm_dynamic_pmf(n, w, alpha=_positive("alpha", alpha))
    fam, p1, p2 = _hyper("alpha_prior", alpha_prior, ("gamma", "f"))
    small = _TAIL_MASS / _harmonic(n - 1)  # P(c > 1 | alpha) <= alpha H_{n-1}
    if fam == "gamma":
        lo, hi, log_pdf = _gamma_range(p1, p2, small)
    else:
        dist = stats.f(p1, p2)
        lo, hi, log_pdf = (
            max(float(dist.ppf(_TAIL_MASS)), small),
            float(dist.isf(_TAIL_MASS)),
            dist.logpdf,
        )
    return kplus_fast.mfm_dynamic_pmf(n, w, lo=lo, hi=hi, log_pdf=log_pdf)


def dynamic_mfm_kplus_pmf(
    n: int,
    alpha: float | None = None,
    k_prior: Any = None,
    *,
    alpha_prior: tuple[str, float, float] | None = None,
    k_max: int | None = None,
    tol: float = 1e-10,
) -> np.ndarray:
    """P(K+ = t), t = 1..n, under the dynamic MFM: K ~ p(K), w | K ~ Dir(alpha/K, .., alpha/K).

    P(K+ = t) = sum_K p(K) K!/(K-t)! Gamma(alpha)/Gamma(alpha + n)
                * sum_{partitions into t blocks} prod_j Gamma(n_j + alpha/K)/Gamma(alpha/K).

    Computed through an equivalent form: Dir(alpha/K, ..) is the weight vector of a DP(alpha)
    whose base measure is uniform on K atoms, so K+ is the number of distinct atoms among the
    c tables of a Chinese restaurant with concentration alpha, each table's atom uniform
    on K:  P(K+ = t | K, alpha) = sum_c P_DP(c | alpha) S2(c, t) K_(t)/K^c (this is the
    expansion (gamma)^(m) = sum_c |s(m, c)| gamma^c inside the partition sum). The DP part
    does not involve K and the occupancy part does not involve alpha, so alpha ~ Gamma
    (``alpha_prior=("gamma", shape, rate)``) or alpha ~ F(df1, df2) (``("f", df1, df2)``,
    the standard F density on alpha > 0; F(6, 3) is telescope/fipp's default) is integrated
    once, on the DP table pmf. Cost O(n^2) once (log Stirling numbers, cached) for a random
    alpha, plus O(c_top k_max min(c_top, k_max)), c_top the largest table count with mass.
    ``k_prior`` and ``k_max`` as for :func:`mfm_kplus_pmf`.
    """
    n = _count("n", n)
    log_pk = _as_log_pk(k_prior, k_max)
    if (alpha is None) == (alpha_prior is None):
        raise InputError("give either alpha, or alpha_prior=('gamma' or 'f', p1, p2)")
    if n > MFM_FAST_N:
        return _clean(_pad(_dynamic_fast(n, alpha, alpha_prior, _weights(log_pk)), n))
    q = _dp_table_pmf(n, alpha, alpha_prior, tol)
    # drop the far tail of the table count (total below 1e-16) to shorten the occupancy chain
    tail = np.cumsum(q[::-1])[::-1]
    q = np.where(tail > 1e-16, q, 0.0)
    return _clean(_occupancy_mixture(q, log_pk, n))


# --------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------


def kplus_prior(mixing: str, n: int, **params: Any) -> dict[str, Any]:
    """Prior of K+ for n observations: {"k": 1..n, "pmf", "mean", "var"}, and for the MFMs
    also {"k_components": 1..k_max, "pmf_components": p(K) (renormalised over 1..k_max)}.

    mixing and its params:
      "dp":          alpha | alpha_prior=("gamma", shape, rate)
      "finite":      K, gamma | gamma_prior=("gamma", shape, rate)
      "pitman_yor":  strength | strength_prior=("gamma", shape, rate) (on strength +
                     discount), discount | discount_prior=("beta", a, b)
      "mfm_static":  gamma | gamma_prior, k_prior (array, KPrior or (family, params)), k_max
      "mfm_dynamic": alpha | alpha_prior=("gamma", ..) or ("f", df1, df2), k_prior, k_max
    """
    n = _count("n", n)
    name = str(mixing).lower()
    extra: dict[str, Any] = {}

    def take(*allowed: str) -> dict[str, Any]:
        bad = sorted(set(params) - set(allowed))
        if bad:
            raise InputError(f"{', '.join(bad)} do(es) not apply to mixing {name!r}")
        return params

    if name == "dp":
        p = take("alpha", "alpha_prior", "tol")
        if (p.get("alpha") is None) == (p.get("alpha_prior") is None):
            raise InputError("mixing 'dp' needs alpha or alpha_prior=('gamma', shape, rate)")
        if p.get("alpha_prior") is None:
            pmf = dp_k_pmf(n, p["alpha"])
        else:
            _, a, b = _hyper("alpha_prior", p["alpha_prior"], ("gamma",))
            pmf = dp_gamma_k_pmf(n, a, b, p.get("tol", 1e-10))
    elif name == "finite":
        p = take("K", "gamma", "gamma_prior", "tol")
        if "K" not in p:
            raise InputError("mixing 'finite' needs K, the number of components")
        if (p.get("gamma") is None) == (p.get("gamma_prior") is None):
            raise InputError("mixing 'finite' needs gamma or gamma_prior=('gamma', shape, rate)")
        if p.get("gamma_prior") is None:
            pmf = finite_k_pmf(n, p["K"], p["gamma"])
        else:
            _, a, b = _hyper("gamma_prior", p["gamma_prior"], ("gamma",))
            pmf = finite_gamma_k_pmf(n, p["K"], a, b, p.get("tol", 1e-10))
        pmf = _pad(pmf, n)
    elif name in ("pitman_yor", "py"):
        take("strength", "discount", "strength_prior", "discount_prior", "tol")
        pmf = py_kplus_pmf(n, **params)
    elif name in ("mfm_static", "mfm", "mfm_dynamic", "dynamic_mfm"):
        dynamic = name in ("mfm_dynamic", "dynamic_mfm")
        conc = "alpha" if dynamic else "gamma"
        p = take(conc, f"{conc}_prior", "k_prior", "k_max", "tol")
        if "k_prior" not in p:
            raise InputError(f"mixing {name!r} needs k_prior (the prior on K)")
        log_pk = _as_log_pk(p["k_prior"], p.get("k_max"))
        fn = dynamic_mfm_kplus_pmf if dynamic else mfm_kplus_pmf
        pmf = fn(
            n,
            p.get(conc),
            log_pk,
            **{f"{conc}_prior": p.get(f"{conc}_prior")},
            tol=p.get("tol", 1e-10),
        )
        w = np.exp(log_pk)
        extra = {"k_components": np.arange(1, len(w) + 1), "pmf_components": w / w.sum()}
    else:
        raise InputError(
            f"unknown mixing {mixing!r}; use dp, finite, pitman_yor, mfm_static or mfm_dynamic"
        )
    k = np.arange(1, n + 1)
    mean = float(np.dot(k, pmf))
    return {
        "k": k,
        "pmf": pmf,
        "mean": mean,
        "var": float(np.dot((k - mean) ** 2, pmf)),
        **extra,
    }
