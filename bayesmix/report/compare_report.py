"""Report of a ``bayesmix compare`` directory (compare.json, its two figures and fits/<name>/):
the reading first, then the side-by-side tables, the figures, LOO and the sensitivity flags."""

from __future__ import annotations

import json
from pathlib import Path

from bayesmix.report import compute as C
from bayesmix.report.figures import FigureSet

CAPTIONS = {
    "prior_vs_posterior_k": (
        "Prior and posterior of K+ under each prior",
        "One panel per model: prior of K+ (outlined) and posterior (filled). Where the filled "
        "bars look like the outline the data did not move the prior; where every panel piles "
        "up on the same K+, the answer does not depend on the prior.",
    ),
    "concentration": (
        "Concentration parameter: posterior and prior",
        "Posterior draws of each random concentration (bars) against its Gamma prior (line). "
        "A posterior that hugs the prior means the data say little about the concentration, "
        "and K+ then inherits the prior's opinion.",
    ),
}


def _fit_dir(compare_dir: Path, model: dict) -> Path:
    """The model's fit directory: compare.json's fit_dir (relative to the compare directory
    when it is not absolute), else fits/<name>."""
    from bayesmix.compare import fit_dir_name

    given = model.get("fit_dir")
    candidates = []
    if given:
        p = Path(given)
        candidates += [p] if p.is_absolute() else [compare_dir / p]
        candidates.append(compare_dir / "fits" / p.name)
    candidates.append(compare_dir / "fits" / fit_dir_name(str(model.get("name", ""))))
    for c in candidates:
        if (c / "summary.json").exists():
            return c
    return candidates[-1]


def _k_cell(k: dict | None) -> dict:
    k = k or {}
    pmf = k.get("pmf") or {}
    mode = k.get("mode")
    return {
        "mean": k.get("mean"),
        "mode": mode,
        "p_mode": pmf.get(str(mode)),
        "set": C.fset(k.get("credible_set_90")),
    }


def _model_row(m: dict, rank: dict, link: str | None, tied: set[str]) -> dict:
    """One model's cells; ``tied``: models whose stacking weight is marked "(tied)"."""
    diag = m.get("diagnostics") or {}
    loo = m.get("loo") or {}
    ps = m.get("psense") or {}
    r = rank.get(m.get("name"), {})
    return {
        "name": m.get("name", "?"),
        "description": m.get("description", ""),
        "engine": m.get("engine", ""),
        "prior": _k_cell(m.get("prior_k")),
        "posterior": _k_cell(m.get("posterior_k")),
        # MFM: the number of components K beside the occupied clusters K+
        "prior_components": _k_cell(m.get("prior_components"))
        if m.get("prior_components")
        else None,
        "posterior_components": (
            _k_cell(m["posterior_components"]) if m.get("posterior_components") else None
        ),
        "tv": m.get("prior_posterior_tv"),
        "close_to_prior": (m.get("prior_posterior_tv") or 1.0) < 0.3,
        "concentration": f"{(m.get('concentration') or {}).get('name', '')} "
        f"{(m.get('concentration') or {}).get('text', '')}".strip(),
        "psense": ps.get("text", "–"),
        "sensitive": bool(ps.get("prior_sensitive")),
        "truncation": (m.get("truncation") or {}).get("text", "–"),
        "max_r_hat": diag.get("max_r_hat"),
        "min_ess_bulk": diag.get("min_ess_bulk"),
        "divergences": diag.get("divergences"),
        "elpd_loo": loo.get("elpd_loo"),
        "se": loo.get("se"),
        "p_loo": loo.get("p_loo"),
        "pareto_bad": loo.get("n_pareto_k_above_0_7"),
        "rank": r.get("rank"),
        "elpd_diff": r.get("elpd_diff"),
        "dse": r.get("dse"),
        "weight": r.get("weight"),
        "tied": m.get("name") in tied,
        "link": link,
        "psense_quantities": [
            {
                "name": q,
                "prior": v.get("prior"),
                "likelihood": v.get("likelihood"),
                "diagnosis": v.get("diagnosis", ""),
            }
            for q, v in (ps.get("quantities") or {}).items()
        ],
    }


def _best_by_loo(sep: dict) -> dict:
    """The "Best by PSIS-LOO" box, which names no best when LOO cannot separate the models."""
    if sep["best"] is None:
        return {"label": "Best by PSIS-LOO", "value": "–", "note": "no LOO ranking"}
    if len(sep["tied"]) > 1 and not sep["separable"]:
        return {
            "label": "Best by PSIS-LOO",
            "value": "none",
            "note": "PSIS-LOO cannot separate the models",
        }
    if len(sep["tied"]) > 1:
        others = ", ".join(sep["tied"][1:])
        return {"label": "Best by PSIS-LOO", "value": sep["best"], "note": f"tied with {others}"}
    return {"label": "Best by PSIS-LOO", "value": sep["best"], "note": "see the LOO table"}


def _key_numbers(result: dict, rows: list[dict], sep: dict) -> list[dict]:
    d = result.get("data") or {}
    modes = sorted({r["posterior"]["mode"] for r in rows if r["posterior"]["mode"] is not None})
    n_sens = sum(r["sensitive"] for r in rows)
    agree = len(modes) == 1
    return [
        {"label": "Models", "value": str(len(rows)), "note": "priors compared"},
        {
            "label": "Posterior mode of K+",
            "value": ", ".join(map(str, modes)) or "–",
            "note": "same under every prior" if agree else "depends on the prior",
            "status": "green" if agree else "amber",
        },
        _best_by_loo(sep),
        {
            "label": "Prior-sensitive",
            "value": str(n_sens),
            "note": "models flagged by psense",
            "status": "amber" if n_sens else "green",
        },
        {
            "label": "Data",
            "value": f"{d.get('n_obs', '?')} × {d.get('n_features', '?')}",
            "note": "observations × features",
        },
    ]


def build_compare_context(compare_dir: Path, fits: bool = True, classical: bool = True) -> dict:
    """Everything the compare templates render."""
    from bayesmix.compare import loo_separation, weights_footnote

    path = compare_dir / "compare.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found (is this a bayesmix compare directory?)")
    result = json.loads(path.read_text(encoding="utf-8"))
    notes: list[str] = []
    ranking = [r for r in result.get("ranking") or [] if r.get("name") is not None]
    rank = {r["name"]: r for r in ranking}
    sep = loo_separation(ranking)  # the same rule as the reading and compare.md
    tied = set(sep["tied"]) if sep["weights_decide_nothing"] and len(sep["tied"]) > 1 else set()
    rows = []
    for m in result.get("models") or []:
        fdir = _fit_dir(compare_dir, m)
        link = None
        if fits and (fdir / "summary.json").exists():
            from bayesmix.report.render import render_fit_report

            try:
                render_fit_report(fdir, classical=classical)
            except Exception as exc:  # one broken fit must not lose the comparison
                notes.append(f"Fit report of {m.get('name')} failed: {type(exc).__name__}: {exc}")
        if (fdir / "report.html").exists():
            link = (
                (fdir / "report.html").relative_to(compare_dir).as_posix()
                if fdir.is_relative_to(compare_dir)
                else None
            )
        rows.append(_model_row(m, rank, link, tied))
    by_rank = sorted(
        rows, key=lambda r: (r["rank"] is None, r["rank"] if r["rank"] is not None else 0)
    )
    figs = FigureSet(compare_dir)
    for key, file in (result.get("figures") or {}).items():
        alt, caption = CAPTIONS.get(key, (key.replace("_", " "), ""))
        if figs.add_file(key, compare_dir / file, file, alt, caption) is None:
            notes.append(f"Figure {file} is missing from the compare directory.")
    d = result.get("data") or {}
    opts = result.get("options") or {}
    return {
        "title": "bayesmix compare",
        "source": d.get("source", ""),
        "columns": d.get("columns") or [],
        "n_obs": d.get("n_obs"),
        "sha256": d.get("sha256", ""),
        "reading": result.get("reading", ""),
        "key_numbers": _key_numbers(result, rows, sep),
        "weights_note": weights_footnote(sep),
        "rows": rows,
        "by_rank": by_rank,
        "warnings": result.get("warnings") or [],
        "figs": dict.fromkeys(CAPTIONS) | figs.items,  # a missing figure renders as none
        "notes": notes,
        "reproduce": {
            "command": result.get("command") or "",
            "seed": result.get("seed"),
            "options": [{"name": k, "value": v} for k, v in opts.items() if v is not None],
            "versions": [
                {"name": k, "version": v} for k, v in (result.get("versions") or {}).items()
            ],
            "specs": json.dumps(result.get("specs") or {}, indent=2),
            "timing_s": result.get("timing_s"),
        },
    }
