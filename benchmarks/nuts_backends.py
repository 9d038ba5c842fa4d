"""NUTS backends on CPU: nutpie against numpyro and blackjax (JAX), side by side in one run.

``python -m benchmarks.nuts_backends [--quick]`` fits galaxy (standardised as ``fit`` does)
with ``models/sparse_wi.toml`` (K = 10, gamma ~ Gamma(10, 200), weakly informative kernel) at
target_accept 0.9, 4 chains x (1000 tune + 1000 draws), EM + BIC initial values, with each
backend one after the other in this process, and writes ``reports/benchmarks/nuts_backends.md``
and ``nuts_backends.json`` (atomically, after every backend).

The figures are ``benchmarks.nuts_study.run_cell``'s (the functions ``fit`` uses: K+ from z
drawn per draw and the total log-likelihood via ``build_datatree`` + ``label_invariant``;
ArviZ R-hat / ESS via ``posterior.diagnostics.diagnose``). Time per backend: compile = graph
build + nutpie's numba compile (``compile_nuts``), or, for JAX, graph build + JAX's tracing,
lowering and XLA compile inside ``pm.sample`` (its monitoring events); sampling = the rest of
the sampling call (tuning included; for JAX also the PyTensor-to-JAX conversion and the
post-processing of the draws). ESS/s = ESS bulk / sampling s, as in ``nuts_study``.

The JAX backends run with ``engines.nuts.jax_chain_method``: one XLA CPU device per chain
(``jax_num_cpu_devices``), chains in parallel (``jax.pmap``), and no persistent compilation
cache (a user's first run). CPU only; a GPU check (chain_method "vectorized" on one device) is
the follow-up.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.common import provenance, write_json
from benchmarks.nuts_study import SEED, TARGETS, Settings, load, run_cell

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "reports" / "benchmarks"
SAMPLERS = ("nutpie", "numpyro", "blackjax")
JAX_PACKAGES = ("jax", "jaxlib", "numpyro", "blackjax")
GRAPH = "sparse_wi"
TARGET_ACCEPT = 0.9

FULL = Settings(chains=4, tune=1000, draws=1000, datasets=("galaxy",), cores=2)
QUICK = Settings(chains=2, tune=200, draws=200, datasets=("galaxy",), cores=2)


def _versions() -> dict[str, str]:
    out = {}
    for name in JAX_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def run_backend(sampler: str, dataset, spec, st: Settings) -> dict:
    """Compile (nutpie) or build (JAX) the graph, sample one cell, add the compile times."""
    from bayesmix.engines.nuts import compile_nuts

    t0 = time.perf_counter()
    graph = compile_nuts(spec, dataset.standardized, sampler=sampler, seed=SEED)
    build_s = time.perf_counter() - t0
    cell = {
        "factor": "sampler",
        "sampler": sampler,
        "graph": GRAPH,
        "init": "em",
        "target_accept": TARGET_ACCEPT,
        "chains": st.chains,
    }
    res = run_cell(cell, dataset, spec, graph, st, SEED)
    res["jax_compile_s"] = res["compile_s"] if sampler != "nutpie" else None
    res["compile_s"] = build_s + res["compile_s"]  # graph (+ numba) + XLA (0 for nutpie)
    res["wall_s"] = build_s + res["wall_s"]
    return res


def run(st: Settings, samplers: tuple[str, ...], out_dir: Path, name: str, argv: list[str]):
    from bayesmix.spec import load_spec

    pv = provenance(argv)
    pv["versions"] |= _versions()
    report: dict[str, Any] = {
        "provenance": pv,
        "settings": dataclasses.asdict(st),
        "graph": GRAPH,
        "target_accept": TARGET_ACCEPT,
        "seed": SEED,
        "targets": TARGETS,
        "load_start": list(os.getloadavg()),
        "cells": [],
    }
    dataset = load("galaxy")
    spec = load_spec(GRAPH)
    t_start = time.perf_counter()
    for sampler in samplers:
        print(f"[nuts_backends] {sampler}", file=sys.stderr, flush=True)
        try:
            res = run_backend(sampler, dataset, spec, st)
        except Exception as exc:  # a failed backend is a result too
            res = {"sampler": sampler, "error": f"{type(exc).__name__}: {exc}"}
        res["data"] = "galaxy"
        report["cells"].append(res)
        report["elapsed_s"] = time.perf_counter() - t_start
        report["load_end"] = list(os.getloadavg())
        write_outputs(report, out_dir, name)
    return report


def write_outputs(report: dict, out_dir: Path, name: str) -> None:
    from bayesmix.io import write_text

    write_json(out_dir / f"{name}.json", report)
    write_text(out_dir / f"{name}.md", render_markdown(report))


def _f(v: Any, fmt: str = ".0f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return format(v, fmt)


def _loads(v) -> str:
    return "–" if not v else "[" + ", ".join(f"{x:.2f}" for x in v) + "]"


def _min_ess_per_s(c: dict) -> float | None:
    vals = [f.get("ess_per_s") for f in c.get("figures", {}).values()]
    return None if not vals or any(v is None for v in vals) else min(vals)


def render_markdown(report: dict) -> str:
    st, pv = report["settings"], report["provenance"]
    lines = [
        "# NUTS backends on CPU: nutpie, numpyro, blackjax",
        "",
        f"`{pv['command']}`, {pv['date']}; git {pv['git']}; {pv['machine']}; "
        f"load average at start / last write {_loads(report.get('load_start'))} / "
        f"{_loads(report.get('load_end'))} (a shared 2-core machine: timings are noisy; "
        "compare the rows of this one run). Versions: "
        + ", ".join(f"{k} {v}" for k, v in pv["versions"].items())
        + f". Seed {report['seed']}; elapsed {_f(report.get('elapsed_s'))} s.",
        "",
        f"Galaxy (1-D, N = 82, standardised), `models/{report['graph']}.toml` (K = 10, gamma ~ "
        "Gamma(10, 200), weakly informative kernel), EM + BIC initial values, target_accept "
        f"{report['target_accept']}, {st['chains']} chains x ({st['tune']} tune + "
        f"{st['draws']} draws), backends one after the other in one process. nutpie on "
        f"{st['cores']} cores; numpyro / blackjax through `pm.sample(nuts_sampler=...)` with "
        "one XLA CPU device per chain (the chain method column), no persistent JAX "
        "compilation cache. **CPU only** (2 cores for 4 chains): the JAX backends are the path "
        "to GPUs, which this run does not measure; a GPU check is the follow-up.",
        "",
        "Compile = graph build + nutpie's numba compile, or + JAX's tracing / lowering / XLA "
        "compile (its monitoring events, inside `pm.sample`; paid in every process: no "
        "persistent cache by default). nutpie's numba compile reads PyTensor's cache "
        "(`~/.pytensor`): 15–25 s warm, 90–120 s cold (`shared/PYMC_NOTES.md`). Sampling = "
        "the rest (tuning included). ESS/s = ESS bulk / sampling s. Figures from "
        "`benchmarks.nuts_study.run_cell` (K+ from z drawn per draw, total log-likelihood; "
        "ArviZ R-hat / ESS). Tree depth: nutpie's and blackjax's number of doublings; numpyro's "
        "is PyMC's log2(leapfrog steps) + 1.",
        "",
        "| backend | chain method | compile s | sampling s | wall s | ESS/s gamma | ESS/s K+ | "
        "ESS/s loglik | ESS bulk gamma / K+ / loglik | max R-hat | div. rate | mean tree depth "
        "| E[K+] |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for c in report["cells"]:
        if "error" in c:
            lines.append(f"| {c['sampler']} | {c['error']} |" + " |" * 11)
            continue
        fg = c["figures"]

        def g(q, k, fmt, fg=fg):
            return _f(fg.get(q, {}).get(k), fmt)

        dr = c["divergence_rate"]
        lines.append(
            "| "
            + " | ".join(
                [
                    c["sampler"],
                    c.get("chain_method", "–"),
                    _f(c["compile_s"], ".1f"),
                    _f(c["sampling_s"], ".1f"),
                    _f(c["wall_s"], ".1f"),
                    g("concentration", "ess_per_s", ".1f"),
                    g("K+", "ess_per_s", ".1f"),
                    g("log_likelihood", "ess_per_s", ".1f"),
                    " / ".join(
                        g(q, "ess_bulk", ".0f") for q in ("concentration", "K+", "log_likelihood")
                    ),
                    _f(c["max_r_hat"], ".3f"),
                    "–" if dr is None else f"{100 * dr:.2f}%",
                    _f(c["mean_tree_depth"], ".2f"),
                    g("K+", "mean", ".2f"),
                ]
            )
            + " |"
        )
    lines.append("")
    ref = next(
        (c for c in report["cells"] if c.get("sampler") == "nutpie" and "figures" in c), None
    )
    if ref is not None:
        lines += ["Relative to nutpie (computed):", ""]
        for c in report["cells"]:
            if c is ref or "figures" not in c:
                continue
            ratios = []
            for q, label in (
                ("concentration", "gamma"),
                ("K+", "K+"),
                ("log_likelihood", "loglik"),
            ):
                a, b = c["figures"].get(q, {}), ref["figures"].get(q, {})
                if a.get("ess_per_s") and b.get("ess_per_s"):
                    ratios.append(f"{label} {a['ess_per_s'] / b['ess_per_s']:.2f}x")
            lines.append(
                f"- {c['sampler']}: ESS/s {', '.join(ratios) or '–'}; min ESS/s "
                f"{_f(_min_ess_per_s(c), '.1f')} vs {_f(_min_ess_per_s(ref), '.1f')}; "
                f"sampling {c['sampling_s'] / ref['sampling_s']:.2f}x, compile "
                f"{c['compile_s'] / ref['compile_s']:.2f}x, wall {c['wall_s'] / ref['wall_s']:.2f}x "
                "nutpie's."
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m benchmarks.nuts_backends", description=__doc__)
    p.add_argument("--quick", action="store_true", help="2 chains x (200 + 200), a smoke run")
    p.add_argument("--samplers", default=",".join(SAMPLERS), help="comma-separated backends")
    p.add_argument("--out", default=str(OUT_DIR), help="output directory")
    p.add_argument("--name", default=None, help="output file stem (default from the mode)")
    p.add_argument("--render", default=None, help="only re-render the .md from this .json")
    args = p.parse_args(argv)
    if args.render:
        import json

        from bayesmix.io import write_text

        src = Path(args.render)
        write_text(src.with_suffix(".md"), render_markdown(json.loads(src.read_text())))
        return 0
    st = QUICK if args.quick else FULL
    name = args.name or ("nuts_backends_quick" if args.quick else "nuts_backends")
    samplers = tuple(args.samplers.split(","))
    run(st, samplers, Path(args.out), name, ["benchmarks.nuts_backends", *argv])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
