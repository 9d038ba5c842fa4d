"""The spherical conjugate kernel: Sigma_k = sigma_k^2 I, sigma_k^2 ~ IG(a0, b0),
mu_k | sigma_k^2 ~ N(m0 1, sigma_k^2 / kappa0 I) (``bayesmix.kernels.niw``, fam = SPHERICAL).

Exact checks first: the closed-form marginal likelihood of ``tests/exact_partitions.py``
against brute-force quadrature over (mu_1, mu_2, sigma^2), the numba marginal, predictive and
incremental cluster updates against it and against scipy's multivariate t. Then the samplers
against the exact posterior of K+ by enumeration of the 203 partitions of N = 6 points: 2 chains
x 10,000 draws (blocked: 25,000) after 300 sweeps, with ESS(K+) >= 1,500 asserted, so the SE of
a pmf cell is below sqrt(0.25 / 1500) = 0.013 and TV < 0.05 is about 4 SE of a cell (as in
``tests/test_mixings_exact.py``).
"""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import pytest
from exact_partitions import ENUM_X2, block_log_marginal, exact_posterior, tv
from scipy import integrate, stats

from bayesmix.classical import em_selection
from bayesmix.engines.gibbs import collapsed, sample_gibbs
from bayesmix.errors import InputError
from bayesmix.kernels import niw
from bayesmix.kernels.describe import describe_kernel
from bayesmix.mixings import registry
from bayesmix.numerics import rng as gibbs_rng
from bayesmix.posterior.kernel_check import choose_covariance
from bayesmix.spec import GammaPrior, KernelSpec, MixingSpec, ModelSpec, parse_spec

HYP = (0.3, 0.4, 3.0, 0.8)  # m0, kappa0, nu0 = 2 a0, psi0 = 2 b0 (a0 = 1.5, b0 = 0.4)
HYP_ENUM = (0.0, 0.1, 4.0, 0.5)  # the enumeration tests' NIG: a0 = 2, b0 = 0.25
MIN_ESS_KPLUS = 1500
TV_MAX = 0.05


def textbook_predictive(pts: np.ndarray, xq: np.ndarray, hyp=HYP) -> float:
    """log p(xq | pts): the d-variate Student t with 2 a_n df, location m_n and scale matrix
    b_n (1 + 1/kappa_n) / a_n I (scipy), a_n = a0 + n d / 2."""
    m0, k0, nu0, psi0 = hyp
    n, d = pts.shape
    xb = pts.mean(0) if n else np.zeros(d)
    kn = k0 + n
    an = nu0 / 2 + n * d / 2
    bn = psi0 / 2 + 0.5 * (((pts - xb) ** 2).sum() + k0 * n / kn * ((xb - m0) ** 2).sum())
    mn = (k0 * m0 + n * xb) / kn
    shape = bn * (1 + 1 / kn) / an * np.eye(d)
    return float(stats.multivariate_t(loc=mn, shape=shape, df=2 * an).logpdf(xq))


# --------------------------------------------------------------------------
# The marginal likelihood, by quadrature
# --------------------------------------------------------------------------


def test_block_marginal_matches_brute_force_quadrature():
    """m(x) = int p(x | mu, s2 I) N(mu | m0, s2/kappa0 I) IG(s2 | a0, b0) dmu ds2, integrated
    numerically (scipy tplquad) over (mu_1, mu_2, t = log s2) for n = 3 points with d = 2
    features; the integrand is written out from the three densities (s2 in [1e-3, 1e2], mu_d
    within 12 conditional sds of its mean: the mass outside is far below the tolerance)."""
    m0, k0, nu0, psi0 = HYP
    a0, b0 = nu0 / 2, psi0 / 2
    x = np.array([[0.2, -0.5], [1.1, 0.3], [0.4, 0.9]])
    n = len(x)
    want = block_log_marginal(x, HYP, "spherical")
    x1, x2 = x[:, 0].tolist(), x[:, 1].tolist()
    log_ig0 = a0 * math.log(b0) - math.lgamma(a0)
    l2p = math.log(2 * math.pi)

    def integrand(mu2: float, mu1: float, t: float) -> float:
        s2 = math.exp(t)
        ss = sum((v - mu1) ** 2 for v in x1) + sum((v - mu2) ** 2 for v in x2)
        lp = -n * (l2p + t) - ss / (2 * s2)  # N(x_i | mu, s2 I), n points x 2 features
        lp += -(l2p + t - math.log(k0)) - k0 * ((mu1 - m0) ** 2 + (mu2 - m0) ** 2) / (2 * s2)
        lp += log_ig0 - (a0 + 1) * t - b0 / s2 + t  # IG(s2 | a0, b0) ds2, ds2 = s2 dt
        return math.exp(lp - want)  # shifted so that the integral is 1 when want is right

    cen = (k0 * m0 + n * x.mean(0)) / (k0 + n)
    half = lambda t: 12 * math.sqrt(math.exp(t) / (k0 + n))  # noqa: E731
    val, err = integrate.tplquad(
        integrand,
        math.log(1e-3), math.log(1e2),
        lambda t: cen[0] - half(t), lambda t: cen[0] + half(t),
        lambda t, m1: cen[1] - half(t), lambda t, m1: cen[1] + half(t),
        epsabs=1e-8, epsrel=1e-6,
    )  # fmt: skip
    assert abs(math.log(val)) < 1e-5, (math.log(val), err)


def test_block_marginal_spherical_in_one_dimension_is_the_nig():
    x = np.array([[0.2], [1.1], [0.4], [-0.7]])
    assert block_log_marginal(x, HYP, "spherical") == pytest.approx(
        block_log_marginal(x, HYP, True), abs=1e-12
    )
    with pytest.raises(ValueError, match="spherical"):
        block_log_marginal(x, HYP, "sphere")


@pytest.mark.parametrize("d", [2, 3])
def test_numba_marginal_and_incremental_predictive(d):
    """log_marginal == block_log_marginal; the cl_* updates (add, remove in any order) give
    scipy's Student t predictive, and their chain rule gives the marginal."""
    rng = np.random.default_rng(3)
    x = np.ascontiguousarray(rng.normal(size=(9, d)) * 0.8 + 0.2)
    hyp = np.array(HYP)
    fam = niw.SPHERICAL
    psi, wl = np.zeros((d, d)), np.zeros((d, d))
    for m in (1, 4, 9):
        xb = x[:m].mean(0)
        sc = (x[:m] - xb).T @ (x[:m] - xb)
        got = niw.log_marginal(m, xb, sc, hyp, fam, psi, wl)
        assert got == pytest.approx(block_log_marginal(x[:m], HYP, "spherical"), abs=1e-10)
    tc, tp = niw.predictive_tables(len(x) + 1, d, hyp, fam)
    cnt, mean, scl = np.zeros(1, np.int64), np.zeros((1, d)), np.zeros((1, d, d))
    cst, q, u = np.zeros(1), np.zeros((1, d)), np.zeros(d)
    niw.cl_reset(0, cnt, mean, scl, cst, q, tc, hyp, fam)

    def logpred(xq):
        xx = np.ascontiguousarray(xq[None, :])
        return niw.cl_logpred(xx, 0, 0, mean, scl, cst, q, tp[cnt[0]], fam, u)

    chain = 0.0
    members: list[int] = []
    for i in range(len(x)):
        want = textbook_predictive(x[members].reshape(-1, d), x[i])
        got = logpred(x[i])
        assert got == pytest.approx(want, abs=1e-10)
        chain += got
        niw.cl_add(x, i, 0, cnt, mean, scl, cst, q, tc, hyp, fam, u)
        members.append(i)
    assert chain == pytest.approx(block_log_marginal(x, HYP, "spherical"), abs=1e-10)
    for i in (4, 0, 7):
        assert niw.cl_remove(x, i, 0, cnt, mean, scl, cst, q, tc, hyp, fam, u)
        members.remove(i)
    xq = rng.normal(size=d)
    assert logpred(xq) == pytest.approx(textbook_predictive(x[members], xq), abs=1e-10)
    # the exact rebuild agrees with the incremental state
    z = np.full(len(x), -1, np.int64)
    z[members] = 0
    c2, m2, s2 = np.zeros(1, np.int64), np.zeros((1, d)), np.zeros((1, d, d))
    cst2, q2 = np.zeros(1), np.zeros((1, d))
    niw.cl_rebuild_one(x, z, 0, c2, m2, s2, cst2, q2, tc, hyp, fam, psi)
    np.testing.assert_allclose(s2, scl, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(m2, mean, rtol=1e-12)
    assert cst2[0] == pytest.approx(cst[0], abs=1e-12)


def test_conditional_draw_moments():
    """sigma^2 | x ~ IG(a_n, b_n): E = b_n / (a_n - 1), one value on the whole diagonal;
    E[mu] = m_n (5 Monte Carlo SE; independent draws)."""
    rng = np.random.default_rng(2)
    d, n, m_draws = 3, 12, 4000
    x = rng.normal(size=(n, d)) * 0.7
    hyp = np.array(HYP)
    m0, k0, nu0, psi0 = HYP
    xb = x.mean(0)
    sc = (x - xb).T @ (x - xb)
    kn = k0 + n
    an = nu0 / 2 + n * d / 2
    bn = psi0 / 2 + 0.5 * (np.trace(sc) + k0 * n / kn * ((xb - m0) ** 2).sum())
    mn = (k0 * m0 + n * xb) / kn
    s2, mus = np.zeros(m_draws), np.zeros((m_draws, d))
    mu, lo = np.zeros(d), np.zeros((d, d))
    gibbs_rng.seed_rng(777)
    for s in range(m_draws):
        niw.draw_params(n, xb, sc, hyp, niw.SPHERICAL, mu, lo)
        assert np.all(lo == np.diag(np.full(d, lo[0, 0])))
        s2[s], mus[s] = lo[0, 0] ** 2, mu
    assert abs(s2.mean() - bn / (an - 1)) < 5 * s2.std() / math.sqrt(m_draws)
    assert np.all(np.abs(mus.mean(0) - mn) < 5 * mus.std(0) / math.sqrt(m_draws))


# --------------------------------------------------------------------------
# The samplers against the exact posterior by enumeration (N = 6, 2-D)
# --------------------------------------------------------------------------


def spec_of(mix: MixingSpec, **kern) -> ModelSpec:
    kw = dict(covariance="spherical", kappa0=0.1, a0=2.0, b0=0.25) | kern
    return ModelSpec(mixing=mix, kernel=KernelSpec(**kw))


# ENUM_X2 with its features rescaled: elongated groups, where the spherical kernel's posterior
# of K+ differs from the diagonal one's by TV 0.21 (on ENUM_X2 itself only by 0.025)
ENUM_X2_ANISO = ENUM_X2 * np.array([0.3, 1.5])
ENUM_CASES = {
    "dp_fixed": (ENUM_X2, MixingSpec("dp", 20, 0.7, None), "dp", {"concentration": 0.7}, None),
    "finite_random": (
        ENUM_X2, MixingSpec("finite", 4, None, GammaPrior(3.0, 3.0)),
        "finite", {"n_components": 4}, {"concentration": ("gamma", 3.0, 3.0)},
    ),
    "dp_fixed_aniso": (
        ENUM_X2_ANISO, MixingSpec("dp", 20, 0.7, None), "dp", {"concentration": 0.7}, None,
    ),
}  # fmt: skip


def test_spherical_posterior_differs_from_diag():
    """The anisotropic enumeration case can tell the spherical kernel from the diagonal one."""
    p_sph = exact_posterior(ENUM_X2_ANISO, HYP_ENUM, "spherical", "dp", {"concentration": 0.7})
    p_diag = exact_posterior(ENUM_X2_ANISO, HYP_ENUM, True, "dp", {"concentration": 0.7})
    assert tv(p_sph["kplus_pmf"], p_diag["kplus_pmf"]) > 0.15


@pytest.mark.parametrize("algorithm", ["collapsed", "blocked", "subcluster"])
@pytest.mark.parametrize("name", sorted(ENUM_CASES))
def test_sampler_matches_exact_posterior(name, algorithm):
    x, mix, exact_mix, params, hyper = ENUM_CASES[name]
    exact = exact_posterior(x, HYP_ENUM, "spherical", exact_mix, params, hyper)
    draws = 10000 if algorithm == "collapsed" else 25000
    dr = sample_gibbs(
        spec_of(mix), x, algorithm=algorithm, chains=2, draws=draws, tune=300,
        progress=False, cores=1, seed=20261202,
    )  # fmt: skip
    assert dr.info["kernel"] == "nig_spherical"
    cov = dr.cov[0, 0, 0]
    assert cov[0, 1] == 0.0 and cov[0, 0] == cov[1, 1]
    kplus = dr.sample_stats["n_occupied"]
    assert float(az.ess(kplus.astype(float))) >= MIN_ESS_KPLUS
    got = np.bincount(kplus.ravel(), minlength=len(exact["kplus_pmf"])) / kplus.size
    assert tv(got, exact["kplus_pmf"]) < TV_MAX, (got.round(3), exact["kplus_pmf"].round(3))
    if hyper:
        values = dr.concentration
        mcse = float(az.mcse(values))
        assert abs(values.mean() - exact["mean"]["concentration"]) < 4.5 * mcse


def test_split_merge_alone_targets_exact_posterior():
    """Split-merge moves only (n_sm < 0): the spherical marginal in the move's ratio and the
    inlined sequential predictive must still target the exact posterior."""
    exact = exact_posterior(ENUM_X2, HYP_ENUM, "spherical", "dp", {"concentration": 0.7})
    pmf = exact["kplus_pmf"]
    n, s = len(ENUM_X2), 60000
    z, state = np.zeros(n, np.int64), np.zeros(registry.STATE_SIZE)
    state[0] = 0.7
    out_z, out_k = np.zeros((s, n), np.int32), np.zeros(s, np.int64)
    out_state = np.zeros((s, registry.STATE_SIZE))
    hp = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0])  # every hyperparameter fixed
    collapsed.collapsed_chain(
        np.ascontiguousarray(ENUM_X2, dtype=float), z, state, np.array(HYP_ENUM),
        niw.SPHERICAL, registry.DP, 20, hp, np.zeros(1), 0, s + 100, 100, 1, 5, -3,
        out_z, out_state, out_k,
    )  # fmt: skip
    k_pmf = np.bincount(out_k, minlength=len(pmf))[: len(pmf)] / s
    # 60,000 sweeps of 3 moves: ESS(K+) > 10,000; cell SE < 0.005, so 0.03 is > 5 SE
    assert tv(k_pmf, pmf) < 0.03


# --------------------------------------------------------------------------
# Spec, covariance = "auto", descriptions, refusals
# --------------------------------------------------------------------------


def spherical_clusters(n_per: int = 60, seed: int = 20261203, sd=1.0) -> np.ndarray:
    """Four equal groups of points with sd ``sd`` (per feature) in 4-D, centred at 3 x rows
    of a +-1 matrix (documented seed). With equal sds every feature has the same spread, so
    the groups stay spherical after standardisation, where both the kernel and the EM screen
    work."""
    rng = np.random.default_rng(seed)
    signs = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [-1, 1, -1, 1], [-1, -1, -1, -1]])
    means = 3.0 * np.repeat(signs, n_per, axis=0)
    return means + np.asarray(sd) * rng.standard_normal(means.shape)


def test_auto_picks_spherical_on_spherical_data():
    choice = choose_covariance(em_selection(spherical_clusters(), k_max=6))
    assert choice["best_family"] == "spherical" and choice["covariance"] == "spherical"
    assert choice["k_best"]["spherical"] == 4
    # groups three times wider along one feature than along the others are not spherical
    wide = spherical_clusters(sd=np.array([1.0, 1.0, 1.0, 3.0]))
    assert choose_covariance(em_selection(wide, k_max=6))["covariance"] == "diag"


def test_spec_accepts_spherical_and_rejects_a_misspelling():
    spec = parse_spec({"mixing": {"type": "dp", "alpha": 1}, "kernel": {"covariance": "spherical"}})
    assert spec.kernel.covariance == "spherical"
    with pytest.raises(InputError) as err:
        parse_spec({"mixing": {"type": "dp", "alpha": 1}, "kernel": {"covariance": "sphericl"}})
    msg = str(err.value)
    assert "kernel.covariance" in msg and "full, diag, spherical, auto" in msg
    assert "'sphericl'" in msg


def test_semi_conjugate_spherical_is_refused_with_the_alternatives():
    spec = spec_of(MixingSpec("dp", 10, 1.0, None), prior="semi_conjugate")
    with pytest.raises(InputError, match="covariance = 'diag' or 'full'"):
        sample_gibbs(spec, ENUM_X2, draws=5, tune=1, chains=1, progress=False)


def test_describe_kernel_spherical():
    text = describe_kernel({"covariance": "spherical", "a0": 2.0, "b0": 0.25}, 3)
    assert text.startswith("conjugate Normal-Inverse-Gamma, spherical")
    assert "Sigma = sigma^2 I" in text and "IG(2, 0.25)" in text
    assert "spherical" not in describe_kernel({"covariance": "spherical"}, 1)  # 1-D: the NIG
