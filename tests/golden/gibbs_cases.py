"""The golden cases of the Gibbs engines: specs x data x algorithms whose draws must stay
bit-identical across refactorings of the engine code (``tests/test_golden_gibbs.py``).

``python -m tests.golden.gibbs_cases`` rewrites ``gibbs_golden.npz`` from the current code:
do that only when a change of the draws is intended, and say why in the commit message.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bayesmix.engines.gibbs import sample_gibbs
from bayesmix.spec import GammaPrior, KernelSpec, MixingSpec, ModelSpec

GOLDEN = Path(__file__).with_name("gibbs_golden.npz")
FIELDS = ("w", "mu", "cov", "z", "concentration")


def data(d: int) -> np.ndarray:
    """40 standardised points in three groups (fixed seed)."""
    rng = np.random.default_rng(123 + d)
    centres = np.array([[-2.0, 0.5], [0.0, -1.0], [2.0, 1.0]])[:, :d]
    x = centres[np.arange(40) % 3] + 0.6 * rng.normal(size=(40, d))
    return (x - x.mean(0)) / x.std(0, ddof=1)


def cases() -> dict[str, tuple[ModelSpec, np.ndarray, str]]:
    out = {}
    mixings = {
        "dp_random": MixingSpec("dp", 8, None, GammaPrior(2.0, 4.0)),
        "dp_fixed": MixingSpec("dp", 8, 0.7, None),
        "finite_random": MixingSpec("finite", 5, None, GammaPrior(3.0, 3.0)),
        "finite_fixed": MixingSpec("finite", 5, 0.5, None),
    }
    kernels = {"1d": (1, "full"), "full2d": (2, "full"), "diag2d": (2, "diag")}
    for mname, mix in mixings.items():
        for kname, (d, cov) in kernels.items():
            spec = ModelSpec(mixing=mix, kernel=KernelSpec(covariance=cov, kappa0=0.1))
            for algorithm in ("collapsed", "blocked"):
                out[f"{algorithm}-{mname}-{kname}"] = (spec, data(d), algorithm)
    return out


def run(spec: ModelSpec, x: np.ndarray, algorithm: str) -> dict[str, np.ndarray]:
    dr = sample_gibbs(
        spec, x, algorithm=algorithm, chains=2, draws=25, tune=15, seed=2026, progress=False,
        cores=1,
    )  # fmt: skip
    out = {f: getattr(dr, f) for f in FIELDS if getattr(dr, f) is not None}
    out["log_likelihood"] = dr.sample_stats["log_likelihood"]
    out["n_occupied"] = dr.sample_stats["n_occupied"]
    return out


def main() -> None:
    arrays = {}
    for name, (spec, x, algorithm) in cases().items():
        for key, value in run(spec, x, algorithm).items():
            arrays[f"{name}/{key}"] = np.asarray(value)
    np.savez_compressed(GOLDEN, **arrays)
    print(f"wrote {GOLDEN} ({len(arrays)} arrays)")


if __name__ == "__main__":
    main()
