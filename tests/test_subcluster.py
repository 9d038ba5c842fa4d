"""The sub-cluster engine (parallel restricted Gibbs + split-merge): reproducibility whatever
the number of threads, the output contract, a recovery check and the errors.  Its exactness is
checked by enumeration with the other engines (test_gibbs.py, test_mixings_exact.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bayesmix.engines.gibbs import sample_gibbs
from bayesmix.engines.names import Engine
from bayesmix.errors import InputError
from bayesmix.spec import load_spec


def three_blobs(n_per: int, seed: int = 20261202) -> np.ndarray:
    """Three well-separated 2-D Gaussian clusters (standardised)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[-3.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    x = np.concatenate([rng.normal(c, 0.6, (n_per, 2)) for c in centres])
    return (x - x.mean(0)) / x.std(0)


@pytest.mark.parametrize("name", ["dp", "sparse_finite", "mfm"])
def test_same_draws_whatever_the_threads(name):
    """N = 3,000 spans 11 chunks: 1 and 2 threads per chain give identical draws."""
    x = three_blobs(1000)
    runs = [
        sample_gibbs(
            load_spec(name),
            x,
            algorithm="subcluster",
            chains=1,
            draws=40,
            tune=20,
            seed=7,
            progress=False,
            cores=cores,
        )  # fmt: skip
        for cores in (1, 2)
    ]
    assert [r.info["threads_per_chain"] for r in runs] == [1, 2]
    for key in ("w", "mu", "cov", "z"):
        assert np.array_equal(getattr(runs[0], key), getattr(runs[1], key)), key
    assert np.array_equal(
        runs[0].sample_stats["log_likelihood"], runs[1].sample_stats["log_likelihood"]
    )


@pytest.mark.parametrize("name", ["dp", "mfm"])
def test_output_contract_and_recovery(name):
    x = three_blobs(400)
    dr = sample_gibbs(load_spec(name), x, algorithm="subcluster", chains=2, draws=200, tune=100,
                      seed=3, progress=False)  # fmt: skip
    assert dr.engine is Engine.SUBCLUSTER
    c, s, k = dr.w.shape
    assert (c, s) == (2, 200) and dr.mu.shape == (c, s, k, 2) and dr.cov.shape == (c, s, k, 2, 2)
    assert np.allclose(dr.w.sum(-1), 1.0)
    assert np.all(np.linalg.eigvalsh(dr.cov) > 0)
    kplus = dr.sample_stats["n_occupied"]
    # K+ = the distinct labels of each saved z
    assert all(len(np.unique(dr.z[i, j])) == kplus[i, j] for i in range(c) for j in range(s))
    assert np.bincount(kplus.ravel()).argmax() == 3
    assert dr.info["split_merge_per_sweep"] == 1
    if name == "dp":
        assert dr.info["slice_capacity_hits"] == [0, 0]
    ll = dr.sample_stats["log_likelihood"]
    assert np.all(np.isfinite(ll))


def test_errors_name_the_options():
    x = three_blobs(50)
    with pytest.raises(InputError, match="semi_conjugate"):
        sample_gibbs(load_spec("rg97"), x[:, :1], algorithm="subcluster", draws=5, tune=0,
                     progress=False)  # fmt: skip
    mfm = load_spec("mfm")
    dynamic = dataclasses.replace(mfm, mixing=dataclasses.replace(mfm.mixing, weights="dynamic"))
    for spec in (dynamic, load_spec("pitman_yor")):
        with pytest.raises(InputError, match="--engine collapsed or --engine gibbs"):
            sample_gibbs(spec, x, algorithm="subcluster", draws=5, tune=0, progress=False)


@pytest.mark.parametrize("name", ["dp", "sparse_finite", "mfm"])
def test_saved_log_likelihood_is_that_of_the_saved_draw(name):
    """sample_stats log_likelihood = sum_i log sum_k w_k N(x_i | mu_k, Sigma_k) of the saved
    (w, mu, Sigma), computed independently with scipy (the DP and Pitman-Yor rest mass sits
    on one atom in the saved draw, and the kernel sums the same)."""
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal

    x = three_blobs(30)
    dr = sample_gibbs(load_spec(name), x, algorithm="subcluster", chains=1, draws=6, tune=3,
                      seed=11, progress=False)  # fmt: skip
    for s in range(6):
        w, mu, cov = dr.w[0, s], dr.mu[0, s], dr.cov[0, s]
        on = w > 0
        dens = [multivariate_normal(mu[k], cov[k]).logpdf(x) for k in np.flatnonzero(on)]
        want = logsumexp(np.log(w[on])[:, None] + np.array(dens), axis=0).sum()
        assert dr.sample_stats["log_likelihood"][0, s] == pytest.approx(want, rel=1e-9)


def test_em_bic_subsamples_large_n(monkeypatch):
    """Past EM_MAX_ROWS rows, EM + BIC runs on a fixed random subsample and says so."""
    from bayesmix import classical

    monkeypatch.setattr(classical, "EM_MAX_ROWS", 300)
    x = three_blobs(200)
    em = classical.em_selection(x, k_max=4, families=("full",))
    assert em["settings"]["rows"] == 300 and em["settings"]["of_rows"] == 600
    assert "on a random 300 of the 600 rows" in em["method"]
    again = classical.em_selection(x, k_max=4, families=("full",))
    assert again["bic"] == em["bic"]  # the same subsample
    assert em["best_bic"] == 3


def test_auto_engine_and_sweeps_at_large_n():
    from bayesmix.fit import LARGE_N_BUDGET, SUBCLUSTER_AUTO_N, large_n_sweeps, resolve_engine

    dp = load_spec("dp")
    assert resolve_engine(dp, "auto", SUBCLUSTER_AUTO_N - 1) is Engine.COLLAPSED
    assert resolve_engine(dp, "auto", SUBCLUSTER_AUTO_N) is Engine.SUBCLUSTER
    assert resolve_engine(load_spec("pitman_yor"), "auto", 10**6) is Engine.COLLAPSED
    assert resolve_engine(dp, "collapsed", 10**6) is Engine.COLLAPSED  # an explicit choice
    n = 10**5
    scaled = int(LARGE_N_BUDGET / n)
    assert large_n_sweeps(Engine.SUBCLUSTER, n, 5000, 1000) == (scaled, max(100, scaled // 4))
    assert large_n_sweeps(Engine.SUBCLUSTER, 10**7, 5000, 1000) == (200, 100)
    assert large_n_sweeps(Engine.COLLAPSED, n, 5000, 1000) == (5000, 1000)


def test_constant_kplus_warning_knows_the_start():
    """The sub-cluster chains start from one cluster: a constant K+ > 1 means each moved."""
    from bayesmix.posterior.diagnostics import constant_warning

    moved = constant_warning("K+", np.full((2, 5), 6), Engine.SUBCLUSTER, [0.0, 0.0])
    assert "started from one cluster" in moved
    stayed = constant_warning("K+", np.full((2, 5), 1), Engine.SUBCLUSTER, [0.0, 0.0])
    assert "no chain ever left its starting partition" in stayed
