"""Cluster-level answers on a fitted DataTree: relabelling, point partition, certainty, LOO.

Thin DataTree wrappers around the pure functions in relabel.py and partition.py.
Adds the ``relabelled`` group and ``allocations/partition``, ``allocations/certainty``;
returns the summary.json entries ``clusters``, ``partition`` and ``loo``.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import xarray as xr

from bayesmix.posterior import partition as part
from bayesmix.posterior import relabel

# Stephens' KL relabelling holds S x N x K classification probabilities in memory.
STEPHENS_MAX_ENTRIES = 40_000_000
MAX_DRAWS = 4000  # draws used for relabelling and the partition (thinned evenly)


def _params(dt: xr.DataTree) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flattened (S, ...) w, mu, cov in data units and z, with S = chain x draw."""
    post = dt["posterior"]
    w = post["w"].values
    c, s, k = w.shape
    mu = post["mu"].values.reshape(c * s, k, -1)
    if "sigma" in post:
        cov = (post["sigma"].values ** 2).reshape(c * s, k, 1, 1)
    else:
        cov = post["cov"].values.reshape(c * s, k, mu.shape[-1], mu.shape[-1])
    z = dt["allocations"]["z"].values.reshape(c * s, -1).astype(np.int64)
    return w.reshape(c * s, k), mu, cov, z


def _thin_index(c: int, s: int, max_draws: int) -> tuple[np.ndarray, int]:
    """Evenly thinned draw indices of every chain (kept chain after chain), and draws per chain."""
    per_chain = max(1, min(s, max_draws // c))
    keep = np.unique(np.linspace(0, s - 1, per_chain).round().astype(int))
    return (np.arange(c)[:, None] * s + keep[None, :]).ravel(), len(keep)


def relabel_draws(w, mu, cov, z, x, seed: int = 0) -> tuple[np.ndarray, str]:
    """ECR to a pivot, refined by Stephens' KL algorithm when memory allows."""
    perms = relabel.ecr(z, K=w.shape[1], seed=seed)
    s, n = z.shape
    if s * n * w.shape[1] <= STEPHENS_MAX_ENTRIES:
        probs = relabel.classification_probs(w, mu, cov, x, dtype=np.float32)
        return relabel.stephens(probs, init_perms=perms), "ECR + Stephens (KL)"
    return perms, "ECR"


def pointwise_loo(dt: xr.DataTree) -> tuple[np.ndarray, dict] | tuple[None, None]:
    """PSIS-LOO pointwise elpd and the summary (ArviZ)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loo = az.loo(dt, pointwise=True)
    except Exception as exc:  # noqa: BLE001 - LOO is optional output
        return None, {"error": str(exc)}
    k = np.asarray(loo.pareto_k)
    return np.asarray(loo.elpd_i), {
        "elpd": float(loo.elpd),
        "se": float(loo.se),
        "p_loo": float(loo.p),
        "n_pareto_k_bad": int(np.sum(k > loo.good_k)),
        "pareto_k_threshold": float(loo.good_k),
        "max_pareto_k": float(np.max(k)),
    }


def point_partition(z: np.ndarray, max_n: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """SALSO VI point estimate, its credible ball and per-observation certainty.

    For N > max_n the estimate is computed on a random subset of max_n observations; each
    other observation joins the estimate's cluster it shares a label with most often
    across draws (the output says so).
    """
    n = z.shape[1]
    rng = np.random.default_rng(seed)
    idx = np.arange(n) if n <= max_n else np.sort(rng.choice(n, max_n, replace=False))
    zs = z[:, idx]
    p = part.psm(zs)
    labels_sub, loss = part.salso(zs, loss="VI", seed=seed, psm=p)
    certainty_sub = part.membership_certainty(labels_sub, p)
    ball = part.credible_ball(labels_sub, zs, level=0.95)
    info = {
        "loss": "VI (Wade & Ghahramani lower bound, SALSO search)",
        "n_clusters": int(labels_sub.max() + 1),
        "expected_vi_lower_bound": float(loss),
        "expected_vi": float(part.expected_vi(labels_sub, zs, max_draws=1000, seed=seed)),
        "expected_binder": float(part.expected_binder(labels_sub, p)),
        "credible_ball_95": {
            "radius": float(ball["radius"]),
            **{
                key: {
                    "n_clusters": int(ball[key]["n_clusters"]),
                    "distance": float(ball[key]["distance"]),
                }
                for key in ("upper", "lower", "horizontal")
            },
        },
        "computed_on_subset": None if n <= max_n else int(max_n),
    }
    if n <= max_n:
        return labels_sub, certainty_sub, info
    labels = np.empty(n, dtype=np.int64)
    certainty = np.empty(n)
    labels[idx], certainty[idx] = labels_sub, certainty_sub
    rest = np.setdiff1d(np.arange(n), idx)
    k = int(labels_sub.max() + 1)
    for start in range(0, len(rest), 256):
        block = rest[start : start + 256]
        share = np.zeros((len(block), k))
        for s in range(z.shape[0]):
            same = z[s, block][:, None] == zs[s][None, :]
            for c in range(k):
                share[:, c] += same[:, labels_sub == c].mean(axis=1)
        share /= z.shape[0]
        labels[block] = share.argmax(axis=1)
        certainty[block] = share.max(axis=1)
    info["note"] = (
        f"partition estimated on {max_n} random observations; others joined by co-clustering"
    )
    return labels, certainty, info


def analyse(dt: xr.DataTree, seed: int = 0, max_n: int = 3000) -> tuple[xr.DataTree, dict]:
    """Relabel, summarise clusters, estimate the point partition and LOO; extend the DataTree."""
    w_all, mu_all, cov_all, z_all = _params(dt)
    c, s = dt["posterior"]["w"].shape[:2]
    keep, per_chain = _thin_index(c, s, MAX_DRAWS)
    w, mu, cov, z = w_all[keep], mu_all[keep], cov_all[keep], z_all[keep]
    x = dt["observed_data"]["x"].values
    perms, method = relabel_draws(w, mu, cov, z, x, seed=seed)
    clusters = relabel.cluster_summary(w, mu, cov, z, perms, chains=c if per_chain > 1 else None)
    _, w_r, mu_r, cov_r = relabel.apply_permutation(perms, w=w, mu=mu, cov=cov)
    labels, certainty, partition_info = point_partition(z, max_n, seed)
    elpd_i, loo_info = pointwise_loo(dt)

    dims = ("chain", "draw", "cluster")
    k = w.shape[1]
    shape = (c, per_chain)
    rel = {
        "w": (dims, w_r.reshape(shape + (k,))),
        "mu": (dims + ("feature",), mu_r.reshape(shape + mu.shape[1:])),
    }
    if "sigma" in dt["posterior"]:
        rel["sigma"] = (dims, np.sqrt(cov_r[..., 0, 0]).reshape(shape + (k,)))
    else:
        rel["cov"] = (dims + ("feature", "feature_bis"), cov_r.reshape(shape + cov.shape[1:]))
    coords = {
        "chain": np.arange(c),
        "draw": np.arange(per_chain),
        "cluster": np.arange(k),
        "feature": dt["posterior"]["feature"].values,
    }
    if "cov" in rel:
        coords["feature_bis"] = dt["posterior"]["feature_bis"].values
    relabelled = xr.Dataset(rel, coords=coords)
    relabelled.attrs["method"] = method
    relabelled.attrs["thinned_from_draws"] = int(s)
    dt["relabelled"] = xr.DataTree(relabelled)
    alloc = dt["allocations"].to_dataset()
    alloc["partition"] = ("obs_id", labels.astype(np.int32))
    alloc["certainty"] = ("obs_id", certainty)
    if elpd_i is not None:
        alloc["loo_elpd"] = ("obs_id", elpd_i)
    dt["allocations"] = xr.DataTree(alloc)
    partition_info["relabelling"] = method
    partition_info["draws_used"] = int(len(keep))
    partition_info["certainty_mean"] = float(np.mean(certainty))
    partition_info["n_uncertain_below_0.8"] = int(np.sum(certainty < 0.8))
    return dt, {"clusters": clusters, "partition": partition_info, "loo": loo_info}


def assignments_table(dt: xr.DataTree):
    """One row per input row: point-estimate cluster, its probability, and LOO pointwise elpd."""
    import json

    import pandas as pd

    alloc = dt["allocations"]
    rows = json.loads(dt.attrs.get("row_labels", "null")) or list(
        range(1, alloc.sizes["obs_id"] + 1)
    )
    table = pd.DataFrame(
        {
            "row": rows,
            "cluster": alloc["partition"].values + 1,
            "probability": np.round(alloc["certainty"].values, 6),
        }
    )
    if "loo_elpd" in alloc:
        table["loo_elpd"] = np.round(alloc["loo_elpd"].values, 6)
    return table
