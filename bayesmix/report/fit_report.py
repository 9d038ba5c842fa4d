"""The analyst's report of one fit: build the context (numbers, figures, notes) that both the
HTML and the Markdown templates render. Sections come answer first."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from bayesmix.posterior.kernel_check import FAMILY_WORDS
from bayesmix.report import compute as C
from bayesmix.report import plots as P
from bayesmix.report.figures import FigureSet
from bayesmix.report.loader import FitData

MAX_PAIRS_FEATURES = 6
N_LEAST_CERTAIN = 10


def _na(what: str) -> str:
    return f"{what} not available for this fit."


# --------------------------------------------------------------------------- 1. answer


def _mean_90(stat: dict) -> str:
    """'mean [lo, hi]' of a summary entry with 'mean' and 'interval_90'."""
    return f"{C.fnum(stat.get('mean'), 3)} {C.finterval(stat.get('interval_90'))}"


def answer_section(s: dict, figs: FigureSet) -> dict:
    from bayesmix.posterior.answer import answer_sentence, components_sentence

    nc = s.get("n_clusters") or {}
    prior = (s.get("prior_n_clusters") or {}).get("pmf")
    post = nc.get("pmf") or {}
    out = {
        "sentence": "",
        "table": [],
        "note": None,
        "stats": [],
        "warnings": [],
        "components": "",
        "counts": s.get("counts") or [],
    }
    if not post:
        out["note"] = _na("The posterior of K+")
        return out
    out["sentence"] = answer_sentence(s)
    out["components"] = components_sentence(s)
    out["warnings"] = list((s.get("diagnostics") or {}).get("warnings") or [])
    kmax = C.k_display_limit(post, prior)
    tied = nc.get("tied_with_mode") or [nc.get("mode")]
    mcse = nc.get("mcse") or {}
    rows = []
    for k in range(1, kmax + 1):
        pp, pq = post.get(str(k)), (prior or {}).get(str(k))
        if (pp or 0.0) < 5e-4 and (pq or 0.0) < 0.02:
            continue
        rows.append(
            {
                "k": k,
                "posterior": pp or 0.0,
                "mcse": mcse.get(str(k)),
                "prior": pq,
                "mode": k in tied,
            }
        )
    out["table"] = rows
    prior_note = (
        " The outlined bars are the prior of K+ implied by the model (exact, for this N): where "
        "the two agree, the data said little."
        if prior
        else " The prior of K+ is not stored in this summary."
    )
    if len(tied) > 1:
        top = " and ".join(f"K+ = {k} ({100 * post[str(k)]:.0f}%)" for k in tied)
        lead = f"the tallest bars, {top}, are tied within Monte Carlo error"
    else:
        lead = f"the tallest bar is the answer, K+ = {tied[0]} ({100 * post[str(tied[0])]:.0f}%)"
    figs.add(
        "k_posterior",
        P.k_posterior_figure(post, prior, kmax),
        "Posterior and prior probability of each number of occupied clusters K+",
        f"Posterior probability of K+ (filled): {lead}; the spread of the bars is the "
        f"uncertainty.{prior_note}",
    )
    stats = [("Posterior mean K+", C.fnum(nc.get("mean"), 3))]
    if prior:
        p = s["prior_n_clusters"]
        stats.append(
            (
                "Prior mean K+ / 90% set",
                f"{C.fnum(p.get('mean'), 3)} / {C.fset(p.get('credible_set_90'))}",
            )
        )
    ek = s.get("effective_k")
    if ek:
        stats.append(("Effective number of components exp(H(w))", _mean_90(ek)))
    conc = s.get("concentration")
    if conc:
        stats.append((f"Concentration {conc.get('name')}", _mean_90(conc)))
    out["stats"] = [{"label": a, "value": b} for a, b in stats]
    return out


# --------------------------------------------------------------------------- 2. data and fit


def _log_normal(x: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    chol = np.linalg.cholesky(cov + 1e-12 * np.eye(len(mu)))
    y = np.linalg.solve(chol, (x - mu).T)
    return -0.5 * np.sum(y**2, axis=0) - np.log(np.diag(chol)).sum()


MAX_FIGURE_POINTS = 20_000  # the data-and-fit figure subsamples larger data (fixed seed)


def data_section(data: FitData, figs: FigureSet) -> dict:
    out = {"notes": [], "figure": None}
    if data.x is None or data.posterior is None:
        out["notes"].append(_na("The data-and-fit figure (posterior.nc is missing)"))
        return out
    cols = data.columns
    rel = data.relabelled
    occupied = [] if rel is None else list(range(rel.n_components))
    if rel is None:
        out["notes"].append(_na("Identified cluster parameters (component curves and ellipses)"))
    assign = data.assignment
    if assign is None:
        out["notes"].append(_na("Cluster membership (colours by cluster)"))
    x_all = data.x
    if data.n_obs > MAX_FIGURE_POINTS:  # figures of a random subset: legible and fast
        idx = C.subsample_draws(data.n_obs, MAX_FIGURE_POINTS, seed=0)
        x_all = data.x[idx]
        assign = None if assign is None else np.asarray(assign)[idx]
        out["notes"].append(
            f"The data-and-fit figure shows a random subset of {len(idx):,} of the "
            f"{data.n_obs:,} observations (fixed seed)."
        )
    colours = occupied  # identified cluster c is drawn in colour c, numbered c + 1
    numbers = {k: k + 1 for k in occupied}
    d = data.n_features
    if d == 1:
        band = C.density_band(x_all[:, 0], data.posterior)
        comps = []
        if rel is not None:
            m = rel.mean()
            for lab, col in zip(occupied, colours, strict=True):
                comps.append(
                    {
                        "label": numbers.get(lab, lab + 1),
                        "w": float(m.w[0, lab]),
                        "mu": float(m.mu[0, lab, 0]),
                        "sd": float(np.sqrt(m.cov[0, lab, 0, 0])),
                        "colour": col,
                    }
                )
        fig = P.density_1d_figure(x_all[:, 0], band, comps, cols[0], assign)
        out["figure"] = figs.add(
            "data_fit",
            fig,
            f"Histogram of {cols[0]} with the posterior mixture density",
            "Blue-grey bars: the data (ticks below: each observation"
            + (", coloured by its most probable cluster" if assign is not None else "")
            + f"). Brown line and orange band: posterior mean density and its 90% pointwise band "
            f"({band.n_draws} posterior draws). "
            + (
                "Dashed: weighted densities of the identified clusters (posterior means, from the "
                "draws the cluster table rests on). "
                if comps
                else ""
            )
            + "Look for bumps in the histogram the band misses (misfit), and for a wide band "
            "where the data are sparse"
            + (
                "; observations under overlapping dashed curves have uncertain membership."
                if comps
                else "."
            ),
        )
        return out
    ellipses = []
    if rel is not None:
        m = rel.mean()
        for lab, col in zip(occupied, colours, strict=True):
            ellipses.append(
                {
                    "label": numbers.get(lab, lab + 1),
                    "mu": m.mu[0, lab],
                    "cov": m.cov[0, lab],
                    "colour": col,
                }
            )
    caption = (
        "Points coloured by their most probable cluster; solid and dashed ellipses are the 1σ "
        "and 2σ contours of each identified cluster (posterior means of its mean and covariance "
        "over the draws the cluster table rests on, numbered by weight). Look for points "
        "between ellipses (uncertain membership) and ellipses that cover no data."
    )
    if d == 2:
        fig = P.scatter_2d_figure(x_all, cols, assign, ellipses)
        out["figure"] = figs.add(
            "data_fit", fig, f"Scatter of {cols[0]} and {cols[1]} with cluster ellipses", caption
        )
        return out
    shown = list(range(min(d, MAX_PAIRS_FEATURES)))
    if d > MAX_PAIRS_FEATURES:
        out["notes"].append(f"Pairs plot of the first {MAX_PAIRS_FEATURES} of {d} features.")
    sub = [
        {
            "label": e["label"],
            "mu": e["mu"][shown],
            "cov": e["cov"][np.ix_(shown, shown)],
            "colour": e["colour"],
        }
        for e in ellipses
    ]
    fig = P.pairs_figure(x_all[:, shown], [cols[j] for j in shown], assign, sub)
    out["figure"] = figs.add(
        "data_fit", fig, "Pairs plot of the features with cluster ellipses", caption
    )
    return out


# --------------------------------------------------------------------------- 3. clusters


def clusters_section(data: FitData, figs: FigureSet) -> dict:
    s = data.summary
    out = {
        "rows": [],
        "note": None,
        "columns": data.columns,
        "has_corr": False,
        "forest": None,
        "weights": [],
        "wide": True,
    }
    weights = s.get("weights") or []
    shown = [w for w in weights if w["rank"] == 1 or w["interval_90"][1] >= 0.01][:10]
    out["weights"] = [
        {
            "rank": w["rank"],
            "mean": w["mean"],
            "lower": w["interval_90"][0],
            "upper": w["interval_90"][1],
        }
        for w in weights
    ]
    if shown:
        rows = [
            {
                "label": f"rank {w['rank']}",
                "mean": w["mean"],
                "lower": w["interval_90"][0],
                "upper": w["interval_90"][1],
            }
            for w in shown
        ]
        out["forest"] = figs.add(
            "weights",
            P.forest_figure(rows, "weight (mean and 90% interval)"),
            "Forest plot of the sorted mixture weights",
            "Sorted weights w(1) ≥ w(2) ≥ … in each draw (label-free): dot = mean, line = 90% "
            "interval. Weights whose interval reaches 0 belong to clusters that may not exist; "
            "ranks with upper end below 1% are omitted.",
        )
    clusters = s.get("clusters")
    if not clusters:
        out["note"] = _na("Per-cluster parameters (relabelled clusters in summary.json)")
        return out
    out["rows"] = C.cluster_rows(clusters, data.columns)
    out["method"] = data.relabel_method
    out["identified"] = s.get("identified")
    out["wide"] = len(data.columns) <= 2
    out["has_corr"] = any(r["corr"] for r in out["rows"])
    return out


# --------------------------------------------------------------------------- 4. membership


def membership_section(data: FitData, figs: FigureSet) -> dict:
    mem = data.summary.get("membership") or {}
    threshold = float(mem.get("threshold", 0.9))
    out = {
        "notes": [],
        "least": [],
        "certainty": None,
        "psm": None,
        "n_low": None,
        "threshold": threshold,
        "definition": mem.get("definition", ""),
        "has_loo": False,
    }
    prob, assign = data.membership_probability, data.assignment
    if prob is None or data.x is None:
        out["notes"].append(_na("Cluster membership probabilities"))
    else:
        out["n_low"] = {
            "below_threshold": int(np.sum(prob < threshold)),
            "below_50": int(np.sum(prob < 0.5)),
            "n": int(prob.size),
        }
        out["certainty"] = figs.add(
            "certainty",
            P.certainty_figure(prob, threshold),
            "Histogram of each observation's membership probability",
            "P(observation in its most probable cluster | data), over the draws the cluster "
            "table rests on. Mass near 1: clear-cut groups; observations left of the dotted "
            f"line ({threshold:g}) sit between clusters.",
        )
        out["least"] = C.least_certain(data.membership, data.x, data.row_labels, N_LEAST_CERTAIN)
        loo = _loo_by_row(data.assignments)
        if data.loo_elpd is not None and len(data.loo_elpd) == data.n_obs:
            out["has_loo"] = True
            for r in out["least"]:
                r["loo_elpd"] = float(data.loo_elpd[r["index"]])
        elif loo:
            out["has_loo"] = True
            for r in out["least"]:
                r["loo_elpd"] = loo.get(str(r["row"]))
    if data.z is None:
        out["notes"].append(_na("The co-clustering matrix (no allocation draws)"))
        return out
    idx = C.psm_observations(data.z.shape[1])
    p = C.figure_psm(data.z[:, idx])
    groups = None if assign is None else assign[idx]
    order = C.psm_order(p, groups, None if prob is None else prob[idx])
    subset = (
        f" Shown for a random subset of {len(idx)} of {data.z.shape[1]} observations (fixed seed)."
        if len(idx) < data.z.shape[1]
        else ""
    )
    how = (
        "ordered by most probable cluster (boxes, numbered as in the cluster table), most "
        "certain first within each"
        if groups is not None
        else "ordered by average-linkage clustering of the matrix"
    )
    out["psm"] = figs.add(
        "psm",
        P.psm_figure(p[np.ix_(order, order)], None if groups is None else np.sort(groups)),
        "Posterior co-clustering matrix",
        f"Posterior probability that two observations share a cluster ({min(C.MAX_PSM_DRAWS, data.z.shape[0])} evenly spaced draws), {how}. "
        "Dark solid blocks are stable clusters; grey off-diagonal bands show clusters that "
        "often merge." + subset,
    )
    return out


def _loo_by_row(assignments: list[dict] | None) -> dict[str, float]:
    if not assignments or "loo_elpd" not in assignments[0] or "row" not in assignments[0]:
        return {}
    return {str(r["row"]): r["loo_elpd"] for r in assignments}


# --------------------------------------------------------------------------- 5. diagnostics


def diagnostics_section(data: FitData, figs: FigureSet) -> dict:
    s = data.summary
    lights = C.traffic_lights(s, data.n_obs or (s.get("data") or {}).get("n_obs"))
    out = {
        "lights": lights,
        "warnings": (s.get("diagnostics") or {}).get("warnings") or [],
        "trace": None,
        "note": None,
    }
    quantities = {}
    if data.concentration is not None:
        quantities[data.concentration[0]] = data.concentration[1]
    if data.kplus is not None:
        quantities["K+"] = data.kplus
    if not quantities:
        out["note"] = _na("Trace and rank plots")
        return out
    out["trace"] = figs.add(
        "trace_rank",
        P.trace_rank_figure(quantities),
        "Trace and rank plots of the concentration and K+",
        "Left: draws of each chain in order; chains should overlap like one fuzzy band, without "
        "trends or long flat stretches. Right: where each chain's draws rank among all chains; "
        "bars close to the dashed line (uniform) mean the chains explored the same values.",
    )
    return out


def overall_status(lights: list[dict]) -> str:
    states = {r["status"] for r in lights}
    return "red" if "red" in states else ("amber" if "amber" in states else "green")


# --------------------------------------------------------------------------- 6. classical


def classical_section(data: FitData, figs: FigureSet, enabled: bool = True) -> dict:
    out = {"result": None, "note": None, "line": "", "rows": [], "figure": None, "families": []}
    if not enabled:
        out["note"] = "Classical EM comparison switched off for this report."
        return out
    if data.x is None or data.n_obs < 3:
        out["note"] = _na("The classical EM comparison (no observed data)")
        return out
    from bayesmix.report.classical import cached_em_selection

    sha = (data.summary.get("data") or {}).get("sha256", "")
    fitted = (data.summary.get("classical") or {}).get("fitted_family")
    if fitted is None:
        spec_cov = ((data.summary.get("spec") or {}).get("kernel") or {}).get("covariance")
        fitted = spec_cov if data.n_features > 1 and spec_cov else "full"
    try:
        res = cached_em_selection(data.fit_dir, data.x, sha, fitted=fitted)
    except Exception as exc:  # scikit-learn failing must not lose the Bayesian report
        out["note"] = f"The classical EM comparison failed: {type(exc).__name__}: {exc}"
        return out
    out["result"] = res
    nc = data.summary.get("n_clusters") or {}
    tied = nc.get("tied_with_mode") or [nc.get("mode")]
    pmf = nc.get("pmf") or {}
    said = " or ".join(f"{k} ({100 * pmf.get(str(k), 0.0):.0f}%)" for k in tied)
    fam_word = FAMILY_WORDS.get(res.get("fitted_family", "full"), "full")
    out["line"] = (
        f"EM with {fam_word} covariances picks K = {res['best_bic']} by BIC and "
        f"K = {res['best_aic']} by AIC; the posterior says K+ = {said}, 90% credible set "
        f"{C.fset(nc.get('credible_set_90'))}."
    )
    fams = res.get("families") or {}
    if len(fams) > 1:
        best = min(min(v["bic"]) for v in fams.values())
        out["families"] = [
            {
                "family": FAMILY_WORDS.get(f, f),
                "k": v["best_bic"],
                "bic": min(v["bic"]),
                "dbic": min(v["bic"]) - best,
                "fitted": f == res.get("fitted_family"),
            }
            for f, v in fams.items()
        ]
    bmin, amin = min(res["bic"]), min(res["aic"])
    out["rows"] = [
        {
            "k": k,
            "bic": b,
            "aic": a,
            "dbic": b - bmin,
            "daic": a - amin,
            "converged": c,
            "best_bic": k == res["best_bic"],
            "best_aic": k == res["best_aic"],
        }
        for k, b, a, c in zip(res["k"], res["bic"], res["aic"], res["converged"], strict=True)
    ]
    out["figure"] = figs.add(
        "classical",
        P.classical_figure(res["k"], res["bic"], res["aic"]),
        "BIC and AIC of EM fits against K",
        "Lower is better; circles mark each criterion's minimum. EM gives one K with no "
        "uncertainty: compare it with the spread of the posterior of K+ above.",
    )
    return out


# --------------------------------------------------------------------------- 7. reproduce


def reproduce_section(s: dict) -> dict:
    d = s.get("data") or {}
    spec = s.get("spec")
    return {
        "command": s.get("command") or "",
        "spec": json.dumps(spec, indent=2, sort_keys=False) if spec is not None else "",
        "sha256": d.get("sha256", ""),
        "source": d.get("source", ""),
        "seed": s.get("seed"),
        "engine": s.get("engine", ""),
        "sampling": s.get("sampling") or {},
        "versions": [{"name": k, "version": v} for k, v in (s.get("versions") or {}).items()],
        "engine_label": s.get("engine_label") or s.get("engine", ""),
        "data_notes": d.get("notes") or [],
        "kernel_prior": _kernel_prior(spec, d.get("n_features"), s.get("kernel_choice")),
    }


def _kernel_prior(spec: dict | None, n_features: int | None, choice: dict | None) -> str:
    """The kernel prior in words and formulas (empty when the summary lacks the spec), and how
    ``covariance = "auto"`` chose the family."""
    if not spec or not isinstance(spec.get("kernel"), dict) or not n_features:
        return ""
    from bayesmix.kernels.describe import describe_kernel

    text = describe_kernel(spec["kernel"], int(n_features))
    if choice and choice.get("best_bic"):
        bics = ", ".join(
            f"{FAMILY_WORDS.get(f, f)} {v:,.0f} (K = {choice['k_best'][f]})"
            for f, v in choice["best_bic"].items()
        )
        text += (
            f'; covariance = "auto" chose {FAMILY_WORDS.get(choice["covariance"])} '
            f"covariances: {choice['criterion']}: {bics}"
        )
    return text


# --------------------------------------------------------------------------- context


def key_numbers(s: dict, classical: dict, lights: list[dict], data: FitData) -> list[dict]:
    nc = s.get("n_clusters") or {}
    pmf = nc.get("pmf") or {}
    mode = nc.get("mode")
    d = s.get("data") or {}
    samp = s.get("sampling") or {}
    out = []
    if mode is not None:
        tied = nc.get("tied_with_mode") or [mode]
        out.append(
            {
                "label": "Most probable K+" if len(tied) == 1 else "Most probable K+ (tied)",
                "value": " or ".join(str(k) for k in tied),
                "note": " / ".join(f"{100 * pmf.get(str(k), 0):.0f}%" for k in tied)
                + " posterior probability",
            }
        )
        out.append(
            {
                "label": "90% credible set",
                "value": C.fset(nc.get("credible_set_90")),
                "note": f"posterior mean {C.fnum(nc.get('mean'), 3)}",
            }
        )
    res = classical.get("result")
    if res:
        out.append(
            {
                "label": "EM: BIC / AIC pick",
                "value": f"{res['best_bic']} / {res['best_aic']}",
                "note": "classical, no uncertainty",
            }
        )
    status = overall_status(lights)
    words = {"green": "all checks pass", "amber": "read with care", "red": "do not trust yet"}
    out.append({"label": "Diagnostics", "value": status, "note": words[status], "status": status})
    out.append(
        {
            "label": "Data",
            "value": f"{d.get('n_obs', data.n_obs)} × {d.get('n_features', data.n_features)}",
            "note": "observations × features",
        }
    )
    out.append(
        {
            "label": "Sampler",
            "value": str(s.get("engine_label") or s.get("engine", "?")),
            "note": f"{samp.get('chains', '?')} chains × {samp.get('draws', '?')} draws",
        }
    )
    return out


def build_context(data: FitData, figs: FigureSet, classical: bool = True) -> dict:
    """Everything both templates render, in section order."""
    t0 = time.perf_counter()
    s = data.summary
    answer = answer_section(s, figs)
    fit = data_section(data, figs)
    clusters = clusters_section(data, figs)
    members = membership_section(data, figs)
    diag = diagnostics_section(data, figs)
    classic = classical_section(data, figs, classical)
    d = s.get("data") or {}
    return {
        "title": f"bayesmix fit: {s.get('model', 'model')}",
        "subtitle": (s.get("spec") or {}).get("description", ""),
        "source": d.get("source", ""),
        "columns": data.columns or d.get("columns", []),
        "key_numbers": key_numbers(s, classic, diag["lights"], data),
        "answer": answer,
        "fit": fit,
        "clusters": clusters,
        "membership": members,
        "diagnostics": diag,
        "classical": classic,
        "reproduce": reproduce_section(s),
        "load_notes": data.notes,
        "figs": figs.items,
        "build_s": time.perf_counter() - t0,
    }


def fit_figures(fit_dir: Path) -> FigureSet:
    return FigureSet(Path(fit_dir))
