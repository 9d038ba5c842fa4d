"""Tests of the compiled Gibbs samplers (blocked and collapsed) for conjugate Gaussian mixtures.

Statistical tolerances are set from Monte Carlo error: each comment gives the standard error
that the bound is a multiple of.  All seeds are fixed, so the tests are deterministic.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest
from exact_partitions import ENUM_X1, ENUM_X2, exact_posterior, set_partitions
from scipy import stats

from bayesmix.engines.gibbs import collapsed, sample_gibbs
from bayesmix.errors import InputError
from bayesmix.kernels import niw as gk
from bayesmix.mixings import registry
from bayesmix.numerics import rng as gibbs_rng
from bayesmix.spec import GammaPrior, KernelSpec, MixingSpec, ModelSpec

GALAXY = Path(__file__).resolve().parents[1] / "bayesmix" / "datasets" / "galaxies.csv"


def make_spec(mtype="dp", k=20, conc=None, prior=(2.0, 4.0), **kern) -> ModelSpec:
    mix = MixingSpec(
        type=mtype,
        n_components=k,
        concentration=conc,
        concentration_prior=None if conc is not None else GammaPrior(*prior),
    )
    return ModelSpec(mixing=mix, kernel=KernelSpec(**kern))


def kplus_pmf(draws, kmax: int) -> np.ndarray:
    k = draws.sample_stats["n_occupied"].ravel()
    return np.bincount(k, minlength=kmax + 1)[: kmax + 1] / k.size


def tv(p: np.ndarray, q: np.ndarray) -> float:
    n = max(len(p), len(q))
    return 0.5 * float(np.abs(np.pad(p, (0, n - len(p))) - np.pad(q, (0, n - len(q)))).sum())


# --------------------------------------------------------------------------
# Textbook conjugate formulas (independent numpy/scipy implementations)
# --------------------------------------------------------------------------


def nig_textbook(x, m0, k0, a0, b0):
    n = len(x)
    xb = float(np.mean(x)) if n else 0.0
    ss = float(np.sum((x - xb) ** 2)) if n else 0.0
    kn = k0 + n
    mn = (k0 * m0 + n * xb) / kn
    an = a0 + n / 2
    bn = b0 + ss / 2 + k0 * n * (xb - m0) ** 2 / (2 * kn)
    return mn, kn, an, bn


def niw_textbook(x, m0, k0, nu0, psi0):
    n, d = x.shape
    xb = x.mean(0) if n else np.zeros(d)
    s = (x - xb).T @ (x - xb)
    kn, nun = k0 + n, nu0 + n
    mn = (k0 * m0 + n * xb) / kn
    psin = psi0 * np.eye(d) + s + k0 * n / kn * np.outer(xb - m0, xb - m0)
    return mn, kn, nun, psin


def t_logpdf_textbook(xq, pts, hyp, diag):
    """Posterior predictive log density of xq given pts, straight from scipy."""
    m0, k0, nu0, psi0 = hyp
    d = pts.shape[1]
    if diag:  # NIG per feature with a0 = nu0/2, b0 = psi0/2
        tot = 0.0
        for j in range(d):
            mn, kn, an, bn = nig_textbook(pts[:, j], m0, k0, nu0 / 2, psi0 / 2)
            scale = math.sqrt(bn * (kn + 1) / (an * kn))
            tot += stats.t(df=2 * an, loc=mn, scale=scale).logpdf(xq[j])
        return tot
    mn, kn, nun, psin = niw_textbook(pts, np.full(d, m0), k0, nu0, psi0)
    df = nun - d + 1
    return stats.multivariate_t(loc=mn, shape=psin * (kn + 1) / (kn * df), df=df).logpdf(xq)


class Slots:
    """Thin wrapper over the collapsed sampler's per-cluster arrays (one slot)."""

    def __init__(self, x, hyp, diag):
        self.x, self.hyp, self.diag = x, np.asarray(hyp, float), diag
        n, d = x.shape
        self.cnt = np.zeros(1, np.int64)
        self.mean = np.zeros((1, d))
        self.scl = np.zeros((1, d, d))
        self.cst = np.zeros(1)
        self.q = np.zeros((1, d))
        self.u = np.zeros(d)
        self.tc, self.tp = gk.predictive_tables(n + 1, d, self.hyp, diag)
        gk.cl_reset(0, self.cnt, self.mean, self.scl, self.cst, self.q, self.tc, self.hyp, diag)

    def _args(self):
        return (self.cnt, self.mean, self.scl, self.cst, self.q, self.tc, self.hyp, self.diag)

    def add(self, i):
        gk.cl_add(self.x, i, 0, *self._args(), self.u)

    def remove(self, i):
        assert gk.cl_remove(self.x, i, 0, *self._args(), self.u)

    def logpred(self, xq):
        xx = np.ascontiguousarray(xq[None, :])
        p = self.tp[self.cnt[0]]
        return gk.cl_logpred(xx, 0, 0, self.mean, self.scl, self.cst, self.q, p, self.diag, self.u)


@pytest.mark.parametrize(
    "d,diag,hyp",
    [
        (1, True, (0.3, 0.5, 4.0, 0.5)),  # 1-D NIG: a0 = 2, b0 = 0.25
        (3, False, (-0.2, 0.1, 5.0, 0.25)),  # NIW full covariance
        (2, True, (0.0, 0.01, 3.0, 0.8)),  # diag: product of NIG Student-t's
    ],
)
def test_student_t_predictive_incremental(d, diag, hyp):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, d)) @ np.triu(np.ones((d, d))) + 0.5
    xq = rng.normal(size=(3, d))
    sl = Slots(x, hyp, diag)
    members: list[int] = []

    def check():
        for q in xq:
            want = t_logpdf_textbook(q, x[members] if members else np.zeros((0, d)), hyp, diag)
            assert sl.logpred(q) == pytest.approx(want, rel=1e-10, abs=1e-10)

    check()  # prior predictive
    for i in range(10):
        sl.add(i)
        members.append(i)
    check()
    for i in (2, 7, 0, 5):  # rank-one downdates in an arbitrary order
        sl.remove(i)
        members.remove(i)
    check()
    for i in (10, 2, 11):
        sl.add(i)
        members.append(i)
    check()
    while len(members) > 1:
        sl.remove(members.pop(0))
    check()


# --------------------------------------------------------------------------
# Conditional posteriors
# --------------------------------------------------------------------------


def test_nig_posterior_hand_case():
    # x = (1, 2, 4), m0 = 0, kappa0 = 1, a0 = 2, b0 = 1: xbar = 7/3, scatter = 14/3,
    # kappa_n = 4, m_n = 7/4, a_n = 3.5, b_n = 1 + 7/3 + 1*3*(7/3)^2/(2*4) = 5.375
    mn, kn, an, bn = gk.nig_posterior(3, 7 / 3, 14 / 3, 0.0, 1.0, 2.0, 1.0)
    assert (mn, kn, an, bn) == pytest.approx((1.75, 4.0, 3.5, 5.375), rel=1e-12)


def test_niw_posterior_hand_case():
    x = np.array([[1.0, 0.0], [2.0, 1.0], [0.0, -1.0], [3.0, 2.0]])
    hyp = np.array([0.5, 0.2, 5.0, 0.3])
    xb = x.mean(0)
    scat = (x - xb).T @ (x - xb)
    m, psi = np.zeros(2), np.zeros((2, 2))
    kn, nun = gk.niw_posterior(4, xb, scat, hyp, False, m, psi)
    mn_t, kn_t, nun_t, psin_t = niw_textbook(x, np.full(2, 0.5), 0.2, 5.0, 0.3)
    assert (kn, nun) == (kn_t, nun_t) == (4.2, 9.0)
    np.testing.assert_allclose(m, mn_t, rtol=1e-12)  # (0.2 * 0.5 + 4 xbar) / 4.2
    np.testing.assert_allclose(psi, psin_t, rtol=1e-12)
    # diag keeps the diagonal only
    kn, nun = gk.niw_posterior(4, xb, scat, hyp, True, m, psi)
    np.testing.assert_allclose(psi, np.diag(np.diag(psin_t)), rtol=1e-12)


@pytest.mark.parametrize("diag", [False, True])
def test_conditional_posterior_draw_moments(diag):
    """E[Sigma] = Psi_n / (nu_n - D - 1) (diag: Psi_dd / (nu_n - 2)), E[mu] = m_n."""
    rng = np.random.default_rng(2)
    d, n, m_draws = 2, 15, 4000
    x = rng.normal(size=(n, d)) @ np.array([[1.0, 0.6], [0.0, 0.8]])
    hyp = np.array([0.0, 0.5, 4.0, 0.3])
    xb = x.mean(0)
    scat = (x - xb).T @ (x - xb)
    mn, kn, nun, psin = niw_textbook(x, np.zeros(d), 0.5, 4.0, 0.3)
    if diag:
        psin = np.diag(np.diag(psin))
        e_cov = psin / (nun - 2)
    else:
        e_cov = psin / (nun - d - 1)
    mu, lo = np.zeros(d), np.zeros((d, d))
    covs, mus = np.zeros((m_draws, d, d)), np.zeros((m_draws, d))
    gibbs_rng.seed_rng(12345)
    for s in range(m_draws):
        gk.draw_params(n, xb, scat, hyp, diag, mu, lo)
        covs[s], mus[s] = lo @ lo.T, mu
    # 5 Monte Carlo standard errors (draws are independent)
    se_cov = covs.std(0) / math.sqrt(m_draws)
    se_mu = mus.std(0) / math.sqrt(m_draws)
    assert np.all(np.abs(covs.mean(0) - e_cov) <= 5 * se_cov + 1e-12)
    assert np.all(np.abs(mus.mean(0) - mn) <= 5 * se_mu)
    if diag:
        assert np.all(covs[:, 0, 1] == 0.0)


# --------------------------------------------------------------------------
# Exact posterior by enumeration of all set partitions (N = 6: 203 partitions)
# --------------------------------------------------------------------------


@cache
def exact_kplus(x_key, hyp, diag, finite, kk, conc, prior):
    """Exact pmf of K+ (k = 0..N) and E[concentration] of the DP / finite Dirichlet mixture by
    enumeration of all set partitions (tests/exact_partitions.py; a Gamma(shape, rate) prior
    on the concentration when ``conc`` is None)."""
    params = {"n_components": kk} if finite else {}
    if conc is not None:
        params["concentration"] = conc
    hp = {"concentration": ("gamma", *prior)} if prior else None
    r = exact_posterior(np.array(x_key), hyp, diag, "finite" if finite else "dp", params, hp)
    return r["kplus_pmf"], r["mean"].get("concentration", math.nan)


@pytest.mark.parametrize(
    "x,cov,mtype,k,conc,prior",
    [
        (ENUM_X1, "full", "dp", 20, None, (2.0, 4.0)),
        (ENUM_X2, "full", "dp", 20, 0.7, None),
        (ENUM_X2, "full", "finite", 4, None, (3.0, 3.0)),
        (ENUM_X2, "diag", "finite", 4, 0.5, None),
    ],
)
@pytest.mark.parametrize("algorithm", ["collapsed", "blocked", "subcluster"])
def test_exact_posterior_by_enumeration(x, cov, mtype, k, conc, prior, algorithm):
    d = x.shape[1]
    diag = d == 1 or cov == "diag"
    hyp = (0.0, 0.1, 4.0, 0.5) if diag else (0.0, 0.1, d + 2.0, 0.25)
    x_key = tuple(map(tuple, x))
    pmf, e_conc = exact_kplus(x_key, hyp, diag, mtype == "finite", k, conc, prior)
    spec = make_spec(mtype, k, conc, prior or (1.0, 1.0), covariance=cov, kappa0=0.1)
    dr = sample_gibbs(
        spec, x, algorithm=algorithm, chains=2, draws=10000, tune=300, progress=False, cores=1
    )
    # 20,000 draws with ESS(K+) > 1,700 in every case (blocked ~2,500, collapsed > 10,000):
    # the SE of a pmf cell is < sqrt(0.25/1700) = 0.012, so E[TV] over <= 5 cells is < 0.025
    # (observed over 4 seeds: <= 0.022 blocked, <= 0.005 collapsed); 0.045 is ~4 SE of a cell.
    assert tv(kplus_pmf(dr, len(pmf) - 1), pmf) < 0.045
    if conc is None:
        mcse = float(az.mcse(dr.concentration))
        assert abs(dr.concentration.mean() - e_conc) < 4 * mcse
        if mtype == "finite":
            acc = dr.info["concentration_accept_rate"]
            assert all(0.2 < a < 0.7 for a in acc)


def exact_max_weight(x, hyp, kk, gam, grid, n_mc=100_000, seed=1):
    """Exact posterior of max_k w_k of a finite Dirichlet(gam) mixture with K = kk, N = 6:
    sum over all partitions of p(partition | x) x P(max Dir(gam + n) <= t), the inner
    probability by n_mc Dirichlet draws (MC error ~1e-3, far below the sampler's)."""
    r = exact_posterior(x, hyp, False, "finite", {"n_components": kk, "concentration": gam})
    rng = np.random.default_rng(seed)
    cdf, mean = np.zeros(len(grid)), 0.0
    for wp, p in zip(r["partition_pmf"], set_partitions(len(x)), strict=True):
        sz = np.bincount(p)
        if wp == 0.0 or len(sz) > kk:
            continue
        a = np.concatenate([sz + gam, np.full(kk - len(sz), gam)])
        mw = rng.dirichlet(a, size=n_mc).max(axis=1)
        cdf += wp * (mw[:, None] <= grid).mean(axis=0)
        mean += wp * mw.mean()
    return cdf, mean


@pytest.mark.parametrize("algorithm", ["blocked", "collapsed"])
def test_largest_weight_matches_exact_posterior(algorithm):
    """The weights, not only K+: the SBC flagged max_w of the blocked finite sampler at the 1%
    level once (not reproduced); here its exact posterior distribution is checked."""
    grid = np.array([0.35, 0.45, 0.55, 0.65, 0.8])
    cdf, mean = exact_max_weight(ENUM_X2, (0.0, 0.1, 4.0, 0.25), 4, 1.0, grid)
    spec = make_spec("finite", 4, 1.0, kappa0=0.1)
    dr = sample_gibbs(
        spec, ENUM_X2, algorithm=algorithm, chains=2, draws=20000, tune=500, progress=False,
        cores=1, seed=3,
    )  # fmt: skip
    mw = dr.w.max(axis=-1)
    # ESS of max_w ~ 15,000+ of 40,000 draws: MCSE of the mean ~ 0.0012; 4.5 MCSE per check
    # (6 checks: family-wise false-alarm rate < 1e-4)
    assert abs(mw.mean() - mean) < 4.5 * float(az.mcse(mw))
    for t, c in zip(grid, cdf, strict=True):
        ind = (mw <= t).astype(float)
        se = math.sqrt(c * (1 - c) / float(az.ess(ind)))
        assert abs(ind.mean() - c) < 4.5 * se, (t, ind.mean(), c)


def test_collapsed_without_split_merge():
    x, hyp = ENUM_X2, (0.0, 0.1, 4.0, 0.25)
    pmf, _ = exact_kplus(tuple(map(tuple, x)), hyp, False, False, 20, 0.7, None)
    spec = make_spec("dp", 20, 0.7, kappa0=0.1)
    dr = sample_gibbs(
        spec, x, algorithm="collapsed", chains=2, draws=10000, tune=300, progress=False,
        cores=1, split_merge=0,
    )  # fmt: skip
    assert "split_merge_accept_rate" not in dr.info
    # ESS(K+) ~ 14,000 of 20,000 draws: cell SE < 0.005; bound as in the test above
    assert tv(kplus_pmf(dr, len(pmf) - 1), pmf) < 0.045


@pytest.mark.parametrize(
    "x,diag,finite,kk,conc",
    [
        (ENUM_X1, True, False, 20, 0.7),
        (ENUM_X2, False, False, 20, 0.7),
        (ENUM_X2, True, True, 3, 0.5),
    ],
)
def test_split_merge_alone_targets_exact_posterior(x, diag, finite, kk, conc):
    """Split-merge moves only (n_sm < 0 skips the single-site sweep): the chain must still
    target the exact posterior (K = 3 < 4 exercises 'no empty slot left')."""
    d = x.shape[1]
    hyp = (0.0, 0.1, 4.0, 0.5) if diag else (0.0, 0.1, d + 2.0, 0.25)
    pmf, _ = exact_kplus(tuple(map(tuple, x)), hyp, diag, finite, kk, conc, None)
    n, s = len(x), 60000
    z, state = np.zeros(n, np.int64), np.zeros(registry.STATE_SIZE)
    state[0] = conc
    out_z, out_k = np.zeros((s, n), np.int32), np.zeros(s, np.int64)
    out_state = np.zeros((s, registry.STATE_SIZE))
    xc = np.ascontiguousarray(x, dtype=float)
    kind = registry.FINITE if finite else registry.DP
    hp = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0])  # every hyperparameter fixed
    collapsed.collapsed_chain(
        xc, z, state, np.array(hyp), diag, kind, kk, hp, np.zeros(1), 0, s + 100, 100, 1, 5,
        -3, out_z, out_state, out_k,
    )  # fmt: skip
    assert state[4] / (3 * s) > 0.05  # the moves are accepted often
    k_pmf = np.bincount(out_k, minlength=len(pmf))[: len(pmf)] / s
    # 60,000 sweeps of 3 moves: ESS(K+) > 10,000 (observed TV <= 0.003 with 200,000 sweeps);
    # cell SE < 0.005, so 0.03 is > 5 SE
    assert tv(k_pmf, pmf) < 0.03


# --------------------------------------------------------------------------
# Galaxy: collapsed (untruncated DP) vs blocked (T = 50)
# --------------------------------------------------------------------------


@cache
def galaxy() -> np.ndarray:
    v = pd.read_csv(GALAXY)["velocity"].to_numpy(float)
    return ((v - v.mean()) / v.std(ddof=1))[:, None]


def test_galaxy_collapsed_vs_blocked():
    spec = make_spec("dp", 50, None, (2.0, 4.0), a0=2.0, b0=0.25)
    kw = dict(chains=4, draws=6000, tune=500, progress=False, cores=1, seed=11)
    col = sample_gibbs(spec, galaxy(), algorithm="collapsed", **kw)
    blk = sample_gibbs(spec, galaxy(), algorithm="blocked", **kw)
    assert col.engine == "collapsed" and blk.engine == "gibbs"
    assert blk.w.shape == (4, 6000, 50)
    # ESS(K+) ~ 3,500 (collapsed, split-merge) and ~ 250 (blocked, label moves): the SE of the
    # pmf difference per cell is ~0.065 sqrt(p(1-p)), so E[TV] <~ 0.05 over the ~6 occupied
    # cells (observed over 6 seeds: 0.009-0.041); alpha: |diff| / combined MCSE <= 1.1 observed.
    assert tv(kplus_pmf(col, 25), kplus_pmf(blk, 25)) < 0.1
    se = math.hypot(float(az.mcse(col.concentration)), float(az.mcse(blk.concentration)))
    assert abs(col.concentration.mean() - blk.concentration.mean()) < 4 * se
    # the posterior of K+ puts most mass on 3-6 groups for these data and priors
    assert 3 <= np.bincount(col.sample_stats["n_occupied"].ravel()).argmax() <= 5


# --------------------------------------------------------------------------
# Recovery of well-separated clusters
# --------------------------------------------------------------------------


def three_clusters_1d(n=300):
    rng = np.random.default_rng(5)
    v = np.concatenate([rng.normal(m, 0.3, n // 3) for m in (-4.0, 0.0, 5.0)])
    return ((v - v.mean()) / v.std(ddof=1))[:, None]


@pytest.mark.parametrize("algorithm", ["collapsed", "blocked"])
@pytest.mark.parametrize("conc,prior", [(0.01, None), (None, (10.0, 100.0))])
def test_sparse_finite_three_clusters(algorithm, conc, prior):
    spec = make_spec("finite", 10, conc, prior or (1.0, 1.0))
    dr = sample_gibbs(
        spec, three_clusters_1d(), algorithm=algorithm, chains=2, draws=500, tune=300,
        progress=False, cores=1, seed=3,
    )  # fmt: skip
    assert dr.w.shape[2] == 10
    assert np.bincount(dr.sample_stats["n_occupied"].ravel()).argmax() == 3
    if conc is None:
        assert "concentration_accept_rate" in dr.info


def elongated_2d(n=300):
    rng = np.random.default_rng(8)
    covs = [np.array([[1.0, 0.9], [0.9, 1.0]]), np.array([[1.0, -0.85], [-0.85, 1.0]])] * 2
    centres = [(-4.0, 0.0), (4.0, 0.0), (0.0, 5.0)]
    x = np.vstack(
        [rng.multivariate_normal(c, 0.6 * s, n // 3) for c, s in zip(centres, covs, strict=False)]
    )
    return (x - x.mean(0)) / x.std(0, ddof=1)


@pytest.mark.parametrize("algorithm", ["collapsed", "blocked"])
def test_niw_elongated_clusters(algorithm):
    spec = make_spec("dp", 20, None, (2.0, 4.0))
    dr = sample_gibbs(
        spec, elongated_2d(), algorithm=algorithm, chains=2, draws=300, tune=200,
        progress=False, cores=1, seed=4,
    )  # fmt: skip
    assert np.bincount(dr.sample_stats["n_occupied"].ravel()).argmax() == 3
    # the three largest components carry the correlations of the simulated clusters
    c, s = 0, dr.n_draws - 1
    top = np.argsort(dr.w[c, s])[::-1][:3]
    corr = dr.cov[c, s, top, 0, 1] / np.sqrt(dr.cov[c, s, top, 0, 0] * dr.cov[c, s, top, 1, 1])
    assert np.sum(corr > 0.5) >= 1 and np.sum(corr < -0.5) >= 1


# --------------------------------------------------------------------------
# Output contract, reproducibility, errors
# --------------------------------------------------------------------------


def _mixture_loglik(x, w, mu, cov):
    dens = np.zeros(len(x))
    for k in range(len(w)):
        if w[k] > 0:
            dens += w[k] * stats.multivariate_normal(mu[k], cov[k]).pdf(x)
    return float(np.log(dens).sum())


@pytest.mark.parametrize("algorithm", ["collapsed", "blocked"])
@pytest.mark.parametrize("d", [1, 2])
def test_output_contract(algorithm, d):
    x = galaxy() if d == 1 else elongated_2d(90)
    n = len(x)
    spec = make_spec("dp", 10, 1.0)  # fixed alpha
    dr = sample_gibbs(
        spec, x, algorithm=algorithm, chains=2, draws=40, tune=20, thin=2,
        progress=False, cores=1,
    )  # fmt: skip
    c, s, k = dr.w.shape
    assert (c, s) == (2, 40) and dr.concentration is None
    assert dr.mu.shape == (c, s, k, d) and dr.cov.shape == (c, s, k, d, d)
    assert dr.z.shape == (c, s, n) and np.issubdtype(dr.z.dtype, np.integer)
    assert dr.z.min() >= 0 and dr.z.max() < k
    np.testing.assert_allclose(dr.w.sum(-1), 1.0, rtol=1e-10)
    # (cov is written symmetric by construction: only positive definiteness is a check)
    assert np.all(np.linalg.eigvalsh(dr.cov) > 0)
    # every allocated point sits in a component with positive weight
    assert np.all(np.take_along_axis(dr.w, dr.z, axis=2) > 0)
    assert set(dr.timing) >= {"compile_s", "sampling_s"}
    assert dr.sample_stats["log_likelihood"].shape == (c, s)
    for cc, ss in [(0, 0), (1, 17), (1, s - 1)]:
        want = _mixture_loglik(x, dr.w[cc, ss], dr.mu[cc, ss], dr.cov[cc, ss])
        assert dr.sample_stats["log_likelihood"][cc, ss] == pytest.approx(want, rel=1e-9)
    if algorithm == "collapsed":
        # K = max occupied + 1; the 'rest' component right after the occupied ones
        kp = dr.sample_stats["n_occupied"]
        assert k == kp.max() + 1
        assert np.all(dr.w[0, 0, kp[0, 0] + 1 :] == 0)
        sizes = np.bincount(dr.z[0, 0], minlength=k)
        assert np.all(np.diff(sizes[: kp[0, 0]]) <= 0)  # relabelled by decreasing size


def test_same_seed_same_draws_and_process_independence():
    spec = make_spec("dp", 20, None, (2.0, 4.0))
    kw = dict(algorithm="collapsed", chains=2, draws=50, tune=20, progress=False)
    a = sample_gibbs(spec, galaxy(), seed=7, cores=1, **kw)
    b = sample_gibbs(spec, galaxy(), seed=7, cores=2, **kw)  # worker threads
    p = sample_gibbs(spec, galaxy(), seed=7, cores=2, executor="processes", **kw)
    c = sample_gibbs(spec, galaxy(), seed=8, cores=1, **kw)
    assert b.info["workers"] == 2 and a.info["start_method"] == "in-process"
    assert b.info["start_method"] == "threads" and p.info["start_method"] != "threads"
    for name in ("w", "mu", "cov", "z", "concentration"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        np.testing.assert_array_equal(getattr(a, name), getattr(p, name))
    assert not np.array_equal(a.z, c.z)
    assert not np.array_equal(a.concentration, c.concentration)
    assert not np.array_equal(a.z[0], a.z[1])  # chains differ


def test_blocked_same_seed():
    spec = make_spec("finite", 6, None, (1.0, 1.0))
    kw = dict(algorithm="blocked", chains=2, draws=30, tune=10, progress=False, cores=1)
    a = sample_gibbs(spec, elongated_2d(60), seed=1, **kw)
    b = sample_gibbs(spec, elongated_2d(60), seed=1, **kw)
    c = sample_gibbs(spec, elongated_2d(60), seed=2, **kw)
    for name in ("w", "mu", "cov", "z", "concentration"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.w, c.w)


def test_non_conjugate_prior_is_rejected():
    spec = ModelSpec(kernel=KernelSpec(prior="weakly_informative"))
    with pytest.raises(InputError, match="kernel.prior = 'conjugate'.*'weakly_informative'"):
        sample_gibbs(spec, galaxy(), progress=False)


def test_bad_arguments():
    spec = make_spec()
    with pytest.raises(InputError, match="algorithm"):
        sample_gibbs(spec, galaxy(), algorithm="slice", progress=False)
    with pytest.raises(InputError, match="NaN"):
        sample_gibbs(spec, np.array([[0.0], [np.nan]]), progress=False)
