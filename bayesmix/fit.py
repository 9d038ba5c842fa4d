"""fit(): data + spec -> engine -> DataTree + summary. The one pipeline every interface uses."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import xarray as xr

from bayesmix.classical import CACHE_NAME as CLASSICAL_NAME
from bayesmix.classical import em_selection, em_with_fitted
from bayesmix.data import Dataset, load_data
from bayesmix.engines.base import Draws
from bayesmix.engines.names import ENGINE_CHOICES, Engine
from bayesmix.errors import InputError
from bayesmix.io import StagedDir, check_output_dir, write_datatree, write_json, write_text
from bayesmix.posterior.analysis import analyse, assignments_table
from bayesmix.posterior.assemble import build_datatree
from bayesmix.posterior.counts import count_table
from bayesmix.posterior.kernel_check import choose_covariance, kernel_family_check
from bayesmix.posterior.storage import (
    MEMORY_ENV,
    StoragePlan,
    available_memory,
    describe_memory,
    fit_storage,
)
from bayesmix.posterior.summary import summarize
from bayesmix.priors import prior_k_from_spec, prior_k_skipped
from bayesmix.spec import DEFAULT_MODEL, ModelSpec, load_spec
from bayesmix.versions import versions

RUN_NAME = "run.json"
FIT_OUTPUTS = (
    "posterior.nc",
    "summary.json",
    "assignments.csv",
    CLASSICAL_NAME,
    RUN_NAME,
    "report.html",
    "report.md",
    "figures",
)
# engine facts that depend on the machine or the clock: kept out of summary.json, so that the
# same seed on the same data gives the same summary.json (and report) anywhere
MACHINE_DEPENDENT = (
    "start_method",
    "workers",
    "chain_sweep_s",
    "chain_sweep_cpu_s",
    "chain_post_s",
    "worker_load_s",
    "sweeps_per_s",
    "chain_method",  # the JAX backends': parallel (one CPU device per chain) or vectorized
)


@dataclass
class FitResult:
    """A finished fit: the DataTree (data units), its summary, the data and the spec."""

    idata: xr.DataTree
    summary: dict
    data: Dataset
    spec: ModelSpec
    classical: dict | None = None
    run: dict | None = None  # timing and machine-dependent facts (run.json): not in summary.json

    def save(self, out: str | Path, report: bool = False) -> Path:
        """Write posterior.nc, summary.json, assignments.csv, classical.json, run.json (and,
        with ``report``, report.html, report.md and figures/) into the directory ``out``.

        All or nothing: everything is written into a staging directory beside ``out``, which
        then replaces ``out`` in one step. Interrupted (Ctrl-C), the previous contents of
        ``out`` stay as they were; the KeyboardInterrupt raised says which state it left.
        """
        out = check_output_dir(out, "output directory")
        with StagedDir(out) as stage:
            stage.seed_from_target(skip=FIT_OUTPUTS)  # files of the user's own are kept
            self.write_files(stage.path)
            if report:
                from bayesmix.report import render_fit_report

                render_fit_report(stage.path, idata=self.idata)
        return out

    def _repr_html_(self) -> str:
        """Jupyter: the answer sentence, the K+ figure and the diagnostics light."""
        from bayesmix.notebook import fit_html

        return fit_html(self.summary)

    def write_files(self, out: Path) -> None:
        """The result files, each written atomically, into an existing directory."""
        write_datatree(out / "posterior.nc", self.idata)
        write_json(out / "summary.json", self.summary)
        if "partition" in self.idata["allocations"]:
            table = assignments_table(self.idata)
            write_text(out / "assignments.csv", table.to_csv(index=False))
        if self.classical is not None:
            write_json(out / CLASSICAL_NAME, self.classical)
        if self.run is not None:
            write_json(out / RUN_NAME, self.run)


SUBCLUSTER_AUTO_N = 20_000  # rows from which 'auto' picks the sub-cluster engine
LARGE_N_BUDGET = 1e8  # point-sweeps per chain of the sub-cluster engine's default run


def resolve_engine(spec: ModelSpec, engine: str | Engine, n_obs: int | None = None) -> Engine:
    """'auto' -> collapsed Gibbs for conjugate priors (the sub-cluster engine from
    SUBCLUSTER_AUTO_N rows on, for the mixings it serves; blocked Gibbs for a mixing the
    collapsed sampler cannot serve, should one be added), blocked or telescoping Gibbs for
    semi-conjugate ones, NUTS otherwise."""
    try:
        chosen = Engine.parse(engine)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if chosen is Engine.AUTO:
        if spec.kernel.prior == "semi_conjugate":  # blocked / telescoping Gibbs (or NUTS)
            return Engine.GIBBS
        if not spec.is_conjugate:
            return Engine.NUTS
        from bayesmix import mixings

        algorithms = mixings.info(spec.mixing).algorithms
        if n_obs is not None and n_obs >= SUBCLUSTER_AUTO_N and "subcluster" in algorithms:
            return Engine.SUBCLUSTER
        return Engine.COLLAPSED if "collapsed" in algorithms else Engine.GIBBS
    return chosen


def _sharded_engine(spec: ModelSpec, asked: str | Engine, chosen: Engine, data: object) -> Engine:
    """With a Dask scheduler: the sub-cluster engine ('auto' included) on a Parquet path."""
    from bayesmix import mixings

    if Engine.parse(asked) is Engine.AUTO and spec.is_conjugate:
        if "subcluster" in mixings.info(spec.mixing).algorithms:
            chosen = Engine.SUBCLUSTER
    if chosen is not Engine.SUBCLUSTER:
        raise InputError(
            f"--scheduler runs the sub-cluster engine over data shards; the engine here is "
            f"{chosen.value} (use --engine subcluster, a conjugate kernel and a dp, finite or "
            "static mfm mixing)"
        )
    if not isinstance(data, (str, Path)):
        raise InputError("--scheduler needs a Parquet file or directory that the workers read")
    return chosen


def large_n_sweeps(engine: Engine, n_obs: int, draws: int, tune: int) -> tuple[int, int]:
    """(draws, tune) for the sub-cluster engine when the user set neither: a budget of about
    LARGE_N_BUDGET point-sweeps per chain, so that a chain's sweeps cost about the same at any
    N (at least 200 draws and 100 tuning sweeps; the spec's values when smaller)."""
    if engine is not Engine.SUBCLUSTER:
        return draws, tune
    scaled = max(200, int(LARGE_N_BUDGET / max(1, n_obs)))
    return min(draws, scaled), min(tune, max(100, scaled // 4))


def run_engine(
    spec: ModelSpec,
    x,
    engine: Engine,
    *,
    sampler: str,
    chains: int,
    draws: int,
    tune: int,
    seed: int,
    progress: bool,
    cores: int | None = None,
    thin: int = 1,
    z_draws: int | None = None,
) -> Draws:
    """Dispatch to the NUTS or Gibbs engine (standardised data in, standardised draws out);
    ``thin`` and ``z_draws`` (z kept for that many draws per chain) apply to the Gibbs
    engines."""
    common = dict(chains=chains, draws=draws, tune=tune, seed=seed, progress=progress, cores=cores)
    if engine is Engine.NUTS:
        from bayesmix.engines.nuts import sample_nuts

        return sample_nuts(
            spec, x, sampler=sampler, target_accept=spec.sampler.target_accept, **common
        )
    if engine.is_gibbs:
        from bayesmix.engines.gibbs import sample_gibbs

        algorithm = {Engine.GIBBS: "blocked", Engine.SUBCLUSTER: "subcluster"}.get(
            engine, "collapsed"
        )
        return sample_gibbs(spec, x, algorithm=algorithm, thin=thin, z_draws=z_draws, **common)
    raise InputError(f"unknown engine '{engine}' (choose {', '.join(ENGINE_CHOICES)})")


def fit(
    data: object,
    model: str | Path | ModelSpec = DEFAULT_MODEL,
    *,
    engine: str | None = None,
    sampler: str | None = None,
    chains: int | None = None,
    draws: int | None = None,
    tune: int | None = None,
    seed: int | None = None,
    columns: list[str] | None = None,
    dropna: bool = False,
    progress: bool = True,
    cores: int | None = None,
    command: str = "",
    analyse_clusters: bool = True,
    classical: bool = True,
    scheduler: str | None = None,
    workers: int | None = None,
) -> FitResult:
    """Fit a Gaussian mixture to ``data`` (path, DataFrame or array) with the named spec.

    Unset sampler options come from the spec's [sampler] table. ``analyse_clusters`` adds
    the identified clusters, the point partition and LOO (skip it for speed in simulation
    studies); ``classical`` adds EM + BIC/AIC per covariance family, the kernel-family check
    and the reconciled count table (needs ``analyse_clusters``).
    ``scheduler`` ("local" or a Dask scheduler address): the sub-cluster engine over data
    shards (``engines/sharded.py``) on a Parquet file or directory, whose partitions the Dask
    workers (``workers`` of them for "local") read and keep; the posterior analysis here still
    reads the data in this process.
    """
    t0 = time.perf_counter()
    if scheduler is not None:
        from bayesmix.executor import check_scheduler

        check_scheduler(scheduler)
    spec = model if isinstance(model, ModelSpec) else load_spec(model)
    dataset = data if isinstance(data, Dataset) else load_data(data, columns=columns, dropna=dropna)
    em_screen, kernel_choice = None, None
    if spec.kernel.covariance == "auto":
        spec, em_screen, kernel_choice = resolve_covariance(spec, dataset)
    opts = spec.sampler
    engine_name = resolve_engine(spec, engine or opts.engine, dataset.n_obs)
    if scheduler is not None:
        engine_name = _sharded_engine(spec, engine or opts.engine, engine_name, data)
    if engine_name is Engine.NUTS:  # a missing JAX backend: one line before any work
        from bayesmix.engines.nuts import check_sampler

        check_sampler(sampler or opts.sampler)
    seed = opts.seed if seed is None else int(seed)
    n_chains = chains or opts.chains
    n_draws = draws or (opts.draws if engine_name is Engine.NUTS else opts.gibbs_draws)
    n_tune = opts.tune if tune is None else tune
    if draws is None and tune is None:
        n_draws, n_tune = large_n_sweeps(engine_name, dataset.n_obs, n_draws, n_tune)
        if progress and (n_draws, n_tune) != (opts.gibbs_draws, opts.tune):
            print(
                f"note: {n_draws} draws after {n_tune} tuning sweeps per chain for "
                f"N = {dataset.n_obs:,} (--draws, --tune to change)",
                file=sys.stderr,
            )
    plan, memory = storage_for(dataset, spec, engine_name, n_chains, n_draws)
    if memory.get("note") and progress:
        print(f"note: {memory['note']}", file=sys.stderr)
    if scheduler is not None:
        from bayesmix.engines.sharded import sample_sharded

        draws_obj = sample_sharded(
            spec,
            data,  # type: ignore[arg-type]
            scheduler=scheduler,
            workers=workers,
            columns=dataset.columns,
            dropna=dropna,
            center=dataset.center,
            scale=dataset.scale,
            expect_rows=dataset.n_obs,
            chains=n_chains,
            draws=n_draws,
            tune=n_tune,
            thin=opts.gibbs_thin,
            seed=seed,
            progress=progress,
            z_draws=plan.z_draws if plan.z_thinned else None,
        )
    else:
        draws_obj = run_engine(
            spec,
            dataset.standardized,
            engine_name,
            sampler=sampler or opts.sampler,
            chains=n_chains,
            draws=n_draws,
            tune=n_tune,
            seed=seed,
            progress=progress,
            cores=cores,
            thin=opts.gibbs_thin,
            z_draws=plan.z_draws if plan.z_thinned else None,
        )
    stages: dict[str, float] = {}
    t_stage = time.perf_counter()
    dt = build_datatree(draws_obj, dataset, spec, seed, attrs={"command": command}, plan=plan)
    t_stage = _stage(stages, "assemble_s", t_stage)
    summary = summarize(dt, engine_info=draws_obj.info)
    t_stage = _stage(stages, "summary_s", t_stage)
    summary["storage"] = plan.to_dict() | {"memory": memory}
    em = None
    if analyse_clusters:
        dt, extra = analyse(dt, seed=seed, tied=summary["n_clusters"]["tied_with_mode"])
        summary.update(extra)
        t_stage = _stage(stages, "analysis_s", t_stage)
        if classical:
            em = classical_checks(summary, dataset, spec, em_screen)
            t_stage = _stage(stages, "classical_s", t_stage)
        summary["counts"] = count_table(summary)
    total = time.perf_counter() - t0
    info = {k: v for k, v in draws_obj.info.items() if _jsonable(v)}
    run = {
        "timing": {
            "compile_s": round(draws_obj.timing.get("compile_s", 0.0), 3),
            "sampling_s": round(draws_obj.timing.get("sampling_s", 0.0), 3),
            "total_s": round(total, 3),
        },
        "engine": {k: info.pop(k) for k in MACHINE_DEPENDENT if k in info},
        "cpus": os.cpu_count(),
    }
    skipped = prior_k_skipped(dataset.n_obs, spec)
    if skipped:
        summary["prior_n_clusters"] = None
        summary["prior_n_clusters_note"] = skipped
    else:
        summary["prior_n_clusters"] = prior_k_from_spec(dataset.n_obs, spec).to_dict()
    _stage(stages, "prior_k_s", t_stage)
    run["timing"]["stages"] = stages
    run["timing"]["total_s"] = round(time.perf_counter() - t0, 3)
    summary["versions"] = versions()
    summary["command"] = command
    summary["data"]["notes"] = list(dataset.notes)
    summary["engine_info"] = info
    if kernel_choice is not None:
        summary["kernel_choice"] = kernel_choice
    dt.attrs["versions"] = str(summary["versions"])
    return FitResult(dt, summary, dataset, spec, em, run)


def storage_for(
    dataset: Dataset, spec: ModelSpec, engine: Engine, chains: int, draws: int
) -> tuple[StoragePlan, dict]:
    """The storage plan (``posterior/storage.py``) and the memory estimate, checked against
    the memory available (``BAYESMIX_MEMORY_LIMIT`` or MemAvailable) before sampling: z and
    the pointwise log-likelihood are thinned to fit (``memory["note"]`` says so), and when
    even that cannot fit, an InputError names the options that shrink the fit.

    The estimate has no machine-dependent part, except ``limit`` and ``source``, which are
    therefore kept out of the returned dict (and so of summary.json) unless thinning was
    needed."""
    n, d = dataset.n_obs, dataset.n_features
    k = max(1, int(spec.mixing.n_components or 20))
    if engine is Engine.SUBCLUSTER and spec.mixing.type == "dp":  # its atoms + the rest mass
        from bayesmix.engines.gibbs.driver import SUBCLUSTER_CAP

        k = SUBCLUSTER_CAP + 1
    native = engine.is_gibbs and engine is not Engine.COLLAPSED
    limit, source = available_memory()
    plan, est = fit_storage(n, d, k, chains, draws, native_z=native, limit=limit)
    out = {
        "estimate_bytes": int(est["total"]),
        "formula": "data + params + z + loglik + analysis + base (storage.memory_estimate)",
    }
    if not est["fits"]:
        raise InputError(
            f"this fit needs about {describe_memory(est)} of memory, more than the "
            f"{limit / 1024**3:.2f} GB available ({source}), even with z and the pointwise "
            f"log-likelihood thinned to one draw per chain; use fewer draws (--draws, now "
            f"{draws}) or chains (--chains, now {chains}), fewer components "
            f"({_size_key(spec)} = {k}), "
            + ("" if native else "--engine gibbs (it stores only the kept draws' z), ")
            + f"or set {MEMORY_ENV} if more memory is free"
        )
    if plan.reason:
        out["note"] = plan.reason + f" ({source})"
        out["limit_bytes"] = int(limit)
    return plan, out


def resolve_covariance(spec: ModelSpec, dataset: Dataset) -> tuple[ModelSpec, dict | None, dict]:
    """``kernel.covariance = "auto"`` -> the family ``choose_covariance`` picks (EM + BIC across
    families, on the data before sampling); returns the resolved spec, the EM result (reused
    by the classical panel) and the record of the choice."""
    if dataset.n_features == 1:
        choice = {"criterion": "1-D data: the covariance families coincide", "covariance": "full"}
        em = None
    else:
        em = em_selection(dataset.values)
        choice = choose_covariance(em)
    kernel = dataclasses.replace(spec.kernel, covariance=choice["covariance"])
    return dataclasses.replace(spec, kernel=kernel), em, choice


def classical_checks(
    summary: dict, dataset: Dataset, spec: ModelSpec, em: dict | None = None
) -> dict:
    """EM + BIC/AIC for every covariance family and the kernel-family check, added to
    ``summary``; returns the full EM result (saved as classical.json). ``em``: an
    ``em_selection`` result already computed on these data (``resolve_covariance``)."""
    family = spec.kernel.covariance if dataset.n_features > 1 else "full"
    if em is None:
        em = em_selection(dataset.values, fitted=family)
    else:
        em = em_with_fitted(em, family)
    em["data_sha256"] = dataset.sha256
    summary["classical"] = {
        "fitted_family": em["fitted_family"],
        "families": {
            f: {k: v[k] for k in ("k", "bic", "aic", "best_bic", "best_aic")}
            for f, v in em["families"].items()
        },
    }
    check = kernel_family_check(em, em["fitted_family"], summary["n_clusters"]["mode"])
    summary["diagnostics"]["kernel_family"] = check
    if check.get("warning"):
        summary["diagnostics"]["warnings"].append(check["warning"])
    return em


def _size_key(spec: ModelSpec) -> str:
    """The spec key that sets the number of components (truncation, K or k_max)."""
    t = spec.mixing.type
    return (
        "mixing.truncation"
        if t in ("dp", "pitman_yor")
        else ("mixing.k_max" if t == "mfm" else "mixing.K")
    )


def _stage(stages: dict[str, float], name: str, since: float) -> float:
    """Record the seconds since ``since`` as ``stages[name]``; returns now."""
    now = time.perf_counter()
    stages[name] = round(now - since, 3)
    return now


def _jsonable(v: object) -> bool:
    return isinstance(v, (int, float, str, bool, list, dict, type(None)))
