"""summary.json from a fitted DataTree: the answer about K+, weights, concentration, diagnostics."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from bayesmix.posterior import clusters
from bayesmix.posterior.diagnostics import diagnostics

LEVEL = 0.9


def label_invariant(dt: xr.DataTree) -> dict[str, np.ndarray]:
    """(chain, draw) arrays of the quantities whose meaning survives label switching."""
    out = {}
    post = dt["posterior"]
    for name in ("alpha", "gamma"):
        if name in post:
            out[name] = post[name].values
    out["K+"] = dt["allocations"]["n_clusters"].values.astype(float)
    out["log_likelihood"] = dt["sample_stats"]["log_likelihood"].values
    return out


def summarize(dt: xr.DataTree, weight_threshold: float = 0.02) -> dict:
    """The posterior answer about the number of clusters, with diagnostics and provenance."""
    post = dt["posterior"]
    w = post["w"].values
    kplus = dt["allocations"]["n_clusters"].values
    conc = None
    for name in ("alpha", "gamma"):
        if name in post:
            conc = {"name": name} | clusters.scalar_summary(post[name].values, LEVEL)
    divergences = None
    if "diverging" in dt["sample_stats"]:
        divergences = int(dt["sample_stats"]["diverging"].values.sum())
    attrs = dt.attrs
    spec = json.loads(attrs["spec"])
    n_obs, n_feat = dt["observed_data"]["x"].shape
    summary = {
        "model": spec["name"],
        "engine": attrs["engine"],
        "n_clusters": clusters.count_summary(kplus, LEVEL),
        "n_components_above": {"threshold": weight_threshold}
        | clusters.count_summary(clusters.n_components_above(w, weight_threshold), LEVEL),
        "effective_k": clusters.scalar_summary(clusters.effective_k(w), LEVEL),
        "weights": clusters.sorted_weights(w, LEVEL, max_k=10),
        "concentration": conc,
        "diagnostics": diagnostics(label_invariant(dt), divergences, attrs["engine"]),
        "data": {
            "n_obs": int(n_obs),
            "n_features": int(n_feat),
            "columns": [str(c) for c in dt["observed_data"]["feature"].values],
            "sha256": attrs["data_sha256"],
            "source": attrs.get("data_source", ""),
        },
        "sampling": {
            "chains": int(w.shape[0]),
            "draws": int(w.shape[1]),
            "n_components": int(w.shape[2]),
        },
        "spec": spec,
        "seed": int(attrs["seed"]),
    }
    if spec["mixing"]["type"] == "dp":
        leftover = w[..., -1]
        summary["truncation"] = {
            "T": int(w.shape[-1]),
            "leftover_mass_mean": float(leftover.mean()),
            "leftover_mass_q99": float(np.quantile(leftover, 0.99)),
        }
    return summary


def answer_sentence(summary: dict) -> str:
    """One plain sentence with the most probable K+, its probability and the 90% set."""
    nc = summary["n_clusters"]
    mode = nc["mode"]
    p = nc["pmf"][str(mode)]
    cs = nc["credible_set_90"]
    noun = "group" if mode == 1 else "groups"
    alt = [k for k in sorted(nc["pmf"], key=lambda k: -nc["pmf"][k]) if int(k) != mode][:1]
    also = f", possibly {alt[0]} ({100 * nc['pmf'][alt[0]]:.0f}%)" if alt else ""
    set_text = ", ".join(str(k) for k in cs)
    return (
        f"The data most likely hold {mode} {noun} ({100 * p:.0f}% posterior probability){also}; "
        f"the 90% credible set for the number of occupied clusters is {{{set_text}}}."
    )
