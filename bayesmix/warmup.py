"""Compile and cache every numba kernel once (``python -m bayesmix.warmup``; ``make install``).

numba compiles the Gibbs samplers and the partition code on first use and caches them on disk;
the collapsed sampler alone takes about 40 s to compile on a 2-core machine. Running a tiny
fit of each engine here, at install time, moves that cost out of the user's first fit.
"""

from __future__ import annotations

import sys
import time

import numpy as np


def warm(verbose: bool = True) -> float:
    """Tiny fits (1-D and 2-D, collapsed and blocked Gibbs, with the cluster analysis) that
    compile, or load from the cache, every kernel with the argument types real fits use."""
    from bayesmix.fit import fit

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    x1 = np.concatenate([rng.normal(-3, 1, 15), rng.normal(3, 1, 15)])
    x2 = np.column_stack([x1, rng.normal(size=30)])
    for engine in ("collapsed", "gibbs"):
        for x in (x1, x2):
            fit(
                x, "dp", engine=engine, chains=1, draws=20, tune=10, progress=False, classical=False
            )
            if verbose:
                print(
                    f"bayesmix: compiled the {engine} engine ({x.ndim}-D), "
                    f"{time.perf_counter() - t0:.0f} s",
                    file=sys.stderr,
                )
    return time.perf_counter() - t0


if __name__ == "__main__":
    print("bayesmix: compiling the numba kernels once (about a minute the first time)...")
    print(f"bayesmix: kernels ready in {warm():.0f} s")
