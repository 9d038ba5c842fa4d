"""CLI: errors exit 2 with one line and no traceback; fit writes every output atomically."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import xarray as xr

from bayesmix.cli import main


def run_cli(*args, cwd=None):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run(
        [sys.executable, "-m", "bayesmix.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "missing.csv"], "missing.csv: file not found"),
        (
            ["fit", "{csv}", "--columns", "nope"],
            "column 'nope' not found (available: value, label)",
        ),
        (["fit", "{csv}", "--columns", "label"], "column 'label' is not numeric"),
        (["fit", "{csv}", "--model", "nonsense"], "unknown model 'nonsense'"),
    ],
)
def test_input_errors_exit_2_without_traceback(args, message, small_csv):
    proc = run_cli(*[a.format(csv=small_csv) for a in args])
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_usage_errors_exit_2(small_csv):
    proc = run_cli("fit", str(small_csv), "--chains", "0")
    assert proc.returncode == 2 and "positive integer" in proc.stderr
    assert run_cli("frobnicate").returncode == 2


def test_every_command_has_help():
    for cmd in ([], ["fit"], ["demo"]):
        proc = run_cli(*cmd, "--help")
        assert proc.returncode == 0 and "usage: bayesmix" in proc.stdout


def test_failed_run_keeps_existing_outputs(tmp_path, small_csv):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text('{"good": true}')
    code = main(["fit", str(small_csv), "--columns", "nope", "--out", str(out)])
    assert code == 2
    assert json.loads((out / "summary.json").read_text()) == {"good": True}


@pytest.fixture(scope="module")
def cli_fit(tmp_path_factory):
    import numpy as np
    import pandas as pd

    tmp = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(-4, 1, 40), rng.normal(4, 1, 40)])
    csv = tmp / "two.csv"
    pd.DataFrame({"x": x}).to_csv(csv, index=False)
    out = tmp / "fit"
    proc = run_cli(
        "fit",
        str(csv),
        "--model",
        "dp",
        "--engine",
        "collapsed",
        "--chains",
        "2",
        "--draws",
        "200",
        "--tune",
        "200",
        "--seed",
        "3",
        "--out",
        str(out),
        "--quiet",
    )
    return proc, out


def test_cli_fit_writes_everything(cli_fit):
    proc, out = cli_fit
    assert proc.returncode == 0, proc.stderr
    for name in ("posterior.nc", "summary.json", "report.md"):
        assert (out / name).is_file()
    summary = json.loads((out / "summary.json").read_text())
    dt = xr.open_datatree(out / "posterior.nc")
    assert dt["allocations"]["z"].shape == (2, 200, 80)
    assert dt.attrs["seed"] == 3
    assert "most likely hold" in (out / "report.md").read_text()
    assert (out / "report.html").is_file() and (out / "assignments.csv").is_file()
    mode = summary["n_clusters"]["mode"]
    assert f"{mode} groups" in proc.stdout or f"{mode} group " in proc.stdout
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
