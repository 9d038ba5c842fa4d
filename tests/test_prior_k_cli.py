"""bayesmix prior-k: exact pmf of K+, JSON layout, model-source rules, plot, calibration."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bayesmix import cli

MAIN = cli.main
MODULE = "bayesmix.cli"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = MAIN(["prior-k", *args])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *args: str) -> dict:
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_dp_n5_alpha1_exact_pmf(capsys):
    d = run_json(capsys, "--n", "5", "--alpha", "1")
    expected = [1 / 5, 5 / 12, 7 / 24, 1 / 12, 1 / 120]
    assert list(d)[:3] == ["pmf", "mean", "mode"]
    assert list(d["pmf"]) == ["1", "2", "3", "4", "5"]
    np.testing.assert_allclose(list(d["pmf"].values()), expected, rtol=1e-12)
    assert d["mean"] == pytest.approx(1 + 1 / 2 + 1 / 3 + 1 / 4 + 1 / 5)
    assert d["mode"] == 2
    assert d["credible_set_90"] == [1, 2, 3]
    assert "DP(alpha=1)" in d["description"]


def test_table_output_and_tail_note(capsys):
    code, out, _ = run(capsys, "--n", "5", "--alpha", "1")
    assert code == 0
    assert "0.416667" in out and "mean 2.283, mode 2" in out
    code, out, _ = run(capsys, "--n", "200", "--alpha", "1")
    assert code == 0 and "rows with P < 1e-06 omitted: k = " in out and "..200" in out
    code, out, _ = run(capsys, "--n", "82", "--finite", "10", "--gamma", "0.01")
    assert code == 0 and "..10 (mass" in out  # the support of a finite K+ ends at K


def test_other_sources_agree(capsys):
    spec = run_json(capsys, "--n", "40", "--model", "dp")  # alpha ~ Gamma(1, 1)
    direct = run_json(capsys, "--n", "40", "--alpha-gamma", "1", "1")
    assert spec["pmf"] == direct["pmf"]
    fin = run_json(capsys, "--n", "40", "--finite", "10", "--gamma", "0.01")
    assert len(fin["pmf"]) <= 10 and sum(fin["pmf"].values()) == pytest.approx(1.0)
    hyper = run_json(capsys, "--n", "40", "--finite", "10", "--gamma-prior", "2", "20")
    assert hyper["mean"] > fin["mean"] and "Gamma(2, 20)" in hyper["description"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--alpha", "1", "--finite", "3", "--gamma", "1"], "exactly one model source"),
        (["--alpha", "1", "--model", "dp"], "exactly one model source"),
        (["--alpha-gamma", "1", "1", "--alpha", "2"], "exactly one model source"),
        ([], "give a model"),
        (["--gamma", "1"], "--gamma needs --finite K"),
        (["--finite", "5"], "exactly one of --gamma G or --gamma-prior"),
        (["--finite", "5", "--gamma", "1", "--gamma-prior", "1", "1"], "exactly one of --gamma"),
        (["--alpha", "1", "--interval", "1", "3"], "--interval needs --expected-k"),
        (["--alpha", "1", "--expected-k", "3"], "drop --alpha"),
        (["--model", "nonsense"], "unknown model 'nonsense'"),
        (["--expected-k", "0.5"], "expected_k must be in (1, n)"),
    ],
)
def test_usage_errors_exit_2_one_line(capsys, args, message):
    code, out, err = run(capsys, "--n", "20", *args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and out == ""


def test_subprocess_error_has_no_traceback():
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, "-m", MODULE, "prior-k", "--n", "10", "--alpha", "1", "--finite", "2"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_plot_writes_png(capsys, tmp_path):
    path = tmp_path / "sub" / "prior.png"
    code, _, err = run(capsys, "--n", "82", "--alpha", "1", "--plot", str(path))
    assert code == 0 and str(path) in err
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["prior.png"]  # no temporary left


def test_expected_k_round_trip_fixed(capsys):
    d = run_json(capsys, "--n", "82", "--expected-k", "4")
    alpha = d["calibration"]["alpha"]
    assert d["mean"] == pytest.approx(4.0, abs=1e-8)
    again = run_json(capsys, "--n", "82", "--alpha", repr(alpha))
    assert again["mean"] == pytest.approx(4.0, abs=1e-8)
    assert d["calibration"]["feasible"] is True and d["calibration"]["target"]["interval"] is None
    fin = run_json(capsys, "--n", "82", "--finite", "10", "--expected-k", "3")
    assert fin["mean"] == pytest.approx(3.0, abs=1e-8) and "gamma" in fin["calibration"]
    code, out, _ = run(capsys, "--n", "82", "--expected-k", "4")
    assert code == 0 and f"alpha = {alpha:.6g}" in out and "achieved: E[K+] = 4" in out


def test_expected_k_with_interval_gamma_prior(capsys):
    d = run_json(capsys, "--n", "50", "--expected-k", "4", "--interval", "2", "8")
    prior = d["calibration"]["alpha_prior"]
    assert d["mean"] == pytest.approx(4.0, abs=1e-6)
    assert d["calibration"]["toml"].startswith("alpha_prior = { shape = ")
    again = run_json(
        capsys, "--n", "50", "--alpha-gamma", repr(prior["shape"]), repr(prior["rate"])
    )
    assert again["mean"] == pytest.approx(4.0, abs=1e-6)
    lo, hi = again["interval_90"]
    assert 1 <= lo <= 3 and 7 <= hi <= 9
    assert d["calibration"]["feasible"] is True and _pmf_mass(again, 2, 8) >= 0.9


def test_large_n_mean(capsys):
    d = run_json(capsys, "--n", "10000", "--alpha", "1")
    assert d["mean"] == pytest.approx(float(np.sum(1.0 / (1.0 + np.arange(10000)))))


def _pmf_mass(d: dict, lo: int, hi: int) -> float:
    return sum(p for k, p in d["pmf"].items() if lo <= int(k) <= hi)


def test_infeasible_interval_is_reported(capsys):
    # E[K+] = 3 with 90% of K+ in [2, 5] for n = 155 cannot be had (tests/test_priors.py)
    args = ("--n", "155", "--expected-k", "3", "--interval", "2", "5")
    code, out, err = run(capsys, *args, "--json")
    assert code == 0
    d = json.loads(out)
    cal = d["calibration"]
    assert cal["feasible"] is False
    assert cal["target"] == {
        "expected_k": 3.0,
        "interval": [2.0, 5.0],
        "level": 0.9,
        "mixing": "dp",
        "K": None,
    }
    got = cal["achieved"]
    assert got["interval"] == d["interval_90"]  # the 5%-95% quantiles of the pmf printed
    assert got["mass_in_interval"] == pytest.approx(_pmf_mass(d, 2, 5), abs=1e-12)
    assert got["mass_in_interval"] < 0.9
    assert got["expected_k"] == pytest.approx(3.0, abs=1e-6)
    assert cal["message"].startswith("No Gamma prior on alpha")
    assert f"puts {100 * got['mass_in_interval']:.1f}% there" in cal["message"]
    assert err.startswith("warning: target not feasible") and cal["message"] in err
    code, out, err = run(capsys, *args)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"warning: target not feasible. {cal['message']}"
    assert lines[1].startswith("Closest found (DP, N = 155) for E[K+] = 3, 90% interval [2, 5]")
    assert f"P(2 <= K+ <= 5) = {100 * got['mass_in_interval']:.1f}%" in out


def test_feasible_interval_is_reported(capsys):
    d = run_json(capsys, "--n", "155", "--expected-k", "5", "--interval", "2", "10")
    cal = d["calibration"]
    assert cal["feasible"] is True and cal["message"].startswith("Target met")
    assert cal["achieved"]["interval"] == [2, 10] == d["interval_90"]
    assert cal["achieved"]["expected_k"] == pytest.approx(5.0, abs=1e-6)
    assert d["mean"] == pytest.approx(5.0, abs=1e-6)
    assert _pmf_mass(d, 2, 10) >= 0.9
    code, out, err = run(capsys, "--n", "155", "--expected-k", "5", "--interval", "2", "10")
    assert code == 0 and "warning" not in out + err
    assert out.startswith("Calibrated (DP, N = 155) for E[K+] = 5, 90% interval [2, 10]:")


def test_prior_k_of_every_mixing_by_model(capsys, tmp_path):
    """--model accepts Pitman-Yor and MFM specs (a spec file may hold only [mixing]); the JSON
    of an MFM also has the prior of K, the number of components."""
    from bayesmix.cli import main
    from bayesmix.partition_priors import py_kplus_pmf

    assert main(["prior-k", "--n", "30", "--model", "mfm", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    comp = d["pmf_components"]
    assert float(comp["1"]) == pytest.approx(4 / 7, rel=1e-6)  # BNB(1, 4, 3): P(K = 1) = 4/7
    spec = tmp_path / "py.toml"
    spec.write_text('name = "py"\n[mixing]\ntype = "pitman_yor"\nstrength = 1.5\ndiscount = 0.25\n')
    assert main(["prior-k", "--n", "30", "--model", str(spec), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    want = py_kplus_pmf(30, 1.5, 0.25)
    got = np.array([d["pmf"].get(str(k), 0.0) for k in range(1, 31)])
    np.testing.assert_allclose(got, want[:30], atol=1e-12)
    assert main(["prior-k", "--n", "30", "--model", str(spec), "--expected-k", "6"]) == 0
    out = capsys.readouterr().out
    theta = float(out.split("strength = ")[1].split()[0])
    mean = float(np.dot(np.arange(1, 31), py_kplus_pmf(30, theta, 0.25)[:30]))
    assert mean == pytest.approx(6.0, abs=1e-4)
