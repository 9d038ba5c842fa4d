"""Label-invariant cluster summaries: K+, effective K, sorted weights (pure numpy)."""

from __future__ import annotations

import numpy as np


def pmf(values: np.ndarray) -> dict[int, float]:
    """Empirical pmf of integer draws: {k: P(K = k)} over the observed k, sorted."""
    vals, counts = np.unique(np.asarray(values).ravel(), return_counts=True)
    total = int(counts.sum())
    return {int(v): float(c) / total for v, c in zip(vals, counts.tolist(), strict=True)}


def credible_set(probs: dict[int, float], level: float = 0.9) -> list[int]:
    """Smallest set of values whose total probability is >= level (highest mass first)."""
    chosen, total = [], 0.0
    for k, p in sorted(probs.items(), key=lambda kv: (-kv[1], kv[0])):
        if total >= level - 1e-12:
            break
        chosen.append(k)
        total += p
    return sorted(chosen)


def count_summary(values: np.ndarray, level: float = 0.9) -> dict:
    """pmf, mode, mean and credible set of an integer-valued posterior quantity."""
    probs = pmf(values)
    mode = max(probs.items(), key=lambda kv: (kv[1], -kv[0]))[0]
    return {
        "pmf": {str(k): p for k, p in probs.items()},
        "mode": int(mode),
        "mean": float(np.mean(values)),
        f"credible_set_{round(level * 100)}": credible_set(probs, level),
    }


def n_components_above(w: np.ndarray, threshold: float = 0.02) -> np.ndarray:
    """Number of weights above ``threshold`` per draw: (..., K) -> (...)."""
    return np.sum(np.asarray(w) > threshold, axis=-1)


def effective_k(w: np.ndarray) -> np.ndarray:
    """Perplexity of the weights exp(H(w)) = exp(-sum_k w_k log w_k): (..., K) -> (...)."""
    w = np.asarray(w)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(w > 0, w * np.log(w), 0.0)
    return np.exp(-terms.sum(axis=-1))


def interval(values: np.ndarray, level: float = 0.9, axis: int | tuple = 0) -> np.ndarray:
    """Equal-tailed interval [q_(1-level)/2, q_(1+level)/2] along axis (stacked last)."""
    lo, hi = (1 - level) / 2, (1 + level) / 2
    return np.moveaxis(np.quantile(values, [lo, hi], axis=axis), 0, -1)


def sorted_weights(w: np.ndarray, level: float = 0.9, max_k: int | None = None) -> list[dict]:
    """Per-draw sorted weights w_(1) >= w_(2) >= ...: mean and interval of each order statistic."""
    flat = np.sort(np.asarray(w).reshape(-1, w.shape[-1]), axis=1)[:, ::-1]
    means = flat.mean(axis=0)
    ints = interval(flat, level)
    k = flat.shape[1] if max_k is None else min(max_k, flat.shape[1])
    key = f"interval_{round(level * 100)}"
    return [{"rank": j + 1, "mean": float(means[j]), key: ints[j].tolist()} for j in range(k)]


def scalar_summary(values: np.ndarray, level: float = 0.9) -> dict:
    """Mean, SD and equal-tailed interval of a scalar posterior quantity."""
    v = np.asarray(values).ravel()
    return {
        "mean": float(v.mean()),
        "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
        f"interval_{round(level * 100)}": interval(v, level).tolist(),
    }
