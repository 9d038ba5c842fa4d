"""Benchmark: relabelling + point partition on S = 4,000 draws x N = 1,000 observations.

    python -m benchmarks.clustering [--draws 4000] [--n 1000] [--k 20] [--seed 0]

Synthetic posterior: 4 true clusters in 2-D, K = 20 components per draw (16 nearly empty),
labels randomly permuted in every draw, 3% of allocations perturbed. Times ECR, Stephens'
KL relabelling (from ECR), the PSM + SALSO (VI) point estimate and the 95% credible ball,
after one warm-up on a small problem (numba JIT excluded). Writes
reports/benchmarks/clustering.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from bayesmix.io import write_json, write_text
from bayesmix.posterior import partition, relabel
from bayesmix.versions import versions

OUT = Path("reports/benchmarks")


def synthetic_posterior(s: int, n: int, k: int, seed: int):
    """Draws (w, mu, cov, z) of a 4-cluster 2-D posterior with label switching."""
    rng = np.random.default_rng(seed)
    centres = np.array([[-4.0, 0.0], [4.0, 0.0], [0.0, 4.0], [0.0, -4.0]])
    truth = rng.integers(4, size=n)
    x = centres[truth] + rng.normal(size=(n, 2))
    w = np.full((s, k), 0.01 / (k - 4))
    w[:, :4] = 0.99 / 4
    mu = np.concatenate([np.broadcast_to(centres, (s, 4, 2)), rng.normal(0, 6, (s, k - 4, 2))], 1)
    mu = mu + rng.normal(0, 0.05, mu.shape)
    cov = np.broadcast_to(np.eye(2), (s, k, 2, 2)).copy()
    z = np.broadcast_to(truth, (s, n)).copy()
    noise = rng.random((s, n)) < 0.03
    z[noise] = rng.integers(k, size=noise.sum())
    perms = np.argsort(rng.random((s, k)), axis=1)  # new label of old label
    z, w, mu, cov = relabel.apply_permutation(perms, z=z, w=w, mu=mu, cov=cov)
    return x, w, mu, cov, z


def run(s: int, n: int, k: int, seed: int) -> dict:
    """Time each step; returns seconds per step and the total."""
    x, w, mu, cov, z = synthetic_posterior(s, n, k, seed)
    timings = {}
    t = time.perf_counter()
    perms = relabel.ecr(z, K=k, seed=seed)
    timings["ecr_s"] = time.perf_counter() - t
    t = time.perf_counter()
    probs = relabel.classification_probs(w, mu, cov, x, dtype=np.float32)
    timings["classification_probs_s"] = time.perf_counter() - t
    t = time.perf_counter()
    relabel.stephens(probs, init_perms=perms)
    timings["stephens_s"] = time.perf_counter() - t
    t = time.perf_counter()
    p = partition.psm(z)
    labels, _ = partition.salso(z, loss="VI", seed=seed, psm=p)
    timings["psm_salso_s"] = time.perf_counter() - t
    t = time.perf_counter()
    partition.credible_ball(labels, z)
    timings["credible_ball_s"] = time.perf_counter() - t
    timings["total_s"] = sum(timings.values())
    timings["n_clusters_found"] = int(labels.max() + 1)
    return timings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=4000)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    run(200, 100, args.k, args.seed)  # warm-up: numba JIT / cache load
    res = run(args.draws, args.n, args.k, args.seed)
    record = {
        "settings": vars(args),
        "seconds": res,
        "target_total_s": 30.0,
        "machine": {"cpus": __import__("os").cpu_count(), "platform": platform.platform()},
        "versions": versions(),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    write_json(OUT / "clustering.json", record)
    rows = "\n".join(f"| {key[:-2]} | {v:.2f} |" for key, v in res.items() if key.endswith("_s"))
    write_text(
        OUT / "clustering.md",
        f"# Relabelling + point partition: {args.draws} draws x N = {args.n}, K = {args.k}\n\n"
        f"Command: `python -m benchmarks.clustering`; seed {args.seed}; "
        f"{record['machine']['cpus']} CPUs. Target: total under 30 s.\n\n"
        f"| step | seconds |\n|---|---|\n{rows}\n\n"
        f"Point partition found {res['n_clusters_found']} clusters (truth: 4).\n",
    )
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
