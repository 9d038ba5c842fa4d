"""Command ``bayesmix fit-many``: one fit per group of a data set; ``register(subparsers)``."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bayesmix.cli_args import (
    add_data_options,
    add_engine_options,
    add_scheduler_options,
    engine_kwargs,
)
from bayesmix.spec import DEFAULT_MODEL

EXIT_GROUPS_FAILED = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``fit-many`` subcommand."""
    p = subparsers.add_parser(
        "fit-many",
        help="fit one mixture per group of a data set (local processes or Dask)",
        description="Fit the model to every group of DATA (split by --by) and write "
        "DIR/groups/<group>/ (the outputs of fit), DIR/summary.parquet, DIR/summary.csv "
        "(one row per group) and DIR/report.html. A re-run with the same --out skips the "
        "groups already finished. Exit code 1 when some group has no fit (see the error "
        "column), 2 for bad input.",
    )
    p.add_argument("data", help="CSV, TSV or Parquet file with a group column")
    p.add_argument("--by", required=True, metavar="COLUMN", help="the column that names groups")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="built-in spec name or path to a TOML spec, used for every group (default: "
        f"{DEFAULT_MODEL}, as for fit)",
    )
    add_data_options(p)
    add_engine_options(p)
    add_scheduler_options(
        p,
        "'local': a Dask LocalCluster on this machine; ADDRESS (tcp://host:8786): a "
        "running Dask scheduler, whose workers must see --out; default: local worker "
        "processes, nothing to start",
        "worker processes (default: the CPUs; 1 fits in this process)",
    )
    p.add_argument(
        "--no-group-reports",
        action="store_true",
        help="skip report.html / report.md in each group's directory (faster)",
    )
    p.set_defaults(func=cmd_fit_many)


def cmd_fit_many(args: argparse.Namespace) -> int:
    """fit-many: fit every group, print the table, write DIR/."""
    from bayesmix.many.run import fit_many

    frame = fit_many(
        args.data,
        args.by,
        args.model,
        out=args.out,
        columns=args.columns,
        dropna=args.dropna,
        **engine_kwargs(args),
        workers=args.workers,
        scheduler=args.scheduler,
        group_reports=not args.no_group_reports,
        progress=not args.quiet,
        command="bayesmix " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    print_table(frame)
    out = Path(args.out)
    print(f"\n  wrote {out}/summary.parquet, summary.csv, report.html, groups/")
    failed = frame[frame["error"] != ""]
    for group, error in zip(failed["group"], failed["error"], strict=True):
        print(f"  warning: group {group}: {error}", file=sys.stderr)
    return EXIT_GROUPS_FAILED if len(failed) else 0


def print_table(frame) -> None:
    """One line per group: n, K+ mode, P(mode), 90% set, diagnostics light."""
    width = max([len("group"), *(len(str(g)) for g in frame["group"])])
    print(f"\n  {'group':<{width}}  {'n':>6}  K+  P(mode)  90% set     light")
    for r in frame.to_dict("records"):
        if r["error"]:
            print(f"  {r['group']:<{width}}  {_int(r['n']):>6}  no fit: see the error column")
            continue
        print(
            f"  {r['group']:<{width}}  {_int(r['n']):>6}  {r['k_mode']:>2}  {r['p_mode']:7.3f}"
            f"  {r['set_90']:<10}  {r['light']}"
        )


def _int(v) -> str:
    try:
        return str(int(v))
    except (TypeError, ValueError):
        return "–"
