"""Gibbs engines for conjugate and semi-conjugate Gaussian mixtures: spec + standardised data
-> Draws.

Two algorithms share the numba kernels of this package and of ``bayesmix.kernels.niw``:

* ``blocked``   Ishwaran & James (2001) blocked Gibbs for the truncated DP
                (T = ``mixing.n_components``) and the finite Dirichlet mixture.
                Each DP sweep adds label-switching moves (Papaspiliopoulos & Roberts 2008).
* ``collapsed`` Neal (2000) algorithm 3: component parameters integrated out; the DP is
                *untruncated*.  Each sweep adds a split-merge move (Dahl 2003).  (w, mu, Sigma)
                are drawn per saved draw from their conditional posteriors so the output has
                the same shape as the blocked sampler.
* ``subcluster`` for large N: Chang & Fisher's (2013) restricted Gibbs sweep, parallel over
                points (numba ``prange``), with the same split-merge moves
                (``subcluster.py``); DP, finite and static MFM mixings.

Chains run in threads: the numba kernels are compiled ``nogil=True``, so the threads run in
parallel with no process start-up, no pickling and no ``if __name__ == "__main__"`` guard (a
process pool remains as ``executor="processes"``, for comparison). Each chain gets its seeds
from ``np.random.SeedSequence(seed).spawn(chains)`` and reseeds numba's per-thread RNG inside
its first kernel call, so the same seed gives identical output whatever the number of workers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing as mp
import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np

from bayesmix import mixings
from bayesmix.engines.base import Draws
from bayesmix.engines.gibbs import blocked, collapsed, subcluster, telescoping
from bayesmix.engines.names import Engine
from bayesmix.errors import InputError
from bayesmix.kernels import niw, semiconj
from bayesmix.posterior.storage import even_rows, label_dtype
from bayesmix.spec import ModelSpec

ALGORITHMS = ("blocked", "collapsed", "subcluster")
SM_ALGORITHMS = ("collapsed", "subcluster")  # the samplers with split-merge moves
SUBCLUSTER_CAP = 64  # most clusters the sub-cluster sampler holds (unlabelled mixings)
_N_CHUNKS = 10  # kernel calls per chain: progress every 10% and a Ctrl-C point
_PROGRESS_EVERY_S = 3.0  # seconds between progress lines of one chain
_IN_PROCESS_WORK = 4e6  # N * max(1, D^2/2) * sweeps * chains below which processes are not used
EXECUTORS = ("threads", "processes")


@dataclass(frozen=True)
class ChainConfig:
    """Everything a chain needs besides the data (picklable, sent to the workers)."""

    algorithm: str  # collapsed | blocked | telescoping
    hyp: tuple[float, ...]  # m0, kappa0, nu0, psi0 (NIG: nu0 = 2 a0, psi0 = 2 b0)[, psi0's
    # Gamma(shape, rate) when the conjugate kernel's scale has a prior]
    fam: int  # the covariance family (bayesmix.kernels.niw: FULL, DIAG, SPHERICAL)
    kind: int  # the mixing's code (bayesmix.mixings.registry)
    labelled: bool  # K labelled slots (finite)
    dynamic: bool  # MFM with gamma_K = alpha / K
    n_components: int  # K (finite), truncation T (blocked DP / Pitman-Yor), K_max (MFM)
    hp: tuple[float, ...]  # hyperprior (bayesmix.mixings.registry)
    logpk: tuple[float, ...]  # log p(K = k), k = 0..K_max (MFM)
    draws: int
    tune: int
    thin: int
    label_moves: bool = True  # blocked DP and Pitman-Yor only
    split_merge: int = 1  # collapsed only: split-merge moves per sweep
    kern: int = semiconj.CONJUGATE  # the kernel's code (bayesmix.kernels.semiconj)
    hs: tuple[float, ...] = (0.0, 0.0, 0.0)  # semi-conjugate hyperparameters (semiconj.layout)
    threads: int = 1  # subcluster only: numba threads of the chain's parallel sweep
    z_rows: int = 0  # draws whose z is kept (storage.even_rows); 0 = every draw


def semi_hyper(spec: ModelSpec, x: np.ndarray) -> tuple[float, ...]:
    """The data-scaled semi-conjugate hyperparameters of data x as the numba kernels' ``hs``
    (``semiconj.data_hyper``, shared with the PyMC graph)."""
    return tuple(float(v) for v in semiconj.data_hyper(spec.kernel, x).packed())


def _config(
    spec: ModelSpec,
    x: np.ndarray,
    algorithm: str,
    draws: int,
    tune: int,
    thin: int,
    label_moves: bool = True,
    split_merge: int = 1,
) -> ChainConfig:
    kern, mix = spec.kernel, spec.mixing
    d = x.shape[1]
    if kern.prior == "weakly_informative":
        raise InputError(
            "the gibbs engine needs kernel.prior = 'conjugate' or 'semi_conjugate'; this spec "
            "uses 'weakly_informative' (Normal/HalfNormal/LKJ); use --engine nuts"
        )
    semi = kern.prior == "semi_conjugate"
    if semi and d > 1 and kern.covariance == "spherical":
        raise InputError(
            "kernel.covariance = 'spherical' has a conjugate prior only (prior = 'conjugate', on "
            "the collapsed, blocked and telescoping Gibbs engines or NUTS); with prior = "
            "'semi_conjugate' use covariance = 'diag' or 'full'"
        )
    if semi and algorithm in ("collapsed", "subcluster"):
        use = (
            "--engine gibbs (telescoping)"
            if mix.type == "mfm"
            else "--engine gibbs (blocked) or --engine nuts"
        )
        raise InputError(
            "the collapsed engine integrates the component parameters out and needs "
            "kernel.prior = 'conjugate'; this spec uses 'semi_conjugate' (mean independent of "
            f"the covariance): use {use}"
        )
    if algorithm not in ALGORITHMS:
        raise InputError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    if mix.type not in mixings.MIXING_TYPES:
        raise InputError(f"unknown mixing.type {mix.type!r}")
    algorithm = mixings.check_algorithm(mix, algorithm)
    if kern.covariance not in ("full", "diag", "spherical"):
        raise InputError(
            f"kernel.covariance must be 'full', 'diag' or 'spherical' here, got "
            f"{kern.covariance!r} ('auto' is resolved by bayesmix.fit before sampling)"
        )
    for name, val in (("draws", draws), ("thin", thin)):
        if not (isinstance(val, int) and val >= 1):
            raise InputError(f"{name} must be a positive integer, got {val!r}")
    if not (isinstance(tune, int) and tune >= 0):
        raise InputError(f"tune must be a non-negative integer, got {tune!r}")
    fam = niw.family_code(kern.covariance, d)
    diag = fam != niw.FULL
    if diag:  # NIG(a0, b0) per feature (or shared) == 1-D NIW(nu0 = 2 a0, psi0 = 2 b0)
        hyp = (float(kern.m0), float(kern.kappa0), 2.0 * kern.a0, 2.0 * kern.b0)
    else:
        nu0 = kern.nu0_for(d)
        if not nu0 > d - 1:
            raise InputError(
                f"kernel.nu0 must be > D - 1 = {d - 1} for the Inverse-Wishart, got {nu0}"
            )
        hyp = (float(kern.m0), float(kern.kappa0), float(nu0), float(kern.psi0))
    if kern.scale_prior is not None and kern.prior == "conjugate":
        if algorithm != "collapsed":
            raise InputError(
                "kernel.scale_prior (a hierarchical scale for the conjugate kernel) runs on the "
                "collapsed engine: use --engine collapsed (or prior = 'semi_conjugate' for the "
                "blocked and telescoping samplers)"
            )
        # b0 ~ Gamma(a, b) is psi0 = 2 b0 ~ Gamma(a, b / 2)
        rate = kern.scale_prior.rate / 2.0 if diag else kern.scale_prior.rate
        hyp = hyp + (float(kern.scale_prior.shape), float(rate))
    fixed = mix.concentration is not None  # a fixed value wins over a (default) prior
    if not fixed and mix.concentration_prior is None:
        raise InputError(f"mixing: give {mix.concentration_name} or {mix.concentration_name}_prior")
    kind, hp, logpk, size = mixings.numba_args(mix)
    return ChainConfig(
        algorithm=algorithm,
        hyp=hyp,
        fam=int(fam),
        kind=kind,
        labelled=mixings.info(mix).labelled,
        dynamic=mix.type == "mfm" and mix.weights == "dynamic",
        n_components=int(size),
        hp=tuple(float(v) for v in hp),
        logpk=tuple(float(v) for v in logpk),
        draws=draws,
        tune=tune,
        thin=thin,
        label_moves=bool(label_moves),
        split_merge=int(split_merge),
        kern=semiconj.SEMI_CONJUGATE if semi else semiconj.CONJUGATE,
        hs=semi_hyper(spec, x) if semi else (0.0, 0.0, 0.0),
    )


# --------------------------------------------------------------------------
# One chain (runs in a worker thread, a process or in-process)
# --------------------------------------------------------------------------


def subcluster_cap(cfg: ChainConfig, n: int) -> int:
    """Component slots of the sub-cluster sampler: K (finite), K_max (MFM), else
    SUBCLUSTER_CAP atoms of the DP or Pitman-Yor measure that a sweep may use (occupied
    clusters and the new atoms of its slices; sweeps that would need more are counted in
    ``info["slice_capacity_hits"]``)."""
    if cfg.labelled or cfg.kind == mixings.MFM:
        return cfg.n_components
    return SUBCLUSTER_CAP


def _slots(cfg: ChainConfig, n: int) -> int:
    """Component slots of a chain's (w, mu, Sigma): the sub-cluster sampler's capacity plus the
    rest mass (unlabelled), else K, T or K_max."""
    if cfg.algorithm == "subcluster" and not cfg.labelled:
        return subcluster_cap(cfg, n) + 1  # and the rest mass
    return cfg.n_components


def _alloc(cfg: ChainConfig, n: int, d: int, draws: int) -> dict[str, np.ndarray]:
    if cfg.algorithm == "collapsed":  # collapsed_params needs every draw's z (int32 labels)
        zshape, zdt = (draws, n), np.int32
    else:  # labels < n_components: the smallest type; only the kept draws
        rows = cfg.z_rows if 0 < cfg.z_rows < draws else draws
        zshape, zdt = (rows, n), label_dtype(_slots(cfg, n))
    out = {
        "z": np.zeros(zshape, zdt),
        "state": np.zeros((draws, mixings.STATE_SIZE)),
        "k": np.zeros(draws, np.int64),
    }
    if cfg.algorithm != "collapsed":
        t = _slots(cfg, n)
        out.update(
            w=np.zeros((draws, t)),
            mu=np.zeros((draws, t, d)),
            cov=np.zeros((draws, t, d, d)),
            ll=np.zeros(draws),
            c0=np.zeros((draws, d, d)),
        )
    return out


def _init_state(cfg: ChainConfig, n: int, d: int, state0: np.ndarray) -> dict[str, np.ndarray]:
    st = {"z": np.zeros(n, np.int64), "state": np.array(state0, dtype=np.float64)}
    if cfg.algorithm != "collapsed":
        t = _slots(cfg, n)
        st.update(logw=np.zeros(t), mu=np.zeros((t, d)), l=np.zeros((t, d, d)))
        hs = np.asarray(cfg.hs)
        st["c0"] = semiconj.initial_scale(hs, d) if cfg.kern else np.zeros((d, d))
    return st


def _kernel_call(
    cfg: ChainConfig, x: np.ndarray, st: dict, out: dict, it0: int, n_iter: int, seed: int
) -> None:
    """One chunk of sweeps (identical argument types for warm-up and real runs)."""
    hyp = np.asarray(cfg.hyp, dtype=np.float64)
    hp = np.asarray(cfg.hp, dtype=np.float64)
    logpk = np.asarray(cfg.logpk, dtype=np.float64)
    hs = np.asarray(cfg.hs, dtype=np.float64)
    sweeps = (int(it0), int(n_iter), int(cfg.tune), int(cfg.thin), int(seed))
    if cfg.algorithm == "blocked":
        blocked.blocked_chain(
            x, st["z"], st["logw"], st["mu"], st["l"], st["state"], hyp, cfg.fam, cfg.kind, hp,
            cfg.kern, hs, st["c0"], *sweeps, cfg.label_moves, out["z"], out["w"], out["mu"],
            out["cov"], out["state"], out["ll"], out["k"], out["c0"],
        )  # fmt: skip
    elif cfg.algorithm == "subcluster":
        n = x.shape[0]
        kk_lab = cfg.n_components if cfg.labelled else 0
        subcluster.subcluster_chain(
            x, st["z"], st["state"], hyp, cfg.fam, cfg.kind,
            kk_lab, subcluster_cap(cfg, n), hp, logpk, *sweeps, int(cfg.split_merge), out["z"],
            out["w"], out["mu"], out["cov"], out["state"], out["ll"], out["k"],
        )  # fmt: skip
    elif cfg.algorithm == "telescoping":
        telescoping.telescoping_chain(
            x, st["z"], st["logw"], st["mu"], st["l"], st["state"], hyp, cfg.fam, cfg.dynamic,
            hp, logpk, cfg.kern, hs, st["c0"], *sweeps, out["z"], out["w"], out["mu"],
            out["cov"], out["state"], out["ll"], out["k"], out["c0"],
        )  # fmt: skip
    else:
        collapsed.collapsed_chain(
            x, st["z"], st["state"], hyp, cfg.fam, cfg.kind, int(cfg.n_components), hp, logpk,
            *sweeps, int(cfg.split_merge), out["z"], out["state"], out["k"],
        )  # fmt: skip


def _collapsed_slots(cfg: ChainConfig, out: dict) -> int:
    """Slots of the collapsed sampler's (w, mu, Sigma): K (finite), the largest K drawn (MFM),
    else the largest number of occupied clusters + 1 (the rest mass)."""
    if cfg.labelled:
        return cfg.n_components
    if cfg.kind in (mixings.MFM, mixings.MFM_DYNAMIC):
        return int(out["state"][:, mixings.K_SLOT].max())
    return int(out["k"].max()) + 1


def _collapsed_post(cfg: ChainConfig, x: np.ndarray, out: dict, kc: int, seed: int) -> None:
    """Per-draw (w, mu, Sigma) for the collapsed sampler, kc slots."""
    s, d = out["z"].shape[0], x.shape[1]
    out.update(w=np.zeros((s, kc)), mu=np.zeros((s, kc, d)), cov=np.zeros((s, kc, d, d)))
    out["ll"] = np.zeros(s)
    collapsed.collapsed_params(
        x, out["z"], out["state"], np.asarray(cfg.hyp, dtype=np.float64), cfg.fam, cfg.kind,
        int(seed), out["w"], out["mu"], out["cov"], out["ll"],
    )  # fmt: skip


def _warmup(cfg: ChainConfig, d: int) -> float:
    """Tiny run of every kernel with the real argument types: JIT compile or cache load time."""
    t0 = time.perf_counter()
    xt = np.ascontiguousarray(np.linspace(-1.5, 1.5, 6 * d).reshape(6, d) ** 3)
    small = dataclasses.replace(cfg, draws=2, tune=1, thin=1, z_rows=0)
    state0 = np.zeros(mixings.STATE_SIZE)
    state0[0] = 1.0
    state0[5] = 0.25 if cfg.kind == mixings.PITMAN_YOR else 0.0
    mfm_kind = cfg.kind in (mixings.MFM, mixings.MFM_DYNAMIC)
    state0[mixings.K_SLOT] = min(3, cfg.n_components) if mfm_kind else 0.0
    st = _init_state(small, 6, d, state0)
    out = _alloc(small, 6, d, 2)
    _kernel_call(small, xt, st, out, 0, 3, 1)
    if cfg.algorithm == "collapsed":
        _collapsed_post(small, xt, out, max(1, _collapsed_slots(small, out)), 2)
    return time.perf_counter() - t0


def _run_chain(
    cfg: ChainConfig,
    x: np.ndarray,
    chain: int,
    seeds: tuple[int, int],
    state0: np.ndarray,
    progress: bool,
    warm: bool,
    stop: threading.Event | None = None,
) -> dict:
    """Run one chain to completion; returns its draws (collapsed: padded to its own max K+ + 1).

    ``stop`` (thread runs) is checked between chunks of sweeps: set, the chain ends early.
    """
    with _chain_threads(cfg):
        n, d = x.shape
        load_s = _warmup(cfg, d) if warm else 0.0
        st = _init_state(cfg, n, d, state0)
        out = _alloc(cfg, n, d, cfg.draws)
        total = cfg.tune + cfg.draws * cfg.thin
        bounds = np.unique(np.linspace(0, total, _N_CHUNKS + 1).round().astype(int))
        t0, c0 = time.perf_counter(), time.thread_time()
        last = t0
        for j, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
            _kernel_call(cfg, x, st, out, int(a), int(b - a), seeds[0] if j == 0 else -1)
            now = time.perf_counter()
            # A line at the end of each chain, and every few seconds on long runs.
            if progress and (b == total or now - last > _PROGRESS_EVERY_S):
                last = now
                print(
                    f"{cfg.algorithm} gibbs chain {chain}: {100 * b // total:3d}% "
                    f"({b}/{total} sweeps, {time.perf_counter() - t0:.1f}s)",
                    file=sys.stderr,
                    flush=True,
                )
        sweep_s, sweep_cpu_s = time.perf_counter() - t0, time.thread_time() - c0
        t1 = time.perf_counter()
        if cfg.algorithm == "collapsed":
            _collapsed_post(cfg, x, out, _collapsed_slots(cfg, out), seeds[1])
        post_s = time.perf_counter() - t1
        out.update(
            accept=st["state"][2] / st["state"][3] if st["state"][3] > 0 else math.nan,
            accept_discount=st["state"][7] / st["state"][8] if st["state"][8] > 0 else math.nan,
            sm_accept=float(st["state"][4]),
            cap_hits=float(st["state"][mixings.K_SLOT]),  # subcluster DP only
            log_step=float(st["state"][1]),
            load_s=load_s,
            sweep_s=sweep_s,
            sweep_cpu_s=sweep_cpu_s,
            post_s=post_s,
        )
        return out


@contextlib.contextmanager
def _chain_threads(cfg: ChainConfig) -> Iterator[None]:
    """The sub-cluster chain's numba threads (thread-local in numba), restored afterwards."""
    if cfg.algorithm != "subcluster":
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(cfg.threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(before)


# --------------------------------------------------------------------------
# Prior draws for padding (numpy, main process)
# --------------------------------------------------------------------------


def _prior_draws(
    rng: np.random.Generator, m: int, d: int, cfg: ChainConfig, psi0: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """m draws (mu, Sigma) from the NIW (NIG per feature if diag, one NIG variance for all
    features if spherical) prior; ``psi0`` (m,): each draw's own scale (a hierarchical scale),
    else the spec's."""
    m0, k0, nu0 = cfg.hyp[:3]
    psi0 = cfg.hyp[3] if psi0 is None else np.asarray(psi0, dtype=float)[:, None]
    if cfg.fam != niw.FULL:
        one = cfg.fam == niw.SPHERICAL
        var = psi0 / rng.chisquare(nu0, size=(m, 1 if one else d))  # IG(nu0/2, psi0/2)
        var = np.broadcast_to(var, (m, d))
        cov = np.zeros((m, d, d))
        idx = np.arange(d)
        cov[:, idx, idx] = var
        mu = m0 + np.sqrt(var / k0) * rng.standard_normal((m, d))
        return mu, cov
    a = np.zeros((m, d, d))
    for i in range(d):  # Bartlett: Sigma^{-1} = A A^T / psi0 ~ W(nu0, I / psi0)
        a[:, i, i] = np.sqrt(rng.chisquare(nu0 - i, size=m))
        a[:, i, :i] = rng.standard_normal((m, i))
    cov = np.reshape(psi0, (-1, 1, 1)) * np.linalg.inv(a @ np.swapaxes(a, 1, 2))
    cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
    lo = np.linalg.cholesky(cov / k0)
    mu = m0 + np.einsum("mij,mj->mi", lo, rng.standard_normal((m, d)))
    return mu, cov


def _semi_prior_draws(
    rng: np.random.Generator, c0: np.ndarray, cfg: ChainConfig
) -> tuple[np.ndarray, np.ndarray]:
    """One (mu, Sigma) draw from the semi-conjugate prior per scale C0 in c0 (m, D, D):
    mu ~ N(b0, B0), Sigma ~ IW(2 c0, 2 C0) (``bayesmix.kernels.semiconj``)."""
    m, d = c0.shape[0], c0.shape[1]
    hs = np.asarray(cfg.hs)
    shape, b0, bvar = hs[0], hs[3 : 3 + d], hs[3 + d : 3 + 2 * d]
    mu = b0 + np.sqrt(bvar) * rng.standard_normal((m, d))
    if cfg.fam != niw.FULL:
        idx = np.arange(d)
        cov = np.zeros((m, d, d))
        cov[:, idx, idx] = c0[:, idx, idx] / rng.gamma(shape, 1.0, size=(m, d))
        return mu, cov
    # Sigma^{-1} ~ W(2 c0, (2 C0)^{-1}) = R A A^T R^T with R R^T = (2 C0)^{-1} (Bartlett)
    a = np.zeros((m, d, d))
    for i in range(d):
        a[:, i, i] = np.sqrt(rng.chisquare(2.0 * shape - i, size=m))
        a[:, i, :i] = rng.standard_normal((m, i))
    r = np.linalg.cholesky(np.linalg.inv(2.0 * c0))
    ra = r @ a
    cov = np.linalg.inv(ra @ np.swapaxes(ra, 1, 2))
    return mu, 0.5 * (cov + np.swapaxes(cov, 1, 2))


def _fill_empty_slots(res: dict, rng: np.random.Generator, cfg: ChainConfig) -> None:
    """Telescoping: slots K.. of a draw carry no weight; give them prior parameters."""
    s, k, d = res["mu"].shape
    empty = np.argwhere(res["w"] == 0.0)
    if not empty.size:
        return
    if cfg.kern == semiconj.SEMI_CONJUGATE:
        mu, cov = _semi_prior_draws(rng, res["c0"][empty[:, 0]], cfg)
    else:
        mu, cov = _prior_draws(rng, len(empty), d, cfg)
    res["mu"][empty[:, 0], empty[:, 1]] = mu
    res["cov"][empty[:, 0], empty[:, 1]] = cov


def _pad(res: dict, k_out: int, rng: np.random.Generator, cfg: ChainConfig) -> None:
    s, k, d = res["mu"].shape
    if k == k_out:
        return
    extra = k_out - k
    psi0 = None
    if len(cfg.hyp) > 5:  # each draw's psi0, for each of its extra slots
        psi0 = np.repeat(res["state"][:, mixings.SCALE_SLOT], extra)
    mu, cov = _prior_draws(rng, s * extra, d, cfg, psi0)
    res["w"] = np.concatenate([res["w"], np.zeros((s, extra))], axis=1)
    res["mu"] = np.concatenate([res["mu"], mu.reshape(s, extra, d)], axis=1)
    res["cov"] = np.concatenate([res["cov"], cov.reshape(s, extra, d, d)], axis=1)


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def _run_pool(
    cfg: ChainConfig,
    x: np.ndarray,
    seeds: list[tuple[int, int]],
    state0: list[np.ndarray],
    progress: bool,
    workers: int,
    method: str,
) -> list[dict]:
    """Chains in worker threads (``method="threads"``: the nogil kernels run in parallel) or
    processes (a start method); Ctrl-C cancels the queued chains, and running threads stop at
    their next chunk of sweeps."""
    stop = None
    if method == "threads":
        stop = threading.Event()
        ex = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bayesmix-chain")
    else:
        ctx = mp.get_context(method)
        if method == "forkserver":
            ctx.set_forkserver_preload(["bayesmix.engines.gibbs.driver"])
        ex = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    warm = stop is None  # a fresh process loads the kernels; threads share the loaded ones
    try:
        futs = [
            ex.submit(_run_chain, cfg, x, c, seeds[c], state0[c], progress, warm, stop)
            for c in range(len(seeds))
        ]
        results = [f.result() for f in futs]
    except BaseException:
        if stop is not None:
            stop.set()
        ex.shutdown(wait=stop is not None, cancel_futures=True)
        raise
    ex.shutdown()
    return results


def _n_cpus() -> int | None:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _default_start_method() -> str:
    methods = mp.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


def chain_seeds(
    spec: ModelSpec, cfg: ChainConfig, seed: int, chains: int
) -> tuple[list[tuple[int, int]], list[np.random.Generator], list[np.ndarray]]:
    """Per chain: (numba chain seed, numba post-processing seed), a numpy Generator and the
    initial mixing state, from ``np.random.SeedSequence(seed).spawn(chains)``."""
    kids = np.random.SeedSequence(seed).spawn(chains)
    seeds, rngs, state0 = [], [], []
    for kid in kids:
        sub = kid.spawn(2)
        w = sub[0].generate_state(2)
        seeds.append((int(w[0]), int(w[1])))
        rng = np.random.default_rng(sub[1])
        rngs.append(rng)
        state0.append(mixings.initial_state(spec.mixing, rng))
        if len(cfg.hyp) > 5:
            state0[-1][mixings.SCALE_SLOT] = cfg.hyp[3]

    return seeds, rngs, state0


def trim_slots(cfg: ChainConfig, results: list[dict], rngs: list[np.random.Generator]) -> None:
    """Collapsed: pad every chain to the largest K; sub-cluster (unlabelled) and telescoping:
    keep the slots up to the largest K or K+ (and rest mass) drawn, prior parameters for the
    slots without weight."""
    if cfg.algorithm == "collapsed":
        k_out = max(r["w"].shape[1] for r in results)
        for r, rng in zip(results, rngs, strict=True):
            _pad(r, k_out, rng, cfg)
    elif cfg.algorithm == "subcluster" and not cfg.labelled:
        # the slots of the largest K (MFM) or K+ and its rest mass (DP, Pitman-Yor) drawn;
        # prior parameters for the slots without weight
        if cfg.kind == mixings.MFM:
            k_out = max(int(r["state"][:, mixings.K_SLOT].max()) for r in results)
        else:
            k_out = max(int(r["k"].max()) for r in results) + 1
        for r, rng in zip(results, rngs, strict=True):
            for key in ("w", "mu", "cov"):
                r[key] = np.ascontiguousarray(r[key][:, :k_out])
            _fill_empty_slots(r, rng, cfg)
    elif cfg.algorithm == "telescoping":
        # keep the slots up to the largest K drawn (K_max can be hundreds), then give the
        # empty ones prior parameters
        k_out = max(int(r["state"][:, mixings.K_SLOT].max()) for r in results)
        for r, rng in zip(results, rngs, strict=True):
            for key in ("w", "mu", "cov"):
                r[key] = np.ascontiguousarray(r[key][:, :k_out])
            _fill_empty_slots(r, rng, cfg)


def assemble_draws(
    spec: ModelSpec,
    cfg: ChainConfig,
    results: list[dict],
    *,
    algorithm: str,
    seed: int,
    seeds: list[tuple[int, int]],
    method: str,
    workers: int,
    n: int,
    d: int,
    compile_s: float,
    sampling_s: float,
) -> Draws:
    """The chains' outputs (``_run_chain``'s dicts, trimmed by ``trim_slots``) as Draws, with
    the engine facts in ``info``."""
    total = cfg.tune + cfg.draws * cfg.thin
    z_index = None
    if cfg.z_rows:
        z_index = even_rows(cfg.draws, cfg.z_rows)
        if cfg.algorithm == "collapsed":
            for r in results:
                r["z"] = r["z"][z_index]

    stack = lambda key: np.stack([r[key] for r in results])  # noqa: E731
    sample_stats = {"log_likelihood": stack("ll"), "n_occupied": stack("k")}
    params = mixings.parameters(spec.mixing, stack("state"))
    truncated = cfg.algorithm == "blocked" and spec.mixing.type in ("dp", "pitman_yor")
    info: dict[str, object] = {
        "algorithm": cfg.algorithm,
        "mixing": mixings.key(spec.mixing),
        "truncation": cfg.n_components if truncated else None,
        "k_max": cfg.n_components if spec.mixing.type == "mfm" else None,
        "kernel": {niw.FULL: "niw_full", niw.DIAG: "nig_diag", niw.SPHERICAL: "nig_spherical"}[
            cfg.fam
        ],
        "label_moves": cfg.label_moves
        and cfg.algorithm == "blocked"
        and cfg.kind in (mixings.DP, mixings.PITMAN_YOR),
        "split_merge_per_sweep": cfg.split_merge if cfg.algorithm in SM_ALGORITHMS else 0,
        "concentration_name": spec.mixing.concentration_name,
        "concentration_fixed": spec.mixing.concentration is not None,
        "seed": seed,
        "chain_seeds": seeds,
        "start_method": method,
        "workers": workers,
        "sweeps": total,
        "thin": cfg.thin,
        "chain_sweep_s": [r["sweep_s"] for r in results],
        "chain_sweep_cpu_s": [r["sweep_cpu_s"] for r in results],
        "chain_post_s": [r["post_s"] for r in results],
        "worker_load_s": [r["load_s"] for r in results],
        "sweeps_per_s": [total / r["sweep_s"] if r["sweep_s"] > 0 else math.nan for r in results],
    }
    if cfg.algorithm == "subcluster":
        info["threads_per_chain"] = cfg.threads
        info["capacity"] = None if cfg.labelled else subcluster_cap(cfg, n)
        if cfg.kind in (mixings.DP, mixings.PITMAN_YOR):
            info["slice_capacity_hits"] = [int(r["cap_hits"]) for r in results]
    if cfg.algorithm in SM_ALGORITHMS and cfg.split_merge > 0:
        moves = cfg.draws * cfg.thin * cfg.split_merge
        info["split_merge_accept_rate"] = [r["sm_accept"] / moves for r in results]
    if spec.mixing.concentration is None and cfg.kind != mixings.DP:  # updated by MH
        info["concentration_accept_rate"] = [r["accept"] for r in results]
        info["concentration_mh_step"] = [math.exp(r["log_step"]) for r in results]
    if "discount" in params:
        info["discount_accept_rate"] = [r["accept_discount"] for r in results]
    kernel_params = {}
    if len(cfg.hyp) > 5:  # the conjugate kernel's hierarchical scale (standardised scale)
        psi0 = stack("state")[..., mixings.SCALE_SLOT]
        nig = cfg.fam != niw.FULL
        kernel_params["b0" if nig else "psi0"] = 0.5 * psi0 if nig else psi0
    if cfg.kern == semiconj.SEMI_CONJUGATE:
        info["kernel"] = "semi_conjugate_" + ("diag" if cfg.fam != niw.FULL else "full")
        info["kernel_hyper"] = {
            key: list(val) for key, val in semiconj.unpack(np.asarray(cfg.hs), d).items()
        }
        if spec.kernel.scale == "hierarchical":
            kernel_params["C0"] = stack("c0")
    primary = spec.mixing.concentration_name
    return Draws(
        w=stack("w"),
        mu=stack("mu"),
        cov=stack("cov"),
        concentration=params.get(primary),
        params=params,
        engine={"blocked": Engine.GIBBS, "collapsed": Engine.COLLAPSED}.get(
            algorithm, Engine.SUBCLUSTER
        ),
        z=stack("z"),
        z_draws=z_index,
        kernel_params=kernel_params,
        sample_stats=sample_stats,
        timing={"compile_s": compile_s, "sampling_s": sampling_s},
        info=info,
    )


def sample_gibbs(
    spec: ModelSpec,
    x: np.ndarray,
    *,
    algorithm: str = "blocked",
    chains: int = 4,
    draws: int = 1000,
    tune: int = 1000,
    thin: int = 1,
    seed: int = 0,
    progress: bool = True,
    cores: int | None = None,
    start_method: str | None = None,
    label_moves: bool = True,
    split_merge: int = 1,
    executor: str = "threads",
    threads: int | None = None,
    z_draws: int | None = None,
) -> Draws:
    """Gibbs-sample a conjugate Gaussian mixture on standardised data ``x`` (N, D).

    ``algorithm="blocked"``: Ishwaran-James blocked Gibbs (DP truncated at
    ``mixing.n_components``, or finite Dirichlet); ``Draws.engine == "gibbs"``.
    ``algorithm="collapsed"``: Neal's algorithm 3 (untruncated DP, or finite Dirichlet);
    ``Draws.engine == "collapsed"``; K = max occupied clusters + 1 for the DP.
    ``tune`` sweeps are discarded, then ``draws * thin`` sweeps keep every ``thin``-th.
    Chains run in ``min(chains, cores)`` threads (``executor="threads"``, the default; cores
    defaults to the CPUs available) or worker processes (``executor="processes"``,
    ``start_method``: forkserver (default), spawn or fork; in-process when the job is so small
    that starting processes would cost more). The same ``seed`` gives identical draws whatever
    the executor and the number of workers.
    ``label_moves`` adds the label-switching MH moves to the blocked DP sweep, and
    ``split_merge`` sequentially-allocated split-merge moves (Dahl 2003) to every collapsed
    sweep (0 turns them off).  Both leave the posterior unchanged and make K+ and the
    concentration mix several times faster.
    ``algorithm="subcluster"``: the parallel sub-cluster sweep (``subcluster.py``); each
    chain's sweep runs in ``threads`` numba threads (default: the cores over the chains that
    run at once), and min(chains, cores // threads) chains run at once.
    ``z_draws``: keep z for only that many draws per chain (``storage.even_rows``; the
    blocked and telescoping kernels store only those, the collapsed one thins after its
    per-draw parameters); K+ stays in ``sample_stats["n_occupied"]`` for every draw.
    """
    xa = np.asarray(x, dtype=np.float64)
    if xa.ndim == 1:
        xa = xa[:, None]
    if xa.ndim != 2 or xa.shape[0] < 1 or xa.shape[1] < 1:
        raise InputError(f"data must be a non-empty (N, D) array, got shape {xa.shape}")
    if not np.all(np.isfinite(xa)):
        raise InputError("data contain NaN or infinite values")
    xa = np.ascontiguousarray(xa)
    n, d = xa.shape
    if not (isinstance(chains, int) and chains >= 1):
        raise InputError(f"chains must be a positive integer, got {chains!r}")
    if not (isinstance(split_merge, int) and split_merge >= 0):
        raise InputError(f"split_merge must be a non-negative integer, got {split_merge!r}")
    cfg = _config(spec, xa, algorithm, draws, tune, thin, label_moves, split_merge)
    if z_draws is not None and 0 < int(z_draws) < draws:
        cfg = dataclasses.replace(cfg, z_rows=int(z_draws))

    seeds, rngs, state0 = chain_seeds(spec, cfg, seed, chains)
    compile_s = _warmup(cfg, d)
    total = cfg.tune + cfg.draws * cfg.thin
    if executor not in EXECUTORS:
        raise InputError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if threads is not None and not (isinstance(threads, int) and threads >= 1):
        raise InputError(f"threads must be a positive integer, got {threads!r}")
    if cores is None:
        ncpu = _n_cpus()
        # small jobs finish in-process faster than worker processes start (~1-2 s)
        small = n * max(1.0, d * d / 2.0) * total * chains < _IN_PROCESS_WORK
        workers = 1 if small and executor == "processes" else min(chains, ncpu or 1)
    else:
        workers = min(chains, max(1, int(cores)))
    method = "threads" if executor == "threads" else (start_method or _default_start_method())
    if cfg.algorithm == "subcluster":  # the cores left to each concurrent chain's sweep
        ncores = int(cores) if cores is not None else (_n_cpus() or 1)
        if threads is not None:
            workers = max(1, min(chains, ncores // threads))
        cfg = dataclasses.replace(cfg, threads=threads or max(1, ncores // max(1, workers)))
    t0 = time.perf_counter()
    if workers <= 1:
        method = "in-process"
        results = [
            _run_chain(cfg, xa, c, seeds[c], state0[c], progress, False) for c in range(chains)
        ]
    else:
        results = _run_pool(cfg, xa, seeds, state0, progress, workers, method)
    trim_slots(cfg, results, rngs)
    sampling_s = time.perf_counter() - t0
    return assemble_draws(
        spec, cfg, results, algorithm=algorithm, seed=seed, seeds=seeds, method=method,
        workers=workers, n=n, d=d, compile_s=compile_s, sampling_s=sampling_s,
    )  # fmt: skip
