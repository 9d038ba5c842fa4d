"""NUTS over the marginalised mixture: pm.sample with nutpie (default) or PyMC's sampler."""

from __future__ import annotations

import time

import numpy as np
import pymc as pm

from bayesmix.engines.base import Draws
from bayesmix.engines.names import Engine
from bayesmix.model import build_model, initial_values
from bayesmix.spec import ModelSpec


def _posterior_array(dt, name: str) -> np.ndarray:
    return np.asarray(dt["posterior"][name].values)


def covariance_from_factor(factor: np.ndarray) -> np.ndarray:
    """Sigma = (A A')^{-1} for whitening factors A (..., D, D)."""
    prec = factor @ np.swapaxes(factor, -1, -2)
    return np.linalg.inv(prec)


def sample_nuts(
    spec: ModelSpec,
    x: np.ndarray,
    *,
    sampler: str = "nutpie",
    chains: int = 4,
    draws: int = 1000,
    tune: int = 1000,
    seed: int = 0,
    progress: bool = True,
    cores: int | None = None,
    target_accept: float | None = None,
) -> Draws:
    """Sample the marginalised model with NUTS; return the draws on the standardised scale.

    ``target_accept`` (default: the backend's, 0.8) trades speed for fewer divergences; on
    galaxy, 0.99 removed most of nutpie's shift of K+ towards 3 (reports/benchmarks/engines.md).
    """
    extra = {} if target_accept is None else {"target_accept": target_accept}
    t0 = time.perf_counter()
    if spec.kernel.prior == "semi_conjugate":
        from bayesmix.kernels.pymc import build_kernel

        build_kernel(spec.kernel, 1, 1)  # the clear error, before the mixing's
    model = build_model(spec, x)
    init = initial_values(spec, x, seed)
    kwargs = dict(
        draws=draws,
        tune=tune,
        chains=chains,
        random_seed=seed,
        initvals=init,
        progressbar=progress,
        compute_convergence_checks=False,
    )
    compile_s = 0.0
    with model:
        if sampler == "nutpie":
            import nutpie

            compiled = nutpie.compile_pymc_model(model, initial_points=init)
            compile_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            dt = nutpie.sample(
                compiled,
                draws=draws,
                tune=tune,
                chains=chains,
                seed=seed,
                progress_bar=progress,
                cores=cores or min(chains, 4),
                **extra,
            )
        else:
            dt = pm.sample(**kwargs, **extra, nuts_sampler="pymc", cores=cores or 1)
            t1 = t0
    sampling_s = time.perf_counter() - t1
    w = _posterior_array(dt, "w")
    mu = _posterior_array(dt, "mu")
    cov = covariance_from_factor(_posterior_array(dt, "factor"))
    params = {name: _posterior_array(dt, name) for name in spec.mixing.parameter_names}
    conc = params.get(spec.mixing.concentration_name)
    stats = {}
    ss = dt["sample_stats"]
    for src, dst in (
        ("diverging", "diverging"),
        ("tree_depth", "tree_depth"),
        ("depth", "tree_depth"),
    ):
        if src in ss and dst not in stats:
            stats[dst] = np.asarray(ss[src].values)
    if "diverging" in stats:
        stats["diverging"] = stats["diverging"].astype(bool)
    return Draws(
        w=w,
        mu=mu,
        cov=cov,
        concentration=conc,
        params=params,
        engine=Engine.NUTS,
        sampler=sampler,
        sample_stats=stats,
        timing={"compile_s": compile_s, "sampling_s": sampling_s},
    )
