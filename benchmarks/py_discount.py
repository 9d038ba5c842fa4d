"""Mixing of the blocked Pitman-Yor sampler's discount: ESS per CPU-second of sigma and K+.

Three data sets of N = 100 in 2-D from the truncated PY (T = 20, theta + sigma = 1, true sigma
0.8, 0.5, 0.2; seeds 1, 2, 3): weights by ``benchmarks.sbc.py_sticks``, means N(0, 3^2 I),
within-cluster sd 0.5. Model: theta + sigma ~ Gamma(2, 2), sigma ~ Beta(1, 3) (the SBC's),
T = 20, the shipped conjugate full-covariance kernel; blocked Gibbs, 2 chains x (500 tune +
5,000 draws), seed 3, one warm-up run first. ESS: ArviZ ESS_bulk; CPU seconds:
``time.process_time`` of the sampling call. Uses only the public sampler API, so the same
script measures any commit (the note of issue 13 compares 0e78438, before the fix, with 1054b51).

Usage: ``python -m benchmarks.py_discount`` (prints one line per data set).
"""

from __future__ import annotations

import time

import arviz as az
import numpy as np

from bayesmix.engines.gibbs import sample_gibbs
from bayesmix.spec import BetaPrior, GammaPrior, KernelSpec, MixingSpec, ModelSpec
from benchmarks.sbc import py_sticks

T, N = 20, 100
CASES = ((1, 0.8), (2, 0.5), (3, 0.2))


def data(seed: int, sigma: float) -> np.ndarray:
    """N points in 2-D from the truncated PY with theta + sigma = 1."""
    rng = np.random.default_rng(seed)
    w = py_sticks(1.0 - sigma, sigma, T, rng)
    z = rng.choice(T, size=N, p=w / w.sum())
    mu = rng.normal(0, 3, size=(T, 2))
    return mu[z] + 0.5 * rng.standard_normal((N, 2))


def main() -> int:
    mix = MixingSpec("pitman_yor", T, None, GammaPrior(2.0, 2.0), None, BetaPrior(1.0, 3.0))
    spec = ModelSpec(mixing=mix, kernel=KernelSpec(covariance="full"))
    kw = dict(algorithm="blocked", progress=False, cores=1)
    for seed, sigma in CASES:
        x = data(seed, sigma)
        sample_gibbs(spec, x, chains=1, draws=10, tune=10, seed=1, **kw)  # JIT / cache warm-up
        t0 = time.process_time()
        dr = sample_gibbs(spec, x, chains=2, draws=5000, tune=500, seed=3, **kw)
        cpu = time.process_time() - t0
        e_s = float(az.ess(dr.params["discount"]))
        e_k = float(az.ess(dr.sample_stats["n_occupied"].astype(float)))
        print(f"true sigma {sigma}: CPU {cpu:.2f} s; ESS sigma {e_s:.0f}, K+ {e_k:.0f}; "
              f"per CPU-s sigma {e_s / cpu:.0f}, K+ {e_k / cpu:.0f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
