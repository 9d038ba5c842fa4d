"""fit(): data + spec -> engine -> DataTree + summary. The one pipeline every interface uses."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import xarray as xr

from bayesmix.data import Dataset, load_data
from bayesmix.engines.base import Draws
from bayesmix.errors import InputError
from bayesmix.io import write_datatree, write_json, write_text
from bayesmix.posterior.analysis import analyse, assignments_table
from bayesmix.posterior.assemble import build_datatree
from bayesmix.posterior.summary import summarize
from bayesmix.priors import prior_k_from_spec
from bayesmix.spec import ModelSpec, load_spec
from bayesmix.versions import versions


@dataclass
class FitResult:
    """A finished fit: the DataTree (data units), its summary, the data and the spec."""

    idata: xr.DataTree
    summary: dict
    data: Dataset
    spec: ModelSpec

    def save(self, out: str | Path) -> Path:
        """Write posterior.nc, summary.json and assignments.csv into ``out`` (atomically)."""
        out = Path(out)
        write_datatree(out / "posterior.nc", self.idata)
        write_json(out / "summary.json", self.summary)
        if "partition" in self.idata["allocations"]:
            table = assignments_table(self.idata)
            write_text(out / "assignments.csv", table.to_csv(index=False))
        return out


def resolve_engine(spec: ModelSpec, engine: str) -> str:
    """'auto' -> collapsed Gibbs for conjugate priors, NUTS otherwise."""
    if engine == "auto":
        return "collapsed" if spec.is_conjugate else "nuts"
    return engine


def run_engine(
    spec: ModelSpec,
    x,
    engine: str,
    *,
    sampler: str,
    chains: int,
    draws: int,
    tune: int,
    seed: int,
    progress: bool,
    cores: int | None = None,
) -> Draws:
    """Dispatch to the NUTS or Gibbs engine (standardised data in, standardised draws out)."""
    common = dict(chains=chains, draws=draws, tune=tune, seed=seed, progress=progress, cores=cores)
    if engine == "nuts":
        from bayesmix.engines.nuts import sample_nuts

        return sample_nuts(
            spec, x, sampler=sampler, target_accept=spec.sampler.target_accept, **common
        )
    if engine in ("gibbs", "collapsed"):
        from bayesmix.engines.gibbs import sample_gibbs

        algorithm = "blocked" if engine == "gibbs" else "collapsed"
        return sample_gibbs(spec, x, algorithm=algorithm, **common)
    raise InputError(f"unknown engine '{engine}' (choose auto, nuts, gibbs or collapsed)")


def fit(
    data: object,
    model: str | Path | ModelSpec = "dp",
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
) -> FitResult:
    """Fit a Gaussian mixture to ``data`` (path, DataFrame or array) with the named spec.

    Unset sampler options come from the spec's [sampler] table. ``analyse_clusters`` adds
    relabelling, the point partition and LOO (skip it for speed in simulation studies).
    """
    t0 = time.perf_counter()
    spec = model if isinstance(model, ModelSpec) else load_spec(model)
    dataset = data if isinstance(data, Dataset) else load_data(data, columns=columns, dropna=dropna)
    opts = spec.sampler
    engine_name = resolve_engine(spec, engine or opts.engine)
    seed = opts.seed if seed is None else int(seed)
    draws_obj = run_engine(
        spec,
        dataset.standardized,
        engine_name,
        sampler=sampler or opts.sampler,
        chains=chains or opts.chains,
        draws=draws or (opts.draws if engine_name == "nuts" else opts.gibbs_draws),
        tune=opts.tune if tune is None else tune,
        seed=seed,
        progress=progress,
        cores=cores,
    )
    dt = build_datatree(draws_obj, dataset, spec, seed, attrs={"command": command})
    summary = summarize(dt)
    if analyse_clusters:
        dt, extra = analyse(dt, seed=seed)
        summary.update(extra)
    total = time.perf_counter() - t0
    summary["timing"] = {
        "compile_s": round(draws_obj.timing.get("compile_s", 0.0), 3),
        "sampling_s": round(draws_obj.timing.get("sampling_s", 0.0), 3),
        "total_s": round(total, 3),
    }
    summary["prior_n_clusters"] = prior_k_from_spec(dataset.n_obs, spec).to_dict()
    summary["versions"] = versions()
    summary["command"] = command
    summary["data"]["notes"] = list(dataset.notes)
    summary["engine_info"] = {k: v for k, v in draws_obj.info.items() if _jsonable(v)}
    dt.attrs["versions"] = str(summary["versions"])
    return FitResult(dt, summary, dataset, spec)


def _jsonable(v: object) -> bool:
    return isinstance(v, (int, float, str, bool, list, dict, type(None)))
