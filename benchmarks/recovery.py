"""Recovery of the number of components: bayesmix (DP, sparse finite) vs EM + BIC vs VB.

Synthetic data with K0 components, equal sizes (balanced counts n_k = N / K0, rounded),
identity covariance (component SD 1), and means whose minimum pairwise distance is exactly
``sep`` component SDs: well separated sep = 6, overlapping sep = 2.5.  1-D: means at
0, sep, ..., (K0 - 1) sep.  2-D: the K0 points of a triangular lattice with spacing sep that
are nearest to a uniform random point of a lattice cell, randomly rotated (compact layouts
whose nearest pairs are exactly sep apart).

Methods per data set:
* bayesmix ``dp`` (alpha ~ Gamma(1, 1)) and ``sparse_finite`` (K = 10, gamma = 0.01), the
  shipped models, via ``bayesmix.fit.fit(engine="collapsed", chains=2, ...)`` (the data are
  standardised, as for users); point answer = posterior mode of K+, plus the 90% credible set
  and P(K+ = K0);
* EM + BIC: scikit-learn ``GaussianMixture`` (full covariance, n_init = 2) for K = 1..10,
  answer = argmin BIC;
* VB: scikit-learn ``BayesianGaussianMixture`` (Dirichlet-process weights, 10 components,
  defaults otherwise), answer = number of weights > 0.02.

Usage: ``python -m benchmarks.recovery [--quick] [--reps 20] [--jobs 2]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPORT_DIR, provenance, run_tasks, write_json

K0S = (1, 2, 3, 5, 8)
DIMS = (1, 2)
SEPARATIONS = {"well": 6.0, "overlap": 2.5}
NS = (100, 1000)
METHODS = ("bayesmix_dp", "bayesmix_sparse", "em_bic", "vb_dp")
METHOD_LABELS = {
    "bayesmix_dp": "bayesmix DP (alpha ~ Gamma(1,1))",
    "bayesmix_sparse": "bayesmix sparse finite (gamma = 0.01)",
    "em_bic": "EM + BIC (K = 1..10)",
    "vb_dp": "VB DP (sklearn, w > 0.02)",
}
SHORT = {"bayesmix_dp": "DP", "bayesmix_sparse": "sparse", "em_bic": "BIC", "vb_dp": "VB"}
BAYES = ("bayesmix_dp", "bayesmix_sparse")
SPEC_NAMES = {"bayesmix_dp": "dp", "bayesmix_sparse": "sparse_finite"}


@dataclass(frozen=True)
class Settings:
    """Sampler and baseline settings."""

    seed: int = 20261127
    chains: int = 2
    tune: int = 500
    draws: int = 1000  # per chain, N = 100
    draws_large: int = 500  # per chain, N = 1000 (time budget; K+ mixes well there)
    engine: str = "collapsed"
    max_k: int = 10  # EM + BIC range and VB components
    n_init: int = 2
    vb_threshold: float = 0.02
    vb_max_iter: int = 500
    sens_b0: float = 0.025  # prior-sensitivity refit: kernel b0 (and psi0) 10x smaller


@dataclass(frozen=True)
class Case:
    """One synthetic data set."""

    k0: int
    dim: int
    sep: str
    n: int
    rep: int

    @property
    def setting(self) -> str:
        return f"{self.dim}d_{self.sep}_N{self.n}_K{self.k0}"


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def make_means(k0: int, dim: int, sep: float, rng: np.random.Generator) -> np.ndarray:
    """K0 means with minimum pairwise distance exactly sep (see the module docstring)."""
    if dim == 1:
        return (sep * (np.arange(k0) - (k0 - 1) / 2.0))[:, None]
    a, b = np.meshgrid(np.arange(-5, 6), np.arange(-5, 6))
    pts = np.stack([a.ravel() + 0.5 * b.ravel(), (math.sqrt(3) / 2) * b.ravel()], axis=1)
    u = rng.random(2)
    u = np.array([u[0] + 0.5 * u[1], (math.sqrt(3) / 2) * u[1]])  # uniform in a lattice cell
    near = pts[np.argsort(np.sum((pts - u) ** 2, axis=1), kind="stable")[:k0]]
    th = rng.uniform(0, 2 * math.pi)
    rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    near = (near - near.mean(axis=0)) @ rot.T
    return sep * near


def make_data(case: Case, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """x (N, D) with balanced component sizes and identity covariance; returns (x, means)."""
    means = make_means(case.k0, case.dim, SEPARATIONS[case.sep], rng)
    sizes = np.full(case.k0, case.n // case.k0)
    sizes[: case.n - sizes.sum()] += 1
    z = np.repeat(np.arange(case.k0), sizes)
    x = means[z] + rng.standard_normal((case.n, case.dim))
    return x[rng.permutation(case.n)], means


# --------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------


def run_bayesmix(
    method: str, x: np.ndarray, k0: int, st: Settings, seed: int, b0: float | None = None
) -> dict[str, Any]:
    """Collapsed-Gibbs fit of a shipped model (optionally with kernel b0 = psi0 = ``b0``);
    posterior mode, 90% set and P(K+ = K0)."""
    from bayesmix.fit import fit
    from bayesmix.spec import load_spec

    spec = load_spec(SPEC_NAMES[method])
    if b0 is not None:
        kern = dataclasses.replace(spec.kernel, b0=b0, psi0=b0)
        spec = dataclasses.replace(spec, kernel=kern)
    t0 = time.perf_counter()
    res = fit(
        x, spec, engine=st.engine, chains=st.chains, tune=st.tune, seed=seed,
        draws=st.draws if len(x) <= 100 else st.draws_large,
        progress=False, analyse_clusters=False, cores=1,
    )  # fmt: skip
    secs = time.perf_counter() - t0
    nc = res.summary["n_clusters"]
    cs = [int(k) for k in nc["credible_set_90"]]
    return {
        "answer": int(nc["mode"]),
        "p_true": float(nc["pmf"].get(str(k0), 0.0)),
        "credible_set_90": cs,
        "covered": k0 in cs,
        "mean_kplus": float(nc["mean"]),
        "seconds": secs,
    }


def run_em_bic(x: np.ndarray, st: Settings, seed: int) -> dict[str, Any]:
    """argmin_K BIC of full-covariance EM fits, K = 1..max_k (n_init restarts each)."""
    from sklearn.mixture import GaussianMixture

    t0 = time.perf_counter()
    bics = []
    for k in range(1, st.max_k + 1):
        gm = GaussianMixture(k, covariance_type="full", n_init=st.n_init, random_state=seed)
        bics.append(float(gm.fit(x).bic(x)))
    return {"answer": int(np.argmin(bics)) + 1, "bic": bics, "seconds": time.perf_counter() - t0}


def run_vb(x: np.ndarray, st: Settings, seed: int) -> dict[str, Any]:
    """Variational DP mixture (sklearn defaults, max_k components); count weights > threshold."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import BayesianGaussianMixture

    t0 = time.perf_counter()
    vb = BayesianGaussianMixture(
        n_components=st.max_k, covariance_type="full",
        weight_concentration_prior_type="dirichlet_process", max_iter=st.vb_max_iter,
        random_state=seed,
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        vb.fit(x)
    return {
        "answer": int(np.sum(vb.weights_ > st.vb_threshold)),
        "converged": bool(vb.converged_),
        "warnings": len(caught),
        "seconds": time.perf_counter() - t0,
    }


def run_case(case: Case, st: Settings) -> dict[str, Any]:
    """One data set through all four methods; seeds from SeedSequence([seed, case...])."""
    sep_i = list(SEPARATIONS).index(case.sep)
    entropy = [st.seed, case.dim, sep_i, case.n, case.k0, case.rep]
    rng = np.random.default_rng(np.random.SeedSequence(entropy))
    x, means = make_data(case, rng)
    seed = int(rng.integers(2**31))
    out: dict[str, Any] = {"case": dataclasses.asdict(case), "entropy": entropy, "seed": seed}
    for m in BAYES:
        out[m] = run_bayesmix(m, x, case.k0, st, seed)
    out["em_bic"] = run_em_bic(x, st, seed % (2**31 - 1))
    out["vb_dp"] = run_vb(x, st, seed % (2**31 - 1))
    if sensitivity_case(case):
        out["sensitivity"] = {m: run_bayesmix(m, x, case.k0, st, seed, st.sens_b0) for m in BAYES}
    return out


def sensitivity_case(case: Case) -> bool:
    """Data sets refitted with a 10x smaller kernel scale prior: 1-D, N = 100, K0 >= 5."""
    return case.dim == 1 and case.n == 100 and case.k0 >= 5


def run_batch(cases: list[Case], st: Settings) -> list[dict[str, Any]]:
    return [run_case(c, st) for c in cases]


# --------------------------------------------------------------------------
# Summaries, figure, report
# --------------------------------------------------------------------------


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per setting (dim, sep, N, K0) and method: accuracy, mean answer, time; bayesmix also
    coverage of the 90% set and mean P(K+ = K0)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in results:
        c = r["case"]
        groups.setdefault((c["dim"], c["sep"], c["n"], c["k0"]), []).append(r)
    rows = []
    for (dim, sep, n, k0), rs in sorted(groups.items()):
        row: dict[str, Any] = {"dim": dim, "sep": sep, "n": n, "k0": k0, "reps": len(rs)}
        for m in METHODS:
            ans = np.array([r[m]["answer"] for r in rs])
            row[m] = {
                "accuracy": float(np.mean(ans == k0)),
                "mean_answer": float(ans.mean()),
                "under": float(np.mean(ans < k0)),
                "over": float(np.mean(ans > k0)),
                "seconds": float(np.mean([r[m]["seconds"] for r in rs])),
            }
            if m in BAYES:
                row[m]["coverage_90"] = float(np.mean([r[m]["covered"] for r in rs]))
                row[m]["mean_p_true"] = float(np.mean([r[m]["p_true"] for r in rs]))
        rows.append(row)
    sens = []
    for (dim, sep, n, k0), rs in sorted(groups.items()):
        rs = [r for r in rs if "sensitivity" in r]
        if not rs:
            continue
        row = {"dim": dim, "sep": sep, "n": n, "k0": k0, "reps": len(rs)}
        for m in BAYES:
            for tag, get in (
                ("default", lambda r, m=m: r[m]),
                ("small_b0", lambda r, m=m: r["sensitivity"][m]),
            ):
                row[f"{m}_{tag}"] = {
                    "accuracy": float(np.mean([get(r)["answer"] == k0 for r in rs])),
                    "mean_answer": float(np.mean([get(r)["answer"] for r in rs])),
                    "coverage_90": float(np.mean([get(r)["covered"] for r in rs])),
                }
        sens.append(row)
    return {"settings": rows, "headline": headline(results), "sensitivity": sens}


def headline(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy per method overall and by separation and N; bayesmix calibration; mean times."""
    out: dict[str, Any] = {}

    def acc(m: str, pred: Callable[[dict], bool]) -> float:
        sel = [r for r in results if pred(r["case"])]
        return float(np.mean([r[m]["answer"] == r["case"]["k0"] for r in sel])) if sel else math.nan

    def secs(m: str, n: int) -> float:
        sel = [r[m]["seconds"] for r in results if r["case"]["n"] == n]
        return float(np.mean(sel)) if sel else math.nan

    for m in METHODS:
        h: dict[str, Any] = {
            "accuracy": acc(m, lambda c: True),
            "accuracy_well": acc(m, lambda c: c["sep"] == "well"),
            "accuracy_overlap": acc(m, lambda c: c["sep"] == "overlap"),
            "accuracy_N100": acc(m, lambda c: c["n"] == 100),
            "accuracy_N1000": acc(m, lambda c: c["n"] == 1000),
            "seconds_N100": secs(m, 100),
            "seconds_N1000": secs(m, 1000),
        }
        if m in BAYES:
            h["coverage_90"] = float(np.mean([r[m]["covered"] for r in results]))
            h["mean_p_true"] = float(np.mean([r[m]["p_true"] for r in results]))
        out[m] = h
    return out


def plot(summary: dict[str, Any], path: Path) -> None:
    """Accuracy by K0 per method; panels: rows = dimension, columns = separation; solid
    N = 1000, dashed N = 100."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["settings"]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True, sharey=True)
    for i, dim in enumerate(DIMS):
        for j, sep in enumerate(SEPARATIONS):
            ax = axes[i, j]
            for mi, m in enumerate(METHODS):
                for n, ls in ((100, "--"), (1000, "-")):
                    sel = sorted(
                        (r for r in rows if r["dim"] == dim and r["sep"] == sep and r["n"] == n),
                        key=lambda r: r["k0"],
                    )
                    if not sel:
                        continue
                    ax.plot(
                        [r["k0"] for r in sel], [r[m]["accuracy"] for r in sel], ls,
                        marker="o", color=f"C{mi}", ms=4,
                        label=f"{METHOD_LABELS[m]}, N = {n}",
                    )  # fmt: skip
            ax.set_title(f"{dim}-D, {sep} (min distance {SEPARATIONS[sep]:g} SD)", fontsize=10)
            ax.set_xticks(K0S)
            ax.set_ylim(-0.03, 1.03)
            ax.grid(alpha=0.3)
            if i == 1:
                ax.set_xlabel("true K0")
            if j == 0:
                ax.set_ylabel("P(point answer = K0)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pct(v: float) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{100 * v:.0f}%"


def write_report(summary: dict[str, Any], st: Settings, meta: dict[str, Any], reps: dict) -> str:
    """recovery.md: headline table, reading, per-setting table, settings and versions."""
    h = summary["headline"]
    lines = [
        "# Recovery of the number of components",
        "",
        f"Generated by `{meta['command']}` on {meta['date']} ({meta['machine']}); git "
        f"`{meta['git']}`; wall time {meta['wall_s'] / 60:.1f} min with {meta['jobs']} worker "
        f"process(es){' (--quick)' if meta['quick'] else ''}. Replicates per setting: "
        + ", ".join(
            f"{max(r['reps'] for r in summary['settings'] if r['n'] == n)} (N = {n})"
            for n in sorted({r["n"] for r in summary["settings"]})
        )
        + ".",
        "",
        "## Headline",
        "",
        "Accuracy = share of data sets where the point answer equals K0 (bayesmix: posterior "
        "mode of K+; EM: argmin BIC; VB: number of weights > 0.02). Coverage = share of data "
        "sets whose 90% credible set of K+ contains K0.",
        "",
        "| method | accuracy (all) | well separated | overlapping | N = 100 | N = 1000 "
        "| 90% set coverage | mean P(K+ = K0) | s/fit N = 100 | s/fit N = 1000 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in METHODS:
        x = h[m]
        lines.append(
            f"| {METHOD_LABELS[m]} | {_pct(x['accuracy'])} | {_pct(x['accuracy_well'])} "
            f"| {_pct(x['accuracy_overlap'])} | {_pct(x['accuracy_N100'])} "
            f"| {_pct(x['accuracy_N1000'])} | {_pct(x.get('coverage_90', math.nan))} "
            f"| {_pct(x.get('mean_p_true', math.nan))} | {x['seconds_N100']:.2f} "
            f"| {x['seconds_N1000']:.2f} |"
        )
    lines += ["", "## Reading", "", meta.get("reading", "(see the tables)"), ""]
    lines += [
        "## Per setting",
        "",
        "acc = accuracy; under/over = share below/above K0; cov = 90%-set coverage; "
        "P = mean P(K+ = K0).",
        "",
        "| D | separation | N | K0 | reps | DP acc (under/over) | DP cov | DP P "
        "| sparse acc (under/over) | sparse cov | sparse P | BIC acc (under/over) "
        "| VB acc (under/over) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(r: dict, m: str) -> str:
        return f"{_pct(r[m]['accuracy'])} ({_pct(r[m]['under'])}/{_pct(r[m]['over'])})"

    for r in summary["settings"]:
        lines.append(
            f"| {r['dim']} | {r['sep']} | {r['n']} | {r['k0']} | {r['reps']} "
            f"| {cell(r, 'bayesmix_dp')} | {_pct(r['bayesmix_dp']['coverage_90'])} "
            f"| {r['bayesmix_dp']['mean_p_true']:.2f} | {cell(r, 'bayesmix_sparse')} "
            f"| {_pct(r['bayesmix_sparse']['coverage_90'])} "
            f"| {r['bayesmix_sparse']['mean_p_true']:.2f} | {cell(r, 'em_bic')} "
            f"| {cell(r, 'vb_dp')} |"
        )
    if summary.get("sensitivity"):
        lines += [
            "",
            "## Prior sensitivity (1-D, N = 100, K0 >= 5)",
            "",
            f"The same data sets refitted with the kernel scale prior 10x smaller (b0 = psi0 = "
            f"{st.sens_b0} instead of 0.25, i.e. E[sigma^2] = {st.sens_b0} on the standardised "
            "scale). Accuracy, mean answer and 90%-set coverage:",
            "",
            "| separation | K0 | reps | DP default | DP small b0 | sparse default "
            "| sparse small b0 |",
            "|---|---|---|---|---|---|---|",
        ]

        def sc(x: dict) -> str:
            return f"{_pct(x['accuracy'])}, {x['mean_answer']:.1f}, {_pct(x['coverage_90'])}"

        for r in summary["sensitivity"]:
            lines.append(
                f"| {r['sep']} | {r['k0']} | {r['reps']} | {sc(r['bayesmix_dp_default'])} "
                f"| {sc(r['bayesmix_dp_small_b0'])} | {sc(r['bayesmix_sparse_default'])} "
                f"| {sc(r['bayesmix_sparse_small_b0'])} |"
            )
    lines += [
        "",
        "## Settings",
        "",
        f"- Data: K0 in {list(K0S)}, D in {list(DIMS)}, N in {list(NS)}; separation = minimum "
        "pairwise distance between means in component SDs (identity covariances): "
        + ", ".join(f"{k} = {v:g}" for k, v in SEPARATIONS.items())
        + "; equal component sizes. 2-D layouts: nearest points of a triangular lattice "
        "(spacing = separation) to a random point, randomly rotated.",
        f"- bayesmix: `fit(x, spec, engine='{st.engine}', chains={st.chains}, "
        f"draws={st.draws} (N = 100) or {st.draws_large} (N = 1000), tune={st.tune}, "
        "analyse_clusters=False, cores=1)` with the shipped "
        "`models/dp.toml` and `models/sparse_finite.toml` (data standardised by `fit`). "
        "The collapsed sampler is used at both N (it takes a few seconds at N = 1000).",
        f"- EM + BIC: `GaussianMixture(K, covariance_type='full', n_init={st.n_init}, "
        f"random_state=seed)`, K = 1..{st.max_k}.",
        f"- VB: `BayesianGaussianMixture(n_components={st.max_k}, covariance_type='full', "
        "weight_concentration_prior_type='dirichlet_process', "
        f"max_iter={st.vb_max_iter}, random_state=seed)` (default weight concentration "
        f"1/{st.max_k}); answer = #weights > {st.vb_threshold}. "
        f"VB fits that hit max_iter: {meta.get('vb_not_converged', 0)}.",
        "- Times are wall seconds per fit, one process per fit, measured while two worker "
        "processes shared two cores (with other users' load), so compare them with each "
        "other rather than as absolute numbers. bayesmix times include `fit`'s "
        "post-processing (DataTree, summary, diagnostics).",
        f"- Seeds: data set (D, separation index s, N, K0, rep) uses "
        f"`SeedSequence([{st.seed}, D, s, N, K0, rep])`; the methods get one integer seed drawn "
        "from it (recorded in recovery.json).",
        "",
        "## Versions",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in meta["versions"].items()]
    lines += ["", "Figure: `recovery.png` (accuracy by K0; rows D, columns separation).", ""]
    return "\n".join(lines)


def reading(summary: dict[str, Any]) -> str:
    """The paragraph under 'Reading': every number is computed from the results."""
    h = summary["headline"]
    rows = summary["settings"]

    def mean_of(m: str, key: str, pred: Callable[[dict], bool]) -> float:
        sel = [r[m][key] for r in rows if pred(r)]
        return float(np.mean(sel)) if sel else math.nan

    def accs(pred: Callable[[dict], bool]) -> str:
        return ", ".join(f"{SHORT[m]} {_pct(mean_of(m, 'accuracy', pred))}" for m in METHODS)

    def big_1d(r: dict) -> bool:
        return r["dim"] == 1 and r["sep"] == "well" and r["n"] == 100 and r["k0"] >= 5

    def dp_overlap_large(r: dict) -> bool:
        return r["sep"] == "overlap" and r["n"] == 1000 and r["k0"] in (2, 3)

    def single(r: dict) -> bool:
        return r["k0"] == 1

    sens_rows = [r for r in summary.get("sensitivity", []) if r["sep"] == "well"]
    sens_text = ""
    if sens_rows:
        sm = {
            f"{m}_{t}": float(np.mean([r[f"{m}_{t}"]["accuracy"] for r in sens_rows]))
            for m in BAYES
            for t in ("default", "small_b0")
        }
        sa = {
            f"{m}_{t}": float(np.mean([r[f"{m}_{t}"]["mean_answer"] for r in sens_rows]))
            for m in BAYES
            for t in ("default", "small_b0")
        }
        sens_text = (
            " Refitting those data sets with a 10x smaller scale prior (b0 = psi0 = 0.025) "
            f"moves the accuracy from {_pct(sm['bayesmix_dp_default'])} to "
            f"{_pct(sm['bayesmix_dp_small_b0'])} for the DP (mean answer "
            f"{sa['bayesmix_dp_default']:.1f} -> {sa['bayesmix_dp_small_b0']:.1f}: it now "
            f"{'over' if sa['bayesmix_dp_small_b0'] > 8 else 'under'}-counts) and from "
            f"{_pct(sm['bayesmix_sparse_default'])} to {_pct(sm['bayesmix_sparse_small_b0'])} "
            f"for the sparse finite mixture (mean answer {sa['bayesmix_sparse_default']:.1f} -> "
            f"{sa['bayesmix_sparse_small_b0']:.1f}; truth 5 and 8, mean 6.5): the answer for "
            "such data is driven by the kernel prior; see 'Prior sensitivity'."
        )
    best = max(METHODS, key=lambda m: h[m]["accuracy"])
    best_well = max(METHODS, key=lambda m: h[m]["accuracy_well"])
    under_overlap = {m: mean_of(m, "under", lambda r: r["sep"] == "overlap") for m in METHODS}
    overall = ", ".join(f"{SHORT[m]} {_pct(h[m]['accuracy'])}" for m in METHODS)
    parts = [
        f"Overall accuracy: {overall} (best: {SHORT[best]}). Well separated: "
        + accs(lambda r: r["sep"] == "well")
        + "; overlapping (2.5 SD): "
        + accs(lambda r: r["sep"] == "overlap")
        + ", where the errors are mostly under-counts (share of overlapping data sets "
        "answered below K0: "
        + ", ".join(f"{SHORT[m]} {_pct(v)}" for m, v in under_overlap.items())
        + "); overlapping K0 = 8: "
        + accs(lambda r: r["sep"] == "overlap" and r["k0"] == 8)
        + ".",
        "DP vs sparse finite: with overlapping components at N = 1000 and K0 = 2 or 3 the DP "
        "over-counts in "
        f"{_pct(mean_of('bayesmix_dp', 'over', dp_overlap_large))} of the data sets against "
        f"{_pct(mean_of('bayesmix_sparse', 'over', dp_overlap_large))} for the sparse finite "
        "mixture (the DP's posterior on K+ puts mass on small extra clusters as N grows; "
        "Miller & Harrison 2013); the DP's posterior is wider, so its 90% sets cover K0 more "
        f"often ({_pct(h['bayesmix_dp']['coverage_90'])} vs "
        f"{_pct(h['bayesmix_sparse']['coverage_90'])}) while giving K0 less mass (mean "
        f"P(K+ = K0) {_pct(h['bayesmix_dp']['mean_p_true'])} vs "
        f"{_pct(h['bayesmix_sparse']['mean_p_true'])}); these are frequentist coverages under "
        "a fixed truth, not the prior-averaged calibration that SBC checks, so they need not "
        "be 90%.",
        "Both bayesmix models under-count many narrow, well-separated 1-D components at "
        f"N = 100 (K0 = 5 and 8: {accs(big_1d)}): after standardisation the components have "
        "SD about 0.12 (K0 = 5) and 0.07 (K0 = 8), far below what the shipped kernel prior sigma^2 ~ IG(a0 = 2, "
        "b0 = 0.25) expects (prior mean 0.25), so with 12-20 points per component merging "
        "wins; at N = 1000 the data override the prior."
        + sens_text
        + " This is a property of the default prior, not of the sampler (SBC passes).",
        f"{SHORT[best_well]} is the best point estimator when components are well separated; VB "
        "(sklearn defaults, weight > 0.02) over-splits single Gaussians (K0 = 1: "
        f"{_pct(mean_of('vb_dp', 'accuracy', single))} correct vs "
        f"{_pct(mean_of('em_bic', 'accuracy', single))} for BIC) and under-counts many "
        "components. bayesmix costs about "
        f"{h['bayesmix_dp']['seconds_N100']:.1f} s (N = 100) and "
        f"{h['bayesmix_dp']['seconds_N1000']:.1f} s (N = 1000) per fit against "
        f"{h['em_bic']['seconds_N100']:.2f} / {h['em_bic']['seconds_N1000']:.2f} s for the "
        "whole BIC path, and is the only method here that says how sure it is.",
    ]
    return " ".join(parts)


def cases(reps_small: int, reps_large: int) -> list[Case]:
    out = []
    for dim, sep, n, k0 in itertools.product(DIMS, SEPARATIONS, NS, K0S):
        for rep in range(reps_small if n == 100 else reps_large):
            out.append(Case(k0, dim, sep, n, rep))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.recovery", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--quick", action="store_true", help="3 reps at N = 100, 1 at N = 1000")
    ap.add_argument("--reps", type=int, default=20, help="replicates per setting")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--seed", type=int, default=Settings.seed)
    ap.add_argument("--batch", type=int, default=4, help="data sets per worker task")
    ap.add_argument("--out", default=None, help="output folder (default reports/validation)")
    ap.add_argument(
        "--render-only",
        action="store_true",
        help="rebuild recovery.md / .png / summary from the results in <out>/recovery.json",
    )
    args = ap.parse_args(argv)
    if args.render_only:
        out = Path(args.out) if args.out else REPORT_DIR / "quick" if args.quick else REPORT_DIR
        saved = json.loads((out / "recovery.json").read_text())
        st, meta, results = Settings(**saved["settings"]), saved["meta"], saved["results"]
        summary = summarise(results)
        meta["reading"] = reading(summary)
        reps_text = meta.get("reps", {})
        write_json(out / "recovery.json", saved | {"meta": meta, "summary": summary})
        plot(summary, out / "recovery.png")
        (out / "recovery.md").write_text(write_report(summary, st, meta, reps_text))
        print(f"re-rendered {out / 'recovery.md'}")
        return 0
    st = Settings(seed=args.seed)
    reps_small, reps_large = (3, 1) if args.quick else (args.reps, args.reps)
    todo = cases(reps_small, reps_large)
    # big data sets first so the pool drains evenly
    todo.sort(key=lambda c: (-c.n, -c.k0))
    tasks = [(todo[i : i + args.batch], st) for i in range(0, len(todo), args.batch)]
    t0 = time.perf_counter()
    results = [r for batch in run_tasks(run_batch, tasks, args.jobs, "recovery") for r in batch]
    wall = time.perf_counter() - t0
    results.sort(key=lambda r: tuple(r["entropy"]))
    out = Path(args.out) if args.out else REPORT_DIR / "quick" if args.quick else REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(results)
    meta = provenance(["benchmarks.recovery", *(argv if argv is not None else sys.argv[1:])])
    meta.update(
        wall_s=wall,
        jobs=args.jobs,
        quick=args.quick,
        vb_not_converged=sum(not r["vb_dp"]["converged"] for r in results),
        reading=reading(summary),
    )
    reps_text = {"N=100": reps_small, "N=1000": reps_large}
    meta["reps"] = reps_text
    write_json(
        out / "recovery.json",
        {"meta": meta, "settings": dataclasses.asdict(st), "summary": summary,
         "results": results},
    )  # fmt: skip
    plot(summary, out / "recovery.png")
    (out / "recovery.md").write_text(write_report(summary, st, meta, reps_text))
    for m in METHODS:
        print(f"{m}: {summary['headline'][m]}")
    print(f"wall time {wall:.0f}s; wrote {out / 'recovery.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
