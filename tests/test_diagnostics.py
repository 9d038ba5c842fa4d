"""Diagnostics that cannot lie: non-finite statistics fail their checks and say why."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bayesmix.engines.names import Engine
from bayesmix.posterior.answer import answer_sentence
from bayesmix.posterior.diagnostics import diagnose, diagnostics, mixing_check, pmf_mcse
from bayesmix.posterior.summary import kplus_summary
from bayesmix.report.compute import traffic_lights


def _stuck_chains() -> np.ndarray:
    """Four chains, each constant at a different K+ (3, 4, 5, 6) for 1,000 draws."""
    return np.repeat(np.array([3.0, 4.0, 5.0, 6.0])[:, None], 1000, axis=1)


def test_chains_constant_at_different_values_fail_rhat_with_a_reason():
    rng = np.random.default_rng(0)
    q = {"K+": _stuck_chains(), "log_likelihood": rng.normal(size=(4, 1000))}
    d = diagnostics(q, None, Engine.COLLAPSED)
    k = d["quantities"]["K+"]
    assert k["r_hat"] is None and k["r_hat_infinite"]
    assert "each stays at a different K+ (3, 4, 5, 6)" in k["notes"]["r_hat"]
    assert d["max_r_hat"] is None and not d["r_hat_ok"]
    assert any("R-hat ∞" in w and "K+" in w for w in d["warnings"])
    json.dumps(d)  # storable as JSON: no inf / nan
    summary = {"diagnostics": d, "sampling": {"chains": 4, "draws": 1000}, "engine": "collapsed"}
    rhat_row = next(r for r in traffic_lights(summary) if r["check"].startswith("R-hat"))
    assert rhat_row["status"] == "red" and rhat_row["value"].startswith("∞")


def test_nan_ess_warns():
    rng = np.random.default_rng(1)
    bad = rng.normal(size=(4, 500))
    bad[2, 10] = np.nan
    d = diagnostics({"alpha": bad}, None, Engine.NUTS)
    q = d["quantities"]["alpha"]
    assert q["ess_bulk"] is None and "NaN" in q["notes"]["ess_bulk"]
    assert d["min_ess_bulk"] is None
    assert any("ESS bulk not finite" in w for w in d["warnings"])
    summary = {"diagnostics": d, "sampling": {"chains": 4, "draws": 500}, "engine": "nuts"}
    ess = next(r for r in traffic_lights(summary) if r["check"] == "ESS bulk (min)")
    assert ess["status"] == "red" and ess["value"].startswith("n/a")


def test_well_mixed_chains_pass():
    rng = np.random.default_rng(2)
    d = diagnostics({"x": rng.normal(size=(4, 1000))}, 0, Engine.NUTS)
    assert d["r_hat_ok"] and d["warnings"] == []
    assert 0.99 < d["max_r_hat"] < 1.01


def test_kplus_that_never_moves_warns():
    rng = np.random.default_rng(3)
    k = rng.integers(2, 5, size=(4, 500))
    k[1] = 2  # one chain never moves
    warnings = mixing_check(k, Engine.COLLAPSED)
    assert len(warnings) == 1 and "never changed within chain(s) 1 (K+ = 2)" in warnings[0]
    assert "--engine collapsed" not in warnings[0]  # it is the collapsed engine already
    assert "--engine collapsed" in mixing_check(k, Engine.GIBBS)[0]
    assert mixing_check(k, Engine.NUTS) == []
    assert mixing_check(rng.integers(2, 5, size=(4, 500)), Engine.GIBBS) == []
    # constant in every draw of every chain: one warning, whatever the engine
    flat = np.full((4, 500), 2.0)
    for eng in (Engine.COLLAPSED, Engine.NUTS):
        d = diagnostics({"K+": flat}, None, eng, split_merge_accept=[0.0] * 4)
        assert d["quantities"]["K+"]["r_hat"] is None and not d["r_hat_ok"]
        assert len(d["warnings"]) == 1
        assert d["warnings"][0].startswith("K+ = 2 in every draw of every chain")


def test_low_split_merge_acceptance_warns():
    moving = np.random.default_rng(4).integers(2, 5, size=(2, 500))
    w = mixing_check(moving, Engine.COLLAPSED, split_merge_accept=[0.2, 0.004])
    assert len(w) == 1 and "chain 1: 0.40%" in w[0]


def test_diagnose_one_chain_has_no_rhat():
    d = diagnose(np.random.default_rng(5).normal(size=(1, 300)), "x")
    assert d["r_hat"] is None and "one chain" in d["notes"]["r_hat"]


def test_pmf_mcse_of_iid_indicator_matches_binomial_se():
    rng = np.random.default_rng(6)
    ind = (rng.random((4, 5000)) < 0.3).astype(float)
    # iid draws: MCSE = sqrt(p (1 - p) / n); ArviZ's ESS estimate is within a few % of n
    se = np.sqrt(0.3 * 0.7 / ind.size)
    assert pmf_mcse(ind) == pytest.approx(se, rel=0.1)


def test_tie_within_monte_carlo_error_is_stated():
    rng = np.random.default_rng(7)
    # iid K+ with P(3) = P(4) = 0.4, P(5) = 0.2: the estimated top two differ by noise only
    k = rng.choice([3, 4, 5], p=[0.4, 0.4, 0.2], size=(4, 1000))
    s = kplus_summary(k)
    assert s["tied_with_mode"] == [3, 4]
    text = answer_sentence({"n_clusters": s})
    assert "3 or 4 groups, equally likely" in text
    clear = kplus_summary(rng.choice([3, 4], p=[0.8, 0.2], size=(4, 1000)))
    assert clear["tied_with_mode"] == [3]
    assert "most likely hold 3 groups" in answer_sentence({"n_clusters": clear})
