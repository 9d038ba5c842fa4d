"""An identified mixture solution: per-cluster answers that never average over empty labels.

Following Frühwirth-Schnatter, Malsiner-Walli & Grün (2021, Bayesian Analysis, sect. 4.2),
the draws whose number of occupied clusters equals the posterior mode K̂ are kept; in each the
K̂ occupied components are extracted, so every label holds data in every kept draw; these are
relabelled (ECR to a pivot, refined by Stephens' KL algorithm) and summarised. The share of
draws used is reported with the answer.

Arrays: z (S, N) int labels in 0..K-1, w (S, K), mu (S, K, D), cov (S, K, D, D); pure numpy.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from bayesmix.posterior import relabel

STEPHENS_MAX_ENTRIES = 40_000_000  # S x N x K classification probabilities held in memory
LEVEL = 0.9
MIN_DRAWS_PER_CHAIN_FOR_RHAT = 50
WEAK_COHESION = 0.8  # below: the cluster's rows change from draw to draw


_BLOCK = 1 << 22  # labels per block of draws when a pass over z is chunked


def _blocks(s: int, n: int):
    step = max(1, _BLOCK // max(n, 1))
    for a in range(0, s, step):
        yield a, min(s, a + step)


def occupied_components(z: np.ndarray, k_hat: int, n_components: int) -> np.ndarray:
    """occ (S, k_hat): the labels that hold data in each draw, ascending.

    Every row of ``z`` must use exactly ``k_hat`` distinct labels of 0..n_components-1.
    Works in blocks of draws (O(S K) memory beyond z).
    """
    z = np.asarray(z)
    s, n = z.shape
    present = np.zeros((s, n_components), dtype=bool)
    for a, b in _blocks(s, n):
        present[np.arange(a, b)[:, None], z[a:b]] = True
    if not np.all(present.sum(axis=1) == k_hat):
        raise ValueError(f"every draw must have exactly {k_hat} occupied labels")
    return np.argsort(~present, axis=1, kind="stable")[:, :k_hat]


def compact(z: np.ndarray, occ: np.ndarray, n_components: int) -> np.ndarray:
    """z relabelled to 0..k_hat-1 by each draw's position in ``occ``: zc[s, i] = j with
    occ[s, j] = z[s, i] (the smallest integer type that holds 0..k_hat-1)."""
    s, k_hat = occ.shape
    z = np.asarray(z)
    dtype = np.int8 if k_hat < 128 else (np.int16 if k_hat < 32768 else np.int64)
    lookup = np.full((s, n_components), -1, dtype=np.int64)
    lookup[np.arange(s)[:, None], occ] = np.arange(k_hat)[None, :]
    out = np.empty(z.shape, dtype=dtype)
    for a, b in _blocks(s, z.shape[1]):
        out[a:b] = np.take_along_axis(lookup[a:b], z[a:b].astype(np.int64), axis=1)
    return out


def label_counts(z: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(per observation: how many draws put it in each label (N, k); per draw: the size of
    each label (S, k)), in blocks of draws: O(N k + S k) memory beyond z."""
    s, n = z.shape
    per_obs = np.zeros((n, k))
    sizes = np.zeros((s, k))
    for a, b in _blocks(s, n):
        zb = z[a:b]
        for c in range(k):
            hit = zb == c
            per_obs[:, c] += hit.sum(axis=0)
            sizes[a:b, c] = hit.sum(axis=1)
    return per_obs, sizes


def _gather(a: np.ndarray, occ: np.ndarray) -> np.ndarray:
    return a[np.arange(a.shape[0])[:, None], occ]


def _order_by_weight(perms: np.ndarray, w_new: np.ndarray) -> np.ndarray:
    """Compose perms with the ranking of relabelled clusters by mean weight (0 = heaviest)."""
    rank = np.empty(w_new.shape[1], dtype=np.int64)
    rank[np.argsort(-w_new.mean(axis=0), kind="stable")] = np.arange(w_new.shape[1])
    return rank[perms]


def _rhat_ess(a: np.ndarray, chain: np.ndarray) -> tuple[object, object]:
    """Rank R-hat and bulk ESS of draws a (S', ...) from chains of unequal length: each chain
    is cut to the shortest one's length (draws kept in order); None when that is too short."""
    ids = np.unique(chain)
    per = [a[chain == c] for c in ids]
    m = min(len(p) for p in per)
    if len(ids) < 2 or m < MIN_DRAWS_PER_CHAIN_FOR_RHAT:
        return None, None
    import arviz_stats as azs

    arr = np.stack([p[:m] for p in per])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = azs.rhat(arr, chain_axis=0, draw_axis=1)
        ess = azs.ess(arr, method="bulk", chain_axis=0, draw_axis=1)
    return _json(rhat), _json(ess)


def _json(a):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0:
        return float(a) if math.isfinite(float(a)) else None
    return [_json(v) for v in a]


def _summ(a: np.ndarray, chain: np.ndarray | None = None) -> dict:
    lo, hi = np.quantile(a, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=0)
    out = {"mean": _json(a.mean(axis=0)), "lower": _json(lo), "upper": _json(hi)}
    if chain is not None:
        out["rhat"], out["ess_bulk"] = _rhat_ess(a, chain)
    return out


def identify(
    w: np.ndarray,
    mu: np.ndarray,
    cov: np.ndarray,
    z: np.ndarray,
    x: np.ndarray,
    k_hat: int,
    seed: int = 0,
) -> dict:
    """Relabel draws that all have exactly ``k_hat`` occupied clusters (see module docstring).

    Returns ``w``, ``mu``, ``cov`` (S', k_hat, ...) of the occupied components after
    relabelling, with cluster 0 the heaviest on average; ``z`` (S', N) relabelled allocations;
    ``membership`` (N, k_hat) with P(z_i = c | data, K+ = k_hat) = share of kept draws in which
    observation i is in cluster c; and ``method``.
    """
    k_all = w.shape[1]
    occ = occupied_components(z, k_hat, k_all)
    zc = compact(z, occ, k_all)
    wc, muc, covc = _gather(w, occ), _gather(mu, occ), _gather(cov, occ)
    perms = relabel.ecr(zc, K=k_hat, seed=seed)
    method = "ECR"
    s, n = zc.shape
    if k_hat > 1 and s * n * k_hat <= STEPHENS_MAX_ENTRIES:
        probs = relabel.classification_probs(wc, muc, covc, x, dtype=np.float32)
        perms = relabel.stephens(probs, init_perms=perms)
        method = "ECR + Stephens (KL)"
    _, w_new, _, _ = relabel.apply_permutation(perms, w=wc)
    perms = _order_by_weight(perms, w_new)
    _, w_new, mu_new, cov_new = relabel.apply_permutation(perms, w=wc, mu=muc, cov=covc)
    z_new = zc  # relabelled in place, block by block: z_new[s, i] = perms[s, zc[s, i]]
    for a, b in _blocks(s, n):
        z_new[a:b] = np.take_along_axis(perms[a:b], zc[a:b].astype(np.int64), axis=1)
    counts, sizes = label_counts(z_new, k_hat)
    return {
        "w": w_new,
        "mu": mu_new,
        "cov": cov_new,
        "z": z_new,
        "sizes": sizes,
        "membership": counts / s,
        "method": method,
    }


def cohesion(membership: np.ndarray) -> np.ndarray:
    """Per cluster c: the mean of P(z_i = c | data) over the rows whose most probable cluster
    is c (nan for a cluster that is nobody's most probable). Near 1: the same rows form the
    cluster in every draw; low: its members change from draw to draw (weakly identified)."""
    best = membership.argmax(axis=1)
    out = np.full(membership.shape[1], np.nan)
    for c in range(membership.shape[1]):
        rows = best == c
        if rows.any():
            out[c] = float(membership[rows, c].mean())
    return out


def summarise_clusters(ident: dict, chain: np.ndarray | None = None) -> list[dict]:
    """Per identified cluster (heaviest first): weight, size, mean, sd and (D >= 2)
    correlations, each with mean and 90% equal-tailed interval; R-hat and bulk ESS of the
    weight and mean when ``chain`` (the chain of each kept draw) is given; ``cohesion`` and
    ``weakly_identified`` (cohesion below ``WEAK_COHESION``)."""
    w, mu, cov, z = ident["w"], ident["mu"], ident["cov"], ident["z"]
    coh = cohesion(ident["membership"])
    s, k = w.shape
    d = mu.shape[2]
    sizes = ident.get("sizes")
    if sizes is None:
        sizes = label_counts(z, k)[1]
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    corr = cov / (sd[..., :, None] * sd[..., None, :])
    out = []
    for c in range(k):
        entry = {
            "cluster": c,
            "occupancy": 1.0,
            "empty_mostly": False,
            "weight": _summ(w[:, c], chain),
            "size": _summ(sizes[:, c]),
            "mu": _summ(mu[:, c], chain),
            "sd": _summ(sd[:, c]),
            "cohesion": _json(coh[c]),
            "weakly_identified": bool(not coh[c] >= WEAK_COHESION),
        }
        if d >= 2:
            entry["corr"] = _summ(corr[:, c])
        out.append(entry)
    return out
