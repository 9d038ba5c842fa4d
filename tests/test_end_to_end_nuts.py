"""End-to-end NUTS fits on synthetic data with a known number of clusters.

Each distinct model costs one PyTensor/nutpie compilation (15-25 s warm, 90-120 s
cold), so the suite fits each model once (module-scoped) and asserts several things.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import three_clusters_1d, three_clusters_2d

from bayesmix.fit import fit
from bayesmix.spec import load_spec

SAMPLING = dict(engine="nuts", chains=2, draws=500, tune=500, progress=False)


@pytest.fixture(scope="module")
def fit_dp_1d():
    return fit(three_clusters_1d(), "dp", seed=11, **SAMPLING)


@pytest.fixture(scope="module")
def fit_sparse_1d():
    return fit(three_clusters_1d(), "sparse_finite", seed=12, **SAMPLING)


@pytest.fixture(scope="module")
def fit_dp_2d():
    """The conjugate DP in 2-D at target_accept 0.8 (the setting this fixture was written for;
    the NUTS default is 0.9 since the NUTS study). NUTS does not converge reliably on this
    model: over seeds 13 / 14 / 15 it gave P(K+ = 3) = 0.41 / 0.94 / 0.51 at 0.8 and 0.28 /
    0.90 / 0.52 at 0.9, against 0.93 from both Gibbs engines (``python -m benchmarks.nuts_seed_spread``). The tests below check the plumbing of one fixed run
    (partition, relabelling, estimator), not NUTS's convergence, which
    ``benchmarks/nuts_study.py`` measures."""
    x, _, _ = three_clusters_2d()
    spec = load_spec("dp")
    spec = dataclasses.replace(spec, sampler=dataclasses.replace(spec.sampler, target_accept=0.8))
    return fit(x, spec, seed=13, **SAMPLING)


def _kplus_pmf(result) -> dict[str, float]:
    """{"k": share of the draws with K+ = k} from the allocations group, by bincount."""
    n = result.idata["allocations"]["n_clusters"].values.ravel()
    counts = np.bincount(n)
    return {str(k): c / n.size for k, c in enumerate(counts) if c > 0}


@pytest.mark.parametrize("which", ["fit_dp_1d", "fit_sparse_1d"])
def test_1d_three_clusters(which, request):
    result = request.getfixturevalue(which)
    nc = result.summary["n_clusters"]
    assert nc["mode"] == 3
    assert nc["pmf"]["3"] > 0.5
    assert 3 in nc["credible_set_90"]


def test_2d_elongated_clusters(fit_dp_2d):
    # Three true clusters, but the DP posterior of K+ is split between 3 and 4 (about 0.40 and
    # 0.38), so the mode is not a stable statistic of a short NUTS run: ask for 3 to be
    # credible and for most of the mass to be on 3 or 4.
    nc = fit_dp_2d.summary["n_clusters"]
    assert 3 in nc["credible_set_90"], nc
    assert nc["pmf"].get("3", 0.0) + nc["pmf"].get("4", 0.0) > 0.5, nc["pmf"]


def test_datatree_layout_and_units(fit_dp_1d):
    dt = fit_dp_1d.idata
    for group in ("posterior", "sample_stats", "log_likelihood", "observed_data", "allocations"):
        assert group in dt.children
    post = dt["posterior"]
    assert post["w"].dims == ("chain", "draw", "cluster")
    assert post["mu"].dims == ("chain", "draw", "cluster", "feature")
    assert post["sigma"].dims == ("chain", "draw", "cluster")
    np.testing.assert_allclose(post["w"].sum("cluster"), 1.0, atol=1e-8)
    alloc = dt["allocations"]
    # z over the draws it is stored for (storage policy): here, N x draws is small, all of them
    assert alloc["z"].dims == ("chain", "z_draw", "obs_id")
    assert np.array_equal(alloc["z_draw"].values, np.arange(post.sizes["draw"]))
    assert alloc["n_clusters"].dims == ("chain", "draw")
    # Means are reported in the data's own units: the heaviest components sit near -6, 0, 6.
    w = post["w"].values.reshape(-1, post["w"].shape[-1])
    mu = post["mu"].values.reshape(w.shape + (1,))[..., 0]
    top = np.sort(mu[np.arange(len(w))[:, None], np.argsort(-w, axis=1)[:, :3]], axis=1)
    np.testing.assert_allclose(np.median(top, axis=0), [-6, 0, 6], atol=0.5)
    assert dt["log_likelihood"]["x"].shape == (2, 500, 300)
    assert np.isfinite(dt["log_likelihood"]["x"].values).all()


def test_summary_keys(fit_dp_2d):
    s = fit_dp_2d.summary
    assert set(s["n_clusters"]) >= {"pmf", "mode", "mean", "credible_set_90"}
    # the pmf is the share of draws with each K+ in the allocations group
    assert s["n_clusters"]["pmf"] == pytest.approx(_kplus_pmf(fit_dp_2d), abs=1e-12)
    assert all(set(w) >= {"mean", "interval_90"} for w in s["weights"])
    assert s["concentration"]["name"] == "alpha"
    assert set(s["diagnostics"]) >= {"max_r_hat", "min_ess_bulk", "divergences", "warnings"}
    assert s["data"]["n_obs"] == 300 and s["data"]["n_features"] == 2
    # timing is machine-dependent: in run.json (FitResult.run), not in summary.json
    assert set(fit_dp_2d.run["timing"]) == {"compile_s", "sampling_s", "total_s", "stages"}
    assert "pymc" in s["versions"] and s["seed"] == 13
    cov = fit_dp_2d.idata["posterior"]["cov"]
    assert cov.dims == ("chain", "draw", "cluster", "feature", "feature_bis")


def test_same_seed_same_numbers(fit_sparse_1d):
    again = fit(three_clusters_1d(), "sparse_finite", seed=12, **SAMPLING)
    np.testing.assert_array_equal(
        again.idata["posterior"]["w"].values, fit_sparse_1d.idata["posterior"]["w"].values
    )
    np.testing.assert_array_equal(
        again.idata["allocations"]["z"].values, fit_sparse_1d.idata["allocations"]["z"].values
    )


def test_2d_partition_and_relabelled_means(fit_dp_2d):
    from bayesmix.posterior.partition import adjusted_rand_index

    _, labels, means = three_clusters_2d()
    dt = fit_dp_2d.idata
    assert adjusted_rand_index(dt["allocations"]["partition"].values, labels) >= 0.9
    real = [c for c in fit_dp_2d.summary["clusters"] if not c["empty_mostly"]]
    assert len(real) == 3
    for c in real:
        lo, hi = np.array(c["mu"]["lower"]), np.array(c["mu"]["upper"])
        # each relabelled cluster's 90% interval covers one of the true means
        assert any(np.all((lo <= m) & (m <= hi)) for m in means), (lo, hi)


def test_estimator_api(fit_dp_2d):
    from bayesmix.estimator import BayesianGMM

    x, _, means = three_clusters_2d()
    est = BayesianGMM.from_fit(fit_dp_2d)
    assert est.n_clusters_ == 3
    want = {int(k): p for k, p in _kplus_pmf(fit_dp_2d).items()}
    assert est.n_clusters_pmf_ == pytest.approx(want, abs=1e-12)
    proba, lo, hi = est.predict_proba(x[:20], return_interval=True)
    assert proba.shape == lo.shape == hi.shape == (20, 3)
    # at each true mean one main cluster is near certain, a different one for each mean
    at_means = est.predict_proba(means)
    assert np.all(at_means.max(axis=1) > 0.99), at_means.round(3)
    assert len(set(at_means.argmax(axis=1))) == 3, at_means.round(3)
    scores = est.score_samples(np.vstack([x[:10], [[40.0, -40.0]]]))
    assert np.isfinite(scores).all() and scores[:10].min() > scores[10] + 10
    pred = est.predict(x)
    from bayesmix.posterior.partition import adjusted_rand_index

    assert adjusted_rand_index(pred, est.partition_) >= 0.9
    xs, comp = est.sample(500, random_state=0)
    assert xs.shape == (500, 2) and comp.shape == (500,)
    # density: the mean and the 5% / 95% quantiles over the posterior draws of
    # sum_k w_k N(x | mu_k, Sigma_k), here written out for 2x2 covariances
    mean, band_lo, band_hi = est.density(x[:5])
    post = fit_dp_2d.idata["posterior"]
    w = post["w"].values.reshape(-1, post["w"].shape[-1])  # (S, K); S = 1,000 draws, all kept
    mu = post["mu"].values.reshape(w.shape + (2,))
    cov = post["cov"].values.reshape(w.shape + (2, 2))
    a, b, d = cov[..., 0, 0], cov[..., 0, 1], cov[..., 1, 1]
    det = a * d - b * b
    e = x[:5, None, None, :] - mu[None]  # (5, S, K, 2)
    maha = (d * e[..., 0] ** 2 - 2 * b * e[..., 0] * e[..., 1] + a * e[..., 1] ** 2) / det
    dens = np.sum(w * np.exp(-0.5 * maha) / (2 * np.pi * np.sqrt(det)), axis=-1)  # (5, S)
    np.testing.assert_allclose(mean, dens.mean(axis=1), rtol=1e-9)
    q_lo, q_hi = np.quantile(dens, [0.05, 0.95], axis=1)
    np.testing.assert_allclose(band_lo, q_lo, rtol=1e-9)
    np.testing.assert_allclose(band_hi, q_hi, rtol=1e-9)
