"""Report figures: pure functions from numbers to ``matplotlib.figure.Figure`` (no pyplot, no
I/O; rendered by the Agg canvas when saved). Sizes are small; nothing here is random."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from bayesmix.report.compute import DensityBand, chain_ranks, ellipse_path, pmf_arrays

PRIOR = "#4c72b0"
POSTERIOR = "#dd8452"
INK = "#333333"
PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
]
CHAIN_COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]


def colour(k: int | None) -> str:
    """Colour of point-partition cluster k (grey beyond the palette or for None)."""
    if k is None or k < 0 or k >= len(PALETTE):
        return "#9a9a9a"
    return PALETTE[k]


def text(s: object) -> str:
    """User text safe for matplotlib (no mathtext from '$')."""
    return str(s).replace("$", r"\$")


def _style(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)


def _integer_ticks(ax, kmax: int) -> None:
    step = max(1, math.ceil(kmax / 15))
    ax.set_xticks(np.arange(1, kmax + 1, step))
    ax.set_xlim(0.4, kmax + 0.6)


# --------------------------------------------------------------------------- 1. the answer


def k_posterior_figure(post_pmf: Mapping, prior_pmf: Mapping | None, kmax: int) -> Figure:
    """Posterior pmf of K+ (filled bars) with the prior pmf (outlined bars) for k <= kmax."""
    fig = Figure(figsize=(5.6, 3.0), layout="constrained")
    ax = fig.add_subplot()
    k, p = pmf_arrays(post_pmf)
    keep = k <= kmax
    ax.bar(k[keep], p[keep], width=0.75, color=POSTERIOR, label="posterior")
    mode = int(k[np.argmax(p)]) if len(k) else None
    if prior_pmf:
        kq, pq = pmf_arrays(prior_pmf)
        kq_keep = kq <= kmax
        ax.bar(
            kq[kq_keep],
            pq[kq_keep],
            width=0.75,
            fill=False,
            edgecolor=PRIOR,
            lw=1.4,
            label="prior",
        )
    if mode is not None:
        ax.annotate(
            f"{100 * p.max():.0f}%",
            (mode, p.max()),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 2),
            textcoords="offset points",
        )
    ax.set_xlabel("K+ (number of occupied clusters)", fontsize=9)
    ax.set_ylabel("probability", fontsize=9)
    _integer_ticks(ax, kmax)
    ax.legend(frameon=False, fontsize=8)
    _style(ax)
    return fig


# --------------------------------------------------------------------------- 2. data and fit


def density_1d_figure(
    x: np.ndarray,
    band: DensityBand,
    components: Sequence[Mapping],
    column: str,
    partition: np.ndarray | None = None,
) -> Figure:
    """Histogram of 1-D data, posterior mean mixture density with its band, and the weighted
    component densities w_k N(mu_k, sd_k^2) of the occupied relabelled clusters."""
    fig = Figure(figsize=(7.0, 3.4), layout="constrained")
    ax = fig.add_subplot()
    bins = min(60, max(10, int(np.sqrt(len(x)) * 2)))
    ax.hist(x, bins=bins, density=True, color="#cfd8e3", edgecolor="white", lw=0.5, label="data")
    ax.fill_between(
        band.grid, band.lower, band.upper, color=POSTERIOR, alpha=0.3, lw=0, label="90% band"
    )
    ax.plot(band.grid, band.mean, color="#a0461a", lw=1.8, label="posterior mean density")
    for comp in components:
        sd = comp["sd"]
        dens = comp["w"] * np.exp(-0.5 * ((band.grid - comp["mu"]) / sd) ** 2)
        dens /= sd * math.sqrt(2 * math.pi)
        ax.plot(
            band.grid,
            dens,
            color=colour(comp.get("colour")),
            lw=1.2,
            ls="--",
            label=f"component {comp['label']}",
        )
    lo = ax.get_ylim()[1] * -0.04
    rug_colours = [colour(int(c)) for c in partition] if partition is not None else [INK] * len(x)
    ax.scatter(x, np.full(len(x), lo), marker="|", s=40, c=rug_colours, lw=0.8)
    ax.set_xlabel(text(column), fontsize=9)
    ax.set_ylabel("density", fontsize=9)
    ax.legend(frameon=False, fontsize=7, ncol=2)
    _style(ax)
    return fig


def _ellipses(ax, ellipses: Sequence[Mapping], a: int, b: int) -> None:
    for e in ellipses:
        mu = np.asarray(e["mu"])[[a, b]]
        cov = np.asarray(e["cov"])[np.ix_([a, b], [a, b])]
        c = colour(e.get("colour"))
        for radius, ls in ((1.0, "-"), (2.0, "--")):
            pts = ellipse_path(mu, cov, radius)
            ax.plot(pts[:, 0], pts[:, 1], color=c, lw=1.3, ls=ls)
        ax.plot(*mu, marker="+", color="black", ms=7, mew=1.2)
        ax.annotate(
            str(e["label"]),
            mu,
            xytext=(4, 4),
            textcoords="offset points",
            fontsize=8,
            weight="bold",
        )


def _points(ax, x: np.ndarray, partition: np.ndarray | None, a: int, b: int, s: float) -> None:
    cols = [colour(int(c)) for c in partition] if partition is not None else "#555555"
    ax.scatter(x[:, a], x[:, b], c=cols, s=s, alpha=0.7, lw=0)


def _legend(fig, partition: np.ndarray | None) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=INK, lw=1.3, ls="-", label="1σ"),
        Line2D([], [], color=INK, lw=1.3, ls="--", label="2σ"),
    ]
    if partition is not None:
        for k in range(min(int(partition.max()) + 1, len(PALETTE))):
            handles.append(
                Line2D([], [], marker="o", ls="", color=colour(k), label=f"cluster {k + 1}")
            )
    fig.legend(handles=handles, loc="outside right upper", frameon=False, fontsize=7)


def scatter_2d_figure(
    x: np.ndarray,
    columns: Sequence[str],
    partition: np.ndarray | None,
    ellipses: Sequence[Mapping],
) -> Figure:
    """Scatter coloured by the point partition with 1σ (solid) and 2σ (dashed) ellipses of
    each occupied relabelled cluster (posterior mean mu and covariance)."""
    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.add_subplot()
    s = 14 if len(x) <= 2000 else 4
    _points(ax, x, partition, 0, 1, s)
    _ellipses(ax, ellipses, 0, 1)
    ax.set_xlabel(text(columns[0]), fontsize=9)
    ax.set_ylabel(text(columns[1]), fontsize=9)
    _style(ax)
    _legend(fig, partition)
    return fig


def pairs_figure(
    x: np.ndarray,
    columns: Sequence[str],
    partition: np.ndarray | None,
    ellipses: Sequence[Mapping],
) -> Figure:
    """Pairs plot: histograms on the diagonal, scatter with 1σ / 2σ ellipses below it."""
    d = x.shape[1]
    size = min(1.9, 9.0 / d)
    fig = Figure(figsize=(size * d + 1.2, size * d), layout="constrained")
    axes = fig.subplots(d, d, squeeze=False)
    s = 6 if len(x) <= 2000 else 2
    for i in range(d):
        for j in range(d):
            ax = axes[i, j]
            _style(ax)
            ax.tick_params(labelsize=6)
            if j > i:
                ax.set_visible(False)
                continue
            if i == j and partition is not None:
                groups = [x[partition == k, i] for k in range(int(partition.max()) + 1)]
                ax.hist(
                    groups, bins=30, stacked=True, color=[colour(k) for k in range(len(groups))]
                )
                ax.set_yticks([])
            elif i == j:
                ax.hist(x[:, i], bins=30, color="#bbbbbb")
                ax.set_yticks([])
            else:
                _points(ax, x, partition, j, i, s)
                _ellipses(ax, ellipses, j, i)
            if i == d - 1:
                ax.set_xlabel(text(columns[j]), fontsize=7)
            if j == 0 and i > 0:
                ax.set_ylabel(text(columns[i]), fontsize=7)
    _legend(fig, partition)
    return fig


# --------------------------------------------------------------------------- 3. clusters


def forest_figure(rows: Sequence[Mapping], xlabel: str) -> Figure:
    """Forest plot: one line per row (label, mean, lower, upper), first row on top."""
    n = len(rows)
    fig = Figure(figsize=(5.6, 0.9 + 0.28 * n), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(n)[::-1]
    for yy, r in zip(y, rows, strict=True):
        ax.plot([r["lower"], r["upper"]], [yy, yy], color=INK, lw=1.6)
        ax.plot(r["mean"], yy, "o", color=POSTERIOR, ms=5, zorder=3)
    ax.set_yticks(y)
    ax.set_yticklabels([text(r["label"]) for r in rows], fontsize=8)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_xlim(left=0)
    ax.grid(axis="x", color="#eeeeee")
    _style(ax)
    return fig


# --------------------------------------------------------------------------- 4. membership


def certainty_figure(probability: np.ndarray, threshold: float = 0.9) -> Figure:
    """Histogram of each observation's probability of being in its most probable cluster."""
    fig = Figure(figsize=(4.6, 2.8), layout="constrained")
    ax = fig.add_subplot()
    ax.hist(probability, bins=np.linspace(0, 1, 21), color=PRIOR, edgecolor="white")
    ax.axvline(threshold, color="#999999", lw=0.8, ls=":")
    ax.set_xlim(0, 1)
    ax.set_xlabel("P(in its most probable cluster | data)", fontsize=9)
    ax.set_ylabel("observations", fontsize=9)
    _style(ax)
    return fig


def psm_figure(p: np.ndarray, partition: np.ndarray | None) -> Figure:
    """Co-clustering heatmap (already ordered); lines separate point-partition clusters."""
    fig = Figure(figsize=(4.8, 4.2), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(p, vmin=0, vmax=1, cmap="Greys", interpolation="nearest", aspect="equal")
    if partition is not None:
        sizes = np.bincount(partition)
        edges = np.cumsum(sizes)[:-1] - 0.5
        start = 0
        for k, size in enumerate(sizes):
            ax.add_patch(_rect(start - 0.5, size, colour(k)))
            start += size
        for e in edges:
            ax.axhline(e, color="#c44e52", lw=0.6)
            ax.axvline(e, color="#c44e52", lw=0.6)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("observations (ordered by cluster)", fontsize=8)
    cb = fig.colorbar(im, ax=ax, shrink=0.8)
    cb.set_label("P(same cluster)", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    return fig


def _rect(start: float, size: int, c: str):
    from matplotlib.patches import Rectangle

    return Rectangle((start, start), size, size, fill=False, edgecolor=c, lw=1.4)


# --------------------------------------------------------------------------- 5. diagnostics


MAX_TRACE_POINTS = 1000  # per chain: more than the figure has pixels across


def trace_rank_figure(quantities: Mapping[str, np.ndarray]) -> Figure:
    """Per quantity ((chain, draw) arrays): trace per chain (left; at most MAX_TRACE_POINTS
    evenly spaced draws drawn) and rank histograms of all draws per chain (right; flat bars near
    the dashed uniform line mean the chains agree)."""
    n = len(quantities)
    fig = Figure(figsize=(7.6, 1.9 * n + 0.3), layout="constrained")
    axes = fig.subplots(n, 2, squeeze=False, width_ratios=[1.6, 1])
    for row, (name, vals) in enumerate(quantities.items()):
        v = np.asarray(vals, dtype=float)
        chains, draws = v.shape
        ax_t, ax_r = axes[row]
        shown = np.arange(0, draws, max(1, -(-draws // MAX_TRACE_POINTS)))  # every k-th draw
        for c in range(chains):
            col = CHAIN_COLOURS[c % len(CHAIN_COLOURS)]
            drawstyle = "steps-mid" if name == "K+" else "default"
            ax_t.plot(shown, v[c, shown], color=col, lw=0.6, alpha=0.8, drawstyle=drawstyle)
        ax_t.set_ylabel(text(name), fontsize=9)
        ax_t.set_xlim(0, draws - 1)
        ranks = chain_ranks(v)
        bins = np.linspace(0, 1, min(20, max(5, draws // 10)) + 1)
        width = np.diff(bins)[0]
        for c in range(chains):
            counts, _ = np.histogram(ranks[c], bins=bins)
            col = CHAIN_COLOURS[c % len(CHAIN_COLOURS)]
            offset = c * (1.0 + 0.15)
            height = np.minimum(counts / draws / width * 0.45, 1.05)  # uniform: 0.45
            # one filled step outline per chain: ~10x faster to draw than a bar per bin
            ax_r.stairs(offset + height, bins, baseline=offset, fill=True, color=to_rgba(col, 0.75))
            ax_r.axhline(offset + 0.45, color="#555555", lw=0.6, ls="--")
        ax_r.set_yticks([c * 1.15 + 0.45 for c in range(chains)])
        ax_r.set_yticklabels([f"chain {c}" for c in range(chains)], fontsize=7)
        ax_r.set_xlim(0, 1)
        for ax in (ax_t, ax_r):
            _style(ax)
        if row == n - 1:
            ax_t.set_xlabel("draw", fontsize=8)
            ax_r.set_xlabel("rank (all chains pooled)", fontsize=8)
    return fig


# --------------------------------------------------------------------------- 6. classical


def classical_figure(k: Sequence[int], bic: Sequence[float], aic: Sequence[float]) -> Figure:
    """BIC and AIC of EM fits against K (lower is better; the minima are marked)."""
    fig = Figure(figsize=(4.6, 2.6), layout="constrained")
    ax = fig.add_subplot()
    for vals, name, col in ((bic, "BIC", PRIOR), (aic, "AIC", POSTERIOR)):
        ax.plot(k, vals, "o-", color=col, ms=3.5, lw=1.2, label=name)
        best = int(np.argmin(vals))
        ax.plot(k[best], vals[best], "o", ms=9, mfc="none", mec=col, mew=1.5)
    ax.set_xticks(list(k))
    ax.set_xlabel("K (EM components)", fontsize=9)
    ax.set_ylabel("criterion (lower is better)", fontsize=8)
    ax.legend(frameon=False, fontsize=8)
    _style(ax)
    return fig
