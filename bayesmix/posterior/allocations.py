"""Allocations z | theta for each posterior draw (Gibbs-style), and the pointwise log-likelihood.

numpy and numba: arrays in, arrays out. Draws are flattened to a leading axis S.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

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
    """One draw per row from p proportional to exp(logp) (last axis), by inverse CDF."""
    p = np.exp(logp - logp.max(axis=-1, keepdims=True))
    cdf = np.cumsum(p, axis=-1)
    u = rng.random(p.shape[:-1]) * cdf[..., -1]
    return np.minimum((cdf < u[..., None]).sum(axis=-1), logp.shape[-1] - 1)


def log_joint_draws(x: np.ndarray, w: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log w_sk + log N(x_n | mu_sk, Sigma_sk) for a block of draws: (S, N, K); log 0 = -inf.

    With Sigma = L L^T: log N = -D/2 log 2pi - sum log diag L - |L^-1 (x - mu)|^2 / 2, the
    triangular factors inverted once per component and applied to all N points at once.
    """
    s, k, d = mu.shape
    if d == 1:
        sd = np.sqrt(cov[..., 0, 0])  # (S, K)
        r = (x[None, :, 0, None] - mu[:, None, :, 0]) / sd[:, None, :]  # (S, N, K)
        logdens = -0.5 * r * r - np.log(sd)[:, None, :] - 0.5 * LOG_2PI
    else:
        linv = np.linalg.inv(np.linalg.cholesky(cov))  # (S, K, D, D)
        y = np.einsum("skde,ne->sknd", linv, x) - np.einsum("skde,ske->skd", linv, mu)[:, :, None]
        logdet = np.log(np.diagonal(linv, axis1=-2, axis2=-1)).sum(-1)  # -log|L|, (S, K)
        logdens = (-0.5 * np.einsum("sknd,sknd->snk", y, y)) + logdet[:, None, :]
        logdens -= 0.5 * d * LOG_2PI
    with np.errstate(divide="ignore"):
        return np.log(w)[:, None, :] + logdens


@nb.njit(cache=True, nogil=True)
def _pointwise_loglik(x, logw, mu, linv, logdet, out):  # pragma: no cover - compiled
    """out[s, i] = log sum_k exp(logw[s, k] + logdet[s, k] - |linv[s, k] (x_i - mu[s, k])|^2 / 2)
    - D/2 log 2pi, with linv lower triangular; components with logw = -inf are skipped."""
    s_total, k_total, d = mu.shape
    n = x.shape[0]
    terms = np.empty(k_total)
    for s in range(s_total):
        for i in range(n):
            top = -np.inf
            for k in range(k_total):
                if logw[s, k] == -np.inf:
                    terms[k] = -np.inf
                    continue
                q = 0.0
                for a in range(d):
                    acc = 0.0
                    for b in range(a + 1):
                        acc += linv[s, k, a, b] * (x[i, b] - mu[s, k, b])
                    q += acc * acc
                v = logw[s, k] + logdet[s, k] - 0.5 * q
                terms[k] = v
                if v > top:
                    top = v
            acc = 0.0
            for k in range(k_total):
                if terms[k] > -np.inf:
                    acc += math.exp(terms[k] - top)
            out[s, i] = top + math.log(acc) - 0.5 * d * LOG_2PI


def pointwise_loglik(x: np.ndarray, w: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log sum_k w_sk N(x_i | mu_sk, Sigma_sk) for every draw s and observation i: (S, N).

    One compiled pass without (S, N, K) temporaries (galaxy, 20,000 draws x 14 components:
    0.3 s against 0.9 s for the blocked numpy version that also draws z).
    """
    linv = np.linalg.inv(np.linalg.cholesky(cov))
    logdet = np.log(np.diagonal(linv, axis1=-2, axis2=-1)).sum(-1)
    with np.errstate(divide="ignore"):
        logw = np.log(w)
    out = np.empty((w.shape[0], x.shape[0]))
    _pointwise_loglik(
        np.ascontiguousarray(x, dtype=np.float64),
        np.ascontiguousarray(logw, dtype=np.float64),
        np.ascontiguousarray(mu, dtype=np.float64),
        np.ascontiguousarray(linv, dtype=np.float64),
        np.ascontiguousarray(logdet, dtype=np.float64),
        out,
    )
    return out


def allocations(
    x: np.ndarray,
    w: np.ndarray,
    mu: np.ndarray,
    cov: np.ndarray,
    rng: np.random.Generator,
    z: np.ndarray | None = None,
    chunk: int = 1 << 21,
) -> tuple[np.ndarray, np.ndarray]:
    """Per draw s: z_i ~ p(z_i = k | w, mu, Sigma, x_i) proportional to w_k N(x_i | mu_k, Sigma_k).

    Arrays have a leading draw axis S. Returns (z (S, N), the pointwise log-likelihood
    log sum_k w_k N(x_i | .) (S, N)). If ``z`` is given (engines that sample it natively) it
    is kept and only the log-likelihood is computed. Works in blocks of about ``chunk``
    (draw, observation, component) entries.
    """
    if z is not None:
        return np.asarray(z), pointwise_loglik(x, w, mu, cov)
    s_total, n = w.shape[0], x.shape[0]
    k, d = mu.shape[1], mu.shape[2]
    z_out = np.empty((s_total, n), dtype=np.int64)
    loglik = np.empty((s_total, n))
    step = max(1, chunk // max(1, n * k * d))
    for a in range(0, s_total, step):
        b = min(s_total, a + step)
        lj = log_joint_draws(x, w[a:b], mu[a:b], cov[a:b])
        top = lj.max(axis=-1, keepdims=True)
        loglik[a:b] = (top + np.log(np.exp(lj - top).sum(axis=-1, keepdims=True)))[..., 0]
        z_out[a:b] = sample_categorical(lj, rng)
    return z_out, loglik


def n_clusters(z: np.ndarray) -> np.ndarray:
    """K+: the number of distinct labels in each row of z (..., N) -> (...)."""
    z = np.asarray(z)
    flat = z.reshape(-1, z.shape[-1])
    srt = np.sort(flat, axis=1)
    counts = 1 + np.count_nonzero(np.diff(srt, axis=1), axis=1)
    return counts.reshape(z.shape[:-1])
