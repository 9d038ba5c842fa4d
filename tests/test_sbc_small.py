"""A small simulation-based calibration of the collapsed Gibbs sampler (1-D DP mixture).

100 replications of: alpha ~ Gamma(2, 2), untruncated stick-breaking weights, NIG kernel
parameters, N ~ U{50..200} observations; collapsed Gibbs on the raw data; ranks of alpha,
K+, the log-likelihood and the largest weight among L = 99 ESS-thinned draws
(benchmarks/sbc.py has the details; the full study is ``python -m benchmarks.sbc``).
Deselect with ``-m "not sbc"``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks.common import chi2_uniform  # noqa: E402
from benchmarks.sbc import QUANTITIES, Config, Settings, run_rep  # noqa: E402

REPS = 100
BINS = 10  # 100 ranks in 10 bins: 10 expected per bin, where the chi-square law is accurate


@pytest.mark.sbc
def test_sbc_collapsed_dp_1d() -> None:
    st = Settings(seed=7, bins=BINS)
    cfg = Config("dp", 1, "collapsed", REPS, index=0)
    results = [run_rep(cfg, r, st) for r in range(REPS)]
    for q in QUANTITIES:
        ranks = np.array([r["ranks"][q] for r in results])
        assert ranks.min() >= 0 and ranks.max() <= st.n_kept
        _, p = chi2_uniform(ranks, st.n_kept + 1, BINS)
        # Threshold 0.001 per quantity: with 4 quantities the family-wise false-alarm rate of
        # a correct sampler is below 1 - 0.999^4 < 0.4%, while a biased sampler (e.g. a
        # wrong conditional for alpha or a missing split-merge correction) gives p-values far
        # below 1e-3 at 100 replications.
        assert p > 0.001, f"SBC ranks of {q} are not uniform: chi-square p = {p:.2e}"
