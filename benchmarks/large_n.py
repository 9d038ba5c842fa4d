"""Large N: the sub-cluster engine against the collapsed and blocked Gibbs engines and
scikit-learn's variational mixture, side by side in one run.

``python -m benchmarks.large_n [--quick] [--out DIR]`` runs every cell in its own
subprocess (``--cell JSON``: peak RSS is that process's ``ru_maxrss``; the numba caches are
warm after the first cell of an engine, and compile time is excluded from the sweep
seconds) and writes ``reports/benchmarks/large_n.md`` and ``large_n.json`` atomically, with
the versions, the command and the seeds.

Data (``make``): 6 Gaussian clusters of equal weight with identity covariances, centres on
a ring of radius 6 in the first two coordinates (coordinates 3.. of the centres drawn
N(0, 2^2)), seed 20261202 + N + D (``np.random.default_rng``), then standardised; the truth
is K+ = 6.  Spec: ``models/dp.toml`` (the DP with alpha ~ Gamma(1, 1) and the conjugate NIW
kernel) for every engine.

Per cell: seconds per sweep of one chain (``Draws.info['chain_sweep_s']``; several chains
run at once on the 2 cores unless said otherwise), ESS (``benchmarks.common.ess``, over all
chains) of K+ and of the log-likelihood per second of summed chain time, R-hat of K+ (ArviZ),
the posterior mode of K+ against the truth, the ARI of the last draw's allocation with the
true labels (label-invariant; the mean over the last 10 draws), and peak RSS.
scikit-learn: ``BayesianGaussianMixture`` (DP weights, 20 components, full covariances, 5
initialisations up to N = 10^4 and 1 above, at most 500 iterations, its defaults otherwise): seconds, components with weight > 0.01 and
distinct labels of ``predict``, ARI.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import ess, provenance, write_json

ROOT = Path(__file__).resolve().parents[1]
K0 = 6
SEED = 20261202
MARK = "@@large_n@@ "


def make(n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """(x standardised, true labels) of the 6-cluster data set (module docstring)."""
    rng = np.random.default_rng(SEED + n + d)
    ang = 2.0 * np.pi * np.arange(K0) / K0
    centres = np.zeros((K0, d))
    centres[:, 0], centres[:, 1] = 6.0 * np.cos(ang), 6.0 * np.sin(ang)
    if d > 2:
        centres[:, 2:] = rng.normal(0.0, 2.0, (K0, d - 2))
    z = rng.integers(0, K0, n)
    x = centres[z] + rng.standard_normal((n, d))
    return (x - x.mean(0)) / x.std(0), z


# --------------------------------------------------------------------------
# One cell (in its own process)
# --------------------------------------------------------------------------


def run_cell(cell: dict[str, Any]) -> dict[str, Any]:
    """Fit one cell; returns its figures (module docstring)."""
    from sklearn.metrics import adjusted_rand_score

    x, truth = make(cell["n"], cell["d"])
    t0 = time.perf_counter()
    if cell["engine"] == "sklearn":
        from sklearn.mixture import BayesianGaussianMixture

        bgm = BayesianGaussianMixture(
            n_components=20,
            covariance_type="full",
            weight_concentration_prior_type="dirichlet_process",
            n_init=5 if cell["n"] <= 10_000 else 1,
            max_iter=500,
            random_state=SEED,
        ).fit(x)
        lab = bgm.predict(x)
        return {
            "wall_s": time.perf_counter() - t0,
            "k_weight": int((bgm.weights_ > 0.01).sum()),
            "k_labels": int(len(np.unique(lab))),
            "ari": float(adjusted_rand_score(truth, lab)),
            "converged": bool(bgm.converged_),
            "peak_rss_mb": _rss_mb(),
        }
    import arviz as az

    from bayesmix.engines.gibbs import sample_gibbs
    from bayesmix.spec import load_spec

    dr = sample_gibbs(
        load_spec("dp"),
        x,
        algorithm=cell["engine"],
        chains=cell["chains"],
        draws=cell["draws"],
        tune=cell["tune"],
        seed=SEED,
        progress=False,
        cores=cell.get("cores"),
        threads=cell.get("threads"),
    )
    wall = time.perf_counter() - t0
    info = dr.info
    kplus = dr.sample_stats["n_occupied"].astype(float)
    ll = dr.sample_stats["log_likelihood"]
    chain_s = float(np.sum(info["chain_sweep_s"]) + np.sum(info["chain_post_s"]))
    sweeps = info["sweeps"]
    last = dr.z[:, -10:].reshape(-1, dr.z.shape[-1])
    counts = np.bincount(kplus.astype(int).ravel())
    out = {
        "wall_s": wall,
        "sampling_s": dr.timing["sampling_s"],
        "s_per_sweep": float(np.median(info["chain_sweep_s"])) / sweeps,
        "chain_s": chain_s,
        "ess_kplus": ess(kplus),
        "ess_ll": ess(ll),
        "rhat_kplus": float(az.rhat(kplus)) if kplus.std() > 0 else 1.0,
        "kplus_mode": int(counts.argmax()),
        "p_mode": float(counts.max() / kplus.size),
        "p_truth": float(counts[K0] / kplus.size) if len(counts) > K0 else 0.0,
        "ari_last": float(np.mean([adjusted_rand_score(truth, zz) for zz in last])),
        "threads_per_chain": info.get("threads_per_chain"),
        "workers": info.get("workers"),
        "sm_accept": info.get("split_merge_accept_rate"),
        "cap_hits": info.get("slice_capacity_hits"),
        "peak_rss_mb": _rss_mb(),
    }
    for key in ("kplus", "ll"):
        out[f"ess_per_s_{key}"] = out[f"ess_{key}"] / chain_s if chain_s > 0 else math.nan
    return out


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def spawn(cell: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run a cell in a fresh process; its result, or the error."""
    cmd = [sys.executable, "-m", "benchmarks.large_n", "--cell", json.dumps(cell)]
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return cell | {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        return cell | {"ok": False, "error": proc.stderr[-1500:]}
    res = json.loads(lines[-1][len(MARK) :])
    return cell | res | {"ok": True, "process_s": time.perf_counter() - t0}


# --------------------------------------------------------------------------
# The grid
# --------------------------------------------------------------------------


def grid(quick: bool) -> list[dict[str, Any]]:
    """The cells, in run order: (N, D) x engine, with chains and sweeps sized to the budget."""
    f = 0.25 if quick else 1.0

    def c(n, d, engine, chains, tune, draws, part, **kw):
        return {"n": n, "d": d, "engine": engine, "chains": chains,
                "tune": max(5, int(tune * f)), "draws": max(10, int(draws * f)), "part": part,
                **kw}  # fmt: skip

    cells = []
    for n, sub, coll, blk in (
        (1_000, (4, 200, 1000), (4, 200, 1000), (4, 200, 1000)),
        (10_000, (4, 200, 1000), (4, 100, 400), (4, 200, 1000)),
        (100_000, (4, 100, 300), (2, 10, 30), (2, 50, 150)),
        (1_000_000, (2, 40, 100), (1, 2, 3), (1, 10, 20)),
    ):
        cells += [
            c(n, 2, "subcluster", *sub, "n"),
            c(n, 2, "collapsed", *coll, "n"),
            c(n, 2, "blocked", *blk, "n"),
            c(n, 2, "sklearn", 0, 0, 0, "n"),
        ]
    for d in (10, 30):
        cells += [
            c(100_000, d, "subcluster", 2, 50, 150, "d"),
            c(100_000, d, "collapsed", 1, 2, 5, "d"),
            c(100_000, d, "blocked", 2, 20, 60, "d"),
            c(100_000, d, "sklearn", 0, 0, 0, "d"),
        ]
    # the 2-core target (one chain, both threads) and threads within vs processes across
    cells += [
        c(1_000_000, 2, "subcluster", 1, 0, 100, "target", cores=2, threads=2),
        c(100_000, 2, "subcluster", 2, 20, 100, "threads", cores=2, threads=1),
        c(100_000, 2, "subcluster", 2, 20, 100, "threads", cores=2, threads=2),
    ]
    return cells


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def _f(v: Any, fmt: str = ",.0f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, fmt)


def render(rep: dict[str, Any]) -> str:
    prov = rep["provenance"]
    lines = [
        "# Large N: sub-cluster vs collapsed vs blocked Gibbs, and scikit-learn",
        "",
        f"`{prov['command']}`, {prov['date']}; {rep['run_s']:.0f} s in all.",
        "",
        f"- Machine: {prov['machine']}; git {prov['git']}; load average (1, 5, 15 min) at "
        f"start {[round(v, 2) for v in rep['load_average']['start']]}, at end "
        f"{[round(v, 2) for v in rep['load_average']['end']]}.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in prov["versions"].items()) + ".",
        "- "
        + __doc__.split("Data (``make``):")[1].split("Per cell:")[0].strip().replace("\n", " "),
        "",
        "## Reading",
        "",
        *rep["reading"],
        "",
        "## Engines by N (2-D) and by D (N = 100,000)",
        "",
        "| N | D | engine | chains x (tune + draws) | s / sweep | ESS/s K+ | ESS/s log-lik | "
        "R-hat K+ | K+ mode (P) | P(K+ = 6) | ARI | peak RSS MB |",
        "|---:|---:|---|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in rep["cells"]:
        if r["part"] not in ("n", "d"):
            continue
        head = f"| {r['n']:,} | {r['d']} | {r['engine']} | "
        if not r.get("ok"):
            lines.append(head + f"failed: {r.get('error', '')[:80]!r} ||||||||")
            continue
        if r["engine"] == "sklearn":
            lines.append(
                head + f"- | {_f(r['wall_s'], '.2f')} s in all | - | - | - | "
                f"{r['k_weight']} with w > 0.01, {r['k_labels']} labels | - | "
                f"{_f(r['ari'], '.3f')} | {_f(r['peak_rss_mb'])} |"
            )
            continue
        lines.append(
            head
            + f"{r['chains']} x ({r['tune']} + {r['draws']}) | {_f(r['s_per_sweep'], '.4f')} | "
            f"{_f(r['ess_per_s_kplus'], ',.1f')} | {_f(r['ess_per_s_ll'], ',.1f')} | "
            f"{_f(r['rhat_kplus'], '.3f')} | {r['kplus_mode']} ({r['p_mode']:.2f}) | "
            f"{r['p_truth']:.2f} | {_f(r['ari_last'], '.3f')} | {_f(r['peak_rss_mb'])} |"
        )
    lines += [
        "",
        "ESS/s: ESS over all chains / summed chain seconds (sweeps and per-chain "
        "post-processing). Rows with few sweeps (collapsed and blocked at large N) measure "
        "the seconds per sweep; their ESS and R-hat mean little.",
        "",
        "## The 2-core target and the choice of threads within a chain",
        "",
        "| cell | chains | threads per chain | chains at once | sweeps | s / sweep | wall s | "
        "K+ mode | ARI |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rep["cells"]:
        if r["part"] not in ("target", "threads") or not r.get("ok"):
            continue
        lines.append(
            f"| {r['part']} N={r['n']:,} | {r['chains']} | {r['threads_per_chain']} | "
            f"{r['workers']} | {r['tune'] + r['draws']} | {_f(r['s_per_sweep'], '.4f')} | "
            f"{_f(r['sampling_s'], '.1f')} | {r['kplus_mode']} | {_f(r['ari_last'], '.3f')} |"
        )
    return "\n".join(lines) + "\n"


def reading(cells: list[dict[str, Any]]) -> list[str]:
    """The figures the issue's targets ask for, stated as met or not."""
    out = []
    by = {(r["n"], r["d"], r["engine"], r["part"]): r for r in cells if r.get("ok")}
    tgt = by.get((1_000_000, 2, "subcluster", "target"))
    if tgt:
        s100 = 100 * tgt["s_per_sweep"]
        out.append(
            f"- N = 10^6, D = 2: 100 sub-cluster sweeps of one chain on both cores take "
            f"{s100:.1f} s (target <= 20 s: {'met' if s100 <= 20 else 'not met'})."
        )
    for n in (1_000, 10_000, 100_000, 1_000_000):
        sub, col = by.get((n, 2, "subcluster", "n")), by.get((n, 2, "collapsed", "n"))
        if sub and col:
            out.append(
                f"- N = {n:,}: sub-cluster / collapsed seconds per sweep "
                f"{sub['s_per_sweep'] / col['s_per_sweep']:.3f}; ESS/s of K+ "
                f"{_f(sub['ess_per_s_kplus'], ',.1f')} vs {_f(col['ess_per_s_kplus'], ',.1f')}; "
                f"sub-cluster K+ mode {sub['kplus_mode']} (truth 6), R-hat {sub['rhat_kplus']:.3f}."
            )
    th = [r for r in cells if r.get("ok") and r["part"] == "threads"]
    if len(th) == 2:
        one, two = sorted(th, key=lambda r: r["threads_per_chain"])
        out.append(
            f"- Two chains at N = 100,000: at once with 1 thread each, {one['sampling_s']:.1f} s; "
            f"one after the other with 2 threads each, {two['sampling_s']:.1f} s."
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.large_n", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a quarter of the sweeps")
    ap.add_argument("--out", default=str(ROOT / "reports" / "benchmarks"))
    ap.add_argument("--only", default=None, help="comma-separated parts: n, d, target, threads")
    ap.add_argument("--cell", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per cell")
    args = ap.parse_args(argv)
    if args.cell:
        print(MARK + json.dumps(run_cell(json.loads(args.cell))), flush=True)
        return 0
    t0 = time.perf_counter()
    load0 = os.getloadavg()
    cells = grid(args.quick)
    if args.only:
        parts = set(args.only.split(","))
        cells = [c for c in cells if c["part"] in parts]
    results = []
    out = Path(args.out)
    name = "large_n_quick" if args.quick else "large_n"
    try:
        for j, cell in enumerate(cells, 1):
            r = spawn(cell, args.timeout)
            results.append(r)
            state = f"{r.get('s_per_sweep', r.get('wall_s', 0)):.4g}" if r.get("ok") else "FAILED"
            print(f"[{j}/{len(cells)}] {cell['part']} N={cell['n']} D={cell['d']} "
                  f"{cell['engine']}: {state}", file=sys.stderr, flush=True)  # fmt: skip
    except KeyboardInterrupt:
        print("stopped: writing the cells done so far", file=sys.stderr)
    rep = {
        "provenance": provenance(["benchmarks.large_n", *(argv or sys.argv[1:])]),
        "seed": SEED,
        "run_s": time.perf_counter() - t0,
        "load_average": {"start": load0, "end": os.getloadavg()},
        "cells": results,
        "complete": len(results) == len(cells),
    }
    rep["reading"] = reading(results)
    write_json(out / f"{name}.json", rep)
    from bayesmix.io import write_text

    write_text(out / f"{name}.md", render(rep))
    print(f"wrote {out / (name + '.md')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
