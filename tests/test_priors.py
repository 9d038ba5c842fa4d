"""Tests for bayesmix.priors: exact values, closed forms, Monte Carlo, calibration."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import integrate, special, stats

from bayesmix.priors import (
    PriorK,
    calibrate_alpha,
    calibrate_alpha_gamma_prior,
    calibrate_gamma_fixed,
    dp_gamma_k_pmf,
    dp_k_pmf,
    expected_k_dp,
    expected_k_finite,
    finite_gamma_k_pmf,
    finite_k_pmf,
    prior_k,
    prior_k_from_spec,
)
from bayesmix.spec import MODELS_DIR, GammaPrior, MixingSpec, ModelSpec, load_spec

R = 20_000  # Monte Carlo draws


def _mean(pmf: np.ndarray) -> float:
    return float(np.dot(np.arange(1, len(pmf) + 1), pmf))


def _chisq_pvalue(k_draws: np.ndarray, pmf: np.ndarray) -> float:
    """Chi-square goodness of fit, adjacent k pooled until each expected count is >= 5."""
    obs = np.bincount(np.minimum(k_draws, len(pmf)), minlength=len(pmf) + 1)[1:]
    expected = len(k_draws) * pmf / pmf.sum()
    o_bins, e_bins, o, e = [], [], 0.0, 0.0
    for oi, ei in zip(obs, expected, strict=True):
        o, e = o + oi, e + ei
        if e >= 5:
            o_bins.append(o)
            e_bins.append(e)
            o, e = 0.0, 0.0
    o_bins[-1] += o
    e_bins[-1] += e
    assert len(o_bins) >= 3
    return float(stats.chisquare(o_bins, e_bins).pvalue)


def _crp_k(rng: np.random.Generator, n: int, alpha: np.ndarray) -> np.ndarray:
    """K+ of Chinese restaurant processes (one per alpha), seating simulated customer by customer."""
    rows = np.arange(len(alpha))
    tables = np.zeros((len(alpha), n), dtype=np.int64)
    n_tables = np.ones(len(alpha), dtype=np.int64)  # customer 0 opened table 0
    for i in range(1, n):
        new = rng.random(len(alpha)) < alpha / (alpha + i)
        joined = tables[rows, rng.integers(0, i, size=len(alpha))]  # follow a uniform customer
        tables[:, i] = np.where(new, n_tables, joined)
        n_tables += new
    distinct = 1 + np.count_nonzero(np.diff(np.sort(tables, axis=1), axis=1), axis=1)
    assert np.array_equal(distinct, n_tables)
    return n_tables


def _dirichlet_multinomial_k(rng: np.random.Generator, n: int, K: int, g: np.ndarray) -> np.ndarray:
    """K+ of counts ~ Multinomial(n, w), w ~ Dirichlet(g_r, ..., g_r) (one row per g_r)."""
    # log Gamma(g) draws as log Gamma(g + 1) + log(U) / g: no underflow for small g
    log_g = np.log(rng.gamma(g[:, None] + 1.0, size=(len(g), K)))
    log_g += np.log(rng.random((len(g), K))) / g[:, None]
    w = np.exp(log_g - log_g.max(axis=1, keepdims=True))
    counts = rng.multinomial(n, w / w.sum(axis=1, keepdims=True))
    return np.count_nonzero(counts, axis=1)


# --------------------------------------------------------------------------
# Exact small cases
# --------------------------------------------------------------------------


def test_dp_n5_alpha1_is_stirling_over_factorial():
    # |s(5, k)| = 24, 50, 35, 10, 1 and 5! = 120
    expected = [1 / 5, 5 / 12, 7 / 24, 1 / 12, 1 / 120]
    np.testing.assert_allclose(dp_k_pmf(5, 1.0), expected, rtol=0, atol=1e-12)


def test_dp_n10_alpha1_mean_is_harmonic_number():
    assert _mean(dp_k_pmf(10, 1.0)) == pytest.approx(7381 / 2520, abs=1e-12)


@pytest.mark.parametrize(("n", "alpha"), [(30, Fraction(5, 2)), (40, Fraction(1, 10))])
def test_dp_matches_exact_rational_antoniak(n, alpha):
    # |s(n, k)| by the integer recurrence; P = |s(n,k)| alpha^k / (alpha (alpha+1)...(alpha+n-1))
    s = [1]  # row m = 0: s(0, 0) = 1
    for m in range(n):
        s = [(m * (s[k] if k < len(s) else 0)) + (s[k - 1] if k >= 1 else 0) for k in range(m + 2)]
    rising = math.prod(alpha + i for i in range(n))
    exact = [float(s[k] * alpha**k / rising) for k in range(1, n + 1)]
    np.testing.assert_allclose(dp_k_pmf(n, float(alpha)), exact, rtol=1e-12, atol=1e-300)


def test_finite_n5_k3_gamma1():
    np.testing.assert_allclose(finite_k_pmf(5, 3, 1.0), [1 / 7, 4 / 7, 2 / 7], rtol=0, atol=1e-12)


def _composition_formula(n: int, K: int, g: float) -> np.ndarray:
    """C(K,k) n! G(Kg)/G(Kg+n) sum_{compositions} prod G(n_j+g)/(G(g) n_j!), log-space convolution."""
    m = np.arange(1, n + 1)
    log_c = np.concatenate(
        [[-np.inf], special.gammaln(m + g) - special.gammaln(g) - special.gammaln(m + 1)]
    )
    log_s = np.concatenate([[0.0], np.full(n, -np.inf)])  # k = 0: only the empty composition
    out = []
    for k in range(1, min(K, n) + 1):
        log_s = np.array(
            [-np.inf] + [special.logsumexp(log_s[:j] + log_c[j:0:-1]) for j in range(1, n + 1)]
        )
        log_binom = special.gammaln(K + 1) - special.gammaln(k + 1) - special.gammaln(K - k + 1)
        out.append(
            log_binom
            + special.gammaln(n + 1)
            + special.gammaln(K * g)
            - special.gammaln(K * g + n)
            + log_s[n]
        )
    return np.exp(out)


@pytest.mark.parametrize(
    ("n", "K", "g"), [(12, 4, 0.3), (30, 10, 0.01), (25, 40, 5.0), (40, 6, 0.001), (40, 8, 100.0)]
)
def test_finite_matches_composition_formula(n, K, g):
    np.testing.assert_allclose(finite_k_pmf(n, K, g), _composition_formula(n, K, g), rtol=1e-9)


# --------------------------------------------------------------------------
# Closed forms, normalisation, stability
# --------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.01, 0.5, 1.0, 3.7, 50.0])
@pytest.mark.parametrize("n", [1, 7, 82, 500])
def test_dp_mean_closed_form(n, alpha):
    closed = sum(alpha / (alpha + i) for i in range(n))
    pmf = dp_k_pmf(n, alpha)
    assert len(pmf) == n
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12)
    assert _mean(pmf) == pytest.approx(closed, rel=1e-12)
    assert expected_k_dp(n, alpha) == pytest.approx(closed, rel=1e-12)


@pytest.mark.parametrize(("n", "K"), [(1, 3), (5, 3), (82, 10), (20, 50), (300, 7)])
def test_finite_gamma1_mean_closed_form(n, K):
    pmf = finite_k_pmf(n, K, 1.0)
    assert len(pmf) == min(K, n)
    assert _mean(pmf) == pytest.approx(K * n / (K + n - 1), rel=1e-12)
    assert expected_k_finite(n, K, 1.0) == pytest.approx(K * n / (K + n - 1), rel=1e-12)


@pytest.mark.parametrize("g", [0.001, 0.02, 0.5, 3.0, 100.0])
def test_finite_mean_closed_form(g):
    n, K = 200, 12
    pmf = finite_k_pmf(n, K, g)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12)
    assert _mean(pmf) == pytest.approx(expected_k_finite(n, K, g), rel=1e-10)


def test_finite_stable_for_large_n():
    for g in (0.001, 1.0, 100.0):
        pmf = finite_k_pmf(3000, 50, g)
        assert np.all(np.isfinite(pmf)) and np.all(pmf >= 0)
        assert pmf.sum() == pytest.approx(1.0, abs=1e-10)
        assert _mean(pmf) == pytest.approx(expected_k_finite(3000, 50, g), rel=1e-9)


def test_dp_n10000_stable_and_fast():
    pmf = dp_k_pmf(10_000, 1.0)
    assert len(pmf) == 10_000
    assert np.all(np.isfinite(pmf)) and np.all(pmf >= 0)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-10)
    closed = float(np.sum(1.0 / (1.0 + np.arange(10_000))))
    assert _mean(pmf) == pytest.approx(closed, rel=1e-6)
    result = prior_k(10_000, "dp", alpha=1.0)
    assert result.truncated and len(result.pmf) < 10_000  # the far tail underflows
    assert result.mean == pytest.approx(closed, rel=1e-6)


@pytest.mark.parametrize(
    ("n", "a", "b"),
    [
        (1, 1.0, 1.0),
        (5, 1.0, 1.0),
        (82, 1.0, 1.0),
        (82, 0.01, 0.01),
        (82, 500.0, 100.0),
        (1000, 2.0, 0.1),
    ],
)
def test_dp_gamma_sums_to_one_and_mean(n, a, b):
    pmf = dp_gamma_k_pmf(n, a, b)
    assert np.all(pmf >= 0)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-8)

    def integrand(t: float) -> float:  # E[K+ | alpha] times the density of log alpha
        return (expected_k_dp(n, math.exp(t)) - 1.0) * math.exp(
            a * t + a * math.log(b) - b * math.exp(t) - special.gammaln(a)
        )

    edges = np.linspace(-60.0, math.log(special.gammainccinv(a, 1e-16) / b), 121)
    mean = 1.0 + sum(
        integrate.quad(integrand, lo, hi, epsabs=1e-14)[0]
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
    )
    assert _mean(pmf) == pytest.approx(mean, abs=1e-8)


@pytest.mark.parametrize("rate", [1e-20, 1e20])
def test_gamma_hyperprior_extreme_rates(rate):
    # rate -> 0: concentration -> infinity; rate -> infinity: concentration -> 0
    dp = dp_gamma_k_pmf(30, 1.0, rate)
    finite = finite_gamma_k_pmf(30, 5, 2.0, rate)
    if rate < 1:
        assert dp[-1] == pytest.approx(1.0, abs=1e-8)
        assert _mean(finite) == pytest.approx(expected_k_finite(30, 5, 1e30), abs=1e-8)
    else:
        assert dp[0] == pytest.approx(1.0, abs=1e-8) and finite[0] == pytest.approx(1.0, abs=1e-8)


def _quad_vec_mixture(pmf_of, a: float, b: float) -> np.ndarray:
    """Independent check: adaptive quad_vec over t = log(x), x ~ Gamma(a, rate b)."""
    hi = math.log(special.gammainccinv(a, 1e-16) / b)

    def f(t: float) -> np.ndarray:
        return pmf_of(math.exp(t)) * math.exp(
            a * t + a * math.log(b) - b * math.exp(t) - special.gammaln(a)
        )

    lo = -40.0
    below = special.gammainc(a, b * math.exp(lo))  # there the pmf is (1, 0, 0, ...) to 1e-15
    val = integrate.quad_vec(f, lo, hi, epsabs=1e-12, epsrel=0, points=np.linspace(lo, hi, 30))[0]
    val[0] += below
    return val


def test_dp_gamma_matches_adaptive_quadrature():
    expected = _quad_vec_mixture(lambda x: dp_k_pmf(82, x), 1.0, 1.0)
    np.testing.assert_allclose(dp_gamma_k_pmf(82, 1.0, 1.0), expected, rtol=0, atol=1e-9)


def test_finite_gamma_matches_adaptive_quadrature():
    expected = _quad_vec_mixture(lambda x: finite_k_pmf(82, 10, x), 2.0, 3.0)
    got = finite_gamma_k_pmf(82, 10, 2.0, 3.0)
    assert got.sum() == pytest.approx(1.0, abs=1e-8)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


# --------------------------------------------------------------------------
# Monte Carlo
# --------------------------------------------------------------------------


def test_dp_chinese_restaurant_monte_carlo():
    rng = np.random.default_rng(20261126)
    k = _crp_k(rng, 200, np.full(R, 1.5))
    assert _chisq_pvalue(k, dp_k_pmf(200, 1.5)) > 0.001


def test_dp_stick_breaking_monte_carlo():
    # independent of the CRP: truncated stick-breaking weights, then n categorical draws
    rng = np.random.default_rng(7)
    n, alpha, sticks = 100, 1.5, 90  # leftover stick (0.6^90 ~ 1e-20) goes to the last atom
    v = rng.beta(1.0, alpha, size=(R, sticks))
    v[:, -1] = 1.0
    w = v * np.concatenate([np.ones((R, 1)), np.cumprod(1 - v[:, :-1], axis=1)], axis=1)
    cum = np.cumsum(w, axis=1)
    cum /= cum[:, -1:]
    offset = 2.0 * np.arange(R)[:, None]  # rows made globally sorted for one searchsorted
    idx = np.searchsorted((cum + offset).ravel(), (rng.random((R, n)) + offset).ravel())
    labels = idx.reshape(R, n) - sticks * np.arange(R)[:, None]
    k = 1 + np.count_nonzero(np.diff(np.sort(labels, axis=1), axis=1), axis=1)
    assert _chisq_pvalue(k, dp_k_pmf(n, alpha)) > 0.001


def test_finite_dirichlet_multinomial_monte_carlo():
    rng = np.random.default_rng(11)
    k = _dirichlet_multinomial_k(rng, 200, 10, np.full(R, 0.5))
    assert _chisq_pvalue(k, finite_k_pmf(200, 10, 0.5)) > 0.001


def test_dp_gamma_hyperprior_monte_carlo():
    rng = np.random.default_rng(3)
    alpha = rng.gamma(2.0, 1.0 / 1.5, size=R)  # Gamma(shape 2, rate 1.5)
    k = _crp_k(rng, 60, alpha)
    assert _chisq_pvalue(k, dp_gamma_k_pmf(60, 2.0, 1.5)) > 0.001


def test_finite_gamma_hyperprior_monte_carlo():
    rng = np.random.default_rng(5)
    g = rng.gamma(1.0, 1.0 / 2.0, size=R)  # Gamma(shape 1, rate 2)
    k = _dirichlet_multinomial_k(rng, 82, 10, g)
    assert _chisq_pvalue(k, finite_gamma_k_pmf(82, 10, 1.0, 2.0)) > 0.001


# --------------------------------------------------------------------------
# Typical models
# --------------------------------------------------------------------------


def test_sparse_finite_prior_mean():
    # K (1 - prod_i (0.09 + i)/(0.1 + i)) = 1.4246...: the sparse prior puts ~64% on one cluster
    result = prior_k(82, "finite", K=10, gamma=0.01)
    assert 1.40 < result.mean < 1.45
    assert result.mean == pytest.approx(expected_k_finite(82, 10, 0.01), rel=1e-12)
    assert result.mode == 1 and result.pmf[0] == pytest.approx(0.6438, abs=1e-4)


def test_dp_alpha1_n82_mean_near_five():
    result = prior_k(82, "dp", alpha=1.0)
    assert result.mean == pytest.approx(sum(1 / (1 + i) for i in range(82)), rel=1e-12)
    assert abs(result.mean - 5.0) < 0.02  # H_82 = 4.990
    assert result.description == "DP(alpha=1), N=82"


def test_prior_k_from_spec():
    dp = ModelSpec(mixing=MixingSpec("dp", 20, None, GammaPrior(1.0, 1.0)))
    np.testing.assert_allclose(prior_k_from_spec(82, dp).pmf, dp_gamma_k_pmf(82, 1.0, 1.0), atol=0)
    fixed = ModelSpec(mixing=MixingSpec("dp", 20, 1.0, None))
    np.testing.assert_allclose(prior_k_from_spec(82, fixed).pmf, dp_k_pmf(82, 1.0), atol=0)
    sparse = ModelSpec(mixing=MixingSpec("finite", 10, 0.01, None))
    result = prior_k_from_spec(82, sparse)
    assert len(result.pmf) == 10 and "K=10" in result.description
    np.testing.assert_allclose(result.pmf, finite_k_pmf(82, 10, 0.01), atol=0)


def test_prior_k_takes_a_model_name_path_or_spec():
    # models/sparse_finite.toml: finite, K = 10, gamma = 0.01
    sparse = prior_k(155, "sparse_finite")
    np.testing.assert_array_equal(sparse.pmf, finite_k_pmf(155, 10, 0.01))
    assert sparse.description == "finite(K=10, gamma=0.01), N=155"
    # models/dp.toml: alpha ~ Gamma(1, 1); "dp" alone is the model, as --model dp
    expected = dp_gamma_k_pmf(82, 1.0, 1.0)
    for source in ("dp", MODELS_DIR / "dp.toml", str(MODELS_DIR / "dp.toml"), load_spec("dp")):
        np.testing.assert_array_equal(prior_k(82, source).pmf, expected)
    # with a concentration, "dp" / "finite" are the mixing types (README usage)
    np.testing.assert_array_equal(prior_k(82, "dp", alpha=1.0).pmf, dp_k_pmf(82, 1.0))
    np.testing.assert_array_equal(
        prior_k(82, "finite", K=10, gamma=1.0).pmf, finite_k_pmf(82, 10, 1.0)
    )


@pytest.mark.parametrize(
    ("source", "kwargs", "message"),
    [
        ("sparse_finite", {"K": 5}, "sets its own mixing"),
        ("sparse_finite", {"gamma": 1.0}, "sets its own mixing"),
        ("nonsense", {}, "unknown model 'nonsense'"),
        (3.0, {}, "mixing must be"),
    ],
)
def test_prior_k_model_source_errors(source, kwargs, message):
    with pytest.raises(ValueError, match=message):
        prior_k(10, source, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mixing": "finite", "K": 5},
        {"mixing": "dp", "alpha": 1.0, "shape": 1.0, "rate": 1.0},
        {"mixing": "dp", "shape": 1.0},
        {"mixing": "dp", "gamma": 1.0},
        {"mixing": "finite", "gamma": 1.0},
        {"mixing": "finite", "K": 5, "alpha": 1.0},
        {"mixing": "pitman-yor", "alpha": 1.0},
        {"mixing": "dp", "alpha": -1.0},
    ],
)
def test_prior_k_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        prior_k(10, **kwargs)


# --------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------


def test_calibrate_alpha_round_trip():
    alpha = calibrate_alpha(82, 5)
    assert expected_k_dp(82, alpha) == pytest.approx(5.0, abs=1e-10)
    assert prior_k(82, "dp", alpha=alpha).mean == pytest.approx(5.0, abs=1e-10)
    for bad in (1.0, 0.5, 82.0, 100.0):
        with pytest.raises(ValueError, match="expected_k"):
            calibrate_alpha(82, bad)


def test_calibrate_gamma_fixed_round_trip():
    g = calibrate_gamma_fixed(82, 10, 3.0)
    assert prior_k(82, "finite", K=10, gamma=g).mean == pytest.approx(3.0, abs=1e-10)
    # the largest reachable E[K+] is K (1 - (1 - 1/K)^N) < min(K, N)
    with pytest.raises(ValueError, match="expected_k"):
        calibrate_gamma_fixed(10, 10, 6.6)
    assert calibrate_gamma_fixed(10, 10, 6.4) > 10


def _mass(pmf: np.ndarray, lo: int, hi: int) -> float:
    """P(lo <= K+ <= hi) for a pmf over k = 1..len(pmf)."""
    return float(np.sum(pmf[lo - 1 : hi]))


def test_calibrate_gamma_prior_dp():
    cal = calibrate_alpha_gamma_prior(82, 5, interval=(2, 9), level=0.9)
    result = prior_k(82, "dp", shape=cal.shape, rate=cal.rate)
    assert abs(result.mean - 5) < 1e-6
    assert result.quantile(0.05) == 2 and result.quantile(0.95) == 9
    assert cal.feasible and cal.achieved["interval"] == [2, 9]
    assert _mass(result.pmf, 2, 9) >= 0.9
    assert cal.achieved["mass_in_interval"] == pytest.approx(_mass(result.pmf, 2, 9), abs=1e-12)
    assert cal.message.startswith("Target met")


def test_calibrate_gamma_prior_finite():
    cal = calibrate_alpha_gamma_prior(82, 3, interval=(1, 6), mixing="finite", K=10)
    result = prior_k(82, "finite", K=10, shape=cal.shape, rate=cal.rate)
    assert abs(result.mean - 3) < 1e-6
    assert result.quantile(0.05) == 1 and result.quantile(0.95) == 6
    assert cal.feasible and _mass(result.pmf, 1, 6) >= 0.9
    with pytest.raises(ValueError):
        calibrate_alpha_gamma_prior(82, 3, interval=(4, 6), mixing="finite", K=10)


def test_calibrate_gamma_prior_infeasible_target_is_reported():
    # E[K+] = 3 with 90% in [2, 5] for n = 155: even the fixed alpha with E[K+] = 3 (the
    # limit of a Gamma prior whose shape grows) has P(K+ = 1) > 0.1, so < 90% in [2, 5]
    limit = dp_k_pmf(155, calibrate_alpha(155, 3.0))
    assert limit[0] > 0.1 and _mass(limit, 2, 5) < 0.9
    cal = calibrate_alpha_gamma_prior(155, 3, interval=(2, 5), level=0.9)
    result = prior_k(155, "dp", shape=cal.shape, rate=cal.rate)
    assert cal.feasible is False
    assert cal.target == {"expected_k": 3.0, "interval": [2.0, 5.0], "level": 0.9}
    mass = _mass(result.pmf, 2, 5)
    assert mass < 0.9 and cal.achieved["mass_in_interval"] == pytest.approx(mass, abs=1e-12)
    assert cal.achieved["expected_k"] == pytest.approx(3.0, abs=1e-6)
    assert cal.achieved["interval"] == [result.quantile(0.05), result.quantile(0.95)]
    assert cal.achieved["mass_below"] == pytest.approx(result.pmf[0], abs=1e-12)
    msg = cal.message
    assert msg.startswith("No Gamma prior on alpha") and "in [2, 5] with E[K+] = 3" in msg
    assert f"puts {100 * mass:.1f}% there" in msg and "shape at the top of its range" in msg
    # the widening it suggests holds >= 90% under the prior returned
    assert "Widen the interval (this prior puts" in msg and "in [1, 5])" in msg
    assert _mass(result.pmf, 1, 5) >= 0.9 and _mass(result.pmf, 1, 4) < 0.9
    assert _mass(result.pmf, 2, 6) < 0.9
    assert cal.to_dict()["feasible"] is False and json.dumps(cal.to_dict())


def test_calibrate_gamma_prior_finite_infeasible():
    limit = finite_k_pmf(82, 10, calibrate_gamma_fixed(82, 10, 3.0))
    assert _mass(limit, 2, 4) < 0.9
    cal = calibrate_alpha_gamma_prior(82, 3, interval=(2, 4), mixing="finite", K=10)
    result = prior_k(82, "finite", K=10, shape=cal.shape, rate=cal.rate)
    assert not cal.feasible and _mass(result.pmf, 2, 4) < 0.9
    assert cal.message.startswith("No Gamma prior on gamma")


def test_calibrate_gamma_prior_keeps_the_mass_when_the_quantile_fit_loses_it():
    # n = 200, E[K+] = 6, [3, 12]: the best fit of both quantiles puts < 90% in [3, 12],
    # a more concentrated Gamma prior (the fixed alpha puts > 90% there) meets the target
    assert _mass(dp_k_pmf(200, calibrate_alpha(200, 6.0)), 3, 12) > 0.9
    cal = calibrate_alpha_gamma_prior(200, 6, interval=(3, 12))
    result = prior_k(200, "dp", shape=cal.shape, rate=cal.rate)
    assert cal.feasible
    assert result.mean == pytest.approx(6.0, abs=1e-6)
    assert _mass(result.pmf, 3, 12) >= 0.9 - 1e-6


# --------------------------------------------------------------------------
# PriorK
# --------------------------------------------------------------------------


def test_prior_k_methods_on_hand_made_pmf():
    pk = PriorK(pmf=np.array([0.1, 0.4, 0.25, 0.15, 0.1]), n=5, description="hand")
    assert pk.mode == 2
    assert pk.mean == pytest.approx(2.75)
    assert pk.var == pytest.approx(0.1 * 1 + 0.4 * 4 + 0.25 * 9 + 0.15 * 16 + 0.1 * 25 - 2.75**2)
    assert [pk.quantile(q) for q in (0.0, 0.05, 0.1, 0.11, 0.5, 0.75, 0.9, 0.95, 1.0)] == [
        1,
        1,
        1,
        2,
        2,
        3,
        4,
        5,
        5,
    ]
    assert pk.credible_set(0.5) == [2, 3]
    assert pk.credible_set(0.8) == [2, 3, 4]
    assert pk.credible_set(0.9) == [1, 2, 3, 4]  # tie 0.1 / 0.1: the smaller k wins
    assert pk.credible_set(1.0) == [1, 2, 3, 4, 5]
    d = pk.to_dict()
    assert d["pmf"] == {"1": 0.1, "2": 0.4, "3": 0.25, "4": 0.15, "5": 0.1}
    assert d["mode"] == 2 and d["credible_set_90"] == [1, 2, 3, 4] and d["truncated"] is False
    assert set(d) == {"pmf", "mean", "var", "mode", "credible_set_90", "truncated", "description"}
    json.dumps(d)


def test_to_dict_drops_only_the_tiny_tail():
    pk = PriorK(pmf=np.array([1e-15, 0.5, 1e-13, 0.5 - 2e-15, 1e-14, 1e-20]), n=6, description="x")
    assert list(pk.to_dict()["pmf"]) == ["1", "2", "3", "4"]
    d = prior_k(82, "dp", alpha=1.0).to_dict()
    assert int(max(d["pmf"], key=int)) < 82 and sum(d["pmf"].values()) == pytest.approx(
        1, abs=1e-10
    )
    assert json.loads(json.dumps(d)) == d


# ---------------------------------------------------------------- large N: the DP's FFT path


@pytest.mark.parametrize("alpha", [0.2, 1.0, 9.0])
def test_dp_fft_path_matches_the_recursion_at_moderate_n(alpha, monkeypatch):
    """n = 6000 > DP_FFT_N: the generating-function pmf, truncated where the Chernoff bound
    puts P(K+ > k_top) below 1e-16, against the full Poisson-binomial recursion, to 1e-11."""
    import bayesmix.priors as P

    n = 6000
    fast = P.dp_k_pmf(n, alpha)
    monkeypatch.setattr(P, "DP_FFT_N", 10**9)
    full = P.dp_k_pmf(n, alpha)
    k_top = P.dp_k_top(n, alpha)
    assert full[k_top:].sum() < 1e-16  # the neglected mass, as bounded
    np.testing.assert_allclose(fast, full, rtol=0, atol=1e-11)


def test_dp_gamma_fft_path_matches_the_full_computation(monkeypatch):
    """alpha ~ Gamma(2, 1), n = 6000: truncated FFT mixture against the log-Stirling one."""
    import bayesmix.priors as P

    fast = P.dp_gamma_k_pmf(6000, 2.0, 1.0)
    monkeypatch.setattr(P, "DP_FFT_N", 10**9)
    full = P.dp_gamma_k_pmf(6000, 2.0, 1.0)
    np.testing.assert_allclose(fast, full, rtol=0, atol=1e-10)


def test_dp_prior_at_a_million_rows_is_a_proper_pmf_with_the_exact_mean():
    import bayesmix.priors as P

    n = 1_000_000
    pmf = P.dp_k_pmf(n, 1.0)
    assert len(pmf) == n and pmf.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.dot(np.arange(1, n + 1), pmf) == pytest.approx(P.expected_k_dp(n, 1.0), rel=1e-7)


def test_prior_k_skipped_only_for_pitman_yor_past_the_exact_limit():
    import bayesmix.priors as P
    from bayesmix.spec import load_spec

    for name in ("dp", "finite", "sparse_finite", "mfm", "rg97", "telescope"):
        assert P.prior_k_skipped(10**6, load_spec(name)) is None
    assert P.prior_k_skipped(P.PRIOR_EXACT_MAX_N, load_spec("pitman_yor")) is None
    assert "not computed" in P.prior_k_skipped(P.PRIOR_EXACT_MAX_N + 1, load_spec("pitman_yor"))


def test_mfm_prior_is_computed_past_the_old_limit():
    import bayesmix.priors as P
    from bayesmix.spec import load_spec

    prior = P.prior_k_from_spec(P.PRIOR_EXACT_MAX_N + 1, load_spec("mfm"))
    assert prior.pmf.sum() == pytest.approx(1.0, abs=1e-12) and prior.pmf.min() >= 0.0
