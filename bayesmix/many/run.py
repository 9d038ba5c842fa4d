"""fit_many(): one fit per group of a data set, through the executor, resumable.

Layout of ``out``: ``groups/<group>/`` (the outputs of ``fit``, each group swapped in
atomically as soon as its fit is done), ``summary.parquet`` and ``summary.csv`` (one row per
group), ``report.html`` (the overview) and ``fit_many.json`` (settings, versions, seed,
command, counts). A re-run with the same ``out`` and settings skips the finished groups.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bayesmix.data import Dataset, load_groups
from bayesmix.errors import InputError
from bayesmix.executor import (
    Executor,
    Outcome,
    WorkerLost,
    check_scheduler,
    default_workers,
    describe,
)
from bayesmix.io import check_output_dir, write_json
from bayesmix.many.groups import group_dir_name, group_seed
from bayesmix.many.summary import error_row, fit_row, summary_frame, write_summary
from bayesmix.spec import DEFAULT_MODEL, ModelSpec, load_spec
from bayesmix.versions import versions

SCHEMA = "bayesmix.fit_many/1"
RECORD_NAME = "fit_many.json"
GROUPS_DIR = "groups"


@dataclass(frozen=True)
class GroupTask:
    """One group's fit, sent to a worker (everything picklable)."""

    key: str
    dir_name: str
    out_dir: str
    data: Dataset
    spec: ModelSpec
    seed: int
    options: dict  # engine, sampler, chains, draws, tune
    report: bool
    command: str


def fit_group(task: GroupTask) -> dict:
    """In a worker: fit one group, save its outputs atomically, return its summary row."""
    import warnings

    from bayesmix.fit import fit

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    result = fit(
        task.data,
        task.spec,
        **task.options,
        seed=task.seed,
        progress=False,
        cores=1,
        command=task.command,
    )
    result.save(task.out_dir, report=task.report)
    seconds = (result.run or {}).get("timing", {}).get("total_s")
    return fit_row(task.key, task.dir_name, result.summary, seconds, attempts=1)


def warm_kernels() -> None:
    """Compile (or load) the Numba kernels once before the fan-out (Numba issue #4807)."""
    from bayesmix.warmup import warm

    warm(verbose=False)


def fit_many(
    data: object,
    by: str,
    model: str | Path | ModelSpec = DEFAULT_MODEL,
    *,
    out: str | Path,
    columns: list[str] | None = None,
    dropna: bool = False,
    engine: str | None = None,
    sampler: str | None = None,
    chains: int | None = None,
    draws: int | None = None,
    tune: int | None = None,
    seed: int | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    group_reports: bool = True,
    progress: bool = True,
    command: str = "",
) -> pd.DataFrame:
    """Fit ``model`` to every group of ``data`` (path or DataFrame) split by column ``by``.

    Writes ``out`` (see the module docstring) and returns the summary table, one row per
    group in sorted key order. Group ``g`` gets the seed ``group_seed(seed, g)``, so its
    numbers do not depend on the workers or the scheduling. ``workers``: worker processes
    (default: the CPUs; 1 fits in this process); ``scheduler``: None (local processes),
    "local" (a Dask LocalCluster) or a Dask scheduler address. Bad data in a group, a failed
    fit or a worker that died twice give that group an error row; the others go on.
    """
    t0 = time.perf_counter()
    scheduler = check_scheduler(scheduler)
    out = check_output_dir(out)
    spec = model if isinstance(model, ModelSpec) else load_spec(model)
    groups, notes = load_groups(data, by, columns=columns, dropna=dropna)
    run_seed = spec.sampler.seed if seed is None else int(seed)
    options = {"engine": engine, "sampler": sampler, "chains": chains, "draws": draws}
    options["tune"] = tune
    settings = {
        "by": by,
        "columns": columns,
        "dropna": dropna,
        "spec": spec.to_dict(),
        "options": options,
        "seed": run_seed,
    }
    _check_settings(out, settings)
    n_workers = max(1, workers or default_workers())
    record = {
        "schema": SCHEMA,
        "status": "running",
        "command": command,
        "data": str(data) if isinstance(data, (str, Path)) else f"<{type(data).__name__}>",
        "settings": settings,
        "executor": describe(n_workers, scheduler),
        "versions": versions(),
        "notes": notes,
        "started": _now(),
    }
    write_json(out / RECORD_NAME, record)  # marks ``out`` as a fit-many directory at once
    gdir = out / GROUPS_DIR
    _remove_stale_staging(gdir)

    rows: dict[str, dict] = {}
    tasks = []
    skipped = 0
    for key, ds in groups:
        name, gseed = group_dir_name(key), group_seed(run_seed, key)
        if isinstance(ds, InputError):
            rows[key] = error_row(key, name, None, gseed, str(ds), attempts=0)
            continue
        saved = _finished(gdir / name, ds, gseed)
        if saved is not None:
            rows[key] = fit_row(key, name, *saved, attempts=0)
            skipped += 1
            continue
        task = GroupTask(
            key, name, str(gdir / name), ds, spec, gseed, options, group_reports, command
        )
        tasks.append((key, (task,)))
    n_bad = len(groups) - skipped - len(tasks)
    _log(
        f"fit-many: {len(groups)} groups by '{by}': skipped {skipped} finished earlier, "
        f"{n_bad} with bad data, {len(tasks)} to fit ({describe(n_workers, scheduler)})",
        progress,
    )
    sizes = {key: ds.n_obs for key, ds in groups if isinstance(ds, Dataset)}
    by_key = {key: t for key, (t,) in tasks}
    started = time.perf_counter()
    # no more local workers than groups to fit (a single group is fitted in this process)
    n_run = min(n_workers, len(tasks)) if scheduler is None else n_workers
    try:
        if tasks:
            with Executor(n_run, scheduler, prepare=warm_kernels) as ex:
                for j, o in enumerate(ex.map(fit_group, tasks), 1):
                    rows[o.key] = _row_of(o, by_key[o.key], sizes[o.key])
                    _log(_progress_line(rows[o.key], j, len(tasks), started), progress)
    except KeyboardInterrupt:
        done = sum(1 for r in rows.values() if r["error"] == "")
        write_json(out / RECORD_NAME, record | {"status": "interrupted", "finished": _now()})
        raise KeyboardInterrupt(
            f"{done} finished group(s) are kept in {gdir}; run the same command again to fit "
            "the rest"
        ) from None
    frame = summary_frame([rows[key] for key, _ in groups])
    n_failed = int((frame["error"] != "").sum())
    record |= {
        "status": "complete",
        "finished": _now(),
        "wall_s": round(time.perf_counter() - t0, 3),
        "counts": {
            "groups": len(groups),
            "fitted": len(tasks) - (n_failed - n_bad),
            "skipped": skipped,
            "failed": n_failed,
        },
    }
    write_summary(frame, out, record)
    from bayesmix.many.report import render_many_report

    render_many_report(out, frame, record)
    write_json(out / RECORD_NAME, record)
    frame.attrs["bayesmix"] = record
    return frame


def _row_of(o: Outcome, task: GroupTask, n: int) -> dict:
    """A finished task's summary row, or the error row of a failed one."""
    if o.ok:
        return o.value | {"attempts": o.attempts}
    return error_row(o.key, task.dir_name, n, task.seed, _message(o.error), o.attempts)


def _finished(d: Path, ds: Dataset, seed: int) -> tuple[dict, float | None] | None:
    """(summary, seconds) of a group finished by an earlier run on the same data and seed."""
    try:
        summary = json.loads((d / "summary.json").read_text(encoding="utf-8"))
        run = json.loads((d / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if summary.get("seed") != seed or summary.get("data", {}).get("sha256") != ds.sha256:
        return None
    return summary, run.get("timing", {}).get("total_s")


def _check_settings(out: Path, settings: dict) -> None:
    """A re-run must use the settings of the run that made ``out``, and ``out`` must not be
    the output of ``fit`` or ``compare`` (else InputError)."""
    path = out / RECORD_NAME
    if not path.is_file():
        other = [m for m in ("summary.json", "compare.json") if (out / m).exists()]
        if other:
            what = "fit" if other[0] == "summary.json" else "compare"
            raise InputError(
                f"--out {out}: holds the outputs of bayesmix {what} ({other[0]}); choose a "
                "new or empty directory for fit-many"
            )
        return
    try:
        before = json.loads(path.read_text(encoding="utf-8")).get("settings")
    except ValueError:
        return
    now = json.loads(json.dumps(settings, default=str))
    if before is not None and before != now:
        changed = [k for k in now if before.get(k) != now[k]]
        raise InputError(
            f"--out {out}: was made by fit-many with other settings ({', '.join(changed)} "
            "differ); use the same settings to resume, or a new --out"
        )


def _remove_stale_staging(gdir: Path) -> None:
    """Staging directories of fits stopped mid-write (their groups are fitted again)."""
    if gdir.is_dir():
        for p in gdir.glob(".*.staging-*"):
            shutil.rmtree(p, ignore_errors=True)


def _message(exc: BaseException) -> str:
    """An error row's text: the message ``fit`` would print for bad input, else type: text."""
    if isinstance(exc, (InputError, WorkerLost)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _progress_line(row: dict, j: int, n: int, t0: float) -> str:
    el = time.perf_counter() - t0
    what = (
        f"K+ = {row['k_mode']} (P {row['p_mode']:.2f}), {row['light']}"
        if not row["error"]
        else f"error: {row['error']}"
    )
    return f"[fit-many] {j}/{n} {row['group']}: {what}; {el:.0f}s elapsed, ~{el / j * (n - j):.0f}s left"


def _log(msg: str, verbose: bool) -> None:
    if verbose:
        print(msg, file=sys.stderr, flush=True)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
