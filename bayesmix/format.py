"""Numbers as people write them: 21,140 [19,810, 22,210], not 2.114e+04.

The digits shown follow the uncertainty: an estimate and its interval are rounded to the same
decimal place, the one that gives the interval's width three significant digits.
"""

from __future__ import annotations

import math


def decimals_for(width: float, value: float = 0.0, sig: int = 3) -> int:
    """Decimal places that give ``width`` ``sig`` significant digits (negative: round to tens,
    hundreds, ...); with no usable width, those that give ``value`` ``sig`` digits."""
    ref = abs(width) if math.isfinite(width) and width > 0 else abs(value)
    if not math.isfinite(ref) or ref == 0:
        return 0
    return sig - 1 - math.floor(math.log10(ref))


def number(x: float | None, decimals: int) -> str:
    """``x`` rounded to ``decimals`` places (negative: to 10^-decimals), thousands separated."""
    if x is None or not math.isfinite(float(x)):
        return "–"
    v = float(x)
    if decimals < 0:
        step = 10 ** (-decimals)
        v = round(v / step) * step
        decimals = 0
    text = f"{v:,.{decimals}f}"
    return "0" if text.strip("-0.,") == "" else text


def estimate(mean: float | None, lower: float | None, upper: float | None) -> str:
    """'mean [lower, upper]' with one rounding for all three, chosen from the interval width."""
    if mean is None or lower is None or upper is None:
        return number(mean, 3) if mean is not None else "–"
    dec = decimals_for(float(upper) - float(lower), float(mean))
    return f"{number(mean, dec)} [{number(lower, dec)}, {number(upper, dec)}]"


def count_estimate(mean: float | None, lower: float | None, upper: float | None) -> str:
    """A count's 'mean [lower, upper]': the mean to one decimal, the interval in whole units."""
    if mean is None or lower is None or upper is None:
        return "–"
    return f"{number(mean, 1)} [{number(lower, 0)}, {number(upper, 0)}]"


def significant(x: float | None, sig: int = 3) -> str:
    """``x`` with ``sig`` significant digits, in plain (not scientific) notation."""
    if x is None or not math.isfinite(float(x)):
        return "–"
    return number(x, decimals_for(0.0, float(x), sig))


def integer_set(values: list[int]) -> str:
    """{1, 2, 3} for short sets, {4..20} for longer runs of consecutive integers."""
    v = sorted(values)
    if len(v) > 4 and v == list(range(v[0], v[-1] + 1)):
        return f"{{{v[0]}..{v[-1]}}}"
    return "{" + ", ".join(map(str, v)) + "}"
