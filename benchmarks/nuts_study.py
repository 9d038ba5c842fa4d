"""NUTS on mixture posteriors: which graph, mixing, start and sampler settings converge.

``python -m benchmarks.nuts_study [--quick]`` runs, in one process and one after another,
a one-factor-at-a-time design around a baseline on three data sets, and writes
``reports/benchmarks/nuts_study.md`` and ``nuts_study.json`` (atomically, after every cell, so
that a stopped run keeps the cells it finished).

Baseline: ``models/dp_wi.toml`` (truncated DP, T = 20, alpha ~ Gamma(1, 1), weakly informative
kernel), EM + BIC initial values (``model.initial_values``), nutpie with its default
target_accept 0.8, 4 chains x (1000 tune + 1000 draws). Each other cell changes one factor:

* kernel / parametrisation: the conjugate kernel of ``models/dp.toml``, centred and
  non-centred (``sampler.parametrization``);
* mixing: ``models/sparse_wi.toml`` (K = 10, gamma ~ Gamma(10, 200)), and, in 1-D, the same
  with ordered means (``sampler.ordered_means``);
* DP sticks: ``sampler.sticks = "non_centred"`` (v_k = 1 - u_k^(1/alpha), u_k ~ U(0, 1));
* initialisation: the last draw of a short collapsed Gibbs run (conjugate ``dp`` spec, one
  chain, 300 + 300 sweeps): its 20 heaviest components' means, SDs (Cholesky factors in 2-D)
  and weights;
* target_accept 0.9, 0.95, 0.99;
* 8 x 500 and 16 x 250 draws (the same 4,000 draws in total; 1000 tuning steps per chain).

Data: galaxy (1-D, N = 82), Old Faithful (2-D, N = 272) and an acidity-like 1-D set made here
(``acidity_like``: N = 155, log-scale two-component mixture, weights 0.6 / 0.4, means 4.3 /
5.9, SDs 0.35 / 0.45, numpy seed 155; the real acidity data of Crawford (1994) are not
shipped).

Figures per cell, from the same functions ``fit`` uses: the draws go through
``posterior.assemble.build_datatree`` (K+ from z drawn per posterior draw, the total
log-likelihood) and ``posterior.summary.label_invariant``; R-hat and ESS bulk / tail come from
``posterior.diagnostics.diagnose`` (ArviZ's rank-normalised split R-hat and ESS). ESS/s =
ESS_bulk / nutpie's sampling wall time (tuning included, compile excluded). Divergence rate =
divergent post-warmup transitions / draws.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import provenance, write_json

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "reports" / "benchmarks"
SEED = 20261126
ACIDITY_SEED = 155
TARGETS = {"r_hat_max": 1.01, "ess_bulk_min": 400.0, "divergence_rate_max": 0.005}
QUANTITIES = ("concentration", "K+", "log_likelihood")
# zero-avoiding scale prior of the ``*_ig`` graphs: sigma ~ InverseGamma(2, 0.4): mean 0.4,
# mode 0.13, P(sigma > 1) = 6.2% (HalfNormal(0.5): 4.6%), P(sigma < 0.05) = 0.3%
IG_SIGMA = (2.0, 0.4)


@dataclasses.dataclass(frozen=True)
class Settings:
    chains: int = 4
    tune: int = 1000
    draws: int = 1000
    chain_grid: tuple[int, ...] = (8, 16)
    targets: tuple[float, ...] = (0.9, 0.95, 0.99)
    gibbs_sweeps: int = 300
    datasets: tuple[str, ...] = ("galaxy", "faithful", "acidity_like")
    cores: int = 2
    supplement: bool = False  # run ``supplement`` cells instead of the main design
    zero_avoiding: bool = False  # run ``zero_avoiding`` cells instead of the main design
    seed: int = SEED  # the sampler seed (EM start, jitter, NUTS) of every cell
    only_target: float | None = None  # only the cells with this target_accept
    graphs: tuple[str, ...] = ()  # only the cells of these graphs (empty: all)
    # wall-clock budget per data set (s): cells not started within it are recorded as skipped
    budget_s: tuple[tuple[str, float], ...] = (
        ("galaxy", 660.0),
        ("faithful", 900.0),
        ("acidity_like", 540.0),
    )


FULL = Settings()
QUICK = Settings(
    chains=2, tune=200, draws=200, chain_grid=(4,), targets=(0.95,), gibbs_sweeps=100, budget_s=()
)
# the order cells run in within a data set (the most informative first, for the budget)
PRIORITY = (
    ("baseline", None),
    ("mixing", "sparse_wi"),
    ("sticks", None),
    ("kernel", "dp_conj_noncentred"),
    ("kernel", "dp_conj_centred"),
    ("target_accept", 0.9),
    ("mixing", "sparse_wi_ordered"),
    ("init", None),
    ("chains", 8),
    ("target_accept", 0.95),
    ("target_accept", 0.99),
    ("chains", 16),
)


def _priority(cell: dict) -> int:
    key = {
        "kernel": cell["graph"],
        "mixing": cell["graph"],
        "target_accept": cell["target_accept"],
        "chains": cell["chains"],
    }.get(cell["factor"])
    for i, (f, k) in enumerate(PRIORITY):
        if f == cell["factor"] and (k is None or k == key):
            return i
    return len(PRIORITY)


def acidity_like(seed: int = ACIDITY_SEED, n: int = 155) -> np.ndarray:
    """N = 155 draws from 0.6 N(4.3, 0.35^2) + 0.4 N(5.9, 0.45^2) (log scale), (N, 1)."""
    rng = np.random.default_rng(seed)
    first = rng.random(n) < 0.6
    x = np.where(first, rng.normal(4.3, 0.35, n), rng.normal(5.9, 0.45, n))
    return x[:, None]


def load(name: str):
    from bayesmix.data import dataset_path, load_data

    if name == "acidity_like":
        return load_data(acidity_like())
    return load_data(dataset_path({"galaxy": "galaxies"}.get(name, name)))


def with_sampler(spec, **kw):
    return dataclasses.replace(spec, sampler=dataclasses.replace(spec.sampler, **kw))


def with_inv_gamma(spec, shape: float = IG_SIGMA[0], rate: float = IG_SIGMA[1]):
    """The weakly informative kernel with sigma ~ InverseGamma(shape, rate) for the HalfNormal."""
    from bayesmix.spec import GammaPrior

    kernel = dataclasses.replace(spec.kernel, sigma_inv_gamma=GammaPrior(shape, rate))
    return dataclasses.replace(spec, kernel=kernel)


def with_half_normal(spec, sd: float = 0.5):
    """The weakly informative kernel with sigma ~ HalfNormal(sd) (the main design's)."""
    if spec.kernel.prior != "weakly_informative":
        return spec
    kernel = dataclasses.replace(spec.kernel, sigma_inv_gamma=None, sigma_sd=sd)
    return dataclasses.replace(spec, kernel=kernel)


def specs() -> dict[str, Any]:
    from bayesmix.spec import load_spec

    # the main design's weakly informative graphs keep the HalfNormal(0.5) scales they were
    # measured with (the shipped specs have had the zero-avoiding scale since); ``*_ig``: that
    dp_wi, dp, sparse = (with_half_normal(load_spec(n)) for n in ("dp_wi", "dp", "sparse_wi"))
    return {
        **{f"{k}_ig": with_inv_gamma(v) for k, v in (("sparse_wi", sparse), ("dp_wi", dp_wi))},
        "dp_wi_sticks_nc_ig": with_sampler(with_inv_gamma(dp_wi), sticks="non_centred"),
        "dp_wi": dp_wi,
        "dp_wi_sticks_nc": with_sampler(dp_wi, sticks="non_centred"),
        "dp_conj_centred": dp,
        "dp_conj_noncentred": with_sampler(dp, parametrization="non_centred"),
        "sparse_wi": sparse,
        "sparse_wi_ordered": with_sampler(sparse, ordered_means=True),
    }


def design(st: Settings, d: int) -> list[dict]:
    """The cells for one data set: the baseline, then one factor changed at a time."""
    base = {"graph": "dp_wi", "init": "em", "target_accept": 0.8, "chains": st.chains}
    cells = [dict(base, factor="baseline")]
    for g in ("dp_conj_centred", "dp_conj_noncentred"):
        cells.append(dict(base, factor="kernel", graph=g))
    for g in ("sparse_wi",) + (("sparse_wi_ordered",) if d == 1 else ()):
        cells.append(dict(base, factor="mixing", graph=g))
    cells.append(dict(base, factor="sticks", graph="dp_wi_sticks_nc"))
    cells.append(dict(base, factor="init", init="gibbs"))
    for ta in st.targets:
        cells.append(dict(base, factor="target_accept", target_accept=ta))
    for c in st.chain_grid:
        cells.append(dict(base, factor="chains", chains=c))
    return sorted(cells, key=_priority)


def supplement(st: Settings, ds: str) -> list[dict]:
    """Cells run after the main design (``--supplement``): the conjugate kernels on Old Faithful
    (past the main run's budget there), and the two best single changes combined with
    target_accept 0.9 (non-centred DP sticks; the sparse mixing)."""
    base = {"init": "em", "chains": st.chains, "factor": "combination"}
    cells = []
    if ds == "faithful":
        for g in ("dp_conj_centred", "dp_conj_noncentred"):
            cells.append(dict(base, graph=g, target_accept=0.8, factor="kernel"))
    for g in ("dp_wi_sticks_nc", "sparse_wi"):
        cells.append(dict(base, graph=g, target_accept=0.9))
    return cells


def zero_avoiding(st: Settings, ds: str) -> list[dict]:
    """Cells with the zero-avoiding scale prior (``--zero-avoiding``): the sparse finite
    mixture at target_accept 0.9 and 0.8, the DP with non-centred sticks at 0.8 and 0.9, the
    DP with centred sticks at 0.9."""
    base = {"init": "em", "chains": st.chains, "factor": "scale prior"}
    cells = [dict(base, graph="sparse_wi_ig", target_accept=ta) for ta in (0.9, 0.8)]
    cells.append(dict(base, graph="dp_wi_sticks_nc_ig", target_accept=0.8))
    cells += [dict(base, graph=g, target_accept=0.9) for g in ("dp_wi_sticks_nc_ig", "dp_wi_ig")]
    return cells


def gibbs_init(spec, x: np.ndarray, sweeps: int, seed: int) -> dict[str, np.ndarray]:
    """Initial values for the weakly informative DP graph from the last draw of a short
    collapsed Gibbs run of the conjugate ``dp`` spec: the T heaviest components (means, SDs or
    Cholesky factors) and stick fractions that give their weights."""
    from bayesmix.engines.gibbs import sample_gibbs
    from bayesmix.spec import load_spec

    draws = sample_gibbs(
        load_spec("dp"),
        x,
        algorithm="collapsed",
        chains=1,
        draws=sweeps,
        tune=sweeps,
        seed=seed,
        progress=False,
        cores=1,
    )
    t = spec.mixing.n_components
    w, mu, cov = draws.w[0, -1], draws.mu[0, -1], draws.cov[0, -1]
    order = np.argsort(-w)[:t]
    w, mu, cov = w[order], mu[order], cov[order]
    if len(w) < t:  # pad with data points and the data scale
        rng = np.random.default_rng(seed)
        extra = t - len(w)
        mu = np.vstack([mu, x[rng.choice(len(x), extra)]])
        cov = np.concatenate(
            [cov, np.broadcast_to(0.25 * np.eye(x.shape[1]), (extra,) + cov.shape[1:])]
        )
        w = np.concatenate([w, np.full(extra, 1e-3)])
    w = np.maximum(w, 1e-4)
    w = w / w.sum()
    rest = 1.0 - np.concatenate([[0.0], np.cumsum(w)[:-1]])
    v = np.clip(w[:-1] / rest[:-1], 0.02, 0.98)
    init: dict[str, np.ndarray] = {"mu": mu, "v": v}
    d = x.shape[1]
    if d == 1:
        init["sigma_raw"] = np.sqrt(cov[:, :, 0])
    else:
        rows, cols = np.tril_indices(d)
        for j in range(t):
            init[f"chol_{j}"] = np.linalg.cholesky(cov[j])[rows, cols]
    return init


def run_cell(cell: dict, dataset, spec, graph, st: Settings, seed: int) -> dict:
    """Sample one cell and compute its figures (the functions ``fit`` uses). The NUTS backend
    is ``cell["sampler"]`` (default nutpie; ``benchmarks/nuts_backends.py`` sets it)."""
    from bayesmix.engines.nuts import sample_nuts
    from bayesmix.posterior.assemble import build_datatree
    from bayesmix.posterior.diagnostics import diagnose
    from bayesmix.posterior.summary import label_invariant

    total = st.chains * st.draws
    draws_per_chain = total // cell["chains"]
    t0 = time.perf_counter()
    draws = sample_nuts(
        spec,
        dataset.standardized,
        chains=cell["chains"],
        draws=draws_per_chain,
        tune=st.tune,
        seed=seed,
        progress=False,
        cores=st.cores,
        target_accept=cell["target_accept"],
        graph=graph,
        sampler=cell.get("sampler", "nutpie"),
    )
    wall = time.perf_counter() - t0
    sampling_s = draws.timing["sampling_s"]
    dt = build_datatree(draws, dataset, spec, seed)
    q = label_invariant(dt)
    conc_name = spec.mixing.concentration_name
    quantities = {
        "concentration": q.get(conc_name),
        "K+": q["K+"],
        "log_likelihood": q["log_likelihood"],
    }
    out = dict(cell)
    out.update(
        draws_per_chain=draws_per_chain,
        tune=st.tune,
        sampling_s=sampling_s,
        compile_s=draws.timing.get("compile_s", 0.0),  # 0 for nutpie given a graph; JAX: XLA
        wall_s=wall,
        concentration_name=conc_name,
    )
    if "chain_method" in draws.info:
        out["chain_method"] = draws.info["chain_method"]
    div = draws.sample_stats.get("diverging")
    out["divergences"] = int(np.sum(div)) if div is not None else None
    out["divergence_rate"] = None if div is None else float(np.mean(div))
    depth = draws.sample_stats.get("tree_depth")
    out["mean_tree_depth"] = None if depth is None else float(np.mean(depth))
    figs = {}
    for name, v in quantities.items():
        if v is None:
            continue
        d = diagnose(v, name)
        ess = d["ess_bulk"]
        figs[name] = {
            "r_hat": d["r_hat"],
            "ess_bulk": ess,
            "ess_tail": d["ess_tail"],
            "ess_per_s": None if ess is None else ess / sampling_s,
            "mean": float(np.mean(v)),
        }
    out["figures"] = figs
    kplus = q["K+"].astype(int)
    vals, counts = np.unique(kplus, return_counts=True)
    out["kplus_pmf"] = {int(k): float(c) / kplus.size for k, c in zip(vals, counts, strict=True)}
    out["kplus_chain_means"] = [float(m) for m in kplus.mean(axis=1)]
    rhats = [f["r_hat"] for f in figs.values()]
    out["max_r_hat"] = None if any(r is None for r in rhats) else max(rhats)
    esses = [f["ess_bulk"] for f in figs.values()]
    out["min_ess_bulk"] = None if any(e is None for e in esses) else min(esses)
    out["meets_acceptance"] = bool(
        out["max_r_hat"] is not None
        and out["max_r_hat"] <= TARGETS["r_hat_max"]
        and out["min_ess_bulk"] >= TARGETS["ess_bulk_min"]
        and out["divergence_rate"] is not None
        and out["divergence_rate"] < TARGETS["divergence_rate_max"]
    )
    return out


def run(st: Settings, out_dir: Path, name: str, argv: list[str]) -> dict:
    from bayesmix.engines.nuts import compile_nuts

    report: dict[str, Any] = {
        "provenance": provenance(argv),
        "settings": dataclasses.asdict(st),
        "seed": st.seed,
        "acidity_like": {
            "seed": ACIDITY_SEED,
            "n": 155,
            "weights": [0.6, 0.4],
            "means": [4.3, 5.9],
            "sds": [0.35, 0.45],
        },
        "targets": TARGETS,
        "load_start": list(os.getloadavg()),
        "cells": [],
        "compiles": [],
    }
    all_specs = specs()
    t_start = time.perf_counter()
    for ds_name in st.datasets:
        dataset = load(ds_name)
        x = dataset.standardized
        graphs: dict[tuple[str, str], Any] = {}
        budget = dict(st.budget_s).get(ds_name, math.inf)
        t_ds = time.perf_counter()
        if st.zero_avoiding:
            cells = zero_avoiding(st, ds_name)
        else:
            cells = supplement(st, ds_name) if st.supplement else design(st, x.shape[1])
        if st.graphs:
            cells = [c for c in cells if c["graph"] in st.graphs]
        if st.only_target is not None:
            cells = [c for c in cells if c["target_accept"] == st.only_target]
        for cell in cells:
            spec = all_specs[cell["graph"]]
            if time.perf_counter() - t_ds > budget:
                res = dict(cell, data=ds_name, skipped=f"not started: the {budget:.0f} s budget")
                report["cells"].append(res)
                write_outputs(report, out_dir, name)
                continue
            key = (cell["graph"], cell["init"])
            if key not in graphs:
                t0 = time.perf_counter()
                init = None
                if cell["init"] == "gibbs":
                    init = gibbs_init(spec, x, st.gibbs_sweeps, st.seed)
                init_s = time.perf_counter() - t0
                graphs[key] = compile_nuts(spec, x, seed=st.seed, init=init)
                report["compiles"].append(
                    {
                        "data": ds_name,
                        "graph": cell["graph"],
                        "init": cell["init"],
                        "compile_s": graphs[key].compile_s,
                        "init_s": init_s,
                    }
                )
            print(f"[nuts_study] {ds_name}: {cell}", file=sys.stderr, flush=True)
            try:
                res = run_cell(cell, dataset, spec, graphs[key], st, st.seed)
            except Exception as exc:  # a failed cell is a result too
                res = dict(cell, error=f"{type(exc).__name__}: {exc}")
            res["data"] = ds_name
            res["n_obs"], res["n_features"] = dataset.n_obs, dataset.n_features
            report["cells"].append(res)
            report["elapsed_s"] = time.perf_counter() - t_start
            report["load_end"] = list(os.getloadavg())
            write_outputs(report, out_dir, name)
    return report


def write_outputs(report: dict, out_dir: Path, name: str) -> None:
    from bayesmix.io import write_text

    write_json(out_dir / f"{name}.json", report)
    write_text(out_dir / f"{name}.md", render_markdown(report) + reading(out_dir, name))


def reading(out_dir: Path, name: str) -> str:
    """The hand-written reading of the results (``<name>_reading.md``), appended when present."""
    path = out_dir / f"{name}_reading.md"
    return "\n" + path.read_text() if path.is_file() else ""


def _f(v: Any, fmt: str = ".0f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return format(v, fmt)


def _label(c: dict) -> str:
    f = c["factor"]
    if f == "baseline":
        return "baseline (dp_wi, EM, 0.8, 4 ch)"
    if f in ("kernel", "mixing"):
        return c["graph"]
    if f == "sticks":
        return "dp_wi, non-centred sticks"
    if f in ("combination", "scale prior"):
        return f"{c['graph']}, target_accept {c['target_accept']}"
    if f == "init":
        return "Gibbs start"
    if f == "target_accept":
        return f"target_accept {c['target_accept']}"
    return (
        f"{c['chains']} x {c['draws_per_chain']}"
        if "draws_per_chain" in c
        else f"{c['chains']} chains"
    )


def render_markdown(report: dict) -> str:
    st, pv = report["settings"], report["provenance"]
    lines = [
        "# NUTS on mixture posteriors: graph, mixing, start and sampler settings",
        "",
        f"`{pv['command']}`, {pv['date']}; git {pv['git']}; {pv['machine']}; "
        f"load average at start / last write {_loads(report.get('load_start'))} / "
        f"{_loads(report.get('load_end'))} (a shared 2-core machine: timings are noisy; "
        "compare cells of this one run). Versions: "
        + ", ".join(f"{k} {v}" for k, v in pv["versions"].items())
        + f". Seed {report['seed']} for every cell; elapsed {_f(report.get('elapsed_s'))} s.",
        "",
        "**Design** (one factor at a time around the baseline): baseline = `models/dp_wi.toml` "
        "(truncated DP, T = 20, alpha ~ Gamma(1, 1), weakly informative kernel mu ~ N(0, 2^2), "
        "sigma ~ HalfNormal(0.5), LKJ(2)), EM + BIC initial values, nutpie target_accept 0.8 "
        f"(its default), {st['chains']} chains x ({st['tune']} tune + {st['draws']} draws). "
        "Other rows change one thing: the kernel (`dp.toml`'s conjugate NIG / NIW, centred or "
        '`parametrization = "non_centred"`), the mixing (`sparse_wi.toml`: K = 10, gamma ~ '
        "Gamma(10, 200); in 1-D also `ordered_means = true`), the DP sticks (`sticks = "
        '"non_centred"`: v_k = 1 - u_k^(1/alpha), u_k ~ U(0, 1)), the start (last draw of a short '
        f"collapsed Gibbs run, {st['gibbs_sweeps']} + {st['gibbs_sweeps']} sweeps), "
        "target_accept, or the number of chains at the same total draws "
        f"({st['tune']} tuning steps per chain). Cores: {st['cores']}.",
        "",
        *(
            [
                "**This run** (`--zero-avoiding`): the weakly informative graphs with the "
                f"zero-avoiding scale sigma ~ InverseGamma{tuple(IG_SIGMA)} in place of the "
                "HalfNormal (suffix `_ig`; the shipped `sparse_wi.toml` since this study), "
                "other settings as in the row labels.",
                "",
            ]
            if st.get("zero_avoiding")
            else []
        ),
        "Data: galaxy (1-D, N = 82), Old Faithful (2-D, N = 272), `acidity_like` (1-D, N = 155: "
        "0.6 N(4.3, 0.35^2) + 0.4 N(5.9, 0.45^2), numpy `default_rng(155)`; made here, not the "
        "real acidity data).",
        "",
        "Figures: K+ from z drawn per posterior draw and the total log-likelihood, through "
        "`build_datatree` + `label_invariant` (as `fit` computes them); R-hat, ESS bulk from "
        "`posterior.diagnostics.diagnose` (ArviZ). ESS/s = ESS bulk / sampling seconds (tuning "
        "included, compile excluded). conc. = alpha (DP) or gamma (sparse). Acceptance: max "
        "R-hat <= 1.01, min ESS bulk >= 400 over concentration, K+, log-likelihood, divergence "
        "rate < 0.5%.",
        "",
    ]
    for ds in st["datasets"]:
        cells = [c for c in report["cells"] if c["data"] == ds]
        if not cells:
            continue
        lines += [f"## {ds}", ""]
        lines += [
            "| configuration | sampling s | ESS conc. | ESS K+ | ESS loglik | ESS/s conc. | "
            "ESS/s K+ | ESS/s loglik | R-hat conc. | R-hat K+ | R-hat loglik | div. rate | "
            "E[K+] | K+ chain means | meets |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for c in cells:
            if "error" in c or "skipped" in c:
                lines.append(f"| {_label(c)} | {c.get('error') or c['skipped']} |" + " |" * 13)
                continue
            fg = c["figures"]

            def g(q, k, fmt, fg=fg):
                return _f(fg.get(q, {}).get(k), fmt)

            lines.append(
                "| "
                + " | ".join(
                    [
                        _label(c),
                        _f(c["sampling_s"], ".1f"),
                        g("concentration", "ess_bulk", ".0f"),
                        g("K+", "ess_bulk", ".0f"),
                        g("log_likelihood", "ess_bulk", ".0f"),
                        g("concentration", "ess_per_s", ".1f"),
                        g("K+", "ess_per_s", ".1f"),
                        g("log_likelihood", "ess_per_s", ".1f"),
                        g("concentration", "r_hat", ".3f"),
                        g("K+", "r_hat", ".3f"),
                        g("log_likelihood", "r_hat", ".3f"),
                        _f(100 * c["divergence_rate"], ".2f") + "%"
                        if c["divergence_rate"] is not None
                        else "–",
                        g("K+", "mean", ".2f"),
                        " ".join(f"{m:.2f}" for m in c["kplus_chain_means"][:16]),
                        "yes" if c["meets_acceptance"] else "no",
                    ]
                )
                + " |"
            )
        lines.append("")
    lines += acceptance_md(report)
    comp = report.get("compiles", [])
    if comp:
        lines += [
            "Compile (and start) times, s: "
            + "; ".join(
                f"{c['data']} {c['graph']}/{c['init']} {c['compile_s']:.0f} (+{c['init_s']:.0f})"
                for c in comp
            ),
            "",
        ]
    return "\n".join(lines) + "\n"


def _min_ess_per_s(c: dict) -> float:
    vals = [f.get("ess_per_s") for f in c["figures"].values()]
    return -1.0 if any(v is None for v in vals) else min(vals)


def best_cell(cells: list[dict]) -> dict | None:
    """The cell that meets the acceptance with the largest min ESS/s; when none does, the one
    with the smallest max R-hat (then the largest min ESS bulk)."""
    done = [c for c in cells if "figures" in c and c.get("max_r_hat") is not None]
    if not done:
        return None
    ok = [c for c in done if c["meets_acceptance"]]
    if ok:
        return max(ok, key=_min_ess_per_s)
    return min(done, key=lambda c: (c["max_r_hat"], -(c["min_ess_bulk"] or 0.0)))


def acceptance_md(report: dict) -> list[str]:
    """Per data set: the baseline and the best cell against the acceptance figures."""
    t = report["targets"]
    lines = [
        "## Acceptance check (computed)",
        "",
        f"Targets: max R-hat <= {t['r_hat_max']}, min ESS bulk >= {t['ess_bulk_min']:.0f} "
        "(concentration, K+, log-likelihood), divergence rate < "
        f"{100 * t['divergence_rate_max']:.1f}%. Best = meets all with the largest min ESS/s; "
        "if none does, the smallest max R-hat.",
        "",
        "| data | cell | max R-hat | min ESS bulk | min ESS/s | div. rate | R-hat ok | ESS ok "
        "| div. ok |",
        "|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for ds in report["settings"]["datasets"]:
        cells = [c for c in report["cells"] if c["data"] == ds]
        base = next((c for c in cells if c["factor"] == "baseline" and "figures" in c), None)
        best = best_cell(cells)
        for tag, c in (("baseline", base), ("best", best)):
            if c is None:
                continue
            dr = c["divergence_rate"]
            lines.append(
                f"| {ds} | {tag}: {_label(c)} | {_f(c['max_r_hat'], '.3f')} | "
                f"{_f(c['min_ess_bulk'], '.0f')} | {_f(_min_ess_per_s(c), '.1f')} | "
                f"{_f(None if dr is None else 100 * dr, '.2f')}% | "
                f"{'yes' if (c['max_r_hat'] or 9) <= t['r_hat_max'] else 'no'} | "
                f"{'yes' if (c['min_ess_bulk'] or 0) >= t['ess_bulk_min'] else 'no'} | "
                f"{'yes' if dr is not None and dr < t['divergence_rate_max'] else 'no'} |"
            )
    return lines + [""]


def _loads(v) -> str:
    return "–" if not v else "[" + ", ".join(f"{x:.2f}" for x in v) + "]"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m benchmarks.nuts_study", description=__doc__)
    p.add_argument("--quick", action="store_true", help="short chains, fewer cells (minutes)")
    p.add_argument("--out", default=str(OUT_DIR), help="output directory")
    p.add_argument("--datasets", default=None, help="comma-separated subset of the data sets")
    p.add_argument("--render", default=None, help="only re-render the .md from this .json")
    p.add_argument(
        "--graphs", default=None, help="only the cells of these graphs (comma-separated)"
    )
    p.add_argument("--name", default=None, help="output file stem (default from the mode)")
    p.add_argument(
        "--supplement",
        action="store_true",
        help="the supplementary cells (conjugate kernels on faithful, combinations)",
    )
    p.add_argument(
        "--zero-avoiding",
        action="store_true",
        help="the cells with sigma ~ InverseGamma(2, 0.4) in place of the HalfNormal",
    )
    p.add_argument("--seed", type=int, default=SEED, help="sampler seed of every cell")
    p.add_argument(
        "--target-accept", type=float, default=None, help="only the cells with this target"
    )
    args = p.parse_args(argv)
    if args.render:
        import json

        from bayesmix.io import write_text

        src = Path(args.render)
        report = json.loads(src.read_text())
        write_text(src.with_suffix(".md"), render_markdown(report) + reading(src.parent, src.stem))
        return 0
    st = QUICK if args.quick else FULL
    if args.datasets:
        st = dataclasses.replace(st, datasets=tuple(args.datasets.split(",")))
    name = "nuts_study_quick" if args.quick else "nuts_study"
    if args.supplement:
        st = dataclasses.replace(
            st,
            supplement=True,
            budget_s=(("faithful", 700.0),),
            datasets=("galaxy", "acidity_like", "faithful"),
        )
        name += "_supplement"
    if args.zero_avoiding:
        st = dataclasses.replace(st, zero_avoiding=True, budget_s=())
        name += "_zero_avoiding"
    if args.datasets:
        st = dataclasses.replace(st, datasets=tuple(args.datasets.split(",")))
    if args.graphs:
        st = dataclasses.replace(st, graphs=tuple(args.graphs.split(",")))
    st = dataclasses.replace(st, seed=args.seed, only_target=args.target_accept)
    name = args.name or name
    run(st, Path(args.out), name, ["benchmarks.nuts_study", *argv])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
