"""Numbers behind the report (pure numpy; no plotting, no I/O)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bayesmix.report.loader import Params

LEVEL = 0.9
MAX_DENSITY_DRAWS = 500
MAX_PSM_OBS = 1500


# --------------------------------------------------------------------------- formatting


def fnum(x: float | None, digits: int = 3) -> str:
    """A number with ``digits`` significant digits; '-' for None / NaN."""
    if x is None:
        return "–"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(v):
        return "–"
    if abs(v) >= 10 ** (digits - 1) and abs(v) < 1e7:
        return f"{v:.0f}"
    if v != 0 and (abs(v) >= 1e7 or abs(v) < 10 ** -(digits + 1)):
        return f"{v:.{digits}g}"
    return f"{v:.{digits}g}"


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


def display_labels(clusters: list[dict] | None, params: Params | None) -> dict[int, int]:
    """Relabelled component index -> the number shown in the report: its rank by weight
    (1 = heaviest), i.e. its position in summary["clusters"] (or by mean weight without it)."""
    if clusters:
        return {cluster_label(c, i): i + 1 for i, c in enumerate(clusters)}
    if params is None:
        return {}
    order = np.argsort(-params.w.mean(0), kind="stable")
    return {int(k): r + 1 for r, k in enumerate(order)}


def occupied_labels(clusters: list[dict] | None, params: Params | None) -> list[int]:
    """Relabelled clusters to draw: not mostly empty (summary), else mean weight >= 2%."""
    if clusters:
        labels = [cluster_label(c, i) for i, c in enumerate(clusters) if not c.get("empty_mostly")]
        if params is not None:
            labels = [k for k in labels if 0 <= k < params.n_components]
        return labels
    if params is None:
        return []
    w = params.w.mean(0)
    return [int(k) for k in np.argsort(-w) if w[k] >= 0.02]


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
        row = {
            "number": i + 1,
            "label": cluster_label(c, i),
            "occupancy": c.get("occupancy"),
            "empty_mostly": bool(c.get("empty_mostly")),
            "weight": None if weight is None else _cell(weight, ()),
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


def _counts(z: np.ndarray, partition: np.ndarray, k: int, c: int) -> np.ndarray:
    """cnt[s, k, c] = #{j: z_sj = k, partition_j = c}."""
    s = z.shape[0]
    code = (np.arange(s)[:, None] * k + z.astype(np.int64)) * c + partition[None, :]
    return np.bincount(code.ravel(), minlength=s * k * c).reshape(s, k, c)


def co_membership(
    z: np.ndarray, partition: np.ndarray, idx: np.ndarray | None = None, chunk: int = 1 << 22
) -> np.ndarray:
    """P[i, c]: mean posterior probability that observation i shares a cluster with the other
    members of point-partition cluster c, (len(idx), C). A singleton's own cluster gives 1.

    P[i, c] = (1/S) sum_s (#{j != i in c: z_sj = z_si}) / (n_c - [i in c]); O(S N) memory-light.
    """
    partition = np.asarray(partition, dtype=np.int64)
    z = np.asarray(z)
    n_cl = int(partition.max()) + 1
    k = int(z.max()) + 1
    idx = np.arange(z.shape[1]) if idx is None else np.asarray(idx)
    sizes = np.bincount(partition, minlength=n_cl).astype(float)
    own = partition[idx][:, None] == np.arange(n_cl)[None, :]  # (I, C)
    denom = sizes[None, :] - own
    total = np.zeros((len(idx), n_cl))
    step = max(1, chunk // max(1, k * n_cl + len(idx) * n_cl))
    for a in range(0, z.shape[0], step):
        zc = z[a : a + step]
        cnt = _counts(zc, partition, k, n_cl)  # (s, K, C)
        got = cnt[np.arange(zc.shape[0])[:, None], zc[:, idx].astype(np.int64)]  # (s, I, C)
        total += got.sum(0) - own * zc.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = total / z.shape[0] / denom
    p[(denom == 0) & own] = 1.0
    p[(denom == 0) & ~own] = 0.0
    return p


def certainty_from_draws(z: np.ndarray, partition: np.ndarray) -> np.ndarray:
    """Each observation's mean co-clustering probability with its own point-estimate cluster."""
    p = co_membership(z, partition)
    return p[np.arange(p.shape[0]), np.asarray(partition, dtype=np.int64)]


def least_certain(
    certainty: np.ndarray,
    partition: np.ndarray,
    z: np.ndarray | None,
    x: np.ndarray,
    row_labels: np.ndarray,
    n: int = 10,
) -> list[dict]:
    """The ``n`` least certain observations, with their values and top-2 clusters."""
    order = np.argsort(certainty, kind="stable")[:n]
    probs = co_membership(z, partition, order) if z is not None else None
    rows = []
    for r, i in enumerate(order):
        top = []
        if probs is not None:
            best = np.argsort(-probs[r], kind="stable")[:2]
            top = [{"cluster": int(c) + 1, "p": float(probs[r, c])} for c in best]
        rows.append(
            {
                "row": _plain(row_labels[i]),
                "x": [float(v) for v in x[i]],
                "certainty": float(certainty[i]),
                "cluster": int(partition[i]) + 1,
                "top": top,
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


# --------------------------------------------------------------------------- ellipses


def match_by_overlap(assigned: np.ndarray, partition: np.ndarray, n_comp: int) -> list[int | None]:
    """For components 0..n_comp-1 (``assigned``: each observation's component), the partition
    cluster sharing the most observations with each, one-to-one (Hungarian); None if none."""
    from scipy.optimize import linear_sum_assignment

    n_part = int(partition.max()) + 1
    counts = np.zeros((n_comp, n_part), dtype=np.int64)
    np.add.at(counts, (assigned, partition), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    out: list[int | None] = [None] * n_comp
    for r, c in zip(rows, cols, strict=True):
        if counts[r, c] > 0:
            out[int(r)] = int(c)
    return out


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
    return ", ".join(f"{name} {fmt(q.get(key))}" for name, q in quantities.items())


def _row(check: str, value: str, status: str, detail: str = "", action: str = "", rule: str = ""):
    return {
        "check": check,
        "value": value,
        "status": status,
        "detail": detail,
        "action": action,
        "rule": rule,
    }


def _rhat_row(quantities: dict, chains: int) -> dict | None:
    rhats = {n: q["r_hat"] for n, q in quantities.items() if q.get("r_hat") is not None}
    if not rhats:
        return None
    worst = max(rhats, key=lambda n: rhats[n])
    status = _light(rhats[worst], RHAT_GREEN, RHAT_AMBER) if chains > 1 else "amber"
    action = {
        "green": "",
        "amber": "Chains nearly agree: run more draws (--draws, --tune) before trusting the "
        "decimals.",
        "red": "Chains disagree: the sampler has not converged. Run longer (--draws, --tune), "
        "more chains, or with conjugate priors use --engine collapsed.",
    }[status]
    if chains == 1:
        action = "One chain: R-hat cannot detect non-convergence; run --chains 4."
    return _row(
        "R-hat (max)",
        f"{_r3(rhats[worst])} ({worst})",
        status,
        _per_quantity(quantities, "r_hat", _r3),
        action,
        f"green ≤ {RHAT_GREEN}, amber ≤ {RHAT_AMBER}",
    )


def _ess_row(quantities: dict, chains: int, key: str, engine: str = "") -> dict | None:
    vals = {n: q[key] for n, q in quantities.items() if q.get(key) is not None}
    if not vals:
        return None
    target = ESS_PER_CHAIN * chains
    worst = min(vals, key=lambda n: vals[n])
    status = _light(vals[worst], target, target / 2, higher_is_better=True)
    what = "posterior means" if key == "ess_bulk" else "interval ends (tails)"
    action = (
        "" if status == "green" else f"Too few effective draws for stable {what}: increase --draws"
    )
    if status != "green" and engine == "nuts":
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
        f"{_int(vals[worst])} ({worst})",
        status,
        _per_quantity(quantities, key, _int),
        action,
        f"green ≥ {target} ({ESS_PER_CHAIN} per chain), amber ≥ {target // 2}",
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


def _truncation_row(summary: dict) -> dict:
    trunc = summary.get("truncation")
    if not trunc or summary.get("engine") == "collapsed":
        why = "untruncated (collapsed engine)" if trunc else "not a truncated DP"
        return _row("DP truncation leftover mass", "n/a", "grey", why)
    q99 = float(trunc.get("leftover_mass_q99", 0.0))
    status = _light(q99, LEFTOVER_GREEN, LEFTOVER_AMBER)
    action = (
        ""
        if status == "green"
        else "The last stick holds real weight: refit with a larger truncation "
        "(mixing.n_components) or --engine collapsed (untruncated)."
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
    return _row(
        f"PSIS-LOO Pareto k > {threshold:.2g}",
        f"{bad} observation(s)",
        status,
        detail,
        action,
        f"green = 0, amber ≤ {limit}",
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
    rows += [_divergence_row(diag, total), _truncation_row(summary), _loo_row(summary, n_obs)]
    return [r for r in rows if r is not None]
