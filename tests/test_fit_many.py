"""bayesmix fit-many: outputs, the same numbers from every executor (in-process, 2 local
worker processes, a 2-worker loopback Dask LocalCluster), bad groups, resume, a worker
killed mid-run and Ctrl-C. Tiny groups and few collapsed Gibbs draws keep it fast."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from bayesmix.cli import main
from bayesmix.errors import InputError
from bayesmix.many.groups import group_dir_name, group_seed
from bayesmix.many.run import fit_many

FAST = {"engine": "collapsed", "chains": 2, "draws": 60, "tune": 20, "seed": 3}
CLI_FAST = ["--engine", "collapsed", "--chains", "2", "--draws", "60", "--tune", "20"]
CLI_FAST += ["--seed", "3", "--quiet"]
GOOD = ["a", "b", "c d"]
VARYING = ["seconds", "attempts"]  # the only columns that depend on the run


@pytest.fixture(scope="module")
def grouped_csv(tmp_path_factory) -> Path:
    """Three good groups ('c d' needs a safe directory name), one with too few rows, one
    with a NaN; the group column is text, the feature x numeric."""
    rng = np.random.default_rng(5)
    parts = [
        ("a", np.concatenate([rng.normal(-4, 1, 15), rng.normal(4, 1, 15)])),
        ("b", rng.normal(0, 1, 25)),
        ("c d", np.concatenate([rng.normal(0, 1, 12), rng.normal(8, 1, 12)])),
        ("tiny", rng.normal(0, 1, 3)),
        ("has_nan", np.r_[rng.normal(0, 1, 4), np.nan, rng.normal(0, 1, 5)]),
    ]
    frame = pd.concat([pd.DataFrame({"x": x, "g": g}) for g, x in parts], ignore_index=True)
    frame = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)  # groups interleaved
    path = tmp_path_factory.mktemp("data") / "grouped.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def runs(grouped_csv, tmp_path_factory) -> dict[str, tuple[Path, pd.DataFrame]]:
    """The same run on three executors (group reports only in-process, to keep it fast)."""
    base = tmp_path_factory.mktemp("runs")
    out = {}
    for name, kw in {
        "inline": {"workers": 1, "group_reports": True},
        "processes": {"workers": 2, "group_reports": False},
        "dask": {"workers": 2, "scheduler": "local", "group_reports": False},
    }.items():
        d = base / name
        out[name] = (d, fit_many(grouped_csv, "g", "dp", out=d, progress=False, **FAST, **kw))
    return out


def _numbers(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=VARYING).reset_index(drop=True)


def test_outputs_per_group_and_overview(runs):
    d, frame = runs["inline"]
    assert list(frame["group"]) == sorted(GOOD + ["tiny", "has_nan"])
    for g in GOOD:
        gd = d / "groups" / group_dir_name(g)
        for name in ("summary.json", "posterior.nc", "assignments.csv", "run.json"):
            assert (gd / name).is_file(), (g, name)
        assert (gd / "report.html").is_file()
        s = json.loads((gd / "summary.json").read_text())
        assert s["seed"] == group_seed(3, g)
        assert s["data"]["source"].endswith(f"[g = {g}]")
    assert group_dir_name("c d") != "c d"
    table = pd.read_parquet(d / "summary.parquet")
    pd.testing.assert_frame_equal(table, frame, check_dtype=False)
    csv = pd.read_csv(d / "summary.csv", keep_default_na=False)
    assert list(csv.columns) == list(frame.columns) and len(csv) == len(frame)
    good = frame[frame["error"] == ""]
    assert sorted(good["group"]) == sorted(GOOD)
    assert (good["p_mode"] > 0).all() and (good["p_mode"] <= 1).all()
    assert set(good["light"]) <= {"green", "amber", "red", "grey"}
    assert (good["engine"] == "collapsed Gibbs").all()
    assert good["k_mode"].notna().all() and good["max_rhat"].notna().all()
    record = json.loads((d / "fit_many.json").read_text())
    assert record["status"] == "complete" and record["settings"]["seed"] == 3
    assert record["counts"] == {"groups": 5, "fitted": 3, "skipped": 0, "failed": 2}
    assert "numpy" in record["versions"]
    import pyarrow.parquet as pq

    meta = json.loads(pq.read_schema(d / "summary.parquet").metadata[b"bayesmix"])
    assert meta["settings"]["by"] == "g" and "versions" in meta
    html = (d / "report.html").read_text()
    assert html.count("<svg") == len(GOOD)  # one small multiple per fitted group
    assert 'class="sortable"' in html and "groups/a/report.html" in html
    # most uncertain first: the small multiples follow P(mode) upwards
    order = [html.index(f"</span> {g}</div>") for g in good.sort_values("p_mode")["group"]]
    assert order == sorted(order)


def test_same_numbers_on_every_executor(runs):
    ref = _numbers(runs["inline"][1])
    pd.testing.assert_frame_equal(_numbers(runs["processes"][1]), ref)
    pd.testing.assert_frame_equal(_numbers(runs["dask"][1]), ref)
    for name in ("processes", "dask"):
        for g in GOOD:
            a = json.loads(
                (runs["inline"][0] / "groups" / group_dir_name(g) / "summary.json").read_text()
            )
            b = json.loads(
                (runs[name][0] / "groups" / group_dir_name(g) / "summary.json").read_text()
            )
            assert a["n_clusters"] == b["n_clusters"], (name, g)


def test_bad_groups_get_the_message_fit_gives(runs, grouped_csv):
    from bayesmix.fit import fit

    frame = runs["processes"][1].set_index("group")
    raw = pd.read_csv(grouped_csv)
    for g, expect in (("tiny", "only 3 usable row(s)"), ("has_nan", "column 'x' is nan")):
        msg = frame.loc[g, "error"]
        assert expect in msg and msg.startswith(f"{grouped_csv} [g = {g}]: ")
        sub = raw[raw["g"] == g].drop(columns="g").reset_index(drop=True)
        with pytest.raises(InputError) as exc:
            fit(sub, "dp", **FAST, progress=False)
        assert msg.replace(f"{grouped_csv} [g = {g}]", "<DataFrame>") == str(exc.value)
        assert not (runs["processes"][0] / "groups" / g).exists()


def test_cli_resume_skips_finished_groups(runs, grouped_csv, tmp_path, capsys):
    d = tmp_path / "resumed"
    shutil.copytree(runs["processes"][0], d)
    stamp = {
        g: (d / "groups" / group_dir_name(g) / "summary.json").stat().st_mtime_ns for g in GOOD
    }
    args = [
        "fit-many",
        str(grouped_csv),
        "--by",
        "g",
        "--out",
        str(d),
        "--workers",
        "2",
        "--model",
        "dp",
    ]
    rc = main([*args, *CLI_FAST, "--no-group-reports"])
    err = capsys.readouterr().err
    assert rc == 1  # two groups have no fit
    assert "group tiny: " in err and "group has_nan: " in err
    assert {
        g: (d / "groups" / group_dir_name(g) / "summary.json").stat().st_mtime_ns for g in GOOD
    } == stamp
    again = pd.read_parquet(d / "summary.parquet")
    pd.testing.assert_frame_equal(_numbers(again), _numbers(runs["processes"][1]))
    assert (again.set_index("group").loc[GOOD, "attempts"] == 0).all()
    record = json.loads((d / "fit_many.json").read_text())
    assert record["counts"]["skipped"] == 3 and record["counts"]["fitted"] == 0
    # with progress on, the count of skipped groups is said
    rc = main([*args, *[a for a in CLI_FAST if a != "--quiet"], "--no-group-reports"])
    assert "skipped 3 finished earlier" in capsys.readouterr().err
    # the overview re-rendered from the saved table
    (d / "report.html").unlink()
    assert main(["report", str(d)]) == 0 and "<svg" in (d / "report.html").read_text()
    capsys.readouterr()
    # other settings on the same --out: refused, nothing refitted
    rc = main([*args, *CLI_FAST[:-3], "--seed", "4", "--quiet"])
    assert rc == 2
    assert "other settings (seed differ)" in capsys.readouterr().err


def test_cli_bad_input_exits_2_with_one_line(grouped_csv, tmp_path, capsys):
    rc = main(["fit-many", str(grouped_csv), "--by", "group", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err.strip() == (
        f"bayesmix: error: {grouped_csv}: --by column 'group' not found (available: x, g)"
    )
    rc = main(["fit-many", str(grouped_csv), "--by", "g", "--out", str(tmp_path / "o"),
               "--scheduler", "nowhere"])  # fmt: skip
    assert rc == 2 and "expected 'local'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    fit_dir = tmp_path / "a_fit"
    fit_dir.mkdir()
    (fit_dir / "summary.json").write_text("{}")
    rc = main(["fit-many", str(grouped_csv), "--by", "g", "--out", str(fit_dir)])
    assert rc == 2 and "holds the outputs of bayesmix fit" in capsys.readouterr().err
    assert sorted(p.name for p in fit_dir.iterdir()) == ["summary.json"]


def _workers() -> list[psutil.Process]:
    """This process's spawned worker processes (not multiprocessing's resource tracker)."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(p.cmdline())
        except psutil.Error:
            continue
        if "spawn_main" in cmd and "resource_tracker" not in cmd:
            out.append(p)
    return out


def _gone(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _when_a_group_is_done(out: Path, action) -> threading.Thread:
    """Run ``action()`` in a thread once the first group of ``out`` is complete."""

    def watch():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if any((p / "run.json").exists() for p in (out / "groups").glob("[!.]*")):
                action()
                return
            time.sleep(0.05)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("scheduler", [None, "local"], ids=["processes", "dask"])
def test_killed_worker_mid_run_loses_nothing(runs, grouped_csv, tmp_path, scheduler):
    killed = []

    def kill_one():
        procs = _workers()
        if procs:
            procs[0].kill()
            killed.append(procs[0].pid)

    d = tmp_path / "killed"
    watcher = _when_a_group_is_done(d, kill_one)
    frame = fit_many(grouped_csv, "g", "dp", out=d, workers=2, scheduler=scheduler,
                     group_reports=False, progress=False, **FAST)  # fmt: skip
    watcher.join(timeout=5)
    assert killed  # a worker process was killed while the run went on
    # every group fitted anyway (the killed worker's group again), with the same numbers
    pd.testing.assert_frame_equal(_numbers(frame), _numbers(runs["inline"][1]))


@pytest.fixture
def python_sigint():
    """SIGINT raises KeyboardInterrupt, as in a fresh CLI process; restored afterwards."""
    prev = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, prev)


def test_ctrl_c_keeps_finished_groups_and_resume_completes(
    runs, grouped_csv, tmp_path, python_sigint
):
    d = tmp_path / "stopped"
    watcher = _when_a_group_is_done(d, lambda: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(KeyboardInterrupt) as exc:
        fit_many(grouped_csv, "g", "dp", out=d, workers=2, group_reports=False,
                 progress=False, **FAST)  # fmt: skip
        time.sleep(30)  # the run finished before the signal came: wait for it here
    watcher.join(timeout=5)
    done = [p for p in (d / "groups").iterdir() if not p.name.startswith(".")]
    assert done, "at least the group that triggered the interrupt is kept"
    for p in done:  # each kept group is complete: it was swapped in whole
        s = json.loads((p / "summary.json").read_text())
        assert (p / "posterior.nc").stat().st_size > 0 and (p / "run.json").is_file()
        assert s["n_clusters"]["pmf"]
    assert "finished group(s) are kept" in str(exc.value) or len(done) == len(GOOD)
    assert all(_gone(p) for p in _workers())  # the workers were stopped
    assert json.loads((d / "fit_many.json").read_text())["status"] in ("interrupted", "complete")
    frame = fit_many(grouped_csv, "g", "dp", out=d, workers=2, group_reports=False,
                     progress=False, **FAST)  # fmt: skip
    pd.testing.assert_frame_equal(_numbers(frame), _numbers(runs["inline"][1]))
    attempts = frame.set_index("group").loc[GOOD, "attempts"]
    assert int((attempts == 0).sum()) == len(done)  # the kept groups were skipped
