"""NUTS over the marginalised mixture: pm.sample with nutpie (default), PyMC's sampler, or,
through JAX (the optional extra ``bayesmix[jax]``), numpyro or blackjax."""

from __future__ import annotations

import importlib.util
import os
import re
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from importlib import metadata

import numpy as np
import pymc as pm

from bayesmix.engines.base import Draws
from bayesmix.engines.names import Engine
from bayesmix.errors import InputError
from bayesmix.model import build_model, initial_values
from bayesmix.spec import ModelSpec

# NUTS step-size adaptation target when the spec sets none (nutpie's and PyMC's own: 0.8)
DEFAULT_TARGET_ACCEPT = 0.9


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
        f"cannot sample: {other}; for NUTS, --model sparse_wi (a sparse finite mixture, the "
        "NUTS spec measured to converge)"
    )


#: the NUTS backends that run on JAX, with the packages each needs (``bayesmix[jax]``)
JAX_SAMPLERS = {"numpyro": ("jax", "numpyro"), "blackjax": ("jax", "blackjax")}
JAX_EXTRA = "pip install 'bayesmix[jax]'"


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # ValueError: blocked by sys.modules[package] = None
        return False


def _version(package: str) -> tuple[int, ...]:
    try:
        text = metadata.version(package)
    except metadata.PackageNotFoundError:
        return ()
    return tuple(int(p) for p in re.findall(r"\d+", text)[:2])


def check_sampler(sampler: str) -> None:
    """An InputError naming the missing package when a JAX backend is asked for without the
    optional extra installed (nothing is imported: see ``jax_chain_method``), or when
    blackjax >= 1.6 meets a PyMC whose ``pm.sample`` cannot drive it (pymc#8367: PyMC up to
    6.4 passes ``progress_bar`` into ``blackjax.window_adaptation``, which blackjax 1.6
    forwards to the NUTS kernel, and calls the removed ``blackjax.progress_bar.gen_scan_fn``)."""
    for package in JAX_SAMPLERS.get(sampler, ()):
        if not _installed(package):
            raise InputError(
                f"sampler '{sampler}' needs the package '{package}', which is not installed: "
                f"{JAX_EXTRA}"
            )
    if sampler == "blackjax" and _version("blackjax") >= (1, 6) and _version("pymc") <= (6, 4):
        raise InputError(
            f"sampler 'blackjax': blackjax {metadata.version('blackjax')} does not work with "
            f"PyMC {metadata.version('pymc')}'s pm.sample (pymc issue 8367); "
            "pip install 'blackjax>=1.5,<1.6'"
        )


def jax_chain_method(chains: int) -> str:
    """'parallel' (one chain per XLA device, ``jax.pmap``) when there are devices for every
    chain, else 'vectorized' (``jax.vmap``: the chains step together on one device, as on a
    single GPU). JAX starts with one CPU device; before its backend starts (importing blackjax
    or ``pymc.sampling.jax`` starts it, so this runs first), ask for one per chain
    (``jax_num_cpu_devices``) so that CPU chains run in parallel threads. A process whose JAX
    backend is already running keeps its devices."""
    import jax

    try:
        from jax._src.xla_bridge import backends_are_initialized
    except ImportError:  # a JAX without it: leave the devices as they are

        def backends_are_initialized() -> bool:
            return True

    chosen = "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
    if not (chosen or backends_are_initialized()) and jax.config.jax_num_cpu_devices < 0:
        jax.config.update("jax_num_cpu_devices", chains)
    return "parallel" if jax.local_device_count() >= chains else "vectorized"


@contextmanager
def jax_compile_timer():
    """Seconds JAX spent tracing, lowering and compiling (XLA) inside the block, from its
    monitoring events (nested events counted once): ``with jax_compile_timer() as t: ...;
    t["s"]``."""
    import jax.monitoring as monitoring
    from jax._src import dispatch

    events = {
        dispatch.JAXPR_TRACE_EVENT,
        dispatch.JAXPR_TO_MLIR_MODULE_EVENT,
        dispatch.BACKEND_COMPILE_EVENT,
    }
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def listen(event: str, duration: float, **_: object) -> None:
        if event in events:
            end = time.perf_counter()
            with lock:
                spans.append((end - duration, end))

    out = {"s": 0.0}
    monitoring.register_event_duration_secs_listener(listen)
    try:
        yield out
    finally:
        monitoring.unregister_event_duration_listener(listen)
        total, reach = 0.0, -float("inf")
        for start, end in sorted(spans):  # the union of the spans
            if end > reach:
                total += end - max(start, reach)
                reach = end
        out["s"] = total


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
    constrained variables (default: ``model.initial_values``, EM + BIC means). The JAX
    backends compile (to XLA) inside ``pm.sample``, at every run: ``sample_nuts`` times it."""
    t0 = time.perf_counter()
    check_nuts(spec)
    check_sampler(sampler)
    model = build_model(spec, x)
    init = initial_values(spec, x, seed) if init is None else init
    compiled = None
    if sampler == "nutpie":
        import nutpie

        with model:
            compiled = nutpie.compile_pymc_model(model, initial_points=init)
    return NutsGraph(model, init, compiled, time.perf_counter() - t0)


def _run_sampler(
    sampler: str, graph: NutsGraph, kw: dict, extra: dict, cores: int | None, info: dict
):
    """The DataTree of one backend's run; ``kw``: pm.sample's draws, tune, chains, seed,
    initial values and progress bar; ``extra``: target_accept, when set."""
    with graph.model:
        if sampler in JAX_SAMPLERS:
            return pm.sample(
                **kw, **extra, nuts_sampler=sampler, nuts={"chain_method": info["chain_method"]}
            )
        if sampler == "nutpie":
            import nutpie

            if graph.compiled is None:
                raise ValueError("graph was compiled for the pymc sampler, not nutpie")
            return nutpie.sample(
                graph.compiled,
                draws=kw["draws"],
                tune=kw["tune"],
                chains=kw["chains"],
                seed=kw["random_seed"],
                progress_bar=kw["progressbar"],
                cores=cores or min(kw["chains"], 4),
                **extra,
            )
        return pm.sample(**kw, **extra, nuts_sampler="pymc", cores=cores or 1)


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

    ``target_accept`` (default ``DEFAULT_TARGET_ACCEPT`` = 0.9, where the backends' own is
    0.8) trades speed for fewer divergences: with the weakly informative sparse mixture on Old
    Faithful, 0.8 gave 29.8% divergent transitions and 0.9 gave 0.30%, at twice the time
    (reports/benchmarks/nuts_study_zero_avoiding.md).
    ``graph``: a ``compile_nuts`` result for these ``spec`` and ``x`` (no rebuild, no
    recompile; ``timing["compile_s"]`` is then 0, except for the JAX backends).

    numpyro and blackjax (``JAX_SAMPLERS``) compile the model's log density and the whole
    sampler to XLA inside ``pm.sample``: ``timing["compile_s"]`` adds that time (JAX's own
    tracing, lowering and compile events, also in ``timing["jax_compile_s"]``) and
    ``sampling_s`` is the rest, until the draws are numpy arrays (the PyTensor-to-JAX
    conversion included);
    ``info["chain_method"]`` is the JAX chain method (``jax_chain_method``).
    """
    check_sampler(sampler)
    extra = {"target_accept": DEFAULT_TARGET_ACCEPT if target_accept is None else target_accept}
    if graph is None:
        graph = compile_nuts(spec, x, sampler=sampler, seed=seed)
        compile_s = graph.compile_s
    else:
        compile_s = 0.0
    kwargs = dict(
        draws=draws,
        tune=tune,
        chains=chains,
        random_seed=seed,
        initvals=graph.init,
        progressbar=progress,
        compute_convergence_checks=False,
    )
    info: dict[str, object] = {}
    jax_backend = sampler in JAX_SAMPLERS
    if jax_backend:
        info["chain_method"] = jax_chain_method(chains)
    # JAX's compile time is counted up to the numpy draws (in case a compile is deferred)
    timer = jax_compile_timer() if jax_backend else nullcontext({"s": 0.0})
    t1 = time.perf_counter()
    with timer as jit:
        dt = _run_sampler(sampler, graph, kwargs, extra, cores, info)
        # the draws as numpy arrays before the clock stops: pm.sample with blackjax returns while
        # JAX still computes them (asynchronous dispatch; 55 of 57 s on galaxy came after it)
        w = _posterior_array(dt, "w")
        mu = _posterior_array(dt, "mu")
        factor = _posterior_array(dt, "factor")
        params = {name: _posterior_array(dt, name) for name in spec.mixing.parameter_names}
        d = mu.shape[-1]
        kparams = kernel_parameters(spec, dt, d)
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
    jax_s = jit["s"]
    sampling_s = time.perf_counter() - t1 - jax_s
    cov = covariance_from_factor(factor)
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
        kernel_params=kparams,
        engine=Engine.NUTS,
        sampler=sampler,
        sample_stats=stats,
        timing={"compile_s": compile_s + jax_s, "sampling_s": sampling_s}
        | ({"jax_compile_s": jax_s} if sampler in JAX_SAMPLERS else {}),
        info=info,
    )
