"""Numbers behind the report (pure numpy; no plotting, no I/O)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bayesmix import format as F
from bayesmix.engines.names import Engine
from bayesmix.report.loader import Params

LEVEL = 0.9
MAX_DENSITY_DRAWS = 500
MAX_PSM_OBS = 1500
MAX_PSM_DRAWS = 1000  # draws behind the co-clustering figure


# --------------------------------------------------------------------------- formatting


def fnum(x: float | None, digits: int = 3) -> str:
    """A number with ``digits`` significant digits in plain notation with thousands separators
    (21,140, not 2.114e+04); '–' for None / NaN."""
    if x is None:
        return "–"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return F.significant(v, digits)


def finterval(iv: list | tuple | None, digits: int = 3) -> str:
    """'[lo, hi]' or '–'."""
    if iv is None or len(iv) != 2:
        return "–"
    return f"[{fnum(iv[0], digits)}, {fnum(iv[1], digits)}]"


def fset(values: list[int] | None) -> str:
    """{1, 2, 3} for a credible set."""
    return "{" + ", ".join(str(v) for v in (values or [])) + "}"


# --------------------------------------------------------------------------- K+


def pmf_arrays(pmf: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """{k: p} -> (k, p) sorted by k."""
    items = sorted((int(k), float(p)) for k, p in (pmf or {}).items())
    if not items:
        return np.zeros(0, dtype=int), np.zeros(0)
    k, p = zip(*items, strict=True)
    return np.asarray(k), np.asarray(p)


def k_display_limit(post: dict, prior: dict | None, mass: float = 0.95) -> int:
    """Largest k to show: the posterior's largest k or the prior's `mass` quantile, >= 3."""
    top = max((int(k) for k in post), default=1)
    if prior:
        k, p = pmf_arrays(prior)
        top = max(top, int(k[min(np.searchsorted(np.cumsum(p), mass), len(k) - 1)]))
    return max(top, 3)


# --------------------------------------------------------------------------- densities


def subsample_draws(n_draws: int, max_draws: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``max_draws`` draws (all of them when fewer), fixed seed."""
    if n_draws <= max_draws:
        return np.arange(n_draws)
    return np.sort(np.random.default_rng(seed).choice(n_draws, max_draws, replace=False))


def density_grid(x: np.ndarray, n: int = 400, pad: float = 0.08) -> np.ndarray:
    """An even grid covering the data with ``pad`` of its range on each side."""
    lo, hi = float(np.min(x)), float(np.max(x))
    span = hi - lo or max(abs(lo), 1.0)
    return np.linspace(lo - pad * span, hi + pad * span, n)


def mixture_density_1d(
    grid: np.ndarray, w: np.ndarray, mu: np.ndarray, sd: np.ndarray
) -> np.ndarray:
    """sum_k w_sk N(grid | mu_sk, sd_sk^2) for each draw: w, mu, sd (S, K) -> (S, G)."""
    z = (grid[None, None, :] - mu[:, :, None]) / sd[:, :, None]
    comp = np.exp(-0.5 * z**2) / (sd[:, :, None] * math.sqrt(2 * math.pi))
    return np.einsum("sk,skg->sg", w, comp)


@dataclass
class DensityBand:
    """Posterior mean mixture density and its pointwise equal-tailed band on a grid."""

    grid: np.ndarray
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    n_draws: int


def density_band(
    x: np.ndarray,
    params: Params,
    level: float = LEVEL,
    max_draws: int = MAX_DENSITY_DRAWS,
    seed: int = 0,
) -> DensityBand:
    """Mixture density of 1-D data for at most ``max_draws`` posterior draws (fixed seed)."""
    idx = subsample_draws(params.w.shape[0], max_draws, seed)
    grid = density_grid(x)
    dens = mixture_density_1d(
        grid, params.w[idx], params.mu[idx, :, 0], np.sqrt(params.cov[idx, :, 0, 0])
    )
    lo, hi = np.quantile(dens, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return DensityBand(grid, dens.mean(0), lo, hi, len(idx))


# --------------------------------------------------------------------------- clusters


def _mean_lo_hi(entry: dict | None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(mean, lower, upper) from {"mean", "interval_90": [lo, hi] | [[lo, hi], ...]} or
    {"mean", "lower", "upper"}."""
    if not isinstance(entry, dict) or entry.get("mean") is None:
        return None
    mean = np.asarray(entry["mean"], dtype=float)
    iv = entry.get("interval_90")
    if iv is not None:
        arr = np.asarray(iv, dtype=float)
        return mean, arr[..., 0], arr[..., 1]
    if "lower" in entry and "upper" in entry:
        lo = np.asarray(entry["lower"], dtype=float)
        hi = np.asarray(entry["upper"], dtype=float)
        return mean, lo, hi
    return mean, np.full_like(mean, np.nan), np.full_like(mean, np.nan)


def _first(d: dict, *keys: str):
    for key in keys:
        if d.get(key) is not None:
            return d[key]
    return None


def cluster_label(entry: dict, default: int) -> int:
    """The relabelled cluster index of a summary["clusters"] entry."""
    value = _first(entry, "label", "cluster")
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def cluster_rows(clusters: list[dict], columns: list[str]) -> list[dict]:
    """One table row per relabelled cluster from summary["clusters"] (tolerant of key names)."""
    rows = []
    for i, c in enumerate(clusters):
        weight = _mean_lo_hi(c.get("weight"))
        means = _mean_lo_hi(_first(c, "mean", "mu"))
        sds = _mean_lo_hi(c.get("sd"))
        corr = _mean_lo_hi(c.get("corr"))
        w_entry = c.get("weight") if isinstance(c.get("weight"), dict) else {}
        mu_entry = _first(c, "mean", "mu")
        mu_entry = mu_entry if isinstance(mu_entry, dict) else {}
        rhat = _first(c, "r_hat", "rhat")
        if rhat is None:
            rhat = _first(w_entry, "r_hat", "rhat")
        ess = c.get("ess_bulk")
        if ess is None:
            ess = w_entry.get("ess_bulk")
        size = _mean_lo_hi(c.get("size"))
        row = {
            "number": i + 1,
            "label": cluster_label(c, i),
            "occupancy": c.get("occupancy"),
            "empty_mostly": bool(c.get("empty_mostly")),
            "weight": None if weight is None else _cell(weight, ()),
            "size": None if size is None else _cell(size, ()) | {"integer": True},
            "cohesion": c.get("cohesion"),
            "weak": bool(c.get("weakly_identified")),
            "features": [],
            "corr": [],
            "r_hat": _scalar_or_max(rhat),
            "ess_bulk": _scalar_or_min(ess),
            "mean_r_hat": _scalar_or_max(_first(mu_entry, "r_hat", "rhat")),
        }
        for j, name in enumerate(columns):
            row["features"].append(
                {
                    "name": name,
                    "mean": None if means is None or means[0].size <= j else _cell(means, (j,)),
                    "sd": None if sds is None or sds[0].size <= j else _cell(sds, (j,)),
                }
            )
        if corr is not None and corr[0].ndim == 2:
            d = corr[0].shape[0]
            for a in range(d):
                for b in range(a + 1, d):
                    row["corr"].append(
                        {
                            "pair": f"{_name(columns, a)} – {_name(columns, b)}",
                            "value": _cell(corr, (a, b)),
                        }
                    )
        rows.append(row)
    return rows


def _name(columns: list[str], j: int) -> str:
    return columns[j] if j < len(columns) else f"x{j}"


def _cell(trio: tuple[np.ndarray, np.ndarray, np.ndarray], idx: tuple) -> dict:
    mean, lo, hi = (float(np.asarray(a)[idx]) for a in trio)
    return {"mean": mean, "lower": lo, "upper": hi}


def _scalar_or_max(v) -> float | None:
    if v is None:
        return None
    a = np.asarray(v, dtype=float).ravel()
    a = a[np.isfinite(a)]
    return float(a.max()) if a.size else None


def _scalar_or_min(v) -> float | None:
    if v is None:
        return None
    a = np.asarray(v, dtype=float).ravel()
    a = a[np.isfinite(a)]
    return float(a.min()) if a.size else None


# --------------------------------------------------------------------------- membership


def least_certain(
    membership: np.ndarray, x: np.ndarray, row_labels: np.ndarray, n: int = 10
) -> list[dict]:
    """The ``n`` observations least sure of their cluster, with their values and their two most
    probable clusters (numbered from 1, as in the cluster table); ``membership`` (N, K)."""
    prob = membership.max(axis=1)
    order = np.argsort(prob, kind="stable")[:n]
    rows = []
    for i in order:
        best = np.argsort(-membership[i], kind="stable")[:2]
        rows.append(
            {
                "row": _plain(row_labels[i]),
                "x": [float(v) for v in x[i]],
                "probability": float(prob[i]),
                "cluster": int(best[0]) + 1,
                "top": [
                    {"cluster": int(c) + 1, "p": float(membership[i, c])}
                    for c in best
                    if membership[i, c] > 0
                ],
                "index": int(i),
            }
        )
    return rows


def _plain(v):
    return v.item() if hasattr(v, "item") else v


def psm_order(
    p: np.ndarray, partition: np.ndarray | None, certainty: np.ndarray | None
) -> np.ndarray:
    """Display order of a PSM: by point-partition cluster, most certain first within each; with
    no partition, the leaf order of average-linkage clustering on 1 - PSM."""
    if partition is not None:
        cert = np.zeros(len(partition)) if certainty is None else certainty
        return np.lexsort((-cert, partition))
    if p.shape[0] < 3:
        return np.arange(p.shape[0])
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    dist = np.clip(1.0 - (p + p.T) / 2, 0.0, 1.0)
    np.fill_diagonal(dist, 0.0)
    return leaves_list(linkage(squareform(dist, checks=False), method="average"))


def psm_observations(n: int, max_n: int = MAX_PSM_OBS, seed: int = 0) -> np.ndarray:
    """All observations, or a fixed-seed random subset of ``max_n`` of them (sorted)."""
    return subsample_draws(n, max_n, seed)


def figure_psm(z: np.ndarray, max_draws: int = MAX_PSM_DRAWS, chunk: int = 1 << 22) -> np.ndarray:
    """Co-clustering matrix P_ij = mean_s 1[z_si = z_sj] for a figure, from at most
    ``max_draws`` evenly spaced draws (its Monte Carlo error, at most 0.5 / sqrt(1000) = 0.016,
    is below what the grey scale shows).

    P = (1/S) sum_s A_s A_s^T with A_s the (N, K) one-hot allocations of draw s: one matrix
    product per block of draws, in numpy (no compiled kernel to load for a report).
    """
    z = np.asarray(z)
    s, n = z.shape
    keep = np.unique(np.linspace(0, s - 1, min(s, max_draws)).round().astype(int))
    zs = z[keep].astype(np.int64)
    k = int(zs.max()) + 1
    out = np.zeros((n, n))
    step = max(1, chunk // max(1, n * k))
    eye = np.eye(k, dtype=np.float32)
    for a in range(0, len(keep), step):
        onehot = eye[zs[a : a + step]]  # (s, N, K)
        flat = np.ascontiguousarray(onehot.transpose(1, 0, 2)).reshape(n, -1)
        out += flat @ flat.T
    return out / len(keep)


# --------------------------------------------------------------------------- ellipses


def ellipse_path(mu: np.ndarray, cov: np.ndarray, radius: float, n: int = 100) -> np.ndarray:
    """Points (n, 2) of the contour {x: (x - mu)^T cov^-1 (x - mu) = radius^2}."""
    vals, vecs = np.linalg.eigh(cov)
    t = np.linspace(0, 2 * np.pi, n)
    circle = np.stack([np.cos(t), np.sin(t)])
    return (mu[:, None] + vecs @ (np.sqrt(np.maximum(vals, 0))[:, None] * radius * circle)).T


# --------------------------------------------------------------------------- rank plot


def chain_ranks(values: np.ndarray, seed: int = 0) -> np.ndarray:
    """Ranks of all (chain, draw) values pooled, scaled to (0, 1]; ties (K+ is discrete) are
    broken at random with a fixed seed, so well-mixed chains give uniform ranks."""
    v = np.asarray(values, dtype=float)
    flat = v.ravel()
    jitter = np.random.default_rng(seed).permutation(flat.size)
    order = np.lexsort((jitter, flat))
    ranks = np.empty(flat.size)
    ranks[order] = np.arange(1, flat.size + 1)
    return (ranks / flat.size).reshape(v.shape)


# --------------------------------------------------------------------------- diagnostics

RHAT_GREEN, RHAT_AMBER = 1.01, 1.05
ESS_PER_CHAIN = 100
LEFTOVER_GREEN, LEFTOVER_AMBER = 0.01, 0.05
DIVERGENCE_AMBER = 0.005  # fraction of draws


def _light(value: float, green: float, amber: float, higher_is_better: bool = False) -> str:
    if higher_is_better:
        return "green" if value >= green else ("amber" if value >= amber else "red")
    return "green" if value <= green else ("amber" if value <= amber else "red")


def _int(v: float | None) -> str:
    return "–" if v is None or not math.isfinite(float(v)) else f"{float(v):.0f}"


def _r3(v: float | None) -> str:
    return "–" if v is None or not math.isfinite(float(v)) else f"{float(v):.3f}"


def _per_quantity(quantities: dict, key: str, fmt) -> str:
    return ", ".join(f"{name} {_stat_text(q, key, fmt)}" for name, q in quantities.items())


def _row(check: str, value: str, status: str, detail: str = "", action: str = "", rule: str = ""):
    return {
        "check": check,
        "value": value,
        "status": status,
        "detail": detail,
        "action": action,
        "rule": rule,
    }


def _rhat_value(q: dict) -> float:
    """A quantity's R-hat; inf when ArviZ found it infinite, nan when it is missing."""
    if q.get("r_hat") is not None:
        return float(q["r_hat"])
    return math.inf if q.get("r_hat_infinite") else math.nan


def _stat_text(q: dict, key: str, fmt) -> str:
    value = q.get(key)
    if value is not None:
        return fmt(value)
    return "∞" if key == "r_hat" and q.get("r_hat_infinite") else "n/a"


def _rhat_row(quantities: dict, chains: int) -> dict | None:
    if not quantities:
        return None
    rhats = {n: _rhat_value(q) for n, q in quantities.items()}
    # a missing (nan) or infinite R-hat is the worst value: it always fails the check
    worst = max(rhats, key=lambda n: (not math.isfinite(rhats[n]), rhats[n]))
    bad = not math.isfinite(rhats[worst])
    if chains <= 1:
        status = "amber"
    else:
        status = "red" if bad else _light(rhats[worst], RHAT_GREEN, RHAT_AMBER)
    action = {
        "green": "",
        "amber": "Chains nearly agree: run more draws (--draws, --tune) before trusting the "
        "decimals.",
        "red": "Chains disagree: the sampler has not converged. Run longer (--draws, --tune), "
        "more chains, or with conjugate priors use --engine collapsed.",
    }[status]
    if chains == 1:
        action = "One chain: R-hat cannot detect non-convergence; run --chains 4."
    elif bad:
        note = (quantities[worst].get("notes") or {}).get("r_hat", "R-hat could not be computed")
        action = f"R-hat is not finite: {note}. " + action
    return _row(
        "R-hat (max)",
        f"{_stat_text(quantities[worst], 'r_hat', _r3)} ({worst})",
        status,
        _per_quantity(quantities, "r_hat", _r3),
        action,
        f"green ≤ {RHAT_GREEN}, amber ≤ {RHAT_AMBER}; ∞ or n/a fails",
    )


def _ess_row(quantities: dict, chains: int, key: str, engine: str = "") -> dict | None:
    if not quantities:
        return None
    vals = {n: (math.nan if q.get(key) is None else float(q[key])) for n, q in quantities.items()}
    target = ESS_PER_CHAIN * chains
    worst = min(vals, key=lambda n: (math.isfinite(vals[n]), vals[n]))
    if math.isfinite(vals[worst]):
        status = _light(vals[worst], target, target / 2, higher_is_better=True)
    else:
        status = "red"
    what = "posterior means" if key == "ess_bulk" else "interval ends (tails)"
    action = (
        "" if status == "green" else f"Too few effective draws for stable {what}: increase --draws"
    )
    if status != "green" and _is_nuts(engine):
        action += (
            " (K+ mixes slowly under NUTS; with conjugate priors --engine collapsed mixes "
            "far better)"
        )
    elif status != "green":
        action += " or run more chains"
    action += "." if action else ""
    label = "ESS bulk (min)" if key == "ess_bulk" else "ESS tail (min)"
    return _row(
        label,
        f"{_stat_text(quantities[worst], key, _int)} ({worst})",
        status,
        _per_quantity(quantities, key, _int),
        action,
        f"green ≥ {target} ({ESS_PER_CHAIN} per chain), amber ≥ {target // 2}; n/a fails",
    )


def _divergence_row(diag: dict, total: int) -> dict:
    div = diag.get("divergences")
    if div is None:
        return _row(
            "Divergent transitions",
            "n/a",
            "grey",
            "not reported by this engine (only NUTS has divergences)",
        )
    frac = div / total if total else 0.0
    status = "green" if div == 0 else ("amber" if frac <= DIVERGENCE_AMBER else "red")
    action = (
        ""
        if status == "green"
        else "NUTS missed part of the posterior: increase --tune, or use a Gibbs engine "
        "(--engine gibbs / collapsed); read the tails of the answer with care."
    )
    value = f"{div}" + (f" ({100 * frac:.1f}% of draws)" if total else "")
    return _row(
        "Divergent transitions",
        value,
        status,
        "",
        action,
        f"green = 0, amber ≤ {100 * DIVERGENCE_AMBER:g}% of draws",
    )


def _is_nuts(engine: str) -> bool:
    try:
        return Engine.parse(engine) is Engine.NUTS
    except ValueError:
        return False


def _truncation_row(summary: dict) -> dict:
    trunc = summary.get("truncation")
    if not trunc:
        eng = str(summary.get("engine", ""))
        untruncated = eng in (Engine.COLLAPSED, Engine.SUBCLUSTER)
        why = f"untruncated ({eng} engine)" if untruncated else "not a truncated DP"
        return _row("DP truncation leftover mass", "n/a", "grey", why)
    q99 = float(trunc.get("leftover_mass_q99", 0.0))
    status = _light(q99, LEFTOVER_GREEN, LEFTOVER_AMBER)
    action = (
        ""
        if status == "green"
        else "The last stick holds real weight: refit with a larger truncation "
        "(mixing.truncation) or --engine collapsed (untruncated)."
    )
    return _row(
        "DP truncation leftover mass",
        f"q99 {fnum(q99, 2)} (T = {trunc.get('T')})",
        status,
        f"mean leftover stick mass {fnum(trunc.get('leftover_mass_mean'), 2)}",
        action,
        f"green ≤ {LEFTOVER_GREEN}, amber ≤ {LEFTOVER_AMBER}",
    )


def _loo_row(summary: dict, n_obs: int | None) -> dict:
    loo = summary.get("loo")
    if not isinstance(loo, dict):
        return _row("PSIS-LOO Pareto k", "n/a", "grey", "LOO was not computed for this fit")
    if loo.get("error"):
        return _row("PSIS-LOO Pareto k", "n/a", "grey", f"LOO failed: {loo['error']}")
    threshold = float(loo.get("pareto_k_threshold") or 0.7)
    bad = int(_first(loo, "n_pareto_k_bad", "n_pareto_k_above_0_7") or 0)
    limit = max(1, round(0.01 * (n_obs or 0)))
    status = "green" if bad == 0 else ("amber" if bad <= limit else "red")
    action = (
        ""
        if status == "green"
        else "LOO is unreliable for these influential observations (often outliers or "
        "singleton clusters): use K-fold cross-validation or moment matching."
    )
    detail = f"elpd_loo {fnum(_first(loo, 'elpd', 'elpd_loo'), 4)} (SE {fnum(loo.get('se'), 2)})"
    if loo.get("max_pareto_k") is not None:
        detail += f", max k {fnum(loo['max_pareto_k'], 2)}"
    if loo.get("subsample"):  # "LOO on m of N observations (...)": totals scaled to N
        detail += f"; {loo['subsample']}, totals scaled to all rows"
    return _row(
        f"PSIS-LOO Pareto k > {threshold:.2g}",
        f"{bad} observation(s)",
        status,
        detail,
        action,
        f"green = 0, amber ≤ {limit}",
    )


def _mixing_row(diag: dict) -> dict | None:
    mix = diag.get("mixing")
    if not mix:
        return None
    if not mix.get("checked"):
        return _row("Chains move between partitions", "n/a", "grey", "checked for Gibbs engines")
    rates = diag.get("split_merge_accept_rate")
    value = "K+ changes in every chain"
    if rates:
        value += f"; split-merge acceptance ≥ {100 * min(rates):.2f}%"
    if mix.get("warnings"):
        return _row(
            "Chains move between partitions",
            "no" if "every draw" in mix["warnings"][0] else "some chains stuck",
            "amber",
            "; ".join(mix["warnings"]),
            "Rerun with another --seed and longer --tune; if the answers differ, the chains "
            "have not mixed.",
            "amber: a chain whose K+ never changes, or split-merge acceptance < 1%",
        )
    return _row("Chains move between partitions", value, "green", "", "", "")


def _kernel_row(diag: dict) -> dict | None:
    check = diag.get("kernel_family")
    if not check:
        return None
    if check.get("status") == "not_applicable":
        return _row("Kernel family (EM + BIC by family)", "n/a", "grey", check.get("reason", ""))
    gain = float(check.get("bic_gain") or 0.0)
    value = (
        f"{check['fitted_family']} (this model) is best"
        if check["best_family"] == check["fitted_family"]
        else f"{check['best_family']} better by ΔBIC {gain:,.0f}"
    )
    status = "amber" if check.get("status") == "warn" else "green"
    return _row(
        "Kernel family (EM + BIC by family)",
        value,
        status,
        f"EM + BIC finds {check['k_best']} groups with {check['best_family']} covariances",
        check.get("warning", "") + ("." if check.get("warning") else ""),
        "amber: another family is better by ΔBIC > 10 and counts a different number of groups",
    )


def traffic_lights(summary: dict, n_obs: int | None = None) -> list[dict]:
    """Rows {check, value, status (green|amber|red|grey), detail, action, rule} of the
    diagnostics; every non-green row says what to do."""
    diag = summary.get("diagnostics") or {}
    quantities = diag.get("quantities") or {}
    sampling = summary.get("sampling") or {}
    chains = int(sampling.get("chains") or 1)
    total = chains * int(sampling.get("draws") or 0)
    rows = [_rhat_row(quantities, chains)]
    engine = str(summary.get("engine", ""))
    rows += [_ess_row(quantities, chains, key, engine) for key in ("ess_bulk", "ess_tail")]
    rows += [_divergence_row(diag, total), _mixing_row(diag), _truncation_row(summary)]
    rows += [_loo_row(summary, n_obs), _kernel_row(diag)]
    return [r for r in rows if r is not None]
