"""Small dense linear algebra for the Gibbs kernels (D is small; hand-written loops beat LAPACK calls)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

NEG_INF = -np.inf


@njit(cache=True, nogil=True)
def chol_lower(a, out):
    """out = L with L L^T = a (lower); returns False if a is not positive definite."""
    d = a.shape[0]
    for j in range(d):
        s = a[j, j]
        for k in range(j):
            s -= out[j, k] * out[j, k]
        if not s > 0.0:
            return False
        ljj = math.sqrt(s)
        out[j, j] = ljj
        for i in range(j + 1, d):
            t = a[i, j]
            for k in range(j):
                t -= out[i, k] * out[j, k]
            out[i, j] = t / ljj
        for i in range(j):
            out[i, j] = 0.0
    return True


@njit(cache=True, nogil=True)
def chol_update(lo, u):
    """Rank-one update in place: lo lo^T <- lo lo^T + u u^T (u is overwritten)."""
    d = lo.shape[0]
    for k in range(d):
        lkk = lo[k, k]
        r = math.sqrt(lkk * lkk + u[k] * u[k])
        c = r / lkk
        s = u[k] / lkk
        lo[k, k] = r
        for j in range(k + 1, d):
            lo[j, k] = (lo[j, k] + s * u[j]) / c
            u[j] = c * u[j] - s * lo[j, k]


@njit(cache=True, nogil=True)
def chol_downdate(lo, u):
    """Rank-one downdate in place: lo lo^T <- lo lo^T - u u^T; False if it loses definiteness."""
    d = lo.shape[0]
    for k in range(d):
        lkk = lo[k, k]
        r2 = lkk * lkk - u[k] * u[k]
        if not r2 > 0.0:
            return False
        r = math.sqrt(r2)
        c = r / lkk
        s = u[k] / lkk
        lo[k, k] = r
        for j in range(k + 1, d):
            lo[j, k] = (lo[j, k] - s * u[j]) / c
            u[j] = c * u[j] - s * lo[j, k]
    return True


@njit(cache=True, nogil=True)
def tri_inv_lower(lo, out):
    """out = lo^{-1} for lower-triangular lo (out is lower triangular)."""
    d = lo.shape[0]
    for i in range(d):
        for j in range(d):
            out[i, j] = 0.0
    for j in range(d):
        out[j, j] = 1.0 / lo[j, j]
        for i in range(j + 1, d):
            s = 0.0
            for k in range(j, i):
                s += lo[i, k] * out[k, j]
            out[i, j] = -s / lo[i, i]


@njit(cache=True, nogil=True)
def logsumexp(v, n):
    """log sum_{k<n} exp(v_k)."""
    m = NEG_INF
    for k in range(n):
        if v[k] > m:
            m = v[k]
    if m == NEG_INF:
        return NEG_INF
    s = 0.0
    for k in range(n):
        s += math.exp(v[k] - m)
    return m + math.log(s)


@njit(cache=True, nogil=True)
def gram(b, out):
    """out = b b^T (symmetric; b square, any shape of triangle)."""
    d = b.shape[0]
    for i in range(d):
        for j in range(i + 1):
            t = 0.0
            for k in range(d):
                t += b[i, k] * b[j, k]
            out[i, j] = t
            out[j, i] = t
