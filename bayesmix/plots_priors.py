"""Figures for priors of K+ and prior-versus-posterior comparisons (pure matplotlib, Agg).

Every function builds a ``matplotlib.figure.Figure`` directly (no pyplot state, no display)
and returns it; :func:`save_figure` writes a PNG atomically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy import stats

from bayesmix.io import atomic_write

PRIOR_COLOR = "#4c72b0"
POSTERIOR_COLOR = "#dd8452"
DPI = 110


def save_figure(fig: Figure, path: str | Path, dpi: int = DPI) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically (temporary file, then rename)."""
    return atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=dpi, bbox_inches="tight"))


def _pmf_arrays(pmf: Mapping[str | int, float]) -> tuple[np.ndarray, np.ndarray]:
    """{k: p} -> (k, p) arrays sorted by k."""
    items = sorted((int(k), float(p)) for k, p in pmf.items())
    if not items:
        return np.zeros(0, dtype=int), np.zeros(0)
    k, p = zip(*items, strict=True)
    return np.asarray(k), np.asarray(p)


def _k_limit(prior: Mapping, posterior: Mapping | None, mass: float = 0.995) -> int:
    """Largest k to show: the prior's `mass` quantile or the largest posterior k, at least 3."""
    k, p = _pmf_arrays(prior)
    top = int(k[min(np.searchsorted(np.cumsum(p), mass), len(k) - 1)]) if len(k) else 1
    if posterior:
        top = max(top, int(max(int(j) for j in posterior)))
    return max(top, 3)


def prior_k_figure(
    pmf: Mapping[str | int, float], title: str = "", mean: float | None = None
) -> Figure:
    """Bar chart of a prior pmf P(K+ = k); the mean as a dashed line when given."""
    k, p = _pmf_arrays(pmf)
    keep = k <= _k_limit(pmf, None)
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    ax.bar(k[keep], p[keep], color=PRIOR_COLOR, width=0.8)
    if mean is not None:
        ax.axvline(mean, color="0.3", ls="--", lw=1, label=f"mean {mean:.2f}")
        ax.legend(frameon=False)
    ax.set_xlabel("K+ (occupied clusters)")
    ax.set_ylabel("prior probability")
    ax.set_title(title or "Prior of K+")
    _integer_ticks(ax, int(k[keep].max()) if keep.any() else 3)
    return fig


def _integer_ticks(ax, kmax: int) -> None:
    step = max(1, math.ceil(kmax / 15))
    ax.set_xticks(np.arange(1, kmax + 1, step))
    ax.set_xlim(0.4, kmax + 0.6)


def _grid(
    n: int, ncols_max: int = 2, size: tuple[float, float] = (4.6, 3.0)
) -> tuple[Figure, list]:
    ncols = min(n, ncols_max)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def prior_vs_posterior_k_figure(models: Sequence[Mapping]) -> Figure:
    """One panel per model: prior pmf of K+ as outlined bars, posterior pmf as filled bars.

    Each model is a mapping with ``name``, ``prior_pmf`` and ``posterior_pmf`` ({k: p}).
    """
    fig, axes = _grid(len(models))
    kmax = max(_k_limit(m["prior_pmf"], m["posterior_pmf"]) for m in models)
    for ax, m in zip(axes, models, strict=True):
        kp, pp = _pmf_arrays(m["posterior_pmf"])
        kq, pq = _pmf_arrays(m["prior_pmf"])
        keep = kq <= kmax
        ax.bar(kp, pp, width=0.8, color=POSTERIOR_COLOR, alpha=0.85, label="posterior")
        ax.bar(
            kq[keep], pq[keep], width=0.8, fill=False, edgecolor=PRIOR_COLOR, lw=1.4, label="prior"
        )
        ax.set_title(m["name"], fontsize=10)
        ax.set_xlabel("K+")
        ax.set_ylabel("probability")
        _integer_ticks(ax, kmax)
    axes[0].legend(frameon=False, fontsize=8)
    fig.suptitle("Prior (outline) versus posterior (filled) of the number of occupied clusters")
    return fig


def concentration_figure(models: Sequence[Mapping]) -> Figure:
    """Posterior draws of each random concentration (histogram, density scale) with its
    Gamma(shape, rate) prior density b^a x^(a-1) e^(-bx) / Gamma(a) overlaid, one panel per
    model; fixed concentrations are listed under the figure (one text panel if all are fixed).

    Each model is a mapping with ``name``, ``concentration`` ("alpha"/"gamma"), and either
    ``fixed`` (a number) or ``draws`` (1-D array) with ``prior_shape`` and ``prior_rate``.
    """
    random = [m for m in models if m.get("fixed") is None]
    fixed = [m for m in models if m.get("fixed") is not None]
    fixed_text = "; ".join(f"{m['name']}: {_symbol(m)} = {float(m['fixed']):g}" for m in fixed)
    if not random:
        fig = Figure(figsize=(6.4, 2.0))
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(
            0.5,
            0.5,
            "All concentrations are fixed:\n" + fixed_text.replace("; ", "\n"),
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        return fig
    fig, axes = _grid(len(random))
    for ax, m in zip(axes, random, strict=True):
        ax.set_title(m["name"], fontsize=10)
        ax.set_xlabel(f"{m['concentration']} ({_symbol(m)})")
        _random_panel(
            ax, np.asarray(m["draws"], dtype=float).ravel(), m["prior_shape"], m["prior_rate"]
        )
    axes[0].legend(frameon=False, fontsize=8)
    fig.suptitle("Concentration: posterior draws (bars) and prior density (line)")
    if fixed:
        fig.supxlabel("Fixed: " + fixed_text, fontsize=9)
    return fig


def _symbol(m: Mapping) -> str:
    return "α" if m["concentration"] == "alpha" else "γ"


def _random_panel(ax, draws: np.ndarray, shape: float, rate: float) -> None:
    prior = stats.gamma(a=shape, scale=1.0 / rate)
    hi = max(float(np.quantile(draws, 0.995)), float(prior.ppf(0.95)))
    ax.hist(
        draws[draws <= hi],
        bins=40,
        range=(0, hi),
        density=True,
        color=POSTERIOR_COLOR,
        alpha=0.8,
        label="posterior",
    )
    grid = np.linspace(hi / 400, hi, 400)
    ax.plot(
        grid, prior.pdf(grid), color=PRIOR_COLOR, lw=1.6, label=f"prior Gamma({shape:g}, {rate:g})"
    )
    ax.set_xlim(0, hi)
    ax.set_ylabel("density")
