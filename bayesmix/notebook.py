"""HTML for notebooks: the answer of a fit (``FitResult`` and ``BayesianGMM``) in one cell.

``fit_html(summary)`` gives the answer sentence, a small inline figure of the posterior (and
prior) of K+ and the diagnostics light; ``unfitted_html`` lists an estimator's parameters.
All user text (column names, model names, parameter values) is HTML-escaped.
"""

from __future__ import annotations

import base64
from html import escape

LIGHT_COLOURS = {"green": "#2e7d32", "amber": "#f9a825", "red": "#c62828", "grey": "#9e9e9e"}
LIGHT_WORDS = {
    "green": "all diagnostics pass",
    "amber": "some diagnostics ask for care",
    "red": "some diagnostics fail: do not trust the answer yet",
    "grey": "none available for this fit",
}
FIGURE_DPI = 80
MAX_COLUMNS_SHOWN = 8
_STYLE = "font-family: sans-serif; font-size: 13px; line-height: 1.4; max-width: 640px"


def _dot(status: str) -> str:
    colour = LIGHT_COLOURS.get(status, LIGHT_COLOURS["grey"])
    return (
        f'<span style="display:inline-block;width:0.8em;height:0.8em;border-radius:50%;'
        f'background:{colour};vertical-align:middle" title="{escape(status)}"></span>'
    )


def _columns(columns: list) -> str:
    shown = ", ".join(escape(str(c)) for c in columns[:MAX_COLUMNS_SHOWN])
    extra = len(columns) - MAX_COLUMNS_SHOWN
    return shown + (f", … ({extra} more)" if extra > 0 else "")


def _headline(summary: dict) -> str:
    data = summary.get("data") or {}
    n, d = data.get("n_obs"), data.get("n_features")
    parts = [f"model <code>{escape(str(summary.get('model', '?')))}</code>"]
    engine = summary.get("engine_label") or summary.get("engine")
    if engine:
        parts.append(f"engine {escape(str(engine))}")
    if n is not None and d is not None:
        cols = data.get("columns") or []
        parts.append(f"{n} rows × {d} features" + (f" ({_columns(cols)})" if cols else ""))
    return "<b>bayesmix fit</b>: " + "; ".join(parts)


def k_figure_uri(summary: dict) -> str | None:
    """The K+ posterior (filled) and prior (outlined) bars as a PNG data URI, or None."""
    from bayesmix.report import compute as C
    from bayesmix.report.figures import png_bytes
    from bayesmix.report.plots import k_posterior_figure

    post = (summary.get("n_clusters") or {}).get("pmf")
    if not post:
        return None
    prior = (summary.get("prior_n_clusters") or {}).get("pmf")
    fig = k_posterior_figure(post, prior, C.k_display_limit(post, prior))
    data = png_bytes(fig, dpi=FIGURE_DPI)
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def diagnostics_light(summary: dict) -> tuple[str, list[dict]]:
    """Overall status (red if any row is red, else amber if any is amber, else green; grey
    when every row is grey, i.e. not computed) and the amber and red rows of
    ``bayesmix.report.compute.traffic_lights``."""
    from bayesmix.report.compute import traffic_lights
    from bayesmix.report.fit_report import overall_status

    rows = traffic_lights(summary, (summary.get("data") or {}).get("n_obs"))
    if all(r["status"] == "grey" for r in rows):
        return "grey", []
    return overall_status(rows), [r for r in rows if r["status"] in ("amber", "red")]


def _light_html(summary: dict) -> str:
    status, rows = diagnostics_light(summary)
    head = f"{_dot(status)} <b>Diagnostics: {escape(LIGHT_WORDS[status])}</b>"
    if not rows:
        return f"<p>{head}</p>"
    items = "".join(
        f"<li>{_dot(r['status'])} {escape(str(r['check']))}: {escape(str(r['value']))}"
        + (f" — {escape(str(r['action']))}" if r.get("action") else "")
        + "</li>"
        for r in rows
    )
    return f'<p>{head}</p><ul style="margin-top:0">{items}</ul>'


def _identified_html(summary: dict) -> str:
    ident = summary.get("identified")
    clusters = summary.get("clusters") or []
    if not ident or not clusters:
        return ""
    weights = ", ".join(f"{100 * float(c['weight']['mean']):.0f}%" for c in clusters)
    share = float(ident.get("share", 0.0))
    return (
        f"<p>Identified solution: {int(ident['k'])} clusters with weights {weights} "
        f"(from the {100 * share:.0f}% of draws with K+ = {int(ident['k'])}).</p>"
    )


def fit_html(summary: dict) -> str:
    """HTML of a fit's summary: headline, answer sentence, K+ figure, diagnostics light."""
    from bayesmix.posterior.answer import answer_sentence

    parts = [f"<p>{_headline(summary)}</p>"]
    if (summary.get("n_clusters") or {}).get("pmf"):
        parts.append(f"<p>{escape(answer_sentence(summary))}</p>")
        uri = k_figure_uri(summary)
        if uri:
            parts.append(
                f'<img src="{uri}" alt="Posterior and prior probability of each number of '
                'occupied clusters K+" style="max-width:420px;width:100%">'
            )
    parts.append(_identified_html(summary))
    parts.append(_light_html(summary))
    return f'<div class="bayesmix-fit" style="{_STYLE}">{"".join(parts)}</div>'


def unfitted_html(name: str, params: dict) -> str:
    """HTML of an estimator that is not fitted yet: its name and parameters."""
    rows = "".join(
        f'<tr><td style="padding-right:1em"><code>{escape(str(k))}</code></td>'
        f"<td><code>{escape(repr(v))}</code></td></tr>"
        for k, v in params.items()
    )
    return (
        f'<div class="bayesmix-estimator" style="{_STYLE}"><p><b>{escape(name)}</b> '
        f"(not fitted: call <code>fit(X)</code>)</p><table>{rows}</table></div>"
    )
