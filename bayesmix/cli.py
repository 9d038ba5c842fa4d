"""Command line: bayesmix fit | demo (more commands register themselves below)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from bayesmix.cli_args import add_data_options, add_engine_options, engine_kwargs
from bayesmix.errors import InputError

EXIT_USAGE = 2


def _add_sampling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default="dp",
        help="built-in spec name (dp, finite, sparse_finite, "
        "dp_fixed_alpha, ...) or path to a TOML spec (default: dp)",
    )
    add_engine_options(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayesmix",
        description="Bayesian Gaussian mixtures: how many groups are in the data, and how sure are we?",
    )
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
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser(
        "demo",
        help="fit the DP mixture to the shipped galaxy data",
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
    return parser


def _print_summary(summary: dict, out: Path) -> None:
    from bayesmix.posterior.summary import answer_sentence

    nc = summary["n_clusters"]
    print()
    print(answer_sentence(summary))
    print()
    print("  K+   P(K+ | data)")
    for k, p in nc["pmf"].items():
        bar = "#" * int(round(40 * p))
        print(f"  {k:>3}  {p:6.3f}  {bar}")
    c = summary.get("concentration")
    if c:
        lo, hi = c["interval_90"]
        print(f"\n  {c['name']}: mean {c['mean']:.3g}, 90% interval [{lo:.3g}, {hi:.3g}]")
    _print_clusters(summary)
    d = summary["diagnostics"]
    div = "-" if d["divergences"] is None else d["divergences"]
    print(
        f"  engine {summary['engine']}; max R-hat {d['max_r_hat']:.3f}, "
        f"min ESS bulk {d['min_ess_bulk']:.0f}, divergences {div}; "
        f"{summary['timing']['total_s']:.1f} s"
    )
    for w in d["warnings"]:
        print(f"  warning: {w}")
    print(f"\n  wrote {out}/report.html, report.md, summary.json, posterior.nc, assignments.csv")


def _print_clusters(summary: dict) -> None:
    """The relabelled clusters occupied in most draws: weight and means with 90% intervals."""
    real = [c for c in summary.get("clusters", []) if not c["empty_mostly"]]
    if not real:
        return
    cols = summary["data"]["columns"]
    print(f"\n  {len(real)} clusters occupied in most draws (relabelled; mean [90% interval]):")
    for j, c in enumerate(real, 1):
        wt = c["weight"]
        means = ", ".join(
            f"{name} {m:.4g} [{lo:.4g}, {hi:.4g}]"
            for name, m, lo, hi in zip(
                cols, c["mu"]["mean"], c["mu"]["lower"], c["mu"]["upper"], strict=True
            )
        )
        print(f"  {j:>3}  weight {wt['mean']:.3f} [{wt['lower']:.3f}, {wt['upper']:.3f}]  {means}")
    part = summary.get("partition")
    if part:
        print(
            f"  point partition (SALSO, VI): {part['n_clusters']} clusters; "
            f"{part['n_uncertain_below_0.8']} observations assigned with certainty < 0.8"
        )


def _run_fit(args: argparse.Namespace, data: object, out: Path, columns=None, dropna=False) -> None:
    from bayesmix.fit import fit
    from bayesmix.report import render_fit_report

    command = "bayesmix " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    result = fit(
        data,
        args.model,
        **engine_kwargs(args),
        columns=columns,
        dropna=dropna,
        progress=not args.quiet,
        command=command,
    )
    for note in result.data.notes:
        print(f"note: {note}", file=sys.stderr)
    result.save(out)
    render_fit_report(out)
    _print_summary(result.summary, out)


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
    from bayesmix.report import render_compare_report, render_fit_report

    d = Path(args.dir)
    if (d / "compare.json").is_file():
        html, md = render_compare_report(d)
    elif (d / "summary.json").is_file():
        html, md = render_fit_report(d)
    else:
        raise InputError(f"{d}: no summary.json (fit) or compare.json (compare) found")
    print(f"wrote {html} and {md}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except InputError as exc:
        print(f"bayesmix: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("bayesmix: interrupted; no output was overwritten", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
