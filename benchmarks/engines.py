"""Engine benchmark: nutpie, PyMC NUTS, blocked and collapsed Gibbs side by side.

``python -m benchmarks.engines [--quick]`` fits the same data with the same priors
(``benchmarks/specs/galaxy_conjugate_alpha24.toml``, an internal spec loaded by path: DP,
T = 20, alpha ~ Gamma(2, 4), conjugate NIG / NIW kernel) with every engine, one method at a
time, each in a fresh subprocess (so that the peak memory is per method), and writes
``reports/benchmarks/engines.md`` and ``engines.json``.

Data: galaxy (1-D, N = 82), Old Faithful (2-D, N = 272) and synthetic 2-D data with four
clusters at N = 1,000, 10,000 and 100,000.  NUTS runs only where it is predicted to finish in
10 minutes (sampling time scaled linearly in N from the largest size that ran).  The run also
cross-checks the engines (NUTS vs blocked Gibbs at the same truncation; collapsed vs blocked at
T = 50), times the command line a user runs, and computes the acceptance figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "reports" / "benchmarks"
SPEC_NAME = "galaxy_conjugate_alpha24"
SPEC_PATH = ROOT / "benchmarks" / "specs" / f"{SPEC_NAME}.toml"  # internal: not a built-in model
SEED = 20261126
NUTS_LIMIT_S = 600.0  # NUTS runs only where it finishes within 10 minutes
METHODS = ("nutpie", "pymc", "blocked", "collapsed")
GIBBS = ("blocked", "collapsed")
NUTS = ("nutpie", "pymc")
TARGETS = {
    "ess_ratio_alpha": 30.0,
    "ess_ratio_kplus": 30.0,
    "collapsed_sweeps_per_s": 20_000.0,
    "kplus_ess_per_chain_s": 1_000.0,
    "blocked_100k_sweep_ms": 50.0,
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Run lengths for one benchmark mode."""

    nuts_chains: int = 4
    nuts_tune: int = 1000
    nuts_draws: int = 1000
    gibbs_chains: int = 4
    gibbs_tune: int = 1000
    gibbs_draws: int = 5000
    big_n: int = 100_000  # from this N on, Gibbs keeps fewer draws (z alone: draws x N x 4 B)
    big_tune: int = 100
    big_draws: int = 500
    sizes: tuple[int, ...] = (1_000, 10_000, 100_000)
    pymc: bool = True
    nuts_synthetic: bool = True  # NUTS on the synthetic sizes (where predicted to finish)
    xcheck_nuts_draws: int = 10_000  # long runs for the full cross-check (0: reuse the table's)
    xcheck_gibbs_draws: int = 50_000
    cli: bool = True
    cli_cold: bool = True
    cli_nuts: bool = True


FULL = Settings()
QUICK = Settings(
    nuts_tune=300,
    nuts_draws=300,
    gibbs_tune=200,
    gibbs_draws=1000,
    big_tune=10,
    big_draws=50,
    sizes=(1_000, 10_000, 100_000),
    pymc=False,
    nuts_synthetic=False,
    xcheck_nuts_draws=0,
    xcheck_gibbs_draws=10_000,
    cli_cold=False,
    cli_nuts=False,
)


# --------------------------------------------------------------------------
# Data and spec
# --------------------------------------------------------------------------


def synthetic_2d(n: int, seed: int = 7) -> np.ndarray:
    """n points from four 2-D Gaussian clusters (weights .4/.3/.2/.1, different correlations)."""
    rng = np.random.default_rng([seed, n])
    means = np.array([[-4.0, -3.0], [3.0, -3.0], [-2.0, 4.0], [4.0, 3.5]])
    covs = np.array(
        [
            [[1.0, 0.6], [0.6, 1.0]],
            [[1.0, -0.5], [-0.5, 1.0]],
            [[0.5, 0.0], [0.0, 1.5]],
            [[1.5, 0.9], [0.9, 1.0]],
        ]
    )
    counts = rng.multinomial(n, [0.4, 0.3, 0.2, 0.1])
    parts = [rng.multivariate_normal(m, c, k) for m, c, k in zip(means, covs, counts, strict=True)]
    return np.vstack(parts)


def dataset_x(name: str, n: int | None = None) -> np.ndarray:
    """Standardised data: ``galaxies``, ``faithful`` or ``synthetic`` (with ``n``)."""
    from bayesmix.data import dataset_path, load_data

    if name == "synthetic":
        return load_data(synthetic_2d(int(n))).standardized
    return load_data(dataset_path(name)).standardized


def bench_spec(truncation: int | None = None):
    """The benchmark spec, optionally with another truncation level T."""
    from bayesmix.spec import load_spec

    spec = load_spec(SPEC_PATH)
    if truncation is not None:
        mix = dataclasses.replace(spec.mixing, n_components=int(truncation))
        spec = dataclasses.replace(spec, mixing=mix)
    return spec


# --------------------------------------------------------------------------
# Worker: one method on one data set, in its own process
# --------------------------------------------------------------------------


def _stat(a: np.ndarray | None) -> dict[str, float | None]:
    """Mean, MCSE, ESS_bulk and rank R-hat of (chain, draw) draws; None when constant."""
    import arviz as az

    if a is None:
        return {"mean": None, "mcse": None, "ess_bulk": None, "rhat": None}
    a = np.asarray(a, dtype=float)
    out = {"mean": float(a.mean()), "mcse": None, "ess_bulk": None, "rhat": None}
    if np.ptp(a) > 0:
        out.update(mcse=float(az.mcse(a)), ess_bulk=float(az.ess(a)), rhat=float(az.rhat(a)))
    return out


def pmf_with_mcse(k: np.ndarray, kmax: int = 30) -> tuple[list[float], list[float]]:
    """pmf of K+ (chain, draw) on 0..kmax and the MCSE of each cell (indicator means)."""
    import arviz as az

    pmf, mcse = [], []
    for j in range(kmax + 1):
        ind = (k == j).astype(float)
        pmf.append(float(ind.mean()))
        mcse.append(float(az.mcse(ind)) if 0 < ind.mean() < 1 else 0.0)
    return pmf, mcse


def _kplus_loglik_from_params(x: np.ndarray, draws, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """K+ and total log-likelihood per draw for engines without native z (chunked)."""
    from bayesmix.posterior.allocations import allocations, n_clusters

    c, s, k = draws.w.shape
    d = x.shape[1]
    w = draws.w.reshape(c * s, k)
    mu = draws.mu.reshape(c * s, k, d)
    cov = draws.cov.reshape(c * s, k, d, d)
    rng = np.random.default_rng(seed)
    kp, ll = np.empty(c * s, np.int64), np.empty(c * s)
    step = max(1, int(2e6 // (len(x) * k)))
    for a in range(0, c * s, step):
        b = min(a + step, c * s)
        z, pll = allocations(x, w[a:b], mu[a:b], cov[a:b], rng)
        kp[a:b] = n_clusters(z)
        ll[a:b] = pll.sum(axis=1)
    return kp.reshape(c, s), ll.reshape(c, s)


def _sample_pymc(spec, x: np.ndarray, task: dict):
    """sample_nuts(sampler='pymc') with pm.sample's own sampling_time (the rest is compile)."""
    import pymc

    from bayesmix.engines.nuts import sample_nuts

    captured: list = []
    original = pymc.sample

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        captured.append(out)
        return out

    pymc.sample = spy
    t0 = time.perf_counter()
    try:
        draws = sample_nuts(
            spec, x, sampler="pymc", chains=task["chains"], draws=task["draws"],
            tune=task["tune"], seed=task["seed"], progress=False,
        )  # fmt: skip
    finally:
        pymc.sample = original
    total = time.perf_counter() - t0
    sampling = float(captured[0]["sample_stats"].attrs.get("sampling_time", math.nan))
    draws.timing = {"compile_s": total - sampling, "sampling_s": sampling}
    return draws


def run_method(task: dict) -> dict:
    """Run one engine on one data set; returns timings, diagnostics and the K+ pmf."""
    from bayesmix.engines.gibbs import sample_gibbs
    from bayesmix.engines.nuts import sample_nuts

    x = dataset_x(task["data"], task.get("n"))
    spec = bench_spec(task.get("truncation"))
    method = task["method"]
    t0 = time.perf_counter()
    if method == "nutpie":
        draws = sample_nuts(
            spec, x, sampler="nutpie", chains=task["chains"], draws=task["draws"],
            tune=task["tune"], seed=task["seed"], progress=False,
        )  # fmt: skip
    elif method == "pymc":
        draws = _sample_pymc(spec, x, task)
    else:
        draws = sample_gibbs(
            spec, x, algorithm=method, chains=task["chains"], draws=task["draws"],
            tune=task["tune"], seed=task["seed"], progress=False,
        )  # fmt: skip
    run_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    if draws.z is None:
        kplus, loglik = _kplus_loglik_from_params(x, draws, task["seed"])
    else:
        kplus = np.asarray(draws.sample_stats["n_occupied"])
        loglik = np.asarray(draws.sample_stats["log_likelihood"])
    post_s = time.perf_counter() - t1
    pmf, pmf_mcse = pmf_with_mcse(kplus)
    res: dict[str, Any] = {
        "n_obs": int(x.shape[0]),
        "n_features": int(x.shape[1]),
        "truncation": spec.mixing.n_components,
        "compile_s": float(draws.timing.get("compile_s", 0.0)),
        "sampling_s": float(draws.timing.get("sampling_s", math.nan)),
        "run_s": run_s,
        "kplus_s": post_s,
        "alpha": _stat(draws.concentration),
        "kplus": _stat(kplus),
        "loglik": _stat(loglik),
        "kplus_pmf": pmf,
        "kplus_pmf_mcse": pmf_mcse,
        "rss_self_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if method in GIBBS:
        info = draws.info
        sweeps = int(info["sweeps"])
        res["gibbs"] = {
            "sweeps": sweeps,
            "workers": info["workers"],
            "start_method": info["start_method"],
            "sweeps_per_s": [float(v) for v in info["sweeps_per_s"]],
            "chain_sweep_s": [float(v) for v in info["chain_sweep_s"]],
            "chain_sweep_cpu_s": [float(v) for v in info["chain_sweep_cpu_s"]],
            "chain_post_s": [float(v) for v in info["chain_post_s"]],
            "sweep_ms": float(np.median(info["chain_sweep_s"])) / sweeps * 1e3,
            "sweep_cpu_ms": float(np.median(info["chain_sweep_cpu_s"])) / sweeps * 1e3,
            "mean_kplus": float(kplus.mean()),
        }
        if "split_merge_accept_rate" in info:
            res["gibbs"]["split_merge_accept"] = [float(v) for v in info["split_merge_accept_rate"]]
    else:
        st = draws.sample_stats
        res["nuts"] = {
            "divergences": int(np.sum(st["diverging"])) if "diverging" in st else None,
            "mean_tree_depth": float(np.mean(st["tree_depth"])) if "tree_depth" in st else None,
        }
    return res


def _worker_main(task_path: str, out_path: str) -> None:
    task = json.loads(Path(task_path).read_text())
    res = run_method(task)
    from benchmarks.common import write_json

    write_json(Path(out_path), res)


# --------------------------------------------------------------------------
# Parent: subprocesses, peak memory of the process tree
# --------------------------------------------------------------------------


class TreeMonitor:
    """Peak summed RSS and CPU seconds of a process and its descendants, polled from /proc."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid, self.interval = pid, interval
        self.peak_rss = 0
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.interval)

    def poll(self) -> None:
        kids: dict[int, list[int]] = defaultdict(list)
        stats: dict[int, list[str]] = {}
        proc = Path("/proc")
        if not proc.is_dir():
            return
        for p in proc.iterdir():
            if not p.name.isdigit():
                continue
            try:
                fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            stats[int(p.name)] = fields
            kids[int(fields[1])].append(int(p.name))
        total, stack = 0, [self.pid]
        while stack:
            pid = stack.pop()
            stack.extend(kids.get(pid, []))
            f = stats.get(pid)
            if f is None:
                continue
            total += int(f[21]) * self._page  # rss in pages
            self.cpu[pid] = max(self.cpu.get(pid, 0.0), (int(f[11]) + int(f[12])) / self._tick)
        self.peak_rss = max(self.peak_rss, total)

    @property
    def cpu_s(self) -> float:
        return float(sum(self.cpu.values()))


def run_monitored(
    cmd: list[str], timeout: float, env: dict | None = None, log: Path | None = None
) -> dict:
    """Run cmd; wall time, exit code, peak tree RSS (MiB) and tree CPU seconds."""
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    timed_out = False
    with TreeMonitor(proc.pid) as mon:
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_tree(proc.pid)
            rc = proc.wait()
    wall = time.perf_counter() - t0
    if log:
        out.close()
    return {
        "rc": rc,
        "timed_out": timed_out,
        "wall_s": wall,
        "peak_rss_mib": mon.peak_rss / 2**20,
        "cpu_s": mon.cpu_s,
    }


def _kill_tree(pid: int) -> None:
    """Kill a process and its descendants (those we started)."""
    mon = TreeMonitor(pid)
    mon.poll()
    for p in sorted(mon.cpu, reverse=True):
        try:
            os.kill(p, 9)
        except OSError:
            pass


def run_task(task: dict, workdir: Path, timeout: float) -> dict:
    """One method in a fresh ``python -m benchmarks.engines --worker`` subprocess."""
    tag = f"{task['method']}_{task['data']}_{task.get('n') or ''}_{task.get('label', '')}"
    tpath, opath, log = workdir / f"{tag}.task.json", workdir / f"{tag}.out.json", workdir / tag
    tpath.write_text(json.dumps(task))
    cmd = [sys.executable, "-m", "benchmarks.engines", "--worker", str(tpath), str(opath)]
    print(f"[engines] {tag}: running ...", file=sys.stderr, flush=True)
    mon = run_monitored(cmd, timeout, log=log.with_suffix(".log"))
    res = dict(task)
    res["process"] = mon
    if mon["rc"] == 0 and opath.exists():
        res.update(json.loads(opath.read_text()))
        res["status"] = "ok"
    elif mon["timed_out"]:
        res["status"] = f"did not finish in {timeout:.0f} s"
    else:
        tail = log.with_suffix(".log").read_text()[-2000:]
        res["status"] = f"failed (exit {mon['rc']})"
        res["log_tail"] = tail
    print(
        f"[engines] {tag}: {res['status']}, {mon['wall_s']:.1f} s, "
        f"peak {mon['peak_rss_mib']:.0f} MiB",
        file=sys.stderr,
        flush=True,
    )
    return res


# --------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------


def _task(method: str, data: str, st: Settings, n: int | None = None, **kw: Any) -> dict:
    big = n is not None and n >= st.big_n
    if method in NUTS:
        chains, tune, draws = st.nuts_chains, st.nuts_tune, st.nuts_draws
    else:
        chains = st.gibbs_chains
        tune, draws = (st.big_tune, st.big_draws) if big else (st.gibbs_tune, st.gibbs_draws)
    t = {"method": method, "data": data, "n": n, "chains": chains, "tune": tune, "draws": draws}
    t["seed"] = SEED
    t.update(kw)
    return t


def _predicted_s(ref: dict, n: int) -> float:
    """NUTS wall time at size n from a finished run at a smaller size: compile + sampling x n/N."""
    return (
        ref["compile_s"] + ref["sampling_s"] * n / ref["n_obs"] + ref["kplus_s"] * n / ref["n_obs"]
    )


def run_benchmarks(st: Settings, workdir: Path) -> list[dict]:
    """Every (data, method) run of the main table, one at a time."""
    results: list[dict] = []
    nuts_methods = ("nutpie", "pymc") if st.pymc else ("nutpie",)
    for data in ("galaxies", "faithful"):
        for m in (*nuts_methods, *GIBBS):
            timeout = NUTS_LIMIT_S if m in NUTS else 3600
            results.append(run_task(_task(m, data, st), workdir, timeout))
    ref: dict[str, dict] = {r["method"]: r for r in results if r["data"] == "faithful"}
    for n in st.sizes:
        for m in GIBBS:
            results.append(run_task(_task(m, "synthetic", st, n), workdir, 3600))
        for m in nuts_methods if st.nuts_synthetic else ():
            task = _task(m, "synthetic", st, n)
            prev = ref.get(m)
            if prev is None or prev.get("status") != "ok":
                why = "the smaller run did not finish" if prev else "no reference run"
                results.append(task | {"status": f"skipped: {why}"})
                continue
            pred = _predicted_s(prev, n)
            if pred > NUTS_LIMIT_S:
                results.append(
                    task
                    | {
                        "status": f"skipped: predicted {pred:,.0f} s > {NUTS_LIMIT_S:.0f} s "
                        f"(from N = {prev['n_obs']:,}: compile {prev['compile_s']:.0f} s + "
                        f"sampling {prev['sampling_s']:.0f} s x N/{prev['n_obs']:,})",
                        "predicted_s": pred,
                    }
                )
                continue
            res = run_task(task, workdir, NUTS_LIMIT_S)
            results.append(res)
            ref[m] = res
    return results


def run_crosschecks(st: Settings, main: list[dict], workdir: Path) -> dict:
    """NUTS (nutpie) vs blocked Gibbs at T = 20, and collapsed vs blocked at T = 50 (galaxy)."""
    out: dict[str, Any] = {}
    gal = {r["method"]: r for r in main if r["data"] == "galaxies"}
    if st.xcheck_nuts_draws:
        nuts = run_task(
            _task("nutpie", "galaxies", st, draws=st.xcheck_nuts_draws, label="xcheck"),
            workdir,
            NUTS_LIMIT_S + 300,
        )
    else:
        nuts = gal["nutpie"]
    blk = run_task(
        _task(
            "blocked", "galaxies", st, draws=st.xcheck_gibbs_draws, label="xcheck", seed=SEED + 1
        ),
        workdir,
        3600,
    )
    out["nuts_vs_blocked_T20"] = compare(nuts, blk, "nutpie", "blocked Gibbs")
    b50 = run_task(
        _task("blocked", "galaxies", st, draws=st.xcheck_gibbs_draws, truncation=50, label="T50"),
        workdir,
        3600,
    )
    c50 = run_task(
        _task("collapsed", "galaxies", st, draws=st.xcheck_gibbs_draws, truncation=50, label="T50"),
        workdir,
        3600,
    )
    out["collapsed_vs_blocked_T50"] = compare(c50, b50, "collapsed Gibbs", "blocked Gibbs (T = 50)")
    return out


def compare(a: dict, b: dict, name_a: str, name_b: str) -> dict:
    """TV distance of the K+ pmfs against its Monte Carlo noise floor; alpha difference in MCSE.

    Under equal posteriors each cell difference is ~ N(0, se_a^2 + se_b^2) (se: the cell's MCSE),
    so E[TV] = 0.5 sum_k sqrt(2/pi) sqrt(se_a,k^2 + se_b,k^2): the noise floor.
    """
    if a.get("status") != "ok" or b.get("status") != "ok":
        return {"status": "not run", "a": name_a, "b": name_b}
    pa, pb = np.array(a["kplus_pmf"]), np.array(b["kplus_pmf"])
    sa, sb = np.array(a["kplus_pmf_mcse"]), np.array(b["kplus_pmf_mcse"])
    tv = 0.5 * float(np.abs(pa - pb).sum())
    floor = 0.5 * math.sqrt(2 / math.pi) * float(np.sqrt(sa**2 + sb**2).sum())
    se = math.hypot(a["alpha"]["mcse"], b["alpha"]["mcse"])
    diff = a["alpha"]["mean"] - b["alpha"]["mean"]
    return {
        "status": "ok",
        "a": name_a,
        "b": name_b,
        "draws_a": a["chains"] * a["draws"],
        "draws_b": b["chains"] * b["draws"],
        "ess_kplus_a": a["kplus"]["ess_bulk"],
        "ess_kplus_b": b["kplus"]["ess_bulk"],
        "tv": tv,
        "tv_noise_floor": floor,
        "tv_pass": tv <= 0.1,
        "alpha_a": a["alpha"]["mean"],
        "alpha_b": b["alpha"]["mean"],
        "alpha_diff_over_mcse": diff / se,
        "alpha_pass": abs(diff) < 4 * se,
        "pmf_a": pa[: _kmax(pa, pb)].tolist(),
        "pmf_b": pb[: _kmax(pa, pb)].tolist(),
        "divergences_a": (a.get("nuts") or {}).get("divergences"),
    }


def _kmax(*pmfs: np.ndarray) -> int:
    return int(max(np.flatnonzero(p > 0).max() for p in pmfs)) + 1


# --------------------------------------------------------------------------
# What the user sees: the command line
# --------------------------------------------------------------------------


def run_cli(st: Settings, workdir: Path) -> list[dict]:
    """Wall time of ``bayesmix fit`` on galaxy: collapsed (warm / cold JIT cache) and nutpie."""
    exe = Path(sys.executable).parent / "bayesmix"
    data = "bayesmix/datasets/galaxies.csv"
    runs = [("collapsed", "warm", ["--engine", "collapsed", "--chains", "4", "--draws", "5000"])]
    if st.cli_cold:
        runs.append(("collapsed", "cold", runs[0][2]))
    if st.cli_nuts:
        runs.append(("nutpie", "warm", ["--engine", "nuts", "--chains", "4", "--draws", "1000"]))
    out = []
    for engine, cache, args in runs:
        dest = workdir / f"cli_{engine}_{cache}"
        env = dict(os.environ)
        note = "numba cache warm (earlier runs in this benchmark)"
        if engine == "nutpie":
            note = "PyTensor cache ~/.pytensor warm (earlier runs in this benchmark)"
        if cache == "cold":
            env["NUMBA_CACHE_DIR"] = str(workdir / "empty_numba_cache")
            note = "NUMBA_CACHE_DIR = an empty directory: every numba kernel compiled"
        cmd = [str(exe), "fit", data, *args, "--seed", str(SEED), "--quiet", "--out", str(dest)]
        shown = "bayesmix fit " + " ".join([data, *args])
        print(f"[engines] cli: {shown} ({cache}) ...", file=sys.stderr, flush=True)
        mon = run_monitored(cmd, 1800, env=env, log=workdir / f"cli_{engine}_{cache}.log")
        rec = {"engine": engine, "cache": cache, "command": shown, "note": note, **mon}
        run_file = dest / "run.json"
        if mon["rc"] == 0 and run_file.exists():
            r = json.loads(run_file.read_text())
            rec["timing"] = r.get("timing")
            rec["engine_info_sweeps_per_s"] = r.get("engine", {}).get("sweeps_per_s")
        out.append(rec)
        print(f"[engines] cli: {mon['wall_s']:.1f} s (rc {mon['rc']})", file=sys.stderr)
    return out


# --------------------------------------------------------------------------
# Headline figures
# --------------------------------------------------------------------------


def ess_per_s(r: dict, q: str, with_compile: bool = False) -> float:
    """ESS_bulk of quantity q per second of sampling (optionally plus compile/JIT)."""
    if r.get("status") != "ok" or r[q]["ess_bulk"] is None:
        return math.nan
    t = r["sampling_s"] + (r["compile_s"] if with_compile else 0.0)
    return r[q]["ess_bulk"] / t


def _nan_low(v: float) -> float:
    return v if math.isfinite(v) else -math.inf


def acceptance(main: list[dict]) -> list[dict]:
    """The issue's acceptance figures, measured vs target."""
    gal = {r["method"]: r for r in main if r["data"] == "galaxies"}
    rows = []
    nut = gal.get("nutpie", {})
    for q, label in (("alpha", "alpha"), ("kplus", "K+")):
        best = max(GIBBS, key=lambda m: _nan_low(ess_per_s(gal.get(m, {}), q)))
        ratio = ess_per_s(gal.get(best, {}), q) / ess_per_s(nut, q)
        ratio_c = ess_per_s(gal.get(best, {}), q, True) / ess_per_s(nut, q, True)
        rows.append(
            {
                "key": f"ess_ratio_{q}",
                "what": f"galaxy: ESS/s of {label}, best Gibbs ({best}) / nutpie, sampling time",
                "value": ratio,
                "extra": f"{ratio_c:,.0f}x including compile/JIT",
                "target": TARGETS[f"ess_ratio_{q}"],
                "op": ">=",
            }
        )
    col = gal.get("collapsed", {})
    sps = float(np.median(col["gibbs"]["sweeps_per_s"])) if col.get("status") == "ok" else math.nan
    rows.append(
        {
            "key": "collapsed_sweeps_per_s",
            "what": "galaxy: collapsed sweeps/s per chain (median chain, Draws.info)",
            "value": sps,
            "extra": "",
            "target": TARGETS["collapsed_sweeps_per_s"],
            "op": ">=",
        }
    )
    best_k, best_v = "", math.nan
    for m in GIBBS:
        r = gal.get(m, {})
        if r.get("status") == "ok" and r["kplus"]["ess_bulk"]:
            v = r["kplus"]["ess_bulk"] / sum(r["gibbs"]["chain_sweep_s"])
            if not v <= best_v:
                best_k, best_v = m, v
    rows.append(
        {
            "key": "kplus_ess_per_chain_s",
            "what": f"galaxy: ESS of K+ per chain-second ({best_k}: ESS_bulk / sum of chain times)",
            "value": best_v,
            "extra": "",
            "target": TARGETS["kplus_ess_per_chain_s"],
            "op": ">=",
        }
    )
    big = [
        r
        for r in main
        if r["data"] == "synthetic" and r["method"] == "blocked" and r.get("status") == "ok"
    ]
    big = [r for r in big if r["n_obs"] == max(x["n_obs"] for x in big)] if big else []
    val, extra = math.nan, ""
    if big:
        g = big[0]["gibbs"]
        val = g["sweep_ms"]
        extra = f"N = {big[0]['n_obs']:,}, T = 20; CPU {g['sweep_cpu_ms']:.1f} ms/sweep"
    rows.append(
        {
            "key": "blocked_100k_sweep_ms",
            "what": "2-D synthetic: blocked sweep time, median chain (wall)",
            "value": val,
            "extra": extra,
            "target": TARGETS["blocked_100k_sweep_ms"],
            "op": "<",
        }
    )
    for row in rows:
        v, t = row["value"], row["target"]
        row["pass"] = bool(math.isfinite(v) and (v >= t if row["op"] == ">=" else v < t))
    return rows


# --------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------


def _f(v: float | None, fmt: str = ",.0f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return format(v, fmt)


def _data_label(r: dict) -> str:
    if r["data"] == "synthetic":
        return f"2-D synthetic N={r['n']:,}"
    return {"galaxies": "galaxy (1-D, N=82)", "faithful": "Old Faithful (2-D, N=272)"}[r["data"]]


def render_markdown(report: dict) -> str:
    st = report["settings"]
    lines = [
        "# Engine benchmark: nutpie, PyMC NUTS, blocked and collapsed Gibbs",
        "",
        f"`{report['command']}` ({report['mode']}), {report['date']}; {report['machine']}; "
        f"load average at start/end {report['loadavg_start']} / {report['loadavg_end']} "
        "(the machine was shared: timings are noisy, ratios come from this one run).",
        "",
        "## Acceptance",
        "",
        "| Figure | Measured | Target | |",
        "|---|---:|---:|---|",
    ]
    for row in report["acceptance"]:
        fmt = ",.1f" if row["key"] == "blocked_100k_sweep_ms" else ",.0f"
        extra = f" ({row['extra']})" if row["extra"] else ""
        lines.append(
            f"| {row['what']} | {_f(row['value'], fmt)}{extra} | {row['op']} "
            f"{_f(row['target'], ',.0f')} | {'PASS' if row['pass'] else 'FAIL'} |"
        )
    lines += [
        "",
        "ESS is ArviZ's rank-normalised ESS_bulk over all chains; ESS/s divides it by the "
        "engine's sampling wall time (`Draws.timing['sampling_s']`: NUTS after compilation, "
        "Gibbs after the JIT warm-up). K+ for NUTS is drawn per posterior draw from "
        "z | w, mu, Sigma (`bayesmix.posterior.allocations`); the Gibbs engines sample z natively.",
        "",
    ]
    lines += _crosscheck_md(report["crosscheck"])
    lines += _cli_md(report["cli"])
    lines += _main_md(report["results"], st)
    lines += [
        "## Settings",
        "",
        f"- Spec `benchmarks/specs/{SPEC_NAME}.toml`: DP, T = 20, alpha ~ Gamma(2, 4), "
        "conjugate kernel (NIG for 1-D, NIW with nu0 = D + 2 for 2-D; m0 = 0, kappa0 = 0.01, "
        "a0 = 2, b0 = 0.25, psi0 = 0.25), data standardised.",
        f"- NUTS: {st['nuts_chains']} chains x ({st['nuts_tune']} tune + {st['nuts_draws']} draws); "
        f"Gibbs: {st['gibbs_chains']} chains x ({st['gibbs_tune']} tune + {st['gibbs_draws']} "
        f"draws), at N >= {st['big_n']:,}: {st['big_tune']} + {st['big_draws']} (the stored "
        "allocations alone are draws x N x 4 bytes per chain).",
        f"- Seed {SEED} for every run (cross-check blocked run: {SEED + 1}); each method in a "
        "fresh subprocess, one at a time; engine defaults for parallelism (nutpie: 4 threads; "
        "PyMC: cores=1; Gibbs: in-process for small jobs, else min(chains, CPUs) forkserver "
        "workers).",
        *(
            []
            if st["nuts_synthetic"]
            else ["- NUTS was not run on the synthetic data (`--quick`)."]
        ),
        "- Peak memory: summed RSS of the method's process tree, polled every 0.2 s from /proc "
        "(shared library pages are counted once per process).",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in report['versions'].items())}.",
        f"- git: {report['git']}.",
        "",
    ]
    return "\n".join(lines)


def _crosscheck_md(xc: dict) -> list[str]:
    lines = [
        "## Cross-check: same posterior from every engine (galaxy)",
        "",
        "| Comparison | Draws | ESS(K+) | TV(K+ pmf) | TV noise floor | TV <= 0.1 | "
        "alpha means | diff / MCSE | within 4 MCSE |",
        "|---|---|---|---:|---:|---|---|---:|---|",
    ]
    for c in xc.values():
        if c.get("status") != "ok":
            lines.append(f"| {c['a']} vs {c['b']} | not run | | | | | | | |")
            continue
        lines.append(
            f"| {c['a']} vs {c['b']} | {c['draws_a']:,} / {c['draws_b']:,} | "
            f"{_f(c['ess_kplus_a'])} / {_f(c['ess_kplus_b'])} | {c['tv']:.3f} | "
            f"{c['tv_noise_floor']:.3f} | {'PASS' if c['tv_pass'] else 'FAIL'} | "
            f"{c['alpha_a']:.4f} / {c['alpha_b']:.4f} | {c['alpha_diff_over_mcse']:+.2f} | "
            f"{'PASS' if c['alpha_pass'] else 'FAIL'} |"
        )
    lines += [
        "",
        "TV noise floor: the expected TV between two exact samplers at these MCSEs, "
        "0.5 sum_k sqrt(2/pi) sqrt(MCSE_a,k^2 + MCSE_b,k^2) over the pmf cells.",
        "",
    ]
    for c in xc.values():
        if c.get("status") == "ok":
            ks = range(len(c["pmf_a"]))
            lines.append(f"P(K+ = k), {c['a']} vs {c['b']}:")
            lines.append("")
            lines.append(
                "| k | " + " | ".join(str(k) for k in ks if c["pmf_a"][k] + c["pmf_b"][k]) + " |"
            )
            cols = [k for k in ks if c["pmf_a"][k] + c["pmf_b"][k]]
            lines.append("|---|" + "---:|" * len(cols))
            lines.append(f"| {c['a']} | " + " | ".join(f"{c['pmf_a'][k]:.3f}" for k in cols) + " |")
            lines.append(f"| {c['b']} | " + " | ".join(f"{c['pmf_b'][k]:.3f}" for k in cols) + " |")
            if c.get("divergences_a") is not None:
                lines.append("")
                lines.append(f"{c['a']}: {c['divergences_a']:,} divergent transitions.")
            lines.append("")
    return lines


def _cli_md(cli: list[dict]) -> list[str]:
    if not cli:
        return []
    lines = [
        "## What the user sees: `bayesmix fit` on galaxy (default model `dp`)",
        "",
        "| Command | Cache | Wall s | compile/JIT s | sampling s | total in fit() s | peak MiB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for c in cli:
        t = c.get("timing") or {}
        lines.append(
            f"| `{c['command']}` | {c['cache']} | {c['wall_s']:.1f} | "
            f"{_f(t.get('compile_s'), '.1f')} | {_f(t.get('sampling_s'), '.1f')} | "
            f"{_f(t.get('total_s'), '.1f')} | {c['peak_rss_mib']:,.0f} |"
        )
    lines += [""] + [f"- {c['cache']} {c['engine']}: {c['note']}." for c in cli] + [""]
    lines.append(
        "Wall = the whole process (imports, sampling, relabelling, point partition, LOO, "
        "writing the report); `total in fit()` excludes the imports and the report."
    )
    lines.append("")
    return lines


def _main_md(results: list[dict], st: dict) -> list[str]:
    lines = [
        "## All runs",
        "",
        "| Data | Engine | Chains x (tune + draws) | Compile/JIT s | Sampling s | ms/iter | "
        "ESS alpha | ESS K+ | ESS loglik | ESS/s alpha | ESS/s K+ | ESS/s loglik | "
        "ESS/s alpha (+compile) | ESS/s K+ (+compile) | ESS/s loglik (+compile) | "
        "max R-hat | Peak MiB | Note |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        head = (
            f"| {_data_label(r)} | {r['method']} | {r['chains']} x ({r['tune']} + {r['draws']}) |"
        )
        if r.get("status") != "ok":
            lines.append(head + " |" * 14 + f" {r['status']} |")
            continue
        its = r["chains"] * (r["tune"] + r["draws"])
        rh = [r[q]["rhat"] for q in ("alpha", "kplus", "loglik") if r[q]["rhat"] is not None]
        note = ""
        if r.get("nuts"):
            note = (
                f"{r['nuts']['divergences']} divergences; K+ via allocations {r['kplus_s']:.0f} s"
            )
        elif r.get("gibbs"):
            g = r["gibbs"]
            note = f"{g['workers']} worker(s)"
        lines.append(
            head
            + f" {r['compile_s']:.1f} | {r['sampling_s']:.1f} | {1e3 * r['sampling_s'] / its:.3f} | "
            + " | ".join(_f(r[q]["ess_bulk"]) for q in ("alpha", "kplus", "loglik"))
            + " | "
            + " | ".join(_f(ess_per_s(r, q)) for q in ("alpha", "kplus", "loglik"))
            + " | "
            + " | ".join(_f(ess_per_s(r, q, True), ",.1f") for q in ("alpha", "kplus", "loglik"))
            + f" | {_f(max(rh) if rh else None, '.3f')} | {r['process']['peak_rss_mib']:,.0f} | "
            + note
            + " |"
        )
    lines += [
        "",
        "ms/iter = sampling wall time / (chains x (tune + draws)), all chains together "
        "(NUTS chains run in parallel threads, Gibbs chains in-process one after another or in "
        "worker processes). max R-hat: rank-normalised split R-hat over alpha, K+ and the "
        "log-likelihood.",
        "",
        "### Gibbs sweep cost against N x T",
        "",
        "| Data | Engine | N | Sweeps/chain | Sweeps/s per chain (median) | ms/sweep (wall) | "
        "ms/sweep (CPU) | ns per N x T | mean K+ |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.get("status") != "ok" or not r.get("gibbs"):
            continue
        g = r["gibbs"]
        # blocked: T = truncation; collapsed: the occupied clusters + 1 new one per point
        t_eff = r["truncation"] if r["method"] == "blocked" else g["mean_kplus"] + 1
        ns = g["sweep_cpu_ms"] * 1e6 / (r["n_obs"] * t_eff)
        lines.append(
            f"| {_data_label(r)} | {r['method']} | {r['n_obs']:,} | {g['sweeps']:,} | "
            f"{np.median(g['sweeps_per_s']):,.0f} | {g['sweep_ms']:.3f} | {g['sweep_cpu_ms']:.3f} | "
            f"{ns:.1f} | {g['mean_kplus']:.2f} |"
        )
    lines += [
        "",
        "ns per N x T uses CPU time per sweep; T = 20 for blocked, mean K+ + 1 for collapsed "
        "(the clusters a point is offered), so the column compares the cost per point-cluster "
        "evaluation.",
        "",
    ]
    return lines


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def machine() -> str:
    return f"{platform.machine()}, os.cpu_count() = {os.cpu_count()}, {platform.platform()}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.engines", description=__doc__)
    p.add_argument("--quick", action="store_true", help="reduced run (< 5 min)")
    p.add_argument("--out", default=str(OUT_DIR), help="output directory")
    p.add_argument("--worker", nargs=2, metavar=("TASK", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        _worker_main(*args.worker)
        return 0
    from bayesmix.versions import versions
    from benchmarks.common import git_revision, write_json

    st = QUICK if args.quick else FULL
    out = Path(args.out)
    t0 = time.perf_counter()
    load0 = [round(v, 2) for v in os.getloadavg()]
    pytensor_warm = (Path.home() / ".pytensor").exists()
    workdir = Path(tempfile.mkdtemp(prefix="bayesmix_engines_"))
    try:
        main_runs = run_benchmarks(st, workdir)
        xc = run_crosschecks(st, main_runs, workdir)
        cli = run_cli(st, workdir) if st.cli else []
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report = {
        "mode": "quick" if args.quick else "full",
        "command": "python -m benchmarks.engines" + (" --quick" if args.quick else ""),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_start": load0,
        "loadavg_end": [round(v, 2) for v in os.getloadavg()],
        "pytensor_cache_existed": pytensor_warm,
        "versions": versions(),
        "git": git_revision(),
        "seed": SEED,
        "spec": SPEC_NAME,
        "settings": dataclasses.asdict(st),
        "total_s": time.perf_counter() - t0,
        "acceptance": acceptance(main_runs),
        "crosscheck": xc,
        "cli": cli,
        "results": main_runs,
    }
    name = "engines_quick" if args.quick else "engines"
    write_json(out / f"{name}.json", report)
    (out / f"{name}.md").write_text(render_markdown(report))
    print(f"wrote {out / name}.md and .json in {report['total_s']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
