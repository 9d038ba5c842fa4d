"""Exact prior distribution of K+, the number of occupied clusters among n observations.

DP(alpha) (Antoniak 1974): P(K+ = k) = |s(n,k)| alpha^k Gamma(alpha) / Gamma(alpha + n).
Equivalently K+ = sum_{i=0}^{n-1} B_i with independent B_i ~ Bernoulli(alpha / (alpha + i))
(observation i+1 opens a new table in the Chinese restaurant process).

Finite, w ~ Dirichlet(gamma, ..., gamma) with K components:
P(K+ = k) = C(K,k) n! Gamma(K gamma)/Gamma(K gamma + n)
            * sum_{n_1+...+n_k = n, n_j >= 1} prod_j Gamma(n_j + gamma) / (Gamma(gamma) n_j!).
By the Polya urn, observation i+1 opens a new component with probability
(K - k) gamma / (K gamma + i) when k are occupied, so K+ is a Markov chain in i.

Both pmfs are computed by that forward recursion: each step is a convex combination of
non-negative numbers (no cancellation, no overflow), O(n * support). Past n = 5,000 the DP's
comes from its generating function (``dp_pmf_fft``) and the finite one from the same for
the table count of a Chinese restaurant with concentration K gamma, whose tables take K
atoms uniformly (``bayesmix.numerics.kplus_fast``): cost independent of n. A Gamma(shape, rate)
hyperprior on the concentration (density b^a x^(a-1) e^(-b x) / Gamma(a), b = RATE) is
integrated out numerically to an absolute accuracy of about 1e-10.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import optimize, special

from bayesmix.errors import InputError
from bayesmix.numerics.kplus_fast import finite_pmf_fast, mfm_static_gamma_pmf
from bayesmix.numerics.quadrature import log_scale_expectation

_TAIL_MASS = 1e-14  # Gamma mass (or TV error) neglected at each end of the alpha range
_NEGLIGIBLE = 1e-300  # pmf entries below this at the top of the support are dropped
_JSON_TAIL = 1e-12  # to_dict() omits trailing entries below this


# --------------------------------------------------------------------------
# Result object
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PriorK:
    """Prior pmf of K+ over k = 1..len(pmf).

    ``truncated`` is True when values of k above len(pmf) (up to the largest possible k)
    were dropped because their mass underflowed (< 1e-300).
    """

    pmf: np.ndarray
    n: int
    description: str
    truncated: bool = False
    components: np.ndarray | None = None  # MFM: p(K = k), k = 1..K_max

    def __post_init__(self) -> None:
        pmf = np.array(self.pmf, dtype=float)
        pmf.setflags(write=False)
        object.__setattr__(self, "pmf", pmf)

    @property
    def k(self) -> np.ndarray:
        """The support 1..len(pmf)."""
        return np.arange(1, len(self.pmf) + 1)

    @property
    def mean(self) -> float:
        """E[K+]."""
        return float(np.dot(self.k, self.pmf))

    @property
    def var(self) -> float:
        """Var[K+]."""
        return float(np.dot((self.k - self.mean) ** 2, self.pmf))

    @property
    def mode(self) -> int:
        """Most probable k (the smallest one on ties)."""
        return int(np.argmax(self.pmf)) + 1

    def quantile(self, q: float) -> int:
        """Smallest k with P(K+ <= k) >= q (1e-12 slack for rounding)."""
        if not 0.0 <= q <= 1.0:
            raise InputError(f"quantile level must be in [0, 1], got {q!r}")
        idx = int(np.searchsorted(np.cumsum(self.pmf), q - 1e-12, side="left"))
        return min(idx, len(self.pmf) - 1) + 1

    def credible_set(self, level: float = 0.9) -> list[int]:
        """Smallest set of k with total mass >= level (greedy by probability), sorted."""
        if not 0.0 < level <= 1.0:
            raise InputError(f"credible level must be in (0, 1], got {level!r}")
        order = np.argsort(-self.pmf, kind="stable")
        count = int(np.searchsorted(np.cumsum(self.pmf[order]), level - 1e-12, side="left")) + 1
        return sorted(int(i) + 1 for i in order[: min(count, len(order))])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary; trailing pmf entries below 1e-12 are omitted."""
        big = np.nonzero(self.pmf >= _JSON_TAIL)[0]
        last = int(big[-1]) + 1 if len(big) else len(self.pmf)
        return {
            "pmf": {str(k): float(p) for k, p in enumerate(self.pmf[:last], start=1)},
            "mean": self.mean,
            "var": self.var,
            "mode": self.mode,
            "credible_set_90": self.credible_set(0.9),
            "truncated": bool(self.truncated),
            "description": self.description,
        } | (
            {}
            if self.components is None
            else {"pmf_components": {str(k): float(p) for k, p in enumerate(self.components, 1)}}
        )


# --------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------


def _count(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise InputError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------
# Closed-form means
# --------------------------------------------------------------------------


def expected_k_dp(n: int, alpha: float | np.ndarray) -> float | np.ndarray:
    """E[K+] under DP(alpha): sum_{i=0}^{n-1} alpha / (alpha + i) (vectorised over alpha)."""
    x = np.asarray(alpha, dtype=float)
    i = np.arange(n, dtype=float)
    out = np.sum(x[..., None] / (x[..., None] + i), axis=-1)
    return float(out) if out.ndim == 0 else out


def expected_k_finite(n: int, K: int, gamma: float | np.ndarray) -> float | np.ndarray:
    """E[K+] under Dirichlet(gamma) with K components: K (1 - P(n_j = 0)),
    P(n_j = 0) = prod_{i=0}^{n-1} ((K-1) gamma + i) / (K gamma + i)."""
    g = np.asarray(gamma, dtype=float)[..., None]
    i = np.arange(n, dtype=float)
    log_empty = np.sum(np.log1p(-g / (K * g + i)), axis=-1)
    out = -K * np.expm1(log_empty)
    return float(out) if out.ndim == 0 else out


def _max_expected_finite(n: int, K: int) -> float:
    """sup over gamma of E[K+] (gamma -> inf, uniform weights): K (1 - (1 - 1/K)^n)."""
    return float(-K * np.expm1(n * np.log1p(-1.0 / K))) if K > 1 else 1.0


# --------------------------------------------------------------------------
# Fixed concentration
# --------------------------------------------------------------------------


DP_FFT_N = 5000  # above this n the DP's K+ pmf comes from its generating function (O(k log k))
_FFT_TAIL = 1e-16  # P(K+ > k_top | alpha) bound at the largest alpha used


def dp_k_top(n: int, alpha: float, tail: float = _FFT_TAIL) -> int:
    """A k_top with P(K+ > k_top | alpha) <= ``tail`` under DP(alpha), n observations.

    K+ is a sum of independent Bernoulli(alpha / (alpha + i)), i = 0..n-1, with mean mu, so
    the Chernoff bound P(K+ >= k) <= exp(-mu) (e mu / k)^k (k > mu) applies; it grows with
    alpha, so the k_top of the largest alpha serves every smaller one.
    """
    mu = float(expected_k_dp(n, alpha))
    k = max(int(math.ceil(mu)) + 1, 8)
    log_tail = math.log(tail)
    while k < n and -mu + k * (1.0 + math.log(mu) - math.log(k)) > log_tail:
        k += max(1, k // 20)
    return min(n, k + 1)


def dp_pmf_fft(n: int, alphas: np.ndarray, k_top: int) -> np.ndarray:
    """P(K+ = k | alpha), k = 1..k_top, for each alpha (rows), from the probability
    generating function E[t^K+] = prod_i (i + alpha t)/(i + alpha) = (alpha t)^(n) / (alpha)^(n)
    = Gamma(alpha t + n) Gamma(alpha) / (Gamma(alpha t) Gamma(alpha + n)), evaluated with the
    complex log-gamma at M >= k_top + 1 points t_l = exp(2 pi i (l + 1/2) / M) (never a pole)
    and inverted by one FFT: p_k = (1/M) sum_l G(t_l) t_l^-k, exact up to aliasing,
    p_k - p_{k+M} + ..., i.e. at most P(K+ > k_top) (``dp_k_top``), plus the rounding of
    log Gamma at argument ~n (relative 1e-16 of n log n: ~2e-9 at n = 1e6, ~1e-12 at 1e4).
    Cost O(M log M) per alpha, whatever n.
    """
    m = max(16, 1 << int(math.ceil(math.log2(k_top + 1))))
    a = np.asarray(alphas, dtype=float).reshape(-1, 1)
    t = np.exp(2j * np.pi * (np.arange(m) + 0.5) / m)
    at = a * t[None, :]
    norm = special.gammaln(a) - special.gammaln(a + n)
    g = np.exp(special.loggamma(at + n) - special.loggamma(at) + norm)
    coef = np.fft.fft(g, axis=1) / m * np.exp(-1j * np.pi * np.arange(m) / m)[None, :]
    return np.clip(coef.real[:, 1 : k_top + 1], 0.0, None)


def dp_k_pmf(n: int, alpha: float) -> np.ndarray:
    """P(K+ = k), k = 1..n, under DP(alpha) with n observations (Antoniak 1974).

    Poisson-binomial recursion over the independent new-table indicators
    Bernoulli(alpha / (alpha + i)); only the numerically non-zero band of k is updated.
    Entries below ~1e-308 come out as exact zeros. For n > ``DP_FFT_N``: ``dp_pmf_fft`` up to
    k_top with P(K+ > k_top) <= 1e-16 (zeros above).
    """
    n, alpha = _count("n", n), _positive("alpha", alpha)
    if n > DP_FFT_N:
        k_top = dp_k_top(n, alpha)
        out = np.zeros(n)
        out[:k_top] = dp_pmf_fft(n, np.array([alpha]), k_top)[0]
        return out / out.sum()
    f = np.zeros(n + 1)
    f[1] = 1.0
    lo, top = 1, 1  # f is zero outside lo..top
    for i in range(1, n):
        p_new, p_old = alpha / (alpha + i), i / (alpha + i)
        band = f[lo : top + 2].copy()
        f[lo : top + 2] = band * p_old
        f[lo + 1 : top + 2] += band[:-1] * p_new
        if f[top + 1] > 0.0:
            top += 1
        while f[lo] == 0.0 and lo < top:
            lo += 1
    return f[1:]


FINITE_FAST_N = 5000  # above this n the finite pmf comes from the table-count FFT (any n)


def _finite_pmf_grid(n: int, K: int, gammas: np.ndarray) -> np.ndarray:
    """P(K+ = k | gamma) for each gamma (rows), k = 1..min(K, n) (columns).

    n <= ``FINITE_FAST_N``: the urn chain (``_finite_pmf_urn``, O(n K) per gamma). Above:
    ``bayesmix.numerics.kplus_fast.finite_pmf_fast``, the Chinese-restaurant form
    sum_c P(C = c | K gamma) Occ_K(c, k), O(c_top log c_top) per gamma whatever n.
    """
    if n > FINITE_FAST_N:
        return finite_pmf_fast(n, K, gammas)
    return _finite_pmf_urn(n, K, gammas)


def _finite_pmf_urn(n: int, K: int, gammas: np.ndarray) -> np.ndarray:
    """P(K+ = k | gamma) for each gamma (rows), k = 1..min(K, n) (columns), by the urn chain."""
    g = np.asarray(gammas, dtype=float)[:, None]
    m = min(K, n)
    f = np.zeros((g.shape[0], m + 1))
    f[:, 1] = 1.0
    k = np.arange(m + 1, dtype=float)
    top = 1
    for i in range(1, n):
        hi = min(top + 1, m)
        denom = K * g + i
        p_new = (K - k[:hi]) * g / denom  # from k to k + 1
        p_old = (k[: hi + 1] * g + i) / denom  # stay at k
        band = f[:, :hi].copy()
        f[:, : hi + 1] *= p_old
        f[:, 1 : hi + 1] += band * p_new
        if hi > top and f[:, hi].any():
            top = hi
    return f[:, 1:]


def finite_k_pmf(n: int, K: int, gamma: float) -> np.ndarray:
    """P(K+ = k), k = 1..min(K, n), under a symmetric Dirichlet(gamma) with K components.

    Equals C(K,k) n! Gamma(K g)/Gamma(K g + n) sum_{compositions} prod_j Gamma(n_j+g)/(Gamma(g) n_j!),
    computed by the Polya-urn recursion P(new | k occupied, i seen) = (K - k) g / (K g + i).
    """
    n, K, gamma = _count("n", n), _count("K", K), _positive("gamma", gamma)
    return _finite_pmf_grid(n, K, np.array([gamma]))[0]


# --------------------------------------------------------------------------
# Gamma hyperprior
# --------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _log_stirling1(n: int) -> np.ndarray:
    """log |s(n, k)|, k = 0..n: log|s(m+1,k)| = logaddexp(log m + log|s(m,k)|, log|s(m,k-1)|)."""
    ls = np.full(n + 1, -np.inf)
    ls[1] = 0.0
    for m in range(1, n):
        ls[1 : m + 2] = np.logaddexp(math.log(m) + ls[1 : m + 2], ls[: m + 1])
    ls.setflags(write=False)
    return ls


def _dp_pmf_grid(n: int, alphas: np.ndarray) -> np.ndarray:
    """P(K+ = k | alpha) for each alpha (rows), k = 1..n, from the log Stirling numbers."""
    ls = _log_stirling1(n)[1:]
    k = np.arange(1, n + 1, dtype=float)
    i = np.arange(n, dtype=float)
    out = np.empty((len(alphas), n))
    step = max(1, 2_000_000 // n)
    for s in range(0, len(alphas), step):
        x = np.asarray(alphas[s : s + step], dtype=float)
        # log(alpha^n Gamma(alpha) / Gamma(alpha + n)); the log1p sum avoids cancellation
        # between the two log-gammas when alpha >> n
        log_ratio = n * np.log(x) + special.gammaln(x) - special.gammaln(x + n)
        big = x > n
        log_ratio[big] = -np.sum(np.log1p(i / x[big, None]), axis=1)
        out[s : s + step] = np.exp(ls + (k - n) * np.log(x)[:, None] + log_ratio[:, None])
    return out


def _gamma_mixture(
    fn: Callable[[np.ndarray], np.ndarray],
    f0: np.ndarray,
    shape: float,
    rate: float,
    small: float,
    tol: float = 1e-10,
) -> np.ndarray:
    """E[fn(X)] for X ~ Gamma(shape, rate), where |fn(x) - f0| <= 1e-14 x / small.

    Written as f0 + E[fn(X) - f0] and integrated over t = log x with the trapezoid rule,
    halving the step until two successive estimates agree to `tol` (max abs). The
    integrand vanishes at both ends of t in [log max(small, q_lo), log q_hi] (q = the
    1e-14 Gamma quantiles), so the trapezoid rule converges geometrically; what lies
    outside that range changes the result by < 1e-13.
    """
    lo = max(float(special.gammaincinv(shape, _TAIL_MASS)) / rate, small)
    hi = float(special.gammainccinv(shape, _TAIL_MASS)) / rate
    log_norm = shape * math.log(rate) - special.gammaln(shape)

    def log_pdf(x: np.ndarray) -> np.ndarray:
        return log_norm + (shape - 1.0) * np.log(x) - rate * x

    return log_scale_expectation(fn, f0, log_pdf, lo, hi, tol, what="Gamma-mixture quadrature")


def _gamma_range(
    shape: float, rate: float, small: float
) -> tuple[float, float, Callable[[np.ndarray], np.ndarray]]:
    """(lo, hi, log density) of Gamma(shape, rate) as ``_gamma_mixture`` integrates it:
    [max(small, q_lo), q_hi], q = the 1e-14 quantiles."""
    lo = max(float(special.gammaincinv(shape, _TAIL_MASS)) / rate, small)
    hi = float(special.gammainccinv(shape, _TAIL_MASS)) / rate
    log_norm = shape * math.log(rate) - special.gammaln(shape)

    def log_pdf(x: np.ndarray) -> np.ndarray:
        return log_norm + (shape - 1.0) * np.log(x) - rate * x

    return lo, hi, log_pdf


def _clean(pmf: np.ndarray) -> np.ndarray:
    pmf = np.clip(pmf, 0.0, None)
    return pmf / pmf.sum()


def _harmonic(m: int) -> float:
    return float(np.sum(1.0 / np.arange(1, m + 1))) if m > 0 else 0.0


def dp_gamma_k_pmf(n: int, a: float, b: float, tol: float = 1e-10) -> np.ndarray:
    """P(K+ = k), k = 1..n, under DP(alpha), alpha ~ Gamma(a, rate b), integrated over alpha.

    For n > ``DP_FFT_N`` the pmf given alpha is ``dp_pmf_fft``, truncated at the k_top of
    the alpha whose Gamma upper tail is 1e-14: the neglected mass is at most 1e-16 + 1e-14."""
    n, a, b = _count("n", n), _positive("shape", a), _positive("rate", b)
    f0 = np.zeros(n)
    f0[0] = 1.0
    if n == 1:
        return f0
    small = _TAIL_MASS / _harmonic(n - 1)  # P(K+ > 1 | alpha) <= alpha H_{n-1}
    if n > DP_FFT_N:  # k <= k_top of the largest alpha integrated (the 1e-14 Gamma quantile)
        hi = float(special.gammainccinv(a, _TAIL_MASS)) / b
        k_top = dp_k_top(n, hi)
        f0 = f0[:k_top]
        pmf = _gamma_mixture(lambda x: dp_pmf_fft(n, x, k_top), f0, a, b, small, tol)
        out = np.zeros(n)
        out[:k_top] = _clean(pmf)
        return out
    return _clean(_gamma_mixture(lambda x: _dp_pmf_grid(n, x), f0, a, b, small, tol))


def finite_gamma_k_pmf(n: int, K: int, a: float, b: float, tol: float = 1e-10) -> np.ndarray:
    """P(K+ = k), k = 1..min(K, n), under Dirichlet(gamma), gamma ~ Gamma(a, rate b), integrated.

    n > ``FINITE_FAST_N``: ``kplus_fast.mfm_static_gamma_pmf`` with p(K) a point mass (the
    trapezoid rule in log(K gamma) on a fixed grid, ~1e-13; ``tol`` is not used there)."""
    n, K = _count("n", n), _count("K", K)
    a, b = _positive("shape", a), _positive("rate", b)
    f0 = np.zeros(min(K, n))
    f0[0] = 1.0
    if n == 1 or K == 1:
        return f0
    small = _TAIL_MASS / ((K - 1) * _harmonic(n - 1))  # P(K+ > 1 | g) <= (K-1) g H_{n-1}
    if n > FINITE_FAST_N:  # the MFM with p(K) a point mass: one grid of table pmfs
        w = np.zeros(K)
        w[K - 1] = 1.0
        lo, hi, log_pdf = _gamma_range(a, b, small)
        return _clean(mfm_static_gamma_pmf(n, w, lo, hi, log_pdf)[: min(K, n)])
    return _clean(_gamma_mixture(lambda x: _finite_pmf_grid(n, K, x), f0, a, b, small, tol))


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------


def _result(pmf: np.ndarray, n: int, description: str) -> PriorK:
    keep = np.nonzero(pmf >= _NEGLIGIBLE)[0]
    last = int(keep[-1]) + 1 if len(keep) else len(pmf)
    return PriorK(pmf=pmf[:last], n=n, description=description, truncated=last < len(pmf))


def prior_k(
    n: int,
    mixing: str | os.PathLike[str] | Any,
    K: int | None = None,
    alpha: float | None = None,
    gamma: float | None = None,
    shape: float | None = None,
    rate: float | None = None,
) -> PriorK:
    """Prior of K+ for n observations, for a mixing type or for a whole model.

    ``mixing`` is either

    * the mixing type "dp" or "finite", with the concentration given here: "dp": alpha
      fixed, or alpha ~ Gamma(shape, rate) (K, a truncation level, is ignored: the
      untruncated DP is used); "finite": K components, gamma fixed or gamma ~ Gamma(shape,
      rate); or
    * a model: a built-in model name ("sparse_finite"), a path to a TOML spec, or a
      ``bayesmix.spec.ModelSpec``, as ``bayesmix prior-k --model`` takes; the model fixes
      the mixing, so K, alpha, gamma, shape and rate must then be left out.

    "dp" and "finite" are also built-in model names: with none of K, alpha, gamma, shape,
    rate given they name the model (``prior_k(82, "dp")`` is models/dp.toml, alpha ~
    Gamma(1, 1)), otherwise the mixing type (``prior_k(82, "dp", alpha=1.0)``).
    """
    n = _count("n", n)
    given = {
        k: v
        for k, v in (("K", K), ("alpha", alpha), ("gamma", gamma), ("shape", shape), ("rate", rate))
        if v is not None
    }
    if isinstance(mixing, str) and mixing in ("dp", "finite") and given:
        return _prior_k_mixing(n, mixing, K, alpha, gamma, shape, rate)
    if not isinstance(mixing, (str, os.PathLike)):
        if not hasattr(mixing, "mixing"):
            raise InputError(
                "mixing must be 'dp', 'finite', a model name, a TOML path or a ModelSpec, "
                f"got {mixing!r}"
            )
        spec = mixing
    elif given:
        raise InputError(
            f"{', '.join(given)} only go with mixing 'dp' or 'finite'; the model "
            f"{str(mixing)!r} sets its own mixing (drop them, or give mixing 'dp' or 'finite')"
        )
    else:
        from bayesmix.spec import load_spec

        spec = load_spec(mixing)
    return prior_k_from_spec(n, spec)


def _prior_k_mixing(
    n: int,
    mixing: str,
    K: int | None,
    alpha: float | None,
    gamma: float | None,
    shape: float | None,
    rate: float | None,
) -> PriorK:
    """prior_k for the mixing type "dp" or "finite" with its concentration arguments."""
    name = "alpha" if mixing == "dp" else "gamma"
    fixed, other = (alpha, gamma) if mixing == "dp" else (gamma, alpha)
    if other is not None:
        wrong = "gamma" if mixing == "dp" else "alpha"
        raise InputError(f"{wrong} does not apply to mixing '{mixing}' (use {name})")
    hyper = shape is not None or rate is not None
    if (fixed is None) == (not hyper):
        raise InputError(f"give either {name}, or shape and rate of a Gamma prior on {name}")
    if hyper and (shape is None or rate is None):
        raise InputError(f"a Gamma prior on {name} needs both shape and rate")
    conc = f"{name}={fixed:g}" if fixed is not None else f"{name} ~ Gamma({shape:g}, {rate:g})"
    if mixing == "dp":
        if fixed is not None:
            pmf = dp_k_pmf(n, fixed)
        else:
            pmf = dp_gamma_k_pmf(n, shape, rate)
        return _result(pmf, n, f"DP({conc}), N={n}")
    if K is None:
        raise InputError("mixing 'finite' needs K, the number of components")
    K = _count("K", K)
    if fixed is not None:
        pmf = finite_k_pmf(n, K, fixed)
    else:
        pmf = finite_gamma_k_pmf(n, K, shape, rate)
    return _result(pmf, n, f"finite(K={K}, {conc}), N={n}")


# past this N the Pitman-Yor prior of K+ is not computed: its generalised Stirling numbers
# cost 8 s at N = 1,000, 26 s at 2,000 and 165 s at 5,000 on this machine kind
# (reports/benchmarks/prior_k_large_n.md)
PRIOR_EXACT_MAX_N = 2_000


def prior_k_skipped(n: int, spec: Any) -> str | None:
    """Why ``prior_k_from_spec`` is not run for n observations, or None when it is.

    The DP (``dp_pmf_fft``), the finite mixture and the MFMs (``numerics.kplus_fast``: the
    table count of a Chinese restaurant by one FFT, its occupancy of K atoms) cost
    O(c_top log c_top) per quadrature node whatever n: None at any N (about 0.4 s at
    N = 1e6 for the shipped specs, reports/benchmarks/prior_k_large_n.md). The Pitman-Yor
    prior needs the generalised Stirling numbers S_sigma(n, k) (Pitman 2006, eq. 3.12),
    O(n k_top) per discount node with k_top growing like n^sigma, so past
    ``PRIOR_EXACT_MAX_N`` it is not computed, and the outputs say so.
    """
    if n <= PRIOR_EXACT_MAX_N or spec.mixing.type != "pitman_yor":
        return None
    return (
        f"prior of K+ not computed: the exact recursion for the {spec.mixing.type} mixing "
        f"costs O(N^2) per discount node (minutes at N = 5,000), and N = {n:,} > "
        f"{PRIOR_EXACT_MAX_N:,} "
        "(the DP's, the finite mixture's and the MFMs' priors are computed at any N)"
    )


def prior_k_from_spec(n: int, spec: Any) -> PriorK:
    """Prior of K+ implied by a ``bayesmix.spec.ModelSpec`` for n observations.

    A truncated DP (T components) is treated as the untruncated DP (the truncation is
    assumed negligible).
    """
    n = _count("n", n)
    m = spec.mixing
    if m.type in ("pitman_yor", "mfm"):
        return _gibbs_type_prior(n, m)
    prior = m.concentration_prior
    shape, rate = (None, None) if prior is None else (prior.shape, prior.rate)
    if m.type == "dp":
        return _prior_k_mixing(n, "dp", None, m.concentration, None, shape, rate)
    return _prior_k_mixing(n, m.type, m.n_components, None, m.concentration, shape, rate)


def _gibbs_type_prior(n: int, m: Any) -> PriorK:
    """Prior of K+ (and of K) for a Pitman-Yor or MFM mixing spec (``partition_priors``)."""
    from bayesmix import mixings
    from bayesmix.partition_priors import kplus_prior
    from bayesmix.spec import FPrior

    cp = m.concentration_prior
    conc_prior = None
    if cp is not None:
        conc_prior = (
            ("f", cp.df1, cp.df2) if isinstance(cp, FPrior) else ("gamma", cp.shape, cp.rate)
        )
    name = mixings.key(m)
    if m.type == "pitman_yor":
        params: dict[str, Any] = {"strength": m.concentration, "strength_prior": conc_prior}
        params["discount"] = m.discount
        if m.discount_prior is not None:
            params["discount_prior"] = ("beta", m.discount_prior.a, m.discount_prior.b)
        label = f"Pitman-Yor({m.concentration_name}, discount), N={n}"
    else:
        key = m.concentration_name  # gamma (static) or alpha (dynamic)
        logpk = mixings.k_prior_log_pmf(m)
        params = {key: m.concentration, f"{key}_prior": conc_prior}
        params["k_prior"] = logpk[1:]
        label = f"MFM ({m.weights}, K - 1 ~ {m.k_prior.family}), N={n}"
    params = {k: v for k, v in params.items() if v is not None}
    res = kplus_prior(name, n, **params)
    pmf = np.asarray(res["pmf"], dtype=float)
    comp = res.get("pmf_components")
    out = _result(pmf, n, label)
    if comp is not None:
        out = PriorK(out.pmf, out.n, out.description, out.truncated, np.asarray(comp, float))
    return out


# --------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------


def _solve_log(fun: Callable[[float], float], start: float, step: float = 2.0) -> float:
    """Root in t of an increasing fun(t), bracketing outwards from start."""
    lo = hi = start
    while fun(lo) > 0:
        lo -= step
    while fun(hi) < 0:
        hi += step
    if lo == hi:
        return lo
    return optimize.brentq(fun, lo, hi, xtol=1e-13, rtol=1e-13)


def calibrate_alpha(n: int, expected_k: float) -> float:
    """Fixed DP alpha with E[K+] = sum_{i=0}^{n-1} alpha/(alpha+i) = expected_k.

    E[K+] increases from 1 (alpha -> 0) to n (alpha -> inf), so every expected_k in (1, n)
    is feasible and met exactly (brentq, 1e-13); one outside is infeasible: InputError.
    """
    n = _count("n", n)
    if not 1.0 < expected_k < n:
        raise InputError(f"expected_k must be in (1, n) = (1, {n}) for a DP, got {expected_k!r}")
    return math.exp(_solve_log(lambda t: expected_k_dp(n, math.exp(t)) - expected_k, 0.0))


def calibrate_gamma_fixed(n: int, K: int, expected_k: float) -> float:
    """Fixed finite gamma with E[K+] = K (1 - P(n_j = 0)) = expected_k.

    E[K+] increases with gamma from 1 to K (1 - (1 - 1/K)^n) (< min(K, n)), the open
    range expected_k must lie in: inside it the target is met exactly (brentq, 1e-13),
    outside it is infeasible: InputError.
    """
    n, K = _count("n", n), _count("K", K)
    top = _max_expected_finite(n, K)
    if not 1.0 < expected_k < top:
        raise InputError(
            f"expected_k must be in (1, {top:.6g}) for K={K}, N={n} "
            f"(the upper end is reached as gamma -> infinity), got {expected_k!r}"
        )
    return math.exp(_solve_log(lambda t: expected_k_finite(n, K, math.exp(t)) - expected_k, 0.0))


def _interp_quantile(pmf: np.ndarray, q: float) -> float:
    """Quantile of the CDF interpolated linearly between k - 1 and k (continuous in the pmf)."""
    cdf = np.concatenate([[0.0], np.cumsum(pmf)])
    return float(np.interp(q, cdf, np.arange(len(cdf), dtype=float)))


SHAPE_RANGE = (1e-2, 1e4)  # the shape of the Gamma prior is searched over this range
_SCAN_POINTS = 25  # log-spaced shapes scanned for the largest mass in the interval
_MASS_SLACK = 1e-6  # P(lo <= K+ <= hi) >= level - this counts as >= level (quadrature error)
_MEAN_RTOL = 1e-6  # |E[K+] - expected_k| <= this * max(1, expected_k) counts as reached


@dataclass(frozen=True, eq=False)
class GammaCalibration:
    """A Gamma(shape, rate) prior on the concentration calibrated to a target prior of K+.

    ``target``: {"expected_k", "interval": [lo, hi], "level"}. ``achieved``, from the exact
    prior of K+ under Gamma(shape, rate) (``prior``): {"expected_k": E[K+], "interval": the
    equal-tailed [Q((1 - level)/2), Q((1 + level)/2)], "mass_in_interval": P(lo <= K+ <= hi),
    "mass_below": P(K+ < lo), "mass_above": P(K+ > hi)}. ``feasible`` and ``message``: see
    :func:`calibrate_alpha_gamma_prior`.
    """

    shape: float
    rate: float
    concentration: str  # "alpha" (DP) or "gamma" (finite)
    n: int
    target: dict[str, Any]
    achieved: dict[str, Any]
    feasible: bool
    message: str
    prior: PriorK = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: shape, rate, target, achieved, feasible, message."""
        return {
            "shape": self.shape,
            "rate": self.rate,
            "target": dict(self.target),
            "achieved": dict(self.achieved),
            "feasible": self.feasible,
            "message": self.message,
        }


def _pct(p: float) -> str:
    """0.8310 -> '83.1%' (one decimal, so that 89.96% never reads as 90%)."""
    return f"{100 * p:.1f}%"


def _interval_masses(pmf: np.ndarray, k_lo: int, k_hi: int) -> tuple[float, float, float]:
    """(P(K+ < k_lo), P(k_lo <= K+ <= k_hi), P(K+ > k_hi)) for a pmf over k = 1..len(pmf)."""
    below = float(pmf[: max(k_lo - 1, 0)].sum())
    inside = float(pmf[max(k_lo - 1, 0) : max(k_hi, 0)].sum())
    return below, inside, max(0.0, float(pmf.sum()) - below - inside)


def _widened(pmf: np.ndarray, k_lo: int, k_hi: int, level: float) -> tuple[int, int, float] | None:
    """The narrowest [k_lo - i, k_hi + j] (least i + j, then most mass) holding >= level:
    (lo, hi, mass), or None when even [1, len(pmf)] does not."""
    cdf = np.concatenate([[0.0], np.cumsum(pmf)])
    best: tuple[int, float, int, int] | None = None
    for a in range(min(k_lo, len(pmf)), 0, -1):
        b = int(np.searchsorted(cdf, cdf[a - 1] + level - _MASS_SLACK, side="left"))
        if b > len(pmf):
            continue
        b = max(b, k_hi)
        key = ((k_lo - a) + (b - k_hi), -(cdf[b] - cdf[a - 1]), a, b)
        best = key if best is None or key < best else best
    return None if best is None else (best[2], best[3], -best[1])


def calibrate_alpha_gamma_prior(
    n: int,
    expected_k: float,
    interval: tuple[float, float],
    level: float = 0.9,
    mixing: str = "dp",
    K: int | None = None,
) -> GammaCalibration:
    """Gamma(shape, rate) on the concentration (DP alpha or finite gamma) for a target K+ prior.

    The target: E[K+] = expected_k and a ``level`` prior interval [lo, hi] for K+.

    1. For each shape the rate is solved so that E[K+] = expected_k exactly (E[K+] falls
       as the rate grows).
    2. The shape (over SHAPE_RANGE = [0.01, 1e4], log scale, scipy minimize_scalar)
       minimises (Q_lo - (lo - 1/2))^2 + (Q_hi - (hi - 1/2))^2, Q the (1 -+ level)/2
       quantiles of K+ with its CDF interpolated linearly between k - 1 and k: the
       discrete quantile is k exactly when Q is in (k - 1, k], so the targets are the
       middles of those steps (an equal-tailed interval [lo, hi]).
    3. Feasibility: the target is met when

           |E[K+] - expected_k| <= 1e-6 max(1, expected_k)   and
           P(lo <= K+ <= hi) >= level  (to 1e-6, the quadrature accuracy),

       i.e. the prior puts at least ``level`` of K+ in [lo, hi] with the asked mean. When
       the shape of step 2 misses the mass, 25 log-spaced shapes over SHAPE_RANGE
       (refined around the best) give the largest P(lo <= K+ <= hi) any shape reaches with
       that mean; if it reaches ``level``, the shape returned lies between that of step 2
       and the largest-mass one and has P(lo <= K+ <= hi) = level (bisection on log
       shape); if not, the target is infeasible (``feasible`` False) and the prior
       returned is the one with the largest mass. For a too narrow interval that is a
       shape at the top of the range, a degenerate optimum: the Gamma then concentrates on
       the fixed concentration with E[K+] = expected_k.

    ``achieved`` reports E[K+], P(lo <= K+ <= hi), the tails and the equal-tailed interval
    (which can differ from [lo, hi] by a step even when feasible: one free shape cannot
    always place both quantiles); ``message`` says in plain words what was asked and
    what was achieved, and for an infeasible target the narrowest widening of [lo, hi]
    that the prior returned does satisfy. Input errors (expected_k or the interval out of
    range, level not in (0, 1)) raise InputError.
    """
    n = _count("n", n)
    lo_k, hi_k = (float(v) for v in interval)
    if not 0.0 < level < 1.0:
        raise InputError(f"level must be in (0, 1), got {level!r}")
    if mixing == "dp":
        fixed = calibrate_alpha(n, expected_k)
        m, small = n, _TAIL_MASS / max(_harmonic(n - 1), 1.0)

        def mean_fn(x: np.ndarray) -> np.ndarray:
            return expected_k_dp(n, x)[:, None]

        def pmf_fn(a: float, b: float) -> np.ndarray:
            return dp_gamma_k_pmf(n, a, b, tol=1e-8)
    elif mixing == "finite":
        if K is None:
            raise InputError("mixing 'finite' needs K, the number of components")
        K = _count("K", K)
        fixed = calibrate_gamma_fixed(n, K, expected_k)
        m, small = min(K, n), _TAIL_MASS / max((K - 1) * _harmonic(n - 1), 1.0)

        def mean_fn(x: np.ndarray) -> np.ndarray:
            return expected_k_finite(n, K, x)[:, None]

        def pmf_fn(a: float, b: float) -> np.ndarray:
            return finite_gamma_k_pmf(n, K, a, b, tol=1e-8)
    else:
        raise InputError(f"mixing must be 'dp' or 'finite', got {mixing!r}")
    if not 1.0 <= lo_k < expected_k < hi_k <= m:
        raise InputError(
            f"need 1 <= lo < expected_k < hi <= {m}, got interval {interval!r} "
            f"and expected_k {expected_k!r}"
        )
    k_lo, k_hi = math.ceil(lo_k - 1e-9), math.floor(hi_k + 1e-9)  # the integers in [lo, hi]

    def mixed_mean(a: float, b: float) -> float:
        return float(_gamma_mixture(mean_fn, np.ones(1), a, b, small, tol=1e-10)[0])

    def rate_for(a: float) -> float:  # mean decreases in the rate: solve in -log(rate)
        def fun(t: float) -> float:
            return mixed_mean(a, math.exp(-t)) - expected_k

        return math.exp(-_solve_log(fun, -math.log(a / fixed), step=1.0))

    cache: dict[float, tuple[float, np.ndarray]] = {}

    def at(log_a: float) -> tuple[float, np.ndarray]:
        """(rate, pmf of K+) for shape exp(log_a), the rate solved for the mean."""
        if log_a not in cache:
            a = math.exp(log_a)
            b = rate_for(a)
            cache[log_a] = (b, pmf_fn(a, b))
        return cache[log_a]

    def mass(log_a: float) -> float:
        return _interval_masses(at(log_a)[1], k_lo, k_hi)[1]

    q_lo, q_hi = (1.0 - level) / 2, (1.0 + level) / 2

    def loss(log_a: float) -> float:
        pmf = at(log_a)[1]
        err_lo = _interp_quantile(pmf, q_lo) - (lo_k - 0.5)
        return err_lo**2 + (_interp_quantile(pmf, q_hi) - (hi_k - 0.5)) ** 2

    t_min, t_max = (math.log(v) for v in SHAPE_RANGE)
    res = optimize.minimize_scalar(
        loss, bounds=(t_min, t_max), method="bounded", options={"xatol": 1e-3}
    )
    t = float(res.x)
    if mass(t) < level:
        t = _most_mass_or_boundary(mass, t, t_min, t_max, level)
    shape = math.exp(t)
    rate = at(t)[0]
    prior = _prior_k_mixing(n, mixing, K, None, None, shape, rate)
    pmf = np.zeros(m)
    pmf[: len(prior.pmf)] = prior.pmf
    below, inside, above = _interval_masses(pmf, k_lo, k_hi)
    achieved = {
        "expected_k": prior.mean,
        "interval": [prior.quantile(q_lo), prior.quantile(q_hi)],
        "mass_in_interval": inside,
        "mass_below": below,
        "mass_above": above,
    }
    target = {"expected_k": float(expected_k), "interval": [lo_k, hi_k], "level": float(level)}
    mean_ok = abs(prior.mean - expected_k) <= _MEAN_RTOL * max(1.0, expected_k)
    mass_ok = inside >= level - _MASS_SLACK
    name = "alpha" if mixing == "dp" else "gamma"
    edge = (
        "top" if t_max - t < 1e-2 else "bottom" if t - t_min < 1e-2 else None
    )  # shape at an end of SHAPE_RANGE
    message = _calibration_message(
        name, n, target, achieved, shape, rate, fixed, edge, mean_ok, mass_ok,
        _widened(pmf, k_lo, k_hi, level) if not mass_ok else None,
    )  # fmt: skip
    return GammaCalibration(
        shape=shape,
        rate=rate,
        concentration=name,
        n=n,
        target=target,
        achieved=achieved,
        feasible=bool(mean_ok and mass_ok),
        message=message,
        prior=prior,
    )


def _most_mass_or_boundary(
    mass: Callable[[float], float], t0: float, t_min: float, t_max: float, level: float
) -> float:
    """log shape: the one nearest t0 with mass = level if any shape reaches level, else
    the one with the largest mass (25-point log grid over [t_min, t_max], then refined)."""
    grid = np.linspace(t_min, t_max, _SCAN_POINTS)
    masses = np.array([mass(float(g)) for g in grid])
    i = int(np.argmax(masses))
    ref = optimize.minimize_scalar(
        lambda u: -mass(u),
        bounds=(float(grid[max(i - 1, 0)]), float(grid[min(i + 1, len(grid) - 1)])),
        method="bounded",
        options={"xatol": 1e-3},
    )
    best = max((float(grid[i]), float(ref.x), t0), key=mass)
    if mass(best) < level:
        return best
    bad, good = t0, best  # mass(bad) < level <= mass(good): bisect to the crossing
    while abs(good - bad) > 1e-6:
        mid = 0.5 * (bad + good)
        if mass(mid) >= level:
            good = mid
        else:
            bad = mid
    return good


def _calibration_message(
    name: str,
    n: int,
    target: dict[str, Any],
    achieved: dict[str, Any],
    shape: float,
    rate: float,
    fixed: float,
    edge: str | None,
    mean_ok: bool,
    mass_ok: bool,
    widened: tuple[int, int, float] | None,
) -> str:
    """Plain words: what was asked, what the prior found gives, and (if infeasible) what to do."""
    lo, hi = target["interval"]
    e, level = target["expected_k"], target["level"]
    span = f"[{lo:g}, {hi:g}]"
    lvl = f"{100 * level:g}%"
    got = achieved
    q = f"[{got['interval'][0]}, {got['interval'][1]}]"
    tails_q = f"{100 * (1 - level) / 2:g}%-{100 * (1 + level) / 2:g}%"
    found = f"{name} ~ Gamma({shape:.6g}, {rate:.6g})"
    if edge == "top":
        found += f" (shape at the top of its range: nearly a fixed {name} = {fixed:.4g})"
    elif edge == "bottom":
        found += " (shape at the bottom of its range)"
    if mean_ok and mass_ok:
        inside = (
            got["interval"] != [lo, hi] and lo <= got["interval"][0] <= got["interval"][1] <= hi
        )
        return (
            f"Target met: {found} gives E[K+] = {got['expected_k']:.4g} and puts "
            f"{_pct(got['mass_in_interval'])} of the prior of K+ in {span} (asked: E[K+] = "
            f"{e:g}, at least {lvl}) for n = {n}; its {tails_q} quantiles are {q}"
            + (f", inside {span}: K+ is more concentrated than asked." if inside else ".")
        )
    if not mean_ok:
        return (
            f"Target not met: the rate solver missed E[K+] = {e:g} for n = {n} ({found} gives "
            f"E[K+] = {got['expected_k']:.6g}, and {_pct(got['mass_in_interval'])} in {span})."
        )
    tails = []
    if got["mass_below"] > 0.5e-3:
        tails.append(f"P(K+ < {lo:g}) = {_pct(got['mass_below'])}")
    if got["mass_above"] > 0.5e-3:
        tails.append(f"P(K+ > {hi:g}) = {_pct(got['mass_above'])}")
    advice = "Widen the interval"
    if widened is not None:
        wlo, whi, wmass = widened
        advice += f" (this prior puts {_pct(wmass)} in [{wlo}, {whi}])"
    return (
        f"No Gamma prior on {name} (shape {SHAPE_RANGE[0]:g} to {SHAPE_RANGE[1]:g}) puts {lvl} "
        f"of the prior of K+ in {span} with E[K+] = {e:g} for n = {n}: the closest found, "
        f"{found}, puts {_pct(got['mass_in_interval'])} there"
        + (f" ({', '.join(tails)})" if tails else "")
        + f"; its {tails_q} quantiles are {q}. {advice}, or change expected_k."
    )
