"""argparse value types shared by every bayesmix command (usage errors exit 2)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from bayesmix.engines.names import ENGINE_CHOICES
from bayesmix.spec import SAMPLERS


def _checked[T](
    convert: Callable[[str], T], ok: Callable[[T], bool], what: str, doc: str
) -> Callable[[str], T]:
    """An argparse type: convert(text), then require ok(value); one message for both errors."""

    def parse(text: str) -> T:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__doc__ = doc
    return parse


positive_int = _checked(int, lambda v: v >= 1, "a positive integer", "An integer >= 1.")
positive_float = _checked(
    float, lambda v: math.isfinite(v) and v > 0, "a positive number", "A finite number > 0."
)
seed = _checked(int, lambda v: v >= 0, "a non-negative integer", "A non-negative integer.")


def add_data_options(p: argparse.ArgumentParser) -> None:
    """--columns and --dropna (fit, compare)."""
    p.add_argument(
        "--columns",
        nargs="+",
        default=None,
        metavar="COL",
        help="numeric columns to use (default: every numeric column)",
    )
    p.add_argument(
        "--dropna", action="store_true", help="drop rows with NaN or inf instead of failing"
    )


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """--engine --sampler --chains --draws --tune --seed --quiet (fit, demo, compare)."""
    p.add_argument(
        "--engine",
        choices=ENGINE_CHOICES,
        default=None,
        help="auto (default: collapsed Gibbs for conjugate priors, else NUTS), nuts, "
        "gibbs (blocked) or collapsed (Neal's algorithm 3)",
    )
    p.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default=None,
        help="NUTS backend (default: nutpie); numpyro and blackjax run on JAX and need "
        "pip install 'bayesmix[jax]'",
    )
    p.add_argument("--chains", type=positive_int, default=None, help="number of chains (default 4)")
    p.add_argument(
        "--draws",
        type=positive_int,
        default=None,
        help="kept draws per chain (default: the spec's draws = 1000 for NUTS, "
        "gibbs_draws = 5000 for Gibbs)",
    )
    p.add_argument("--tune", type=positive_int, default=None, help="warm-up iterations per chain")
    p.add_argument("--seed", type=seed, default=None, help="random seed (same seed, same numbers)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def engine_kwargs(args: argparse.Namespace) -> dict:
    """The values of the options add_engine_options defines, as keyword arguments."""
    names = ("engine", "sampler", "chains", "draws", "tune", "seed")
    return {name: getattr(args, name) for name in names}


def add_scheduler_options(
    p: argparse.ArgumentParser, scheduler_help: str, workers_help: str
) -> None:
    """--scheduler local|ADDRESS and --workers N (fit-many, and fit's sharded engine)."""
    p.add_argument("--scheduler", default=None, metavar="local|ADDRESS", help=scheduler_help)
    p.add_argument("--workers", type=positive_int, default=None, help=workers_help)
