"""End-to-end NUTS fits on synthetic data with a known number of clusters.

Each distinct model costs one PyTensor/nutpie compilation (15-25 s warm, 90-120 s
cold), so the suite fits each model once (module-scoped) and asserts several things.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import three_clusters_1d, three_clusters_2d

from bayesmix.fit import fit

SAMPLING = dict(engine="nuts", chains=2, draws=500, tune=500, progress=False)


@pytest.fixture(scope="module")
def fit_dp_1d():
    return fit(three_clusters_1d(), "dp", seed=11, **SAMPLING)


@pytest.fixture(scope="module")
def fit_sparse_1d():
    return fit(three_clusters_1d(), "sparse_finite", seed=12, **SAMPLING)


@pytest.fixture(scope="module")
def fit_dp_2d():
    x, _, _ = three_clusters_2d()
    return fit(x, "dp", seed=13, **SAMPLING)


@pytest.mark.parametrize("which", ["fit_dp_1d", "fit_sparse_1d"])
def test_1d_three_clusters(which, request):
    result = request.getfixturevalue(which)
    nc = result.summary["n_clusters"]
    assert nc["mode"] == 3
    assert nc["pmf"]["3"] > 0.5
    assert 3 in nc["credible_set_90"]


def test_2d_elongated_clusters(fit_dp_2d):
    assert fit_dp_2d.summary["n_clusters"]["mode"] == 3


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
    assert alloc["z"].dims == ("chain", "draw", "obs_id")
    assert alloc["n_clusters"].dims == ("chain", "draw")
    np.testing.assert_allclose(alloc["responsibilities"].sum("cluster"), 1.0, atol=1e-8)
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
    assert abs(sum(s["n_clusters"]["pmf"].values()) - 1) < 1e-9
    assert all(set(w) >= {"mean", "interval_90"} for w in s["weights"])
    assert s["concentration"]["name"] == "alpha"
    assert set(s["diagnostics"]) >= {"max_r_hat", "min_ess_bulk", "divergences", "warnings"}
    assert s["data"]["n_obs"] == 300 and s["data"]["n_features"] == 2
    assert set(s["timing"]) == {"compile_s", "sampling_s", "total_s"}
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

    x, _, _ = three_clusters_2d()
    est = BayesianGMM.from_fit(fit_dp_2d)
    assert est.n_clusters_ == 3 and abs(sum(est.n_clusters_pmf_.values()) - 1) < 1e-9
    proba, lo, hi = est.predict_proba(x[:20], return_interval=True)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert np.all(lo <= proba + 1e-12) and np.all(proba <= hi + 1e-12)
    scores = est.score_samples(np.vstack([x[:10], [[40.0, -40.0]]]))
    assert np.isfinite(scores).all() and scores[:10].min() > scores[10] + 10
    pred = est.predict(x)
    from bayesmix.posterior.partition import adjusted_rand_index

    assert adjusted_rand_index(pred, est.partition_) >= 0.9
    xs, comp = est.sample(500, random_state=0)
    assert xs.shape == (500, 2) and comp.shape == (500,)
    mean, band_lo, band_hi = est.density(x[:5])
    assert np.all(band_lo <= mean) and np.all(mean <= band_hi)
