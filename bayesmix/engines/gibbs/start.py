"""Initial allocations of a chain."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def init_by_centres(x, k, z):
    """z_i = nearest of k distinct data points chosen at random (Euclidean, standardised scale)."""
    n, d = x.shape
    k = min(k, n)
    idx = np.arange(n)
    for j in range(k):
        r = j + np.random.randint(0, n - j)
        idx[j], idx[r] = idx[r], idx[j]
    for i in range(n):
        best = 0
        bd = np.inf
        for j in range(k):
            s = 0.0
            for a in range(d):
                t = x[i, a] - x[idx[j], a]
                s += t * t
            if s < bd:
                bd = s
                best = j
        z[i] = best
