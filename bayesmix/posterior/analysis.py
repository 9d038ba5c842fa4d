"""Cluster-level answers on a fitted DataTree: identified clusters, point partition, LOO.

Thin DataTree wrappers around the pure functions in identified.py, relabel.py and
partition.py. Adds the ``relabelled`` group (the identified solution: draws with K+ equal to
its mode, occupied components only, relabelled; and each observation's membership
probabilities) and ``allocations/partition``, ``allocations/co_clustering``,
``allocations/loo_elpd``; returns the summary.json entries ``identified``, ``clusters``,
``membership``, ``partition`` and ``loo``.
"""

from __future__ import annotations

import warnings

import arviz_stats as az  # the statistics only: arviz itself also loads the plotting stack
import numpy as np
import xarray as xr

from bayesmix.posterior import identified as ident_mod
from bayesmix.posterior import partition as part

MAX_DRAWS = 4000  # draws used for relabelling and for the partition (thinned evenly)
MEMBERSHIP_THRESHOLD = 0.9  # "uncertain" membership: P(z_i = its cluster | data) below this


def _params(
    dt: xr.DataTree,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flattened (S, ...) w, mu, cov in data units, S = chain x draw; z (S_z, N) in its stored
    dtype and the flat draw index (chain * draws + draw) of each of its rows."""
    post = dt["posterior"]
    w = post["w"].values
    c, s, k = w.shape
    mu = post["mu"].values.reshape(c * s, k, -1)
    if "sigma" in post:
        cov = (post["sigma"].values ** 2).reshape(c * s, k, 1, 1)
    else:
        cov = post["cov"].values.reshape(c * s, k, mu.shape[-1], mu.shape[-1])
    zda = dt["allocations"]["z"]
    z = zda.values.reshape(-1, zda.shape[-1])
    z_draw = _z_draws(dt)
    z_flat = (np.arange(c)[:, None] * s + z_draw[None, :]).ravel()
    return w.reshape(c * s, k), mu, cov, z, z_flat


def _z_draws(dt: xr.DataTree) -> np.ndarray:
    """The draw indices (within each chain) whose z is stored: the ``z_draw`` coordinate
    (files before the storage policy: every draw)."""
    alloc = dt["allocations"]
    if "z_draw" in alloc["z"].dims:
        return np.asarray(alloc["z_draw"].values, dtype=np.int64)
    return np.arange(alloc["z"].shape[1])


def _thin_index(c: int, s: int, max_draws: int) -> tuple[np.ndarray, int]:
    """Evenly thinned draw indices of every chain (kept chain after chain), and draws per chain."""
    per_chain = max(1, min(s, max_draws // c))
    keep = np.unique(np.linspace(0, s - 1, per_chain).round().astype(int))
    return (np.arange(c)[:, None] * s + keep[None, :]).ravel(), len(keep)


def _thin(idx: np.ndarray, max_draws: int) -> np.ndarray:
    """At most ``max_draws`` entries of ``idx``, evenly spaced, order kept."""
    if len(idx) <= max_draws:
        return idx
    return idx[np.unique(np.linspace(0, len(idx) - 1, max_draws).round().astype(int))]


def kplus_mode(kplus: np.ndarray) -> int:
    """The most probable K+ (ties: the smaller), as in ``clusters.count_summary``."""
    vals, counts = np.unique(np.asarray(kplus).ravel(), return_counts=True)
    return int(vals[np.argmax(counts)])


def pointwise_loo(dt: xr.DataTree) -> tuple[np.ndarray, dict] | tuple[None, None]:
    """PSIS-LOO pointwise elpd (ArviZ) on the stored rows, and the summary.

    When the log-likelihood is stored for a random subsample of m of the N rows
    (``storage.LOO_MAX_OBS``), the totals are simple-random-sampling estimates:
    elpd = N mean_i elpd_i, p_loo = N mean_i p_i, and
    se^2 = N s^2 + N^2 (1 - m/N) s^2 / m, s^2 the sample variance of elpd_i over the m rows
    (the first term is ArviZ's se of a full-data elpd, the second the subsampling error).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loo = az.loo(dt, pointwise=True)
    except Exception as exc:  # noqa: BLE001 - LOO is optional output
        return None, {"error": str(exc)}
    k = np.asarray(loo.pareto_k)
    elpd_i = np.asarray(loo.elpd_i, dtype=float)
    n = int(dt["observed_data"]["x"].shape[0])
    m = int(elpd_i.size)
    out = {
        "elpd": float(loo.elpd),
        "se": float(loo.se),
        "p_loo": float(loo.p),
        "n_pareto_k_bad": int(np.sum(k > loo.good_k)),
        "pareto_k_threshold": float(loo.good_k),
        "max_pareto_k": float(np.max(k)),
        "n_observations": m,
    }
    if m < n:
        var = float(np.var(elpd_i, ddof=1)) if m > 1 else 0.0
        out.update(
            elpd=float(n * elpd_i.mean()),
            se=float(np.sqrt(n * var + n * n * (1.0 - m / n) * var / m)),
            p_loo=float(loo.p) * n / m,
            subsample=f"LOO on {m:,} of {n:,} observations (random subsample, fixed seed)",
            elpd_subsample_sum=float(loo.elpd),
        )
    return elpd_i, out


def point_partition(z: np.ndarray, max_n: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """SALSO VI point estimate, its credible ball and per-observation certainty.

    For N > max_n the estimate is computed on a random subset of max_n observations; each
    other observation joins the estimate's cluster it shares a label with most often
    across draws (the output says so).
    """
    n = z.shape[1]
    rng = np.random.default_rng(seed)
    idx = np.arange(n) if n <= max_n else np.sort(rng.choice(n, max_n, replace=False))
    zs = np.asarray(z[:, idx], dtype=np.int64)  # S x min(N, max_n)
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
    share = part.join_share(z, idx, labels_sub, rest)
    labels[rest] = share.argmax(axis=1)
    certainty[rest] = share.max(axis=1)
    info["note"] = (
        f"partition estimated on {max_n} random observations; others joined by co-clustering"
    )
    return labels, certainty, info


def choose_k(kplus: np.ndarray, tied: list[int] | None, partition_k: int) -> tuple[int, str]:
    """K̂ for the identified solution: the mode of K+; when other values are tied with it
    within Monte Carlo error and the point partition's number of clusters is one of them,
    that one (so the cluster table and the point partition agree)."""
    mode = kplus_mode(kplus)
    if tied and len(tied) > 1 and partition_k in tied:
        return partition_k, (
            f"K+ = {partition_k}: tied with the mode within Monte Carlo error and equal to the "
            "point partition's number of clusters"
        )
    return mode, f"K+ = {mode}, the posterior mode"


def analyse(
    dt: xr.DataTree, seed: int = 0, max_n: int = 3000, tied: list[int] | None = None
) -> tuple[xr.DataTree, dict]:
    """Estimate the point partition, identify and summarise the clusters, LOO; extend dt.

    ``tied``: the K+ values tied with the mode within Monte Carlo error (summary.json's
    ``n_clusters.tied_with_mode``), used by ``choose_k``.
    """
    w_all, mu_all, cov_all, z_all, z_flat = _params(dt)
    c, s = dt["posterior"]["w"].shape[:2]
    x = dt["observed_data"]["x"].values
    keep, _ = _thin_index(c, len(z_flat) // c, MAX_DRAWS)  # rows of z_all, evenly per chain
    labels, co_clustering, partition_info = point_partition(z_all[keep], max_n, seed)
    kplus = dt["allocations"]["n_clusters"].values.reshape(-1)
    k_hat, why = choose_k(kplus, tied, partition_info["n_clusters"])
    with_mode = np.flatnonzero(kplus == k_hat)
    stored = np.flatnonzero(kplus[z_flat] == k_hat)  # rows of z_all with K+ = k_hat
    if len(stored) == 0:  # z kept for too few draws to hold one with K+ = k_hat
        k_hat = kplus_mode(kplus[z_flat])
        why += f"; z is stored for no draw with it, so K+ = {k_hat}, the mode among stored draws"
        with_mode = np.flatnonzero(kplus == k_hat)
        stored = np.flatnonzero(kplus[z_flat] == k_hat)
    rows = _thin(stored, MAX_DRAWS)
    sel = z_flat[rows]
    chain_of = sel // s
    ident = ident_mod.identify(w_all[sel], mu_all[sel], cov_all[sel], z_all[rows], x, k_hat, seed)
    clusters = ident_mod.summarise_clusters(ident, chain_of if c > 1 else None)
    elpd_i, loo_info = pointwise_loo(dt)

    dt["relabelled"] = xr.DataTree(_relabelled_dataset(dt, ident, sel, s))
    dt["relabelled"].attrs.update(
        {"method": ident["method"], "k": k_hat, "draws_with_k": int(len(with_mode))}
    )
    alloc = dt["allocations"].to_dataset()
    alloc["partition"] = ("obs_id", labels.astype(np.int32))
    alloc["co_clustering"] = ("obs_id", co_clustering)
    if elpd_i is not None:
        full = np.full(alloc.sizes["obs_id"], np.nan)
        full[np.asarray(dt["log_likelihood"]["obs_id"].values, dtype=np.int64)] = elpd_i
        alloc["loo_elpd"] = ("obs_id", full)
    dt["allocations"] = xr.DataTree(alloc)
    partition_info["draws_used"] = int(len(keep))
    partition_info["co_clustering_mean"] = float(np.mean(co_clustering))
    prob = ident["membership"].max(axis=1)
    identified = {
        "k": k_hat,
        "draws_with_k": int(len(with_mode)),
        "share": float(len(with_mode) / kplus.size),
        "draws_used": int(len(sel)),
        "draws_with_z": int(len(z_flat)),
        "relabelling": ident["method"],
        "why": why,
        "rule": (
            f"draws with K+ = {k_hat}, their {k_hat} occupied clusters only, relabelled "
            "(Frühwirth-Schnatter, Malsiner-Walli & Grün 2021)"
        ),
    }
    membership = {
        "threshold": MEMBERSHIP_THRESHOLD,
        "n_below": int(np.sum(prob < MEMBERSHIP_THRESHOLD)),
        "n_below_half": int(np.sum(prob < 0.5)),
        "n": int(prob.size),
        "mean_probability": float(prob.mean()),
        "definition": (
            "P(observation in its cluster | data, K+ = "
            f"{k_hat}): the share of the identified draws in which it is there"
        ),
    }
    return dt, {
        "identified": identified,
        "clusters": clusters,
        "membership": membership,
        "partition": partition_info,
        "loo": loo_info,
    }


def _relabelled_dataset(dt: xr.DataTree, ident: dict, sel: np.ndarray, s: int) -> xr.Dataset:
    """The identified draws (dims sample, cluster, ...) and the membership probabilities."""
    sample = ("sample",)
    rel = {
        "w": (sample + ("cluster",), ident["w"]),
        "mu": (sample + ("cluster", "feature"), ident["mu"]),
        "membership": (("obs_id", "cluster"), ident["membership"]),
    }
    if "sigma" in dt["posterior"]:
        rel["sigma"] = (sample + ("cluster",), np.sqrt(ident["cov"][..., 0, 0]))
    else:
        rel["cov"] = (sample + ("cluster", "feature", "feature_bis"), ident["cov"])
    coords = {
        "sample": np.arange(len(sel)),
        "chain": ("sample", (sel // s).astype(np.int32)),
        "draw": ("sample", (sel % s).astype(np.int32)),
        "cluster": np.arange(ident["w"].shape[1]),
        "feature": dt["posterior"]["feature"].values,
        "obs_id": np.arange(ident["membership"].shape[0]),
    }
    if "cov" in rel:
        coords["feature_bis"] = dt["posterior"]["feature_bis"].values
    return xr.Dataset(rel, coords=coords)


def membership_table(dt: xr.DataTree) -> tuple[np.ndarray, np.ndarray]:
    """Each observation's most probable identified cluster (0 = heaviest) and its probability."""
    m = dt["relabelled"]["membership"].values
    return m.argmax(axis=1), m.max(axis=1)


def assignments_table(dt: xr.DataTree):
    """One row per input row: its most probable identified cluster (numbered as in the cluster
    table, 1 = heaviest) and P(it is there | data, K+ = mode); its SALSO point-partition cluster
    and mean co-clustering probability with that cluster's members; LOO pointwise elpd."""
    import json

    import pandas as pd

    alloc = dt["allocations"]
    rows = json.loads(dt.attrs.get("row_labels", "null")) or list(
        range(1, alloc.sizes["obs_id"] + 1)
    )
    cluster, prob = membership_table(dt)
    table = pd.DataFrame(
        {
            "row": rows,
            "cluster": cluster + 1,
            "probability": np.round(prob, 6),
            "partition": alloc["partition"].values + 1,
            "co_clustering": np.round(alloc["co_clustering"].values, 6),
        }
    )
    if "loo_elpd" in alloc:
        table["loo_elpd"] = np.round(alloc["loo_elpd"].values, 6)
    return table
