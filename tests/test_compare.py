"""bayesmix compare: default specs, per-model numbers, the plain reading, and one end-to-end
run (two specs, Gibbs engine, spawned workers) through the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from bayesmix import cli
from bayesmix.compare import (
    default_spec_paths,
    k_summary,
    load_specs,
    loo_separation,
    markdown_tables,
    plain_reading,
    psense_entry,
    total_variation,
    truncation_entry,
)
from bayesmix.errors import InputError
from bayesmix.priors import prior_k_from_spec
from bayesmix.spec import load_spec

MAIN = cli.main
MODULE = "bayesmix.cli"


def _gibbs_importable() -> bool:
    try:
        import bayesmix.engines.gibbs  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------


def test_default_specs_load_and_are_conjugate():
    paths = default_spec_paths()
    assert [p.stem for p in paths] == [
        "dp_alpha_1",
        "dp_alpha_gamma",
        "finite_k10",
        "mfm_bnb",
        "pitman_yor",
        "sparse_finite_k10",
    ]
    specs = [load_spec(p) for p in paths]
    assert [s.name for s in specs] == [p.stem for p in paths]
    assert all(s.is_conjugate for s in specs)
    assert specs[0].mixing.concentration == 1.0
    assert specs[1].mixing.concentration_prior.shape == 1.0
    assert (specs[5].mixing.n_components, specs[5].mixing.concentration) == (10, 0.01)
    assert specs[3].mixing.type == "mfm" and specs[4].mixing.type == "pitman_yor"
    assert [s.name for s in load_specs(None)] == [s.name for s in specs]
    means = [prior_k_from_spec(82, s).mean for s in specs]
    # sparse finite < MFM (BNB(1, 4, 3) puts 4/7 on K = 1) < DP alpha ~ G(1, 1) < DP alpha = 1
    # < Pitman-Yor (heavier tail) < finite K = 10
    assert means[5] < means[3] < means[1] < means[0] < means[4] < means[2]


def test_duplicate_names_rejected():
    with pytest.raises(InputError, match="share the name 'dp'"):
        load_specs(["dp", "bayesmix/models/dp.toml"])


# --------------------------------------------------------------------------
# Per-model numbers
# --------------------------------------------------------------------------


def test_k_summary_and_total_variation():
    s = k_summary({"2": 0.1, "3": 0.6, "4": 0.25, "5": 0.05})
    assert s["mode"] == 3 and s["credible_set_90"] == [2, 3, 4]
    assert s["mean"] == pytest.approx(0.2 + 1.8 + 1.0 + 0.25)
    assert total_variation({"1": 1.0}, {"2": 1.0}) == pytest.approx(1.0)
    assert total_variation({"1": 0.5, "2": 0.5}, {"1": 0.5, "2": 0.5}) == 0.0


def test_truncation_warning():
    spec = load_spec("dp")
    big = {"engine": "nuts", "truncation": {"T": 20, "leftover_mass_q99": 0.04}}
    entry = truncation_entry(spec, big)
    assert entry["applies"] and "larger truncation" in entry["warning"]
    small = {"engine": "gibbs", "truncation": {"T": 20, "leftover_mass_q99": 0.001}}
    assert truncation_entry(spec, small)["warning"] is None
    assert not truncation_entry(spec, {"engine": "collapsed", "truncation": {}})["applies"]
    assert truncation_entry(load_spec("finite"), big)["text"] == "n/a (finite)"


def _fake_tree(rng: np.random.Generator, informative: bool) -> xr.DataTree:
    """A minimal fit-like DataTree with alpha, its log prior, K+ and pointwise log-lik."""
    c, s, n = 2, 400, 30
    alpha = rng.gamma(2.0, 0.5, size=(c, s))
    kplus = 1 + rng.poisson(alpha if informative else np.full((c, s), 2.0))
    loglik = rng.normal(-2.0, 0.1, size=(c, s, n))
    cd = ("chain", "draw")
    return xr.DataTree.from_dict({
        "posterior": xr.Dataset({"alpha": (cd, alpha)}),
        "log_prior": xr.Dataset({"alpha": (cd, stats.gamma.logpdf(alpha, a=1.0))}),
        "sample_stats": xr.Dataset({"log_likelihood": (cd, loglik.sum(-1))}),
        "log_likelihood": xr.Dataset({"x": (cd + ("obs_id",), loglik)}),
        "allocations": xr.Dataset({"n_clusters": (cd, kplus)}),
    })  # fmt: skip


def test_psense_entry_flags_prior_dependence():
    rng = np.random.default_rng(0)
    spec = load_spec("dp")
    dependent = psense_entry(_fake_tree(rng, informative=True), spec)
    assert dependent["applies"] and set(dependent["quantities"]) == {
        "K+",
        "log_likelihood",
        "alpha",
    }
    assert dependent["prior_sensitive"] and "K+" in dependent["prior_sensitive_quantities"]
    unrelated = psense_entry(_fake_tree(rng, informative=False), spec)
    assert unrelated["quantities"]["K+"]["prior"] < 0.05
    fixed = psense_entry(_fake_tree(rng, True), load_spec("dp_fixed_alpha"))
    assert fixed == {"applies": False, "text": "n/a (fixed)", "prior_sensitive": None}


def _model(name: str, mode: int, cs: list[int], prior_mode: int = 1) -> dict:
    pmf = {str(k): 1.0 / len(cs) for k in cs}
    return {
        "name": name,
        "prior_k": {"pmf": {str(prior_mode): 1.0}, "mean": float(prior_mode), "mode": prior_mode},
        "posterior_k": {
            "pmf": pmf,
            "mean": float(np.mean(cs)),
            "mode": mode,
            "credible_set_90": cs,
        },
        "prior_posterior_tv": 1.0,
        "psense": {"applies": False, "prior_sensitive": None},
    }


def test_plain_reading_robust_and_prior_dependent():
    ranking = [
        {"name": "a", "elpd_diff": 0.0, "dse": 0.0},
        {"name": "b", "elpd_diff": -1.0, "dse": 1.0},
    ]
    text = plain_reading([_model("a", 3, [3, 4]), _model("b", 3, [2, 3])], ranking)
    assert "Every prior puts the posterior mode of K+ at 3" in text
    assert "Every 90% credible set contains {3}" in text
    assert "PSIS-LOO cannot separate" in text
    ranking[1]["elpd_diff"] = -12.0
    text = plain_reading([_model("a", 3, [3, 4]), _model("b", 5, [5, 6])], ranking)
    assert "depends on the prior: 3 (a); 5 (b)" in text and "no value in common" in text
    assert "every one excludes K+ < 3" in text and "b predicts clearly worse" in text


NOT_PROBABILITY = "not the probability that a model is right"


def _loo_model(name: str) -> dict:
    """A model entry with every field the tables and the report read (LOO numbers aside)."""
    m = _model(name, 3, [3, 4])
    m["prior_k"] |= {"credible_set_90": [1]}
    return m | {
        "description": f"spec {name}",
        "concentration": {"name": "alpha", "fixed": 1.0, "text": "fixed = 1"},
        "psense": {"applies": False, "text": "n/a (fixed)", "prior_sensitive": None},
        "truncation": {"applies": False, "text": "n/a (untruncated)"},
        "diagnostics": {"max_r_hat": 1.0, "min_ess_bulk": 500.0, "warnings": []},
        "loo": {"elpd_loo": -150.0, "se": 6.0, "p_loo": 4.0, "n_pareto_k_above_0_7": 0},
    }


def _row(name: str, rank: int, diff: float, dse: float, weight: float) -> dict:
    return {"name": name, "rank": rank, "elpd_diff": diff, "dse": dse, "weight": weight}


def _never_both(text: str) -> None:
    """A text that says LOO cannot separate models and shows a weight of 1.00 must say
    what stacking weights are not."""
    if "cannot separate" in text and "1.00" in text:
        assert NOT_PROBABILITY in text


def test_loo_tie_with_all_weight_on_one_model_is_explained():
    # |elpd_diff| = 1.5 < 4: LOO cannot separate a and b, yet stacking gives a weight 1
    ranking = [_row("a", 0, 0.0, 0.0, 1.0), _row("b", 1, -1.5, 1.2, 0.0)]
    models = [_loo_model("a"), _loo_model("b")]
    sep = loo_separation(ranking)
    assert sep["tied"] == ["a", "b"] and not sep["separable"] and sep["weights_decide_nothing"]
    reading = plain_reading(models, ranking)
    tables = markdown_tables({"models": models, "ranking": ranking})
    assert "PSIS-LOO cannot separate the models" in reading
    assert "stacking weights (a 1.00, b 0.00) do not change this" in reading
    assert NOT_PROBABILITY in reading and "Yao et al. 2018" in reading
    assert "| 1.00 (tied) |" in tables and "| 0.00 (tied) |" in tables
    assert NOT_PROBABILITY in tables and "cannot separate the models" in tables
    printed = tables + "\n\n" + reading  # what bayesmix compare prints
    for text in (reading, tables, printed):
        _never_both(text)


def test_loo_clear_winner_and_partial_tie():
    models = [_loo_model("a"), _loo_model("b"), _loo_model("c")]
    clear = [_row("a", 0, 0.0, 0.0, 1.0), _row("b", 1, -12.0, 2.0, 0.0)]
    reading = plain_reading(models[:2], clear)
    tables = markdown_tables({"models": models[:2], "ranking": clear})
    assert "PSIS-LOO favours a; b predicts clearly worse." in reading
    assert "cannot separate" not in reading and "(tied)" not in tables
    assert NOT_PROBABILITY in tables  # the footnote always says what the weights are
    # c is clearly worse (20 > 4 and > 2 x 3), b is not (1 < 4): a and b are tied
    partial = [
        _row("a", 0, 0.0, 0.0, 0.0),
        _row("b", 1, -1.0, 1.0, 1.0),
        _row("c", 2, -20.0, 3.0, 0.0),
    ]
    sep = loo_separation(partial)
    assert sep["tied"] == ["a", "b"] and sep["clearly_worse"] == ["c"] and sep["separable"]
    reading = plain_reading(models, partial)
    tables = markdown_tables({"models": models, "ranking": partial})
    assert "PSIS-LOO favours a; c predicts clearly worse, but it cannot separate b from a" in (
        reading
    )
    assert "(a 0.00, b 1.00)" in reading and NOT_PROBABILITY in reading
    assert "| 1.00 (tied) |" in tables and "| 0.00 |" in tables  # c is not tied
    for text in (reading, tables):
        _never_both(text)


def test_compare_report_names_no_best_when_loo_cannot_separate(tmp_path):
    from bayesmix.io import write_json
    from bayesmix.report import render_compare_report

    ranking = [_row("a", 0, 0.0, 0.0, 1.0), _row("b", 1, -0.4, 0.9, 0.0)]
    models = [_loo_model("a"), _loo_model("b")]
    result = {
        "schema": "bayesmix.compare/1",
        "data": {"n_obs": 60, "n_features": 1, "columns": ["x"], "source": "x.csv"},
        "models": models,
        "ranking": ranking,
        "reading": plain_reading(models, ranking),
        "warnings": [],
        "figures": {"prior_vs_posterior_k": "prior_vs_posterior_k.png"},  # not written
    }
    write_json(tmp_path / "compare.json", result)
    html_path, md_path = render_compare_report(tmp_path, fits=False, classical=False)
    html, md = html_path.read_text(), md_path.read_text()
    for text in (html, md):
        assert "1.00 (tied)" in text and NOT_PROBABILITY in text
        _never_both(text)
    assert '<div class="label">Best by PSIS-LOO</div><div class="value">none</div>' in html
    assert "PSIS-LOO cannot separate the models" in html
    assert "Figure prior_vs_posterior_k.png is missing" in md  # a note, not a crash


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run(
        [sys.executable, "-m", MODULE, *args], capture_output=True, text=True, env=env
    )


def test_missing_file_exits_2_without_traceback(tmp_path):
    proc = _cli("compare", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "missing.csv: file not found" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_unknown_model_exits_2(capsys, small_csv, tmp_path):
    code = MAIN(["compare", str(small_csv), "--model", "nonsense", "--out", str(tmp_path / "c")])
    assert code == 2 and "unknown model 'nonsense'" in capsys.readouterr().err


@pytest.mark.skipif(
    not _gibbs_importable(),
    reason="bayesmix.engines.gibbs is not importable: an end-to-end compare with NUTS "
    "would compile two PyMC models (minutes)",
)
def test_compare_end_to_end(capsys, tmp_path):
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(-4, 1, 40), rng.normal(4, 1, 40)])
    data = tmp_path / "two.csv"
    pd.DataFrame({"x": x}).to_csv(data, index=False)
    out = tmp_path / "cmp"
    args = ["compare", str(data), "--out", str(out), "--engine", "gibbs", "--chains", "2"]
    args += ["--draws", "200", "--tune", "100", "--seed", "3", "--jobs", "2", "--quiet"]
    args += ["--model", "dp", "--model", "sparse_finite", "--model", "mfm"]
    assert MAIN(args) == 0
    printed = capsys.readouterr().out
    assert "| dp |" in printed and "| sparse_finite |" in printed and "| mfm |" in printed

    for name in ("compare.json", "compare.md", "prior_vs_posterior_k.png", "concentration.png"):
        assert (out / name).stat().st_size > 0
    for model in ("dp", "sparse_finite", "mfm"):
        assert (out / "fits" / model / "posterior.nc").is_file()
        assert (out / "fits" / model / "summary.json").is_file()
    assert (out / "concentration.png").read_bytes()[:4] == b"\x89PNG"

    res = json.loads((out / "compare.json").read_text())
    assert res["schema"] == "bayesmix.compare/1" and res["seed"] == 3
    assert len(res["data"]["sha256"]) == 64 and res["data"]["n_obs"] == 80
    assert "arviz" in res["versions"] and set(res["specs"]) == {"dp", "sparse_finite", "mfm"}
    models = {m["name"]: m for m in res["models"]}
    trees = {name: xr.load_datatree(out / "fits" / name / "posterior.nc") for name in models}
    for name, m in models.items():
        assert np.isfinite(m["loo"]["elpd_loo"]) and m["loo"]["se"] > 0
        # PSIS-LOO recomputed from the saved pointwise log-likelihood
        elpd = az.loo(trees[name], var_name="x")
        k = np.asarray(elpd.pareto_k, dtype=float).ravel()
        assert m["loo"]["n_pareto_k_above_0_7"] == int(np.sum(k > 0.7))
        assert m["loo"]["max_pareto_k"] == pytest.approx(float(np.nanmax(k)), abs=1e-12)
        assert m["loo"]["elpd_loo"] == pytest.approx(float(elpd.elpd), abs=1e-9)
        assert m["posterior_k"]["mode"] == 2
        assert abs(sum(m["prior_k"]["pmf"].values()) - 1) < 1e-9
    dp, sparse, mfm = models["dp"], models["sparse_finite"], models["mfm"]
    # the MFM carries K (components) beside K+: prior and posterior, K >= K+ in every draw
    assert dp["posterior_components"] is None and dp["prior_components"] is None
    assert abs(sum(mfm["prior_components"]["pmf"].values()) - 1) < 1e-6
    assert mfm["posterior_components"]["mean"] >= mfm["posterior_k"]["mean"]
    assert min(map(int, mfm["posterior_components"]["pmf"])) >= min(
        map(int, mfm["posterior_k"]["pmf"])
    )
    assert mfm["psense"]["applies"] and "gamma" in mfm["psense"]["quantities"]
    # psense recomputed from the saved fit: K+ per draw, alpha's log prior, pointwise loglik
    t = trees["dp"]
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset({"kplus": t["allocations"]["n_clusters"].astype(float)}),
        "log_prior": xr.Dataset({"alpha": t["log_prior"]["alpha"]}),
        "log_likelihood": xr.Dataset({"x": t["log_likelihood"]["x"]}),
    })  # fmt: skip
    direct = float(az.psense(tree, group="prior")["kplus"].values)
    assert dp["psense"]["applies"]
    assert dp["psense"]["quantities"]["K+"]["prior"] == pytest.approx(direct, abs=1e-12)
    assert sparse["psense"]["text"] == "n/a (fixed)"
    assert dp["concentration"]["posterior"]["mean"] > 0
    assert sparse["concentration"]["text"] == "fixed = 0.01"
    assert dp["truncation"]["applies"] and dp["truncation"]["T"] == 20
    assert sorted(r["rank"] for r in res["ranking"]) == [0, 1, 2]
    assert "Every mixing prior puts the posterior mode of K+ at 2" in res["reading"]
    md = (out / "compare.md").read_text()
    assert res["reading"] in md and "![prior_vs_posterior_k](prior_vs_posterior_k.png)" in md
    for report in ("report.html", "report.md"):
        text = (out / report).read_text()
        assert "posterior K<" in text or "posterior K mean" in text, report
        assert "the number that the data occupy" in text
