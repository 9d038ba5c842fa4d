"""Command line: bayesmix fit | demo (more commands register themselves below)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from bayesmix import format as F
from bayesmix.cli_args import (
    add_data_options,
    add_engine_options,
    add_scheduler_options,
    engine_kwargs,
)
from bayesmix.errors import InputError
from bayesmix.spec import DEFAULT_MODEL

EXIT_USAGE = 2
MAX_PRINTED_FEATURES = 4  # cluster means on the terminal up to this many features


def _add_sampling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="built-in spec name (mfm_auto, mfm, dp, finite, sparse_finite, "
        f"telescope, rg97, ...) or path to a TOML spec (default: {DEFAULT_MODEL})",
    )
    add_engine_options(p)


def _version() -> str:
    from bayesmix import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayesmix",
        description="Bayesian Gaussian mixtures: how many groups are in the data, and how sure are we?",
    )
    parser.add_argument("--version", action="version", version=f"bayesmix {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "fit",
        help="fit a mixture to a CSV/TSV/Parquet file",
        description="Fit a Bayesian Gaussian mixture and write report.html, report.md, "
        "summary.json, posterior.nc and assignments.csv into --out.",
    )
    p.add_argument("data", help="CSV, TSV or Parquet file")
    add_data_options(p)
    p.add_argument("--out", default=None, help="output directory (default: reports/<data name>)")
    _add_sampling_options(p)
    add_scheduler_options(
        p,
        "the sub-cluster engine over data shards: 'local' (a Dask LocalCluster here) or a "
        "running Dask scheduler (tcp://host:8786) whose workers read the Parquet file's row "
        "groups (or a directory's files) themselves; default: no Dask",
        "Dask workers of --scheduler local (default: min(shards, 2))",
    )
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser(
        "demo",
        help=f"fit the default model ({DEFAULT_MODEL}) to the shipped galaxy data",
        description="Fit the galaxy velocities (MASS::galaxies, 82 values) and write "
        "reports/galaxy/.",
    )
    p.add_argument(
        "--out", default="reports/galaxy", help="output directory (default reports/galaxy)"
    )
    _add_sampling_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "report",
        help="re-render report.html and report.md from saved results",
        description="Re-render the HTML and Markdown report of a fit directory "
        "(posterior.nc + summary.json) or a compare directory (compare.json), "
        "without refitting.",
    )
    p.add_argument("dir", help="a fit or compare output directory")
    p.set_defaults(func=cmd_report)

    from bayesmix.cli_compare import register as register_compare

    register_compare(sub)
    from bayesmix.cli_many import register as register_many

    register_many(sub)
    return parser


def _print_summary(summary: dict, total_s: float | None = None) -> None:
    from bayesmix.posterior.answer import answer_sentence
    from bayesmix.posterior.diagnostics import headline

    nc = summary["n_clusters"]
    n_warn = len(summary["diagnostics"]["warnings"])
    print()
    print(answer_sentence(summary))
    if n_warn:
        s = "" if n_warn == 1 else "s"
        print(f"  but {n_warn} warning{s} below: read them before trusting this answer")
    print()
    _print_pmf("K+", nc)
    nk = summary.get("n_components")
    if nk:
        from bayesmix.posterior.answer import components_sentence

        print(f"\n{components_sentence(summary)}\n")
        _print_pmf("K", nk)
    c = summary.get("concentration")
    if c:
        lo, hi = c["interval_90"]
        print(f"\n  {c['name']}: mean {F.estimate(c['mean'], lo, hi)} (90% interval)")
    _print_counts(summary)
    _print_clusters(summary)
    d = summary["diagnostics"]
    div = "-" if d["divergences"] is None else d["divergences"]
    label = summary.get("engine_label") or summary["engine"]
    took = "" if total_s is None else f"; {total_s:.1f} s"
    print(f"\n  engine {label}; {headline(d)}, divergences {div}{took}")
    for w in d["warnings"]:
        print(f"  warning: {w}")


def _print_pmf(name: str, nc: dict) -> None:
    """A posterior pmf (K+ or K) with the MCSE of each probability, as a bar chart."""
    print(f"  {name:<3}  P({name} | data)  MCSE")
    for k, p in nc["pmf"].items():
        if p < 5e-4:
            continue
        se = (nc.get("mcse") or {}).get(k)
        se_text = "     " if se is None else f"{se:.3f}"
        print(f"  {k:>3}  {p:6.3f}       {se_text}  {'#' * int(round(40 * p))}")


def _print_counts(summary: dict) -> None:
    """The reconciled table of counts, one line each with what it answers."""
    rows = summary.get("counts")
    if not rows:
        return
    print("\n  How many groups? Each count answers its own question:")
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        detail = f"  ({r['detail']})" if r["detail"] else ""
        print(f"    {r['name']:<{width}}  {r['value']:>6}{detail}")
        if r["meaning"]:
            print(f"    {'':<{width}}          {r['meaning']}")


def _print_clusters(summary: dict) -> None:
    """The identified clusters: weight, size and means with 90% intervals, in data units."""
    clusters = summary.get("clusters") or []
    ident = summary.get("identified")
    if not clusters or not ident:
        return
    cols = summary["data"]["columns"]
    print(
        f"\n  {ident['k']} cluster{'' if ident['k'] == 1 else 's'}, from the "
        f"{ident['draws_with_k']:,} draws "
        f"({100 * ident['share']:.0f}%) with K+ = {ident['k']}, relabelled "
        f"({ident['relabelling']}); mean [90% interval]:"
    )
    for j, c in enumerate(clusters, 1):
        wt, size = c["weight"], c["size"]
        means = ", ".join(
            f"{name} {F.estimate(m, lo, hi)}"
            for name, m, lo, hi in zip(
                cols, c["mu"]["mean"], c["mu"]["lower"], c["mu"]["upper"], strict=True
            )
        )
        if len(cols) > MAX_PRINTED_FEATURES:
            means = f"means of the {len(cols)} features: see report.md"
        weak = "  *weakly identified" if c.get("weakly_identified") else ""
        print(
            f"  {j:>3}  weight {F.estimate(wt['mean'], wt['lower'], wt['upper'])}  "
            f"size {F.count_estimate(size['mean'], size['lower'], size['upper'])}  {means}{weak}"
        )
    if any(c.get("weakly_identified") for c in clusters):
        print(
            "  * its rows change cluster from draw to draw (cohesion < 0.8): read its "
            "parameters with care"
        )
    storage = summary.get("storage") or {}
    note = (storage.get("memory") or {}).get("note")
    if note:
        print(f"  memory: {note}")
    loo = summary.get("loo") or {}
    if loo.get("subsample"):
        print(f"  {loo['subsample']}: elpd_loo {loo['elpd']:.1f} (SE {loo['se']:.1f}), scaled to N")
    mem = summary.get("membership")
    if mem:
        print(
            f"  membership: {mem['n_below']} of {mem['n']} observations have "
            f"P(in their cluster) < {mem['threshold']:g} (assignments.csv: cluster, probability)"
        )


def _run_fit(args: argparse.Namespace, data: object, out: Path, columns=None, dropna=False) -> None:
    from bayesmix.fit import fit
    from bayesmix.io import check_output_dir

    check_output_dir(out)  # before any work: one line and exit 2, nothing fitted
    command = "bayesmix " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    try:
        result = fit(
            data,
            args.model,
            **engine_kwargs(args),
            columns=columns,
            dropna=dropna,
            progress=not args.quiet,
            command=command,
            scheduler=getattr(args, "scheduler", None),
            workers=getattr(args, "workers", None),
        )
    except KeyboardInterrupt:
        kept = f"the previous outputs in {out} are unchanged" if out.exists() else ""
        raise KeyboardInterrupt(kept or "nothing was written") from None
    for note in result.data.notes:
        print(f"note: {note}", file=sys.stderr)
    result.save(out, report=True)
    _print_summary(result.summary, (result.run or {}).get("timing", {}).get("total_s"))
    print(f"\n  wrote {out}/report.html, report.md, summary.json, posterior.nc, assignments.csv")


def cmd_fit(args: argparse.Namespace) -> None:
    out = Path(args.out) if args.out else Path("reports") / Path(args.data).stem
    _run_fit(args, args.data, out, columns=args.columns, dropna=args.dropna)


def cmd_demo(args: argparse.Namespace) -> None:
    from bayesmix.data import dataset_path

    print("Fitting the galaxy velocities (MASS::galaxies, 82 galaxies, km/s)...", file=sys.stderr)
    path = dataset_path("galaxies")
    rel = os.path.relpath(path)
    _run_fit(args, path if rel.startswith("..") else rel, Path(args.out))


def cmd_report(args: argparse.Namespace) -> None:
    from bayesmix.io import StagedDir
    from bayesmix.report import render_compare_report, render_fit_report

    d = Path(args.dir)
    if (d / "fit_many.json").is_file():
        from bayesmix.many.report import rerender

        print(f"wrote {rerender(d)}")
        return
    if (d / "compare.json").is_file():
        render = render_compare_report
    elif (d / "summary.json").is_file():
        render = render_fit_report
    else:
        raise InputError(f"{d}: no summary.json (fit) or compare.json (compare) found")
    # the new report files are made beside the old ones and swapped in together
    with StagedDir(d) as stage:
        stage.seed_from_target(skip=("report.html", "report.md", "figures"))
        render(stage.path)
    print(f"wrote {d / 'report.html'} and {d / 'report.md'}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)  # None (0) or an exit code
        sys.stdout.flush()
    except InputError as exc:
        print(f"bayesmix: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        where = exc.args[0] if exc.args and exc.args[0] else "no output was written"
        print(f"bayesmix: interrupted; {where}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `bayesmix fit ... | head`: the reader left, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return int(rc or 0)


def run() -> None:
    """Console entry point: ``main()``, then exit without the interpreter's teardown.

    Every output is written and closed by then; tearing down numba, h5py, matplotlib and the
    rest of the loaded modules took 0.8 s after a galaxy fit (reports/benchmarks/latency.md).
    """
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    try:
        rc = main()
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, OSError):
            pass
    os._exit(rc)


if __name__ == "__main__":
    run()
