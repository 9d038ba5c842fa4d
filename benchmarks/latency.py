"""Where the time goes in an everyday run: before and after the speed work, side by side.

``python -m benchmarks.latency [--quick] [--repeats N] [--baseline REV]`` times the command a
user runs, in one benchmark run, for two versions of the code:

- before: git revision ``--baseline`` (default 78bd632, the last commit before the speed
  work), checked out with ``git worktree add --detach`` into ``/tmp/bayesmix-baseline-<rev>``;
- after: the current working tree (committed or not).

Both run with this virtualenv's Python, ``PYTHONPATH`` and the working directory set to the
version's root (checked: each subprocess reports ``bayesmix.__file__``), alternately (before,
after, before, after, ...) so that the load on the machine affects both alike.

1. Whole command, no instrumentation: ``python -m bayesmix.cli fit DATA --out DIR --quiet
   --seed 1`` for galaxy and Old Faithful, ``python -m bayesmix.cli report DIR`` on a galaxy fit
   made by the same version (median of ``--repeats`` runs after one warm-up run, so the numba
   cache is warm), and the galaxy fit with ``NUMBA_CACHE_DIR`` an empty directory (cold start).
2. Where the time goes: one run per version and command under a phase timer (wrappers around
   named functions, exclusive of nested phases, first-time imports included).
3. Gibbs chains in threads vs worker processes (the new engine's ``executor`` option): wall
   time and whether the draws are identical.

Writes ``reports/benchmarks/latency.md`` and ``latency.json`` (``latency_quick.*`` with
``--quick``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "reports" / "benchmarks"
DEFAULT_BASELINE = "78bd632"
SEED = 1
MARK = "@@bayesmix-latency@@ "
RUN_TIMEOUT_S = 900.0
DATASETS = {
    "galaxy": ROOT / "bayesmix" / "datasets" / "galaxies.csv",
    "faithful": ROOT / "bayesmix" / "datasets" / "faithful.csv",
}
# whole-command rows: (key, label, target seconds)
COMMANDS = (
    ("galaxy_fit", "galaxy fit (report included)", 4.0),
    ("faithful_fit", "faithful fit (report included)", 6.0),
    ("galaxy_report", "galaxy report", 2.0),
    ("galaxy_cold", "galaxy cold fit (empty numba cache)", 30.0),
)
TARGET_NOTES = {
    "galaxy_fit": "warm `bayesmix fit bayesmix/datasets/galaxies.csv`",
    "faithful_fit": "warm `bayesmix fit bayesmix/datasets/faithful.csv`",
    "galaxy_report": "`bayesmix report DIR`",
    "galaxy_cold": "cold start, empty numba cache",
}

# Phase -> the functions that define it, "module:qualname"; each version gets whichever exist.
PLOTS = (
    "k_posterior_figure",
    "density_1d_figure",
    "scatter_2d_figure",
    "pairs_figure",
    "forest_figure",
    "certainty_figure",
    "psm_figure",
    "trace_rank_figure",
    "classical_figure",
)
PHASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sampling", ("bayesmix.fit:run_engine",)),
    ("allocations + log-likelihood", ("bayesmix.posterior.allocations:allocations",)),
    ("assemble", ("bayesmix.posterior.assemble:build_datatree",)),
    ("summaries", ("bayesmix.posterior.summary:summarize", "bayesmix.priors:prior_k_from_spec")),
    (
        "relabelling",
        (
            "bayesmix.posterior.analysis:relabel_draws",
            "bayesmix.posterior.relabel:cluster_summary",
            "bayesmix.posterior.identified:identify",
            "bayesmix.posterior.identified:summarise_clusters",
        ),
    ),
    ("partition", ("bayesmix.posterior.analysis:point_partition",)),
    ("LOO", ("bayesmix.posterior.analysis:pointwise_loo",)),
    ("EM panel", ("bayesmix.report.classical:em_selection", "bayesmix.classical:em_selection")),
    (
        "figures",
        (
            "bayesmix.report.figures:FigureSet.add",
            "bayesmix.report.figures:png_bytes",
            *(f"bayesmix.report.plots:{f}" for f in PLOTS),
        ),
    ),
    ("writing", ("bayesmix.io:atomic_write",)),
    ("report (other)", ("bayesmix.report.render:render_fit_report",)),
)
ROWS = (
    "imports",
    *(p for p, _ in PHASES),
    "other",
    "instrumentation (patching)",
    "python start-up + exit",
)

# --------------------------------------------------------------------------
# Subprocess drivers (run with ``python -c``; they import only the version under test)
# --------------------------------------------------------------------------

PHASE_DRIVER = r'''
import time
_T0 = time.perf_counter()
import builtins, functools, json, os, sys, threading, traceback

_PC = time.perf_counter
_MAIN = threading.get_ident()
_MARK = sys.argv[1]
_TARGETS = [(p, t.split(":")[0], t.split(":")[1]) for p, t in json.loads(sys.argv[2])]
_ARGS = sys.argv[3:]
_ACC, _CALLS, _STACK, _LAST = {}, {}, [], [_T0]
_PENDING = list(_TARGETS)
_ORIG = {}  # id(original) -> (original, wrapper)
_PATCHED, _MISSING, _REBOUND, _SCANNED = [], [], [], set()


def _charge(now):
    # time since the last phase switch goes to the innermost open phase (exclusive timing)
    if _STACK:
        p = _STACK[-1]
        _ACC[p] = _ACC.get(p, 0.0) + (now - _LAST[0])
    _LAST[0] = now


def _enter(phase):
    _charge(_PC())
    _STACK.append(phase)
    _CALLS[phase] = _CALLS.get(phase, 0) + 1


def _leave():
    _charge(_PC())
    _STACK.pop()


def _initializing(m):
    return bool(getattr(getattr(m, "__spec__", None), "_initializing", False))


def _wrap(fn, phase):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if threading.get_ident() != _MAIN:  # worker threads: not timed (main thread waits)
            return fn(*args, **kwargs)
        _enter(phase)
        try:
            return fn(*args, **kwargs)
        finally:
            _leave()

    wrapper.__latency_phase__ = phase
    return wrapper


def _patch():
    """Wrap the targets whose module is now fully imported; rebind every bayesmix.* module
    attribute that still refers to a wrapped original (``from x import f`` copies)."""
    new, keep = False, []
    for phase, mod, qual in _PENDING:
        m = sys.modules.get(mod)
        if m is None or _initializing(m):
            keep.append((phase, mod, qual))
            continue
        *owners, attr = qual.split(".")
        owner = m
        for o in owners:
            owner = getattr(owner, o, None)
        orig = vars(owner).get(attr) if owner is not None else None
        if orig is None or not callable(orig):
            _MISSING.append(f"{mod}:{qual}")
            continue
        _PATCHED.append([phase, f"{mod}:{qual}"])
        if hasattr(orig, "__latency_phase__"):  # a re-export of a function wrapped already
            continue
        w = _wrap(orig, phase)
        setattr(owner, attr, w)
        _ORIG[id(orig)] = (orig, w)
        new = True
    _PENDING[:] = keep
    for name in [n for n in sys.modules if n == "bayesmix" or n.startswith("bayesmix.")]:
        if name in _SCANNED and not new:
            continue
        m = sys.modules.get(name)
        d = getattr(m, "__dict__", None)
        if d is None:
            continue
        for k, v in list(d.items()):
            hit = _ORIG.get(id(v))
            if hit is not None and hit[0] is v:
                d[k] = hit[1]
                _REBOUND.append(f"{name}.{k}")
        if not _initializing(m):  # a module still running its body is scanned again later
            _SCANNED.add(name)


_IMPORT = builtins.__import__


def _import(name, globals=None, locals=None, fromlist=(), level=0):
    if threading.get_ident() != _MAIN:
        return _IMPORT(name, globals, locals, fromlist, level)
    full = name
    if level:
        pkg = (globals or {}).get("__package__") or ""
        bits = pkg.rsplit(".", level - 1)
        base = bits[0] if len(bits) >= level else ""
        full = f"{base}.{name}" if name else base
    mods = sys.modules
    fresh = full not in mods
    if not fresh and fromlist:
        d = getattr(mods[full], "__dict__", {})
        for f in fromlist:
            if f != "*" and f not in d and f"{full}.{f}" not in mods:
                fresh = True
                break
    if not fresh:  # already imported: not an import cost
        return _IMPORT(name, globals, locals, fromlist, level)
    _enter("imports")
    try:
        return _IMPORT(name, globals, locals, fromlist, level)
    finally:
        _leave()
        if full == "bayesmix" or full.startswith("bayesmix."):
            _enter("instrumentation (patching)")
            try:
                _patch()
            finally:
                _leave()


def _run():
    os.environ.setdefault("PYTHONWARNINGS", "ignore")  # as bayesmix/cli.py's __main__ does
    sys.argv = ["bayesmix", *_ARGS]
    builtins.__import__ = _import
    rc, err = 0, None
    try:
        import bayesmix.cli

        rc = bayesmix.cli.main(_ARGS)
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        err = traceback.format_exc()
        rc = 1
    finally:
        builtins.__import__ = _IMPORT
    total = _PC() - _T0
    acc, calls = dict(_ACC), dict(_CALLS)
    if err:
        sys.stderr.write(err)
    import importlib

    absent, not_imported = list(_MISSING), []
    for phase, mod, qual in _PENDING:  # after the timing: does the function exist at all?
        try:
            obj = importlib.import_module(mod)
            for part in qual.split("."):
                obj = getattr(obj, part)
            not_imported.append(f"{mod}:{qual}")
        except Exception:
            absent.append(f"{mod}:{qual}")
    bm = sys.modules.get("bayesmix")
    out = {
        "rc": rc,
        "error": err,
        "total_s": total,
        "phases_s": acc,
        "calls": calls,
        "patched": _PATCHED,
        "absent": absent,
        "not_imported": not_imported,
        "rebound": _REBOUND,
        "bayesmix_file": getattr(bm, "__file__", None),
    }
    sys.stdout.flush()
    print(_MARK + json.dumps(out), flush=True)
    return rc


sys.exit(_run())
'''

GIBBS_DRIVER = r"""
import inspect, json, sys, time
import numpy as np
import bayesmix
from bayesmix.data import load_data
from bayesmix.engines.gibbs import sample_gibbs
from bayesmix.spec import load_spec

mark, cfg = sys.argv[1], json.loads(sys.argv[2])
out = {"bayesmix_file": bayesmix.__file__, "data": {}}
if "executor" not in inspect.signature(sample_gibbs).parameters:
    out["error"] = "sample_gibbs has no 'executor' argument in this version"
else:
    spec = load_spec("dp")
    for name, path in cfg["data"].items():
        rec = out["data"].setdefault(name, {"runs": []})
        try:
            x = load_data(path).standardized
            kw = dict(algorithm="collapsed", chains=4, seed=1, progress=False, cores=2)
            for ex in ("threads", "processes"):  # warm-up: numba cache, worker start-up paths
                sample_gibbs(spec, x, draws=50, tune=10, executor=ex, **kw)
            for r in range(cfg["repeats"]):
                row, got = {}, {}
                for ex in ("threads", "processes"):
                    t0 = time.perf_counter()
                    d = sample_gibbs(spec, x, draws=cfg["draws"], tune=cfg["tune"], executor=ex, **kw)
                    row[ex] = {
                        "wall_s": time.perf_counter() - t0,
                        "sampling_s": d.timing.get("sampling_s"),
                        "compile_s": d.timing.get("compile_s"),
                        "workers": d.info.get("workers"),
                        "start_method": d.info.get("start_method"),
                    }
                    got[ex] = d
                a, b = got["threads"], got["processes"]
                row["identical"] = bool(
                    np.array_equal(a.w, b.w)
                    and (a.z is None) == (b.z is None)
                    and (a.z is None or np.array_equal(a.z, b.z))
                )
                rec["runs"].append(row)
                print(f"[latency] gibbs {name} repeat {r + 1}: threads "
                      f"{row['threads']['wall_s']:.2f} s, processes "
                      f"{row['processes']['wall_s']:.2f} s, identical {row['identical']}",
                      file=sys.stderr, flush=True)
        except Exception as exc:
            import traceback
            rec["error"] = traceback.format_exc()[-2000:]
print(mark + json.dumps(out), flush=True)
"""

CHECK_DRIVER = r"""
import importlib.util, json, sys
import bayesmix, bayesmix.cli
others = json.loads(sys.argv[1])  # bayesmix modules that only the other version has
leaks = {}
for m in others:
    try:
        spec = importlib.util.find_spec(m)
    except Exception:
        spec = None
    if spec is not None:
        leaks[m] = spec.origin
print(json.dumps({
    "bayesmix": bayesmix.__file__,
    "cli": bayesmix.cli.__file__,
    "sys_path_head": sys.path[:3],
    "editable_finder_active": any("editable" in repr(f) for f in sys.meta_path),
    "other_version_modules_checked": len(others),
    "leaks": leaks,
}))
"""

# The venv's editable install of bayesmix adds a meta-path finder that maps every immediate
# child ``bayesmix.X`` to /work/main/bayesmix/X.py when X is missing from sys.path's bayesmix:
# the baseline would silently import modules of the working tree.  This sitecustomize (on
# PYTHONPATH, for both versions alike) removes that finder after site-packages are processed.
GUARD = """import sys
sys.meta_path[:] = [
    f for f in sys.meta_path
    if not getattr(f, "__module__", "").startswith("__editable___bayesmix")
]
"""


# --------------------------------------------------------------------------
# Versions and subprocesses
# --------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[latency] {msg}", file=sys.stderr, flush=True)


class Version:
    """One version of the code: its root, the git revision and how to run its Python."""

    def __init__(self, name: str, root: Path, rev: str, guard: Path) -> None:
        self.name, self.root, self.rev, self.guard = name, root, rev, guard
        self.check: dict[str, Any] = {}

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        # cwd = root too: sys.path[0] ('' or the cwd) is the same folder
        env["PYTHONPATH"] = os.pathsep.join([str(self.guard), str(self.root)])
        env.update(extra or {})
        return env

    def run(
        self, args: list[str], extra_env: dict[str, str] | None = None, timeout: float = 600.0
    ) -> dict[str, Any]:
        """``python ARGS`` in this version's root; wall seconds, exit code, output tails."""
        cmd = [sys.executable, *args]
        t0 = time.perf_counter()
        try:
            p = subprocess.run(
                cmd,
                cwd=self.root,
                env=self.env(extra_env),
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            rc, out, err = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as exc:
            rc = "timeout"
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
            err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
            err += f"\n(timed out after {timeout:.0f} s)"
        except OSError as exc:
            rc, out, err = "oserror", "", str(exc)
        rec: dict[str, Any] = {"rc": rc, "wall_s": time.perf_counter() - t0}
        if rc != 0:
            rec["stderr_tail"] = err[-3000:]
            rec["stdout_tail"] = out[-1000:]
        rec["_stdout"] = out
        return rec


def marked_json(rec: dict[str, Any]) -> dict[str, Any] | None:
    """The driver's one marked JSON line in a run's stdout (None when absent)."""
    for line in reversed(rec.pop("_stdout", "").splitlines()):
        if line.startswith(MARK):
            try:
                return json.loads(line[len(MARK) :])
            except json.JSONDecodeError:
                return None
    return None


def module_names(root: Path) -> set[str]:
    """Dotted names of the bayesmix modules under root."""
    out = set()
    for p in (root / "bayesmix").rglob("*.py"):
        parts = p.relative_to(root).with_suffix("").parts
        out.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def check_import(v: Version, other: Version) -> dict[str, Any]:
    """Which bayesmix a subprocess of this version imports (must be the version's own), and
    that none of the other version's own modules can be found from it."""
    others = sorted(module_names(other.root) - module_names(v.root))
    rec = v.run(["-c", CHECK_DRIVER, json.dumps(others)], timeout=120)
    out = rec.pop("_stdout", "")
    res: dict[str, Any] = {"rc": rec["rc"]}
    try:
        res.update(json.loads(out.strip().splitlines()[-1]))
    except (json.JSONDecodeError, IndexError):
        res["stderr_tail"] = rec.get("stderr_tail", "")
    path = res.get("bayesmix")
    res["expected_root"] = str(v.root)
    res["ok"] = (
        bool(path)
        and Path(path).resolve().is_relative_to(v.root.resolve())
        and not res.get("leaks")
    )
    return res


def git(*args: str, check: bool = True) -> str:
    p = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {p.stderr.strip()}")
    return p.stdout.strip()


def baseline_worktree(rev: str) -> tuple[Path, str]:
    """``/tmp/bayesmix-baseline-<rev>`` at ``rev`` (reused when it is already there)."""
    full = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    path = Path(tempfile.gettempdir()) / f"bayesmix-baseline-{rev}"
    if path.exists():
        head = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        if head == full:
            log(f"reusing the worktree {path}")
            return path, full
        log(f"{path} is not at {rev}: re-creating it")
        remove_worktree(path)
    git("worktree", "add", "--detach", str(path), full)
    log(f"created the worktree {path} at {rev}")
    return path, full


def remove_worktree(path: Path) -> None:
    git("worktree", "remove", "--force", str(path), check=False)
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
    git("worktree", "prune", check=False)


def tree_digest() -> str:
    """sha256 of the working tree's bayesmix/ sources (to see whether they changed mid-run)."""
    h = hashlib.sha256()
    for p in sorted((ROOT / "bayesmix").rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix in {".py", ".j2", ".toml"}:
            h.update(str(p.relative_to(ROOT)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------
# The measurements
# --------------------------------------------------------------------------


def fit_args(data: str, out: Path) -> list[str]:
    return ["fit", str(DATASETS[data]), "--out", str(out), "--quiet", "--seed", str(SEED)]


class Bench:
    def __init__(self, versions: list[Version], work: Path, repeats: int) -> None:
        self.versions, self.work, self.repeats = versions, work, repeats
        self.runs: list[dict[str, Any]] = []
        self.report_dir: dict[str, Path] = {}
        self._n = 0

    def _fresh(self, tag: str) -> Path:
        self._n += 1
        return self.work / f"{tag}_{self._n}"

    def _record(self, v: Version, key: str, kind: str, rec: dict, i: int | None = None) -> dict:
        rec.pop("_stdout", None)
        rec = {"version": v.name, "command": key, "kind": kind, "repeat": i, **rec}
        self.runs.append(rec)
        state = "ok" if rec["rc"] == 0 else f"FAILED (exit {rec['rc']})"
        rep = "" if i is None else f" #{i + 1}"
        log(f"{v.name:6s} {key}{rep} ({kind}): {rec['wall_s']:.2f} s {state}")
        return rec

    def command(self, v: Version, key: str, kind: str, i: int | None = None) -> dict:
        if key == "galaxy_report":
            d = self.report_dir.get(v.name)
            if d is None:
                rec = {
                    "rc": "skipped",
                    "wall_s": float("nan"),
                    "stderr_tail": "no galaxy fit by this version",
                }
                return self._record(v, key, kind, rec, i)
            return self._record(v, key, kind, v.run(["-m", "bayesmix.cli", "report", str(d)]), i)
        data = key.split("_")[0]
        out = self._fresh(f"{v.name}_{key}")
        extra = None
        if key == "galaxy_cold":
            cache = self._fresh("numba_cache_empty")
            cache.mkdir()
            extra = {"NUMBA_CACHE_DIR": str(cache)}
        rec = v.run(["-m", "bayesmix.cli", *fit_args(data, out)], extra, RUN_TIMEOUT_S)
        if key == "galaxy_fit" and kind == "warm-up" and rec["rc"] == 0:
            self.report_dir[v.name] = out  # kept for the report command
        else:
            shutil.rmtree(out, ignore_errors=True)
        if extra:
            shutil.rmtree(extra["NUMBA_CACHE_DIR"], ignore_errors=True)
        return self._record(v, key, kind, rec, i)

    def whole(self, cold: bool) -> None:
        keys = [k for k, _, _ in COMMANDS if k != "galaxy_cold"]
        for key in keys:  # one warm-up run each (numba cache, .pyc files, page cache)
            for v in self.versions:
                self.command(v, key, "warm-up")
        for i in range(self.repeats):
            for key in keys:
                for v in self.versions:  # alternate: before, after, before, after, ...
                    self.command(v, key, "timed", i)
        if cold:
            for v in self.versions:
                self.command(v, "galaxy_cold", "timed", 0)

    def instrumented(self) -> list[dict[str, Any]]:
        targets = [[phase, t] for phase, ts in PHASES for t in ts]
        out = []
        for key in ("galaxy_fit", "faithful_fit", "galaxy_report"):
            for v in self.versions:
                if key == "galaxy_report":
                    d = self.report_dir.get(v.name)
                    if d is None:
                        out.append(
                            {
                                "version": v.name,
                                "command": key,
                                "rc": "skipped",
                                "stderr_tail": "no galaxy fit by this version",
                            }
                        )
                        continue
                    args = ["report", str(d)]
                    dest = None
                else:
                    dest = self._fresh(f"{v.name}_{key}_phases")
                    args = fit_args(key.split("_")[0], dest)
                rec = v.run(["-c", PHASE_DRIVER, MARK, json.dumps(targets), *args], None, 900)
                res = marked_json(rec)
                if dest is not None:
                    shutil.rmtree(dest, ignore_errors=True)
                row = {"version": v.name, "command": key, **rec, "phases": res}
                if res is not None and res.get("rc") not in (0, None):
                    row["rc"] = res["rc"]
                out.append(row)
                state = "ok" if row["rc"] == 0 and res else f"FAILED (exit {row['rc']})"
                log(f"{v.name:6s} {key} (phase timer): {rec['wall_s']:.2f} s {state}")
        return out

    def gibbs(self, v: Version, quick: bool) -> dict[str, Any]:
        cfg = {
            "data": {k: str(p) for k, p in DATASETS.items()},
            "repeats": self.repeats,
            "draws": 5000,
            "tune": 1000,
        }
        log(f"{v.name}: Gibbs chains, threads vs processes ({self.repeats} repeat(s)) ...")
        rec = v.run(["-c", GIBBS_DRIVER, MARK, json.dumps(cfg)], None, 1200)
        res = marked_json(rec)
        return {"version": v.name, "settings": cfg, **rec, "result": res}


# --------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def whole_table(runs: list[dict], versions: list[str]) -> dict[str, dict[str, Any]]:
    """{command: {version: {median_s, n_ok, n, walls}}} of the timed runs."""
    out: dict[str, dict[str, Any]] = {}
    for key, _, _ in COMMANDS:
        row = {}
        for v in versions:
            rs = [r for r in runs if r["command"] == key and r["version"] == v]
            timed = [r for r in rs if r["kind"] == "timed"]
            walls = [r["wall_s"] for r in timed if r["rc"] == 0]
            row[v] = {
                "median_s": _median(walls),
                "n_ok": len(walls),
                "n": len(timed),
                "walls_s": walls,
                "warmup_s": [r["wall_s"] for r in rs if r["kind"] == "warm-up" and r["rc"] == 0],
            }
        out[key] = row
    return out


def _s(x: float | None, fmt: str = ".2f") -> str:
    return "–" if x is None else f"{x:{fmt}}"


def _cell(c: dict) -> str:
    if c["n"] == 0:
        return "not run"
    if c["n_ok"] == 0:
        return "failed"
    extra = "" if c["n_ok"] == c["n"] else f" ({c['n'] - c['n_ok']} of {c['n']} failed)"
    return f"{c['median_s']:.2f}{extra}"


def phase_rows(res: dict | None, wall: float | None) -> dict[str, float | None]:
    """Seconds per row of the phase table (None: no function of the phase in this version)."""
    if not res:
        return {}
    acc, patched = res.get("phases_s", {}), {p for p, _ in res.get("patched", [])}
    rows: dict[str, float | None] = {"imports": acc.get("imports", 0.0)}
    for phase, _ in PHASES:
        rows[phase] = acc.get(phase, 0.0) if phase in patched else None
    rows["instrumentation (patching)"] = acc.get("instrumentation (patching)", 0.0)
    rows["other"] = res["total_s"] - sum(acc.values())
    rows["python start-up + exit"] = None if wall is None else wall - res["total_s"]
    return rows


def render(rep: dict) -> str:
    prov = rep["provenance"]
    ver = prov.get("versions", {})
    lines = [
        "# Where the time goes: everyday runs, before and after the speed work",
        "",
        f"`{rep['command']}`, {prov.get('date', '')}; total {rep['total_s']:.0f} s.",
        "",
        f"- Machine: {prov.get('machine', '')}; {rep['cpus_usable']} CPUs usable; load "
        f"average at start {rep['loadavg_start']}, at end {rep['loadavg_end']} (1, 5, 15 min).",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in ver.items()) + ".",
    ]
    for v in rep["versions"]:
        chk = v["check"]
        ok = "yes" if chk.get("ok") else "NO"
        leaks = ", ".join(f"`{m}`" for m in chk.get("leaks") or {}) or "none"
        lines.append(
            f"- {v['name']}: {v['label']}; a subprocess imports `bayesmix` from "
            f"`{chk.get('bayesmix')}` (own copy: {ok}; of the "
            f"{chk.get('other_version_modules_checked', '?')} modules only the other version "
            f"has, found: {leaks})."
        )
    if rep.get("tree_changed"):
        lines.append(
            "- **The working tree's bayesmix/ sources changed during this run** (other work in "
            "progress): the after numbers may mix two states of the code."
        )
    lines += [
        "",
        "Each version runs with this virtualenv's Python and `PYTHONPATH` and the working "
        "directory set to its own root, plus a `sitecustomize` that drops the editable "
        "install's finder (which would otherwise map a `bayesmix.X` missing from the baseline "
        "to the working tree's file); runs alternate before, after, before, after. Fit "
        f"command: `python -m bayesmix.cli fit DATA --out DIR --quiet --seed {SEED}` (default "
        "model dp, default engine, report included); report: `python -m bayesmix.cli report "
        "DIR` on a galaxy fit by the same version.",
        "",
        f"## Whole command, wall seconds (median of {rep['repeats']})",
        "",
        "| Command | before | after | after/before | target | met? |",
        "|---|---:|---:|---:|---:|---|",
    ]
    wt = rep["whole"]
    for key, label, target in COMMANDS:
        row = wt[key]
        b, a = row.get("before"), row.get("after")
        if not (b and a):
            continue
        if key == "galaxy_cold" and b["n"] == 0 and a["n"] == 0:
            lines.append(f"| {label} | not run | not run | – | < {target:g} | – |")
            continue
        ratio = (
            f"{a['median_s'] / b['median_s']:.2f}"
            if a["median_s"] is not None and b["median_s"]
            else "–"
        )
        met = "–" if a["median_s"] is None else ("yes" if a["median_s"] < target else "no")
        lines.append(f"| {label} | {_cell(b)} | {_cell(a)} | {ratio} | < {target:g} | {met} |")
    lines += [
        "",
        "Timed runs follow one warm-up run per version and command (numba cache in each "
        "version's `__pycache__`, .pyc files and the page cache warm); the cold fit sets "
        "`NUMBA_CACHE_DIR` to an empty directory (one run per version), so every numba kernel "
        "is compiled. Targets (after): "
        + "; ".join(f"{TARGET_NOTES[k]} < {t:g} s" for k, _, t in COMMANDS)
        + ".",
        "",
        "## Where the time goes (one instrumented run per version)",
        "",
    ]
    lines += _phase_md(rep)
    lines += _gibbs_md(rep.get("gibbs"))
    fails = [r for r in rep["runs"] if r["rc"] != 0] + [
        r for r in rep["instrumented"] if r.get("rc") != 0
    ]
    if rep.get("gibbs") and rep["gibbs"].get("rc") != 0:
        fails.append({**rep["gibbs"], "command": "gibbs threads vs processes"})
    if fails or rep.get("errors"):
        lines += ["## Failures", ""]
        for r in fails:
            tail = (r.get("stderr_tail") or "").strip().splitlines()[-3:]
            lines.append(
                f"- {r['version']} {r['command']} ({r.get('kind', 'phase timer')}): exit "
                f"{r['rc']}: `{' / '.join(t.strip() for t in tail)[:300]}`"
            )
        for e in rep.get("errors", []):
            lines.append(f"- benchmark stage {e['stage']}: `{e['error'][-300:]}`")
        lines += ["", "Full stderr tails are in the JSON file.", ""]
    return "\n".join(lines).rstrip() + "\n"


def _phase_md(rep: dict) -> list[str]:
    lines: list[str] = []
    wt = rep["whole"]
    inst = {(r["version"], r["command"]): r for r in rep["instrumented"]}
    titles = {
        "galaxy_fit": "galaxy fit",
        "faithful_fit": "faithful fit",
        "galaxy_report": "galaxy report",
    }
    for key, title in titles.items():
        cols, tot, over = {}, {}, {}
        for v in ("before", "after"):
            r = inst.get((v, key))
            ok = bool(r and r.get("rc") == 0 and r.get("phases"))
            cols[v] = phase_rows(r["phases"], r["wall_s"]) if ok else None
            tot[v] = r["wall_s"] if ok else None
            over[v] = wt[key][v]["median_s"] if v in wt[key] else None
        lines += [f"### {title}", "", "| Phase | before s | after s |", "|---|---:|---:|"]
        for row in ROWS:
            cells = []
            for v in ("before", "after"):
                if cols[v] is None:
                    cells.append("failed" if inst.get((v, key)) else "not run")
                else:
                    cells.append(_s(cols[v].get(row)))
            lines.append(f"| {row} | {cells[0]} | {cells[1]} |")
        lines.append(f"| **total, instrumented** | {_s(tot['before'])} | {_s(tot['after'])} |")
        lines.append(
            f"| total, uninstrumented median | {_s(over['before'])} | {_s(over['after'])} |"
        )
        lines.append("")
    lines += [
        "Exclusive wall time of the main thread: a phase's nested phases are charged to "
        "them, not to it (while chains run in worker threads the main thread waits inside "
        "sampling). Phases are the functions: " + _phase_defs() + ". imports: first-time "
        "imports (builtins.__import__ of a module, or a name in its from-list, not yet in "
        "sys.modules), wherever they happen. other: total minus all phases (argument parsing, "
        "data loading, the analysis glue, printing). instrumentation: patching the functions "
        "as their modules load. python start-up + exit: the subprocess's wall time minus the "
        "driver's own total. – : no function of the phase in that version. The instrumented "
        "total vs the uninstrumented median shows the overhead plus run-to-run noise.",
        "",
    ]
    for v in ("before", "after"):
        miss = set()
        for key in titles:
            r = inst.get((v, key))
            if r and r.get("rc") == 0 and r.get("phases"):
                miss |= set(r["phases"].get("absent", []))
        if miss:
            lines.append(f"Not in {v}: " + ", ".join(f"`{m}`" for m in sorted(miss)) + ".")
            lines.append("")
    return lines


def _phase_defs() -> str:
    parts = []
    for phase, ts in PHASES:
        fs = [t.replace(":", ".").removeprefix("bayesmix.") for t in ts]
        if phase == "figures":
            fs = fs[:2] + ["report.plots.*_figure"]
        parts.append(f"{phase} = {', '.join(f'`{f}`' for f in fs)}")
    return "; ".join(parts)


def _gibbs_md(g: dict | None) -> list[str]:
    lines = ["## Gibbs chains: threads vs processes (after)", ""]
    if not g:
        return lines + ["Not run.", ""]
    res = g.get("result")
    if g.get("rc") != 0 or not res:
        return lines + ["failed (see Failures).", ""]
    if res.get("error"):
        return lines + [res["error"], ""]
    st = g["settings"]
    lines += [
        f"`sample_gibbs(spec=dp, x, algorithm='collapsed', chains=4, draws={st['draws']}, "
        f"tune={st['tune']}, seed=1, cores=2, executor=...)`, wall seconds of the call, "
        f"median of {st['repeats']} (alternated, after one short warm-up call each).",
        "",
        "| Data | threads s | processes s | processes/threads | identical draws (w, z) |",
        "|---|---:|---:|---:|---|",
    ]
    for name, rec in res["data"].items():
        runs = rec.get("runs", [])
        if rec.get("error") and not runs:
            lines.append(f"| {name} | failed | failed | – | – |")
            continue
        t = _median([r["threads"]["wall_s"] for r in runs])
        p = _median([r["processes"]["wall_s"] for r in runs])
        same = all(r["identical"] for r in runs)
        ratio = f"{p / t:.2f}" if t and p else "–"
        w = runs[0]["processes"]
        ident = f"{'yes' if same else 'NO'} ({len(runs)} of {len(runs)} runs compared)"
        if not same:
            ident = f"NO ({sum(not r['identical'] for r in runs)} of {len(runs)} runs differ)"
        lines.append(
            f"| {name} | {_s(t)} | {_s(p)} ({w['workers']} {w['start_method']} workers) | "
            f"{ratio} | {ident} |"
        )
    return lines + [""]


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def _provenance(argv: list[str]) -> dict[str, Any]:
    try:
        from benchmarks.common import provenance

        return provenance(["benchmarks.latency", *argv])
    except Exception as exc:  # the after code may be mid-edit: keep the benchmark going
        import platform

        return {
            "command": "python -m benchmarks.latency " + " ".join(argv),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
            "versions": {"python": platform.python_version()},
            "error": repr(exc),
        }


def _write(path: Path, text: str) -> None:
    """Atomic write with bayesmix.io; a plain temp-file rename if that module is broken."""
    try:
        from bayesmix.io import write_text

        write_text(path, text)
    except ImportError:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)


def _write_json(path: Path, obj: Any) -> None:
    try:
        from benchmarks.common import write_json

        write_json(path, obj)
    except ImportError:
        _write(path, json.dumps(obj, indent=1, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(prog="python -m benchmarks.latency", description=__doc__)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per command (default 3)")
    p.add_argument(
        "--baseline", default=DEFAULT_BASELINE, help=f"before revision (default {DEFAULT_BASELINE})"
    )
    p.add_argument("--quick", action="store_true", help="1 repeat, no cold start")
    p.add_argument("--out-dir", default=str(OUT_DIR), help="output directory")
    p.add_argument("--keep-worktree", action="store_true", help="keep the baseline worktree")
    args = p.parse_args(argv)
    repeats = 1 if args.quick else max(1, args.repeats)

    t0 = time.perf_counter()
    load0 = [round(x, 2) for x in os.getloadavg()]
    digest0 = tree_digest()
    prov = _provenance(argv)
    head = git("rev-parse", "HEAD", check=False)
    dirty = git("status", "--porcelain", check=False).splitlines()
    wt_path, base_full = baseline_worktree(args.baseline)
    subject = git("log", "-1", "--format=%h %s", base_full, check=False)
    work = Path(tempfile.mkdtemp(prefix="bayesmix_latency_"))
    guard = work / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    before = Version("before", wt_path, base_full, guard)
    after = Version("after", ROOT, head + ("+dirty" if dirty else ""), guard)
    labels = {
        "before": f"`{subject}` ({base_full[:12]}), worktree `{wt_path}`",
        "after": f"working tree `{ROOT}` at {head[:12]}"
        + (f" + uncommitted changes ({len(dirty)} files)" if dirty else ""),
    }
    versions = [before, after]
    errors: list[dict[str, str]] = []
    bench = Bench(versions, work, repeats)
    instrumented: list[dict] = []
    gibbs: dict | None = None
    try:
        for v, other in ((before, after), (after, before)):
            v.check = check_import(v, other)
            log(f"{v.name}: bayesmix from {v.check.get('bayesmix')} (ok: {v.check['ok']})")
            if not v.check["ok"]:
                errors.append({"stage": f"import check {v.name}", "error": json.dumps(v.check)})
        stages = (
            ("whole command", lambda: bench.whole(cold=not args.quick)),
            ("instrumented", lambda: instrumented.extend(bench.instrumented())),
        )
        for stage, fn in stages:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - record it, keep the rest of the benchmark
                errors.append({"stage": stage, "error": f"{type(exc).__name__}: {exc}"})
                log(f"stage {stage} failed: {exc!r}")
        try:
            gibbs = bench.gibbs(after, args.quick)
            log(f"gibbs threads vs processes: exit {gibbs['rc']}, {gibbs['wall_s']:.1f} s")
        except Exception as exc:  # noqa: BLE001
            errors.append({"stage": "gibbs", "error": f"{type(exc).__name__}: {exc}"})
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not args.keep_worktree:
            remove_worktree(wt_path)
            log(f"removed the worktree {wt_path}")

    names = [v.name for v in versions]
    rep = {
        "command": "python -m benchmarks.latency" + (" " + " ".join(argv) if argv else ""),
        "mode": "quick" if args.quick else "full",
        "repeats": repeats,
        "provenance": prov,
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg_start": load0,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "tree_digest_start": digest0,
        "tree_digest_end": tree_digest(),
        "versions": [
            {
                "name": v.name,
                "root": str(v.root),
                "rev": v.rev,
                "label": labels[v.name],
                "check": v.check,
            }
            for v in versions
        ],
        "targets_s": {k: t for k, _, t in COMMANDS},
        "whole": whole_table(bench.runs, names),
        "runs": bench.runs,
        "instrumented": instrumented,
        "gibbs": gibbs,
        "errors": errors,
        "total_s": time.perf_counter() - t0,
    }
    rep["tree_changed"] = rep["tree_digest_start"] != rep["tree_digest_end"]
    out = Path(args.out_dir)
    name = "latency_quick" if args.quick else "latency"
    _write_json(out / f"{name}.json", rep)
    _write(out / f"{name}.md", render(rep))
    log(f"wrote {out / name}.md and .json in {rep['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
