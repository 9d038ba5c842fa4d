"""Label switching: relabelling of mixture posterior draws and per-cluster summaries.

Arrays: allocations ``z`` (S, N) int in 0..K-1; weights ``w`` (S, K); means ``mu`` (S, K, D);
covariances ``cov`` (S, K, D, D); data ``x`` (N, D).

Permutation convention (used by every function here): ``perms`` is an int array (S, K) and
``perms[s, k]`` is the NEW label of OLD label k in draw s. Hence relabelled allocations are
``z_new[s, i] = perms[s, z[s, i]]`` and arrays indexed by component satisfy
``w_new[s, perms[s, k]] = w[s, k]`` (same for mu, cov and the last axis of probs).

References: Stephens (2000) "Dealing with label switching in mixture models", JRSS-B;
Papastamoulis & Iliopoulos (2010) "An artificial allocations based solution to the label
switching problem in Bayesian analysis of mixtures of distributions", JCGS (ECR).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from scipy.optimize import linear_sum_assignment

from bayesmix.posterior.partition import _as_draws, _objectives, psm_subset

__all__ = [
    "apply_permutation",
    "classification_probs",
    "cluster_summary",
    "default_pivot",
    "ecr",
    "inverse_permutation",
    "stephens",
]

_CHUNK = 1 << 22  # elements per temporary block in the chunked loops (~32 MB in float64)


# --------------------------------------------------------------------------- permutations


def _check_perms(perms) -> np.ndarray:
    perms = np.asarray(perms)
    if perms.ndim != 2:
        raise ValueError(f"perms must have shape (S, K), got {perms.shape}")
    k = perms.shape[1]
    if not np.array_equal(np.sort(perms, axis=1), np.broadcast_to(np.arange(k), perms.shape)):
        raise ValueError("every row of perms must be a permutation of 0..K-1")
    return perms.astype(np.int64)


def inverse_permutation(perms) -> np.ndarray:
    """inv with inv[s, perms[s, k]] = k: the OLD label now carrying new label l is inv[s, l]."""
    perms = _check_perms(perms)
    inv = np.empty_like(perms)
    np.put_along_axis(inv, perms, np.arange(perms.shape[1])[None, :], axis=1)
    return inv


def _permute_components(perms: np.ndarray, a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.shape[:2] != perms.shape:
        raise ValueError(f"{name} has shape {a.shape}, expected (S, K, ...) = {perms.shape}")
    out = np.empty_like(a)
    out[np.arange(a.shape[0])[:, None], perms] = a  # out[s, perms[s, k]] = a[s, k]
    return out


def apply_permutation(perms, z=None, w=None, mu=None, cov=None):
    """Relabel draws: returns (z_new, w_new, mu_new, cov_new), None for arguments not given.

    z_new[s, i] = perms[s, z[s, i]]; w_new[s, perms[s, k]] = w[s, k] (likewise mu, cov).
    """
    perms = _check_perms(perms)
    z_new = None
    if z is not None:
        z = _as_draws(z)
        if z.shape[0] != perms.shape[0]:
            raise ValueError("z and perms disagree on S")
        z_new = np.take_along_axis(perms, z.astype(np.int64), axis=1).astype(z.dtype)
    return (
        z_new,
        None if w is None else _permute_components(perms, w, "w"),
        None if mu is None else _permute_components(perms, mu, "mu"),
        None if cov is None else _permute_components(perms, cov, "cov"),
    )


def _assign(cost: np.ndarray, maximize: bool = False) -> np.ndarray:
    """One linear assignment per draw: perm[s, k] = column matched to row k of cost[s]."""
    out = np.empty(cost.shape[:2], dtype=np.int64)
    for s in range(cost.shape[0]):
        rows, cols = linear_sum_assignment(cost[s], maximize=maximize)
        out[s, rows] = cols
    return out


# --------------------------------------------------------------------------- ECR


def default_pivot(z, max_draws: int = 1000, max_n: int = 2000, seed=0) -> int:
    """Index of the draw minimising the expected Binder loss to the PSM, both taken over a random
    subset of at most ``max_draws`` draws (and ``max_n`` observations for the PSM)."""
    z = _as_draws(z)
    rng = np.random.default_rng(seed)
    s = z.shape[0]
    rows = np.arange(s) if s <= max_draws else np.sort(rng.choice(s, max_draws, replace=False))
    p, cols = psm_subset(z[rows], max_n=max_n, rng=rng)
    sub = np.ascontiguousarray(z[np.ix_(rows, cols)], dtype=np.int64)
    return int(rows[np.argmin(_objectives(sub, p, False))])


def ecr(z, pivot=None, K: int | None = None, seed=0) -> np.ndarray:
    """ECR relabelling (Papastamoulis & Iliopoulos 2010) of allocations z (S, N) to a pivot.

    For each draw s, perms[s] maximises sum_i 1(perms[s, z_si] = pivot_i), i.e. a linear
    assignment on the K x K count matrix C_kl = #{i: z_si = k, pivot_i = l}.
    ``pivot``: an allocation (N,) with labels < K, a draw index, or None for
    ``default_pivot(z)`` (the draw with the least expected Binder loss to the PSM).
    Returns perms (S, K); see the module docstring for the convention.
    """
    z = _as_draws(z)
    s, n = z.shape
    K = int(z.max(initial=-1)) + 1 if K is None else int(K)
    if z.size and z.max() >= K:
        raise ValueError(f"z has labels >= K = {K}")
    if pivot is None:
        pivot = default_pivot(z, seed=seed)
    piv = z[int(pivot)] if np.ndim(pivot) == 0 else np.asarray(pivot)
    if piv.shape != (n,) or (n and (piv.min() < 0 or piv.max() >= K)):
        raise ValueError(f"pivot must be a draw index or an allocation (N,) in 0..{K - 1}")
    perms = np.empty((s, K), dtype=np.int64)
    step = max(1, _CHUNK // max(n, K * K))
    for a in range(0, s, step):
        zc = z[a : a + step].astype(np.int64)
        code = (np.arange(zc.shape[0])[:, None] * K + zc) * K + piv[None, :]
        counts = np.bincount(code.ravel(), minlength=zc.shape[0] * K * K)
        perms[a : a + step] = _assign(counts.reshape(-1, K, K), maximize=True)
    return perms


# --------------------------------------------------------------------------- Stephens


@nb.njit(nogil=True, cache=True)
def _add_permuted(q, pc, rows, perms, sign):  # pragma: no cover - compiled
    """q[i, perms[r, k]] += sign * pc[r, i, k] for r in rows (relabelled probabilities)."""
    for r in rows:
        for i in range(pc.shape[1]):
            for k in range(pc.shape[2]):
                q[i, perms[r, k]] += sign * pc[r, i, k]


def _mean_permuted(probs: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Q_il = (1/S) sum_s p_new[s, i, l] with p_new[s, :, perms[s, k]] = p[s, :, k]."""
    q = np.zeros(probs.shape[1:])
    _add_permuted(q, probs, np.arange(probs.shape[0]), perms, 1.0)
    return q / probs.shape[0]


def stephens(
    probs, init_perms=None, max_iter: int = 100, tol: float = 1e-6, rtol: float = 1e-10
) -> np.ndarray:
    """Stephens (2000, Algorithm 3.3) KL relabelling of classification probabilities (S, N, K).

    Minimises F = sum_s sum_i KL(p_new[s, i, :] || Q_i) over the perms and Q, where
    Q_il = (1/S) sum_s p_new[s, i, l] is the minimiser in Q. For each chunk of draws the
    permutation minimising a draw's KL is the linear assignment with cost
    C_s[k, l] = -sum_i p_s[i, k] log Q_il (batched matrix products, then one assignment per
    draw; the entropy of p_s does not depend on the permutation), and Q is updated right after
    each chunk; every step lowers F. A draw's permutation only changes if its cost drops by more
    than ``rtol`` (relative), so exact ties cannot cycle. Stops when no permutation changes,
    when a full pass lowers F by less than ``tol`` nats per draw and observation (mostly-empty
    components otherwise keep trading labels for negligible gains; ``tol=0`` runs to the
    fixed point), or after ``max_iter`` passes. ``init_perms`` (e.g. from ``ecr``) defaults to
    the identity. Works in chunks of draws: beyond ``probs`` itself it needs O(N K) memory.
    Note: the KL is taken as KL(p_s || Q) as in the paper, not KL(Q || p_s).
    """
    probs = np.asarray(probs)
    if probs.ndim != 3:
        raise ValueError(f"probs must have shape (S, N, K), got {probs.shape}")
    if probs.dtype not in (np.float32, np.float64):
        probs = probs.astype(np.float64)
    s, n, k = probs.shape
    if init_perms is None:
        perms = np.broadcast_to(np.arange(k), (s, k)).copy()
    else:
        perms = _check_perms(init_perms).copy()
        if perms.shape != (s, k):
            raise ValueError("init_perms must have shape (S, K)")
    step = max(1, _CHUNK // max(1, n * k))
    q_sum = _mean_permuted(probs, perms) * s
    tiny = np.finfo(np.float64).tiny
    for _ in range(max_iter):
        n_changed, gain = 0, 0.0
        for a in range(0, s, step):
            log_q_t = np.log(np.maximum(q_sum.T / s, tiny))
            pc = probs[a : a + step].astype(np.float64, copy=False)
            cost = -np.matmul(log_q_t[None], pc).transpose(0, 2, 1)  # (chunk, K, K), [k, l]
            cand = _assign(cost)
            cur = perms[a : a + step]
            c_cur = np.take_along_axis(cost, cur[:, :, None], axis=2).sum((1, 2))
            c_new = np.take_along_axis(cost, cand[:, :, None], axis=2).sum((1, 2))
            better = np.flatnonzero(c_new < c_cur - rtol * np.maximum(1.0, np.abs(c_cur)))
            if better.size:
                _add_permuted(q_sum, pc, better, cur, -1.0)
                cur[better] = cand[better]
                _add_permuted(q_sum, pc, better, cur, 1.0)
                n_changed += better.size
                gain += float((c_cur - c_new)[better].sum())
        if n_changed == 0 or gain < tol * s * n:
            break
    return perms


def classification_probs(w, mu, cov, x, dtype=np.float64, log: bool = False) -> np.ndarray:
    """p(z_i = k | w_s, mu_s, cov_s, x_i) = w_sk N(x_i | mu_sk, cov_sk) / sum_l (same), (S, N, K).

    Computed in log space with Cholesky factors cov = L L^T (log N = -D/2 log 2pi
    - sum log diag L - |L^-1 x - L^-1 mu|^2 / 2, the L^-1 x for all draws being one matrix
    product) and normalised by subtracting the max over k (log-sum-exp); ``log=True`` returns
    log probabilities. Univariate input is accepted as mu (S, K), cov (S, K) variances, x (N,).
    Memory: the result holds S*N*K values of ``dtype`` (S=4000, N=1000, K=20: 640 MB in
    float64, 320 MB in float32); temporaries are chunked over draws.
    """
    w, mu, cov, x = (np.asarray(a, dtype=np.float64) for a in (w, mu, cov, x))
    if mu.ndim == 2:
        mu, cov = mu[..., None], cov[..., None, None]
    if x.ndim == 1:
        x = x[:, None]
    s, k, d = mu.shape
    if w.shape != (s, k) or cov.shape != (s, k, d, d) or x.ndim != 2 or x.shape[1] != d:
        raise ValueError("shapes must be w (S, K), mu (S, K, D), cov (S, K, D, D), x (N, D)")
    n = x.shape[0]
    chol_inv = np.linalg.inv(np.linalg.cholesky(cov))  # (S, K, D, D), lower triangular
    shift = np.matmul(chol_inv, mu[..., None])[..., 0]  # L^-1 mu, (S, K, D)
    with np.errstate(divide="ignore"):
        log_norm = (
            np.log(w)
            + np.log(np.diagonal(chol_inv, axis1=-2, axis2=-1)).sum(-1)
            - 0.5 * d * math.log(2.0 * math.pi)
        )  # (S, K)
    out = np.empty((s, n, k), dtype=dtype)
    step = max(1, _CHUNK // max(1, k * n * d))
    for a in range(0, s, step):
        c = min(step, s - a)
        y = (chol_inv[a : a + c].reshape(c * k * d, d) @ x.T).reshape(c, k, d, n)
        y -= shift[a : a + c, :, :, None]
        logp = log_norm[a : a + c, :, None] - 0.5 * np.einsum("ckdn,ckdn->ckn", y, y)
        logp -= logp.max(axis=1, keepdims=True)
        if log:
            with np.errstate(divide="ignore"):
                logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
            out[a : a + c] = logp.transpose(0, 2, 1)
        else:
            np.exp(logp, out=logp)
            logp /= logp.sum(axis=1, keepdims=True)
            out[a : a + c] = logp.transpose(0, 2, 1)
    return out


# --------------------------------------------------------------------------- summaries


def _interval(a: np.ndarray, prob: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lo, hi = np.quantile(a, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    return a.mean(0), lo, hi


def _jsonable(a):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0:
        return float(a) if np.isfinite(a) else None
    return [_jsonable(v) for v in a]


def _diagnostics(a: np.ndarray, chains: int | None) -> dict:
    """R-hat (rank) and bulk ESS of draws a (S, ...) split into ``chains`` equal chains."""
    if not chains or a.shape[0] % chains:
        return {"rhat": None, "ess_bulk": None}
    try:
        import arviz_stats as azs
    except ImportError:  # pragma: no cover - optional dependency
        return {"rhat": None, "ess_bulk": None}
    arr = a.reshape(chains, a.shape[0] // chains, *a.shape[1:])
    try:
        rhat = azs.rhat(arr, chain_axis=0, draw_axis=1)
        ess = azs.ess(arr, method="bulk", chain_axis=0, draw_axis=1)
    except Exception:  # pragma: no cover - degenerate input (e.g. too few draws)
        return {"rhat": None, "ess_bulk": None}
    return {"rhat": _jsonable(rhat), "ess_bulk": _jsonable(ess)}


def _summ(a: np.ndarray, prob: float, chains: int | None = None, diag: bool = False) -> dict:
    mean, lo, hi = _interval(a, prob)
    out = {"mean": _jsonable(mean), "lower": _jsonable(lo), "upper": _jsonable(hi)}
    if diag:
        out.update(_diagnostics(a, chains))
    return out


def cluster_summary(
    w,
    mu,
    cov,
    z,
    perms,
    chains: int | None = None,
    prob: float = 0.9,
    min_occupancy: float = 0.05,
) -> list[dict]:
    """Per relabelled cluster summaries after applying ``perms`` (JSON-serialisable dicts).

    occupancy = fraction of draws in which the cluster holds >= 1 observation. Clusters with
    occupancy < ``min_occupancy`` are dropped; the rest are sorted by mean weight, descending.
    Each has mean and ``prob`` equal-tailed interval of the weight and, unless ``empty_mostly``
    (occupancy < 0.5, when only occupancy and weight are reported), of each mean coordinate, each
    sd sqrt(cov_dd) and, for D >= 2, each correlation cov_de / (sd_d sd_e) (D x D nested lists).
    Summaries use all draws. Weight and mean also carry "rhat" (rank R-hat) and "ess_bulk" from
    arviz_stats when ``chains`` is given (draws stored chain after chain, S divisible by
    chains); otherwise, or without arviz_stats, these are None. Non-finite numbers become None.
    """
    w, mu, cov = (np.asarray(a, dtype=np.float64) for a in (w, mu, cov))
    if mu.ndim == 2:
        mu, cov = mu[..., None], cov[..., None, None]
    z_new, w_new, mu_new, cov_new = apply_permutation(perms, z=z, w=w, mu=mu, cov=cov)
    s, k = w_new.shape
    d = mu_new.shape[2]
    counts = np.zeros((s, k), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(s), z_new.shape[1]), z_new.ravel()), 1)
    occupancy = (counts > 0).mean(0)
    sd = np.sqrt(np.diagonal(cov_new, axis1=-2, axis2=-1))  # (S, K, D)
    corr = cov_new / (sd[..., :, None] * sd[..., None, :])
    out = []
    for c in np.flatnonzero(occupancy >= min_occupancy):
        entry = {
            "cluster": int(c),
            "occupancy": float(occupancy[c]),
            "empty_mostly": bool(occupancy[c] < 0.5),
            "weight": _summ(w_new[:, c], prob, chains, diag=True),
        }
        if not entry["empty_mostly"]:
            entry["mu"] = _summ(mu_new[:, c], prob, chains, diag=True)
            entry["sd"] = _summ(sd[:, c], prob)
            if d >= 2:
                entry["corr"] = _summ(corr[:, c], prob)
        out.append(entry)
    out.sort(key=lambda e: -e["weight"]["mean"])
    return out
