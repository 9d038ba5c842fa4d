"""Random variates for the Gibbs kernels, from numba's per-thread generator (seeded inside the kernels)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def seed_rng(seed):
    """Seed numba's RNG of the calling thread (numba keeps its own state, apart from numpy's)."""
    np.random.seed(seed)


@njit(cache=True, nogil=True)
def log_gamma_rv(a):
    """log G with G ~ Gamma(a, 1); safe for tiny shapes (G = G' U^(1/a), G' ~ Gamma(a + 1))."""
    if a < 1.0:
        return math.log(np.random.gamma(a + 1.0, 1.0)) + math.log(1.0 - np.random.random()) / a
    return math.log(np.random.gamma(a, 1.0))
