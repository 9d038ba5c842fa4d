"""Pitman-Yor and mixtures of finite mixtures through the whole pipeline: fit, DataTree,
summary (K beside K+ for an MFM), report, and the clear errors for what cannot work."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import three_clusters_1d
from scipy import stats

from bayesmix.errors import InputError
from bayesmix.fit import fit
from bayesmix.spec import load_spec

FAST = dict(chains=2, draws=400, tune=200, progress=False, seed=5)


@pytest.fixture(scope="module")
def mfm_fit():
    return fit(three_clusters_1d(150), "mfm", engine="collapsed", classical=False, **FAST)


@pytest.fixture(scope="module")
def py_fit():
    return fit(three_clusters_1d(150), "pitman_yor", engine="collapsed", classical=False, **FAST)


def test_mfm_reports_k_and_kplus(mfm_fit, tmp_path):
    s, dt = mfm_fit.summary, mfm_fit.idata
    k = dt["posterior"]["K"].values
    kplus = dt["allocations"]["n_clusters"].values
    assert k.shape == kplus.shape and np.all(k >= kplus)  # K counts the empty components too
    got = {int(key): p for key, p in s["n_components"]["pmf"].items()}
    assert got == {int(v): float(np.mean(k == v)) for v in np.unique(k)}
    assert s["n_clusters"]["mode"] == 3  # three clusters 6 SD apart
    assert "gamma" in dt["posterior"] and "gamma" in dt["log_prior"]
    np.testing.assert_allclose(
        dt["log_prior"]["gamma"].values,
        stats.gamma.logpdf(dt["posterior"]["gamma"].values, a=1.0, scale=1.0),
    )
    assert "K" not in dt["log_prior"]
    assert s["prior_n_clusters"]["pmf_components"]["1"] == pytest.approx(4 / 7, rel=1e-6)
    mfm_fit.save(tmp_path / "out", report=True)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "K counts the components of the model, K+ those that hold data" in md
    assert "K, components of the mixture (posterior)" in md


def test_pitman_yor_parameters_and_prior(py_fit):
    dt = py_fit.idata
    theta, sigma = dt["posterior"]["strength"].values, dt["posterior"]["discount"].values
    assert np.all(theta + sigma > 0) and np.all((sigma > 0) & (sigma < 1))
    np.testing.assert_allclose(
        dt["log_prior"]["strength"].values, stats.gamma.logpdf(theta + sigma, a=1.0, scale=1.0)
    )
    np.testing.assert_allclose(
        dt["log_prior"]["discount"].values, stats.beta.logpdf(sigma, 1.0, 3.0)
    )
    assert set(py_fit.summary["mixing_parameters"]) == {"strength", "discount"}
    assert "truncation" not in py_fit.summary  # the collapsed engine samples the full process


def test_engine_choices_for_the_new_mixings():
    x = three_clusters_1d(60)
    with pytest.raises(InputError, match="NUTS cannot sample"):
        fit(x, "mfm", engine="nuts", **FAST)
    dynamic = load_spec("mfm")
    import dataclasses

    spec = dataclasses.replace(
        dynamic, mixing=dataclasses.replace(dynamic.mixing, weights="dynamic")
    )
    # the dynamic MFM: collapsed given K (the default) or telescoping
    auto = fit(x, spec, analyse_clusters=False, **FAST)
    assert auto.summary["engine_info"]["algorithm"] == "collapsed"
    tele = fit(x, spec, engine="gibbs", analyse_clusters=False, **FAST)
    assert tele.summary["engine_info"]["algorithm"] == "telescoping"
    for res in (auto, tele):
        k, kplus = res.summary["n_components"], res.summary["n_clusters"]
        assert min(map(int, k["pmf"])) >= min(map(int, kplus["pmf"]))  # K >= K+ in every draw
        assert k["mean"] >= kplus["mean"]
