"""The storage policy: thinned z and log-likelihood, label dtypes, the memory guard, and the
vectorised joining of rows outside the SALSO subset."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmix.data import load_data
from bayesmix.engines.base import Draws
from bayesmix.errors import InputError
from bayesmix.posterior import partition as part
from bayesmix.posterior import storage
from bayesmix.posterior.allocations import n_clusters, pointwise_loglik
from bayesmix.posterior.assemble import build_datatree
from bayesmix.spec import load_spec


@pytest.mark.parametrize("total,rows", [(10, 4), (5000, 1000), (7, 7), (13, 1), (100, 37)])
def test_even_rows_keeps_exactly_rows_draws_in_distinct_rows(total, rows):
    idx = storage.even_rows(total, rows)
    assert len(idx) == rows and idx[0] == 0
    assert np.array_equal(idx * rows // total, np.arange(rows))  # row r <- draw idx[r]


def test_label_dtype_is_the_smallest_that_fits():
    assert storage.label_dtype(127 + 1) == np.int8
    assert storage.label_dtype(129) == np.int16
    assert storage.label_dtype(40_000) == np.int32


def test_plan_rules_at_small_and_large_n():
    small = storage.plan_storage(82, 4, 5000)
    assert (small.z_draws, small.ll_draws, small.loo_obs) == (5000, 1000, 82)
    big = storage.plan_storage(1_000_000, 4, 500)
    assert big.z_draws * 4 == 100  # 1e8 labels / 1e6 rows
    assert big.loo_obs == storage.LOO_MAX_OBS
    assert big.ll_draws * 4 * big.loo_obs <= storage.LL_VALUE_CAP
    rows = big.loo_rows()
    assert len(rows) == storage.LOO_MAX_OBS and np.all(np.diff(rows) > 0)
    # the subsample depends on N only: every model fitted to these data gets the same rows
    assert np.array_equal(rows, storage.plan_storage(1_000_000, 2, 90).loo_rows())


def test_parse_bytes():
    assert storage.parse_bytes("2G") == 2 * 1024**3
    assert storage.parse_bytes("512M") == 512 * 1024**2
    assert storage.parse_bytes("1e6") == 1_000_000


def _old_join(z, idx, labels_sub, rest):
    """The loop that join_share replaces (analysis.point_partition before the storage work)."""
    zs = z[:, idx]
    k = int(labels_sub.max() + 1)
    share = np.zeros((len(rest), k))
    for s in range(z.shape[0]):
        same = z[s, rest][:, None] == zs[s][None, :]
        for c in range(k):
            share[:, c] += same[:, labels_sub == c].mean(axis=1)
    return share / z.shape[0]


def test_join_share_equals_the_loop_it_replaces():
    rng = np.random.default_rng(3)
    z = rng.integers(0, 5, size=(40, 300)).astype(np.int8)
    idx = np.sort(rng.choice(300, 60, replace=False))
    labels_sub = rng.integers(0, 4, size=60)
    labels_sub[:4] = np.arange(4)
    rest = np.setdiff1d(np.arange(300), idx)
    got = part.join_share(z, idx, labels_sub, rest)
    np.testing.assert_allclose(got, _old_join(z, idx, labels_sub, rest), rtol=0, atol=1e-12)


def _draws(rng, c=2, s=30, k=4, n=50, d=2, native=True):
    w = rng.dirichlet(np.ones(k), size=(c, s))
    mu = rng.normal(size=(c, s, k, d))
    a = rng.normal(size=(c, s, k, d, d))
    cov = a @ np.swapaxes(a, -1, -2) + np.eye(d)
    z = rng.integers(0, k, size=(c, s, n)).astype(np.int32) if native else None
    kplus = n_clusters(z) if native else None
    return Draws(
        w=w,
        mu=mu,
        cov=cov,
        concentration=None,
        engine="gibbs",
        z=z,
        sample_stats={"n_occupied": kplus} if native else {},
    )


def test_build_datatree_thins_z_and_loglik_without_changing_the_totals():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2))
    data = load_data(x)
    spec = load_spec("dp")
    draws = _draws(rng)
    plan = storage.StoragePlan(n_obs=50, chains=2, draws=30, z_draws=7, ll_draws=5, loo_obs=11)
    dt = build_datatree(draws, data, spec, seed=1, plan=plan)
    alloc = dt["allocations"]
    assert alloc["z"].dtype == np.int8 and alloc["z"].shape == (2, 7, 50)
    zi = plan.z_index()
    assert np.array_equal(alloc["z_draw"].values, zi)
    assert np.array_equal(alloc["z"].values, draws.z[:, zi])
    assert np.array_equal(alloc["n_clusters"].values, n_clusters(draws.z))  # every draw
    # log-likelihood: all draws' totals, the stored subset exactly the full values there
    xs = data.standardized
    full = pointwise_loglik(xs, draws.w.reshape(60, 4), draws.mu.reshape(60, 4, 2),
                            draws.cov.reshape(60, 4, 2, 2)).reshape(2, 30, 50)  # fmt: skip
    full -= np.log(data.scale).sum()
    np.testing.assert_allclose(dt["sample_stats"]["log_likelihood"].values, full.sum(-1), 1e-12)
    ll = dt["log_likelihood"]["x"]
    rows, li = plan.loo_rows(), plan.ll_index()
    assert ll.dtype == np.float32 and ll.shape == (2, 5, 11)
    assert np.array_equal(ll["obs_id"].values, rows) and np.array_equal(ll["draw"].values, li)
    np.testing.assert_allclose(ll.values, full[:, li][:, :, rows], rtol=1e-6)


def test_blocked_kernel_keeps_the_same_z_rows_when_thinned():
    from bayesmix.engines.gibbs import sample_gibbs

    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(-3, 1, 40), rng.normal(3, 1, 40)])[:, None]
    spec = load_spec("dp")
    kw = dict(algorithm="blocked", chains=2, draws=20, tune=10, seed=4, progress=False, cores=1)
    full = sample_gibbs(spec, x, **kw)
    thin = sample_gibbs(spec, x, z_draws=6, **kw)
    idx = storage.even_rows(20, 6)
    assert thin.z.shape == (2, 6, 80) and thin.z.dtype == np.int8
    assert np.array_equal(thin.z_draws, idx)
    assert np.array_equal(thin.z, full.z[:, idx])
    np.testing.assert_array_equal(thin.w, full.w)  # sampling itself is unchanged
    np.testing.assert_array_equal(thin.sample_stats["n_occupied"], n_clusters(full.z))


def test_memory_guard_thins_then_stops(monkeypatch):
    n, d, k = 200_000, 2, 20
    est = storage.memory_estimate(n, d, k, 4, 1000, storage.plan_storage(n, 4, 1000))
    # a limit between the thinnest plan and the default: thinned, with the reason
    thinnest = storage.StoragePlan(n, 4, 1000, 1, 1, storage.LOO_MAX_OBS)
    low = storage.memory_estimate(n, d, k, 4, 1000, thinnest)["total"]
    limit = (low + est["total"]) // 2
    plan, out = storage.fit_storage(n, d, k, 4, 1000, True, limit)
    assert out["fits"] and plan.z_thinned and plan.reason.startswith("estimated memory")
    assert storage.memory_estimate(n, d, k, 4, 1000, plan)["total"] <= limit
    plan, out = storage.fit_storage(n, d, k, 4, 1000, True, low // 2)
    assert not out["fits"]


def _bimodal_csv(tmp_path, n=400):
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(-4, 1, n // 2), rng.normal(4, 1, n // 2)])
    path = tmp_path / "two.csv"
    path.write_text("x\n" + "\n".join(f"{v:.6f}" for v in x) + "\n")
    return path


def test_fit_thins_storage_under_a_low_memory_limit(tmp_path, monkeypatch):
    from bayesmix.fit import fit

    path = _bimodal_csv(tmp_path)
    spec = load_spec("dp")
    plan = storage.plan_storage(400, 2, 200)
    est = storage.memory_estimate(400, 1, spec.mixing.n_components, 2, 200, plan)
    thinnest = storage.StoragePlan(400, 2, 200, 1, 1, 400)
    low = storage.memory_estimate(400, 1, spec.mixing.n_components, 2, 200, thinnest)
    limit = int(low["total"] + 0.6 * (est["total"] - low["total"]))
    assert est["total"] - low["total"] > 0
    monkeypatch.setenv(storage.MEMORY_ENV, str(limit))
    res = fit(path, "dp", engine="gibbs", chains=2, draws=200, tune=50, progress=False,
              analyse_clusters=True, classical=False)  # fmt: skip
    st = res.summary["storage"]
    assert "exceeds" in st["memory"]["note"] and st["z_draws"] < 400
    assert res.idata["allocations"]["z"].shape[1] * 2 == st["z_draws"]
    assert res.idata["allocations"]["n_clusters"].shape == (2, 200)


def test_cli_stops_with_one_line_when_even_thinning_cannot_fit(tmp_path, monkeypatch, capsys):
    from bayesmix.cli import main

    path = _bimodal_csv(tmp_path)
    monkeypatch.setenv(storage.MEMORY_ENV, "10M")  # below the interpreter's own share
    rc = main(["fit", str(path), "--model", "dp", "--engine", "gibbs", "--chains", "2",
               "--draws", "100", "--tune", "10", "--quiet", "--out", str(tmp_path / "o")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "--draws" in err[0] and "--chains" in err[0] and storage.MEMORY_ENV in err[0]
    assert not (tmp_path / "o").exists()
    with pytest.raises(InputError):
        from bayesmix.fit import fit

        fit(path, "dp", engine="gibbs", chains=2, draws=100, tune=10, progress=False)


def test_posterior_on_disk_is_float32_with_unused_slots_nan_and_reads_back(tmp_path):
    import xarray as xr

    from bayesmix.io import write_datatree
    from bayesmix.report.loader import _Group, _params

    rng = np.random.default_rng(1)
    draws = _draws(rng, c=2, s=10, k=3, n=20, d=2)
    draws.w[..., 2] = 0.0  # slot 2 unused in every draw
    draws.w /= draws.w.sum(-1, keepdims=True)
    data = load_data(rng.normal(size=(20, 2)))
    dt = build_datatree(draws, data, load_spec("dp"), seed=0)
    write_datatree(tmp_path / "p.nc", dt)
    back = xr.open_datatree(tmp_path / "p.nc")
    post = back["posterior"]
    assert post["mu"].dtype == np.float32
    assert (
        np.isnan(post["mu"].values[..., 2, :]).all()
        and np.isfinite(post["mu"].values[..., :2, :]).all()
    )
    np.testing.assert_allclose(post["w"].values, dt["posterior"]["w"].values, rtol=1e-6)
    params = _params(_Group(back["posterior"], {}))  # the report's reader
    assert np.isfinite(params.mu).all() and np.isfinite(params.cov).all()
    assert np.all(params.w[:, 2] == 0.0)
    assert back["allocations"]["z"].dtype == np.int8


def test_blocked_engine_totals_equal_the_pointwise_sum_past_the_loo_subsample():
    """N > LOO_MAX_OBS with the blocked engine: assemble takes the engine's per-draw totals
    and K+ and evaluates the log-likelihood only on the stored rows; the totals agree with
    the full pointwise sum and the stored values with the full pointwise values there."""
    from bayesmix.engines.gibbs import sample_gibbs

    rng = np.random.default_rng(8)
    n = storage.LOO_MAX_OBS + 500
    x = np.concatenate([rng.normal(-3, 1, n // 2), rng.normal(3, 1, n - n // 2)])[:, None]
    data = load_data(x)
    spec = load_spec("dp")
    draws = sample_gibbs(spec, data.standardized, chains=2, draws=15, tune=10, seed=1,
                         progress=False, cores=1)  # fmt: skip
    plan = storage.plan_storage(n, 2, 15)
    dt = build_datatree(draws, data, spec, seed=1, plan=plan)
    k = draws.w.shape[-1]
    full = pointwise_loglik(data.standardized, draws.w.reshape(30, k), draws.mu.reshape(30, k, 1),
                            draws.cov.reshape(30, k, 1, 1)).reshape(2, 15, n)  # fmt: skip
    full -= np.log(data.scale).sum()
    np.testing.assert_allclose(dt["sample_stats"]["log_likelihood"].values, full.sum(-1), rtol=1e-9)
    rows = plan.loo_rows()
    assert dt["log_likelihood"]["x"].shape == (2, 15, storage.LOO_MAX_OBS)
    np.testing.assert_allclose(dt["log_likelihood"]["x"].values, full[:, :, rows], rtol=1e-6)
    assert np.array_equal(dt["allocations"]["n_clusters"].values, n_clusters(draws.z))
