"""Engine cross-check: NUTS (nutpie) and the blocked Gibbs sampler fit the same posterior.

Galaxy velocities (standardised) with ``benchmarks/specs/galaxy_conjugate_alpha24.toml`` (an
internal spec, loaded by path): DP truncated at T = 20, alpha ~ Gamma(2, 4), conjugate NIG
kernel.  That the PyMC model's log-density is the intended one is checked exactly, point by
point, in ``tests/test_logp_scipy.py``; this test is the statistical end-to-end check that the
two engines sample the same posterior, so the posterior of K+ and of alpha must agree up to
Monte Carlo error, and K+ must be the same statistic of z in both.

Tolerances come from the effective sample sizes the test *asserts* (the minimums below), not
from the run's own MCSE and not from observed differences.  NUTS mixes slowly over K+ on this
model (ESS(K+) was 15-114 per 8,000 draws over 9 seeds, and it changes with the PyTensor
compilation state, because NUTS trajectories are chaotic), so the asserted minimums are low and
the check catches gross mismatches only (e.g. alpha ~ Gamma(2, 4) read with scale 4 instead of
rate 4 moves the posterior mean of alpha by +1.3).  It cannot see the small lean of NUTS's
draws towards K+ = 3 at the default target_accept (mean alpha 0.56-0.65 against 0.64 from Gibbs
over those seeds), which the long-run comparison in ``python -m benchmarks.engines`` reports.
Collapsed vs blocked Gibbs is ``tests/test_gibbs.py::test_galaxy_collapsed_vs_blocked``.

One nutpie compilation (about 10-30 s with a warm PyTensor cache, 90-120 s cold) plus the
sampling: about 20 s for the file on two cores with a warm cache.
"""

from __future__ import annotations

import math
from pathlib import Path

import arviz as az
import numpy as np
import pytest
from scipy import stats

from bayesmix.data import dataset_path, load_data
from bayesmix.engines.gibbs import sample_gibbs
from bayesmix.engines.nuts import sample_nuts
from bayesmix.posterior.allocations import allocations, n_clusters
from bayesmix.spec import KernelSpec, load_spec

SPEC_PATH = (
    Path(__file__).resolve().parents[1] / "benchmarks" / "specs" / "galaxy_conjugate_alpha24.toml"
)
SEED = 20261126
NUTS_KW = dict(chains=4, tune=1000, draws=2000, seed=SEED, progress=False)
GIBBS_KW = dict(chains=4, tune=1000, draws=20000, seed=SEED, progress=False, cores=1)

# Asserted minimum effective sample sizes: the tolerances below are derived from these.
MIN_ESS_KPLUS_NUTS = 12
MIN_ESS_KPLUS_GIBBS = 600
MIN_ESS_ALPHA_NUTS = 25
MIN_ESS_ALPHA_GIBBS = 1000
# Tests at 4.5 standard errors: two-sided normal tail probability 6.8e-6.
Z = 4.5
P_FALSE_ALARM = 2 * stats.norm.sf(Z)
# K+ cells, fixed in advance (each holds >= 10% posterior mass for these data and priors).
CELLS = ((0, 3), (4, 4), (5, 5), (6, 10**6))


def kplus_cells(k: np.ndarray) -> np.ndarray:
    """Share of the draws of K+ (any shape) in each of CELLS."""
    k = np.asarray(k).ravel()
    return np.array([np.mean((k >= lo) & (k <= hi)) for lo, hi in CELLS])


@pytest.fixture(scope="module")
def galaxy() -> np.ndarray:
    return load_data(dataset_path("galaxies")).standardized


@pytest.fixture(scope="module")
def spec():
    return load_spec(SPEC_PATH)


def test_crosscheck_spec_file(spec):
    assert spec.name == "dp_alpha_gamma24"
    assert spec.mixing.type == "dp" and spec.mixing.n_components == 20
    assert spec.mixing.concentration is None
    prior = spec.mixing.concentration_prior
    assert (prior.shape, prior.rate) == (2.0, 4.0)
    # the default conjugate kernel: the same priors as test_gibbs's galaxy check
    assert spec.kernel == KernelSpec()
    assert spec.is_conjugate


def test_nuts_matches_blocked_gibbs(galaxy, spec):
    r"""Two-sample tests of the posterior of alpha and K+ at the asserted minimum ESS.

    alpha.  Under H0 (one posterior), the difference D of the two posterior means has SD
    sigma_alpha sqrt(1/E_N + 1/E_G), with E the ESS of alpha in each run and sigma_alpha the
    posterior SD (estimated from the Gibbs draws, ESS >= 1,000).  With E_N >= 25 and E_G >= 1,000
    asserted, |D| <= 4.5 sigma_alpha sqrt(1/25 + 1/1000) has false-alarm probability at most
    6.8e-6 (about 0.30 for sigma_alpha = 0.33).

    K+.  The shares p_N, p_G of the draws in the fixed cells m = 1..M (M = 4) are asymptotically
    normal with covariance (diag p - p p') / E, E = ESS(K+) taken as the effective size of every
    cell indicator.  Then the two-sample statistic
        X^2 = sum_m (p_N,m - p_G,m)^2 / (p_m (1/E_N + 1/E_G))
    is chi-square with M - 1 = 3 degrees of freedom; p_m is estimated by p_G (ESS >= 600).  At
    the asserted E_N >= 12, E_G >= 600 the real ESS are at least as large, so computing X^2 with
    the minimums makes it (stochastically) smaller and the false-alarm probability is at most
    P(chi2_3 > q) = 6.8e-6, q = 26.7.  By Cauchy-Schwarz the pmf's TV distance is at most
    0.5 sqrt(X^2 (1/E_N + 1/E_G)), so passing bounds TV <= 0.75 at the minimums: gross
    mismatches only (e.g. all of NUTS's mass at K+ >= 6 would give X^2 ~ 70).
    """
    nuts = sample_nuts(spec, galaxy, sampler="nutpie", **NUTS_KW)
    blk = sample_gibbs(spec, galaxy, algorithm="blocked", **GIBBS_KW)
    assert nuts.w.shape[2] == blk.w.shape[2] == 20  # the same truncation

    # K+ for NUTS: z drawn from p(z | w, mu, Sigma) per posterior draw (as the pipeline does)
    c, s, k = nuts.w.shape
    z = allocations(
        galaxy,
        nuts.w.reshape(c * s, k),
        nuts.mu.reshape(c * s, k, 1),
        nuts.cov.reshape(c * s, k, 1, 1),
        np.random.default_rng(SEED),
    )[0]
    k_nuts = n_clusters(z).reshape(c, s)
    k_gibbs = blk.sample_stats["n_occupied"]
    # the Gibbs engine's K+ is the same statistic of its native z
    np.testing.assert_array_equal(n_clusters(blk.z), k_gibbs)

    ess_k = float(az.ess(k_nuts.astype(float))), float(az.ess(k_gibbs.astype(float)))
    ess_a = float(az.ess(nuts.concentration)), float(az.ess(blk.concentration))
    print(f"ESS(K+) nuts/gibbs {ess_k}; ESS(alpha) {ess_a}")
    assert ess_k[0] >= MIN_ESS_KPLUS_NUTS and ess_k[1] >= MIN_ESS_KPLUS_GIBBS, ess_k
    assert ess_a[0] >= MIN_ESS_ALPHA_NUTS and ess_a[1] >= MIN_ESS_ALPHA_GIBBS, ess_a

    # alpha: z-test at the asserted ESS
    sd_alpha = float(np.std(blk.concentration))
    se_alpha = sd_alpha * math.sqrt(1 / MIN_ESS_ALPHA_NUTS + 1 / MIN_ESS_ALPHA_GIBBS)
    diff = float(nuts.concentration.mean() - blk.concentration.mean())
    print(f"alpha diff {diff:+.4f}, tolerance {Z * se_alpha:.4f} (posterior SD {sd_alpha:.3f})")
    assert abs(diff) <= Z * se_alpha, (diff, Z * se_alpha)

    # K+: chi-square two-sample test at the asserted ESS
    p_nuts, p_gibbs = kplus_cells(k_nuts), kplus_cells(k_gibbs)
    assert np.all(p_gibbs > 0), p_gibbs
    inv_e = 1 / MIN_ESS_KPLUS_NUTS + 1 / MIN_ESS_KPLUS_GIBBS
    x2 = float(np.sum((p_nuts - p_gibbs) ** 2 / (p_gibbs * inv_e)))
    q = float(stats.chi2.isf(P_FALSE_ALARM, len(CELLS) - 1))
    print(f"K+ cells nuts {p_nuts.round(3)} gibbs {p_gibbs.round(3)}; X2 {x2:.2f} (max {q:.1f})")
    assert x2 <= q, (x2, q, p_nuts, p_gibbs)
