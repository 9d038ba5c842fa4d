"""Tests for bayesmix.partition_priors: exact enumeration of set partitions with rational
arithmetic, reductions to bayesmix.priors, closed forms, quadrature against brute force."""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from scipy import integrate, special, stats

from bayesmix import partition_priors as pp
from bayesmix.priors import dp_gamma_k_pmf, dp_k_pmf, finite_gamma_k_pmf, finite_k_pmf

BNB_143 = {"a_lambda": 1.0, "a_pi": 4.0, "b_pi": 3.0}


# --------------------------------------------------------------------------
# Exact rational references
# --------------------------------------------------------------------------


def _block_sizes(n: int) -> Counter:
    """Multiset of block-size tuples over all set partitions of {1..n} (restricted growth
    strings), with how many partitions have each."""
    out: Counter = Counter()

    def rec(prefix: list[int], n_blocks: int) -> None:
        if len(prefix) == n:
            out[tuple(sorted(Counter(prefix).values()))] += 1
            return
        for b in range(n_blocks + 1):
            rec(prefix + [b], max(n_blocks, b + 1))

    rec([0], 1)
    return out


def _rising(a: Fraction, m: int) -> Fraction:
    return math.prod((a + i for i in range(m)), start=Fraction(1))


def _falling(k: int, t: int) -> int:
    return math.prod(range(k - t + 1, k + 1)) if t <= k else 0


def _kplus_exact(n: int, eppf) -> list[Fraction]:
    pmf = [Fraction(0)] * n
    for sizes, count in _block_sizes(n).items():
        pmf[len(sizes) - 1] += count * eppf(sizes)
    return pmf


def _py_eppf(theta: Fraction, sigma: Fraction, n: int):
    def eppf(sizes):
        k = len(sizes)
        v = math.prod((theta + i * sigma for i in range(1, k)), start=Fraction(1))
        v /= _rising(theta + 1, n - 1)
        return v * math.prod((_rising(1 - sigma, m - 1) for m in sizes), start=Fraction(1))

    return eppf


def _mfm_eppf(conc: Fraction, pk: dict[int, Fraction], n: int, dynamic: bool):
    def eppf(sizes):
        t = len(sizes)
        total = Fraction(0)
        for K, p in pk.items():
            g = conc / K if dynamic else conc
            term = p * _falling(K, t) / _rising(g * K, n)
            total += term * math.prod((_rising(g, m) for m in sizes), start=Fraction(1))
        return total

    return eppf


def _log_pk(pk: dict[int, Fraction]) -> np.ndarray:
    arr = np.full(max(pk), -np.inf)
    for K, p in pk.items():
        if p > 0:
            arr[K - 1] = math.log(p)
    return arr


UNIFORM4 = {K: Fraction(1, 4) for K in range(1, 5)}
HANDMADE = {
    1: Fraction(1, 10),
    2: Fraction(0),
    3: Fraction(3, 10),
    4: Fraction(1, 5),
    5: Fraction(2, 5),
}


def test_block_sizes_count_bell_numbers():
    assert [sum(_block_sizes(n).values()) for n in (4, 5, 6)] == [15, 52, 203]


@pytest.mark.parametrize("n", [4, 5, 6])
@pytest.mark.parametrize(
    ("theta", "sigma"),
    [
        (Fraction(3, 2), Fraction(1, 4)),
        (Fraction(-1, 8), Fraction(1, 4)),
        (Fraction(0), Fraction(1, 2)),
    ],
)
def test_pitman_yor_matches_enumeration(n, theta, sigma):
    exact = _kplus_exact(n, _py_eppf(theta, sigma, n))
    assert sum(exact) == 1
    got = pp.py_kplus_pmf(n, float(theta), float(sigma))
    np.testing.assert_allclose(got, [float(p) for p in exact], rtol=0, atol=1e-12)
    # the log-space coefficients path (used under a strength prior) gives the same numbers
    log_s = pp.log_gibbs_coefficients(n, float(sigma))
    via_s = pp._py_pmf_from_coefficients(n, log_s, float(sigma), np.array([float(theta)]))[0]
    np.testing.assert_allclose(via_s, [float(p) for p in exact], rtol=0, atol=1e-12)
    mean = sum((k + 1) * p for k, p in enumerate(exact))
    assert pp.py_expected_kplus(n, float(theta), float(sigma)) == pytest.approx(
        float(mean), abs=1e-12
    )


@pytest.mark.parametrize("gamma", [Fraction(1, 2), Fraction(3)])
def test_gibbs_coefficients_recursion_matches_enumeration(gamma):
    # S_gamma(n, t) = sum over partitions into t blocks of prod_j (gamma)^(n_j)
    n = 6
    exact = [Fraction(0)] * (n + 1)
    for sizes, count in _block_sizes(n).items():
        exact[len(sizes)] += count * math.prod(
            (_rising(gamma, m) for m in sizes), start=Fraction(1)
        )
    t = np.arange(n + 1)
    got = pp.log_gibbs_coefficients(n, -float(gamma)) + t * math.log(gamma)
    np.testing.assert_allclose(got[1:], [math.log(v) for v in exact[1:]], rtol=0, atol=1e-12)
    assert got[0] == -np.inf


@pytest.mark.parametrize("n", [4, 5, 6])
@pytest.mark.parametrize("pk", [UNIFORM4, HANDMADE], ids=["uniform4", "handmade"])
def test_static_mfm_matches_enumeration(n, pk):
    gamma = Fraction(1, 2)
    exact = _kplus_exact(n, _mfm_eppf(gamma, pk, n, dynamic=False))
    assert sum(exact) == 1
    log_pk = _log_pk(pk)
    got = pp.mfm_kplus_pmf(n, float(gamma), log_pk)
    np.testing.assert_allclose(got, [float(p) for p in exact], rtol=0, atol=1e-12)
    # V_n(t) and p(K | K+ = t), exactly
    v_exact = [
        sum((p * _falling(K, t) / _rising(gamma * K, n) for K, p in pk.items()), start=Fraction(0))
        for t in range(n + 2)
    ]
    log_v = pp.mfm_log_v(n, float(gamma), log_pk, n + 1)
    for t in range(n + 2):
        if v_exact[t] == 0 or t > n:  # t > n: no partition, V_n(t) is set to 0 (log -inf)
            assert log_v[t] == -np.inf
        else:
            assert log_v[t] == pytest.approx(math.log(v_exact[t]), abs=1e-12)
    for t in range(1, min(n, max(pk)) + 1):
        post = pp.mfm_k_given_kplus(n, t, float(gamma), log_pk)
        want = [
            float(pk.get(K, 0) * _falling(K, t) / _rising(gamma * K, n) / v_exact[t])
            for K in range(1, max(pk) + 1)
        ]
        np.testing.assert_allclose(post, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n", [4, 5, 6])
@pytest.mark.parametrize("pk", [UNIFORM4, HANDMADE], ids=["uniform4", "handmade"])
def test_dynamic_mfm_matches_enumeration(n, pk):
    alpha = Fraction(3, 2)
    exact = _kplus_exact(n, _mfm_eppf(alpha, pk, n, dynamic=True))
    assert sum(exact) == 1
    got = pp.dynamic_mfm_kplus_pmf(n, float(alpha), _log_pk(pk))
    np.testing.assert_allclose(got, [float(p) for p in exact], rtol=0, atol=1e-12)


def test_static_and_dynamic_mfm_differ():
    # the two MFMs are different priors (guards against one silently calling the other)
    a = pp.mfm_kplus_pmf(6, 0.5, _log_pk(HANDMADE))
    b = pp.dynamic_mfm_kplus_pmf(6, 0.5, _log_pk(HANDMADE))
    assert np.max(np.abs(a - b)) > 1e-3


# --------------------------------------------------------------------------
# Reductions to bayesmix.priors
# --------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "theta"), [(1, 2.0), (7, 0.3), (200, 2.5), (1500, 40.0)])
def test_py_at_zero_discount_is_the_dp(n, theta):
    np.testing.assert_allclose(
        pp.py_kplus_pmf(n, theta, 0.0), dp_k_pmf(n, theta), rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(pp.py_kplus_pmf(n, theta), dp_k_pmf(n, theta), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("n", "shape", "rate"), [(60, 2.0, 1.0), (300, 0.5, 0.2)])
def test_py_gamma_strength_at_zero_discount_is_the_dp_gamma(n, shape, rate):
    got = pp.py_kplus_pmf(n, strength_prior=("gamma", shape, rate), discount=0.0)
    np.testing.assert_allclose(got, dp_gamma_k_pmf(n, shape, rate), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("n", "K", "gamma"), [(60, 4, 0.3), (250, 7, 2.0)])
def test_mfm_with_point_mass_is_the_finite_mixture(n, K, gamma):
    point = pp.k_prior_log_pmf("point", {"k": K})[1]
    want = np.zeros(n)
    want[:K] = finite_k_pmf(n, K, gamma)
    np.testing.assert_allclose(pp.mfm_kplus_pmf(n, gamma, point), want, rtol=0, atol=1e-12)
    # dynamic MFM with K = K0 surely: gamma = alpha / K0
    got = pp.dynamic_mfm_kplus_pmf(n, gamma * K, point)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    # and with a Gamma hyperprior: gamma ~ Gamma(a, b) <=> alpha = K0 gamma ~ Gamma(a, b / K0)
    want_g = np.zeros(n)
    want_g[:K] = finite_gamma_k_pmf(n, K, 2.0, 3.0)
    got_s = pp.mfm_kplus_pmf(n, k_prior=point, gamma_prior=("gamma", 2.0, 3.0))
    got_d = pp.dynamic_mfm_kplus_pmf(n, k_prior=point, alpha_prior=("gamma", 2.0, 3.0 / K))
    np.testing.assert_allclose(got_s, want_g, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got_d, want_g, rtol=0, atol=1e-10)


@pytest.mark.parametrize("dynamic", [False, True])
def test_mfm_is_the_mixture_over_k_of_finite_pmfs(dynamic):
    n, conc = 120, 0.8
    k, log_pk = pp.k_prior_log_pmf("poisson", {"rate": 4.0})
    want = np.zeros(n)
    for K, lp in zip(k, log_pk, strict=True):
        g = conc / K if dynamic else conc
        want[:K] += math.exp(lp) * finite_k_pmf(n, int(K), g)[:n]
    want /= want.sum()
    fn = pp.dynamic_mfm_kplus_pmf if dynamic else pp.mfm_kplus_pmf
    np.testing.assert_allclose(fn(n, conc, log_pk), want, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------
# E[K+] and calibration
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "theta", "sigma"),
    [(10, 1.5, 0.25), (500, -0.2, 0.5), (2000, 0.0, 0.7), (2000, 25.0, 0.1), (300, 3.0, 0.95)],
)
def test_py_mean_closed_form_equals_pmf_mean(n, theta, sigma):
    pmf = pp.py_kplus_pmf(n, theta, sigma)
    mean = float(np.dot(np.arange(1, n + 1), pmf))
    assert pp.py_expected_kplus(n, theta, sigma) == pytest.approx(mean, rel=1e-11)
    # the textbook form (theta/sigma) [(theta+sigma)_(n)/(theta)_(n) - 1] where theta != 0
    if theta != 0.0:
        ratio = (
            math.exp(
                special.gammaln(theta + sigma + n)
                - special.gammaln(theta + sigma)
                - special.gammaln(theta + n)
                + special.gammaln(theta)
            )
            * np.sign(special.gamma(theta))
            * np.sign(theta + sigma)
        )
        assert (theta / sigma) * (ratio - 1) == pytest.approx(mean, rel=1e-9)


def test_py_mean_is_continuous_at_zero_discount():
    n, theta = 1000, 10.0
    dp = pp.py_expected_kplus(n, theta, 0.0)
    assert pp.py_expected_kplus(n, theta, 1e-12) == pytest.approx(dp, rel=1e-9)
    assert pp.py_expected_kplus(n, theta, 1e-3) > dp + 1e-3  # and increases with sigma


@pytest.mark.parametrize("sigma", [0.0, 0.25, 0.7])
@pytest.mark.parametrize(("n", "target"), [(50, 1.3), (100, 5.0), (1000, 30.0), (1000, 900.0)])
def test_calibration_round_trips(sigma, n, target):
    theta = pp.calibrate_py_strength(n, target, sigma)
    assert theta > -sigma
    assert pp.py_expected_kplus(n, theta, sigma) == pytest.approx(target, rel=1e-10)
    pmf = pp.py_kplus_pmf(n, theta, sigma)
    assert float(np.dot(np.arange(1, n + 1), pmf)) == pytest.approx(target, rel=1e-9)


def test_calibration_can_need_a_negative_strength():
    theta = pp.calibrate_py_strength(100, 1.5, 0.5)
    assert -0.5 < theta < 0.0


@pytest.mark.parametrize(
    ("n", "target", "sigma"),
    [(100, 1.0, 0.3), (100, 0.5, 0.3), (100, 100.0, 0.3), (100, 150.0, 0.0)],
)
def test_calibration_rejects_infeasible_targets(n, target, sigma):
    with pytest.raises(ValueError, match=r"expected_k must be in \(1, n\)"):
        pp.calibrate_py_strength(n, target, sigma)


@pytest.mark.parametrize("sigma", [1.0, -0.1, 1.5])
def test_calibration_rejects_bad_discount(sigma):
    with pytest.raises(ValueError, match="discount"):
        pp.calibrate_py_strength(100, 5.0, sigma)


# --------------------------------------------------------------------------
# Hyperpriors against brute-force quadrature (scipy quad_vec of the fixed-parameter pmf)
# --------------------------------------------------------------------------


def _quad(fn, lo, hi):
    val, err = integrate.quad_vec(fn, lo, hi, epsabs=1e-14, epsrel=1e-12, limit=500)
    assert err < 1e-11
    return val


def test_py_gamma_strength_against_brute_force():
    n, sigma, shape, rate = 25, 0.3, 2.0, 0.5
    dens = stats.gamma(shape, scale=1 / rate)

    def fn(u):  # x = theta + sigma = e^u
        x = math.exp(u)
        return dens.pdf(x) * x * pp.py_kplus_pmf(n, x - sigma, sigma)

    want = _quad(fn, -25.0, 6.0)
    got = pp.py_kplus_pmf(n, strength_prior=("gamma", shape, rate), discount=sigma)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    assert np.max(np.abs(got - pp.py_kplus_pmf(n, shape / rate - sigma, sigma))) > 1e-2


def test_py_beta_discount_against_brute_force():
    n, theta, a, b = 20, 1.0, 2.0, 3.0
    dens = stats.beta(a, b)
    want = _quad(lambda s: dens.pdf(s) * pp.py_kplus_pmf(n, theta, s), 0.0, 1.0)
    got = pp.py_kplus_pmf(n, theta, discount_prior=("beta", a, b))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


def test_py_both_random_against_brute_force():
    # a fine tensor grid: trapezoid in logit(sigma) (h = 0.1) times trapezoid in
    # log(theta + sigma) (h = 0.05), both converging geometrically, and the urn of the
    # fixed-parameter pmf (checked above by enumeration) on every grid point at once
    n, shape, rate, a, b = 9, 2.0, 1.0, 1.5, 2.5
    u = np.arange(-25.0, 15.0, 0.1)  # logit sigma
    v = np.arange(-20.0, 4.5, 0.05)  # log(theta + sigma)
    sig = special.expit(u)
    w_sig = stats.beta.pdf(sig, a, b) * sig * (1 - sig) * 0.1
    x = np.exp(v)
    w_x = stats.gamma.pdf(x, shape, scale=1 / rate) * x * 0.05
    ss, xx = np.meshgrid(sig, x, indexing="ij")
    pmf = pp._py_urn(n, (xx - ss).ravel(), ss.ravel()).reshape(len(sig), len(x), n)
    want = np.einsum("i,j,ijk->k", w_sig, w_x, pmf)
    assert abs(want.sum() - 1.0) < 1e-12
    got = pp.py_kplus_pmf(n, strength_prior=("gamma", shape, rate), discount_prior=("beta", a, b))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    fixed_sigma = pp.py_kplus_pmf(n, strength_prior=("gamma", shape, rate), discount=a / (a + b))
    assert np.max(np.abs(got - fixed_sigma)) > 1e-3


def test_static_mfm_gamma_prior_against_brute_force():
    n, shape, rate = 15, 2.0, 4.0
    kp = ("poisson", {"rate": 2.0})
    dens = stats.gamma(shape, scale=1 / rate)

    def fn(u):
        x = math.exp(u)
        return dens.pdf(x) * x * pp.mfm_kplus_pmf(n, x, kp)

    want = _quad(fn, -30.0, 4.0)
    got = pp.mfm_kplus_pmf(n, k_prior=kp, gamma_prior=("gamma", shape, rate))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("prior", [("f", 6.0, 3.0), ("gamma", 1.5, 2.0)])
def test_dynamic_mfm_alpha_prior_against_brute_force(prior):
    n = 15
    log_pk = pp.k_prior_log_pmf("uniform", {"max": 6})[1]
    fam, p1, p2 = prior
    dens = stats.f(p1, p2) if fam == "f" else stats.gamma(p1, scale=1 / p2)

    def fn(u):
        x = math.exp(u)
        return dens.pdf(x) * x * pp.dynamic_mfm_kplus_pmf(n, x, log_pk)

    want = _quad(fn, -30.0, 30.0)
    got = pp.dynamic_mfm_kplus_pmf(n, k_prior=log_pk, alpha_prior=prior)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


# --------------------------------------------------------------------------
# Priors on K
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "params", "scipy_logpmf"),
    [
        ("poisson", {"rate": 3.0}, lambda j: stats.poisson.logpmf(j, 3.0)),
        ("geometric", {"p": 0.2}, lambda j: stats.geom.logpmf(j + 1, 0.2)),
        ("negbin", {"r": 2.5, "p": 0.3}, lambda j: stats.nbinom.logpmf(j, 2.5, 0.3)),
        ("bnb", BNB_143, lambda j: stats.betanbinom.logpmf(j, 1.0, 4.0, 3.0)),
        ("uniform", {"max": 7}, lambda j: np.where(j < 7, -math.log(7), -np.inf)),
    ],
)
def test_k_prior_pmf_and_truncation(family, params, scipy_logpmf):
    k, log_pmf = pp.k_prior_log_pmf(family, params)
    assert k[0] == 1 and np.array_equal(k, np.arange(1, len(k) + 1))
    np.testing.assert_allclose(log_pmf[:200], scipy_logpmf(k[:200] - 1.0), rtol=1e-10, atol=1e-10)
    prior = pp.KPrior(family, params)
    # k_max is the smallest k with P(K > k) <= 1e-12
    assert prior.log_sf(np.array([len(k)]))[0] <= math.log(1e-12)
    assert prior.log_sf(np.array([len(k) - 1]))[0] > math.log(1e-12)
    if family != "uniform":
        assert 1.0 - math.fsum(np.exp(log_pmf)) < 1.01e-12
    _, short = pp.k_prior_log_pmf(family, params, k_max=5)
    np.testing.assert_array_equal(short, log_pmf[:5])


def test_bnb_143_needs_thousands_of_components_for_1e12():
    assert 4000 < pp.KPrior("bnb", BNB_143).k_max() < 5000


@pytest.mark.parametrize(
    ("family", "params"),
    [
        ("poisson", {"rate": 3.0}),
        ("negbin", {"r": 2.5, "p": 0.3}),
        ("geometric", {"p": 0.2}),
        ("bnb", BNB_143),
        ("uniform", {"max": 40}),
    ],
)
def test_k_prior_log_sf_against_summed_pmf(family, params):
    prior = pp.KPrior(family, params)
    big = 400_000 if family == "bnb" else 20_000
    log_p = prior.log_pmf(np.arange(1, big + 1))
    for k in (1, 3, 10, 30, 100, 300, 1000):
        tail = special.logsumexp(log_p[k:])  # log sum_{K > k} p(K)
        got = prior.log_sf(np.array([k]))[0]
        if tail == -np.inf:
            assert got == -np.inf
            continue
        # BNB's tail beyond 4e5 (relative (k/4e5)^4) is missing from the sum
        rel = 1e-9 if family != "bnb" else 1e-9 + 2 * (k / big) ** 4
        assert got >= tail - rel  # an upper bound (exact where representable)
        assert got == pytest.approx(tail, abs=rel + (0.1 if tail < -640 else 0.0))


def test_k_prior_rejects_bad_parameters():
    with pytest.raises(ValueError, match="takes parameters"):
        pp.KPrior("poisson", {"lam": 3.0})
    with pytest.raises(ValueError, match="unknown K prior"):
        pp.KPrior("zeta", {"s": 2.0})
    with pytest.raises(ValueError, match=r"p must be in \(0, 1\]"):
        pp.KPrior("geometric", {"p": 1.5})


# --------------------------------------------------------------------------
# V_n(t) with an unbounded p(K)
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "params"),
    [("poisson", {"rate": 3.0}), ("geometric", {"p": 0.3}), ("negbin", {"r": 2.0, "p": 0.4})],
)
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_log_v_infinite_support_against_long_sum(family, params, gamma):
    n = 30
    prior = pp.KPrior(family, params)
    got = pp.mfm_log_v(n, gamma, prior, n + 1)
    long = pp.mfm_log_v(n, gamma, prior.log_pmf(np.arange(1, 20_001)), n + 1)
    np.testing.assert_allclose(got[: n + 1], long[: n + 1], rtol=0, atol=1e-12)
    assert got[n + 1] == -np.inf


@pytest.mark.parametrize("gamma", [0.3, 1.0])
def test_log_v_backward_recursion(gamma):
    # Gibbs-type coefficients: V_n(t) = (n + gamma t) V_{n+1}(t) + gamma V_{n+1}(t+1)
    prior = pp.KPrior("bnb", BNB_143)
    n = 20
    v_n = pp.mfm_log_v(n, gamma, prior, 12)
    v_n1 = pp.mfm_log_v(n + 1, gamma, prior, 13)
    t = np.arange(1, 13)
    rhs = np.logaddexp(np.log(n + gamma * t) + v_n1[1:13], math.log(gamma) + v_n1[2:14])
    np.testing.assert_allclose(v_n[1:13], rhs, rtol=0, atol=1e-11)


def test_k_given_kplus_sums_to_one_and_shifts_up():
    prior = pp.KPrior("poisson", {"rate": 3.0})
    n = 50
    p2 = pp.mfm_k_given_kplus(n, 2, 1.0, prior)
    p6 = pp.mfm_k_given_kplus(n, 6, 1.0, prior)
    assert p2.sum() == pytest.approx(1.0, abs=1e-12) and p6.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(p6[:5] == 0.0) and p6[5] > 0
    k2, k6 = (float(np.dot(np.arange(1, len(p) + 1), p)) for p in (p2, p6))
    assert k6 > k2 + 1
    with pytest.raises(ValueError, match="t <= n"):
        pp.mfm_k_given_kplus(n, n + 1, 1.0, prior)


def test_joint_margins():
    n, gamma = 40, 0.7
    kp = ("poisson", {"rate": 2.0})
    joint = pp.mfm_joint_pmf(n, gamma, kp)
    log_pk = pp.k_prior_log_pmf(*kp)[1]
    np.testing.assert_allclose(joint.sum(axis=1), np.exp(log_pk), rtol=1e-11, atol=1e-15)
    kplus = pp.mfm_kplus_pmf(n, gamma, kp)
    np.testing.assert_allclose(joint.sum(axis=0) / joint.sum(), kplus[: joint.shape[1]], atol=1e-12)


# --------------------------------------------------------------------------
# Large n
# --------------------------------------------------------------------------


N_BIG = 10_000


@pytest.mark.parametrize(
    ("mixing", "params"),
    [
        ("pitman_yor", {"strength": 1.0, "discount": 0.5}),
        ("pitman_yor", {"strength": 30.0, "discount": 0.7}),
        ("pitman_yor", {"strength_prior": ("gamma", 1.0, 1.0), "discount": 0.25}),
        ("mfm_static", {"gamma": 1.0, "k_prior": ("poisson", {"rate": 3.0})}),
        ("mfm_static", {"gamma": 0.01, "k_prior": ("bnb", BNB_143), "k_max": 200}),
        ("mfm_dynamic", {"alpha_prior": ("f", 6.0, 3.0), "k_prior": ("poisson", {"rate": 3.0})}),
        ("mfm_dynamic", {"alpha": 0.5, "k_prior": ("bnb", BNB_143), "k_max": 60}),
    ],
)
def test_large_n_is_finite_and_normalised(mixing, params):
    out = pp.kplus_prior(mixing, N_BIG, **params)
    pmf = out["pmf"]
    assert pmf.shape == (N_BIG,) and np.all(np.isfinite(pmf)) and np.all(pmf >= 0)
    assert abs(math.fsum(pmf) - 1.0) < 1e-10
    assert 1.0 < out["mean"] < N_BIG
    if mixing == "pitman_yor" and "strength" in params:
        want = pp.py_expected_kplus(N_BIG, params["strength"], params["discount"])
        assert out["mean"] == pytest.approx(want, rel=1e-9)


def test_large_n_log_v_is_finite():
    log_v = pp.mfm_log_v(N_BIG, 1.0, pp.KPrior("poisson", {"rate": 3.0}), 50)
    assert np.all(np.isfinite(log_v))
    assert np.all(np.diff(log_v[1:]) < 0)  # V_n(t) decreases in t (n >> t)


# --------------------------------------------------------------------------
# Dispatch and argument checks
# --------------------------------------------------------------------------


def test_dispatch_dp_and_finite_match_priors():
    out = pp.kplus_prior("dp", 30, alpha=1.3)
    np.testing.assert_array_equal(out["pmf"], dp_k_pmf(30, 1.3))
    assert out["mean"] == pytest.approx(float(np.dot(np.arange(1, 31), dp_k_pmf(30, 1.3))))
    out = pp.kplus_prior("dp", 30, alpha_prior=("gamma", 2.0, 1.0))
    np.testing.assert_allclose(out["pmf"], dp_gamma_k_pmf(30, 2.0, 1.0), atol=1e-15)
    out = pp.kplus_prior("finite", 30, K=5, gamma=0.4)
    np.testing.assert_array_equal(out["pmf"][:5], finite_k_pmf(30, 5, 0.4))
    assert np.all(out["pmf"][5:] == 0.0) and len(out["pmf"]) == 30


def test_dispatch_mfm_components():
    out = pp.kplus_prior("mfm_dynamic", 82, alpha_prior=("f", 6.0, 3.0), k_prior=("bnb", BNB_143))
    w = out["pmf_components"]
    assert len(w) == len(out["k_components"]) == pp.KPrior("bnb", BNB_143).k_max()
    assert w.sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(w[:5], stats.betanbinom.pmf(np.arange(5), 1, 4, 3), rtol=1e-10)
    assert out["var"] > 0 and out["pmf"].sum() == pytest.approx(1.0, abs=1e-12)
    # K+ <= K: P(K+ <= k) >= P(K <= k)
    assert np.all(np.cumsum(out["pmf"])[:50] >= np.cumsum(w)[:50] - 1e-12)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: pp.py_kplus_pmf(10, -0.5, 0.3), "strength must be > -discount"),
        (lambda: pp.py_kplus_pmf(10, 1.0, 1.0), r"discount must be in \[0, 1\)"),
        (lambda: pp.py_kplus_pmf(10), "give either strength"),
        (lambda: pp.py_kplus_pmf(10, -0.1, discount_prior=("beta", 1, 1)), "must be >= 0"),
        (lambda: pp.py_kplus_pmf(10, 1.0, 0.2, discount_prior=("beta", 1, 1)), "not both"),
        (lambda: pp.py_kplus_pmf(10, strength_prior=("f", 1, 1)), "strength_prior must be"),
        (lambda: pp.mfm_kplus_pmf(10, None, ("poisson", {"rate": 1.0})), "give either gamma"),
        (lambda: pp.dynamic_mfm_kplus_pmf(10, 1.0, np.array([0.5, 0.1])), "log probabilities"),
        (lambda: pp.kplus_prior("mfm_static", 10, alpha=1.0), "do not apply|do\\(es\\) not apply"),
        (lambda: pp.kplus_prior("gibbs", 10), "unknown mixing"),
        (lambda: pp.mfm_kplus_pmf(10, 1.0), "needs k_prior"),
        (lambda: pp.dynamic_mfm_kplus_pmf(10, 1.0), "needs k_prior"),
    ],
)
def test_bad_arguments_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
