"""Allocations z | theta for each posterior draw (Gibbs-style), and the pointwise log-likelihood.

Pure numpy: arrays in, arrays out. Draws are flattened to a leading axis S.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

LOG_2PI = float(np.log(2 * np.pi))


def component_log_density(x: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log N(x_n | mu_k, Sigma_k) for one draw: (N, D), (K, D), (K, D, D) -> (N, K)."""
    d = x.shape[1]
    chol = np.linalg.cholesky(cov)  # (K, D, D)
    diff = x[None, :, :] - mu[:, None, :]  # (K, N, D)
    y = np.linalg.solve(chol, np.swapaxes(diff, 1, 2))  # (K, D, N)
    maha = np.sum(y**2, axis=1)  # (K, N)
    logdet = np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)  # (K,)
    return (-0.5 * maha - logdet[:, None] - 0.5 * d * LOG_2PI).T


def log_joint(x: np.ndarray, w: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log w_k + log N(x_n | mu_k, Sigma_k) for one draw -> (N, K); log 0 = -inf."""
    with np.errstate(divide="ignore"):
        logw = np.log(w)
    return logw[None, :] + component_log_density(x, mu, cov)


def sample_categorical(logp: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row from p proportional to exp(logp) (rows of logp), by inverse CDF."""
    p = np.exp(logp - logp.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    u = rng.random(len(p)) * cdf[:, -1]
    return np.minimum((cdf < u[:, None]).sum(axis=1), logp.shape[1] - 1)


def allocations(
    x: np.ndarray,
    w: np.ndarray,
    mu: np.ndarray,
    cov: np.ndarray,
    rng: np.random.Generator,
    z: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per draw s: z_i ~ p(z_i = k | w, mu, Sigma, x_i) proportional to w_k N(x_i | mu_k, Sigma_k).

    Arrays have a leading draw axis S. Returns (z (S, N), pointwise log-likelihood
    log sum_k w_k N(x_i | .) (S, N), mean responsibilities over draws (N, K)).
    If ``z`` is given (engines that sample it natively) it is kept and only the
    log-likelihood and responsibilities are computed.
    """
    s_total, n = w.shape[0], x.shape[0]
    z_out = np.empty((s_total, n), dtype=np.int64) if z is None else np.asarray(z)
    loglik = np.empty((s_total, n))
    resp = np.zeros((n, w.shape[1]))
    for s in range(s_total):
        lj = log_joint(x, w[s], mu[s], cov[s])
        lse = logsumexp(lj, axis=1)
        loglik[s] = lse
        resp += np.exp(lj - lse[:, None])
        if z is None:
            z_out[s] = sample_categorical(lj, rng)
    return z_out, loglik, resp / s_total


def n_clusters(z: np.ndarray) -> np.ndarray:
    """K+: the number of distinct labels in each row of z (..., N) -> (...)."""
    z = np.asarray(z)
    flat = z.reshape(-1, z.shape[-1])
    srt = np.sort(flat, axis=1)
    counts = 1 + np.count_nonzero(np.diff(srt, axis=1), axis=1)
    return counts.reshape(z.shape[:-1])
