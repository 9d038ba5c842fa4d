"""benchmarks/nuts_study: the design is one factor at a time, the made-up data are fixed, and
the acceptance summary picks the right cell (no sampling here)."""

from __future__ import annotations

import numpy as np

from benchmarks import nuts_study as ns


def test_design_changes_one_factor_at_a_time():
    base = {"graph": "dp_wi", "init": "em", "target_accept": 0.8, "chains": ns.FULL.chains}
    for d, ordered in ((1, True), (2, False)):
        cells = ns.design(ns.FULL, d)
        assert cells[0]["factor"] == "baseline"
        assert ("sparse_wi_ordered" in {c["graph"] for c in cells}) is ordered
        for c in cells[1:]:
            changed = {k for k in base if c[k] != base[k]}
            assert len(changed) == 1, c
        assert set(ns.specs()) >= {c["graph"] for c in cells}


def test_acidity_like_is_fixed_by_its_seed():
    a, b = ns.acidity_like(), ns.acidity_like()
    assert a.shape == (155, 1) and np.array_equal(a, b)
    assert 4.5 < a.mean() < 5.2


def _cell(name, rhat, ess, div, ess_s):
    figs = {q: {"ess_per_s": ess_s, "r_hat": rhat, "ess_bulk": ess} for q in ns.QUANTITIES}
    return {
        "factor": "kernel",
        "graph": name,
        "figures": figs,
        "max_r_hat": rhat,
        "min_ess_bulk": ess,
        "divergence_rate": div,
        "meets_acceptance": rhat <= 1.01 and ess >= 400 and div < 0.005,
    }


def test_best_cell_prefers_passing_cells_then_the_smallest_r_hat():
    slow_ok = _cell("a", 1.005, 500, 0.001, 5.0)
    fast_ok = _cell("b", 1.008, 450, 0.002, 9.0)
    bad = _cell("c", 1.2, 30, 0.0, 100.0)
    assert ns.best_cell([slow_ok, fast_ok, bad])["graph"] == "b"
    near = _cell("d", 1.02, 300, 0.01, 1.0)
    assert ns.best_cell([bad, near])["graph"] == "d"
