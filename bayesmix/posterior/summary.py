"""summary.json from a fitted DataTree: the answer about K+, weights, concentration, diagnostics."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from bayesmix.engines.names import Engine
from bayesmix.posterior import clusters
from bayesmix.posterior.diagnostics import diagnostics, pmf_mcse

LEVEL = 0.9
# the mixings' random parameters, as the posterior group names them (concentration first)
MIXING_PARAMETERS = ("alpha", "gamma", "strength", "discount", "K")


def label_invariant(dt: xr.DataTree) -> dict[str, np.ndarray]:
    """(chain, draw) arrays of the quantities whose meaning survives label switching."""
    out = {}
    post = dt["posterior"]
    for name in MIXING_PARAMETERS:
        if name in post:
            out[name] = post[name].values.astype(float)
    out["K+"] = dt["allocations"]["n_clusters"].values.astype(float)
    out["log_likelihood"] = dt["sample_stats"]["log_likelihood"].values
    return out


def kplus_summary(kplus: np.ndarray, level: float = LEVEL) -> dict:
    """Posterior of K+ from (chain, draw) draws: pmf, mode, mean, credible set, the MCSE of each
    P(K+ = k), and the values tied with the mode within Monte Carlo error.

    k is tied with the mode m when P(m) - P(k) < 2 MCSE(1[K+ = m] - 1[K+ = k]), the MCSE of
    the difference of the two indicator means (ArviZ, autocorrelation-aware).
    """
    out = clusters.count_summary(kplus, level)
    k = np.asarray(kplus)
    mode = out["mode"]
    mcse, tied = {}, [mode]
    for key, p in out["pmf"].items():
        ind = (k == int(key)).astype(float)
        mcse[key] = pmf_mcse(ind)
        if int(key) != mode:
            gap = out["pmf"][str(mode)] - p
            se = pmf_mcse((k == mode).astype(float) - ind)
            if se is not None and gap < 2.0 * se:
                tied.append(int(key))
    out["mcse"] = mcse
    out["tied_with_mode"] = sorted(tied)
    return out


def summarize(
    dt: xr.DataTree, weight_threshold: float = 0.02, engine_info: dict | None = None
) -> dict:
    """The posterior answer about the number of clusters, with diagnostics and provenance."""
    post = dt["posterior"]
    w = post["w"].values
    kplus = dt["allocations"]["n_clusters"].values
    conc = None
    params = {}
    for name in MIXING_PARAMETERS:
        if name in post and name != "K":
            params[name] = clusters.scalar_summary(post[name].values, LEVEL)
            if conc is None:
                conc = {"name": name} | params[name]
    divergences = None
    if "diverging" in dt["sample_stats"]:
        divergences = int(dt["sample_stats"]["diverging"].values.sum())
    attrs = dt.attrs
    engine = Engine.parse(attrs["engine"])
    sampler = attrs.get("sampler") or None
    info = engine_info or {}
    spec = json.loads(attrs["spec"])
    n_obs, n_feat = dt["observed_data"]["x"].shape
    summary = {
        "model": spec["name"],
        "engine": engine.value,
        "sampler": sampler,
        "engine_label": "telescoping Gibbs"
        if info.get("algorithm") == "telescoping"
        else engine.label(sampler),
        "n_clusters": kplus_summary(kplus, LEVEL),
        "n_components_above": {"threshold": weight_threshold}
        | clusters.count_summary(clusters.n_components_above(w, weight_threshold), LEVEL),
        "effective_k": clusters.scalar_summary(clusters.effective_k(w), LEVEL),
        "weights": clusters.sorted_weights(w, LEVEL, max_k=10),
        "concentration": conc,
        "mixing_parameters": params,
        "diagnostics": diagnostics(
            label_invariant(dt),
            divergences,
            engine,
            info.get("split_merge_accept_rate"),
            collapsible=not str(info.get("kernel", "")).startswith("semi_conjugate"),
        ),
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
    if "K" in post:  # MFM: the number of components, beside K+ (occupied clusters)
        summary["n_components"] = kplus_summary(post["K"].values, LEVEL)
    if spec["mixing"]["type"] in ("dp", "pitman_yor") and engine.truncates_dp():
        leftover = w[..., -1]
        summary["truncation"] = {
            "T": int(w.shape[-1]),
            "leftover_mass_mean": float(leftover.mean()),
            "leftover_mass_q99": float(np.quantile(leftover, 0.99)),
        }
    return summary
