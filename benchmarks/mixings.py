"""The mixing x kernel Gibbs engines: speed against the old engine, and the new mixings.

``python -m benchmarks.mixings [--quick] [--baseline REV] [--repeats N]`` measures, in one run:

1. Old vs new engine speed, side by side.  Old = git revision ``--baseline`` (default
   c0d5575, the last commit before the engine rewrite), checked out with ``git worktree add
   --detach`` (``benchmarks.latency.baseline_worktree``); new = the working tree.  Each
   version runs in its own long-lived subprocess (this virtualenv's Python, ``PYTHONPATH`` and
   the working directory set to the version's root, plus latency.py's ``sitecustomize`` guard
   against the editable install's finder), which receives one job at a time, so that old and
   new runs alternate (old, new, old, new, ...) and the load on the machine affects both alike.
   For the specs both versions have (``dp``, ``sparse_finite``, ``finite``) and both
   algorithms, on galaxy and Old Faithful: 1 chain x (tune + draws) per run, one warm-up run
   per version and cell first (numba caches warm), then ``--repeats`` timed runs; sweeps per
   second per chain (``Draws.info['sweeps_per_s']``), median over chains and repeats.  The
   timed runs are spread over ``--rounds`` pairs of fresh worker processes (a warm-up run per
   cell in each): a process's memory and code layout can shift one version's speed by several
   per cent for its whole life (Mytkowicz et al. 2009; Curtsinger & Berger 2013, whose remedy
   is to re-randomise the layout), which one pair of long-lived workers would report as a
   difference between the versions; each round draws a new layout.  The warm-up runs of both
   versions in the first round use the same seed and their ``.w`` and ``.z`` are compared
   with ``np.array_equal`` (the golden test's promise: bit-identical draws).
2. The mixings, new engine only: DP, Pitman-Yor (collapsed and blocked), the static MFM
   (collapsed and telescoping) and the dynamic MFM (collapsed given K, and telescoping;
   ``alpha ~ F(6, 3)``) on galaxy
   and Old Faithful: sweeps/s, and ESS/s of K+ and of the concentration (ArviZ ESS_bulk over
   the chains / the summed seconds of the chains).
3. Galaxy MFM, collapsed vs telescoping: long runs of ``models/mfm.toml`` with both
   algorithms; TV distance of the K+ and K posteriors against the Monte Carlo noise floor
   (``benchmarks.engines.compare``) and the mean of gamma in combined MCSE.

Writes ``reports/benchmarks/mixings.md`` and ``mixings.json`` (``mixings_quick.*`` with
``--quick``), atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.latency import (
    DATASETS,
    GUARD,
    Version,
    _write,
    baseline_worktree,
    check_import,
    git,
    remove_worktree,
    tree_digest,
)

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "reports" / "benchmarks"
DEFAULT_BASELINE = "c0d5575"
MARK = "@@bayesmix-mixings@@ "
SEED = 20261201
SPEED_SPECS = ("dp", "sparse_finite", "finite")
ALGORITHMS = ("collapsed", "blocked")
SPEED_TARGET = 0.95  # new sweeps/s >= 0.95 x old
TV_FACTOR = 3.0  # agree: TV <= 3 x its expected value under equal posteriors
MEAN_MCSE = 4.0  # agree: |difference of means| < 4 combined MCSE (as benchmarks.engines)
DATA_LABEL = {"galaxy": "galaxy (1-D, N=82)", "faithful": "Old Faithful (2-D, N=272)"}
# part 2: (row key, label, spec, algorithm passed to sample_gibbs)
MIXINGS = (
    ("dp/collapsed", "DP", "dp", "collapsed"),
    ("dp/blocked", "DP", "dp", "blocked"),
    ("pitman_yor/collapsed", "Pitman-Yor", "pitman_yor", "collapsed"),
    ("pitman_yor/blocked", "Pitman-Yor", "pitman_yor", "blocked"),
    ("mfm/collapsed", "MFM, static", "mfm", "collapsed"),
    ("mfm/telescoping", "MFM, static", "mfm", "blocked"),
    ("mfm_dynamic/collapsed", "MFM, dynamic", "mfm_dynamic", "collapsed"),
    ("mfm_dynamic/telescoping", "MFM, dynamic", "mfm_dynamic", "blocked"),
)
DYNAMIC_ALPHA_PRIOR = {"family": "F", "df1": 6.0, "df2": 3.0}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Run lengths for one benchmark mode."""

    speed_repeats: int = 15  # timed runs per version and cell, in all rounds together
    speed_rounds: int = 5  # pairs of fresh worker processes the repeats are spread over
    speed_tune: int = 500
    speed_draws: int = 20_000
    mix_chains: int = 4
    mix_tune: int = 1000
    mix_draws: int = 5000
    long_chains: int = 4
    long_tune: int = 2000
    long_draws: int = 20_000
    long_thin: int = 10  # 200,000 sweeps per chain, 20,000 stored


FULL = Settings()
QUICK = Settings(
    speed_repeats=1,
    speed_rounds=1,
    speed_tune=200,
    speed_draws=1000,
    mix_tune=200,
    mix_draws=1000,
    long_tune=500,
    long_draws=5000,
    long_thin=1,
)


def log(msg: str) -> None:
    print(f"[mixings] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Part 1: a long-lived worker per version (imports only that version's bayesmix)
# --------------------------------------------------------------------------

SPEED_DRIVER = r"""
import hashlib, json, sys, time, traceback
import numpy as np
import bayesmix
from bayesmix.data import load_data
from bayesmix.engines.gibbs import sample_gibbs
from bayesmix.spec import load_spec

mark = sys.argv[1]
data = {}


def digest(a):
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()[:16]


print(mark + json.dumps({"ready": True, "bayesmix_file": bayesmix.__file__,
                         "sample_gibbs": sys.modules[sample_gibbs.__module__].__file__}),
      flush=True)
for line in sys.stdin:
    job = json.loads(line)
    if job.get("quit"):
        break
    try:
        if job["data"] not in data:
            data[job["data"]] = load_data(job["data"]).standardized
        spec = load_spec(job["spec"])
        t0 = time.perf_counter()
        d = sample_gibbs(spec, data[job["data"]], algorithm=job["algorithm"],
                         chains=job["chains"], draws=job["draws"], tune=job["tune"],
                         seed=job["seed"], progress=False, cores=1)
        out = {
            "ok": True,
            "call_s": time.perf_counter() - t0,
            "algorithm": d.info.get("algorithm"),
            "sweeps": int(d.info["sweeps"]),
            "sweeps_per_s": [float(v) for v in d.info["sweeps_per_s"]],
            "chain_sweep_s": [float(v) for v in d.info["chain_sweep_s"]],
            "chain_sweep_cpu_s": [float(v) for v in d.info.get("chain_sweep_cpu_s", [])],
            "chain_post_s": [float(v) for v in d.info.get("chain_post_s", [])],
            "sampling_s": float(d.timing.get("sampling_s", float("nan"))),
            "compile_s": float(d.timing.get("compile_s", float("nan"))),
            "w_sha": digest(d.w),
            "z_sha": None if d.z is None else digest(d.z),
        }
        if job.get("save"):
            np.savez(job["save"], w=d.w, z=np.zeros(0) if d.z is None else d.z,
                     has_z=d.z is not None)
    except Exception:
        out = {"ok": False, "error": traceback.format_exc()[-3000:]}
    print(mark + json.dumps(out), flush=True)
"""


class Worker:
    """``python -c SPEED_DRIVER`` in a version's root: JSON jobs in on stdin, marked JSON out."""

    def __init__(self, v: Version, work: Path, timeout: float = 900.0) -> None:
        self.v = v
        self.err_path = work / f"{v.name}_worker.stderr"
        self._err = self.err_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SPEED_DRIVER, MARK],
            cwd=v.root,
            env=v.env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
            bufsize=1,
        )
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.hello = self._reply(timeout)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(MARK):
                self._q.put(line[len(MARK) :])
        self._q.put(None)

    def _reply(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._q.get(timeout=timeout)
        except queue.Empty:
            self.close(kill=True)
            return {"ok": False, "error": f"no reply within {timeout:.0f} s"}
        if line is None:
            return {"ok": False, "error": "worker exited: " + self.stderr_tail()}
        return json.loads(line)

    def ask(self, job: dict[str, Any], timeout: float = 900.0) -> dict[str, Any]:
        if self.proc.poll() is not None:
            return {"ok": False, "error": "worker not running: " + self.stderr_tail()}
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        return self._reply(timeout)

    def stderr_tail(self) -> str:
        self._err.flush()
        try:
            return self.err_path.read_text()[-2000:]
        except OSError:
            return ""

    def close(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            try:
                if kill:
                    self.proc.kill()
                else:
                    assert self.proc.stdin is not None
                    self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
                    self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._err.close()


def speed_cells() -> list[tuple[str, str, str]]:
    return [(d, s, a) for d in DATASETS for s in SPEED_SPECS for a in ALGORITHMS]


def run_speed(
    start: Callable[[], dict[str, Worker]], st: Settings, work: Path
) -> list[dict[str, Any]]:
    """Per round, a fresh pair of workers from ``start()``: a warm-up run per version and cell
    (the first round's are saved for the identity check), then that round's share of the timed
    repeats, alternating old, new, old, new, ..., cells interleaved within each repeat."""
    cells = speed_cells()
    runs: dict[tuple, list[dict]] = {c: [] for c in cells}
    saved: dict[tuple, dict[str, Path]] = {c: {} for c in cells}

    def job(cell: tuple, save: Path | None) -> dict[str, Any]:
        data, spec, alg = cell
        return {
            "data": str(DATASETS[data]),
            "spec": spec,
            "algorithm": alg,
            "chains": 1,
            "tune": st.speed_tune,
            "draws": st.speed_draws,
            "seed": SEED,
            "save": None if save is None else str(save),
        }

    def one(workers: dict, cell: tuple, name: str, kind: str, i: int | None, rnd: int) -> None:
        save = None
        if kind == "warm-up" and rnd == 0:
            save = work / f"{name}_{'_'.join(cell)}.npz"
        res = workers[name].ask(job(cell, save))
        res.update(version=name, kind=kind, repeat=i, round=rnd)
        runs[cell].append(res)
        if save is not None and res.get("ok"):
            saved[cell][name] = save
        sps = res.get("sweeps_per_s") or [math.nan]
        state = f"{sps[0]:,.0f} sweeps/s" if res.get("ok") else "FAILED"
        rep = "" if i is None else f" #{i + 1}"
        log(f"{name:3s} {'/'.join(cell)}{rep} ({kind}, round {rnd + 1}): {state}")

    rounds = max(1, min(st.speed_rounds, st.speed_repeats))
    for rnd in range(rounds):
        workers = start()
        try:
            for cell in cells:
                for name in ("old", "new"):
                    one(workers, cell, name, "warm-up", None, rnd)
            for i in range(
                rnd * st.speed_repeats // rounds, (rnd + 1) * st.speed_repeats // rounds
            ):
                for cell in cells:
                    for name in ("old", "new"):
                        one(workers, cell, name, "timed", i, rnd)
        finally:
            for w in workers.values():
                w.close()
    rows = []
    for cell in cells:
        data, spec, alg = cell
        row: dict[str, Any] = {"data": data, "spec": spec, "algorithm": alg}
        for name in ("old", "new"):
            timed = [r for r in runs[cell] if r["version"] == name and r["kind"] == "timed"]
            sps = [v for r in timed if r.get("ok") for v in r["sweeps_per_s"]]
            cpu = [
                r["sweeps"] / c
                for r in timed
                if r.get("ok")
                for c in r.get("chain_sweep_cpu_s", [])
                if c > 0
            ]
            row[name] = {
                "sweeps_per_s_median": statistics.median(sps) if sps else None,
                "sweeps_per_s": sps,
                "cpu_sweeps_per_s_median": statistics.median(cpu) if cpu else None,
                "cpu_sweeps_per_s": cpu,
                "n_ok": sum(bool(r.get("ok")) for r in timed),
                "n": len(timed),
                "algorithm_reported": sorted({r.get("algorithm") for r in timed if r.get("ok")}),
            }
        o, n = row["old"]["sweeps_per_s_median"], row["new"]["sweeps_per_s_median"]
        row["ratio"] = n / o if o and n else None
        oc, nc = row["old"]["cpu_sweeps_per_s_median"], row["new"]["cpu_sweeps_per_s_median"]
        row["ratio_cpu"] = nc / oc if oc and nc else None
        by_rep = {
            (r["version"], r["repeat"]): r["sweeps_per_s"][0]
            for r in runs[cell]
            if r["kind"] == "timed" and r.get("ok")
        }
        row["paired_ratios"] = [
            by_rep[("new", i)] / by_rep[("old", i)]
            for i in range(st.speed_repeats)
            if ("new", i) in by_rep and ("old", i) in by_rep
        ]
        row["round_ratios"] = round_ratios(runs[cell], rounds)
        row["identity"] = identity(saved[cell])
        row["hashes"] = {
            name: sorted({(r["w_sha"], r["z_sha"]) for r in runs[cell] if r["version"] == name
                          and r.get("ok")})
            for name in ("old", "new")
        }  # fmt: skip
        row["runs"] = runs[cell]
        rows.append(row)
    return rows


def round_ratios(runs: list[dict], rounds: int) -> list[float]:
    """new/old of the median sweeps/s of each round's timed runs (one worker pair each)."""
    out = []
    for rnd in range(rounds):
        med = {}
        for name in ("old", "new"):
            sps = [
                v
                for r in runs
                if r["version"] == name and r["kind"] == "timed" and r["round"] == rnd
                and r.get("ok")
                for v in r["sweeps_per_s"]
            ]  # fmt: skip
            med[name] = statistics.median(sps) if sps else None
        if med["old"] and med["new"]:
            out.append(med["new"] / med["old"])
    return out


def identity(paths: dict[str, Path]) -> dict[str, Any]:
    """np.array_equal of the old and new warm-up draws' w and z (same seed)."""
    if set(paths) != {"old", "new"}:
        return {"checked": False, "identical": None}
    with np.load(paths["old"]) as fo, np.load(paths["new"]) as fn:
        same_w = bool(np.array_equal(fo["w"], fn["w"]))
        same_z = bool(fo["has_z"] == fn["has_z"] and np.array_equal(fo["z"], fn["z"]))
        shapes = {"old": list(fo["w"].shape), "new": list(fn["w"].shape)}
    for p in paths.values():
        p.unlink(missing_ok=True)
    return {
        "checked": True,
        "identical": same_w and same_z,
        "w": same_w,
        "z": same_z,
        "w_shape": shapes,
    }


# --------------------------------------------------------------------------
# Parts 2 and 3: the new engine, in this process
# --------------------------------------------------------------------------


def mixing_spec(name: str):
    """A built-in spec, or ``mfm_dynamic``: models/mfm.toml with weights = "dynamic" and
    alpha ~ F(6, 3) in place of the static gamma prior."""
    from bayesmix.spec import load_spec, parse_spec

    if name != "mfm_dynamic":
        return load_spec(name)
    table = tomllib.loads((ROOT / "models" / "mfm.toml").read_text())
    mix = table["mixing"]
    mix.pop("gamma_prior", None)
    mix.pop("gamma", None)
    mix.update(weights="dynamic", alpha_prior=dict(DYNAMIC_ALPHA_PRIOR))
    table["name"] = "mfm_dynamic"
    table["description"] = "models/mfm.toml with dynamic weights, alpha ~ F(6, 3)"
    return parse_spec(table, where="mfm_dynamic (benchmarks.mixings)", default_name="mfm_dynamic")


def load_x(data: str) -> np.ndarray:
    from bayesmix.data import load_data

    return load_data(DATASETS[data]).standardized


def sample(
    spec, x: np.ndarray, algorithm: str, chains: int, tune: int, draws: int, cores: int,
    thin: int = 1,
):  # fmt: skip
    from bayesmix.engines.gibbs import sample_gibbs

    t0 = time.perf_counter()
    d = sample_gibbs(
        spec, x, algorithm=algorithm, chains=chains, draws=draws, tune=tune, thin=thin,
        seed=SEED, progress=False, cores=cores,
    )  # fmt: skip
    return d, time.perf_counter() - t0


def timing(d, call_s: float) -> dict[str, Any]:
    sweep = [float(v) for v in d.info["chain_sweep_s"]]
    post = [float(v) for v in d.info.get("chain_post_s", [0.0] * len(sweep))]
    return {
        "sweeps": int(d.info["sweeps"]),
        "sweeps_per_s": [float(v) for v in d.info["sweeps_per_s"]],
        "sweeps_per_s_median": float(np.median(d.info["sweeps_per_s"])),
        "chain_sweep_s": sweep,
        "chain_post_s": post,
        "chain_s": float(sum(sweep) + sum(post)),
        "sampling_s": float(d.timing.get("sampling_s", math.nan)),
        "compile_s": float(d.timing.get("compile_s", math.nan)),
        "call_s": call_s,
        "workers": d.info.get("workers"),
        "start_method": d.info.get("start_method"),
    }


def run_mixings(st: Settings) -> list[dict[str, Any]]:
    """Part 2: every mixing x algorithm on galaxy and Old Faithful, chains one after another."""
    from benchmarks.engines import _stat

    rows = []
    for data in DATASETS:
        x = load_x(data)
        for key, label, spec_name, alg in MIXINGS:
            row: dict[str, Any] = {"data": data, "key": key, "mixing": label, "spec": spec_name}
            try:
                spec = mixing_spec(spec_name)
                sample(spec, x, alg, 1, 10, 20, 1)  # compile / load the kernels first
                d, call_s = sample(spec, x, alg, st.mix_chains, st.mix_tune, st.mix_draws, 1)
                row.update(algorithm=d.info["algorithm"], status="ok", **timing(d, call_s))
                kplus = np.asarray(d.sample_stats["n_occupied"])
                conc = spec.mixing.concentration_name
                row["kplus"] = _stat(kplus)
                row["concentration_name"] = conc
                row["params"] = {k: _stat(v) for k, v in d.params.items()}
                row["concentration"] = row["params"].get(conc)
                del d
            except Exception as exc:  # noqa: BLE001 - record it, keep the rest of the benchmark
                row.update(status=f"failed: {type(exc).__name__}: {exc}", algorithm=alg)
            rows.append(row)
            log(f"mixings {data} {key}: {_mix_line(row)}")
    return rows


def ess_per_s(row: dict, stat: dict | None, wall: bool = False) -> float | None:
    """ESS_bulk per second: of the chains' summed seconds, or of the sampling phase's wall
    time (``wall``: plus what the main process does after the chains)."""
    if row.get("status") != "ok" or not stat or stat.get("ess_bulk") is None:
        return None
    return stat["ess_bulk"] / (row["sampling_s"] if wall else row["chain_s"])


def _mix_line(row: dict) -> str:
    if row.get("status") != "ok":
        return row["status"]
    e = ess_per_s(row, row["kplus"])
    return f"{row['sweeps_per_s_median']:,.0f} sweeps/s, ESS/s K+ {_f(e)}"


def _pmf_record(k: np.ndarray, other: np.ndarray, kmax: int, chains: int, draws: int) -> dict:
    from benchmarks.engines import _stat, pmf_with_mcse

    pmf, mcse = pmf_with_mcse(k, kmax)
    return {
        "status": "ok",
        "kplus_pmf": pmf,
        "kplus_pmf_mcse": mcse,
        "kplus": _stat(k),
        "alpha": _stat(other),  # compare() reads the continuous parameter under "alpha"
        "chains": chains,
        "draws": draws,
    }


def ess_floor(pa: list[float], pb: list[float], ess_a: float, ess_b: float) -> float:
    """E[TV] under equal posteriors from the ESS of the count itself:
    0.5 sqrt(2/pi) sum_k sqrt(p_k (1 - p_k)) sqrt(1/ESS_a + 1/ESS_b), p the pooled pmf."""
    p = 0.5 * (np.asarray(pa) + np.asarray(pb))
    return float(
        0.5 * math.sqrt(2 / math.pi) * np.sqrt(p * (1 - p)).sum() * math.sqrt(1 / ess_a + 1 / ess_b)
    )


def run_agreement(st: Settings) -> dict[str, Any]:
    """Part 3: galaxy, models/mfm.toml, collapsed vs telescoping, long runs (two threads)."""
    from benchmarks.engines import _stat, compare

    x = load_x("galaxy")
    spec = mixing_spec("mfm")
    got: dict[str, dict[str, Any]] = {}
    for name, alg in (("collapsed", "collapsed"), ("telescoping", "blocked")):
        sample(spec, x, alg, 1, 10, 20, 1)
        d, call_s = sample(
            spec, x, alg, st.long_chains, st.long_tune, st.long_draws, 2, st.long_thin
        )
        got[name] = {
            "algorithm": d.info["algorithm"],
            "kplus": np.asarray(d.sample_stats["n_occupied"]).astype(np.int64),
            "K": np.asarray(d.params["K"]).astype(np.int64),
            "gamma": np.asarray(d.params["gamma"], dtype=float),
            "timing": timing(d, call_s),
        }
        del d
        log(
            f"agreement: {name} {st.long_chains} x {st.long_draws:,} draws (thin "
            f"{st.long_thin}) in {call_s:.1f} s"
        )
    a, b = got["collapsed"], got["telescoping"]
    out: dict[str, Any] = {
        "chains": st.long_chains,
        "tune": st.long_tune,
        "draws": st.long_draws,
        "thin": st.long_thin,
        "algorithms": {k: v["algorithm"] for k, v in got.items()},
        "timing": {k: v["timing"] for k, v in got.items()},
    }
    for q in ("kplus", "K"):
        kmax = int(max(a[q].max(), b[q].max()))
        ra = _pmf_record(a[q], a["gamma"], kmax, st.long_chains, st.long_draws)
        rb = _pmf_record(b[q], b["gamma"], kmax, st.long_chains, st.long_draws)
        c = compare(ra, rb, "collapsed", "telescoping")
        c["pmf_a"], c["pmf_b"] = ra["kplus_pmf"], rb["kplus_pmf"]  # the whole support
        c["pmf_mcse_a"], c["pmf_mcse_b"] = ra["kplus_pmf_mcse"], rb["kplus_pmf_mcse"]
        c["mean_a"], c["mean_b"] = ra["kplus"]["mean"], rb["kplus"]["mean"]
        c["rhat_a"], c["rhat_b"] = ra["kplus"]["rhat"], rb["kplus"]["rhat"]
        ea, eb = c["ess_kplus_a"], c["ess_kplus_b"]
        c["tv_floor_ess"] = (
            ess_floor(ra["kplus_pmf"], rb["kplus_pmf"], ea, eb) if ea and eb else None
        )
        ratios = [c["tv"] / f for f in (c["tv_floor_ess"], c["tv_noise_floor"]) if f]
        c["tv_over_floor_ess"] = c["tv"] / c["tv_floor_ess"] if c["tv_floor_ess"] else None
        c["tv_over_floor_cell"] = c["tv"] / c["tv_noise_floor"] if c["tv_noise_floor"] else None
        c["agree"] = bool(ratios) and max(ratios) <= TV_FACTOR
        out[q] = c
    g, sa, sb = out["kplus"], _stat(a["gamma"]), _stat(b["gamma"])
    out["gamma"] = {
        "mean_a": sa["mean"],
        "mean_b": sb["mean"],
        "mcse_a": sa["mcse"],
        "mcse_b": sb["mcse"],
        "ess_a": sa["ess_bulk"],
        "ess_b": sb["ess_bulk"],
        "rhat_a": sa["rhat"],
        "rhat_b": sb["rhat"],
        "diff_over_mcse": g["alpha_diff_over_mcse"],
        "agree": g["alpha_pass"],
    }
    return out


# --------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------


def _f(v: float | None, fmt: str = ",.0f") -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:{fmt}}"


def _speed_md(rows: list[dict], st: dict) -> list[str]:
    lines = [
        "## 1. Old vs new engine: sweeps per second per chain",
        "",
        f"1 chain x ({st['speed_tune']} tune + {st['speed_draws']:,} draws) per run, seed "
        f"{SEED}, `cores=1`; median over {st['speed_repeats']} timed runs per version, spread "
        f"over {st.get('speed_rounds', 1)} rounds, each a fresh pair of worker processes with a "
        "warm-up run per version and cell, old and new alternating. Target: new/old >= "
        f"{SPEED_TARGET:.2f}. Identical draws: `np.array_equal` on `.w` and `.z` of the two "
        "versions' warm-up runs (same seed).",
        "",
        "| Data | Spec | Algorithm | old sweeps/s | new sweeps/s | new/old | >= 0.95? | "
        "paired new/old, min–max | per round new/old | new/old, CPU time | identical draws? |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        o, n = r["old"]["sweeps_per_s_median"], r["new"]["sweeps_per_s_median"]
        ratio = r["ratio"]
        met = "–" if ratio is None else ("yes" if ratio >= SPEED_TARGET else "**no**")
        idn = r["identity"]
        same = "–" if not idn["checked"] else ("yes" if idn["identical"] else "**NO**")
        if idn["checked"] and not idn["identical"]:
            same += f" (w {'same' if idn['w'] else 'differ'}, z {'same' if idn['z'] else 'differ'})"
        lines.append(
            f"| {DATA_LABEL[r['data']]} | `{r['spec']}` | {r['algorithm']} | {_f(o)} | {_f(n)} | "
            f"{_f(ratio, '.3f')} | {met} | {_range(r.get('paired_ratios'))} | "
            f"{', '.join(f'{v:.3f}' for v in r.get('round_ratios', []))} | "
            f"{_f(r.get('ratio_cpu'), '.3f')} | {same} |"
        )
    lines += [
        "",
        "sweeps/s = (tune + draws) / the chain's sweep seconds (`Draws.info['sweeps_per_s']`, "
        "the same definition in both versions; post-processing and padding excluded). new/old: "
        "ratio of the medians; paired: new / old of the runs of the same repeat (run back to "
        "back), to show the run-to-run noise; per round: the ratio of the medians of each pair of worker processes, to show the process-to-process noise. CPU time: the same ratio with each chain's sweep "
        "CPU seconds (`Draws.info['chain_sweep_cpu_s']`, thread time) in place of wall seconds: "
        "less sensitive to other processes on the machine.",
        "",
    ]
    return lines


def _range(xs: list[float] | None) -> str:
    if not xs:
        return "–"
    return f"{min(xs):.3f}–{max(xs):.3f}" if len(xs) > 1 else f"{xs[0]:.3f}"


def _mix_md(rows: list[dict], st: dict) -> list[str]:
    lines = [
        "## 2. The mixings (new engine)",
        "",
        f"{st['mix_chains']} chains x ({st['mix_tune']:,} tune + {st['mix_draws']:,} draws), "
        f"seed {SEED}, chains one after another (`cores=1`).",
        "",
        "| Data | Mixing | Algorithm | sweeps/s per chain | chain s | wall s | ESS K+ | "
        "**ESS/s K+** | ESS/s K+ (wall) | R-hat K+ | concentration | ESS | ESS/s | R-hat |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        head = f"| {DATA_LABEL[r['data']]} | {r['mixing']} | {r['algorithm']} |"
        if r.get("status") != "ok":
            lines.append(head + f" {r['status']} |" + " |" * 10)
            continue
        k, c = r["kplus"], r.get("concentration") or {}
        lines.append(
            head + f" {_f(r['sweeps_per_s_median'])} | {r['chain_s']:.2f} | "
            f"{r['sampling_s']:.2f} | {_f(k['ess_bulk'])} | **{_f(ess_per_s(r, k))}** | "
            f"{_f(ess_per_s(r, k, wall=True))} | {_f(k['rhat'], '.3f')} | "
            f"{r['concentration_name']} | {_f(c.get('ess_bulk'))} | {_f(ess_per_s(r, c))} | "
            f"{_f(c.get('rhat'), '.3f')} |"
        )
    lines += [
        "",
        "ESS: ArviZ ESS_bulk over all chains; ESS/s = ESS / chain s, the summed seconds of the "
        "chains (sweeps plus each chain's post-processing, `Draws.info['chain_sweep_s']` + "
        "`['chain_post_s']`). wall s: the sampling phase's wall time (`Draws.timing['sampling_s']`"
        "; with one chain after another it is chain s plus what the main process does after the "
        "chains: prior draws for the empty slots of every telescoping draw, up to the largest K "
        "drawn, or the "
        "collapsed padding). Concentration: alpha (DP, dynamic MFM), "
        "strength theta (Pitman-Yor; the discount's ESS is in the JSON), gamma (static MFM). "
        "blocked = truncated sticks for DP / Pitman-Yor, the telescoping sampler for an MFM.",
        "",
    ]
    return lines


def _agree_md(a: dict | None) -> list[str]:
    lines = ["## 3. Galaxy MFM (`models/mfm.toml`): collapsed vs telescoping", ""]
    if not a:
        return lines + ["Not run (see Failures).", ""]
    thin = a.get("thin", 1)
    kept = f"{a['draws']:,} draws" + (
        f" kept of {a['draws'] * thin:,} (thin {thin})" if thin > 1 else ""
    )
    lines += [
        f"{a['chains']} chains x ({a['tune']:,} tune + {kept}) per algorithm, seed {SEED}, "
        "chains in 2 threads; the same run lengths for both algorithms.",
        "",
        "| Quantity | mean collapsed | mean telescoping | ESS collapsed | ESS telescoping | TV | "
        "floor (ESS) | TV / floor (ESS) | floor (cell MCSE) | TV / floor (cell) | agree? |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for q, label in (("kplus", "K+"), ("K", "K")):
        c = a[q]
        lines.append(
            f"| {label} | {c['mean_a']:.3f} | {c['mean_b']:.3f} | {_f(c['ess_kplus_a'])} | "
            f"{_f(c['ess_kplus_b'])} | {c['tv']:.4f} | {_f(c['tv_floor_ess'], '.4f')} | "
            f"{_f(c['tv_over_floor_ess'], '.2f')} | {c['tv_noise_floor']:.4f} | "
            f"{_f(c['tv_over_floor_cell'], '.2f')} | {'yes' if c['agree'] else '**no**'} |"
        )
    g = a["gamma"]
    se = math.hypot(g["mcse_a"], g["mcse_b"])
    lines += [
        "",
        "| Quantity | mean collapsed (MCSE) | mean telescoping (MCSE) | ESS collapsed | "
        "ESS telescoping | difference / combined MCSE | agree? |",
        "|---|---:|---:|---:|---:|---:|---|",
        f"| gamma | {g['mean_a']:.4f} ({g['mcse_a']:.4f}) | {g['mean_b']:.4f} "
        f"({g['mcse_b']:.4f}) | {_f(g['ess_a'])} | {_f(g['ess_b'])} | "
        f"{g['diff_over_mcse']:+.2f} (MCSE {se:.4f}) | {'yes' if g['agree'] else '**no**'} |",
        "",
        "Floor: the expected TV between two exact samplers of the same posterior. ESS: "
        "0.5 sqrt(2/pi) sum_k sqrt(p_k (1 - p_k)) sqrt(1/ESS_a + 1/ESS_b), the ESS_bulk of the "
        "count itself, p the pooled pmf; cell MCSE (`benchmarks.engines.compare`): "
        "0.5 sqrt(2/pi) sum_k sqrt(MCSE_a,k^2 + MCSE_b,k^2), the MCSE of each indicator "
        f"1{{K+ = k}}. Agree: TV <= {TV_FACTOR:g} x both floors (under equal posteriors with the "
        "difference in two cells, TV / floor is a half-normal over its mean: P(> "
        f"{TV_FACTOR:g}) ~ 2 %). gamma: |difference| < {MEAN_MCSE:g} combined MCSE.",
        "",
    ]
    for q, label in (("kplus", "K+"), ("K", "K")):
        c = a[q]
        pa, pb = np.array(c["pmf_a"]), np.array(c["pmf_b"])
        # rows up to where both pmfs have 99.9 % of their mass, then the tail in one row
        cut = int(max(np.searchsorted(np.cumsum(pa), 0.999), np.searchsorted(np.cumsum(pb), 0.999)))
        cut = min(cut, len(pa) - 1)
        lines += [
            f"P({label} = k):",
            "",
            "| k | P collapsed | P telescoping | difference / combined cell MCSE |",
            "|---:|---:|---:|---:|",
        ]
        for k in range(cut + 1):
            if pa[k] == 0 and pb[k] == 0:
                continue
            se_k = math.hypot(c["pmf_mcse_a"][k], c["pmf_mcse_b"][k])
            z = f"{(pa[k] - pb[k]) / se_k:+.2f}" if se_k > 0 else "–"
            lines.append(f"| {k} | {pa[k]:.4f} | {pb[k]:.4f} | {z} |")
        if cut + 1 < len(pa):
            lines.append(f"| > {cut} | {pa[cut + 1 :].sum():.4f} | {pb[cut + 1 :].sum():.4f} | |")
        lines.append("")
    return lines


def reading(rep: dict) -> str:
    """One paragraph: each figure against its target."""
    parts = []
    sp = [r for r in rep["speed"] if r["ratio"] is not None]
    if sp:
        lo = min(sp, key=lambda r: r["ratio"])
        hi = max(sp, key=lambda r: r["ratio"])
        below = [r for r in sp if r["ratio"] < SPEED_TARGET]
        txt = (
            f"Speed: new/old ranges from {lo['ratio']:.3f} ({lo['data']} {lo['spec']} "
            f"{lo['algorithm']}) to {hi['ratio']:.3f} ({hi['data']} {hi['spec']} "
            f"{hi['algorithm']}); the target new/old >= {SPEED_TARGET:.2f} is met in "
            f"{len(sp) - len(below)} of {len(rep['speed'])} cells"
        )
        if below:
            txt += " and missed in " + ", ".join(
                f"{r['data']} {r['spec']} {r['algorithm']} ({r['ratio']:.3f}: "
                f"{r['old']['sweeps_per_s_median']:,.0f} -> {r['new']['sweeps_per_s_median']:,.0f}"
                f" sweeps/s; paired runs {_range(r.get('paired_ratios'))}; per round "
                f"{_range(r.get('round_ratios'))}; on CPU time "
                f"{_f(r.get('ratio_cpu'), '.3f')})"
                for r in below
            )
        parts.append(txt + ".")
    else:
        parts.append("Speed: not measured (see Failures).")
    idn = [r["identity"] for r in rep["speed"] if r["identity"]["checked"]]
    n_same = sum(bool(i["identical"]) for i in idn)
    parts.append(
        f"Old and new draws are bit-identical (w and z) in {n_same} of {len(idn)} cells checked"
        + ("" if n_same == len(idn) == len(rep["speed"]) else " (target: all)")
        + "."
    )
    ok = [r for r in rep["mixings"] if r.get("status") == "ok"]
    if ok:
        bits = []
        for data in DATASETS:
            rs = [r for r in ok if r["data"] == data]
            if not rs:
                continue
            best = max(rs, key=lambda r: ess_per_s(r, r["kplus"]) or -1)
            worst = min(rs, key=lambda r: ess_per_s(r, r["kplus"]) or math.inf)
            tele = {r["key"]: r for r in rs}
            ratio = ""
            for kind, word in (("mfm", "static"), ("mfm_dynamic", "dynamic")):
                mc, mt = tele.get(f"{kind}/collapsed"), tele.get(f"{kind}/telescoping")
                if mc and mt and ess_per_s(mc, mc["kplus"]) and ess_per_s(mt, mt["kplus"]):
                    ratio += (
                        f"; {word} MFM collapsed / telescoping ESS/s of K+ = "
                        f"{ess_per_s(mc, mc['kplus']) / ess_per_s(mt, mt['kplus']):.2f}"
                    )
            bits.append(
                f"on {data} from {_f(ess_per_s(worst, worst['kplus']))} ({worst['mixing']}, "
                f"{worst['algorithm']}) to {_f(ess_per_s(best, best['kplus']))} "
                f"({best['mixing']}, {best['algorithm']}){ratio}"
            )
        parts.append(
            "Mixings (no target; ESS/s of K+ is the figure that counts): ESS/s of K+ ranges "
            + "; ".join(bits)
            + "."
        )
        high = [r for r in ok if (r["kplus"].get("rhat") or 1.0) > 1.01]
        if high:
            parts.append(
                "R-hat of K+ is above 1.01 for "
                + ", ".join(
                    f"{r['data']} {r['mixing']} {r['algorithm']} ({r['kplus']['rhat']:.3f})"
                    for r in high
                )
                + f" at {rep['settings']['mix_chains']} x {rep['settings']['mix_draws']:,} draws."
            )
        nf = [r for r in rep["mixings"] if r.get("status") != "ok"]
        if nf:
            parts.append(f"{len(nf)} mixing run(s) failed (see the table).")
    a = rep.get("agreement")
    if a:
        bits = []
        for q, label in (("kplus", "K+"), ("K", "K")):
            c = a[q]
            bits.append(
                f"TV of {label} = {c['tv']:.4f} against noise floors of "
                f"{_f(c['tv_floor_ess'], '.4f')} (ESS) and {c['tv_noise_floor']:.4f} (cell MCSE), "
                f"{_f(c['tv_over_floor_ess'], '.2f')} x and {_f(c['tv_over_floor_cell'], '.2f')} x"
                f" (target <= {TV_FACTOR:g} x: {'met' if c['agree'] else 'NOT met'})"
            )
        g = a["gamma"]
        bits.append(
            f"the means of gamma differ by {g['diff_over_mcse']:+.2f} combined MCSE (target "
            f"within {MEAN_MCSE:g}: {'met' if g['agree'] else 'NOT met'})"
        )
        parts.append("Galaxy MFM, collapsed vs telescoping: " + "; ".join(bits) + ".")
    return " ".join(parts)


def render(rep: dict) -> str:
    prov = rep["provenance"]
    ver = prov.get("versions", {})
    st = rep["settings"]
    lines = [
        "# Mixing x kernel Gibbs engines: old vs new speed, and the new mixings",
        "",
        f"`{rep['command']}` ({rep['mode']}), {prov.get('date', '')}; run time "
        f"{rep['total_s']:.0f} s.",
        "",
        f"- Machine: {prov.get('machine', '')}; {rep['cpus_usable']} CPUs usable; load "
        f"average at start {rep['loadavg_start']}, at end {rep['loadavg_end']} (1, 5, 15 min).",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in ver.items()) + ".",
    ]
    for v in rep["versions"]:
        chk = v["check"]
        ok = "yes" if chk.get("ok") else "NO"
        lines.append(
            f"- {v['name']}: {v['label']}; its worker imports `bayesmix` from "
            f"`{v.get('bayesmix_file')}` (own copy: {ok}; of the "
            f"{chk.get('other_version_modules_checked', '?')} modules only the other version has, "
            f"found: {', '.join(chk.get('leaks') or {}) or 'none'})."
        )
    lines.append(
        "- Parts 2 and 3 run in the benchmark's own process on the working tree (new engine), "
        f"`bayesmix` from `{rep.get('bayesmix_file')}`."
    )
    if rep.get("tree_changed"):
        d0, d23, d1 = (
            rep["tree_digest_start"],
            rep.get("tree_digest_parts_2_3"),
            rep["tree_digest_end"],
        )
        lines.append(
            "- **The working tree's bayesmix/ sources changed during this run** (other work in "
            f"progress): sha256 of bayesmix/ {d0} when the new worker of part 1 started, {d23} "
            f"when parts 2 and 3 imported it, {d1} at the end"
            + (
                " (each part saw one state: modules are imported once)."
                if d23 == d1
                else ": part 2 or 3 may mix two states of the code."
            )
        )
    if rep["mode"] == "quick":
        lines.append("- **Quick mode**: short runs, for development only.")
    lines += ["", "## Reading", "", reading(rep), ""]
    lines += _speed_md(rep["speed"], st) if rep.get("speed") else ["## 1. Not run", ""]
    lines += _mix_md(rep["mixings"], st) if rep.get("mixings") else ["## 2. Not run", ""]
    lines += _agree_md(rep.get("agreement"))
    if rep.get("errors"):
        lines += ["## Failures", ""]
        lines += [f"- {e['stage']}: `{e['error'][-500:]}`" for e in rep["errors"]]
        lines.append("")
    lines += [
        "## Settings",
        "",
        f"- Seed {SEED} everywhere. Data standardised (`load_data(...).standardized`).",
        "- Specs: `models/dp.toml` (DP, T = 20, alpha ~ Gamma(1, 1)), `sparse_finite` (K = 10, "
        "gamma = 0.01), `finite` (K = 10, gamma = 1), `pitman_yor` (T = 30 for blocked), `mfm` "
        "(K - 1 ~ BNB(1, 4, 3), gamma ~ Gamma(1, 1)); dynamic MFM = `mfm` with `weights = "
        '"dynamic"` and `alpha_prior = { family = "F", df1 = 6, df2 = 3 }`.',
        f"- Part 1: {st['speed_repeats']} timed runs per version and cell; part 2: "
        f"{st['mix_chains']} x ({st['mix_tune']} + {st['mix_draws']}); part 3: "
        f"{st['long_chains']} x ({st['long_tune']} + {st['long_draws']} kept, thin "
        f"{st['long_thin']}).",
        "- Each old/new worker runs with this virtualenv's Python and `PYTHONPATH` and the working "
        "directory set to its version's root, plus the `sitecustomize` of `benchmarks/latency.py` "
        "that drops the editable install's finder.",
        "",
    ]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(prog="python -m benchmarks.mixings", description=__doc__)
    p.add_argument("--quick", action="store_true", help="short runs (a few minutes)")
    p.add_argument(
        "--baseline", default=DEFAULT_BASELINE, help=f"old revision (default {DEFAULT_BASELINE})"
    )
    p.add_argument("--repeats", type=int, default=None, help="timed runs per version and cell")
    p.add_argument(
        "--rounds", type=int, default=None, help="fresh worker pairs the repeats are spread over"
    )
    p.add_argument("--out-dir", default=str(OUT_DIR), help="output directory")
    p.add_argument("--keep-worktree", action="store_true", help="keep the baseline worktree")
    args = p.parse_args(argv)
    st = QUICK if args.quick else FULL
    if args.repeats is not None:
        st = dataclasses.replace(st, speed_repeats=max(1, args.repeats))
    if args.rounds is not None:
        st = dataclasses.replace(st, speed_rounds=max(1, args.rounds))

    from benchmarks.common import provenance, write_json

    t0 = time.perf_counter()
    load0 = [round(v, 2) for v in os.getloadavg()]
    digest0 = tree_digest()
    prov = provenance(["benchmarks.mixings", *argv])
    head = git("rev-parse", "HEAD", check=False)
    dirty = git("status", "--porcelain", check=False).splitlines()
    wt_path, base_full = baseline_worktree(args.baseline)
    subject = git("log", "-1", "--format=%h %s", base_full, check=False)
    work = Path(tempfile.mkdtemp(prefix="bayesmix_mixings_"))
    guard = work / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    old = Version("old", wt_path, base_full, guard)
    new = Version("new", ROOT, head + ("+dirty" if dirty else ""), guard)
    labels = {
        "old": f"`{subject}` ({base_full[:12]}), worktree `{wt_path}`",
        "new": f"working tree `{ROOT}` at {head[:12]}"
        + (f" + uncommitted changes ({len(dirty)} files)" if dirty else ""),
    }
    errors: list[dict[str, str]] = []
    speed: list[dict] = []
    mix: list[dict] = []
    agreement: dict | None = None
    hello: dict[str, dict] = {}
    digest_import = None
    try:
        for v, other in ((old, new), (new, old)):
            v.check = check_import(v, other)
            log(f"{v.name}: bayesmix from {v.check.get('bayesmix')} (ok: {v.check['ok']})")
            if not v.check["ok"]:
                errors.append({"stage": f"import check {v.name}", "error": json.dumps(v.check)})

        def start() -> dict[str, Worker]:
            workers: dict[str, Worker] = {}
            try:
                for v in (old, new):
                    w = Worker(v, work)
                    workers[v.name] = w
                    hello.setdefault(v.name, w.hello)
                    if not w.hello.get("ready"):
                        raise RuntimeError(f"{v.name} worker: {w.hello.get('error')}")
            except BaseException:
                for w in workers.values():
                    w.close(kill=True)
                raise
            return workers

        try:
            speed = run_speed(start, st, work)
        except Exception as exc:  # noqa: BLE001 - record it, keep the rest of the benchmark
            errors.append({"stage": "speed", "error": f"{type(exc).__name__}: {exc}"})
            log(f"speed stage failed: {exc!r}")
        import bayesmix.engines.gibbs  # noqa: F401 - parts 2 and 3 use the tree as it is now

        digest_import = tree_digest()
        for stage, fn in (("mixings", lambda: mix.extend(run_mixings(st))),):
            try:
                fn()
            except Exception as exc:  # noqa: BLE001
                errors.append({"stage": stage, "error": f"{type(exc).__name__}: {exc}"})
                log(f"stage {stage} failed: {exc!r}")
        try:
            agreement = run_agreement(st)
        except Exception as exc:  # noqa: BLE001
            errors.append({"stage": "agreement", "error": f"{type(exc).__name__}: {exc}"})
            log(f"agreement stage failed: {exc!r}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not args.keep_worktree:
            remove_worktree(wt_path)
            log(f"removed the worktree {wt_path}")

    import bayesmix

    rep: dict[str, Any] = {
        "command": "python -m benchmarks.mixings" + (" " + " ".join(argv) if argv else ""),
        "mode": "quick" if args.quick else "full",
        "settings": dataclasses.asdict(st),
        "seed": SEED,
        "provenance": prov,
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg_start": load0,
        "loadavg_end": [round(v, 2) for v in os.getloadavg()],
        "tree_digest_start": digest0,
        "tree_digest_end": tree_digest(),
        "tree_digest_parts_2_3": digest_import,
        "bayesmix_file": bayesmix.__file__,
        "versions": [
            {
                "name": v.name,
                "root": str(v.root),
                "rev": v.rev,
                "label": labels[v.name],
                "check": v.check,
                "bayesmix_file": hello.get(v.name, {}).get("bayesmix_file"),
                "sample_gibbs_file": hello.get(v.name, {}).get("sample_gibbs"),
            }
            for v in (old, new)
        ],
        "targets": {
            "new_over_old_sweeps_per_s": SPEED_TARGET,
            "tv_over_noise_floor": TV_FACTOR,
            "gamma_diff_mcse": MEAN_MCSE,
        },
        "speed": speed,
        "mixings": mix,
        "agreement": agreement,
        "errors": errors,
        "total_s": time.perf_counter() - t0,
    }
    rep["tree_changed"] = rep["tree_digest_start"] != rep["tree_digest_end"]
    out = Path(args.out_dir)
    name = "mixings_quick" if args.quick else "mixings"
    write_json(out / f"{name}.json", rep)
    _write(out / f"{name}.md", render(rep))
    log(f"wrote {out / name}.md and .json in {rep['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
