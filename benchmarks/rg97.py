"""Richardson & Green (1997) reproduced: ``models/rg97.toml`` on ``galaxies_rg97`` against
Peter Green's Nmix (the authors' reversible-jump program) on the same model and data.

The model: K ~ U{1..30}, w | K ~ Dirichlet(1), mu_k ~ N(midrange, R^2),
sigma_k^-2 ~ Gamma(2, beta), beta ~ Gamma(0.2, 10 / R^2) (R the data range), i.e. a static MFM
with gamma = 1 and the semi-conjugate kernel with a hierarchical scale, sampled here by the
telescoping Gibbs sampler (Fruehwirth-Schnatter, Malsiner-Walli & Gruen 2021).

Reference (``NMIX``): Nmix run with the RG97 defaults, 5,000,000 sweeps after a 100,000-sweep
burn-in, two seeds pooled (they agree within |z| <= 1.7); batch-means SEs <= 0.0015 per cell.
Nmix ran at about 125,000 sweeps/s on galaxy on one core of this machine kind, and its k mixes
in 100-200 sweeps: roughly 500-1,000 effective draws of k per second.

Figures: p(K | y) and p(K+ | y) per cell with MCSE (ArviZ ESS of the indicator), the z-score
against Nmix (denominator sqrt(MCSE^2 + 0.0015^2), the Nmix SE bound), the total variation over
the cells 3..12 and the rest lumped together (Nmix publishes 3..12), and the noise floor of that
TV under equal posteriors, 0.5 sqrt(2/pi) sum_cells sqrt(MCSE^2 + 0.0015^2); ESS of K and of
K+ per CPU-second of sweeps (the figure comparable to Nmix's single-core rate) and per wall
second.

Usage: ``python -m benchmarks.rg97 [--draws 50000] [--thin 10] [--quick]``; writes
``reports/benchmarks/rg97.{md,json}``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bayesmix.io import write_text
from benchmarks.common import ROOT, provenance, write_json

OUT_DIR = ROOT / "reports" / "benchmarks"
CELLS = list(range(3, 13))
NMIX = {
    "K": [0.0606, 0.1340, 0.1880, 0.1957, 0.1581, 0.1088, 0.0681, 0.0394, 0.0219, 0.0119],
    "K+": [0.0704, 0.1607, 0.2286, 0.2287, 0.1589, 0.0868, 0.0402, 0.0164, 0.0063, 0.0022],
}
NMIX_SE = 0.0015  # upper bound of Nmix's batch-means SE per cell
NMIX_SWEEPS_PER_S = 125_000
NMIX_ESS_PER_S = (500, 1000)
TV_TARGET = 0.03
SEED = 20261201


def compare_pmf(values: np.ndarray, ref: list[float]) -> dict[str, Any]:
    """Cells 3..12 and the rest: p, MCSE, Nmix, z; TV and its noise floor."""
    import arviz as az

    rows, mcses = [], []
    for k, r in zip(CELLS, ref, strict=True):
        ind = (values == k).astype(float)
        p = float(ind.mean())
        se = float(az.mcse(ind)) if 0 < p < 1 else 0.0
        mcses.append(se)
        rows.append({"k": k, "p": p, "mcse": se, "nmix": r, "z": (p - r) / math.hypot(se, NMIX_SE)})
    rest = float(1.0 - sum(r["p"] for r in rows))
    ind = ~np.isin(values, CELLS)
    rest_se = float(az.mcse(ind.astype(float))) if 0 < rest < 1 else 0.0
    ref_rest = 1.0 - sum(ref)
    tv = 0.5 * (sum(abs(r["p"] - r["nmix"]) for r in rows) + abs(rest - ref_rest))
    floor = 0.5 * math.sqrt(2 / math.pi) * sum(math.hypot(se, NMIX_SE) for se in [*mcses, rest_se])
    return {
        "cells": rows,
        "rest": {"p": rest, "mcse": rest_se, "nmix": ref_rest},
        "tv": tv,
        "tv_noise_floor": floor,
        "max_abs_z": max(abs(r["z"]) for r in rows),
        "ess_bulk": float(az.ess(values.astype(float))),
        "rhat": float(az.rhat(values.astype(float))),
    }


def run(chains: int, draws: int, thin: int, tune: int) -> dict[str, Any]:
    from bayesmix.data import load_data
    from bayesmix.engines.gibbs import sample_gibbs
    from bayesmix.spec import load_spec

    data = load_data("galaxies_rg97")
    spec = load_spec("rg97")
    x = data.standardized
    sample_gibbs(spec, x, algorithm="blocked", chains=1, draws=5, tune=5, progress=False)  # JIT
    t0 = time.perf_counter()
    dr = sample_gibbs(
        spec, x, algorithm="blocked", chains=chains, draws=draws, tune=tune, thin=thin,
        seed=SEED, progress=False,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    cpu = float(sum(dr.info["chain_sweep_cpu_s"]))
    out: dict[str, Any] = {
        "chains": chains,
        "draws": draws,
        "thin": thin,
        "tune": tune,
        "seed": SEED,
        "algorithm": dr.info["algorithm"],
        "sweeps_per_chain": dr.info["sweeps"],
        "wall_s": wall,
        "sweep_cpu_s": cpu,
        "sweeps_per_cpu_s": chains * dr.info["sweeps"] / cpu,
        "workers": dr.info["workers"],
    }
    for name, values in (("K", dr.params["K"]), ("K+", dr.sample_stats["n_occupied"])):
        c = compare_pmf(np.asarray(values), NMIX[name])
        c["ess_per_cpu_s"] = c["ess_bulk"] / cpu
        c["ess_per_wall_s"] = c["ess_bulk"] / wall
        out[name] = c
    beta = dr.kernel_params["C0"][..., 0, 0] * data.scale[0] ** 2  # km^2/s^2
    out["beta"] = {
        "mean": float(beta.mean()),
        "q05": float(np.quantile(beta, 0.05)),
        "q95": float(np.quantile(beta, 0.95)),
    }
    return out


def markdown(res: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        "# Richardson & Green (1997) on galaxy: bayesmix against Nmix",
        "",
        f"Generated by `{meta['command']}` on {meta['date']} ({meta['machine']}); git "
        f"`{meta['git']}`.",
        "",
        "Model `models/rg97.toml` on `galaxies_rg97` (the galaxy velocities with RG97's 26,960 "
        "for row 78): K ~ U{1..30}, w | K ~ Dirichlet(1), mu ~ N(midrange, R^2), "
        "sigma^-2 ~ Gamma(2, beta), beta ~ Gamma(0.2, 10/R^2). bayesmix: the "
        f"{res['algorithm']} Gibbs sampler, {res['chains']} chains x {res['draws']:,} draws "
        f"(every {res['thin']}th of {res['sweeps_per_chain']:,} sweeps per chain after "
        f"{res['tune']:,} burn-in), seed {res['seed']}. Nmix: 5,000,000 sweeps after 100,000 "
        "burn-in, two seeds pooled, batch-means SE <= 0.0015 per cell.",
        "",
    ]
    for name, label in (("K", "p(K | y), components"), ("K+", "p(K+ | y), occupied clusters")):
        c = res[name]
        ok = c["tv"] <= TV_TARGET
        lines += [
            f"## {label}",
            "",
            "| k | " + " | ".join(str(r["k"]) for r in c["cells"]) + " | rest |",
            "|---|" + "---:|" * (len(c["cells"]) + 1),
            "| bayesmix | "
            + " | ".join(f"{r['p']:.4f}" for r in c["cells"])
            + f" | {c['rest']['p']:.4f} |",
            "| MCSE | "
            + " | ".join(f"{r['mcse']:.4f}" for r in c["cells"])
            + f" | {c['rest']['mcse']:.4f} |",
            "| Nmix | "
            + " | ".join(f"{r['nmix']:.4f}" for r in c["cells"])
            + f" | {c['rest']['nmix']:.4f} |",
            "| z | " + " | ".join(f"{r['z']:+.1f}" for r in c["cells"]) + " | |",
            "",
            f"TV = **{c['tv']:.4f}** (target <= {TV_TARGET}: {'met' if ok else '**not met**'}); "
            f"noise floor under equal posteriors {c['tv_noise_floor']:.4f}; max |z| "
            f"{c['max_abs_z']:.1f}; R-hat {c['rhat']:.3f}; ESS bulk {c['ess_bulk']:,.0f}.",
            "",
        ]
    k = res["K"]
    lines += [
        "## Speed",
        "",
        "| | sweeps/s (one core) | ESS of K per second | ESS of K+ per second |",
        "|---|---:|---:|---:|",
        f"| bayesmix ({res['algorithm']}, per CPU-second of sweeps) | "
        f"{res['sweeps_per_cpu_s']:,.0f} | {k['ess_per_cpu_s']:,.0f} | "
        f"{res['K+']['ess_per_cpu_s']:,.0f} |",
        f"| bayesmix (per wall second, {res['workers']} threads) | | "
        f"{k['ess_per_wall_s']:,.0f} | {res['K+']['ess_per_wall_s']:,.0f} |",
        f"| Nmix (reported, one core) | {NMIX_SWEEPS_PER_S:,} | "
        f"{NMIX_ESS_PER_S[0]:,}-{NMIX_ESS_PER_S[1]:,} | |",
        "",
        f"Posterior of beta (km^2/s^2): mean {res['beta']['mean']:.3g}, 90% interval "
        f"[{res['beta']['q05']:.3g}, {res['beta']['q95']:.3g}].",
        "",
        "## Versions",
        "",
        *(f"- {n}: {v}" for n, v in meta["versions"].items()),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--draws", type=int, default=50_000)
    ap.add_argument("--thin", type=int, default=10)
    ap.add_argument("--tune", type=int, default=5_000)
    ap.add_argument("--quick", action="store_true", help="4 x 5,000 draws (a smoke test)")
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    args = ap.parse_args(argv)
    if args.quick:
        args.draws, args.tune = 5_000, 1_000
    meta = provenance(["benchmarks.rg97", *(sys.argv[1:] if argv is None else argv)])
    res = run(args.chains, args.draws, args.thin, args.tune)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "rg97.json", {"meta": meta, "result": res})
    write_text(args.out / "rg97.md", markdown(res, meta))
    print(markdown(res, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
