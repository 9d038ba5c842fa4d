"""Convergence diagnostics of label-invariant quantities, with advice (ArviZ on numpy arrays)."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np

RHAT_MAX = 1.01
ESS_MIN_PER_CHAIN = 100


def diagnose(values: np.ndarray) -> dict:
    """R-hat, ESS bulk/tail and MCSE of the mean for a (chain, draw) array.

    A quantity that is constant in every draw has nothing to diagnose: R-hat 1 and
    ESS equal to the number of draws.
    """
    v = np.asarray(values, dtype=float)
    if np.ptp(v) == 0:
        return {
            "r_hat": 1.0,
            "ess_bulk": float(v.size),
            "ess_tail": float(v.size),
            "mcse_mean": 0.0,
        }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = {
            "r_hat": float(az.rhat(v)),
            "ess_bulk": float(az.ess(v)),
            "ess_tail": float(az.ess(v, method="tail", prob=(0.05, 0.95))),
            "mcse_mean": float(az.mcse(v)),
        }
    return {k: (1.0 if k == "r_hat" and not np.isfinite(x) else x) for k, x in out.items()}


def diagnostics(
    quantities: dict[str, np.ndarray], divergences: int | None, engine: str = ""
) -> dict:
    """Diagnose each (chain, draw) quantity and turn failures into actionable warnings."""
    per = {name: diagnose(v) for name, v in quantities.items()}
    n_chains = next(iter(quantities.values())).shape[0]
    warn: list[str] = []
    min_ess = ESS_MIN_PER_CHAIN * n_chains
    for name, d in per.items():
        problems = []
        if n_chains > 1 and d["r_hat"] > RHAT_MAX:
            problems.append(f"R-hat {d['r_hat']:.3f} > {RHAT_MAX}")
        for kind, label in (("ess_bulk", "ESS bulk"), ("ess_tail", "ESS tail")):
            if d[kind] < min_ess:
                problems.append(f"{label} {d[kind]:.0f} < {min_ess}")
        if problems:
            warn.append(
                f"{', '.join(problems)} for {name}: run more draws (--draws, --tune)"
                + (
                    "; with conjugate priors --engine collapsed mixes far better"
                    if name == "K+" and engine.startswith("nuts")
                    else ""
                )
            )
    if divergences:
        warn.append(
            f"{divergences} divergent transitions: the sampler missed part of the posterior; "
            "treat the result with care, increase --tune, or use a Gibbs engine"
        )
    if n_chains == 1:
        warn.append("only one chain: R-hat cannot detect non-convergence; run --chains 4")
    return {
        "quantities": per,
        "max_r_hat": max(d["r_hat"] for d in per.values()),
        "min_ess_bulk": min(d["ess_bulk"] for d in per.values()),
        "min_ess_tail": min(d["ess_tail"] for d in per.values()),
        "divergences": divergences,
        "warnings": warn,
    }
