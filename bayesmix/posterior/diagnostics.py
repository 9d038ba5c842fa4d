"""Convergence and mixing diagnostics of label-invariant quantities, with advice.

ArviZ computes R-hat (rank-normalised, split; Vehtari et al. 2021), bulk and tail ESS and the
MCSE from (chain, draw) numpy arrays. A number that cannot be computed is never replaced by a
reassuring one: a non-finite R-hat or ESS is stored as ``None`` with a reason, fails its check
and produces a warning that says what happened.
"""

from __future__ import annotations

import math
import warnings

import arviz_stats as az  # the statistics only: arviz itself also loads the plotting stack
import numpy as np

from bayesmix.engines.names import Engine

RHAT_MAX = 1.01
ESS_MIN_PER_CHAIN = 100
SPLIT_MERGE_MIN_ACCEPT = 0.01
STATS = ("r_hat", "ess_bulk", "ess_tail", "mcse_mean")


def _per_chain_values(v: np.ndarray) -> list[str]:
    """The value each chain stays at, when every chain is constant."""
    return [f"{row[0]:g}" for row in v]


def _reason(name: str, v: np.ndarray, stat: str, value: float) -> str:
    """Why ``stat`` of quantity ``name`` is not finite, in words."""
    if not np.all(np.isfinite(v)):
        return f"the draws of {name} contain NaN or infinite values"
    if np.ptp(v) == 0:
        return f"{name} = {v.flat[0]:g} in every draw of every chain: nothing moved"
    constant_chains = np.ptp(v, axis=1) == 0
    if constant_chains.all():
        return (
            f"the chains disagree: each stays at a different {name} "
            f"({', '.join(_per_chain_values(v))})"
        )
    if constant_chains.any():
        return f"{int(constant_chains.sum())} of {v.shape[0]} chains never changed {name}"
    return f"ArviZ returned {value} for {stat}"


def diagnose(values: np.ndarray, name: str = "value") -> dict:
    """R-hat, ESS bulk/tail and MCSE of the mean for a (chain, draw) array.

    Returns floats, or ``None`` for a statistic that is not finite (e.g. R-hat = inf when
    every chain is constant at a different value), with the reason in ``notes[stat]``.
    """
    v = np.asarray(values, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        raw = {
            "r_hat": float(az.rhat(v)) if v.shape[0] > 1 else math.nan,
            "ess_bulk": float(az.ess(v)),
            "ess_tail": float(az.ess(v, method="tail", prob=(0.05, 0.95))),
            "mcse_mean": float(az.mcse(v)),
        }
    out: dict = {"notes": {}}
    for stat, value in raw.items():
        if stat == "r_hat" and v.shape[0] == 1:
            out[stat] = None
            out["notes"][stat] = "one chain: R-hat needs at least two"
        elif math.isfinite(value):
            out[stat] = value
        else:
            out[stat] = None
            out["notes"][stat] = _reason(name, v, stat, value)
            if stat == "r_hat" and value == math.inf:
                out["r_hat_infinite"] = True
    return out


def mixing_check(
    kplus: np.ndarray,
    engine: Engine | str,
    split_merge_accept: list[float] | None = None,
    collapsible: bool = True,
) -> list[str]:
    """Warnings for Gibbs chains that do not move between partitions.

    A chain whose K+ never changed, or (collapsed engine) whose split-merge acceptance rate is
    below ``SPLIT_MERGE_MIN_ACCEPT``, explores one number of clusters only. ``collapsible``:
    whether the advice may name the collapsed engine (not for semi-conjugate kernels).
    """
    eng = Engine.parse(engine)
    if not eng.is_gibbs:
        return []
    k = np.asarray(kplus)
    if np.ptp(k) == 0:  # constant everywhere: one warning, from ``constant_warning``
        return []
    out = []
    still = [c for c in range(k.shape[0]) if np.ptp(k[c]) == 0]
    if still:
        which = ", ".join(f"{c} (K+ = {int(k[c, 0])})" for c in still)
        other = (
            "; or use --engine collapsed (split-merge moves)"
            if eng is Engine.GIBBS and collapsible
            else ""
        )
        out.append(
            f"K+ never changed within chain(s) {which}: the sampler did not move between "
            "numbers of clusters, so the posterior of K+ may only reflect where it started; run "
            f"longer (--draws, --tune) and compare another --seed{other}"
        )
    if split_merge_accept is not None:
        low = [(c, a) for c, a in enumerate(split_merge_accept) if a < SPLIT_MERGE_MIN_ACCEPT]
        if low:
            rates = ", ".join(f"chain {c}: {100 * a:.2f}%" for c, a in low)
            out.append(
                f"split-merge acceptance below {100 * SPLIT_MERGE_MIN_ACCEPT:.0f}% ({rates}): "
                "clusters are rarely split or merged, so K+ moves slowly; run longer "
                "(--draws) and check that several --seed values agree"
            )
    return out


def constant_warning(
    name: str, v: np.ndarray, engine: Engine | None, sm: list | None, collapsible: bool = True
) -> str:
    """The one warning for a quantity equal in every draw of every chain."""
    rate = ""
    if sm:
        rate = f" (split-merge acceptance {100 * max(sm):.2f}% at most)"
    gibbs = engine is Engine.GIBBS and collapsible
    extra = "; --engine collapsed has split-merge moves" if gibbs else ""
    if engine is Engine.SUBCLUSTER and name == "K+" and v.flat[0] != 1:
        return (  # its chains start from one cluster, so each of them moved to this K+
            f"K+ = {v.flat[0]:g} in every draw of every chain{rate}; every chain started from "
            "one cluster and reached it during tuning, so the posterior is likely sure of it, "
            "but R-hat and ESS cannot confirm it; another --seed checks"
        )
    return (
        f"{name} = {v.flat[0]:g} in every draw of every chain{rate}: either the posterior is "
        "sure of it, or no chain ever left its starting partition; R-hat and ESS cannot tell "
        f"which. Rerun with another --seed and more --tune to check{extra}"
    )


def _fmt(value: float | None, spec: str) -> str:
    return "∞" if value == math.inf else ("n/a" if value is None else format(value, spec))


def diagnostics(
    quantities: dict[str, np.ndarray],
    divergences: int | None,
    engine: Engine | str = "",
    split_merge_accept: list[float] | None = None,
    collapsible: bool = True,
) -> dict:
    """Diagnose each (chain, draw) quantity and turn failures into actionable warnings.

    ``quantities`` maps names (``K+``, ``alpha``, ``log_likelihood``) to (chain, draw) arrays.
    Every check fails when its statistic is missing: R-hat > 1.01 or not finite; ESS bulk or
    tail below 100 per chain or not finite. Gibbs engines also get ``mixing_check``.
    """
    eng = Engine.parse(engine) if engine else None
    per = {name: diagnose(v, name) for name, v in quantities.items()}
    n_chains = next(iter(quantities.values())).shape[0]
    warn: list[str] = []
    moving: list[str] = []  # warnings about chains that do not move between partitions
    min_ess = ESS_MIN_PER_CHAIN * n_chains
    for name, d in per.items():
        v = np.asarray(quantities[name])
        if np.ptp(v) == 0 and np.all(np.isfinite(v)):
            text = constant_warning(name, v, eng, split_merge_accept, collapsible)
            warn.append(text)
            if name == "K+":
                moving.append(text)
            continue
        problems = []
        if n_chains > 1:
            if d["r_hat"] is None:
                value = "∞" if d.get("r_hat_infinite") else "not finite"
                problems.append(f"R-hat {value} ({d['notes']['r_hat']})")
            elif d["r_hat"] > RHAT_MAX:
                problems.append(f"R-hat {d['r_hat']:.3f} > {RHAT_MAX}")
        for kind, label in (("ess_bulk", "ESS bulk"), ("ess_tail", "ESS tail")):
            if d[kind] is None:
                if "r_hat" in d["notes"] and d["notes"][kind] == d["notes"]["r_hat"]:
                    problems.append(f"{label} not finite")
                else:
                    problems.append(f"{label} not finite ({d['notes'][kind]})")
            elif d[kind] < min_ess:
                problems.append(f"{label} {d[kind]:.0f} < {min_ess}")
        if problems:
            advice = "run more draws (--draws, --tune)"
            if name == "K+" and eng is Engine.NUTS and collapsible:
                advice += "; with conjugate priors --engine collapsed mixes far better"
            elif name == "K+" and eng is Engine.NUTS:
                advice += "; --engine gibbs (blocked Gibbs) runs the same semi-conjugate model"
            elif name == "K+" and eng is Engine.GIBBS and collapsible:
                advice += "; --engine collapsed (split-merge moves) mixes K+ faster"
            warn.append(f"{'; '.join(problems)} for {name}: {advice}")
    if eng is not None:
        kplus = quantities.get("K+")
        if kplus is not None:
            extra = mixing_check(kplus, eng, split_merge_accept, collapsible)
            warn += extra
            moving += extra
    if divergences:
        warn.append(
            f"{divergences} divergent transitions: the sampler missed part of the posterior; "
            "treat the result with care, increase --tune, or use a Gibbs engine "
            f"(--engine {'collapsed' if collapsible else 'gibbs'})"
        )
    if n_chains == 1:
        warn.append("only one chain: R-hat cannot detect non-convergence; run --chains 4")
    rhats = [d["r_hat"] for d in per.values()]
    finite = n_chains > 1 and all(r is not None for r in rhats)
    return {
        "quantities": per,
        "max_r_hat": max(rhats) if finite else None,
        "r_hat_ok": bool(finite and max(rhats) <= RHAT_MAX),
        "min_ess_bulk": _min_or_none(d["ess_bulk"] for d in per.values()),
        "min_ess_tail": _min_or_none(d["ess_tail"] for d in per.values()),
        "divergences": divergences,
        "split_merge_accept_rate": split_merge_accept,
        "mixing": {
            "checked": bool(eng is not None and eng.is_gibbs or moving),
            "warnings": moving,
        },
        "warnings": warn,
    }


def _min_or_none(values) -> float | None:
    vals = list(values)
    return None if any(v is None for v in vals) else min(vals)


def headline(diag: dict) -> str:
    """'max R-hat 1.002, min ESS bulk 2239' — '∞' / 'n/a' where a statistic is missing."""
    worst = None
    for q in diag["quantities"].values():
        if q.get("r_hat_infinite"):
            worst = math.inf
    rhat = worst if worst is not None else diag.get("max_r_hat")
    return f"max R-hat {_fmt(rhat, '.3f')}, min ESS bulk {_fmt(diag.get('min_ess_bulk'), '.0f')}"


def pmf_mcse(indicator: np.ndarray) -> float | None:
    """MCSE of the mean of a (chain, draw) array, e.g. of 1[K+ = k] for P(K+ = k) (ArviZ)."""
    v = np.asarray(indicator, dtype=float)
    if np.ptp(v) == 0:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        value = float(az.mcse(v))
    return value if math.isfinite(value) else None
