"""Tests of tests/exact_partitions.py, the exact-by-enumeration posteriors that the Gibbs
samplers are validated against.  Exact identities are checked to ~1e-12; the Monte Carlo
check of the urn schemes uses a fixed seed and 4.5 binomial standard errors per cell."""

from __future__ import annotations

import math

import numpy as np
import pytest
from exact_partitions import (
    ENUM_X1,
    ENUM_X2,
    HYP_X1,
    HYP_X2_DIAG,
    HYP_X2_FULL,
    block_log_marginal,
    bnb_k,
    exact_posterior,
    k_prior_from_spec,
    log_eppf,
    log_eppf_dp,
    log_eppf_finite,
    log_eppf_mfm_dynamic,
    log_eppf_mfm_static,
    log_eppf_pitman_yor,
    log_k_given_partition,
    log_mfm_vn,
    partition_log_likelihoods,
    point_k,
    poisson_k,
    prior_kplus_pmf,
    recommended_hyp,
    set_partitions,
    size_classes,
    uniform_k,
)
from scipy import integrate, stats
from scipy.special import digamma, gammaln, logsumexp, multigammaln

POIS = poisson_k(3.0, 40)
BNB = bnb_k(1.0, 4.0, 3.0, 100)

# (mixing, params) at fixed hyperparameters, spanning every EPPF
FIXED = [
    ("dp", {"concentration": 0.7}),
    ("dp", {"concentration": 3.0}),
    ("pitman_yor", {"strength": 1.0, "discount": 0.25}),
    ("pitman_yor", {"strength": -0.2, "discount": 0.5}),
    ("pitman_yor", {"strength": 0.0, "discount": 0.9}),
    ("finite", {"concentration": 0.5, "n_components": 4}),
    ("finite", {"concentration": 2.0, "n_components": 10}),
    ("mfm_static", {"concentration": 1.0, "k_prior": POIS}),
    ("mfm_static", {"concentration": 0.3, "k_prior": uniform_k(8)}),
    ("mfm_dynamic", {"concentration": 1.0, "k_prior": BNB}),
    ("mfm_dynamic", {"concentration": 6.0, "k_prior": poisson_k(1.0, 30)}),
]

# (mixing, params, hyper_priors): every kind of random hyperparameter
RANDOM = [
    ("dp", {}, {"concentration": ("gamma", 2.0, 4.0)}),
    ("dp", {}, {"concentration": ("gamma", 0.3, 0.5)}),
    ("dp", {}, {"concentration": ("f", 6.0, 10.0)}),
    ("finite", {"n_components": 4}, {"concentration": ("gamma", 3.0, 3.0)}),
    ("pitman_yor", {"discount": 0.25}, {"strength": ("gamma", 2.0, 2.0)}),
    ("pitman_yor", {"strength": 1.0}, {"discount": ("beta", 1.0, 1.0)}),
    ("pitman_yor", {"strength": 0.0}, {"discount": ("beta", 0.5, 2.0)}),
    ("pitman_yor", {}, {"strength": ("gamma", 2.0, 2.0), "discount": ("beta", 2.0, 3.0)}),
    ("mfm_static", {"k_prior": POIS}, {"concentration": ("gamma", 1.0, 1.0)}),
    ("mfm_dynamic", {"k_prior": BNB}, {"concentration": ("gamma", 1.0, 1.0)}),
    ("mfm_dynamic", {"k_prior": BNB}, {"concentration": ("f", 6.0, 3.0)}),
]


def _id(case) -> str:
    shown = {**case[1], **(case[2] if len(case) > 2 else {})}
    return case[0] + ":" + ",".join(f"{k}={v}" for k, v in shown.items() if k != "k_prior")


def reported(r: dict) -> np.ndarray:
    """Every number exact_posterior reports (the finite moments), as one vector."""
    v = [r["kplus_pmf"], r.get("k_pmf", []), r["partition_pmf"], r["coclustering"].ravel()]
    v.append([r["log_evidence"]])
    for key in ("mean", "second_moment", "mean_log"):
        v.append([x for x in r[key].values() if math.isfinite(x)])
    return np.concatenate([np.asarray(a, float).ravel() for a in v])


# --------------------------------------------------------------------------
# Frozen copy of today's reference in tests/test_gibbs.py (commit c0d5575), kept verbatim
# in substance so that the comparison stays independent when test_gibbs.py starts importing
# from exact_partitions.
# --------------------------------------------------------------------------


def _legacy_partitions(n):
    def rec(i, a, m):
        if i == n:
            yield np.array(a)
            return
        for v in range(m + 2):
            a.append(v)
            yield from rec(i + 1, a, max(m, v))
            a.pop()

    yield from rec(1, [0], 0)


def _legacy_log_marginal(x, hyp, diag):
    m0, k0, nu0, psi0 = hyp
    n, d = x.shape
    if diag:
        return sum(_legacy_log_marginal(x[:, [j]], hyp, False) for j in range(d))
    m0 = np.full(d, m0)
    xb = x.mean(0) if n else np.zeros(d)
    s = (x - xb).T @ (x - xb)
    kn, nun = k0 + n, nu0 + n
    psin = psi0 * np.eye(d) + s + k0 * n / kn * np.outer(xb - m0, xb - m0)
    return (
        -n * d / 2 * math.log(math.pi)
        + multigammaln(nun / 2, d)
        - multigammaln(nu0 / 2, d)
        + nu0 / 2 * d * math.log(psi0)
        - nun / 2 * np.linalg.slogdet(psin)[1]
        + d / 2 * math.log(k0 / kn)
    )


def _legacy_exact_kplus(x, hyp, diag, finite, kk, conc, prior):
    grid = np.array([conc]) if conc is not None else np.exp(np.linspace(-12, 5, 3000))
    log_w = np.zeros_like(grid) if conc is not None else prior[0] * np.log(grid) - prior[1] * grid
    n = len(x)
    rows, ks = [], []
    for p in _legacy_partitions(n):
        sizes = np.bincount(p)
        k = len(sizes)
        if finite and k > kk:
            continue
        lm = sum(_legacy_log_marginal(x[p == j], hyp, diag) for j in range(k))
        if finite:
            lp = (
                gammaln(kk + 1)
                - gammaln(kk - k + 1)
                + gammaln(kk * grid)
                - gammaln(kk * grid + n)
                + np.sum(gammaln(sizes[:, None] + grid) - gammaln(grid), axis=0)
            )
        else:
            lp = k * np.log(grid) + gammaln(grid) - gammaln(grid + n) + np.sum(gammaln(sizes))
        rows.append(lm + lp)
        ks.append(k)
    tab = np.array(rows) + log_w
    w = np.exp(tab - tab.max())
    pmf = np.bincount(ks, weights=w.sum(1)) / w.sum()
    return pmf, float((w * grid).sum() / w.sum())


@pytest.mark.parametrize(
    "x,cov,mtype,k,conc,prior",
    [
        (ENUM_X1, "full", "dp", 20, None, (2.0, 4.0)),
        (ENUM_X2, "full", "dp", 20, 0.7, None),
        (ENUM_X2, "full", "finite", 4, None, (3.0, 3.0)),
        (ENUM_X2, "diag", "finite", 4, 0.5, None),
    ],
)
def test_matches_test_gibbs_exact_kplus(x, cov, mtype, k, conc, prior):
    d = x.shape[1]
    diag = d == 1 or cov == "diag"
    hyp = recommended_hyp(x, diag)
    pmf, e_conc = _legacy_exact_kplus(x, hyp, diag, mtype == "finite", k, conc, prior)
    params = {"n_components": k} if mtype == "finite" else {}
    if conc is not None:
        params["concentration"] = conc
    hp = {"concentration": ("gamma", *prior)} if prior else None
    r = exact_posterior(x, hyp, diag, mtype, params, hp)
    kp = r["kplus_pmf"]
    assert len(kp) == 7 and kp[0] == 0
    np.testing.assert_allclose(kp, np.pad(pmf, (0, 7 - len(pmf))), rtol=0, atol=1e-10)
    if prior:
        assert abs(r["mean"]["concentration"] - e_conc) < 1e-10
    else:
        assert r["mean"] == {}


def test_recommended_hyp_and_data():
    assert ENUM_X1.shape == (6, 1) and ENUM_X2.shape == (6, 2)
    assert recommended_hyp(ENUM_X1, False) == HYP_X1
    assert recommended_hyp(ENUM_X2, False) == HYP_X2_FULL == (0.0, 0.1, 4.0, 0.25)
    assert recommended_hyp(ENUM_X2, True) == HYP_X2_DIAG == (0.0, 0.1, 4.0, 0.5)


# --------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------


def test_set_partitions():
    bell = [1, 2, 5, 15, 52, 203, 877, 4140]
    for n, b in enumerate(bell, start=1):
        p = set_partitions(n)
        assert p.shape == (b, n)
        assert len({tuple(r) for r in p}) == b
        # restricted growth: p[0] = 0 and each label is at most 1 + the previous maximum
        assert np.all(p[:, 0] == 0)
        assert np.all(p[:, 1:] <= np.maximum.accumulate(p, axis=1)[:, :-1] + 1)
    legacy = np.array(list(_legacy_partitions(6)))
    assert np.array_equal(set_partitions(6), legacy)
    classes, cls = size_classes(6)
    assert len(classes) == 11  # integer partitions of 6
    assert all(sum(c) == 6 for c in classes)
    sizes = [tuple(sorted(np.bincount(p), reverse=True)) for p in set_partitions(6)]
    assert [classes[c] for c in cls] == sizes


def _t_predictive_chain(x, hyp, diag):
    """log p(x_1..x_n) as the product of scipy Student-t predictives p(x_i | x_<i)."""
    m0, k0, nu0, psi0 = hyp
    n, d = x.shape
    if diag and d > 1:
        return sum(_t_predictive_chain(x[:, [j]], hyp, False) for j in range(d))
    tot = 0.0
    for i in range(n):
        pts = x[:i]
        xb = pts.mean(0) if i else np.zeros(d)
        s = (pts - xb).T @ (pts - xb)
        kn, nun = k0 + i, nu0 + i
        mn = (k0 * m0 + i * xb) / kn
        psin = psi0 * np.eye(d) + s + k0 * i / kn * np.outer(xb - m0, xb - m0)
        df = nun - d + 1
        shape = psin * (kn + 1) / (kn * df)
        tot += stats.multivariate_t(loc=mn, shape=shape, df=df).logpdf(x[i])
    return tot


@pytest.mark.parametrize(
    "d,diag,hyp",
    [
        (1, False, HYP_X1),
        (2, False, HYP_X2_FULL),
        (2, True, HYP_X2_DIAG),
        (3, False, (0.3, 0.5, 5.5, 0.8)),
        (3, True, (-0.2, 2.0, 3.0, 1.5)),
    ],
)
def test_block_marginal_is_product_of_student_t_predictives(d, diag, hyp):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(5, d)) @ np.triu(np.ones((d, d))) + 0.4
    for m in range(1, 6):
        assert (
            abs(block_log_marginal(x[:m], hyp, diag) - _t_predictive_chain(x[:m], hyp, diag))
            < 1e-10
        )
    assert block_log_marginal(x[:0], hyp, diag) == 0.0
    if d == 1:  # a 1-D array is points of one feature
        assert block_log_marginal(x[:, 0], hyp, diag) == block_log_marginal(x, hyp, diag)


def test_partition_log_likelihoods():
    ll = partition_log_likelihoods(ENUM_X2, HYP_X2_FULL, False)
    parts = set_partitions(6)
    for r in (0, 1, 57, 202):
        p = parts[r]
        ref = sum(
            block_log_marginal(ENUM_X2[p == j], HYP_X2_FULL, False) for j in range(p.max() + 1)
        )
        assert abs(ll[r] - ref) < 1e-12
    assert np.all(partition_log_likelihoods(ENUM_X2, None, False) == 0)


def test_k_priors():
    for rate, km in [(3.0, 40), (0.5, 15)]:
        ref = stats.poisson(rate).logpmf(np.arange(km))
        np.testing.assert_allclose(poisson_k(rate, km), ref - logsumexp(ref), atol=1e-12)
    for args in [(1.0, 4.0, 3.0, 100), (2.0, 6.0, 2.0, 200)]:
        ref = stats.betanbinom(*args[:3]).logpmf(np.arange(args[3]))
        np.testing.assert_allclose(bnb_k(*args), ref - logsumexp(ref), atol=1e-10)
    with pytest.raises(ValueError, match="beyond K_max"):
        bnb_k(1.0, 4.0, 3.0, 30)  # drops 2.5e-4 of the prior
    np.testing.assert_allclose(np.exp(uniform_k(7)), np.full(7, 1 / 7))
    assert np.exp(point_k(3, 5)).tolist() == [0, 0, 1, 0, 0]
    np.testing.assert_array_equal(k_prior_from_spec(("poisson", 3.0), 40), POIS)
    np.testing.assert_array_equal(k_prior_from_spec(("bnb", 1.0, 4.0, 3.0), 100), BNB)
    with pytest.raises(ValueError, match="normalised"):
        k_prior_from_spec(np.log(np.full(5, 0.1)))


# --------------------------------------------------------------------------
# EPPFs: textbook formulas, normalisation, consistency, identities
# --------------------------------------------------------------------------


def _textbook_eppf(sizes, mixing, p):
    """The EPPFs as the brief writes them, with math.lgamma (moderate parameters only)."""
    lg, n, k = math.lgamma, sum(sizes), len(sizes)

    def finite(g, kk):
        if k > kk:
            return -math.inf
        return (
            lg(kk + 1) - lg(kk - k + 1) + lg(kk * g) - lg(kk * g + n)
            + sum(lg(nj + g) - lg(g) for nj in sizes)
        )  # fmt: skip

    if mixing == "dp":
        a = p["concentration"]
        return k * math.log(a) + lg(a) - lg(a + n) + sum(lg(nj) for nj in sizes)
    if mixing == "pitman_yor":
        th, sg = p["strength"], p["discount"]
        out = sum(math.log(th + i * sg) for i in range(1, k)) - (lg(th + n) - lg(th + 1))
        return out + sum(lg(nj - sg) - lg(1 - sg) for nj in sizes)
    if mixing == "finite":
        return finite(p["concentration"], p["n_components"])
    lpk = p["k_prior"]
    dyn = mixing == "mfm_dynamic"
    terms = [
        lpk[kk - 1] + finite(p["concentration"] / kk if dyn else p["concentration"], kk)
        for kk in range(1, len(lpk) + 1)
        if lpk[kk - 1] > -math.inf
    ]
    return float(logsumexp(terms))


@pytest.mark.parametrize("case", FIXED, ids=_id)
def test_eppf_textbook_normalised_and_consistent(case):
    mixing, p = case
    for n in range(1, 8):
        parts = set_partitions(n)
        lp = np.array([float(log_eppf(np.bincount(q), mixing, p)) for q in parts])
        # normalisation: the prior probabilities of all set partitions of n points sum to 1
        assert abs(math.fsum(np.exp(lp)) - 1) < 1e-12, n
        if n == 6:
            ref = [_textbook_eppf(tuple(np.bincount(q)), mixing, p) for q in parts]
            np.testing.assert_allclose(lp, ref, rtol=0, atol=1e-11)
        # consistency: p(C_n) = sum over the n + 1 placements of point n + 1 of p(C_{n+1})
        if n < 7:
            for q in parts[:: max(1, len(parts) // 25)]:
                sz = np.bincount(q)
                ext = [np.append(sz, 1)] + [
                    sz + np.eye(len(sz), dtype=int)[j] for j in range(len(sz))
                ]
                le = [float(log_eppf(e, mixing, p)) for e in ext]
                lp_sz = float(log_eppf(sz, mixing, p))
                if lp_sz == -math.inf:  # finite mixture, k > K: so are all extensions
                    assert max(le) == -math.inf
                else:
                    assert abs(logsumexp(le) - lp_sz) < 1e-12


def test_eppf_identities_and_vectorisation():
    grid = np.exp(np.linspace(-3, 3, 13))
    classes, _ = size_classes(6)
    for sizes in classes:
        # PY with sigma = 0 is the DP; PY(K gamma, -gamma) is the finite Dirichlet(gamma, K)
        np.testing.assert_allclose(
            log_eppf_pitman_yor(sizes, grid, 0.0), log_eppf_dp(sizes, grid), atol=1e-12
        )
        fin = log_eppf_finite(sizes, grid, 4)
        py = log_eppf_pitman_yor(sizes, 4 * grid, -grid)
        if len(sizes) > 4:
            assert np.all(fin == -np.inf) and np.all(py == -np.inf)
        else:
            np.testing.assert_allclose(py, fin, atol=1e-11)
        # static MFM: V_n(k) prod (gamma)_(n_j) = sum_K p(K) finite(gamma, K), and a point
        # mass on K gives the finite mixture
        direct = logsumexp(
            [POIS[kk - 1] + log_eppf_finite(sizes, grid, kk) for kk in range(1, 41)], axis=0
        )
        np.testing.assert_allclose(log_eppf_mfm_static(sizes, grid, POIS), direct, atol=1e-12)
        np.testing.assert_allclose(log_eppf_mfm_static(sizes, grid, point_k(4, 9)), fin, atol=1e-12)
        dyn = log_eppf_mfm_dynamic(sizes, 4 * grid, point_k(4, 9))
        np.testing.assert_allclose(dyn, fin, atol=1e-11)
        # vectorised over the grid = elementwise
        vec_dp, vec_dyn = log_eppf_dp(sizes, grid), log_eppf_mfm_dynamic(sizes, grid, BNB)
        for i in range(0, len(grid), 4):
            assert abs(vec_dp[i] - log_eppf_dp(sizes, grid[i])) < 1e-14
            assert abs(vec_dyn[i] - log_eppf_mfm_dynamic(sizes, grid[i], BNB)) < 1e-13
        # p(K | partition) is normalised and proportional to p(K) finite(gamma, K)
        lk = log_k_given_partition(sizes, 1.3, POIS)
        assert abs(math.fsum(np.exp(lk)) - 1) < 1e-12
        assert np.all(np.exp(lk[: len(sizes) - 1]) == 0)
        ratio = (
            lk[len(sizes) :]
            - POIS[len(sizes) :]
            - log_eppf_finite(sizes, 1.3, np.arange(len(sizes) + 1, 41))
        )
        assert np.ptp(ratio) < 1e-11
    # V_n(k) at n = 1: sum_K K / (gamma K) p(K) = 1 / gamma
    assert abs(log_mfm_vn(1, 1, 0.4, POIS) - math.log(1 / 0.4)) < 1e-13
    # stable at huge parameters where gammaln would cancel: the DP EPPF of all singletons -> 1
    assert abs(log_eppf_dp([1] * 6, 1e25)) < 1e-12


# --------------------------------------------------------------------------
# The posterior: identities between mixings
# --------------------------------------------------------------------------


def _assert_same(r1, r2, atol=1e-12, hyper=True):
    for key in ("kplus_pmf", "partition_pmf", "coclustering"):
        np.testing.assert_allclose(r1[key], r2[key], rtol=0, atol=atol)
    assert abs(r1["log_evidence"] - r2["log_evidence"]) < atol
    if hyper:
        for key in ("mean", "second_moment"):
            assert r1[key].keys() == r2[key].keys()
            for nm in r1[key]:
                assert abs(r1[key][nm] - r2[key][nm]) < atol, (key, nm)


@pytest.mark.parametrize("x,hyp", [(ENUM_X1, HYP_X1), (ENUM_X2, HYP_X2_FULL)])
def test_pitman_yor_with_zero_discount_is_dp(x, hyp):
    for p, hp in [({"concentration": 0.7}, None), ({}, {"concentration": ("gamma", 2.0, 4.0)})]:
        dp = exact_posterior(x, hyp, False, "dp", p, hp)
        pyp = {"strength": p.get("concentration"), "discount": 0.0}
        pyh = {"strength": hp["concentration"]} if hp else None
        py = exact_posterior(x, hyp, False, "pitman_yor", pyp, pyh)
        _assert_same(dp, py, hyper=False)
        if hp:
            assert abs(dp["mean"]["concentration"] - py["mean"]["strength"]) < 1e-12
            assert (
                abs(dp["second_moment"]["concentration"] - py["second_moment"]["strength"]) < 1e-12
            )


@pytest.mark.parametrize("diag", [False, True])
def test_finite_is_mfm_with_point_mass_k(diag):
    x, hyp = ENUM_X2, (HYP_X2_DIAG if diag else HYP_X2_FULL)
    for p, hp in [({"concentration": 0.5}, None), ({}, {"concentration": ("gamma", 3.0, 3.0)})]:
        fin = exact_posterior(x, hyp, diag, "finite", {**p, "n_components": 4}, hp)
        mfm = exact_posterior(x, hyp, diag, "mfm_static", {**p, "k_prior": point_k(4, 9)}, hp)
        _assert_same(fin, mfm)
        np.testing.assert_allclose(mfm["k_pmf"], np.exp(point_k(4, 9)), atol=1e-14)
        assert fin["kplus_pmf"][5:].sum() == 0 and "k_pmf" not in fin
    # dynamic MFM with K = 4 and alpha = 4 gamma; gamma ~ Gamma(3, 3) <=> alpha ~ Gamma(3, 3/4)
    fin = exact_posterior(x, hyp, diag, "finite", {"n_components": 4, "concentration": 0.5})
    dyn = exact_posterior(
        x, hyp, diag, "mfm_dynamic", {"concentration": 2.0, "k_prior": point_k(4)}
    )
    _assert_same(fin, dyn)
    fin = exact_posterior(
        x, hyp, diag, "finite", {"n_components": 4}, {"concentration": ("gamma", 3.0, 3.0)}
    )
    dyn = exact_posterior(
        x,
        hyp,
        diag,
        "mfm_dynamic",
        {"k_prior": point_k(4)},
        {"concentration": ("gamma", 3.0, 0.75)},
    )
    _assert_same(fin, dyn, atol=1e-10, hyper=False)
    assert abs(4 * fin["mean"]["concentration"] - dyn["mean"]["concentration"]) < 1e-10
    assert (
        abs(16 * fin["second_moment"]["concentration"] - dyn["second_moment"]["concentration"])
        < 1e-9
    )
    assert (
        abs(fin["mean_log"]["concentration"] + math.log(4) - dyn["mean_log"]["concentration"])
        < 1e-10
    )


@pytest.mark.parametrize("mixing", ["mfm_static", "mfm_dynamic"])
def test_k_posterior_is_mixture_over_partitions(mixing):
    """p(K | x) = sum_C p(C | x) p(K | C), by a direct loop over the 203 partitions."""
    p = {"concentration": 0.8, "k_prior": POIS}
    r = exact_posterior(ENUM_X2, HYP_X2_FULL, False, mixing, p)
    direct = np.zeros(len(POIS))
    for pp, q in zip(r["partition_pmf"], set_partitions(6), strict=True):
        direct += pp * np.exp(
            log_k_given_partition(np.bincount(q), 0.8, POIS, mixing == "mfm_dynamic")
        )
    np.testing.assert_allclose(r["k_pmf"], direct, rtol=0, atol=1e-13)
    assert r["k_values"].tolist() == list(range(1, 41))
    # the data have >= 2 clusters with high probability, so K moves up from the prior
    assert r["k_pmf"][0] < math.exp(POIS[0])


def test_partition_pmf_by_direct_loop():
    """A Pitman-Yor case partition by partition: prod_j m(x_Bj) x EPPF, normalised."""
    p = {"strength": 0.6, "discount": 0.3}
    r = exact_posterior(ENUM_X2, HYP_X2_DIAG, True, "pitman_yor", p)
    lj = []
    for q in set_partitions(6):
        lm = sum(block_log_marginal(ENUM_X2[q == j], HYP_X2_DIAG, True) for j in range(q.max() + 1))
        lj.append(lm + _textbook_eppf(tuple(np.bincount(q)), "pitman_yor", p))
    lz = logsumexp(lj)
    np.testing.assert_allclose(r["partition_pmf"], np.exp(np.array(lj) - lz), rtol=0, atol=1e-13)
    assert abs(r["log_evidence"] - lz) < 1e-12
    co = r["coclustering"]
    assert np.allclose(np.diag(co), 1) and np.allclose(co, co.T)
    assert co[0, 1] > 0.5 > co[0, 3]  # points 0, 1 are close together, 0 and 3 far apart


def test_bad_arguments():
    with pytest.raises(ValueError, match="strength > -discount"):
        exact_posterior(ENUM_X1, HYP_X1, False, "pitman_yor", {"strength": -0.3, "discount": 0.2})
    with pytest.raises(ValueError, match="strength > -discount"):  # theta < 0 with random sigma
        exact_posterior(
            6, None, False, "pitman_yor", {"strength": -0.1}, {"discount": ("beta", 1, 1)}
        )
    with pytest.raises(ValueError, match="missing"):
        exact_posterior(ENUM_X1, HYP_X1, False, "dp", {})
    with pytest.raises(ValueError, match="cannot be random"):
        exact_posterior(
            ENUM_X1,
            HYP_X1,
            False,
            "finite",
            {"concentration": 1.0},
            {"n_components": ("gamma", 1, 1)},
        )
    with pytest.raises(ValueError, match="needs k_max"):
        exact_posterior(
            ENUM_X1,
            HYP_X1,
            False,
            "mfm_static",
            {"concentration": 1.0, "k_prior": ("poisson", 3.0)},
        )


# --------------------------------------------------------------------------
# Flat likelihood: the posterior is the prior
# --------------------------------------------------------------------------


def _kplus_urn(n, new_table):
    """Exact pmf of K+ from the urn: point m + 1 opens a new cluster w.p. new_table(k, m)."""
    p = np.zeros(n + 1)
    p[1] = 1.0
    for m in range(1, n):
        nxt = np.zeros(n + 1)
        for k in range(1, m + 1):
            q = new_table(k, m)
            nxt[k] += p[k] * (1 - q)
            nxt[k + 1] += p[k] * q
        p = nxt
    return p


def _urn_prior(n, mixing, p):
    if mixing == "dp":
        a = p["concentration"]
        return _kplus_urn(n, lambda k, m: a / (a + m))
    if mixing == "pitman_yor":
        th, sg = p["strength"], p["discount"]
        return _kplus_urn(n, lambda k, m: (th + k * sg) / (th + m))

    def finite(g, kk):
        return _kplus_urn(n, lambda k, m: (kk - k) * g / (kk * g + m))

    if mixing == "finite":
        return finite(p["concentration"], p["n_components"])
    dyn = mixing == "mfm_dynamic"
    return sum(
        math.exp(lp) * finite(p["concentration"] / kk if dyn else p["concentration"], kk)
        for kk, lp in enumerate(p["k_prior"], start=1)
    )


@pytest.mark.parametrize("case", FIXED, ids=_id)
def test_flat_posterior_is_urn_prior(case):
    mixing, p = case
    for n in (1, 4, 6):
        r = exact_posterior(n, None, False, mixing, p)
        np.testing.assert_allclose(r["kplus_pmf"], _urn_prior(n, mixing, p), rtol=0, atol=1e-12)
        assert abs(r["log_evidence"]) < 1e-12
        if "k_prior" in p:
            np.testing.assert_allclose(r["k_pmf"], np.exp(p["k_prior"]), rtol=0, atol=1e-12)
    # the prior co-clustering probability P(z_1 = z_2) in closed form
    same = {
        "dp": lambda: 1 / (1 + p["concentration"]),
        "pitman_yor": lambda: (1 - p["discount"]) / (1 + p["strength"]),
        "finite": lambda: (1 + p["concentration"]) / (1 + p["n_components"] * p["concentration"]),
    }
    if mixing in same:
        co = exact_posterior(6, None, False, mixing, p)["coclustering"]
        assert np.allclose(co[~np.eye(6, dtype=bool)], same[mixing](), atol=1e-12)


def _prior_moments(spec):
    name, a, b = spec
    if name == "gamma":
        return a / b, a * (a + 1) / b**2, digamma(a) - math.log(b)
    if name == "beta":
        return a / (a + b), a * (a + 1) / ((a + b) * (a + b + 1)), digamma(a) - digamma(a + b)
    m1 = b / (b - 2) if b > 2 else math.inf
    m2 = b**2 * (a + 2) / (a * (b - 2) * (b - 4)) if b > 4 else math.inf
    return m1, m2, math.log(b / a) + digamma(a / 2) - digamma(b / 2)


_DISTS = {"gamma": lambda a, b: stats.gamma(a, scale=1 / b), "f": stats.f, "beta": stats.beta}


def _quad(d, f, epsrel=1e-12):
    """integral of d.pdf(v) f(v) (f scalar- or vector-valued) over the support of d by
    adaptive quadrature (scipy.integrate.quad_vec), split at the median."""
    lo, hi = d.support()
    med = float(d.median())
    return sum(
        integrate.quad_vec(lambda v: d.pdf(v) * f(v), a, b, epsabs=1e-14, epsrel=epsrel)[0]
        for a, b in [(lo, med), (med, hi)]
    )


def _quad_prior_kplus(mixing, p, hp):
    """The K+ prior for N = 6 with the hyperparameters integrated by scipy.integrate.quad."""
    specs = {nm: _DISTS[s[0]](*s[1:]) for nm, s in hp.items()}

    def at(q):
        q = {**p, **q}
        if "strength" in hp:  # the prior is on theta + sigma
            q["strength"] = q["strength"] - q["discount"]
        return _urn_prior(6, mixing, q)

    if len(hp) == 2:  # PY with theta + sigma and sigma both random: nested quadrature
        ds, dg = specs["strength"], specs["discount"]
        return _quad(ds, lambda s: _quad(dg, lambda sg: at({"strength": s, "discount": sg}), 1e-10))
    ((nm, d),) = specs.items()
    return _quad(d, lambda v: at({nm: v}))


@pytest.mark.parametrize("case", RANDOM, ids=_id)
def test_flat_posterior_of_hyperparameters_is_prior(case):
    """Grid integration against closed forms: with a flat likelihood every reported moment
    of a random hyperparameter is its prior moment, and the K+ pmf is the urn prior
    integrated over the hyperprior by adaptive quadrature."""
    mixing, p, hp = case
    r = exact_posterior(6, None, False, mixing, p, hp)
    for nm, spec in hp.items():
        m1, m2, ml = _prior_moments(spec)
        if mixing == "pitman_yor" and nm == "strength":  # the prior is on theta + sigma
            es = p["discount"] if "discount" in p else _prior_moments(hp["discount"])[0]
            es2 = p["discount"] ** 2 if "discount" in p else _prior_moments(hp["discount"])[1]
            m2 = m2 - 2 * m1 * es + es2  # E[(s - sigma)^2], s and sigma independent
            m1 = m1 - es
        for key, ref in [("mean", m1), ("second_moment", m2)]:
            got = r[key][nm]
            assert (got == ref == math.inf) or abs(got - ref) < 1e-10 * max(1, abs(ref)), (
                key,
                got,
                ref,
            )
        if nm in r["mean_log"]:
            assert abs(r["mean_log"][nm] - ml) < 1e-10
        nodes, pmf = r["hyper_grid"][nm]
        assert abs(pmf.sum() - 1) < 1e-12 and len(nodes) == len(pmf)
    if "k_prior" in p:
        np.testing.assert_allclose(r["k_pmf"], np.exp(p["k_prior"]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(r["kplus_pmf"], _quad_prior_kplus(mixing, p, hp), rtol=0, atol=1e-8)


# --------------------------------------------------------------------------
# Monte Carlo: the generative urns
# --------------------------------------------------------------------------


def _draw(rng, spec, size):
    name, a, b = spec
    if name == "gamma":
        return rng.gamma(a, 1 / b, size)
    if name == "f":
        return rng.f(a, b, size)
    return rng.beta(a, b, size)


def _mc_kplus(mixing, p, hp, n=6, draws=200_000, seed=11):
    rng = np.random.default_rng(seed)
    v = {nm: np.full(draws, float(val)) for nm, val in p.items() if nm != "k_prior"}
    for nm, spec in hp.items():
        v[nm] = _draw(rng, spec, draws)
    if mixing in ("dp", "pitman_yor"):  # Chinese restaurant: new table w.p. (th + k sg)/(th + m)
        sg = v.get("discount", np.zeros(draws))
        th = (
            v["strength"] - sg * ("strength" in hp)
            if mixing == "pitman_yor"
            else v["concentration"]
        )
        k = np.ones(draws)
        for m in range(1, n):
            k += rng.random(draws) < (th + k * sg) / (th + m)
        return np.bincount(k.astype(int), minlength=n + 1)
    # finite / MFM: draw K, then w ~ Dir(gamma_K), then the n allocations
    if mixing == "finite":
        kk = np.full(draws, p["n_components"])
    else:
        lpk = p["k_prior"]
        kk = rng.choice(len(lpk), size=draws, p=np.exp(lpk) / np.exp(lpk).sum()) + 1
    g = v["concentration"] / kk if mixing == "mfm_dynamic" else v["concentration"]
    counts = np.zeros(n + 1, dtype=int)
    for kv in np.unique(kk):
        sel = kk == kv
        gs = g[sel][:, None]
        # log Dirichlet weights: log Gamma(g) = log Gamma(g + 1) + log(U) / g (no underflow)
        lw = (
            np.log(rng.gamma(gs + 1, size=(sel.sum(), kv)))
            + np.log(rng.random((sel.sum(), kv))) / gs
        )
        z = np.argmax(lw[:, None, :] + rng.gumbel(size=(sel.sum(), n, kv)), axis=2)
        zs = np.sort(z, axis=1)
        kplus = 1 + (np.diff(zs, axis=1) != 0).sum(axis=1)
        counts += np.bincount(kplus, minlength=n + 1)
    return counts


MC_CASES = [
    ("dp", {}, {"concentration": ("gamma", 2.0, 4.0)}),
    ("pitman_yor", {"strength": 1.0, "discount": 0.25}, {}),
    ("pitman_yor", {}, {"strength": ("gamma", 2.0, 2.0), "discount": ("beta", 2.0, 3.0)}),
    ("finite", {"n_components": 4}, {"concentration": ("gamma", 3.0, 3.0)}),
    ("mfm_static", {"concentration": 1.0, "k_prior": POIS}, {}),
    ("mfm_dynamic", {"k_prior": BNB}, {"concentration": ("f", 6.0, 3.0)}),
]


@pytest.mark.parametrize("case", MC_CASES, ids=_id)
def test_kplus_prior_matches_simulated_urn(case):
    mixing, p, hp = case
    exact = prior_kplus_pmf(6, mixing, p, hp)
    counts = _mc_kplus(mixing, p, hp)
    nd = counts.sum()
    se = np.sqrt(exact * (1 - exact) / nd)
    # 4.5 binomial SE per cell (<= 6 cells per case; observed max |z| = 2.1); a cell of
    # probability 0 (finite K = 4: K+ > 4) must stay empty
    assert np.all(np.abs(counts / nd - exact) <= 4.5 * se), (counts / nd, exact)


# --------------------------------------------------------------------------
# Grid accuracy
# --------------------------------------------------------------------------


@pytest.mark.parametrize("case", RANDOM, ids=_id)
def test_grid_halving_and_widening(case):
    """Halving the grid step, or widening the range (tail 1e-14 -> 1e-18), moves every
    reported number by < 1e-10 (observed: halving <= 1.2e-14, widening <= 4e-13, over these
    cases on ENUM_X1, ENUM_X2 full and diag).  test_coarse_grid_is_detected shows that the
    comparison can fail."""
    mixing, p, hp = case
    ref = reported(exact_posterior(ENUM_X2, HYP_X2_FULL, False, mixing, p, hp))
    half = reported(exact_posterior(ENUM_X2, HYP_X2_FULL, False, mixing, p, hp, grid_step=0.05))
    wide = reported(exact_posterior(ENUM_X2, HYP_X2_FULL, False, mixing, p, hp, grid_tail=1e-18))
    assert np.abs(half - ref).max() < 1e-10
    assert np.abs(wide - ref).max() < 1e-10


def test_coarse_grid_is_detected():
    """The halving check above can fail: a grid that is too coarse, or too short, moves the
    numbers by more than 1e-10."""
    mixing, p, hp = RANDOM[1]
    ref = reported(exact_posterior(ENUM_X2, HYP_X2_FULL, False, mixing, p, hp))
    coarse = reported(exact_posterior(ENUM_X2, HYP_X2_FULL, False, mixing, p, hp, grid_step=0.8))
    short = reported(exact_posterior(ENUM_X2, HYP_X2_FULL, False, mixing, p, hp, grid_tail=1e-6))
    assert np.abs(coarse - ref).max() > 1e-8
    assert np.abs(short - ref).max() > 1e-8


@pytest.mark.parametrize(
    "x,hyp,mixing,p,hp",
    [
        (ENUM_X1, HYP_X1, "dp", {}, {"concentration": ("gamma", 2.0, 4.0)}),
        (ENUM_X2, HYP_X2_FULL, "mfm_dynamic", {"k_prior": BNB}, {"concentration": ("f", 6.0, 3.0)}),
        (ENUM_X2, HYP_X2_FULL, "pitman_yor", {"strength": 0.5}, {"discount": ("beta", 2.0, 2.0)}),
    ],
)
def test_posterior_mean_by_quadrature(x, hyp, mixing, p, hp):
    """E[eta | x] and P(K+ = 2 | x) by scipy.integrate.quad over the hyperparameter (on the
    prior's own scale), with the likelihood summed within the size classes."""
    ((nm, spec),) = hp.items()
    r = exact_posterior(x, hyp, False, mixing, p, hp)
    ll = partition_log_likelihoods(x, hyp, False)
    classes, cls = size_classes(6)
    log_l = np.array([logsumexp(ll[cls == c]) for c in range(len(classes))]) - ll.max()
    d = _DISTS[spec[0]](*spec[1:])

    def lik(v):  # [p(x | v), v p(x | v), p(x, K+ = 2 | v)], up to a constant
        q = {**p, nm: v}
        terms = [
            math.exp(log_l[c] + float(log_eppf(sz, mixing, q))) for c, sz in enumerate(classes)
        ]
        two = sum(t for t, sz in zip(terms, classes, strict=True) if len(sz) == 2)
        return np.array([sum(terms), v * sum(terms), two])

    z, m1, k2 = _quad(d, lik, 1e-10)
    assert abs(m1 / z - r["mean"][nm]) < 1e-8
    assert abs(k2 / z - r["kplus_pmf"][2]) < 1e-9
