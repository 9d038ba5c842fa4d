"""All-or-nothing outputs, input mistakes caught before fitting, and the CLI's small courtesies."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesmix.io as bio
from bayesmix import cli
from bayesmix.fit import fit

FAST = ["--engine", "collapsed", "--chains", "2", "--draws", "300", "--tune", "100", "--quiet"]


def _snapshot(d: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under d (hidden staging names included)."""
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def _data(tmp_path: Path, name: str, shift: float) -> Path:
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(-3 + shift, 1, 40), rng.normal(3 + shift, 1, 40)])
    path = tmp_path / name
    pd.DataFrame({"value": x}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def two_fits(tmp_path_factory):
    """An old output directory and the fit that will replace it."""
    base = tmp_path_factory.mktemp("outputs")
    old_csv, new_csv = _data(base, "old.csv", 0.0), _data(base, "new.csv", 10.0)
    out = base / "out"
    assert cli.main(["fit", str(old_csv), "--out", str(out), *FAST]) == 0
    kw = dict(engine="collapsed", chains=2, draws=300, tune=100, progress=False)
    return out, _snapshot(out), fit(new_csv, "dp", **kw), new_csv


def _count_writes(monkeypatch) -> list[int]:
    calls = [0]
    real = bio.atomic_write

    def counting(path, writer):
        calls[0] += 1
        return real(path, writer)

    monkeypatch.setattr(bio, "atomic_write", counting)
    for mod in ("bayesmix.report.figures", "bayesmix.io"):
        monkeypatch.setattr(sys.modules[mod], "atomic_write", counting, raising=False)
    return calls


@pytest.fixture
def python_sigint():
    """SIGINT handled as in a fresh CLI process (KeyboardInterrupt), whatever earlier tests in
    this process left installed; restored afterwards."""
    prev = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield prev
    signal.signal(signal.SIGINT, prev)


def test_sigint_at_every_write_step_leaves_old_or_new_never_a_mix(
    two_fits, monkeypatch, tmp_path, python_sigint
):
    out, old, result, new_csv = two_fits
    import bayesmix.fit as fitmod

    monkeypatch.setattr(fitmod, "fit", lambda *a, **k: result)  # the write steps are the test
    # a reference run: how many writes, and what the new outputs look like
    calls = _count_writes(monkeypatch)
    ref = tmp_path / "ref"
    assert cli.main(["fit", str(new_csv), "--out", str(ref), *FAST]) == 0
    n_writes = calls[0]
    new = _snapshot(ref)
    assert n_writes >= 8 and set(new) != set() and new != old
    new_sha = json.loads((ref / "summary.json").read_text())["data"]["sha256"]
    monkeypatch.undo()
    monkeypatch.setattr(fitmod, "fit", lambda *a, **k: result)
    real, real_commit = bio.atomic_write, bio.StagedDir.commit
    for k in range(1, n_writes + 2):  # k = n_writes + 1: SIGINT right after the swap
        count = [0]

        def interrupting(path, writer, k=k, count=count):
            count[0] += 1
            done = real(path, writer)
            if count[0] == k:
                os.kill(os.getpid(), signal.SIGINT)
            return done

        def commit_then_interrupt(self, k=k):
            done = real_commit(self)
            if k == n_writes + 1:
                os.kill(os.getpid(), signal.SIGINT)
            return done

        for mod in ("bayesmix.report.figures", "bayesmix.io"):
            monkeypatch.setattr(sys.modules[mod], "atomic_write", interrupting)
        monkeypatch.setattr(bio.StagedDir, "commit", commit_then_interrupt)
        rc = cli.main(["fit", str(new_csv), "--out", str(out), *FAST])
        got = _snapshot(out)
        assert rc == 130, k
        if k <= n_writes:
            assert got == old, f"interrupted after write {k}: the old outputs changed"
        else:
            assert set(got) == set(new)
            assert json.loads((out / "summary.json").read_text())["data"]["sha256"] == new_sha
        leftovers = [p.name for p in out.parent.iterdir() if ".staging-" in p.name]
        assert leftovers == [], leftovers


def test_files_of_the_users_own_survive_a_refit(two_fits, tmp_path):
    out, _, result, _ = two_fits
    import shutil

    copy = tmp_path / "mine"
    shutil.copytree(out, copy)
    (copy / "notes.txt").write_text("my notes")
    result.save(copy, report=False)
    assert (copy / "notes.txt").read_text() == "my notes"
    assert json.loads((copy / "summary.json").read_text()) == json.loads(
        json.dumps(result.summary, default=bio._json_default)
    )


def test_interruption_message_says_which_state(two_fits, monkeypatch, capsys):
    out, old, result, new_csv = two_fits
    import bayesmix.fit as fitmod

    monkeypatch.setattr(fitmod, "fit", lambda *a, **k: result)

    def boom(path, writer):
        raise KeyboardInterrupt

    monkeypatch.setattr(sys.modules["bayesmix.io"], "atomic_write", boom)
    assert cli.main(["fit", str(new_csv), "--out", str(out), *FAST]) == 130
    assert f"previous outputs in {out} are unchanged" in capsys.readouterr().err
    fresh = out.parent / "never_written"
    assert cli.main(["fit", str(new_csv), "--out", str(fresh), *FAST]) == 130
    assert f"nothing was written to {fresh}" in capsys.readouterr().err
    assert not fresh.exists()


def test_out_pointing_at_a_file_exits_2_before_fitting(tmp_path, monkeypatch, capsys):
    import bayesmix.fit as fitmod

    def no_fit(*a, **k):
        raise AssertionError("fit must not run")

    monkeypatch.setattr(fitmod, "fit", no_fit)
    target = tmp_path / "report.txt"
    target.write_text("mine")
    csv = _data(tmp_path, "d.csv", 0.0)
    assert cli.main(["fit", str(csv), "--out", str(target), *FAST]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file" in err
    assert target.read_text() == "mine"
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("x")
    assert cli.main(["fit", str(csv), "--out", str(mine), *FAST]) == 2
    assert "not a bayesmix output directory" in capsys.readouterr().err
    assert (mine / "chapter1.tex").read_text() == "x"


def test_report_rerender_is_all_or_nothing(two_fits, tmp_path, monkeypatch):
    out, old, _, _ = two_fits
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before = _snapshot(copy)

    def boom(*a, **k):
        raise KeyboardInterrupt

    import bayesmix.report.render as render

    monkeypatch.setattr(render, "write_text", boom)
    assert cli.main(["report", str(copy)]) == 130
    assert _snapshot(copy) == before
    monkeypatch.undo()
    assert cli.main(["report", str(copy)]) == 0
    assert set(_snapshot(copy)) == set(before)


def _run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bayesmix.cli", *args], capture_output=True, text=True, **kw
    )


def test_version_and_broken_pipe(tmp_path):
    v = _run("--version")
    assert v.returncode == 0 and v.stdout.startswith("bayesmix ")
    csv = _data(tmp_path, "d.csv", 0.0)
    cmd = f"{sys.executable} -m bayesmix.cli prior-k --n 10000 --alpha 1 | head -1"
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    assert p.returncode == 0 and "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr
    assert csv.exists()


def test_builtin_model_list_hides_internal_specs():
    from bayesmix.spec import builtin_model_names

    names = builtin_model_names()
    assert "dp" in names and not any(n.startswith("galaxy_") for n in names)
