"""``bayesmix fit-many`` over many small groups: the default executor against a Dask LocalCluster.

``python -m benchmarks.fit_many [--groups 100] [--rows 40] [--draws 500] [--workers 2]`` writes
``reports/benchmarks/fit_many.md`` and ``fit_many.json`` atomically.

Data: ``groups`` groups of ``rows`` 2-D rows; group g holds 1 + g mod 3 spherical Gaussian
clusters (unit variance, centres 5 apart on a line), seed 20261203 (``np.random.default_rng``),
written to a temporary CSV with a ``group`` column.  Each configuration runs the same command,
``bayesmix fit-many DATA --by group --engine collapsed --chains 2 --draws D --tune D/5 --seed 1
--no-group-reports --out DIR``, in a fresh process: ``--workers 1`` (in-process), ``--workers W``
(the default executor: local worker processes), ``--workers W --scheduler local`` (a Dask
LocalCluster); then the three again in reverse order, so that a drift in the machine's load
shows.  Wall seconds of the whole command; the summary tables of the runs are compared (the same
seed must give the same numbers whatever the executor).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import ROOT, provenance, write_json

SEED = 20261203
NUMERIC = ["n", "k_mode", "p_mode", "set_90", "k_mean", "max_rhat", "min_ess", "k_pmf"]


def make_groups(groups: int, rows: int, seed: int = SEED) -> pd.DataFrame:
    """The grouped data set (module docstring; pure)."""
    rng = np.random.default_rng(seed)
    parts = []
    for g in range(groups):
        k = 1 + g % 3
        lab = rng.integers(0, k, rows)
        x = rng.normal(size=(rows, 2)) + np.stack([5.0 * lab, np.zeros(rows)], axis=1)
        parts.append(pd.DataFrame({"group": f"g{g:03d}", "x0": x[:, 0], "x1": x[:, 1]}))
    return pd.concat(parts, ignore_index=True)


def run(data: Path, out: Path, args: argparse.Namespace, extra: list[str]) -> dict:
    """One fit-many command in a fresh process; its wall seconds and summary table."""
    cmd = [sys.executable, "-m", "bayesmix.cli", "fit-many", str(data), "--by", "group",
           "--engine", "collapsed", "--chains", "2", "--draws", str(args.draws), "--tune",
           str(max(1, args.draws // 5)), "--seed", "1", "--no-group-reports", "--out", str(out),
           *extra]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    res = {"command": " ".join(["bayesmix", *cmd[3:]]), "wall_s": wall, "rc": proc.returncode}
    if proc.returncode != 0:
        res["error"] = proc.stderr[-2000:]
        return res
    tab = pd.read_csv(out / "summary.csv")
    res["table"] = tab
    res["errors"] = int(tab["error"].notna().sum()) if "error" in tab else 0
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.fit_many", description=__doc__)
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "reports" / "benchmarks"))
    args = ap.parse_args(argv)
    load0 = os.getloadavg()
    configs = [
        ("in-process (1 worker)", ["--workers", "1"]),
        (f"default executor ({args.workers} worker processes)", ["--workers", str(args.workers)]),
        (f"Dask LocalCluster ({args.workers} workers)",
         ["--workers", str(args.workers), "--scheduler", "local"]),
    ]  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory(prefix="bayesmix_fit_many_") as tmp:
        data = Path(tmp) / "groups.csv"
        make_groups(args.groups, args.rows).to_csv(data, index=False)
        order = list(range(len(configs))) + list(reversed(range(len(configs))))
        for rnd, j in enumerate(order):
            name, extra = configs[j]
            r = run(data, Path(tmp) / f"out{rnd}", args, extra)
            r.update(config=name, round=1 + rnd // len(configs))
            print(f"[fit_many] {name}, round {r['round']}: {r['wall_s']:.1f} s (rc {r['rc']})",
                  file=sys.stderr, flush=True)  # fmt: skip
            rows.append(r)
    ok = [r for r in rows if r["rc"] == 0]
    ref = ok[0]["table"].sort_values("group").reset_index(drop=True) if ok else None
    cols = [c for c in NUMERIC if ref is not None and c in ref]
    for r in ok:
        tab = r.pop("table").sort_values("group").reset_index(drop=True)
        r["same_numbers"] = bool(tab[cols].equals(ref[cols]))
    rep = {
        "provenance": provenance(["benchmarks.fit_many", *(argv or sys.argv[1:])]),
        "seed": SEED,
        "settings": vars(args),
        "load_average": {"start": load0, "end": os.getloadavg()},
        "runs": rows,
    }
    out = Path(args.out)
    write_json(out / "fit_many.json", rep)
    from bayesmix.io import write_text

    write_text(out / "fit_many.md", render(rep))
    print(f"wrote {out / 'fit_many.md'}", file=sys.stderr)
    return 0


def render(rep: dict) -> str:
    st, prov = rep["settings"], rep["provenance"]
    lines = [
        "# fit-many over many small groups: default executor vs Dask LocalCluster",
        "",
        f"`{prov['command']}`, {prov['date']}; "
        f"{st['groups']} groups of {st['rows']} rows (2-D, 1-3 clusters each, seed {rep['seed']}); "
        f"collapsed Gibbs, 2 chains x ({max(1, st['draws'] // 5)} tune + {st['draws']} draws) "
        "per group, seed 1, no per-group reports.",
        "",
        f"- Load average at start {[round(v, 2) for v in rep['load_average']['start']]}, at end "
        f"{[round(v, 2) for v in rep['load_average']['end']]}.",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in prov.get('versions', {}).items())}.",
        f"- git {prov.get('git', '?')}; machine {prov.get('machine', '?')}.",
        "",
        "| executor | round | wall s | groups / s | same numbers as the first run | errors |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for r in rep["runs"]:
        if r["rc"] != 0:
            lines.append(f"| {r['config']} | {r['round']} | failed (rc {r['rc']}) | | | |")
            continue
        lines.append(
            f"| {r['config']} | {r['round']} | {r['wall_s']:.1f} | "
            f"{st['groups'] / r['wall_s']:.2f} | {'yes' if r['same_numbers'] else '**no**'} | "
            f"{r['errors']} |"
        )
    lines += ["", "Commands:", ""] + [f"- `{r['command']}`" for r in rep["runs"][:3]] + [""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
