"""Commands ``bayesmix prior-k`` and ``bayesmix compare``; ``register(subparsers)`` adds both.

Heavy libraries (PyMC, ArviZ, matplotlib) are imported only inside the commands, so
``prior-k`` answers in well under a second plus Python start-up.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from bayesmix import format as F
from bayesmix.cli_args import (
    add_data_options,
    add_engine_options,
    engine_kwargs,
    positive_float,
    positive_int,
)
from bayesmix.errors import InputError

TABLE_TAIL = 1e-6  # prior-k table rows below this at either end are omitted


# --------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``prior-k`` and ``compare`` subcommands to a bayesmix subparsers object."""
    _register_prior_k(subparsers)
    _register_compare(subparsers)


def _register_prior_k(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prior-k",
        help="exact prior of the number of occupied clusters K+ (or calibrate it)",
        description="Exact prior pmf of K+, the number of occupied clusters among N "
        "observations, for a DP or finite mixture prior; or, with --expected-k, the "
        "concentration (or its Gamma prior) that gives a target prior of K+.",
        epilog="Examples: bayesmix prior-k --n 82 --alpha 1; bayesmix prior-k --n 82 "
        "--finite 10 --gamma 0.01 --json; bayesmix prior-k --n 82 --expected-k 4 "
        "--interval 2 8",
    )
    p.add_argument(
        "--n", type=positive_int, required=True, metavar="N", help="number of observations"
    )
    src = p.add_argument_group("model (exactly one source)")
    src.add_argument(
        "--model",
        default=None,
        metavar="NAME|PATH",
        help="built-in spec name or path to a TOML spec",
    )
    src.add_argument(
        "--alpha",
        type=positive_float,
        default=None,
        metavar="A",
        help="DP with fixed concentration alpha",
    )
    src.add_argument(
        "--alpha-gamma",
        type=positive_float,
        nargs=2,
        default=None,
        metavar=("SHAPE", "RATE"),
        help="DP with alpha ~ Gamma(shape, rate)",
    )
    src.add_argument(
        "--finite",
        type=positive_int,
        default=None,
        metavar="K",
        help="finite mixture with K components (with --gamma or --gamma-prior)",
    )
    src.add_argument(
        "--gamma",
        type=positive_float,
        default=None,
        metavar="G",
        help="Dirichlet concentration of the finite mixture",
    )
    src.add_argument(
        "--gamma-prior",
        type=positive_float,
        nargs=2,
        default=None,
        metavar=("SHAPE", "RATE"),
        help="finite mixture, gamma ~ Gamma(shape, rate)",
    )
    cal = p.add_argument_group("calibration")
    cal.add_argument(
        "--expected-k",
        type=float,
        default=None,
        metavar="E",
        help="find the fixed concentration with prior E[K+] = E (DP, or finite with "
        "--finite K or --model)",
    )
    cal.add_argument(
        "--interval",
        type=float,
        nargs=2,
        default=None,
        metavar=("LO", "HI"),
        help="with --expected-k: find a Gamma(shape, rate) prior on the "
        "concentration with E[K+] = E and 90%% prior interval [LO, HI] for K+ (at least "
        "90%% of the prior in [LO, HI]); an infeasible target is reported as such "
        "(feasible: false, a warning line), with the closest prior found",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="bar chart of the pmf (PNG)")
    p.set_defaults(func=cmd_prior_k)


def _register_compare(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare",
        help="fit several priors to the same data and compare them",
        description="Fit each model spec to the same data (in parallel processes) and compare "
        "the prior and posterior of K+, the concentration, PSIS-LOO and prior sensitivity. "
        "Writes compare.json, compare.md, prior_vs_posterior_k.png, concentration.png and "
        "fits/<model>/ into --out.",
    )
    p.add_argument("data", help="CSV, TSV or Parquet file")
    p.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="NAME|PATH",
        help="spec name, TOML path or a folder of specs (e.g. compare_kernel: four kernel "
        "priors under one MFM); repeat for each model (default: the specs in "
        "models/compare_default)",
    )
    p.add_argument("--out", default=None, help="output directory (default: reports/<data>_compare)")
    add_data_options(p)
    add_engine_options(p)
    p.add_argument(
        "--jobs",
        type=positive_int,
        default=None,
        help="models fitted at once (default: min(number of models, CPUs))",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="local|ADDRESS",
        help="'local': a Dask LocalCluster of --jobs workers; ADDRESS: a running Dask "
        "scheduler, whose workers must see --out (default: local worker processes)",
    )
    p.set_defaults(func=cmd_compare)


# --------------------------------------------------------------------------
# prior-k
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class MixingChoice:
    """What the command line asked for: the mixing, K, and the concentration (if given)."""

    mixing: str  # "dp" | "finite" | "pitman_yor" | "mfm"
    K: int | None = None
    fixed: float | None = None
    shape: float | None = None
    rate: float | None = None
    spec: object | None = None  # the ModelSpec, for mixings other than dp / finite


def _sources(args: argparse.Namespace) -> list[str]:
    given = [
        ("--model", args.model),
        ("--alpha", args.alpha),
        ("--alpha-gamma", args.alpha_gamma),
        ("--finite", args.finite),
    ]
    return [name for name, value in given if value is not None]


def resolve_mixing(args: argparse.Namespace) -> MixingChoice:
    """The one model source of prior-k (InputError, one line, otherwise)."""
    sources = _sources(args)
    calibrating = args.expected_k is not None
    conc_opts = [
        n
        for n, v in (("--gamma", args.gamma), ("--gamma-prior", args.gamma_prior))
        if v is not None
    ]
    if args.interval is not None and not calibrating:
        raise InputError("--interval needs --expected-k")
    if len(sources) > 1:
        raise InputError(f"give exactly one model source, got {' and '.join(sources)}")
    if conc_opts and args.finite is None:
        raise InputError(f"{conc_opts[0]} needs --finite K")
    if calibrating:
        return _calibration_target(args, sources, conc_opts)
    if not sources:
        raise InputError(
            "give a model: --model NAME|PATH, --alpha A, --alpha-gamma SHAPE RATE, "
            "or --finite K with --gamma G or --gamma-prior SHAPE RATE"
        )
    if args.model is not None:
        return _from_spec(args.model, with_concentration=True)
    if args.alpha is not None:
        return MixingChoice("dp", fixed=args.alpha)
    if args.alpha_gamma is not None:
        return MixingChoice("dp", shape=args.alpha_gamma[0], rate=args.alpha_gamma[1])
    if len(conc_opts) != 1:
        raise InputError("--finite K needs exactly one of --gamma G or --gamma-prior SHAPE RATE")
    if args.gamma is not None:
        return MixingChoice("finite", K=args.finite, fixed=args.gamma)
    return MixingChoice(
        "finite", K=args.finite, shape=args.gamma_prior[0], rate=args.gamma_prior[1]
    )


def _calibration_target(
    args: argparse.Namespace, sources: list[str], conc: list[str]
) -> MixingChoice:
    """--expected-k: the mixing to calibrate (DP by default, or --finite K, or a spec's)."""
    bad = [s for s in sources if s in ("--alpha", "--alpha-gamma")] + conc
    if bad:
        raise InputError(
            f"--expected-k calibrates the concentration: drop {bad[0]} (use "
            "--finite K or --model for a finite mixture, nothing for a DP)"
        )
    if args.model is not None:
        return _from_spec(args.model, with_concentration=False)
    if args.finite is not None:
        return MixingChoice("finite", K=args.finite)
    return MixingChoice("dp")


def _from_spec(model: str, with_concentration: bool) -> MixingChoice:
    from bayesmix.spec import load_spec

    spec = load_spec(model)
    m = spec.mixing
    if m.type in ("pitman_yor", "mfm"):
        return MixingChoice(m.type, spec=spec)
    K = m.n_components if m.type == "finite" else None
    if not with_concentration:
        return MixingChoice(m.type, K=K)
    prior = m.concentration_prior
    if m.concentration is not None:
        return MixingChoice(m.type, K=K, fixed=m.concentration)
    return MixingChoice(m.type, K=K, shape=prior.shape, rate=prior.rate)


def prior_for(n: int, choice: MixingChoice):
    """The exact prior of K+ (bayesmix.priors.PriorK) for the choice."""
    from bayesmix.priors import prior_k, prior_k_from_spec

    if choice.spec is not None:
        return prior_k_from_spec(n, choice.spec)
    conc = {"alpha" if choice.mixing == "dp" else "gamma": choice.fixed}
    return prior_k(n, choice.mixing, K=choice.K, shape=choice.shape, rate=choice.rate, **conc)


def _calibrate_spec(
    n: int, choice: MixingChoice, expected_k: float, interval: list[float] | None
) -> tuple[MixingChoice, dict]:
    """Pitman-Yor: the strength theta giving E[K+] = expected_k at the spec's fixed discount
    (as BNPmix's PYcalibrate); other mixings of a spec are not calibrated here."""
    import dataclasses

    from bayesmix.partition_priors import calibrate_py_strength, py_expected_kplus

    m = choice.spec.mixing
    if m.type != "pitman_yor" or interval is not None or m.discount is None:
        raise InputError(
            "--expected-k with --model calibrates a Pitman-Yor strength at a fixed discount "
            "(no --interval); for a DP or finite mixture use --expected-k without --model or "
            "with --finite K"
        )
    theta = calibrate_py_strength(n, expected_k, m.discount)
    mean = py_expected_kplus(n, theta, m.discount)
    mix = dataclasses.replace(m, concentration=theta, concentration_prior=None)
    spec = dataclasses.replace(choice.spec, mixing=mix)
    return MixingChoice(m.type, spec=spec), {
        "target": {"expected_k": expected_k, "interval": None, "level": None, "mixing": m.type},
        "achieved": {"expected_k": float(mean)},
        "feasible": True,
        "message": f"Target met: strength = {theta:.6g} gives E[K+] = {mean:.6g} for n = {n} "
        f"with discount = {m.discount:g}.",
        "strength": theta,
        "toml": f"strength = {theta:.6g}",
    }


def calibrate(
    n: int, choice: MixingChoice, expected_k: float, interval: list[float] | None
) -> tuple[MixingChoice, dict]:
    """Solve for the concentration: fixed (E[K+] = E) or Gamma(shape, rate) (E and interval).

    Returns (MixingChoice with the result, calibration dict for the output): target,
    achieved, feasible, message (see ``bayesmix.priors.calibrate_alpha_gamma_prior``), the
    value or Gamma prior found and its TOML line. A fixed concentration reaches any E in
    range exactly (out of range is an input error), so it is always feasible.
    """
    from bayesmix.priors import (
        calibrate_alpha,
        calibrate_alpha_gamma_prior,
        calibrate_gamma_fixed,
        expected_k_dp,
        expected_k_finite,
    )

    if choice.spec is not None:
        return _calibrate_spec(n, choice, expected_k, interval)
    name = "alpha" if choice.mixing == "dp" else "gamma"
    where = {"mixing": choice.mixing, "K": choice.K}
    if interval is None:
        if choice.mixing == "dp":
            value = calibrate_alpha(n, expected_k)
            mean = expected_k_dp(n, value)
        else:
            value = calibrate_gamma_fixed(n, choice.K, expected_k)
            mean = expected_k_finite(n, choice.K, value)
        result = MixingChoice(choice.mixing, K=choice.K, fixed=value)
        return result, {
            "target": {"expected_k": expected_k, "interval": None, "level": None} | where,
            "achieved": {"expected_k": float(mean)},
            "feasible": True,
            "message": f"Target met: {name} = {value:.6g} gives E[K+] = {mean:.6g} for n = {n}.",
            name: value,
            "toml": f"{name} = {value:.6g}",
        }
    lo, hi = interval
    cal = calibrate_alpha_gamma_prior(
        n, expected_k, (lo, hi), level=0.9, mixing=choice.mixing, K=choice.K
    )
    result = MixingChoice(choice.mixing, K=choice.K, shape=cal.shape, rate=cal.rate)
    return result, {
        "target": cal.target | where,
        "achieved": cal.achieved,
        "feasible": cal.feasible,
        "message": cal.message,
        f"{name}_prior": {"shape": cal.shape, "rate": cal.rate},
        "toml": f"{name}_prior = {{ shape = {cal.shape:.6g}, rate = {cal.rate:.6g} }}",
    }


def prior_k_payload(prior, calibration: dict | None = None) -> dict:
    """JSON of prior-k: pmf, mean, mode first, then extras (90% set, interval, description)."""
    d = prior.to_dict()
    out = {"pmf": d["pmf"], "mean": d["mean"], "mode": d["mode"]}
    out |= {
        "n": prior.n,
        "var": d["var"],
        "credible_set_90": d["credible_set_90"],
        "interval_90": [prior.quantile(0.05), prior.quantile(0.95)],
        "description": d["description"],
        "pmf_tail_omitted_below": 1e-12,
        "truncated": d["truncated"],
    }
    if "pmf_components" in d:  # MFM: the prior of K, the number of components
        out["pmf_components"] = d["pmf_components"]
    if calibration is not None:
        out["calibration"] = calibration
    return out


def prior_k_table(prior, kmax: int | None = None, tail: float = TABLE_TAIL) -> list[str]:
    """Lines of the pmf table (k, P(K+ = k), P(K+ <= k)); rows < tail at either end omitted.

    ``kmax`` is the largest possible k (N for a DP, min(K, N) for a finite mixture).
    """
    import numpy as np

    pmf = np.asarray(prior.pmf)
    cdf = np.cumsum(pmf)
    big = np.nonzero(pmf >= tail)[0]
    first, last = (int(big[0]), int(big[-1])) if len(big) else (0, len(pmf) - 1)
    lines = [
        f"Prior of K+ (occupied clusters): {prior.description}",
        "",
        "     k    P(K+ = k)   P(K+ <= k)",
    ]
    lines += [f"  {k + 1:>4}   {pmf[k]:.6f}     {cdf[k]:.6f}" for k in range(first, last + 1)]
    omitted = []
    if first > 0:
        omitted.append(f"k = 1..{first} (mass {cdf[first - 1]:.1e})")
    kmax = kmax or prior.n
    if last + 1 < kmax:
        rest = max(0.0, 1.0 - float(cdf[last]))
        omitted.append(f"k = {last + 2}..{kmax} (mass {rest:.1e})")
    if omitted:
        lines.append(f"  (rows with P < {tail:g} omitted: {'; '.join(omitted)})")
    cs = F.integer_set(prior.credible_set(0.9))
    lines += [
        "",
        f"mean {prior.mean:.4g}, mode {prior.mode}, 90% credible set {cs}, "
        f"5%-95% quantiles [{prior.quantile(0.05)}, {prior.quantile(0.95)}]",
    ]
    return lines


def _calibration_lines(cal: dict, prior) -> list[str]:
    """The calibration block of the text output; an infeasible target starts with a warning."""
    t, got = cal["target"], cal["achieved"]
    where = {"dp": "DP", "pitman_yor": "Pitman-Yor"}.get(t["mixing"]) or f"finite, K = {t['K']}"
    want = f"E[K+] = {t['expected_k']:g}"
    achieved = f"achieved: E[K+] = {prior.mean:.4g}"
    if t["interval"] is not None:
        lo, hi = t["interval"]
        level = 100 * t["level"]
        want += f", {level:g}% interval [{lo:g}, {hi:g}]"
        achieved += (
            f", P({lo:g} <= K+ <= {hi:g}) = {100 * got['mass_in_interval']:.1f}%, "
            f"{(100 - level) / 2:g}%-{(100 + level) / 2:g}% quantiles "
            f"[{got['interval'][0]}, {got['interval'][1]}]"
        )
    else:
        achieved += f", 5%-95% quantiles [{prior.quantile(0.05)}, {prior.quantile(0.95)}]"
    head = "Calibrated" if cal["feasible"] else "Closest found"
    lines = [] if cal["feasible"] else [f"warning: target not feasible. {cal['message']}"]
    return lines + [
        f"{head} ({where}, N = {prior.n}) for {want}:",
        f"  {cal['toml']}",
        f"  {achieved}",
        "",
    ]


def cmd_prior_k(args: argparse.Namespace) -> None:
    """prior-k: print (or calibrate) the exact prior of K+."""
    choice = resolve_mixing(args)
    calibration = None
    if args.expected_k is not None:
        choice, calibration = calibrate(args.n, choice, args.expected_k, args.interval)
    prior = prior_for(args.n, choice)
    if args.json:
        print(json.dumps(prior_k_payload(prior, calibration)))
        if calibration is not None and not calibration["feasible"]:
            print(f"warning: target not feasible. {calibration['message']}", file=sys.stderr)
    else:
        lines = _calibration_lines(calibration, prior) if calibration else []
        kmax = args.n if choice.K is None else min(choice.K, args.n)
        print("\n".join(lines + prior_k_table(prior, kmax)))
    if args.plot:
        from bayesmix.plots_priors import prior_k_figure, save_figure

        path = save_figure(
            prior_k_figure(prior.to_dict()["pmf"], prior.description, prior.mean), args.plot
        )
        print(f"wrote {path}", file=sys.stderr)


# --------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------


def cmd_compare(args: argparse.Namespace) -> None:
    """compare: fit every spec, print the tables and the reading, write DIR/."""
    from bayesmix.compare import CompareOptions, markdown_tables, run_compare

    out = Path(args.out) if args.out else Path("reports") / f"{Path(args.data).stem}_compare"
    options = CompareOptions(
        **engine_kwargs(args),
        jobs=args.jobs,
        scheduler=args.scheduler,
        progress=not args.quiet,
        command="bayesmix " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    from bayesmix.io import StagedDir, check_output_dir
    from bayesmix.report import render_compare_report

    check_output_dir(out)  # before any fitting
    # all or nothing: the fits, tables, figures and report swap into place together
    with StagedDir(out) as stage:
        result = run_compare(
            args.data, args.model, stage.path, options, columns=args.columns, dropna=args.dropna
        )
        render_compare_report(stage.path)
    for note in result["data"].get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    print()
    print(markdown_tables(result))
    print()
    print(result["reading"])
    for w in result["warnings"]:
        print(f"warning: {w}")
    print(
        f"\nwrote {out}/report.html, report.md, compare.json, compare.md, "
        f"{', '.join(result['figures'].values())}, fits/"
    )
