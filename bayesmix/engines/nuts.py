"""NUTS over the marginalised mixture: pm.sample with nutpie (default) or PyMC's sampler."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pymc as pm

from bayesmix.engines.base import Draws
from bayesmix.engines.names import Engine
from bayesmix.errors import InputError
from bayesmix.model import build_model, initial_values
from bayesmix.spec import ModelSpec


def _posterior_array(dt, name: str) -> np.ndarray:
    return np.asarray(dt["posterior"][name].values)


def covariance_from_factor(factor: np.ndarray) -> np.ndarray:
    """Sigma = (A A')^{-1} for whitening factors A (..., D, D)."""
    prec = factor @ np.swapaxes(factor, -1, -2)
    return np.linalg.inv(prec)


def check_nuts(spec: ModelSpec) -> None:
    """An InputError naming an engine that can run the spec, when NUTS cannot: the mixture of
    finite mixtures (a discrete K)."""
    if spec.mixing.type != "mfm":
        return
    kern = spec.kernel
    if kern.prior == "semi_conjugate":
        other = (
            "use --engine gibbs (telescoping; the collapsed engine needs kernel.prior = "
            "'conjugate')"
        )
    elif kern.prior == "conjugate" and kern.scale_prior is not None:
        other = "use --engine collapsed (kernel.scale_prior runs on the collapsed engine)"
    elif kern.prior == "conjugate":
        other = "use --engine collapsed or --engine gibbs (telescoping)"
    else:
        other = (
            "the Gibbs engines sample it with kernel.prior = 'conjugate' (--engine collapsed) "
            "or 'semi_conjugate' (--engine gibbs, telescoping)"
        )
    raise InputError(
        "a mixture of finite mixtures has a discrete number of components K, which NUTS "
        f"cannot sample: {other}"
    )


def kernel_parameters(spec: ModelSpec, dt, d: int) -> dict[str, np.ndarray]:
    """The kernel's random hyperparameters from the posterior, named as the Gibbs engines name
    them (``Draws.kernel_params``): C0 (C, S, D, D) of a semi-conjugate kernel with a
    hierarchical scale, b0 or psi0 (C, S) of a conjugate one with ``scale_prior``."""
    kern = spec.kernel
    if kern.prior == "semi_conjugate" and kern.scale == "hierarchical":
        return {"C0": _posterior_array(dt, "C0")}
    if kern.prior == "conjugate" and kern.scale_prior is not None:
        name = "psi0" if d > 1 and kern.covariance == "full" else "b0"
        return {name: _posterior_array(dt, name)}
    return {}


@dataclass
class NutsGraph:
    """A built (and, for nutpie, compiled) model with its initial values: reusable across runs
    that differ only in sampler settings (chains, draws, target_accept, seed)."""

    model: pm.Model
    init: dict[str, np.ndarray]
    compiled: object | None = None
    compile_s: float = 0.0


def compile_nuts(
    spec: ModelSpec,
    x: np.ndarray,
    *,
    sampler: str = "nutpie",
    seed: int = 0,
    init: dict[str, np.ndarray] | None = None,
) -> NutsGraph:
    """Build the marginalised model and compile it for nutpie. ``init``: initial values of the
    constrained variables (default: ``model.initial_values``, EM + BIC means)."""
    t0 = time.perf_counter()
    check_nuts(spec)
    model = build_model(spec, x)
    init = initial_values(spec, x, seed) if init is None else init
    compiled = None
    if sampler == "nutpie":
        import nutpie

        with model:
            compiled = nutpie.compile_pymc_model(model, initial_points=init)
    return NutsGraph(model, init, compiled, time.perf_counter() - t0)


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
    graph: NutsGraph | None = None,
) -> Draws:
    """Sample the marginalised model with NUTS; return the draws on the standardised scale.

    ``target_accept`` (default: the backend's, 0.8) trades speed for fewer divergences; on
    galaxy, 0.99 removed most of nutpie's shift of K+ towards 3 (reports/benchmarks/engines.md).
    ``graph``: a ``compile_nuts`` result for these ``spec`` and ``x`` (no rebuild, no
    recompile; ``timing["compile_s"]`` is then 0).
    """
    extra = {} if target_accept is None else {"target_accept": target_accept}
    if graph is None:
        graph = compile_nuts(spec, x, sampler=sampler, seed=seed)
        compile_s = graph.compile_s
    else:
        compile_s = 0.0
    model, init = graph.model, graph.init
    kwargs = dict(
        draws=draws,
        tune=tune,
        chains=chains,
        random_seed=seed,
        initvals=init,
        progressbar=progress,
        compute_convergence_checks=False,
    )
    t1 = time.perf_counter()
    with model:
        if sampler == "nutpie":
            import nutpie

            if graph.compiled is None:
                raise ValueError("graph was compiled for the pymc sampler, not nutpie")
            dt = nutpie.sample(
                graph.compiled,
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
    d = mu.shape[-1]
    info: dict[str, object] = {}
    if spec.kernel.prior == "semi_conjugate":
        from bayesmix.kernels import semiconj

        full = d > 1 and spec.kernel.covariance == "full"
        info["kernel"] = "semi_conjugate_" + ("full" if full else "diag")
        hs = semiconj.data_hyper(spec.kernel, x).packed()
        info["kernel_hyper"] = {key: list(val) for key, val in semiconj.unpack(hs, d).items()}
    return Draws(
        w=w,
        mu=mu,
        cov=cov,
        concentration=conc,
        params=params,
        kernel_params=kernel_parameters(spec, dt, d),
        engine=Engine.NUTS,
        sampler=sampler,
        sample_stats=stats,
        timing={"compile_s": compile_s, "sampling_s": sampling_s},
        info=info,
    )
