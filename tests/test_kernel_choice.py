"""covariance = "auto": the kernel family chosen by EM + BIC across families before sampling,
recorded in the summary and named in the report."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bayesmix.classical import em_selection
from bayesmix.fit import fit
from bayesmix.posterior.kernel_check import choose_covariance
from bayesmix.spec import load_spec, parse_spec

FAST = dict(chains=2, draws=300, tune=200, progress=False, seed=4)


def clusters(d: int, n: int = 150, seed: int = 20261201) -> np.ndarray:
    """Three spherical unit-variance clusters 6 apart in d dimensions (documented seed)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, 3)))
    means = 6 / np.sqrt(2) * q.T
    return means[rng.integers(0, 3, n)] + rng.standard_normal((n, d))


def test_choose_covariance_takes_the_lowest_bic_family():
    fams = {
        "full": {"bic": [30.0, 12.0], "best_bic": 2},
        "diag": {"bic": [20.0, 11.0, 15.0], "best_bic": 2},
        "spherical": {"bic": [10.5, 19.0], "best_bic": 1},
    }
    got = choose_covariance({"families": fams})
    assert got["best_family"] == "spherical" and got["covariance"] == "spherical"
    assert got["best_bic"] == {"full": 12.0, "diag": 11.0, "spherical": 10.5}
    fams["full"]["bic"] = [10.0]
    assert choose_covariance({"families": fams})["covariance"] == "full"
    assert choose_covariance({"families": {"full": fams["full"]}})["covariance"] == "full"


def test_auto_fits_the_chosen_family_and_reports_it(tmp_path):
    x = clusters(8)
    em = em_selection(x)
    want = choose_covariance(em)
    spec = load_spec("mfm")
    spec = dataclasses.replace(spec, kernel=dataclasses.replace(spec.kernel, covariance="auto"))
    res = fit(x, spec, **FAST)
    s = res.summary
    assert s["kernel_choice"]["covariance"] == want["covariance"]
    assert s["kernel_choice"]["best_bic"] == pytest.approx(want["best_bic"])
    assert s["spec"]["kernel"]["covariance"] == want["covariance"]  # the resolved spec is saved
    assert res.spec.kernel.covariance == want["covariance"]
    assert s["classical"]["fitted_family"] == want["covariance"]  # the EM screen is reused
    res.save(tmp_path / "out", report=True)
    md = (tmp_path / "out" / "report.md").read_text()
    assert 'covariance = "auto" chose' in md


def test_auto_in_one_dimension_and_in_toml():
    spec = parse_spec({"mixing": {"type": "dp", "alpha": 1}, "kernel": {"covariance": "auto"}})
    assert spec.kernel.covariance == "auto"
    res = fit(np.random.default_rng(1).standard_normal(60), spec, classical=False, **FAST)
    assert res.summary["kernel_choice"]["covariance"] == "full"
    assert "best_bic" not in res.summary["kernel_choice"]
