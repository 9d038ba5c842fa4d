"""Turn an engine's standardised draws into the documented DataTree, in the data's own units.

Groups: posterior (w, mu, sigma | cov + chol, and the mixing's random parameters: alpha |
gamma | strength, discount, K), sample_stats (log_likelihood: each draw's total over all rows),
log_likelihood (x (chain, draw, obs_id), float32, for the draws and rows its coordinates name),
log_prior (the mixing's continuous random parameters), observed_data (x) and allocations
(z (chain, z_draw, obs_id) in the smallest integer type, for the draws ``z_draw`` names;
n_clusters (chain, draw) for every draw; attrs["storage"]: the plan as JSON). What is kept:
``bayesmix.posterior.storage``.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from bayesmix import mixings
from bayesmix.data import Dataset
from bayesmix.engines.base import Draws
from bayesmix.engines.names import Engine
from bayesmix.posterior.allocations import allocations, n_clusters, pointwise_loglik
from bayesmix.posterior.storage import StoragePlan, label_dtype, plan_storage
from bayesmix.spec import ModelSpec

CD = ("chain", "draw")


def to_data_units(
    draws: Draws, center: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """mu = center + scale * mu_std; Sigma = diag(scale) Sigma_std diag(scale)."""
    mu = center + scale * draws.mu
    cov = draws.cov * scale[:, None] * scale[None, :]
    return mu, cov


def build_datatree(
    draws: Draws,
    data: Dataset,
    spec: ModelSpec,
    seed: int,
    attrs: dict | None = None,
    plan: StoragePlan | None = None,
) -> xr.DataTree:
    """Assemble the DataTree; allocations are drawn here unless the engine sampled them.

    ``plan`` (default ``storage.plan_storage``) says which draws keep z and the pointwise
    log-likelihood, and for which rows; K+ and the total log-likelihood are kept for every
    draw. Works in blocks of draws: no (S, N) float64 or int64 array is formed.
    """
    c, s, k = draws.w.shape
    n, d = data.n_obs, data.n_features
    plan = plan or plan_storage(n, c, s)
    x_std = data.standardized
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    jac = float(np.log(data.scale).sum())  # log p(x) = log p(x_std) - sum_d log scale_d
    z_idx, ll_idx, rows = plan.z_index(), plan.ll_index(), plan.loo_rows()
    native_idx = draws.z_draws if draws.z is not None else None
    if draws.z is not None and native_idx is not None and not np.array_equal(native_idx, z_idx):
        z_idx = np.asarray(native_idx)  # the engine already thinned z its own way
    zdt = label_dtype(k)
    z = np.empty((c, len(z_idx), n), dtype=zdt)
    loglik = np.empty((c, len(ll_idx), len(rows)), dtype=np.float32)
    ll_total = np.empty((c, s))
    kplus = np.empty((c, s), dtype=np.int64)
    if _engine_totals(draws, plan):
        return _assemble_from_engine(draws, data, spec, seed, attrs, plan, z_idx, zdt, jac)
    z_pos = np.full(s, -1)
    z_pos[z_idx] = np.arange(len(z_idx))
    ll_pos = np.full(s, -1)
    ll_pos[ll_idx] = np.arange(len(ll_idx))
    inner = max(1, (1 << 21) // max(1, n * k * d))  # allocations()'s own block (same draws)
    step = inner * max(1, (1 << 22) // max(1, n * inner))
    flat_w = draws.w.reshape(c * s, k)
    flat_mu = draws.mu.reshape(c * s, k, d)
    flat_cov = draws.cov.reshape(c * s, k, d, d)
    for a in range(0, c * s, step):
        b = min(c * s, a + step)
        native = None
        if draws.z is not None:
            native = _native_block(draws, a, b, s, native_idx)
        zb, llb = allocations(x_std, flat_w[a:b], flat_mu[a:b], flat_cov[a:b], rng, z=native)
        llb -= jac
        ch, dr = np.divmod(np.arange(a, b), s)
        ll_total[ch, dr] = llb.sum(axis=-1)
        if native_idx is None:  # every draw's z is here: K+ from it
            kplus[ch, dr] = n_clusters(zb)
        keep = z_pos[dr] >= 0
        z[ch[keep], z_pos[dr[keep]]] = zb[keep]
        sel = ll_pos[dr] >= 0
        loglik[ch[sel], ll_pos[dr[sel]]] = llb[sel][:, rows]
        del zb, llb
    if draws.z is not None and native_idx is not None:
        kplus = np.asarray(draws.sample_stats["n_occupied"], dtype=np.int64).reshape(c, s)
    return _tree(draws, data, spec, seed, attrs, plan, z, z_idx, kplus, loglik, ll_idx, ll_total)


def _engine_totals(draws: Draws, plan: StoragePlan) -> bool:
    """The blocked / telescoping / sub-cluster Gibbs engines report each draw's total
    log-likelihood sum_i log sum_k w_k N(x_i | mu_k, Sigma_k) (standardised scale) and K+: past the LOO
    subsample size, assemble takes them and evaluates the pointwise log-likelihood only for
    the stored rows and draws, instead of all N rows of every draw."""
    return (
        str(draws.engine) in (str(Engine.GIBBS), str(Engine.SUBCLUSTER))
        and draws.z is not None
        and "log_likelihood" in draws.sample_stats
        and "n_occupied" in draws.sample_stats
        and plan.loo_obs < plan.n_obs
    )


def _assemble_from_engine(draws, data, spec, seed, attrs, plan, z_idx, zdt, jac):
    """``build_datatree`` from the engine's totals and K+ (``_engine_totals``)."""
    c, s, k = draws.w.shape
    n = data.n_obs
    ll_idx, rows = plan.ll_index(), plan.loo_rows()
    if draws.z_draws is None:
        z = draws.z[:, z_idx].astype(zdt)
    else:
        z_idx = np.asarray(draws.z_draws)
        z = draws.z.astype(zdt, copy=False)
    x_rows = np.ascontiguousarray(data.standardized[rows])
    loglik = np.empty((c, len(ll_idx), len(rows)), dtype=np.float32)
    for ch in range(c):
        for a in range(0, len(ll_idx), 256):
            sel = ll_idx[a : a + 256]
            ll = pointwise_loglik(x_rows, draws.w[ch, sel], draws.mu[ch, sel], draws.cov[ch, sel])
            loglik[ch, a : a + len(sel)] = ll - jac
    ll_total = np.asarray(draws.sample_stats["log_likelihood"], dtype=float) - n * jac
    kplus = np.asarray(draws.sample_stats["n_occupied"], dtype=np.int64).reshape(c, s)
    return _tree(draws, data, spec, seed, attrs, plan, z, z_idx, kplus, loglik, ll_idx, ll_total)


def _tree(draws, data, spec, seed, attrs, plan, z, z_idx, kplus, loglik, ll_idx, ll_total):
    """The DataTree from the assembled arrays (``build_datatree``)."""
    c, s, k = draws.w.shape
    n, d = data.n_obs, data.n_features
    rows = plan.loo_rows()
    mu, cov = to_data_units(draws, data.center, data.scale)

    coords = {
        "chain": np.arange(c),
        "draw": np.arange(s),
        "cluster": np.arange(k),
        "feature": list(data.columns),
        "feature_bis": list(data.columns),
        "obs_id": np.arange(n),
    }
    post = {
        "w": (CD + ("cluster",), draws.w),
        "mu": (CD + ("cluster", "feature"), mu),
    }
    if d == 1:
        post["sigma"] = (CD + ("cluster",), np.sqrt(cov[..., 0, 0]))
    else:
        post["cov"] = (CD + ("cluster", "feature", "feature_bis"), cov)
        post["chol"] = (CD + ("cluster", "feature", "feature_bis"), np.linalg.cholesky(cov))
    log_prior = {}
    params = mixing_parameters(draws, spec)
    for name, values in params.items():
        post[name] = (CD, values)
        lp = mixings.log_prior(spec.mixing, name, params)
        if lp is not None:
            log_prior[name] = (CD, lp)
    for name, c0 in draws.kernel_params.items():
        if c0.ndim == 2:  # a conjugate kernel's scale b0 or psi0, on the standardised scale
            post[name] = (CD, c0)
            continue
        # Sigma^{-1} ~ W(c0, C0): C0 scales like Sigma, so C0_data = S C0 S (S = diag(scale))
        c0d = c0 * data.scale[:, None] * data.scale[None, :]
        if d == 1:  # Richardson & Green's beta
            post["beta" if name == "C0" else name] = (CD, c0d[..., 0, 0])
        else:
            post[name] = (CD + ("feature", "feature_bis"), c0d)
    sample_stats = {key: (CD, np.asarray(v)) for key, v in draws.sample_stats.items()}
    sample_stats["log_likelihood"] = (CD, ll_total)
    groups = {
        "posterior": xr.Dataset(post, coords=_sub(coords, post)),
        "sample_stats": xr.Dataset(sample_stats, coords=_sub(coords, sample_stats)),
        "log_likelihood": xr.Dataset(
            {"x": (CD + ("obs_id",), loglik)},
            coords={"chain": coords["chain"], "draw": ll_idx, "obs_id": rows},
        ),
        "observed_data": xr.Dataset(
            {"x": (("obs_id", "feature"), data.values)},
            coords={"obs_id": coords["obs_id"], "feature": coords["feature"]},
        ),
        "allocations": xr.Dataset(
            {
                "z": (("chain", "z_draw", "obs_id"), z),
                "n_clusters": (CD, kplus),
            },
            coords={
                "chain": coords["chain"],
                "draw": coords["draw"],
                "z_draw": z_idx,
                "obs_id": coords["obs_id"],
            },
        ),
    }
    if log_prior:
        groups["log_prior"] = xr.Dataset(log_prior, coords=_sub(coords, log_prior))
    dt = xr.DataTree.from_dict(groups)
    dt["allocations"].attrs["storage"] = json.dumps(plan.to_dict())
    dt["log_likelihood"].attrs.update(
        {"loo_observations": int(len(rows)), "n_obs": int(n), "draws": int(len(ll_idx) * c)}
    )
    meta = {
        "engine": str(draws.engine),
        "sampler": draws.sampler or "",
        "seed": int(seed),
        "spec": json.dumps(spec.to_dict()),
        "data_sha256": data.sha256,
        "data_source": data.source,
        "center": json.dumps(data.center.tolist()),
        "scale": json.dumps(data.scale.tolist()),
        "row_labels": json.dumps(data.row_labels.tolist()),
    }
    dt.attrs.update(meta | (attrs or {}))
    return dt


def mixing_parameters(draws: Draws, spec: ModelSpec) -> dict[str, np.ndarray]:
    """The mixing's random parameters by name ((chain, draw) arrays): ``draws.params``, or the
    concentration alone for engines that report only it."""
    if draws.params:
        return dict(draws.params)
    if draws.concentration is not None:
        return {spec.mixing.concentration_name: draws.concentration}
    return {}


def _sub(coords: dict, variables: dict) -> dict:
    """The coordinates used by the dims of ``variables`` (name -> (dims, ...))."""
    used = {dim for spec in variables.values() for dim in spec[0]}
    return {key: val for key, val in coords.items() if key in used}


def _native_block(draws: Draws, a: int, b: int, s: int, native_idx) -> np.ndarray:
    """The engine's z for flat draws a..b-1 (all draws), or for those of them it kept
    (``native_idx``, rows = kept draws, in order)."""
    n = draws.z.shape[-1]
    if native_idx is None:
        return draws.z.reshape(-1, n)[a:b]
    # thinned z: a full (b - a, N) block with the kept rows; others are never stored
    out = np.zeros((b - a, n), dtype=draws.z.dtype)
    pos = np.full(s, -1)
    pos[np.asarray(native_idx)] = np.arange(len(native_idx))
    ch, dr = np.divmod(np.arange(a, b), s)
    keep = pos[dr] >= 0
    out[keep] = draws.z[ch[keep], pos[dr[keep]]]
    return out
