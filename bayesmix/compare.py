"""Compare mixture priors on one data set: fit every spec, then put side by side

* the prior of K+ (exact, :mod:`bayesmix.priors`, n = number of rows) and its posterior;
* the posterior of the concentration (alpha | gamma), or "fixed = v";
* PSIS-LOO elpd (ArviZ ``loo`` / ``compare``) with Pareto-k warnings;
* the power-scaling sensitivity (Kallioinen et al. 2024, ArviZ ``psense``) of K+ and the
  total log-likelihood to the concentration's prior: the posterior is reweighted by
  p(alpha)^(c - 1) for c in (0.99, 1.01) and the change measured (CJS distance per unit
  log c); above 0.05 the quantity is called prior-sensitive;
* for truncated DPs, the 99% quantile of the leftover stick mass w_T.

The fits are independent, so they run in parallel ("spawn") processes, or on a Dask cluster,
through :mod:`bayesmix.executor`. ``run_compare`` does
everything and writes ``compare.json``, ``compare.md`` and two PNG figures.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from bayesmix.data import Dataset, load_data
from bayesmix.errors import InputError
from bayesmix.executor import Executor
from bayesmix.kernels.describe import describe_kernel
from bayesmix.spec import MODELS_DIR, ModelSpec, load_spec

LEVEL = 0.9
PARETO_K_WARN = 0.7
PSENSE_THRESHOLD = 0.05
LEFTOVER_WARN = 0.01
PRIOR_CLOSE_TV = 0.3  # posterior of K+ within this total variation of its prior: prior-driven
ELPD_SMALL = 4.0  # |elpd_diff| below this is small (ArviZ compare's diag_diff)
DEFAULT_DIR = MODELS_DIR / "compare_default"
SCHEMA = "bayesmix.compare/1"
FIGURES = {
    "prior_vs_posterior_k": "prior_vs_posterior_k.png",
    "concentration": "concentration.png",
}


# --------------------------------------------------------------------------
# Specs and options
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class CompareOptions:
    """Sampler settings shared by every fit (None: each spec's own [sampler] default)."""

    engine: str | None = None
    sampler: str | None = None
    chains: int | None = None
    draws: int | None = None
    tune: int | None = None
    seed: int | None = None
    jobs: int | None = None
    scheduler: str | None = None  # None: local processes; "local" / an address: Dask
    progress: bool = True
    command: str = ""


def default_spec_paths() -> list[Path]:
    """The TOML specs of the default comparison (models/compare_default/*.toml), sorted."""
    return sorted(DEFAULT_DIR.glob("*.toml"))


def load_specs(models: Sequence[str | Path | ModelSpec] | None) -> list[ModelSpec]:
    """Specs by name, path, folder of TOML files (``models/compare_kernel``, or a shipped folder
    by name such as ``compare_kernel``) or object (none: the default comparison); names must
    be unique."""
    items: list = []
    for m in list(models) if models else default_spec_paths():
        folder = Path(m) if isinstance(m, (str, Path)) else None
        if folder is not None and not folder.is_dir() and (MODELS_DIR / folder).is_dir():
            folder = MODELS_DIR / folder
        if folder is not None and folder.is_dir():
            found = sorted(folder.glob("*.toml"))
            if not found:
                raise InputError(f"{m}: no model specs (*.toml) in this folder")
            items += found
        else:
            items.append(m)
    if not items:
        raise InputError(f"no model specs found in {DEFAULT_DIR}")
    specs = [m if isinstance(m, ModelSpec) else load_spec(m) for m in items]
    seen: dict[str, str] = {}
    for spec in specs:
        key = fit_dir_name(spec.name)
        if key in seen:
            raise InputError(
                f"two models share the name '{spec.name}' ({seen[key]} and {spec.source}); "
                "give each spec a distinct 'name'"
            )
        seen[key] = spec.source or spec.name
    return specs


def fit_dir_name(name: str) -> str:
    """A file-system-safe directory name for a spec name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "model"


def cpu_count() -> int:
    """CPUs this process may run on."""
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, ncpu or 1)


def n_workers(jobs: int | None, n_specs: int) -> int:
    """min(jobs or number of CPUs, number of specs), at least 1."""
    return max(1, min(jobs or cpu_count(), n_specs))


# --------------------------------------------------------------------------
# Parallel fits
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class FitTask:
    """One fit, sent to a worker process (everything picklable)."""

    spec: ModelSpec
    data: Dataset
    out_dir: str
    options: CompareOptions
    cores: int
    progress: bool


@dataclass
class FitOutcome:
    """What a worker sends back: where the fit was saved and its summary."""

    name: str
    fit_dir: str
    summary: dict
    seconds: float


def fit_one(task: FitTask) -> FitOutcome:
    """Fit one spec and save posterior.nc + summary.json under ``task.out_dir``."""
    from bayesmix.fit import fit

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    t0 = time.perf_counter()
    o = task.options
    result = fit(
        task.data,
        task.spec,
        engine=o.engine,
        sampler=o.sampler,
        chains=o.chains,
        draws=o.draws,
        tune=o.tune,
        seed=o.seed,
        progress=task.progress,
        cores=task.cores,
        command=o.command,
    )
    result.save(task.out_dir)
    return FitOutcome(task.spec.name, task.out_dir, result.summary, time.perf_counter() - t0)


def _log(msg: str, verbose: bool) -> None:
    if verbose:
        print(msg, file=sys.stderr, flush=True)


def run_fits(
    data: Dataset, specs: Sequence[ModelSpec], out: Path, options: CompareOptions
) -> list[FitOutcome]:
    """Fit every spec on the same data, in at most ``options.jobs`` spawned processes (or on
    a Dask cluster, ``options.scheduler``), through ``bayesmix.executor``.

    Each fit gets max(1, CPUs // workers) cores for its own chains. Progress bars are shown
    only when the fits run one after another in this process. Results come back in the
    order of ``specs``.
    """
    jobs = n_workers(options.jobs, len(specs))
    cores = max(1, cpu_count() // jobs)
    progress = options.progress and jobs == 1
    tasks = [
        FitTask(s, data, str(out / "fits" / fit_dir_name(s.name)), options, cores, progress)
        for s in specs
    ]
    verbose = options.progress
    _log(f"fitting {len(tasks)} models ({jobs} in parallel)", verbose)
    done: dict[str, FitOutcome] = {}
    # in-process (jobs = 1) fits keep their BLAS threads, as before the executor
    with Executor(jobs, options.scheduler, single_thread=False) as ex:
        for outcome in ex.map(fit_one, [(t.spec.name, (t,)) for t in tasks]):
            done[outcome.key] = _checked(outcome.result, outcome.key, verbose)
    return [done[t.spec.name] for t in tasks]


def _checked(call: Callable[[], FitOutcome], name: str, verbose: bool) -> FitOutcome:
    """Run ``call``; an InputError names the model it came from."""
    try:
        outcome = call()
    except InputError as exc:
        raise InputError(f"model '{name}': {exc}") from None
    _log(f"  {outcome.name}: done in {outcome.seconds:.1f} s", verbose)
    return outcome


# --------------------------------------------------------------------------
# Per-model numbers
# --------------------------------------------------------------------------


def load_fit(fit_dir: str | Path) -> xr.DataTree:
    """The saved DataTree of a fit, read fully into memory."""
    return xr.load_datatree(Path(fit_dir) / "posterior.nc", engine="h5netcdf")


def k_summary(pmf: dict[str, float], level: float = LEVEL) -> dict[str, Any]:
    """mean, mode (smallest on ties) and smallest credible set of a pmf {k: p} of K+."""
    k = np.array([int(j) for j in pmf])
    p = np.array([float(v) for v in pmf.values()])
    order = np.lexsort((k, -p))
    count = int(np.searchsorted(np.cumsum(p[order]), level - 1e-12)) + 1
    return {
        "pmf": {str(int(a)): float(b) for a, b in sorted(zip(k, p, strict=True))},
        "mean": float(np.dot(k, p)),
        "mode": int(k[order[0]]),
        f"credible_set_{round(100 * level)}": sorted(int(j) for j in k[order[:count]]),
    }


def prior_k_entry(n: int, spec: ModelSpec, summary: dict | None = None) -> dict[str, Any]:
    """Prior of K+ for n observations (from the fit's summary when it holds it)."""
    from bayesmix.priors import prior_k_from_spec, prior_k_skipped

    stored = (summary or {}).get("prior_n_clusters")
    if not stored and prior_k_skipped(n, spec):  # hours of exact recursion: say so instead
        raise InputError(prior_k_skipped(n, spec))
    d = stored if stored else prior_k_from_spec(n, spec).to_dict()
    return k_summary(d["pmf"]) | {"description": d.get("description", "")}


def posterior_k_entry(summary: dict) -> dict[str, Any]:
    """Posterior of K+ (pmf of the allocation draws' number of occupied clusters)."""
    return k_summary(summary["n_clusters"]["pmf"])


def components_entry(source: dict, key: str) -> dict[str, Any] | None:
    """The pmf of K, the number of components of an MFM (None for other mixings)."""
    pmf = source.get(key)
    return k_summary(pmf) if pmf else None


def concentration_entry(spec: ModelSpec, summary: dict) -> dict[str, Any]:
    """Fixed value, or the Gamma(shape, rate) prior and the posterior mean and 90% interval."""
    from scipy import stats

    m = spec.mixing
    name = m.concentration_name
    if m.concentration is not None:
        return {
            "name": name,
            "fixed": float(m.concentration),
            "text": f"fixed = {m.concentration:g}",
        }
    from bayesmix.spec import FPrior

    cp = m.concentration_prior
    post = summary.get("concentration") or {}
    lo, hi = post.get("interval_90", [math.nan, math.nan])
    if isinstance(cp, FPrior):
        prior, desc = stats.f(cp.df1, cp.df2), {"family": "F", "df1": cp.df1, "df2": cp.df2}
    else:
        prior, desc = (
            stats.gamma(a=cp.shape, scale=1.0 / cp.rate),
            {"shape": cp.shape, "rate": cp.rate},
        )
    # Pitman-Yor: the prior is on strength + discount
    shift = (m.discount or 0.0) if m.type == "pitman_yor" else 0.0
    return {
        "name": name,
        "fixed": None,
        "prior": desc
        | {
            "mean": float(prior.mean()) - shift,
            "interval_90": [float(prior.ppf(0.05)) - shift, float(prior.ppf(0.95)) - shift],
        },
        "posterior": {"mean": post.get("mean"), "interval_90": [lo, hi]},
        "text": f"{post.get('mean', math.nan):.3g} [{lo:.3g}, {hi:.3g}]",
    }


def truncation_entry(spec: ModelSpec, summary: dict) -> dict[str, Any]:
    """Leftover stick mass w_T of a truncated DP; warns when its 99% quantile exceeds 0.01."""
    if spec.mixing.type not in ("dp", "pitman_yor"):
        return {
            "applies": False,
            "text": "n/a (MFM)" if spec.mixing.type == "mfm" else "n/a (finite)",
        }
    if not summary.get("truncation"):  # summarize() writes it for truncated fits only
        return {"applies": False, "text": "n/a (untruncated)"}
    t = summary["truncation"]
    q99 = float(t["leftover_mass_q99"])
    warn = q99 > LEFTOVER_WARN
    entry = {
        "applies": True,
        "T": int(t["T"]),
        "leftover_mass_q99": q99,
        "warning": None,
        "text": f"{q99:.2g}" + (" (!)" if warn else ""),
    }
    if warn:
        entry["warning"] = (
            f"{spec.name}: the last stick (T = {t['T']}) holds up to "
            f"{q99:.3f} of the weight (99% quantile > {LEFTOVER_WARN}); refit with a larger "
            "truncation (mixing.truncation) or the collapsed engine"
        )
    return entry


def loo_entry(idata: xr.DataTree) -> tuple[Any, dict[str, Any]]:
    """PSIS-LOO (ArviZ) on the pointwise log-likelihood x: (ELPDData, JSON-ready numbers)."""
    import arviz as az

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        elpd = az.loo(idata, var_name="x")
    k = np.asarray(elpd.pareto_k, dtype=float).ravel()
    n_high = int(np.sum(k > PARETO_K_WARN))
    return elpd, {
        "elpd_loo": float(elpd.elpd),
        "se": float(elpd.se),
        "p_loo": float(elpd.p),
        "n_pareto_k_above_0_7": n_high,
        "pareto_k_good_threshold": float(elpd.good_k),
        "n_pareto_k_above_good": int(np.sum(k > elpd.good_k)),
        "max_pareto_k": float(np.nanmax(k)) if k.size else None,
        "arviz_warnings": sorted({str(w.message).splitlines()[0] for w in caught}),
    }


def loo_ranking(elpds: dict[str, Any]) -> list[dict[str, Any]]:
    """``az.compare`` (stacking weights; elpd_diff and dse relative to the best), best first."""
    import arviz as az

    if len(elpds) == 1:
        ((name, e),) = elpds.items()
        return [
            {
                "name": name,
                "rank": 0,
                "elpd_diff": 0.0,
                "dse": 0.0,
                "p_worse": None,
                "weight": 1.0,
                "diag_diff": "",
                "diag_elpd": "",
                "elpd": float(e.elpd),
            }
        ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = az.compare(elpds, round_to="none")
    rows = []
    for name, r in df.iterrows():
        rows.append(
            {
                "name": str(name),
                "rank": int(r["rank"]),
                "elpd": _num(r["elpd"]),
                "elpd_diff": _num(r["elpd_diff"]),
                "dse": _num(r["dse"]),
                "p_worse": _num(r.get("p_worse")),
                "weight": _num(r["weight"]),
                "diag_diff": str(r.get("diag_diff", "")),
                "diag_elpd": str(r.get("diag_elpd", "")),
            }
        )
    return rows


def _num(x: Any) -> float | None:
    """float, or None for missing / NaN (JSON has no NaN)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def sensitivity_tree(idata: xr.DataTree, conc_name: str) -> xr.DataTree:
    """A small DataTree for psense: posterior (n_clusters, log_lik_total, concentration),
    log_prior (the mixing parameters' log prior densities: the concentration, and the
    Pitman-Yor discount when random) and log_likelihood (pointwise x)."""
    post = xr.Dataset(
        {
            "n_clusters": idata["allocations"]["n_clusters"].astype(float),
            "log_lik_total": idata["sample_stats"]["log_likelihood"],
            conc_name: idata["posterior"][conc_name],
        }
    )
    return xr.DataTree.from_dict(
        {
            "posterior": post,
            "log_prior": idata["log_prior"].to_dataset(),  # every random mixing parameter
            "log_likelihood": idata["log_likelihood"].to_dataset()[["x"]],
        }
    )


def _diagnosis(prior: float | None, likelihood: float | None) -> str:
    """ArviZ psense_summary's wording for one quantity."""
    if prior is None or prior <= PSENSE_THRESHOLD:
        return "ok"
    if likelihood is not None and likelihood > PSENSE_THRESHOLD:
        return "potential prior-data conflict"
    return "potential strong prior / weak likelihood"


def psense_entry(idata: xr.DataTree, spec: ModelSpec) -> dict[str, Any]:
    """Power-scaling sensitivity of K+ and the total log-likelihood to the concentration prior.

    ArviZ ``psense(group="prior")`` scales only the log_prior group (the concentration's
    Gamma density; the kernel prior is not part of it). ``group="likelihood"`` is added for
    ArviZ's diagnosis wording. Flags "prior-sensitive" above 0.05 for K+ or log-likelihood.
    """
    name = spec.mixing.concentration_name
    if spec.mixing.concentration is not None or "log_prior" not in idata.children:
        return {"applies": False, "text": "n/a (fixed)", "prior_sensitive": None}
    import arviz as az

    tree = sensitivity_tree(idata, name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prior = az.psense(tree, group="prior")
        lik = az.psense(tree, group="likelihood")
    quantities = {}
    for var, label in (("n_clusters", "K+"), ("log_lik_total", "log_likelihood"), (name, name)):
        p, q = _num(prior[var].values), _num(lik[var].values)
        quantities[label] = {"prior": p, "likelihood": q, "diagnosis": _diagnosis(p, q)}
    flagged = [
        q for q in ("K+", "log_likelihood") if (quantities[q]["prior"] or 0.0) > PSENSE_THRESHOLD
    ]
    k_val, ll_val = quantities["K+"]["prior"], quantities["log_likelihood"]["prior"]
    text = f"K+ {_fmt(k_val, 2)}, loglik {_fmt(ll_val, 2)}" + (
        "; prior-sensitive" if flagged else ""
    )
    return {
        "applies": True,
        "threshold": PSENSE_THRESHOLD,
        "scaled_prior": "log_prior/" + "+".join(idata["log_prior"].data_vars),
        "quantities": quantities,
        "prior_sensitive": bool(flagged),
        "prior_sensitive_quantities": flagged,
        "text": text,
        "arviz_warnings": sorted({str(w.message).splitlines()[0] for w in caught}),
    }


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def model_entry(outcome: FitOutcome, spec: ModelSpec, idata: xr.DataTree, n: int) -> dict:
    """Every per-model number of the comparison (LOO added later by ``analyse``)."""
    s = outcome.summary
    d = s.get("diagnostics", {})
    prior_k, posterior_k = prior_k_entry(n, spec, s), posterior_k_entry(s)
    return {
        "name": spec.name,
        "description": spec.description,
        "source": spec.source,
        "mixing": dataclasses.asdict(spec.mixing),
        "kernel": dataclasses.asdict(spec.kernel),
        "kernel_prior": describe_kernel(
            spec.kernel, int((s.get("data") or {}).get("n_features", 1))
        ),
        "engine": s.get("engine"),
        "fit_dir": f"fits/{Path(outcome.fit_dir).name}",
        "prior_k": prior_k,
        "posterior_k": posterior_k,
        "prior_components": components_entry(s.get("prior_n_clusters") or {}, "pmf_components"),
        "posterior_components": components_entry(s.get("n_components") or {}, "pmf"),
        "prior_posterior_tv": total_variation(prior_k["pmf"], posterior_k["pmf"]),
        "concentration": concentration_entry(spec, s),
        "psense": psense_entry(idata, spec),
        "truncation": truncation_entry(spec, s),
        "diagnostics": {
            key: d.get(key) for key in ("max_r_hat", "min_ess_bulk", "divergences", "warnings")
        },
        "sampling": s.get("sampling"),
        "seed": s.get("seed"),
        "timing_s": round(outcome.seconds, 3),
    }


# --------------------------------------------------------------------------
# Reading and warnings
# --------------------------------------------------------------------------


def _names(models: list[dict], pred) -> list[str]:
    return [m["name"] for m in models if pred(m)]


def _join(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def total_variation(p: dict[str, float], q: dict[str, float]) -> float:
    """TV distance (1/2) sum_k |p_k - q_k| between two pmfs of K+ ({k: p})."""
    keys = set(p) | set(q)
    return 0.5 * float(sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys))


def varied_prior(models: list[dict]) -> str:
    """What the compared specs vary: "kernel prior" (same mixing, different kernels), "mixing
    prior" (the converse) or "prior" (both, or unknown)."""

    def distinct(key: str) -> int:
        return len({json.dumps(m.get(key), sort_keys=True, default=str) for m in models})

    if len(models) > 1 and all("kernel" in m and "mixing" in m for m in models):
        if distinct("kernel") > 1 and distinct("mixing") == 1:
            return "kernel prior"
        if distinct("mixing") > 1 and distinct("kernel") == 1:
            return "mixing prior"
    return "prior"


def _mode_sentence(models: list[dict]) -> str:
    """Where the posterior modes of K+ agree, or how they split by prior (naming the kernel
    or the mixing prior when only one of them varies)."""
    by_mode: dict[int, list[str]] = {}
    for m in models:
        by_mode.setdefault(m["posterior_k"]["mode"], []).append(m["name"])
    what = varied_prior(models)
    if len(by_mode) == 1:
        who = f"Every {what} puts" if len(models) > 1 else "The prior puts"
        return f"{who} the posterior mode of K+ at {next(iter(by_mode))}"
    parts = [f"{k} ({', '.join(names)})" for k, names in sorted(by_mode.items())]
    return f"The posterior mode of K+ depends on the {what}: {'; '.join(parts)}"


def _set_sentence(models: list[dict]) -> str:
    """What every 90% credible set of K+ shares (or excludes)."""
    sets = [set(m["posterior_k"]["credible_set_90"]) for m in models]
    common = sorted(set.intersection(*sets))
    lowest = min(min(s) for s in sets)
    if len(models) == 1:
        text = f"the 90% credible set is {_set(sorted(sets[0]))}"
    elif common:
        text = f"every 90% credible set contains {_set(common)}"
    else:
        text = "the 90% credible sets of K+ have no value in common"
    if lowest > 1 and len(models) > 1:
        text += f", and every one excludes K+ < {lowest}"
    return text


def _prior_sentence(models: list[dict]) -> str:
    """Which posteriors of K+ stay close to their prior (TV < 0.3): prior-driven answers."""
    close = _names(models, lambda m: m["prior_posterior_tv"] < PRIOR_CLOSE_TV)
    means = [m["posterior_k"]["mean"] for m in models]
    text = f"Posterior means of K+ range from {min(means):.2f} to {max(means):.2f}"
    if len(models) > 1:
        pm = [m["prior_k"]["mean"] for m in models]
        text += f" (prior means {min(pm):.2f} to {max(pm):.2f})"
    if close:
        verb = "stays" if len(close) == 1 else "stay"
        text += (
            f"; under {_join(close)} the posterior of K+ {verb} close to the prior (total "
            f"variation < {PRIOR_CLOSE_TV}), so that answer largely restates the prior"
        )
    return text + "."


def _sensitivity_sentence(models: list[dict]) -> str:
    sens = _names(models, lambda m: bool(m["psense"].get("prior_sensitive")))
    checked = _names(models, lambda m: m["psense"].get("applies"))
    if sens:
        return (
            f"Power-scaling the concentration prior changes K+ or the fit under {_join(sens)} "
            f"(psense > {PSENSE_THRESHOLD}): there the answer is prior-sensitive."
        )
    if checked:
        return (
            f"Power-scaling finds no sensitivity to the concentration prior under {_join(checked)}."
        )
    return "No model has a random concentration, so power-scaling does not apply."


def plain_reading(models: list[dict], ranking: list[dict]) -> str:
    """One paragraph: what holds under every prior, and what depends on it."""
    sets = _set_sentence(models)
    first = f"{_mode_sentence(models)}. {sets[0].upper()}{sets[1:]}."
    rest = [_prior_sentence(models), _loo_sentence(ranking), _sensitivity_sentence(models)]
    return " ".join([first] + rest)


STACKING_NOTE = (
    "stacking (Yao et al. 2018) chooses a combination of the models for prediction; its "
    "weights are not the probability that a model is right, and between models that "
    "PSIS-LOO cannot separate it often puts all the weight on one"
)


def clearly_worse(row: dict) -> bool:
    """The rule for "clearly worse than the best": |elpd_diff| > 4 and > 2 dse."""
    diff, dse = abs(row.get("elpd_diff") or 0.0), row.get("dse") or 0.0
    return diff > ELPD_SMALL and diff > 2 * dse


def loo_separation(ranking: list[dict]) -> dict[str, Any]:
    """Which models PSIS-LOO separates from the best (``clearly_worse``).

    ``tied``: the best and every model not clearly worse than it (best first); ``separable``:
    False when that is every model (then LOO does not pick one); ``weights_decide_nothing``:
    True when two or more models are tied, or when the largest stacking weight is not the
    best's: then the weights must not be read as a verdict (``STACKING_NOTE``).
    """
    if not ranking:
        return {"best": None, "tied": [], "clearly_worse": [], "separable": False,
                "weights_decide_nothing": False}  # fmt: skip
    best = ranking[0]["name"]
    worse = [r["name"] for r in ranking[1:] if clearly_worse(r)]
    tied = [r["name"] for r in ranking if r["name"] not in worse]
    weights = {r["name"]: r.get("weight") for r in ranking}
    top = max(weights, key=lambda k: weights[k] if weights[k] is not None else -1.0)
    return {
        "best": best,
        "tied": tied,
        "clearly_worse": worse,
        "separable": len(ranking) > 1 and len(tied) < len(ranking),
        "weights_decide_nothing": len(ranking) > 1
        and (len(tied) > 1 or (weights[top] is not None and top != best)),
    }


def _weights_text(ranking: list[dict], names: list[str]) -> str:
    """'a 1.00, b 0.00': the stacking weights of ``names`` as the table shows them."""
    w = {r["name"]: r.get("weight") for r in ranking}
    return ", ".join(f"{n} {w[n] or 0.0:.2f}" for n in names)


def _loo_sentence(ranking: list[dict]) -> str:
    """Best model by PSIS-LOO; others are clearly worse when |diff| > 4 and > 2 dse.

    Whenever models are tied (or the weights favour another model than the best) the
    sentence quotes the stacking weights and says what they are not, so that a weight of
    1.00 in the table is never read against the text.
    """
    if len(ranking) < 2:
        return "With one model there is no LOO ranking."
    sep = loo_separation(ranking)
    best, clear, tied = sep["best"], sep["clearly_worse"], sep["tied"]
    if not clear:
        text = (
            f"PSIS-LOO cannot separate the models (every |elpd_diff| from the best, {best}, is "
            f"below {ELPD_SMALL:g} or within 2 standard errors), so predictive accuracy does "
            "not pick a prior"
        )
    else:
        verb = "predicts" if len(clear) == 1 else "predict"
        text = f"PSIS-LOO favours {best}; {_join(clear)} {verb} clearly worse"
        if len(tied) > 1:
            text += f", but it cannot separate {_join(tied[1:])} from {best}"
    if sep["weights_decide_nothing"]:
        shown = tied if len(tied) > 1 else [r["name"] for r in ranking]
        text += (
            f". The stacking weights ({_weights_text(ranking, shown)}) do not change this: "
            + STACKING_NOTE
        )
    return text + "."


def collect_warnings(models: list[dict]) -> list[str]:
    """Pareto-k, truncation, sampler and sensitivity warnings, one line each."""
    out = []
    for m in models:
        n_high = m["loo"]["n_pareto_k_above_0_7"]
        if n_high:
            out.append(
                f"{m['name']}: {n_high} observation(s) with Pareto k > {PARETO_K_WARN}; "
                "PSIS-LOO elpd may be unreliable for them"
            )
        if m["truncation"].get("warning"):
            out.append(m["truncation"]["warning"])
        if m["psense"].get("prior_sensitive"):
            q = _join(m["psense"]["prior_sensitive_quantities"])
            out.append(
                f"{m['name']}: {q} prior-sensitive (power-scaling the concentration "
                f"prior changes it by > {PSENSE_THRESHOLD})"
            )
        out.extend(f"{m['name']}: {w}" for w in (m["diagnostics"].get("warnings") or []))
    return out


# --------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------


def _set(values: list[int]) -> str:
    from bayesmix.format import integer_set

    return integer_set(values)


def _k_cell(k: dict) -> str:
    return f"{k['mean']:.2f} / {k['mode']} / {_set(k['credible_set_90'])}"


def markdown_tables(result: dict) -> str:
    """The two comparison tables (K+ and concentration; predictive accuracy) in Markdown."""
    models = result["models"]
    rank = {r["name"]: r for r in result["ranking"]}
    lines = [
        "| model | prior K+ mean / mode / 90% set | posterior K+ mean / mode / 90% set "
        "| concentration (posterior mean [90%]) | prior sensitivity (psense) |",
        "|---|---|---|---|---|",
    ]
    for m in models:
        c = m["concentration"]
        lines.append(
            f"| {m['name']} | {_k_cell(m['prior_k'])} | {_k_cell(m['posterior_k'])} "
            f"| {c['name']} {c['text']} | {m['psense']['text']} |"
        )
    mfms = [m for m in models if m.get("posterior_components")]
    if mfms:
        lines += [
            "",
            "| model (MFM) | prior K mean / mode / 90% set | posterior K mean / mode / 90% set |",
            "|---|---|---|",
        ]
        for m in mfms:
            prior = m.get("prior_components")
            lines.append(
                f"| {m['name']} | {_k_cell(prior) if prior else '–'} "
                f"| {_k_cell(m['posterior_components'])} |"
            )
    lines += [
        "",
        "| model | elpd_loo (SE) | elpd_diff (dSE) | stacking weight | Pareto k > 0.7 "
        "| DP leftover w_T q99 |",
        "|---|---|---|---|---|---|",
    ]
    sep = loo_separation(result["ranking"])
    mark = set(sep["tied"]) if sep["weights_decide_nothing"] and len(sep["tied"]) > 1 else set()
    for m in sorted(models, key=lambda m: rank[m["name"]]["rank"]):
        r, lo = rank[m["name"]], m["loo"]
        star = " (tied)" if m["name"] in mark else ""
        lines.append(
            f"| {m['name']} | {lo['elpd_loo']:.1f} ({lo['se']:.1f}) "
            f"| {_fmt(r['elpd_diff'], 2)} ({_fmt(r['dse'], 2)}) | {r['weight'] or 0.0:.2f}{star} "
            f"| {lo['n_pareto_k_above_0_7']} | {m['truncation']['text']} |"
        )
    lines += ["", weights_footnote(sep)]
    return "\n".join(lines)


def weights_footnote(sep: dict[str, Any]) -> str:
    """The line under the LOO table: what stacking weights are, and (when models are tied)
    why a weight near 1 there is no verdict."""
    text = f"Stacking weights: {STACKING_NOTE}."
    if sep["weights_decide_nothing"] and len(sep["tied"]) > 1:
        who = "the models" if not sep["separable"] else _join(sep["tied"])
        text = (
            f"(tied): PSIS-LOO cannot separate {who} (|elpd_diff| <= {ELPD_SMALL:g} or within "
            f"2 dSE), so their weights say nothing about which prior is right. " + text
        )
    elif sep["weights_decide_nothing"]:
        text = f"The largest weight is not on {sep['best']}, the best model by PSIS-LOO. {text}"
    return text


def compare_markdown(result: dict) -> str:
    """compare.md: the reading, both tables, warnings and the figures."""
    d = result["data"]
    lines = [
        "# bayesmix compare",
        "",
        f"Data: {d['source']} ({d['n_obs']} rows, columns {', '.join(d['columns'])}; "
        f"sha256 {d['sha256'][:12]}). K+ is the number of occupied clusters.",
        "",
        result["reading"],
        "",
        markdown_tables(result),
        "",
        "K+ cells: mean / mode / 90% credible set. psense: power-scaling sensitivity of K+ and "
        f"of the total log-likelihood to the concentration prior (> {PSENSE_THRESHOLD}: "
        "prior-sensitive). elpd_diff and dSE are relative to the best model by PSIS-LOO.",
    ]
    if result["warnings"]:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in result["warnings"]]
    lines += ["", "## Figures", ""]
    lines += [f"![{key}]({path})" for key, path in result["figures"].items()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# Pipeline
# --------------------------------------------------------------------------


FIELD_DOCS = {
    "models[].prior_k": "exact prior of K+ (occupied clusters) for n = data.n_obs; a truncated "
    "DP is treated as untruncated",
    "models[].posterior_k": "posterior pmf of K+ from the allocation draws",
    "models[].concentration": "alpha (DP) or gamma (finite): fixed value, or Gamma(shape, rate) "
    "prior with the posterior mean and 90% equal-tailed interval",
    "models[].loo": "ArviZ PSIS-LOO on log_likelihood/x (mixture density per observation)",
    "models[].psense": "ArviZ power-scaling sensitivity (alphas 0.99, 1.01) of K+, total "
    "log-likelihood and the concentration; 'prior' scales log_prior (the concentration's "
    "Gamma density) only",
    "models[].prior_posterior_tv": "total variation distance between the prior and posterior "
    f"pmfs of K+; below {PRIOR_CLOSE_TV} the answer largely restates the prior",
    "models[].truncation": "truncated DP: 99% quantile of the last stick's weight w_T",
    "ranking": "ArviZ compare (stacking weights), best first; elpd_diff relative to the best",
    "loo_separation": "which models PSIS-LOO separates from the best (clearly worse: "
    f"|elpd_diff| > {ELPD_SMALL:g} and > 2 dse); tied: the best and the models it cannot "
    "separate; weights_decide_nothing: the stacking weights must not be read as a verdict",
    "reading": "plain-language paragraph: conclusions shared by every prior, and those that "
    "depend on the prior",
    "figures": "PNG files, paths relative to this file",
    "options": "sampler settings given on the command line (null: each spec's [sampler] "
    "default; models[].sampling has what was used)",
}


def analyse(
    data: Dataset, specs: Sequence[ModelSpec], outcomes: Sequence[FitOutcome]
) -> dict[str, Any]:
    """Numbers of the comparison from saved fits (no I/O besides reading posterior.nc)."""
    models, elpds, draws = [], {}, {}
    for spec, outcome in zip(specs, outcomes, strict=True):
        idata = load_fit(outcome.fit_dir)
        entry = model_entry(outcome, spec, idata, data.n_obs)
        elpds[spec.name], entry["loo"] = loo_entry(idata)
        conc = spec.mixing.concentration_name
        if conc in idata["posterior"]:
            draws[spec.name] = idata["posterior"][conc].values.ravel()
        models.append(entry)
    ranking = loo_ranking(elpds)
    return {
        "models": models,
        "ranking": ranking,
        "loo_separation": loo_separation(ranking),
        "reading": plain_reading(models, ranking),
        "warnings": collect_warnings(models),
        "_draws": draws,
    }


def figure_inputs(result: dict) -> tuple[list[dict], list[dict]]:
    """Arguments for the two figures from the comparison result."""
    k_models = [
        {
            "name": m["name"],
            "prior_pmf": m["prior_k"]["pmf"],
            "posterior_pmf": m["posterior_k"]["pmf"],
        }
        for m in result["models"]
    ]
    conc = []
    for m in result["models"]:
        c = m["concentration"]
        item = {"name": m["name"], "concentration": c["name"], "fixed": c["fixed"]}
        if c["fixed"] is None:
            item |= {
                "draws": result["_draws"].get(m["name"], np.zeros(1)),
                "prior_shape": c["prior"]["shape"],
                "prior_rate": c["prior"]["rate"],
            }
        conc.append(item)
    return k_models, conc


def write_outputs(result: dict, out: Path) -> dict[str, Path]:
    """compare.json, compare.md and the two PNG figures, each written atomically."""
    from bayesmix.io import write_json, write_text
    from bayesmix.plots_priors import (
        concentration_figure,
        prior_vs_posterior_k_figure,
        save_figure,
    )

    k_models, conc = figure_inputs(result)
    paths = {
        "prior_vs_posterior_k": save_figure(
            prior_vs_posterior_k_figure(k_models), out / FIGURES["prior_vs_posterior_k"]
        ),
        "concentration": save_figure(concentration_figure(conc), out / FIGURES["concentration"]),
    }
    public = {k: v for k, v in result.items() if not k.startswith("_")}
    paths["json"] = write_json(out / "compare.json", public)
    paths["markdown"] = write_text(out / "compare.md", compare_markdown(public))
    return paths


def _used_seed(seed: int | None, outcomes: Sequence[FitOutcome]) -> int | dict[str, int]:
    """The seed every fit used (each spec's own default when none was given)."""
    if seed is not None:
        return int(seed)
    used = {o.name: int(o.summary["seed"]) for o in outcomes}
    return next(iter(used.values())) if len(set(used.values())) == 1 else used


def run_compare(
    data: object,
    models: Sequence[str | Path | ModelSpec] | None,
    out: str | Path,
    options: CompareOptions | None = None,
    columns: list[str] | None = None,
    dropna: bool = False,
) -> dict[str, Any]:
    """Fit every spec (default: models/compare_default) on ``data``, compare, write to ``out``.

    Returns the comparison (the content of compare.json) with ``paths`` of the outputs.
    """
    from bayesmix.versions import versions

    options = options or CompareOptions()
    out = Path(out)
    specs = load_specs(models)
    dataset = data if isinstance(data, Dataset) else load_data(data, columns=columns, dropna=dropna)
    t0 = time.perf_counter()
    outcomes = run_fits(dataset, specs, out, options)
    result = {
        "schema": SCHEMA,
        "fields": FIELD_DOCS,
        "data": {k: v for k, v in dataset.describe().items() if k not in ("center", "scale")},
        "seed": _used_seed(options.seed, outcomes),
        "options": {
            "engine": options.engine or "auto",
            "sampler": options.sampler,
            "chains": options.chains,
            "draws": options.draws,
            "tune": options.tune,
            "jobs": n_workers(options.jobs, len(specs)),
        },
        "command": options.command,
        "versions": versions(),
        "specs": {s.name: s.to_dict() for s in specs},
    }
    result |= analyse(dataset, specs, outcomes)
    result["figures"] = dict(FIGURES)
    result["timing_s"] = round(time.perf_counter() - t0, 3)
    paths = write_outputs(result, out)
    result.pop("_draws", None)
    result["paths"] = {k: str(v) for k, v in paths.items()}
    return result
