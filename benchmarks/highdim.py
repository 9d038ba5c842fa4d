"""The 20-D check of the default model: N = 500, three well-separated clusters.

Data: ``benchmarks.recovery.make_means`` (K0 = 3 orthonormal directions, every pair of means
6 SD apart), identity covariances, 167/167/166 points, seed 20261201
(``np.random.default_rng``). Fits ``bayesmix.fit`` with the default model (``--model`` to
change it) and EM + BIC (full, diagonal and spherical families, ``bayesmix.classical``), and
writes ``reports/benchmarks/highdim.json`` atomically, with the versions,
the seed and the command.

Usage: ``python -m benchmarks.highdim [--model NAME] [--seed 20261201] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bayesmix.spec import DEFAULT_MODEL
from bayesmix.versions import versions
from benchmarks.common import write_json
from benchmarks.recovery import component_sizes, make_means

DIM, N, K0, SEP = 20, 500, 3, 6.0


def make(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, z): the data set and its true labels."""
    rng = np.random.default_rng(seed)
    means = make_means(K0, DIM, SEP, rng)
    z = np.repeat(np.arange(K0), component_sizes(N, K0))
    x = means[z] + rng.standard_normal((N, DIM))
    perm = rng.permutation(N)
    return x[perm], z[perm]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.highdim", description=__doc__)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("--out", default="reports/benchmarks")
    args = ap.parse_args(argv)
    from bayesmix.classical import em_selection
    from bayesmix.fit import fit

    x, _ = make(args.seed)
    t0 = time.perf_counter()
    res = fit(x, args.model, seed=args.seed, progress=False)
    secs = time.perf_counter() - t0
    s = res.summary
    counts = {"K+": _short(s["n_clusters"])}
    if s.get("n_components"):
        counts["K"] = _short(s["n_components"])
    em = em_selection(x, families=("full", "diag", "spherical"))
    out = {
        "command": " ".join(["python -m benchmarks.highdim", *(argv or sys.argv[1:])]),
        "seed": args.seed, "model": args.model, "data": {"D": DIM, "N": N, "K0": K0, "sep": SEP},
        "counts": counts, "kernel_choice": s.get("kernel_choice"),
        "point_partition_clusters": s["partition"]["n_clusters"],
        "em_bic_best_k": {f: v["best_bic"] for f, v in em["families"].items()},
        "max_r_hat": s["diagnostics"].get("max_r_hat"), "seconds": round(secs, 1),
        "versions": versions(),
    }  # fmt: skip
    print(json.dumps(out, indent=1, default=str))
    write_json(Path(args.out) / "highdim.json", out)
    return 0


def _short(block: dict) -> dict:
    """mode, P(mode), 90% set of a count's posterior block in summary.json."""
    pmf = block["pmf"]
    return {"mode": block["mode"], "p_mode": pmf[str(block["mode"])],
            "credible_set_90": block["credible_set_90"]}  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
