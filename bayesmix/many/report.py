"""report.html of a fit-many directory: a sortable table of the groups and small multiples
of their K+ posteriors, most uncertain groups first (inline SVG: no matplotlib needed)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmix import format as F
from bayesmix.io import write_text

HTML_NAME = "report.html"
MAX_MULTIPLES = 60  # small multiples shown (the most uncertain groups); the table has all
BAR_W, BAR_GAP, PLOT_H, LABEL_H = 12, 3, 60, 14


def pmf_svg(pmf: dict[str, float], mode: int | None) -> str:
    """A tiny bar chart of a K+ pmf as inline SVG (the mode's bar darker)."""
    ks = sorted(int(k) for k, p in pmf.items() if p >= 5e-3) or [int(k) for k in pmf][:1]
    if not ks:
        return ""
    lo, hi = ks[0], ks[-1]
    n = hi - lo + 1
    width = n * (BAR_W + BAR_GAP) + BAR_GAP
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{PLOT_H + LABEL_H}" '
        f'role="img" aria-label="posterior of K+">'
    ]
    for i, k in enumerate(range(lo, hi + 1)):
        p = float(pmf.get(str(k), 0.0))
        h = max(0.0, min(1.0, p)) * PLOT_H
        x = BAR_GAP + i * (BAR_W + BAR_GAP)
        fill = "#0b5cad" if k == mode else "#9ab8d8"
        parts.append(
            f'<rect x="{x}" y="{PLOT_H - h:.1f}" width="{BAR_W}" height="{h:.1f}" '
            f'fill="{fill}"><title>P(K+ = {k}) = {p:.3f}</title></rect>'
        )
        parts.append(
            f'<text x="{x + BAR_W / 2}" y="{PLOT_H + LABEL_H - 3}" font-size="10" '
            f'text-anchor="middle" fill="#5b6470">{k}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _cell(value, digits: int = 3) -> dict:
    """{text, sort}: what the table shows and the key it sorts by."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return {"text": "–", "sort": "", "light": None}
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return {"text": str(int(value)), "sort": str(int(value)), "light": None}
    if isinstance(value, (float, np.floating)):
        text = F.significant(float(value), digits)
        return {"text": text, "sort": f"{float(value):.12g}", "light": None}
    return {"text": str(value), "sort": str(value), "light": None}


def build_context(frame: pd.DataFrame, record: dict) -> dict:
    """The template's context: table rows, small multiples, counts and provenance."""
    from bayesmix.many.summary import uncertainty_order

    rows = []
    for r in frame.to_dict("records"):
        r = {k: (None if v is pd.NA else v) for k, v in r.items()}
        rows.append(
            {
                "group": r["group"],
                "link": f"{r['dir']}/report.html" if not r["error"] else None,
                "cells": [
                    _cell(r["n"]),
                    _cell(r["k_mode"]),
                    _cell(r["p_mode"]),
                    {"text": r["set_90"] or "–", "sort": r["set_90"] or "", "light": None},
                    _cell(r["k_mean"]),
                    {"text": r["light"] or "–", "sort": r["light"] or "", "light": r["light"]},
                    _cell(r["max_rhat"], 4),
                    _cell(r["min_ess"]),
                    _cell(r["engine"]),
                    _cell(r["seconds"], 2),
                ],
                "error": r["error"],
            }
        )
    multiples = []
    for i in uncertainty_order(frame)[:MAX_MULTIPLES]:
        r = frame.iloc[i]
        pmf = json.loads(r["k_pmf"])
        multiples.append(
            {
                "group": r["group"],
                "svg": pmf_svg(pmf, int(r["k_mode"])),
                "caption": f"mode {r['k_mode']}, P {float(r['p_mode']):.2f}, 90% {r['set_90']}",
                "light": r["light"],
            }
        )
    counts = record.get("counts", {})
    settings = record.get("settings", {})
    return {
        "title": f"fit-many: {len(frame)} groups by '{settings.get('by', '?')}'",
        "source": record.get("data", ""),
        "model": settings.get("spec", {}).get("name", ""),
        "counts": counts,
        "rows": rows,
        "multiples": multiples,
        "n_multiples_hidden": max(0, len(uncertainty_order(frame)) - MAX_MULTIPLES),
        "errors": [r for r in rows if r["error"]],
        "command": record.get("command") or "",
        "executor": record.get("executor") or "not recorded",
        "seed": settings.get("seed", "not recorded"),
        "versions": ", ".join(f"{k} {v}" for k, v in record.get("versions", {}).items()),
    }


def render_many_report(out: Path, frame: pd.DataFrame, record: dict) -> Path:
    """Write ``out/report.html`` (self-contained) from the summary table and the run record."""
    from bayesmix.report.render import render_template

    html = render_template("fit_many_report.html.j2", build_context(frame, record))
    return write_text(Path(out) / HTML_NAME, html)


def rerender(out: Path) -> Path:
    """Re-render report.html of a fit-many directory from summary.parquet and fit_many.json."""
    from bayesmix.many.run import RECORD_NAME
    from bayesmix.many.summary import read_summary

    record = json.loads((Path(out) / RECORD_NAME).read_text(encoding="utf-8"))
    return render_many_report(Path(out), read_summary(Path(out)), record)
