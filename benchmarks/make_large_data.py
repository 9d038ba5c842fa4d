"""Large synthetic data for the storage benchmarks: K well-separated Gaussian clusters.

    python -m benchmarks.make_large_data OUT.parquet [--n 100000] [--d 2] [--k 6] [--seed 20261202]

Defaults: 6 clusters in 2-D, centres on a circle of radius 10 (further dimensions: centre 0),
unit-variance spherical noise, weights proportional to 1..K (so the clusters differ in size),
seed 20261202 (``np.random.default_rng(seed)``). Written atomically as Parquet with float64
columns x0..x{D-1} (pyarrow); not committed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

DEFAULT_SEED = 20261202


def make_data(
    n: int, d: int = 2, k: int = 6, seed: int = DEFAULT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """(x (n, d), labels (n,)): cluster j has weight (j + 1) / sum, centre
    10 (cos 2 pi j / k, sin 2 pi j / k, 0, ..) and covariance I (pure; no I/O)."""
    if n < 1 or d < 1 or k < 1:
        raise ValueError("n, d and k must be positive")
    rng = np.random.default_rng(seed)
    w = np.arange(1, k + 1, dtype=float)
    w /= w.sum()
    labels = rng.choice(k, size=n, p=w)
    centres = np.zeros((k, d))
    angle = 2 * np.pi * np.arange(k) / k
    centres[:, 0] = 10 * np.cos(angle)
    if d > 1:
        centres[:, 1] = 10 * np.sin(angle)
    x = centres[labels] + rng.standard_normal((n, d))
    return x, labels


def write_parquet(path: Path, x: np.ndarray) -> Path:
    """Atomically write x as Parquet, columns x0..x{D-1} (float64)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bayesmix.io import atomic_write

    table = pa.table({f"x{j}": x[:, j] for j in range(x.shape[1])})
    return atomic_write(path, lambda p: pq.write_table(table, p))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="Parquet file to write")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=2)
    ap.add_argument("--k", type=int, default=6)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    a = ap.parse_args(argv)
    x, _ = make_data(a.n, a.d, a.k, a.seed)
    write_parquet(a.out, x)
    print(f"wrote {a.out}: N = {a.n:,}, D = {a.d}, K = {a.k}, seed {a.seed}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
