"""Storage and memory of ``bayesmix fit`` at large N: posterior.nc size, peak RSS, wall time
and stage timings, measured by running the CLI under ``/usr/bin/time -v``.

    python -m benchmarks.large_n_storage --n 100000 [--n 1000000] [--draws D] [--chains C]
        [--model M] [--engine E] [--tune T] [--seed 20261202] [--keep]

Options not given are not passed, so the fit runs with ``bayesmix fit``'s defaults (the
default model, engine auto, 4 chains, draws scaled for large N): what a user gets.

For each N: the data come from ``benchmarks.make_large_data`` (6 well-separated 2-D
clusters, its documented seed) in a temporary directory; the fit writes into another one,
removed afterwards unless ``--keep``. Results go to reports/benchmarks/large_n_storage.json
and .md (atomic writes; earlier rows for other N are kept), with the versions, the seeds and
the exact commands.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, provenance, write_json
from benchmarks.make_large_data import DEFAULT_SEED, make_data, write_parquet

OUT_DIR = ROOT / "reports" / "benchmarks"
NAME = "large_n_storage"


def parse_time_v(text: str) -> dict:
    """Peak RSS (bytes), wall time (s) and exit status from ``/usr/bin/time -v`` output."""
    out: dict = {}
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        out["peak_rss_bytes"] = int(m.group(1)) * 1024
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if m:
        parts = [float(p) for p in m.group(1).split(":")]
        out["wall_s"] = sum(v * 60**i for i, v in enumerate(reversed(parts)))
    m = re.search(r"Exit status: (\d+)", text)
    if m:
        out["exit_status"] = int(m.group(1))
    return out


def run_one(n: int, args: argparse.Namespace, work: Path) -> dict:
    """Generate N rows, fit them under /usr/bin/time -v; the measured row."""
    data = work / f"large_{n}.parquet"
    t0 = time.perf_counter()
    x, _ = make_data(n, 2, 6, args.seed)
    write_parquet(data, x)
    gen_s = time.perf_counter() - t0
    out = work / f"fit_{n}"
    opts = [
        (flag, str(value))
        for flag, value in (("--model", args.model), ("--engine", args.engine),
                            ("--chains", args.chains), ("--draws", args.draws),
                            ("--tune", args.tune))
        if value is not None
    ]  # fmt: skip
    cmd = [
        "/usr/bin/time", "-v", sys.executable, "-m", "bayesmix.cli", "fit", str(data),
        *[v for pair in opts for v in pair], "--seed", str(args.seed), "--quiet", "--out", str(out),
    ]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    row = {"n": n, "d": 2, "command": " ".join(cmd[2:]), "generate_s": round(gen_s, 2)}
    row |= parse_time_v(proc.stderr)
    row["returncode"] = proc.returncode
    if proc.returncode != 0:
        row["error"] = proc.stderr.strip().splitlines()[-30:]
        return row
    nc = out / "posterior.nc"
    row["posterior_nc_bytes"] = nc.stat().st_size
    row["files_bytes"] = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file()}
    run = json.loads((out / "run.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    row["timing"] = run.get("timing", {})
    row["storage"] = summary.get("storage")
    row["loo"] = {k: summary.get("loo", {}).get(k) for k in ("elpd", "se", "subsample")}
    row["k_plus_mode"] = summary["n_clusters"]["mode"]
    quantities = (summary.get("diagnostics") or {}).get("quantities") or {}
    row["r_hat_k_plus"] = (quantities.get("K+") or {}).get("r_hat")
    row["engine"] = summary.get("engine_label") or summary.get("engine")
    row["partition_k"] = (summary.get("partition") or {}).get("n_clusters")
    if args.keep:
        row["kept_output"] = str(out)
    else:
        shutil.rmtree(out, ignore_errors=True)
    data.unlink(missing_ok=True)
    return row


def markdown(result: dict) -> str:
    lines = [
        "# Storage and memory of `bayesmix fit` at large N",
        "",
        "Measured by `benchmarks/large_n_storage.py`: each fit run by the CLI under "
        "`/usr/bin/time -v` (peak RSS of the whole process), data from "
        "`benchmarks/make_large_data.py` (6 well-separated 2-D Gaussian clusters, seed "
        f"{result['seed']}). Numbers are what this machine measured; nothing is extrapolated.",
        "",
        f"- machine: {result['provenance']['machine']}",
        f"- git: {result['provenance']['git']}",
        f"- date: {result['provenance']['date']}",
        f"- versions: {result['provenance']['versions']}",
        "",
        "| N | git | engine | posterior.nc | peak RSS | wall | sampling | total (in fit) | "
        "z draws kept | LOO rows | K+ mode (truth 6) | R-hat K+ | exit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(result["rows"], key=lambda r: (r["n"], r.get("date", ""))):
        st = r.get("storage") or {}
        t = r.get("timing") or {}
        size = r.get("posterior_nc_bytes")
        rss = r.get("peak_rss_bytes")
        rh = r.get("r_hat_k_plus")
        lines.append(
            f"| {r['n']:,} | {r.get('git', '?')[:7]} | {r.get('engine', '?')} | {size / 1e6:.1f} MB"
            f" | {rss / 1e9:.2f} GB | {r.get('wall_s', 0):.0f} s"
            f" | {t.get('sampling_s', float('nan')):.0f} s | {t.get('total_s', float('nan')):.0f} s"
            f" | {st.get('z_draws', '?')} of {st.get('z_draws_of', '?')}"
            f" | {st.get('loo_observations', '?')} | {r.get('k_plus_mode', '?')}"
            f" | {'?' if rh is None else f'{rh:.3f}'} | {r.get('returncode')} |"
            if size is not None and rss is not None
            else f"| {r['n']:,} | {r.get('git', '?')[:7]} | | failed | | | | | | | | | {r.get('returncode')} |"
        )
    lines += ["", "Stage seconds inside `fit` (run.json):", ""]
    for r in sorted(result["rows"], key=lambda r: (r["n"], r.get("date", ""))):
        stages = (r.get("timing") or {}).get("stages")
        if stages:
            text = ", ".join(f"{k.removesuffix('_s')} {v:.0f}" for k, v in stages.items())
            lines.append(f"- N = {r['n']:,} ({r.get('git', '?')[:7]}): {text}")
    if result.get("notes"):
        lines += ["", *[f"Note: {note}" for note in result["notes"]]]
    lines += ["", "Commands:", ""]
    lines += [f"- `{r['command']}`" for r in sorted(result["rows"], key=lambda r: r["n"])]
    lines += ["", f"Driver: `{result['provenance']['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, action="append", required=True)
    # None: not passed, so the fit runs with bayesmix fit's own defaults
    ap.add_argument("--draws", type=int, default=None)
    ap.add_argument("--tune", type=int, default=None)
    ap.add_argument("--chains", type=int, default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--engine", default=None)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--keep", action="store_true", help="keep the fit output directories")
    args = ap.parse_args(argv)
    path = OUT_DIR / f"{NAME}.json"
    old = json.loads(path.read_text()) if path.exists() else {"rows": []}
    prov = provenance(["benchmarks.large_n_storage"] + list(argv or sys.argv[1:]))
    # one row per (N, git revision): measurements of other revisions stay in the record
    rows = [r for r in old.get("rows", []) if (r["n"], r.get("git")) not in
            {(n, prov["git"]) for n in args.n}]  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="bayesmix-large-"))
    try:
        for n in args.n:
            print(f"N = {n:,} ...", file=sys.stderr, flush=True)
            row = run_one(n, args, work) | {"git": prov["git"], "date": prov["date"]}
            print(json.dumps(row)[:600], file=sys.stderr, flush=True)
            rows.append(row)
            result = {
                "provenance": provenance(
                    ["benchmarks.large_n_storage"] + list(argv or sys.argv[1:])
                ),
                "seed": args.seed,
                "rows": rows,
            }
            write_json(path, result)
            from bayesmix.io import write_text

            write_text(OUT_DIR / f"{NAME}.md", markdown(result))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
