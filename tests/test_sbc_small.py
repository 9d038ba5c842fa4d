"""A small simulation-based calibration of the collapsed Gibbs sampler (1-D DP mixture).

100 replications of: alpha ~ Gamma(2, 2), untruncated stick-breaking weights, NIG kernel
parameters, N ~ U{50..200} observations; collapsed Gibbs on the raw data; ranks of alpha,
K+, the log-likelihood and the largest weight among L = 99 ESS-thinned draws
(benchmarks/sbc.py has the details; the full study is ``python -m benchmarks.sbc``).
Deselect with ``-m "not sbc"``.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.common import chi2_uniform
from benchmarks.sbc import Config, Settings, run_rep

REPS = 100
BINS = 10  # 100 ranks in 10 bins: 10 expected per bin, where the chi-square law is accurate


@pytest.mark.sbc
def test_sbc_collapsed_dp_1d() -> None:
    st = Settings(seed=7, bins=BINS)
    cfg = Config("dp", 1, "collapsed", REPS, index=0)
    results = [run_rep(cfg, r, st) for r in range(REPS)]
    assert all(set(r["ranks"]) == {"concentration", "K+", "loglik", "max_w"} for r in results)
    for q in ("concentration", "K+", "loglik", "max_w"):
        ranks = np.array([r["ranks"][q] for r in results])
        assert ranks.min() >= 0 and ranks.max() <= st.n_kept
        _, p = chi2_uniform(ranks, st.n_kept + 1, BINS)
        # Threshold 0.001 per quantity: with 4 quantities the family-wise false-alarm rate of
        # a correct sampler is below 1 - 0.999^4 < 0.4%.  Power at 100 replications, measured
        # by simulating from a wrong prior and fitting the right one: alpha ~ Gamma(2, 0.5)
        # instead of Gamma(2, 2) gives p = 1e-52 (alpha), 2e-24 (K+); b0 = 1 instead of 0.25
        # gives p = 2e-7 (K+); alpha ~ Gamma(2, 1.5) or b0 = 0.3 go unnoticed (p > 0.1).  So
        # this is a smoke test for gross errors; the full study (benchmarks/sbc.py, 500+
        # replications per model) is the calibration check.
        assert p > 0.001, f"SBC ranks of {q} are not uniform: chi-square p = {p:.2e}"
