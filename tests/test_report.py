"""Reports: self-contained HTML, Markdown with the same answer, escaping, optional sections,
the numbers behind them (co-membership, traffic lights, EM) and the compare report.

Fit directories are synthetic (``bayesmix.report.example``: simulated draws assembled by the
real ``build_datatree``/``summarize``), so no MCMC runs here."""

from __future__ import annotations

import json
import re
import shutil
from html import escape as html_escape
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from bayesmix.io import write_json
from bayesmix.report import compute as C
from bayesmix.report import render_compare_report, render_fit_report
from bayesmix.report.example import synthetic_data, write_example_fit
from bayesmix.report.render import md_code, md_escape

XSS = "<script>alert(1)</script>"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fit1d(tmp_path_factory) -> Path:
    out = write_example_fit(tmp_path_factory.mktemp("fit1d"), d=1, clusters_format="relabel")
    render_fit_report(out)
    return out


@pytest.fixture(scope="module")
def fit2d(tmp_path_factory) -> Path:
    out = write_example_fit(
        tmp_path_factory.mktemp("fit2d"), d=2, columns=[XSS, "b$c"], loo=True, seed=1
    )
    render_fit_report(out, classical=False)
    return out


@pytest.fixture(scope="module")
def bare1d(tmp_path_factory) -> Path:
    out = write_example_fit(tmp_path_factory.mktemp("bare"), d=1, extras=False, seed=2)
    render_fit_report(out, classical=False)
    return out


def _html(d: Path) -> str:
    return (d / "report.html").read_text(encoding="utf-8")


def _md(d: Path) -> str:
    return (d / "report.md").read_text(encoding="utf-8")


def assert_self_contained(html: str) -> None:
    """No network resource: every src/href is a data: URI, a fragment or a relative path."""
    refs = re.findall(r"""\b(?:src|href)\s*=\s*["']([^"']*)["']""", html, flags=re.I)
    for ref in refs:
        assert not re.match(r"^\s*(https?:)?//", ref, flags=re.I), ref
    imgs = re.findall(r"<img\b[^>]*>", html, flags=re.I)
    assert imgs, "the report should embed its figures"
    for tag in imgs:
        src = re.search(r"""\bsrc\s*=\s*["']([^"']*)["']""", tag).group(1)
        assert src.startswith("data:image/png;base64,"), tag[:80]
    assert "<link" not in html.lower()
    assert "@import" not in html
    assert "url(" not in html.replace("data:", "")


# --------------------------------------------------------------------------- fit report


def test_fit_report_1d_self_contained_and_answer_matches(fit1d):
    html, md = _html(fit1d), _md(fit1d)
    assert_self_contained(html)
    summary = json.loads((fit1d / "summary.json").read_text())
    nc = summary["n_clusters"]
    mode, p = nc["mode"], nc["pmf"][str(nc["mode"])]
    phrase = f"{mode} groups ({100 * p:.0f}% posterior probability)"
    assert phrase in md and phrase in html
    assert f"| **{mode}** | {p:.3f} |" in md  # the K+ table marks the same mode
    for key in ("k_posterior", "data_fit", "weights", "certainty", "psm", "trace_rank"):
        assert f"figures/{key}.png" in md
        assert (fit1d / "figures" / f"{key}.png").stat().st_size > 1000
        assert f'id="fig-{key}"' in html
    # classical EM: one line beside the posterior answer, cached as classical.json
    cached = json.loads((fit1d / "classical.json").read_text())
    assert cached["best_bic"] == 3 and cached["k"] == list(range(1, 11))
    assert f"EM with full covariances picks K = {cached['best_bic']} by BIC" in md
    # the reconciled count table, and the MCSE of each P(K+ = k)
    assert "How many groups? Each count answers its own question" in md and "| MCSE |" in md
    for row in summary["counts"]:
        assert row["name"] in md.replace("\\", "") and html_escape(row["name"]) in html
    for heading in (
        "The answer",
        "The data and the fit",
        "Clusters",
        "Who belongs where",
        "Diagnostics",
        "What classical methods say",
        "Reproduce",
    ):
        assert heading in html and heading in md
    assert summary["command"] in md
    assert summary["data"]["sha256"] in html


def test_relabel_format_cluster_table(fit1d):
    """summary["clusters"] as written by identified.summarise_clusters renders, saying which
    draws it rests on; numbers in data units are never in scientific notation."""
    md = _md(fit1d)
    summary = json.loads((fit1d / "summary.json").read_text())
    k = summary["identified"]["k"]
    assert "Per-cluster parameters" in md and "mean velocity" in md
    assert f"it rests on the {summary['identified']['draws_with_k']:,} draws" in md
    assert f"K+ = {k}" in md and "No cluster is summarised over draws in which it is empty" in md
    assert "not available" not in md
    assert not re.search(r"\d\.\d+e[+-]\d", md)


def test_rerender_uses_cache_and_is_deterministic(fit1d, monkeypatch):
    import bayesmix.report.classical as classical

    before = _html(fit1d)

    def boom(*args, **kwargs):
        raise AssertionError("EM should come from classical.json")

    monkeypatch.setattr(classical, "em_selection", boom)
    render_fit_report(fit1d)
    assert _html(fit1d) == before


def test_fit_report_2d_escapes_user_text_and_has_ellipses(fit2d):
    html, md = _html(fit2d), _md(fit2d)
    assert_self_contained(html)
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert XSS not in md and r"\<script>alert(1)\</script>" in md
    assert 'id="fig-data_fit"' in html and "cluster ellipses" in html
    assert "1σ and 2σ contours" in md
    assert "| correlation |" in md and "PSIS-LOO Pareto k" in md
    from bayesmix.posterior.answer import answer_sentence

    summary = json.loads((fit2d / "summary.json").read_text())
    assert answer_sentence(summary) in md


def test_scatter_figure_draws_two_ellipses_per_cluster():
    from bayesmix.report.plots import scatter_2d_figure

    x, labels = synthetic_data(60, 2)
    ellipses = [
        {"label": k, "mu": x[labels == k].mean(0), "cov": np.cov(x[labels == k].T), "colour": k}
        for k in range(3)
    ]
    fig = scatter_2d_figure(x, ["a", "b"], labels, ellipses)
    assert isinstance(fig, Figure)
    contours = [ln for ln in fig.axes[0].lines if len(ln.get_xdata()) == 100]
    assert len(contours) == 6


def test_missing_optional_parts_give_notes(bare1d):
    html, md = _html(bare1d), _md(bare1d)
    assert_self_contained(html)
    for what in (
        "Identified cluster parameters (component curves and ellipses) not available for this fit",
        "Per-cluster parameters (relabelled clusters in summary.json) not available for this fit",
        "Cluster membership probabilities not available for this fit",
        "Classical EM comparison switched off",
    ):
        assert what in md
    assert "average-linkage" in md  # the co-clustering matrix still shows, ordered another way


def test_summary_only_directory(tmp_path, bare1d):
    shutil.copy(bare1d / "summary.json", tmp_path / "summary.json")
    html_path, md_path = render_fit_report(tmp_path)
    md = md_path.read_text()
    assert "posterior.nc is missing" in md
    assert "The data most likely hold" in md
    assert "figures/k_posterior.png" in md
    assert_self_contained(html_path.read_text())


def test_missing_summary_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="summary.json"):
        render_fit_report(tmp_path)


def test_markdown_escaping_helpers():
    assert md_escape("a|b <b>x</b> K+ < 3 log_lik *y*") == r"a\|b \<b>x\</b> K+ < 3 log_lik \*y\*"
    assert md_code("a `b` c") == "``a `b` c``"


# --------------------------------------------------------------------------- numbers


def test_density_band_matches_draws_and_integrates_to_one():
    from bayesmix.report.loader import Params

    rng = np.random.default_rng(1)
    s, k = 40, 3
    params = Params(
        w=rng.dirichlet(np.ones(k), size=s),
        mu=rng.normal(size=(s, k, 1)) * 3,
        cov=np.full((s, k, 1, 1), 0.5),
    )
    x = np.linspace(-12, 12, 50)
    band = C.density_band(x, params, max_draws=25)
    assert band.n_draws == 25
    g = band.grid[[100, 200]]
    per_draw = np.array(
        [
            np.sum(params.w[s] * np.exp(-((g[:, None] - params.mu[s, :, 0]) ** 2) / (2 * 0.5)), 1)
            for s in C.subsample_draws(s, 25)
        ]
    ) / np.sqrt(2 * np.pi * 0.5)
    np.testing.assert_allclose(band.mean[[100, 200]], per_draw.mean(axis=0), rtol=1e-10)
    # the 90% band: the 5% and 95% empirical quantiles of the per-draw densities
    lo, hi = np.quantile(per_draw, [0.05, 0.95], axis=0)
    np.testing.assert_allclose(band.lower[[100, 200]], lo, rtol=1e-10)
    np.testing.assert_allclose(band.upper[[100, 200]], hi, rtol=1e-10)
    area = float(np.sum((band.mean[1:] + band.mean[:-1]) / 2 * np.diff(band.grid)))
    assert area == pytest.approx(1.0, abs=0.01)


def test_traffic_lights():
    q = {"K+": {"r_hat": 1.2, "ess_bulk": 30.0, "ess_tail": 150.0}}
    summary = {
        "diagnostics": {"quantities": q, "divergences": 0},
        "sampling": {"chains": 2, "draws": 500},
        "engine": "nuts",
        "truncation": {"T": 20, "leftover_mass_q99": 0.02, "leftover_mass_mean": 0.001},
        "loo": {"elpd": -10.0, "se": 1.0, "n_pareto_k_bad": 5},
    }
    rows = {r["check"]: r for r in C.traffic_lights(summary, n_obs=100)}
    assert rows["R-hat (max)"]["status"] == "red"
    assert rows["ESS bulk (min)"]["status"] == "red"
    assert rows["ESS tail (min)"]["status"] == "amber"
    assert rows["Divergent transitions"]["status"] == "green"
    assert rows["DP truncation leftover mass"]["status"] == "amber"
    assert rows["PSIS-LOO Pareto k > 0.7"]["status"] == "red"
    for r in rows.values():
        assert (r["status"] in ("green", "grey")) == (r["action"] == "")


def test_em_selection_finds_separated_clusters():
    from bayesmix.report.classical import em_selection

    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(m, 1.0, 40) for m in (-6.0, 0.0, 6.0)])
    res = em_selection(x, k_max=5)
    assert res["k"] == [1, 2, 3, 4, 5]
    assert res["best_bic"] == 3
    assert len(res["bic"]) == len(res["aic"]) == 5


# --------------------------------------------------------------------------- compare report


def _png(path: Path) -> None:
    fig = Figure(figsize=(2, 1.5))
    fig.add_subplot().plot([0, 1], [1, 0])
    fig.savefig(path, format="png")


def _model(name: str, mode: int, fit_dir: str) -> dict:
    post = {str(mode): 0.6, str(mode + 1): 0.4}
    prior = {"1": 0.2, "2": 0.3, "3": 0.3, "4": 0.2}
    return {
        "name": name,
        "description": f"spec {name}",
        "engine": "collapsed",
        "fit_dir": fit_dir,
        "prior_k": {"pmf": prior, "mean": 2.5, "mode": 2, "credible_set_90": [1, 2, 3, 4]},
        "posterior_k": {
            "pmf": post,
            "mean": mode + 0.4,
            "mode": mode,
            "credible_set_90": [mode, mode + 1],
        },
        "prior_posterior_tv": 0.5,
        "concentration": {"name": "alpha", "fixed": 1.0, "text": "fixed = 1"},
        "psense": {"applies": False, "text": "n/a (fixed)", "prior_sensitive": None},
        "truncation": {"applies": False, "text": "n/a (untruncated)"},
        "diagnostics": {
            "max_r_hat": 1.001,
            "min_ess_bulk": 900.0,
            "divergences": None,
            "warnings": [],
        },
        "loo": {"elpd_loo": -200.0, "se": 5.0, "p_loo": 6.0, "n_pareto_k_above_0_7": 0},
    }


def test_compare_report(tmp_path, fit1d):
    cmp = tmp_path / "cmp"
    (cmp / "fits").mkdir(parents=True)
    shutil.copytree(fit1d, cmp / "fits" / "dp_a", ignore=shutil.ignore_patterns("report.*"))
    _png(cmp / "prior_vs_posterior_k.png")
    _png(cmp / "concentration.png")
    result = {
        "schema": "bayesmix.compare/1",
        "data": {
            "n_obs": 120,
            "n_features": 1,
            "columns": ["velocity"],
            "sha256": "ab" * 32,
            "source": "synthetic.csv",
        },
        "seed": 1,
        "options": {"engine": "collapsed", "jobs": 2},
        "command": "bayesmix compare synthetic.csv",
        "versions": {"bayesmix": "0.1.0"},
        "specs": {"dp_a": {"name": "dp_a"}, XSS: {"name": XSS}},
        "models": [_model("dp_a", 3, "fits/dp_a"), _model(XSS, 4, "fits/elsewhere")],
        "ranking": [
            {"name": XSS, "rank": 0, "elpd_diff": 0.0, "dse": 0.0, "weight": 0.7},
            {"name": "dp_a", "rank": 1, "elpd_diff": -1.0, "dse": 0.8, "weight": 0.3},
        ],
        "reading": "The posterior mode of K+ depends on the prior: 3 (dp_a); 4 (<b>x</b>).",
        "warnings": [f"{XSS}: something"],
        "figures": {
            "prior_vs_posterior_k": "prior_vs_posterior_k.png",
            "concentration": "concentration.png",
        },
    }
    write_json(cmp / "compare.json", result)
    (cmp / "compare.md").write_text("original\n")
    html_path, md_path = render_compare_report(cmp, classical=False)
    html, md = html_path.read_text(), md_path.read_text()
    assert_self_contained(html)
    assert "<script" not in html.lower() and "<b>x</b>" not in html
    assert "depends on the prior" in html and "depends on the prior" in md
    assert 'href="fits/dp_a/report.html"' in html  # its fit report was rendered and linked
    assert (cmp / "fits" / "dp_a" / "report.html").exists()
    assert (cmp / "compare.md").read_text() == "original\n"  # never overwritten
    assert "![Prior and posterior of K+ under each prior](prior_vs_posterior_k.png)" in md
    assert html.count("<img") == 2


def test_figure_psm_matches_the_compiled_psm():
    from bayesmix.posterior.partition import psm

    z = np.random.default_rng(3).integers(0, 5, size=(300, 40))
    np.testing.assert_allclose(C.figure_psm(z, max_draws=300, chunk=1000), psm(z), atol=1e-12)
    thin = C.figure_psm(z, max_draws=100)  # every third draw
    keep = np.unique(np.linspace(0, 299, 100).round().astype(int))
    np.testing.assert_allclose(thin, psm(z[keep]), atol=1e-12)
