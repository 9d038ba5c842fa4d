"""The sub-cluster engine over data shards (``engines/sharded.py``, ``gibbs/shard_chain.py``):
the z pass of a shard against the single-machine pass, the exact posterior by enumeration
(N = 6 in 2 shards) on a 2-worker Dask LocalCluster and on in-process shards, identical draws
whatever the number of workers, and the input errors."""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from exact_partitions import ENUM_X1, ENUM_X2, HYP_X1, exact_posterior, uniform_k
from test_gibbs import kplus_pmf, make_spec
from test_subcluster import three_blobs

from bayesmix.engines.gibbs import driver, shard_kernels, subcluster
from bayesmix.engines.gibbs.shard_chain import Shard, split_rows
from bayesmix.engines.sharded import sample_on_shards, sample_sharded
from bayesmix.errors import InputError
from bayesmix.kernels.niw import FULL, mixture_prepare
from bayesmix.spec import KernelSpec, KPrior, MixingSpec, ModelSpec, load_spec

pytest.importorskip("distributed")


def write_row_groups(path, x: np.ndarray, rows_per_group: int, names=("a", "b")) -> str:
    table = pa.table({name: x[:, j] for j, name in enumerate(names[: x.shape[1]])})
    pq.write_table(table, path, row_group_size=rows_per_group)
    return str(path)


def check_pmf(got: np.ndarray, exact: np.ndarray, ess: float) -> None:
    """Every cell of the K+ pmf within 4.5 Monte Carlo SE (ESS of K+) of the exact one."""
    se = np.sqrt(exact * (1 - exact) / ess)
    z = np.abs(got - exact) / np.maximum(se, 1e-3)
    assert np.all(z < 4.5), (got.round(4), exact.round(4), z.round(2))


# --------------------------------------------------------------------------
# One z pass: shards against the whole data set
# --------------------------------------------------------------------------


@pytest.mark.parametrize("want_ll", [True, False])
@pytest.mark.parametrize("use_slice", [True, False])
def test_z_pass_on_two_shards_matches_single_machine(use_slice, want_ll):
    """Labels bitwise equal to ``subcluster.z_pass`` for the same key and parameters (the
    counters are global indices); stats and log-likelihood equal to rounding; the smallest
    slice from the shards' per-cluster minima bitwise equal to ``subcluster.slice_min``.
    The pass of an unsaved sweep (want_ll False: only the slots inside the slice, in log
    space) draws the same labels as the full pass: the same probabilities, up to rounding."""
    rng = np.random.default_rng(5)
    n, d, kk = 3000, 2, 5
    x = np.ascontiguousarray(rng.normal(size=(n, d)) * 2.0)
    mu = rng.normal(size=(kk, d))
    lc = np.zeros((kk, d, d))
    lc[:, [0, 1], [0, 1]] = rng.uniform(0.5, 1.5, (kk, d))
    lc[:, 1, 0] = rng.uniform(-0.3, 0.3, kk)
    logw = np.log(rng.dirichlet(np.ones(kk)))
    c, li = np.zeros(kk), np.zeros((kk, d, d))
    mixture_prepare(logw, lc, FULL, c, li)
    z0 = rng.integers(0, kk, n).astype(np.int64)
    key = np.uint64(0x1234_5678_9ABC_DEF1)
    nd = kk - 1 if use_slice else kk  # the slice sampler: slot kk - 1 counted, not chosen
    args = (mu, li, c, logw, nd, kk, use_slice, kk, 1.0, FULL, key)

    z_one = z0.copy()
    nch = subcluster.n_chunks(n)
    ccnt, csx, csxx = np.zeros((nch, kk), np.int64), np.zeros((nch, kk, d)), np.zeros((nch, kk, d, d))  # fmt: skip
    cll = np.zeros(nch)
    subcluster.z_pass(x, z_one, *args, nch, ccnt, csx, csxx, cll, want_ll)
    if not want_ll:
        z_full = z0.copy()
        cll_full = np.zeros(nch)
        subcluster.z_pass(x, z_full, *args, nch, ccnt.copy(), csx.copy(), csxx.copy(), cll_full,
                          True)  # fmt: skip
        assert np.array_equal(z_full, z_one)
        assert cll.sum() == 0.0 and cll_full.sum() < 0.0
    cnt, sx, sxx = np.zeros(kk, np.int64), np.zeros((kk, d)), np.zeros((kk, d, d))
    subcluster.reduce_chunks(nch, nd, ccnt, csx, csxx, cnt, sx, sxx)
    lmin = subcluster.slice_min(z0, logw, key, nch)

    cut = 1337  # shards of unequal size, chunk layouts unlike the whole data set's
    z_sh, tot, lls, mins = [], [np.zeros(kk, np.int64), np.zeros((kk, d)), np.zeros((kk, d, d))], 0.0, np.inf  # fmt: skip
    for lo, hi in ((0, cut), (cut, n)):
        zs = z0[lo:hi].copy()
        m = hi - lo
        ncs = subcluster.n_chunks(m)
        cc, cs, css = np.zeros((ncs, kk), np.int64), np.zeros((ncs, kk, d)), np.zeros((ncs, kk, d, d))  # fmt: skip
        out = [np.zeros(nd, np.int64), np.zeros((nd, d)), np.zeros((nd, d, d))]
        lls += shard_kernels.shard_z_pass(x[lo:hi], zs, *args, lo, ncs, cc, cs, css,
                                          np.zeros(ncs), *out, want_ll)  # fmt: skip
        for a, b in zip(tot, out, strict=True):
            a[:nd] += b
        per_k = shard_kernels.shard_logv_min(z0[lo:hi], key, lo, kk, ncs)
        mins = min(mins, shard_kernels.slice_min_of(logw, per_k, kk))
        z_sh.append(zs)
    assert np.array_equal(np.concatenate(z_sh), z_one)
    assert np.array_equal(tot[0], cnt)
    assert np.allclose(tot[1], sx, rtol=1e-12, atol=1e-9)
    assert np.allclose(tot[2], sxx, rtol=1e-12, atol=1e-9)
    assert math.isclose(lls, cll.sum(), rel_tol=1e-12)
    assert mins == lmin


# --------------------------------------------------------------------------
# Exact posterior by enumeration (N = 6)
# --------------------------------------------------------------------------

DP_CASE = dict(mtype="dp", k=20, conc=0.7, cov="full")
HYP_FULL = (0.0, 0.1, 4.0, 0.25)  # m0, kappa0, nu0 = D + 2, psi0 (test_gibbs.py)
HYP_DIAG = (0.0, 0.1, 4.0, 0.5)


@pytest.mark.slow  # about 70 s: some 5,400 sweeps at ~4 actor round trips each
def test_exact_enumeration_dp_on_a_two_worker_local_cluster(tmp_path):
    """DP(0.7), N = 6 in 2 row groups (shards) on 2 Dask workers: the K+ pmf against the
    exact posterior, every cell within 4.5 MCSE (2 chains x 2,500 draws: ESS(K+) ~ 1,000,
    an SE of at most 0.016 per cell)."""
    path = write_row_groups(tmp_path / "enum.parquet", ENUM_X2, 3)
    spec = make_spec("dp", 20, 0.7, (1.0, 1.0), covariance="full", kappa0=0.1)
    dr = sample_sharded(spec, path, workers=2, processes=False, center=np.zeros(2),
                        scale=np.ones(2), chains=2, draws=2500, tune=200, seed=11)  # fmt: skip
    assert dr.info["shards"] == 2 and dr.info["workers"] == 2
    exact = exact_posterior(ENUM_X2, HYP_FULL, False, "dp", {"concentration": 0.7}, None)
    kplus = dr.sample_stats["n_occupied"]
    ess = float(az.ess(kplus.astype(float)))
    assert ess > 600
    check_pmf(kplus_pmf(dr, len(exact["kplus_pmf"]) - 1), exact["kplus_pmf"], ess)


def _mfm_spec() -> ModelSpec:
    mix = MixingSpec("mfm", 8, 1.0, None, k_prior=KPrior("uniform", (("max", 8.0),)))
    return ModelSpec(mixing=mix, kernel=KernelSpec(covariance="full", kappa0=0.1, a0=2.0, b0=0.25))


@pytest.mark.parametrize(
    "case",
    ["dp_random_alpha_3_shards", "finite_diag", "mfm_static"],
)
def test_exact_enumeration_in_process_shards(case):
    """The same sharded chain on in-process shards (layouts 2 + 4 and 1 + 2 + 3), 2 x 10,000
    draws: DP with a Gamma(2, 4) concentration (1-D), finite K = 4 (diag) and a static MFM."""
    if case == "dp_random_alpha_3_shards":
        x, sizes = ENUM_X1, [1, 2, 3]
        spec = make_spec("dp", 20, None, (2.0, 4.0), covariance="full", kappa0=0.1)
        exact = exact_posterior(x, HYP_DIAG, True, "dp", {}, {"concentration": ("gamma", 2.0, 4.0)})  # fmt: skip
    elif case == "finite_diag":
        x, sizes = ENUM_X2, [2, 4]
        spec = make_spec("finite", 4, 0.5, (1.0, 1.0), covariance="diag", kappa0=0.1)
        exact = exact_posterior(x, HYP_DIAG, True, "finite", {"n_components": 4, "concentration": 0.5})  # fmt: skip
    else:
        x, sizes = ENUM_X1, [4, 2]
        spec = _mfm_spec()
        exact = exact_posterior(x, HYP_X1, True, "mfm_static",
                                {"concentration": 1.0, "k_prior": uniform_k(8)})  # fmt: skip
    cfg = driver._config(spec, x, "subcluster", 10, 0, 1)
    shards = split_rows(x, sizes, np.asarray(cfg.hyp), cfg.fam)
    dr = sample_on_shards(spec, shards, d=x.shape[1], chains=2, draws=10000, tune=300, seed=4)
    kplus = dr.sample_stats["n_occupied"]
    ess = float(az.ess(kplus.astype(float)))
    assert ess > 1500
    check_pmf(kplus_pmf(dr, len(exact["kplus_pmf"]) - 1), exact["kplus_pmf"], ess)
    if case == "dp_random_alpha_3_shards":
        assert abs(dr.concentration.mean() - exact["mean"]["concentration"]) < 4 * float(
            az.mcse(dr.concentration)
        )


# --------------------------------------------------------------------------
# Reproducibility and the output contract
# --------------------------------------------------------------------------


def test_same_draws_with_one_and_two_workers_and_in_process(tmp_path):
    """The same seed and shard layout (4 row groups) give identical draws on 1 and 2 Dask
    workers and on in-process shards; the output is the single-machine engine's."""
    x = three_blobs(300)
    path = write_row_groups(tmp_path / "blobs.parquet", x, 225)
    spec = load_spec("dp")
    kw = dict(chains=2, draws=30, tune=20, seed=9, z_draws=10)
    runs = [sample_sharded(spec, path, workers=w, processes=False, center=np.zeros(2),
                           scale=np.ones(2), **kw) for w in (1, 2)]  # fmt: skip
    cfg = driver._config(spec, x, "subcluster", 10, 0, 1)
    local = sample_on_shards(spec, split_rows(x, [225] * 4, np.asarray(cfg.hyp), cfg.fam), d=2, **kw)  # fmt: skip
    assert [r.info["workers"] for r in runs] == [1, 2]
    for other in (runs[1], local):
        for key in ("w", "mu", "cov", "z"):
            assert np.array_equal(getattr(runs[0], key), getattr(other, key)), key
        for key in ("log_likelihood", "n_occupied"):
            assert np.array_equal(runs[0].sample_stats[key], other.sample_stats[key]), key
    dr = runs[0]
    ref = driver.sample_gibbs  # the single-machine engine's contract
    one = ref(spec, x, algorithm="subcluster", chains=2, draws=30, tune=20, seed=9, z_draws=10,
              progress=False, cores=1)  # fmt: skip
    assert dr.engine is one.engine
    assert dr.z.shape == one.z.shape == (2, 10, 900) and dr.z.dtype == one.z.dtype
    assert np.array_equal(dr.z_draws, one.z_draws)
    assert dr.w.shape[:2] == (2, 30) and np.allclose(dr.w.sum(-1), 1.0)
    assert set(one.info) <= set(dr.info)
    kplus = dr.sample_stats["n_occupied"]
    rows = dr.z_draws
    assert all(len(np.unique(dr.z[c, r])) == kplus[c, rows[r]] for c in range(2) for r in range(10))
    assert np.bincount(kplus[:, 10:].ravel()).argmax() == 3


# --------------------------------------------------------------------------
# Input errors
# --------------------------------------------------------------------------


def test_bad_parquet_path_and_missing_column(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        sample_sharded(load_spec("dp"), tmp_path / "missing.parquet", processes=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="without .parquet files"):
        sample_sharded(load_spec("dp"), tmp_path / "empty", processes=False)
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(InputError, match="cannot parse file as Parquet"):
        sample_sharded(load_spec("dp"), tmp_path / "junk.parquet", processes=False)
    path = write_row_groups(tmp_path / "x.parquet", three_blobs(10), 15)
    with pytest.raises(InputError, match="column 'zz' not found"):  # raised on the worker
        sample_sharded(load_spec("dp"), path, columns=["a", "zz"], workers=1, processes=False,
                       draws=2, tune=0)  # fmt: skip


def test_cli_scheduler_errors_exit_2(tmp_path, capsys):
    from bayesmix.cli import main

    path = write_row_groups(tmp_path / "x.parquet", three_blobs(10), 15)
    cases = [
        ([str(tmp_path / "nope.parquet"), "--engine", "subcluster"], "file not found"),
        ([path, "--engine", "collapsed"], "--scheduler runs the sub-cluster engine"),
        ([path, "--engine", "subcluster", "--columns", "a", "q"], "column 'q' not found"),
    ]
    for argv, msg in cases:
        rc = main(["fit", *argv, "--scheduler", "local", "--out", str(tmp_path / "o"), "--quiet"])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and "Traceback" not in err, err


def test_shard_ops_apply_in_order():
    """A shard applies its queued remap and split-merge decision before the call's own work."""
    x = np.arange(12.0).reshape(6, 2)
    sh = Shard(x, 10, 20, np.asarray((0.0, 0.1, 4.0, 0.25)), FULL)
    sh.start(0, 4)
    sh.z[0][:] = [0, 0, 2, 2, 2, 0]
    z, _ = sh.labels(0, [("remap", np.array([0, 0, 1, 0]))])
    assert z.tolist() == [0, 0, 1, 1, 1, 0]
    sh.members[:3], sh.side[:3], sh.nm = [2, 3, 4], [0, 1, 1], 3
    z, _ = sh.labels(0, [("decide", True, True, 1, 3, 10)])  # split; x_j = global 10 = local 0
    assert z.tolist() == [3, 0, 1, 3, 3, 0] and sh.nm == 0
