"""Turn an engine's standardised draws into the documented DataTree, in the data's own units.

Groups: posterior (w, mu, sigma | cov + chol, and the mixing's random parameters: alpha |
gamma | strength, discount, K), sample_stats, log_likelihood (x), log_prior (the mixing's
continuous random parameters), observed_data (x)
and allocations (z, n_clusters).
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from bayesmix import mixings
from bayesmix.data import Dataset
from bayesmix.engines.base import Draws
from bayesmix.posterior.allocations import allocations, n_clusters
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
) -> xr.DataTree:
    """Assemble the DataTree; allocations are drawn here unless the engine sampled them."""
    c, s, k = draws.w.shape
    n, d = data.n_obs, data.n_features
    x_std = data.standardized
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    flat = (c * s,)
    z_native = None if draws.z is None else draws.z.reshape(flat + (n,))
    z, loglik_std = allocations(
        x_std,
        draws.w.reshape(flat + (k,)),
        draws.mu.reshape(flat + (k, d)),
        draws.cov.reshape(flat + (k, d, d)),
        rng,
        z=z_native,
    )
    # Jacobian of the standardisation: log p(x) = log p(x_std) - sum_d log scale_d.
    loglik = (loglik_std - np.log(data.scale).sum()).reshape(c, s, n)
    z = z.reshape(c, s, n)
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
    kplus = n_clusters(z)
    sample_stats = {key: (CD, np.asarray(v)) for key, v in draws.sample_stats.items()}
    sample_stats["log_likelihood"] = (CD, loglik.sum(axis=-1))
    groups = {
        "posterior": xr.Dataset(post, coords=_sub(coords, post)),
        "sample_stats": xr.Dataset(sample_stats, coords=_sub(coords, sample_stats)),
        "log_likelihood": xr.Dataset(
            {"x": (CD + ("obs_id",), loglik)}, coords=_sub(coords, {"a": (CD + ("obs_id",),)})
        ),
        "observed_data": xr.Dataset(
            {"x": (("obs_id", "feature"), data.values)},
            coords={"obs_id": coords["obs_id"], "feature": coords["feature"]},
        ),
        "allocations": xr.Dataset(
            {
                "z": (CD + ("obs_id",), z.astype(np.int16 if k < 32000 else np.int32)),
                "n_clusters": (CD, kplus),
            },
            coords=_sub(coords, {"a": (CD + ("obs_id",),)}),
        ),
    }
    if log_prior:
        groups["log_prior"] = xr.Dataset(log_prior, coords=_sub(coords, log_prior))
    dt = xr.DataTree.from_dict(groups)
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
