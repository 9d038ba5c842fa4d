"""Jinja2 rendering of the reports (HTML autoescaped; Markdown with its own escaping) and the
public entry points ``render_fit_report`` and ``render_compare_report``."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from bayesmix import format as F
from bayesmix.io import write_text
from bayesmix.report import compute as C

HTML_NAME = "report.html"
MD_NAME = "report.md"


# --------------------------------------------------------------------------- filters


def _num(x, digits: int = 3, fixed: bool = False) -> str:
    if x is None:
        return "–"
    if fixed:
        try:
            return f"{float(x):.{digits}f}"
        except (TypeError, ValueError):
            return str(x)
    return C.fnum(x, digits)


def _iv(pair, digits: int = 3) -> str:
    return C.finterval(pair, digits)


def _est(cell) -> str:
    """'mean [lower, upper]' of a {mean, lower, upper} cell, rounded by the interval width."""
    if not cell:
        return "–"
    fmt = F.count_estimate if cell.get("integer") else F.estimate
    return fmt(cell.get("mean"), cell.get("lower"), cell.get("upper"))


def _pct(x) -> str:
    return "–" if x is None else f"{100 * float(x):.0f}%"


_MD_SPECIAL = re.compile(r"[\\`*\[\]|]|<(?=[A-Za-z/!?])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def md_escape(value: object) -> str:
    """Plain text for Markdown: no raw HTML, no table breaks, no emphasis; one line.

    Backslash escapes (CommonMark) keep the raw text readable: ``<script>`` becomes
    ``\\<script>``, which renders as literal text; intra-word underscores stay as they are.
    """
    s = " ".join(str(value).split())
    return _MD_SPECIAL.sub(lambda m: "\\" + m[0], s)


def md_code(value: object) -> str:
    """Inline code span that survives any backticks in the value."""
    s = " ".join(str(value).split())
    if not s:
        return "–"
    runs = [len(r) for r in re.findall(r"`+", s)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def md_fence(value: object, lang: str = "") -> str:
    """Fenced code block longer than any backtick run inside."""
    s = str(value)
    runs = [len(r) for r in re.findall(r"`+", s)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}{lang}\n{s}\n{fence}"


def _filters(env: Environment) -> Environment:
    env.filters.update(
        num=_num, iv=_iv, est=_est, pct=_pct, md=md_escape, code=md_code, fence=md_fence
    )
    return env


@lru_cache(maxsize=1)
def environment() -> Environment:
    """HTML templates (*.html.j2) autoescaped, Markdown templates (*.md.j2) not."""
    env = Environment(
        loader=PackageLoader("bayesmix.report", "templates"),
        autoescape=select_autoescape(
            enabled_extensions=("html", "html.j2"),
            disabled_extensions=("md", "md.j2"),
            default=True,
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return _filters(env)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("bayesmix")
    except Exception:
        return "dev"


def render_template(name: str, context: dict) -> str:
    """Render one template with the report context (plus the package version)."""
    text = environment().get_template(name).render(**context, version=_version())
    if name.endswith(".md.j2"):
        text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
    return text


# --------------------------------------------------------------------------- entry points


def render_fit_report(
    fit_dir: str | Path, *, classical: bool = True, idata=None
) -> tuple[Path, Path]:
    """Write report.html (self-contained) and report.md (+ figures/*.png) into ``fit_dir``.

    ``fit_dir`` holds summary.json and posterior.nc (optionally assignments.csv); the EM
    comparison is cached there as classical.json. ``idata``: the fit's DataTree when it is
    already in memory (posterior.nc is then not read back). Returns (html_path, md_path).
    """
    from bayesmix.report.fit_report import build_context, fit_figures
    from bayesmix.report.loader import load_fit

    fit_dir = Path(fit_dir)
    data = load_fit(fit_dir, dt=idata)
    figs = fit_figures(fit_dir)
    ctx = build_context(data, figs, classical=classical)
    html = write_text(fit_dir / HTML_NAME, render_template("fit_report.html.j2", ctx))
    md = write_text(fit_dir / MD_NAME, render_template("fit_report.md.j2", ctx))
    return html, md


def render_compare_report(
    compare_dir: str | Path, *, fits: bool = True, classical: bool = True
) -> tuple[Path, Path]:
    """Write report.html and report.md into a ``bayesmix compare`` directory.

    With ``fits`` each fits/<name>/ also gets its own fit report, linked from the table.
    compare.json and compare.md are read, never overwritten. Returns (html_path, md_path).
    """
    from bayesmix.report.compare_report import build_compare_context

    compare_dir = Path(compare_dir)
    ctx = build_compare_context(compare_dir, fits=fits, classical=classical)
    html = write_text(compare_dir / HTML_NAME, render_template("compare_report.html.j2", ctx))
    md = write_text(compare_dir / MD_NAME, render_template("compare_report.md.j2", ctx))
    return html, md
