"""Recovery of the number of components: bayesmix models vs EM + BIC vs VB.

Synthetic data with K0 components, identity covariance (component SD 1) and means whose
minimum pairwise distance is exactly ``sep`` component SDs: well separated sep = 6,
overlapping sep = 2.5.

Means.  1-D: at 0, sep, ..., (K0 - 1) sep (centred).  2-D: the K0 points of a triangular
lattice with spacing sep that are nearest to a uniform random point of a lattice cell,
randomly rotated (compact layouts whose nearest pairs are exactly sep apart).  D >= 3 with
K0 <= D: sep / sqrt(2) times K0 orthonormal directions (the columns of Q in the QR
decomposition of a D x K0 standard Gaussian matrix, signs fixed by diag(R) > 0, i.e. a
uniformly random orthonormal frame), centred: every pair is exactly sep apart (a regular
simplex).  D >= 3 with K0 > D: the K0 points of the checkerboard lattice D_D (integer vectors
with an even sum; face-centred cubic in 3-D, nearest-neighbour distance sqrt 2) scaled by
sep / sqrt(2), nearest to a uniform random point of a fundamental cell [0, 2) x [0, 1)^(D-1),
centred and rotated by a uniformly random orthogonal matrix: the nearest pairs are exactly sep
apart (the 2-D construction one dimension up).  The 1-D and 2-D constructions (and the random
numbers they draw) are those of the first version of this study, so its data sets are
unchanged.

Weights.  "equal": balanced counts n_k = N / K0 (the first N mod K0 components get one more).
"unequal" (K0 = 4 only): weights 0.5 / 0.3 / 0.15 / 0.05, counts N w_k rounded by largest
remainder (N = 100: 50/30/15/5; 300: 150/90/45/15; 1000: 500/300/150/50).

Grids (``--grid``).  ``default``: K0 in 1, 2, 3, 5, 8; D in 1, 2; well / overlap; N in 100,
1000; equal weights (the first version's 40 cells).  ``extended``: the default grid plus
(a) N = 300 for every K0 and separation in D = 1, 2; (b) D = 3, 10, 20 with K0 in 2, 3, 5,
both separations, N = 300; (c) unequal weights, K0 = 4, D = 1, 2, both separations, N = 300
(40 + 20 + 18 + 4 = 82 cells).  ``--dims/--ns/--k0s`` restrict either grid (smoke runs).

Methods per data set (``--methods``, default all):
* bayesmix, via ``bayesmix.fit.fit(x, spec, engine=..., chains=2, ...)`` (the data are
  standardised, as for users), with the shipped specs: ``dp`` (alpha ~ Gamma(1, 1)),
  ``sparse_finite`` (K = 10, gamma = 0.01), ``mfm`` (static MFM, conjugate kernel),
  collapsed Gibbs; ``telescope`` (dynamic MFM, semi-conjugate kernel with a hierarchical
  scale, telescoping Gibbs, thin 2) and ``sparse_semi`` (K = 10, semi-conjugate hierarchical
  kernel, blocked Gibbs), engine "gibbs"; ``dp`` and ``mfm`` with ``kernel.covariance =
  "auto"`` (the family chosen by EM + BIC across families before sampling; the choice is
  recorded); ``mfm_auto_scale`` (``mfm`` with covariance "auto" and a hierarchical kernel
  scale, b0 or psi0 ~ Gamma(1, 4), collapsed Gibbs).  2 chains; collapsed: tune 500, 1000 draws per chain (N <= 300) or 500
  (N = 1000); blocked / telescoping Gibbs, whose K+ moves far less per sweep: tune 2000,
  2000 kept draws per chain.  Point answer = posterior mode of K+ (DP, sparse finite) or
  of K (the MFMs, whose K+ is kept too), plus the 90% credible set and P(K0);
* EM + BIC: scikit-learn ``GaussianMixture`` (full covariance, n_init = 2) for K = 1..10,
  answer = argmin BIC; and over families (``em_bic_families``): the same for spherical,
  diagonal and full covariances, argmin over K and family (mclust's choice among VII, VVI
  and VVV); the targets are evaluated against both;
* VB: scikit-learn ``BayesianGaussianMixture`` (Dirichlet-process weights, 10 components,
  defaults otherwise), answer = number of weights > 0.02.

Every finished (data set, method) pair is appended to ``<out>/recovery_partial.jsonl``;
``--resume`` skips the pairs already there (a failed fit is recorded as an error and counts
as finished unless ``--retry-errors``), so a stopped study (Ctrl-C, a crash) loses at most
the fits in flight.  The report (recovery.md / .json / .png) is rendered from the partial
file at the end, after an interruption too, and by ``--render-only``.  ``--plan`` prints the
number of data sets and the expected time per method from the fits already recorded.

Usage: ``python -m benchmarks.recovery [--grid default|extended] [--reps 20] [--jobs 2]
[--methods m1,m2] [--resume] [--quick] [--plan] [--render-only]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import itertools
import json
import math
import os
import sys
import time
import traceback
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    REPORT_DIR,
    _finite,
    _json_default,
    git_revision,
    provenance,
    single_thread_env,
    write_json,
)

K0S = (1, 2, 3, 5, 8)
DIMS = (1, 2)
SEPARATIONS = {"well": 6.0, "overlap": 2.5}
NS = (100, 1000)
WEIGHTS = ("equal", "unequal")  # index in the seed entropy (appended only when > 0)
UNEQUAL = (0.5, 0.3, 0.15, 0.05)  # the "unequal" weights, K0 = len(UNEQUAL) = 4 only
METHODS = (
    "bayesmix_dp",
    "bayesmix_sparse",
    "bayesmix_mfm",
    "bayesmix_telescope",
    "bayesmix_sparse_semi",
    "bayesmix_dp_auto",
    "bayesmix_mfm_auto",
    "bayesmix_mfm_auto_scale",
    "em_bic",
    "em_bic_families",
    "vb_dp",
)
METHOD_LABELS = {
    "bayesmix_dp": "bayesmix DP (alpha ~ Gamma(1,1))",
    "bayesmix_sparse": "bayesmix sparse finite (gamma = 0.01)",
    "bayesmix_mfm": "bayesmix MFM (static, K - 1 ~ BNB(1, 4, 3))",
    "bayesmix_telescope": "bayesmix telescope (dynamic MFM, semi-conjugate kernel)",
    "bayesmix_sparse_semi": "bayesmix sparse finite, semi-conjugate kernel",
    "bayesmix_dp_auto": "bayesmix DP, covariance = auto",
    "bayesmix_mfm_auto": "bayesmix MFM, covariance = auto",
    "bayesmix_mfm_auto_scale": "bayesmix MFM, covariance = auto, hierarchical scale b0 ~ Gamma(1, 4)",
    "em_bic": "EM + BIC (K = 1..10)",
    "em_bic_families": "EM + BIC over families (K = 1..10; spherical, diag, full)",
    "vb_dp": "VB DP (sklearn, w > 0.02)",
}
SHORT = {
    "bayesmix_dp": "DP",
    "bayesmix_sparse": "sparse",
    "bayesmix_mfm": "MFM",
    "bayesmix_telescope": "telescope",
    "bayesmix_sparse_semi": "sparse-semi",
    "bayesmix_dp_auto": "DP-auto",
    "bayesmix_mfm_auto": "MFM-auto",
    "bayesmix_mfm_auto_scale": "MFM-auto-scale",
    "em_bic": "BIC",
    "em_bic_families": "BIC-fam",
    "vb_dp": "VB",
}
# method -> (shipped spec, engine, kernel.covariance = "auto")
BAYES_SPECS = {
    "bayesmix_dp": ("dp", "collapsed", False),
    "bayesmix_sparse": ("sparse_finite", "collapsed", False),
    "bayesmix_mfm": ("mfm", "collapsed", False),
    "bayesmix_telescope": ("telescope", "gibbs", False),
    "bayesmix_sparse_semi": ("sparse_semi", "gibbs", False),
    "bayesmix_dp_auto": ("dp", "collapsed", True),
    "bayesmix_mfm_auto": ("mfm", "collapsed", True),
    "bayesmix_mfm_auto_scale": ("mfm_auto_scale", "collapsed", True),
}
BAYES = tuple(BAYES_SPECS)
SPEC_NAMES = {m: v[0] for m, v in BAYES_SPECS.items()}
AUTO = tuple(m for m, v in BAYES_SPECS.items() if v[2])  # covariance = "auto"
MFMS = (
    "bayesmix_mfm",
    "bayesmix_telescope",
    "bayesmix_mfm_auto",
    "bayesmix_mfm_auto_scale",
)  # answer: mode of K
CLASSICAL = ("em_bic", "em_bic_families", "vb_dp")
EM_FAMILIES = ("spherical", "diag", "full")
LEGACY_SEEDED = ("bayesmix_dp", "bayesmix_sparse")  # the first version's seed (comparable)
SENS = ("bayesmix_dp", "bayesmix_sparse")  # refitted with a smaller kernel scale prior
PARTIAL = "recovery_partial.jsonl"
TOL = 1e-9  # comparisons of shares (ratios of counts)
TARGET_BIC_RIGHT = 0.8
TARGET_MARGIN = 0.05
TARGET_COVERAGE = 0.85


@dataclass(frozen=True)
class Settings:
    """Sampler and baseline settings."""

    seed: int = 20261127
    chains: int = 2
    tune: int = 500  # collapsed Gibbs
    draws: int = 1000  # per chain, N <= 300
    draws_large: int = 500  # per chain, N = 1000 (time budget; K+ mixes well there)
    engine: str = "collapsed"  # for the conjugate specs; the semi-conjugate ones use "gibbs"
    max_k: int = 10  # EM + BIC range and VB components
    n_init: int = 2
    vb_threshold: float = 0.02
    vb_max_iter: int = 500
    sens_b0: float = 0.025  # prior-sensitivity refit: kernel b0 (and psi0) 10x smaller
    tune_gibbs: int = 2000  # blocked / telescoping Gibbs: K+ mixes far slower per sweep
    draws_gibbs: int = 2000  # per chain, every N (telescope: x gibbs_thin = 2 sweeps)


@dataclass(frozen=True)
class Case:
    """One synthetic data set."""

    k0: int
    dim: int
    sep: str
    n: int
    rep: int
    weights: str = "equal"

    @property
    def setting(self) -> str:
        tail = "" if self.weights == "equal" else f"_{self.weights}"
        return f"{self.dim}d_{self.sep}_N{self.n}_K{self.k0}{tail}"


@dataclass(frozen=True)
class Block:
    """A block of cells: every combination of its axes."""

    name: str
    dims: tuple[int, ...]
    ns: tuple[int, ...]
    k0s: tuple[int, ...]
    weights: str = "equal"
    seps: tuple[str, ...] = tuple(SEPARATIONS)
    note: str = ""


BASE = Block("base", DIMS, NS, K0S, note="the first version's grid")
GRIDS: dict[str, tuple[Block, ...]] = {
    "default": (BASE,),
    "extended": (
        BASE,
        Block("n300", DIMS, (300,), K0S, note="N = 300 for every K0 and separation, D = 1, 2"),
        Block(
            "highdim", (3, 10, 20), (300,), (2, 3, 5),
            note="D = 3, 10, 20, K0 = 2, 3, 5, both separations, N = 300",
        ),
        Block(
            "unequal", DIMS, (300,), (len(UNEQUAL),), weights="unequal",
            note="weights 0.5/0.3/0.15/0.05 (K0 = 4), D = 1, 2, both separations, N = 300",
        ),
    ),
}  # fmt: skip


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def random_rotation(dim: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random orthogonal matrix (QR of a Gaussian matrix, signs of diag R fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def make_means(k0: int, dim: int, sep: float, rng: np.random.Generator) -> np.ndarray:
    """K0 means with minimum pairwise distance exactly sep (see the module docstring)."""
    if dim == 1:
        return (sep * (np.arange(k0) - (k0 - 1) / 2.0))[:, None]
    if dim == 2:
        a, b = np.meshgrid(np.arange(-5, 6), np.arange(-5, 6))
        pts = np.stack([a.ravel() + 0.5 * b.ravel(), (math.sqrt(3) / 2) * b.ravel()], axis=1)
        u = rng.random(2)
        u = np.array([u[0] + 0.5 * u[1], (math.sqrt(3) / 2) * u[1]])  # uniform in a cell
        near = pts[np.argsort(np.sum((pts - u) ** 2, axis=1), kind="stable")[:k0]]
        th = rng.uniform(0, 2 * math.pi)
        rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
        near = (near - near.mean(axis=0)) @ rot.T
        return sep * near
    if k0 <= dim:  # regular simplex: K0 orthonormal directions, pairwise distance sqrt 2
        q, r = np.linalg.qr(rng.standard_normal((dim, k0)))
        pts = (q * np.sign(np.diag(r))).T
        return (sep / math.sqrt(2.0)) * (pts - pts.mean(axis=0))
    if dim > 6:
        raise ValueError(f"K0 = {k0} > D = {dim}: the lattice layout is built for D <= 6")
    grid = np.array(list(itertools.product(range(-3, 5), repeat=dim)), dtype=float)
    pts = grid[grid.sum(axis=1) % 2 == 0]  # D_D: nearest neighbours sqrt 2 apart
    u = rng.random(dim) * np.r_[2.0, np.ones(dim - 1)]  # uniform in a fundamental cell
    near = pts[np.argsort(np.sum((pts - u) ** 2, axis=1), kind="stable")[:k0]]
    near = (near - near.mean(axis=0)) @ random_rotation(dim, rng).T
    return (sep / math.sqrt(2.0)) * near


def component_sizes(n: int, k0: int, weights: str = "equal") -> np.ndarray:
    """Counts per component: balanced (equal) or N w_k by largest remainder (unequal)."""
    if weights == "equal":
        sizes = np.full(k0, n // k0)
        sizes[: n - sizes.sum()] += 1
        return sizes
    if weights != "unequal" or k0 != len(UNEQUAL):
        raise ValueError(f"weights '{weights}' with K0 = {k0}: unequal weights need K0 = 4")
    raw = n * np.asarray(UNEQUAL)
    sizes = np.floor(raw + 1e-9).astype(int)
    order = np.argsort(-(raw - sizes), kind="stable")
    sizes[order[: n - sizes.sum()]] += 1
    return sizes


def make_data(case: Case, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """x (N, D) with the case's component sizes and identity covariance; returns (x, means)."""
    means = make_means(case.k0, case.dim, SEPARATIONS[case.sep], rng)
    sizes = component_sizes(case.n, case.k0, case.weights)
    z = np.repeat(np.arange(case.k0), sizes)
    x = means[z] + rng.standard_normal((case.n, case.dim))
    return x[rng.permutation(case.n)], means


def case_entropy(case: Case, st: Settings) -> list[int]:
    """[seed, D, separation index, N, K0, rep] (the first version's), plus the weights index
    when the weights are not equal (so the old data sets keep their entropy)."""
    entropy = [st.seed, case.dim, list(SEPARATIONS).index(case.sep), case.n, case.k0, case.rep]
    w = WEIGHTS.index(case.weights)
    return entropy + [w] if w else entropy


def case_data(case: Case, st: Settings) -> tuple[np.ndarray, np.ndarray, list[int], int]:
    """(x, means, entropy, seed): the data set and the integer seed drawn after it."""
    entropy = case_entropy(case, st)
    rng = np.random.default_rng(np.random.SeedSequence(entropy))
    x, means = make_data(case, rng)
    return x, means, entropy, int(rng.integers(2**31))


def method_seed(method: str, seed: int, entropy: list[int]) -> int:
    """The seed of one method on one data set: the data set's seed for the first version's
    methods (DP and sparse finite: seed; EM and VB: seed mod 2^31 - 1), otherwise drawn from
    SeedSequence(entropy + [crc32(method name)])."""
    if method in LEGACY_SEEDED:
        return seed
    if method in CLASSICAL:
        return seed % (2**31 - 1)
    ss = np.random.SeedSequence([*entropy, zlib.crc32(method.encode())])
    return int(ss.generate_state(1)[0] % 2**31)


# --------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------


def _count_block(block: dict, k0: int) -> dict[str, Any]:
    cs = [int(k) for k in block["credible_set_90"]]
    return {
        "mode": int(block["mode"]),
        "p_true": float(block["pmf"].get(str(k0), 0.0)),
        "credible_set_90": cs,
        "covered": k0 in cs,
        "mean": float(block["mean"]),
    }


def method_spec(method: str, b0: float | None = None):
    """The shipped spec of a bayesmix method (covariance 'auto' for *_auto; optionally the
    conjugate kernel's b0 = psi0 = ``b0``)."""
    from bayesmix.spec import load_spec

    name, _, auto = BAYES_SPECS[method]
    spec = load_spec(name)
    if auto:
        spec = dataclasses.replace(spec, kernel=dataclasses.replace(spec.kernel, covariance="auto"))
    if b0 is not None:
        spec = dataclasses.replace(spec, kernel=dataclasses.replace(spec.kernel, b0=b0, psi0=b0))
    return spec


def run_bayesmix(
    method: str, x: np.ndarray, k0: int, st: Settings, seed: int, b0: float | None = None
) -> dict[str, Any]:
    """Gibbs fit of a shipped model (optionally with kernel b0 = psi0 = ``b0``): posterior
    mode, 90% set and P(= K0) of K+ (DP, sparse finite) or of K (MFMs; K+ kept in 'kplus')."""
    from bayesmix.fit import fit

    engine = BAYES_SPECS[method][1]
    spec = method_spec(method, b0)
    t0 = time.perf_counter()
    res = fit(
        x, spec, engine=engine, chains=st.chains, seed=seed,
        tune=st.tune if engine == "collapsed" else st.tune_gibbs,
        draws=(st.draws if len(x) <= 300 else st.draws_large)
        if engine == "collapsed"
        else st.draws_gibbs,
        progress=False, classical=False, analyse_clusters=False, cores=1,
    )  # fmt: skip
    secs = time.perf_counter() - t0
    s = res.summary
    kplus = _count_block(s["n_clusters"], k0)
    target = _count_block(s["n_components"], k0) if method in MFMS else kplus
    d = s.get("diagnostics") or {}
    per = d.get("quantities") or {}

    def mixing(q: str) -> dict[str, Any]:
        v = per.get(q) or {}
        return {k: v.get(k) for k in ("r_hat", "ess_bulk", "r_hat_infinite")}

    out: dict[str, Any] = {
        "target": "K" if method in MFMS else "K+",
        "answer": target["mode"],
        "p_true": target["p_true"],
        "credible_set_90": target["credible_set_90"],
        "covered": target["covered"],
        "mean_kplus": kplus["mean"],
        "seconds": secs,
        "compile_s": float((res.run or {}).get("timing", {}).get("compile_s", 0.0)),
        "engine": s.get("engine_label") or s.get("engine"),
        "covariance": res.spec.kernel.covariance,
        "diagnostics": {
            "max_r_hat": d.get("max_r_hat"),
            "min_ess_bulk": d.get("min_ess_bulk"),
            "warnings": len(d.get("warnings") or []),
            "K+": mixing("K+"),
            **({"K": mixing("K")} if method in MFMS else {}),
        },
    }
    if method in MFMS:
        out["kplus"] = kplus
        out["mean_k"] = target["mean"]
    if "kernel_choice" in s:
        kc = s["kernel_choice"]
        out["kernel_choice"] = {"covariance": kc["covariance"]} | {
            k: kc[k] for k in ("best_family", "k_best") if k in kc
        }
    return out


def run_em_bic(
    x: np.ndarray, st: Settings, seed: int, families: tuple[str, ...] = ("full",)
) -> dict[str, Any]:
    """argmin over K = 1..max_k (and the covariance families) of the BIC of EM fits (n_init
    restarts each). Several families choose the family by BIC too, as mclust does (its VII /
    VVI / VVV: spherical, diagonal, full; Fraley & Raftery 2002); in 1-D they coincide, so only
    'full' is fitted."""
    from sklearn.mixture import GaussianMixture

    t0 = time.perf_counter()
    fams = families if x.shape[1] > 1 else ("full",)
    bics = {
        f: [
            float(
                GaussianMixture(k, covariance_type=f, n_init=st.n_init, random_state=seed)
                .fit(x)
                .bic(x)
            )
            for k in range(1, st.max_k + 1)
        ]
        for f in fams
    }
    best = min(fams, key=lambda f: min(bics[f]))
    out = {"answer": int(np.argmin(bics[best])) + 1, "bic": bics[best]}
    if len(families) > 1:
        out |= {"family": best, "bic_by_family": bics}
    return out | {"seconds": time.perf_counter() - t0}


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


def _error(exc: BaseException, t0: float) -> dict[str, Any]:
    return {
        "error": f"{type(exc).__name__}: {exc}"[:500],
        "traceback": traceback.format_exc()[-3000:],
        "seconds": time.perf_counter() - t0,
    }


def run_method(method: str, case: Case, x: np.ndarray, st: Settings, seed: int) -> dict:
    """One method on one data set; a failure becomes {'error': ...} (Ctrl-C propagates).
    DP and sparse finite on sensitivity cases also get the small-b0 refit ('small_b0')."""
    t0 = time.perf_counter()
    try:
        if method == "em_bic":
            return run_em_bic(x, st, seed)
        if method == "em_bic_families":
            return run_em_bic(x, st, seed, EM_FAMILIES)
        if method == "vb_dp":
            return run_vb(x, st, seed)
        out = run_bayesmix(method, x, case.k0, st, seed)
    except Exception as exc:
        return _error(exc, t0)
    if method in SENS and sensitivity_case(case):
        t1 = time.perf_counter()
        try:
            out["small_b0"] = run_bayesmix(method, x, case.k0, st, seed, st.sens_b0)
        except Exception as exc:
            out["small_b0"] = _error(exc, t1)
    return out


def sensitivity_case(case: Case) -> bool:
    """Data sets refitted with a 10x smaller kernel scale prior: 1-D, N = 100, K0 >= 5."""
    return case.dim == 1 and case.n == 100 and case.k0 >= 5


def run_batch(pairs: list[tuple[Case, str]], st: Settings) -> list[dict[str, Any]]:
    """(data set, method) pairs -> one record each (what recovery_partial.jsonl holds)."""
    out = []
    for case, method in pairs:
        x, _, entropy, seed = case_data(case, st)
        ms = method_seed(method, seed, entropy)
        out.append(
            {"case": dataclasses.asdict(case), "entropy": entropy, "seed": seed,
             "method": method, "method_seed": ms, "result": run_method(method, case, x, st, ms)}
        )  # fmt: skip
    return out


def run_pairs(
    tasks: list[list[tuple[Case, str]]], st: Settings, jobs: int, scheduler: str | None = None
) -> Iterator[list]:
    """Yield run_batch(task, st) in completion order through ``bayesmix.executor``:
    in-process (jobs <= 1, one BLAS / OpenMP thread per fit, as in the workers), ``jobs``
    spawned workers, or a Dask cluster (``scheduler``). On an exception (Ctrl-C included) the
    queued tasks are cancelled rather than run, so a stopped study stops; a worker that dies
    has its task retried once, then ``WorkerLost`` (a ``BrokenExecutor``) is raised."""
    from bayesmix.executor import Executor

    if jobs > 1 or scheduler:
        single_thread_env()
    with Executor(max(1, jobs), scheduler) as ex:
        for outcome in ex.map(run_batch, [(i, (task, st)) for i, task in enumerate(tasks)]):
            yield outcome.result()


# --------------------------------------------------------------------------
# The partial file
# --------------------------------------------------------------------------


def _line(obj: Any) -> str:
    return json.dumps(_finite(obj), default=_json_default) + "\n"


def append_lines(path: Path, objs: list[Any]) -> None:
    """Append JSON lines and flush them to disk (a stopped run keeps every finished pair)."""
    cut = False
    if path.exists() and path.stat().st_size > 0:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            cut = f.read(1) != b"\n"  # a line cut short by a stop: start a new one
    with open(path, "a", encoding="utf-8") as f:
        f.write(("\n" if cut else "") + "".join(_line(o) for o in objs))
        f.flush()
        os.fsync(f.fileno())


def read_partial(path: Path) -> tuple[dict, list[dict], list[dict], int]:
    """(header, records, sessions, unreadable lines) of a partial file; a line cut short by
    a stop is skipped."""
    header: dict = {}
    records, sessions, bad = [], [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if "header" in obj:
            header = header or obj["header"]
        elif "session" in obj:
            sessions.append(obj["session"])
        else:
            records.append(obj)
    return header, records, sessions, bad


def partial_from_report(path: Path) -> list[dict]:
    """The partial file's lines (header, sessions, one record per (data set, method)) rebuilt
    from a rendered recovery.json, so that a study whose partial file is gone (it is not
    committed) can be resumed with more methods; ``assemble`` inverts it."""
    rep = json.loads(path.read_text(encoding="utf-8"))
    meta = rep["meta"]
    header = {"settings": rep["settings"], "argv": meta["command"].split()[2:], "git": meta["git"]}
    sessions = [
        {"session": {"command": c, "date": meta["date"], "grid": meta.get("grid", "default"),
                     "jobs": meta.get("jobs", 1), "rebuilt_from": str(path)}
         | ({"wall_s": meta["wall_s"]} if i == 0 and meta.get("wall_s") else {})}
        for i, c in enumerate(meta.get("commands") or [meta["command"]])
    ]  # fmt: skip
    records = []
    for r in rep["results"]:
        sens = r.get("sensitivity", {})
        for m in METHODS:
            if m not in r:
                continue
            res = dict(r[m]) | ({"small_b0": sens[m]} if m in sens else {})
            records.append(
                {"case": r["case"], "entropy": r["entropy"], "seed": r["seed"], "method": m,
                 "method_seed": r["method_seeds"][m], "result": res}
            )  # fmt: skip
    return [{"header": header}, *sessions, *records]


def pair_key(rec: dict) -> tuple:
    return (tuple(rec["entropy"]), rec["method"])


def assemble(records: list[dict]) -> list[dict[str, Any]]:
    """Records -> one result per data set ({'case', 'entropy', 'seed', method: result, ...,
    'sensitivity': {method: small-b0 result}}), the format of recovery.json; a later record
    of a pair replaces an earlier one."""
    by: dict[tuple, dict[str, Any]] = {}
    for rec in records:
        key = tuple(rec["entropy"])
        r = by.setdefault(
            key,
            {"case": rec["case"], "entropy": rec["entropy"], "seed": rec["seed"],
             "method_seeds": {}},
        )  # fmt: skip
        m = rec["method"]
        res = dict(rec["result"])
        small = res.pop("small_b0", None)
        r[m] = res
        r["method_seeds"][m] = rec["method_seed"]
        if small is not None:
            r.setdefault("sensitivity", {})[m] = small
        elif m in r.get("sensitivity", {}):
            del r["sensitivity"][m]
    return sorted(by.values(), key=lambda r: tuple(r["entropy"]))


# --------------------------------------------------------------------------
# Summaries, targets, figure, report
# --------------------------------------------------------------------------


def _ok(v: Any) -> bool:
    return isinstance(v, dict) and "error" not in v


def _view(v: dict, quantity: str) -> tuple[int, bool | None, float | None]:
    """(answer, covered, P(K0)) of a result; quantity 'kplus' reads an MFM's K+."""
    if quantity == "kplus" and "kplus" in v:
        b = v["kplus"]
        return b["mode"], b["covered"], b["p_true"]
    return v["answer"], v.get("covered"), v.get("p_true")


def _weights(c: dict) -> str:
    return c.get("weights", "equal")


def methods_in(results: list[dict[str, Any]]) -> list[str]:
    return [m for m in METHODS if any(m in r for r in results)]


def variants(methods: list[str]) -> list[tuple[str, str, str]]:
    """(key, method, quantity) of every answer evaluated: each method's own answer, and K+
    for the MFMs."""
    out = []
    for m in methods:
        out.append((m, m, "target"))
        if m in MFMS:
            out.append((f"{m}:K+", m, "kplus"))
    return out


def vlabel(key: str) -> str:
    m, _, q = key.partition(":")
    if m in MFMS:
        return f"{SHORT[m]} {'K+' if q else 'K'}"
    return SHORT[m]


def _stats(rs: list[dict], m: str, quantity: str = "target") -> dict[str, Any]:
    """Accuracy (errors count as misses), under/over, mean answer, time; Bayesian methods
    also coverage of the 90% set and mean P(= K0)."""
    att = [(r[m], r["case"]["k0"]) for r in rs if m in r]
    ok = [(v, k0) for v, k0 in att if _ok(v)]
    n = len(att)
    ans = np.array([_view(v, quantity)[0] for v, _ in ok], dtype=float)
    k0s = np.array([k0 for _, k0 in ok], dtype=float)
    out: dict[str, Any] = {
        "n": n,
        "errors": n - len(ok),
        "accuracy": float(np.sum(ans == k0s) / n) if n else math.nan,
        "under": float(np.sum(ans < k0s) / n) if n else math.nan,
        "over": float(np.sum(ans > k0s) / n) if n else math.nan,
        "mean_answer": float(ans.mean()) if ok else math.nan,
        "seconds": float(np.mean([v["seconds"] for v, _ in ok])) if ok else math.nan,
    }
    if m in BAYES:
        cov = [bool(_view(v, quantity)[1]) for v, _ in ok]
        out["coverage_90"] = float(np.sum(cov) / n) if n else math.nan
        pt = [_view(v, quantity)[2] for v, _ in ok]
        out["mean_p_true"] = float(np.mean(pt)) if ok else math.nan
        out["poor_mixing"] = float(np.mean([_poor(v, quantity) for v, _ in ok])) if ok else math.nan
    return out


def _poor(v: dict, quantity: str = "target") -> bool:
    """The answer's own chain (K for the MFMs, K+ otherwise): R-hat > 1.05 or infinite
    (chains stuck at different values), or bulk ESS < 100; a constant chain is not poor."""
    d = v.get("diagnostics") or {}
    q = "K" if quantity == "target" and v.get("target") == "K" else "K+"
    m = d.get(q)
    if m is None:  # results without per-quantity diagnostics
        r, e, inf = d.get("max_r_hat"), d.get("min_ess_bulk"), False
    else:
        r, e, inf = m.get("r_hat"), m.get("ess_bulk"), bool(m.get("r_hat_infinite"))
    return bool(inf or (r is not None and r > 1.05) or (e is not None and e < 100))


def _cell_key(c: dict) -> tuple:
    return (c["dim"], c["sep"], c["n"], c["k0"], _weights(c))


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per cell (dim, sep, N, K0, weights) and method: accuracy, under/over, mean answer,
    time; Bayesian methods also the 90%-set coverage and mean P(= K0) (MFMs: of K, and of K+
    under 'kplus'); the headline, the targets, the auto kernel choices and the sensitivity
    refits."""
    methods = methods_in(results)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault(_cell_key(r["case"]), []).append(r)
    rows = []
    for (dim, sep, n, k0, w), rs in sorted(groups.items()):
        row: dict[str, Any] = {"dim": dim, "sep": sep, "n": n, "k0": k0, "weights": w}
        row["reps"] = len(rs)
        for m in methods:
            row[m] = _stats(rs, m)
            if m in MFMS:
                row[m]["kplus"] = _stats(rs, m, "kplus")
        rows.append(row)
    sens = []
    for (dim, sep, n, k0, w), rs in sorted(groups.items()):
        rs = [r for r in rs if r.get("sensitivity")]
        if not rs:
            continue
        row = {"dim": dim, "sep": sep, "n": n, "k0": k0, "weights": w, "reps": len(rs)}
        for m in SENS:
            pairs = [(r[m], r["sensitivity"][m]) for r in rs if m in r.get("sensitivity", {})]
            pairs = [(a, b) for a, b in pairs if _ok(a) and _ok(b)]
            if not pairs:
                continue
            for tag, i in (("default", 0), ("small_b0", 1)):
                row[f"{m}_{tag}"] = {
                    "accuracy": float(np.mean([p[i]["answer"] == k0 for p in pairs])),
                    "mean_answer": float(np.mean([p[i]["answer"] for p in pairs])),
                    "coverage_90": float(np.mean([p[i]["covered"] for p in pairs])),
                }
        sens.append(row)
    choice: dict[str, dict[str, dict[str, int]]] = {}
    for r in results:
        for m in AUTO:
            v = r.get(m)
            if _ok(v):
                fam = (v.get("kernel_choice") or {}).get("covariance", v.get("covariance"))
                per = choice.setdefault(m, {}).setdefault(str(r["case"]["dim"]), {})
                per[fam] = per.get(fam, 0) + 1
    return {
        "methods": methods,
        "settings": rows,
        "headline": headline(results),
        "targets": targets(results, rows),
        "targets_families": targets(results, rows, "em_bic_families"),
        "kernel_choice": choice,
        "sensitivity": sens,
    }


def headline(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per answer (method, and K+ for the MFMs): accuracy overall, by separation, N and
    weights; calibration; mean seconds per fit by N; errors."""
    out: dict[str, Any] = {}
    ns = sorted({r["case"]["n"] for r in results})
    for key, m, q in variants(methods_in(results)):

        def st(pred: Callable[[dict], bool], m: str = m, q: str = q) -> dict[str, Any]:
            return _stats([r for r in results if pred(r["case"])], m, q)

        a = st(lambda c: True)
        h: dict[str, Any] = {
            "n": a["n"],
            "errors": a["errors"],
            "accuracy": a["accuracy"],
            "accuracy_well": st(lambda c: c["sep"] == "well")["accuracy"],
            "accuracy_overlap": st(lambda c: c["sep"] == "overlap")["accuracy"],
            "accuracy_unequal": st(lambda c: _weights(c) == "unequal")["accuracy"],
            "accuracy_D3plus": st(lambda c: c["dim"] >= 3)["accuracy"],
            "fit_hours": sum(r[m]["seconds"] for r in results if _ok(r.get(m))) / 3600,
        }
        for n in ns:
            sn = st(lambda c, n=n: c["n"] == n)
            h[f"accuracy_N{n}"] = sn["accuracy"]
            h[f"seconds_N{n}"] = sn["seconds"]
        if m in BAYES:
            h["coverage_90"] = a["coverage_90"]
            h["mean_p_true"] = a["mean_p_true"]
            h["poor_mixing"] = a["poor_mixing"]
        out[key] = h
    return out


def targets(
    results: list[dict[str, Any]], rows: list[dict[str, Any]], baseline: str = "em_bic"
) -> dict[str, Any]:
    """The issue's three targets for every Bayesian answer (MFMs: K, and K+ for reference):
    (1) accuracy >= EM + BIC's in every well-separated cell where BIC is right >= 80% of the
    time; (2) overall accuracy >= BIC's + 5 points (over the data sets both were run on);
    (3) the 90% credible set covers K0 in >= 85% of the data sets.  Errors count as misses;
    (1) is n/a (None, not counted as met) when no well-separated cell has BIC right >= 80%.
    ``baseline`` is the BIC method: full covariances ("em_bic", the issue's) or the best of
    the covariance families ("em_bic_families", as mclust)."""
    methods = methods_in(results)
    if baseline not in methods:
        return {}
    out: dict[str, Any] = {}
    for key, m, q in variants([m for m in methods if m in BAYES]):
        cells, failing = 0, []
        for row in rows:
            b, v = row.get(baseline), row.get(m)
            if row["sep"] != "well" or not b or not v or not b["n"] or not v["n"]:
                continue
            if b["accuracy"] + TOL < TARGET_BIC_RIGHT:
                continue
            cells += 1
            acc = (v["kplus"] if q == "kplus" else v)["accuracy"]
            if acc + TOL < b["accuracy"]:
                failing.append(
                    {"cell": _cell_name(row), "accuracy": acc, "bic": b["accuracy"]}
                )  # fmt: skip
        both = [r for r in results if m in r and baseline in r]
        sm, sb = _stats(both, m, q), _stats(both, baseline)
        cov = sm.get("coverage_90", math.nan)
        t1 = {"cells": cells, "failing": failing, "met": (not failing) if cells else None}
        t2 = {
            "n": len(both),
            "accuracy": sm["accuracy"],
            "bic": sb["accuracy"],
            "met": bool(both) and sm["accuracy"] + TOL >= sb["accuracy"] + TARGET_MARGIN,
        }
        t3 = {"n": sm["n"], "coverage_90": cov, "met": sm["n"] > 0 and cov + TOL >= TARGET_COVERAGE}
        out[key] = {
            "quantity": "K+" if q == "kplus" or m not in MFMS else "K",
            "well_cells": t1,
            "overall": t2,
            "coverage": t3,
            "n_met": int(bool(t1["met"])) + int(t2["met"]) + int(t3["met"]),
            "all_met": bool(t1["met"] and t2["met"] and t3["met"]),
        }
    return out


def _cell_name(row: dict) -> str:
    w = "" if row.get("weights", "equal") == "equal" else f", {row['weights']}"
    return f"{row['dim']}-D {row['sep']} N = {row['n']} K0 = {row['k0']}{w}"


def candidate(tg: dict[str, Any], h: dict[str, Any]) -> str | None:
    """The answer that meets the most targets (ties: higher overall accuracy, then higher
    coverage), among each method's own answer (not the MFMs' K+)."""
    keys = [k for k in tg if ":" not in k]
    if not keys:
        return None
    return max(keys, key=lambda k: (tg[k]["n_met"], h[k]["accuracy"], h[k].get("coverage_90", 0)))


def plot(summary: dict[str, Any], path: Path) -> None:
    """Accuracy by K0 per method (MFMs: K), equal weights; panels: rows = dimension,
    columns = separation x N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary["settings"] if r.get("weights", "equal") == "equal"]
    methods = summary.get("methods") or [m for m in METHODS if rows and m in rows[0]]
    dims = sorted({r["dim"] for r in rows})
    cols = sorted({(r["sep"], r["n"]) for r in rows}, key=lambda t: (-SEPARATIONS[t[0]], t[1]))
    if not rows:
        return
    fig, axes = plt.subplots(
        len(dims), len(cols), figsize=(2.8 * len(cols) + 1, 2.4 * len(dims) + 1.6),
        sharex=True, sharey=True, squeeze=False,
    )  # fmt: skip
    for i, dim in enumerate(dims):
        for j, (sep, n) in enumerate(cols):
            ax = axes[i, j]
            sel = sorted(
                (r for r in rows if r["dim"] == dim and r["sep"] == sep and r["n"] == n),
                key=lambda r: r["k0"],
            )
            if not sel:
                ax.set_visible(False)
                continue
            for mi, m in enumerate(methods):
                pts = [(r["k0"], r[m]["accuracy"]) for r in sel if m in r and r[m]["n"]]
                if pts:
                    ax.plot(
                        *zip(*pts, strict=True), "-", marker="o", color=f"C{mi}", ms=3,
                        lw=1.2, label=METHOD_LABELS[m],
                    )  # fmt: skip
            ax.set_title(f"{dim}-D, {sep} ({SEPARATIONS[sep]:g} SD), N = {n}", fontsize=8)
            ax.set_xticks(K0S)
            ax.set_ylim(-0.03, 1.03)
            ax.grid(alpha=0.3)
            if i == len(dims) - 1:
                ax.set_xlabel("true K0")
            if j == 0:
                ax.set_ylabel("P(answer = K0)")
    handles, labels = {}, {}
    for ax in axes.ravel():
        for hd, lb in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lb, hd)
            labels[lb] = lb
    fig.legend(list(handles.values()), list(labels), loc="lower center", ncol=3, fontsize=7,
               frameon=False)  # fmt: skip
    fig.tight_layout(rect=(0, 1.3 / (2.4 * len(dims) + 1.6), 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _pct(v: float | None) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{100 * v:.0f}%"


def _met(t: dict) -> str:
    return "n/a" if t["met"] is None else "**met**" if t["met"] else "not met"


def _secs(v: float | None) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.2f}"


def _targets_lines(tg: dict[str, Any], label: str) -> list[str]:
    """The targets table (``targets``) against one BIC baseline, and the failing cells."""
    if not tg:
        return []
    lines: list[str] = []
    lines += [
        "",
        f"## Targets against {label}",
        "",
        "The issue's targets for the candidate default, evaluated for every Bayesian "
        "method (MFMs: K, the answer they report; their K+ for reference): (1) accuracy "
        f">= EM + BIC's in every well-separated cell where BIC is right >= "
        f"{100 * TARGET_BIC_RIGHT:.0f}% of the time; (2) overall accuracy >= BIC's + "
        f"{100 * TARGET_MARGIN:.0f} points (over the data sets both were run on); (3) the "
        f"90% credible set covers K0 in >= {100 * TARGET_COVERAGE:.0f}% of the data sets.",
        "",
        "| method | answer | (1) well-separated cells | (2) overall accuracy vs BIC + 5 "
        "| (3) 90% coverage | targets met |",
        "|---|---|---|---|---|---|",
    ]
    for key, t in tg.items():
        m = key.split(":")[0]
        t1, t2, t3 = t["well_cells"], t["overall"], t["coverage"]
        worst = min(t1["failing"], key=lambda f: f["accuracy"] - f["bic"], default=None)
        w_text = (
            f"; worst {worst['cell']}: {_pct(worst['accuracy'])} vs {_pct(worst['bic'])}"
            if worst
            else ""
        )
        lines.append(
            f"| {METHOD_LABELS[m]} | {t['quantity']} "
            f"| {_met(t1)}: {t1['cells'] - len(t1['failing'])} of {t1['cells']} cells >= BIC"
            f"{w_text} "
            f"| {_met(t2)}: {_pct(t2['accuracy'])} vs {_pct(t2['bic'])} + 5 "
            f"({100 * (t2['accuracy'] - t2['bic']):+.1f} points; {t2['n']} data sets) "
            f"| {_met(t3)}: {_pct(t3['coverage_90'])} | {t['n_met']} of 3 |"
        )
    fails = [
        (k, f)
        for k, t in tg.items()
        if ":" not in k
        for f in sorted(t["well_cells"]["failing"], key=lambda f: f["accuracy"] - f["bic"])[:8]
    ]
    if fails:
        lines += [
            "",
            "Well-separated cells where a method falls below BIC (BIC right >= 80%; the "
            "8 largest gaps per method): "
            + "; ".join(
                f"{vlabel(k)} {f['cell']} ({_pct(f['accuracy'])} vs {_pct(f['bic'])})"
                for k, f in fails
            )
            + ".",
        ]
    return lines


def write_report(summary: dict[str, Any], st: Settings, meta: dict[str, Any], reps: dict) -> str:
    """recovery.md: headline and target tables, reading, per-cell tables, settings."""
    h, rows, tg = summary["headline"], summary["settings"], summary.get("targets", {})
    methods = summary.get("methods") or [m for m in METHODS if any(m in r for r in rows)]
    ns = sorted({r["n"] for r in rows})
    keys = [k for k, _, _ in variants(methods)]
    wall = meta.get("wall_s")
    lines = [
        "# Recovery of the number of components",
        "",
        f"Generated by `{meta['command']}` on {meta['date']} ({meta['machine']}); git "
        f"`{meta['git']}`; "
        + (f"wall time {wall / 60:.1f} min" if wall is not None else "wall time not recorded")
        + (f" over {meta['sessions']} session(s)" if meta.get("sessions", 1) > 1 else "")
        + f" with {meta.get('jobs', '?')} worker process(es)"
        + (" (--quick)" if meta.get("quick") else "")
        + f". Data sets: {sum(r['reps'] for r in rows)} in {len(rows)} cells; replicates "
        "per cell: "
        + ", ".join(f"{max(r['reps'] for r in rows if r['n'] == n)} (N = {n})" for n in ns)
        + ".",
        "",
        "## Headline",
        "",
        "Accuracy = share of data sets where the point answer equals K0 (bayesmix: posterior "
        "mode of K+, or of K for the MFMs, whose K+ is shown on the next line; EM: argmin BIC; "
        "VB: number of weights > 0.02); a failed fit counts as a miss. Coverage = share of "
        "data sets whose 90% credible set contains K0. Poorly mixed = share of fits whose "
        "chains of the answer (K+, or K) have R-hat > 1.05 (or infinite: chains stuck at "
        "different values) or bulk ESS < 100.",
        "",
        "| method | answer | data sets | errors | all | well sep. | overlapping "
        + "".join(f"| N = {n} " for n in ns)
        + "| unequal w | D >= 3 | 90% coverage | mean P(K0) | poorly mixed "
        + "".join(f"| s/fit N = {n} " for n in ns)
        + "| fit hours |",
        "|---|---|---|---|---|---|---"
        + "|---" * len(ns)
        + "|---|---|---|---|---"
        + "|---" * len(ns)
        + "|---|",
    ]
    for key in keys:
        x, m = h[key], key.split(":")[0]
        ans = "K+" if key.endswith(":K+") else ("K" if m in MFMS else _answer_name(m))
        lines.append(
            f"| {METHOD_LABELS[m]} | {ans} | {x['n']} | {x['errors']} | {_pct(x['accuracy'])} "
            f"| {_pct(x['accuracy_well'])} | {_pct(x['accuracy_overlap'])} "
            + "".join(f"| {_pct(x.get(f'accuracy_N{n}'))} " for n in ns)
            + f"| {_pct(x['accuracy_unequal'])} | {_pct(x['accuracy_D3plus'])} "
            f"| {_pct(x.get('coverage_90'))} | {_pct(x.get('mean_p_true'))} "
            f"| {_pct(x.get('poor_mixing'))} "
            + "".join(f"| {_secs(x.get(f'seconds_N{n}'))} " for n in ns)
            + f"| {x['fit_hours']:.2f} |"
        )
    lines += _targets_lines(tg, "EM + BIC (full covariances)")
    lines += _targets_lines(
        summary.get("targets_families") or {},
        "EM + BIC over covariance families (spherical, diagonal, full: the mclust-style baseline)",
    )
    lines += ["", "## Reading", "", meta.get("reading", "(see the tables)"), ""]
    lines += [
        "## Accuracy per cell",
        "",
        "Share of data sets with answer = K0 (MFMs: K, then K+).",
        "",
        _cell_header(keys),
        "|---|---|---|---|---|---" + "|---" * len(keys) + "|",
    ]
    for r in rows:
        lines.append(
            _cell_prefix(r) + "".join(f"| {_pct(_get(r, k, 'accuracy'))} " for k in keys) + "|"
        )
    bkeys = [k for k in keys if k.split(":")[0] in BAYES]
    if bkeys:
        lines += [
            "",
            "## 90% credible-set coverage per cell",
            "",
            "Share of data sets whose 90% credible set (of K+, or K for the MFMs, then K+) "
            "contains K0; mean P(= K0) in brackets.",
            "",
            _cell_header(bkeys),
            "|---|---|---|---|---|---" + "|---" * len(bkeys) + "|",
        ]
        for r in rows:
            lines.append(
                _cell_prefix(r)
                + "".join(
                    f"| {_pct(_get(r, k, 'coverage_90'))} ({_fmt2(_get(r, k, 'mean_p_true'))}) "
                    for k in bkeys
                )
                + "|"
            )
    lines += [
        "",
        "## Under- and over-counts per cell",
        "",
        "Share of data sets answered below / above K0.",
        "",
        _cell_header(keys),
        "|---|---|---|---|---|---" + "|---" * len(keys) + "|",
    ]
    for r in rows:
        lines.append(
            _cell_prefix(r)
            + "".join(f"| {_pct(_get(r, k, 'under'))}/{_pct(_get(r, k, 'over'))} " for k in keys)
            + "|"
        )
    if summary.get("kernel_choice"):
        lines += [
            "",
            '## Covariance family chosen by `covariance = "auto"`',
            "",
            "Data sets per family (EM + BIC across full, diagonal and spherical covariances "
            "before sampling; 1-D data: full).",
            "",
            "| method | D | families |",
            "|---|---|---|",
        ]
        for m, per in summary["kernel_choice"].items():
            for dim, fams in sorted(per.items(), key=lambda t: int(t[0])):
                fam = ", ".join(f"{f} {c}" for f, c in sorted(fams.items()))
                lines.append(f"| {METHOD_LABELS[m]} | {dim} | {fam} |")
    sens = [r for r in summary.get("sensitivity", []) if any(f"{m}_default" in r for m in SENS)]
    if sens:
        sm = [m for m in SENS if any(f"{m}_default" in r for r in sens)]
        lines += [
            "",
            "## Prior sensitivity (1-D, N = 100, K0 >= 5)",
            "",
            f"The same data sets refitted with the kernel scale prior 10x smaller (b0 = psi0 = "
            f"{st.sens_b0} instead of 0.25, i.e. E[sigma^2] = {st.sens_b0} on the standardised "
            "scale). Accuracy, mean answer and 90%-set coverage:",
            "",
            "| separation | K0 | reps "
            + "".join(f"| {SHORT[m]} default | {SHORT[m]} small b0 " for m in sm)
            + "|",
            "|---|---|---" + "|---|---" * len(sm) + "|",
        ]

        def sc(x: dict | None) -> str:
            if not x:
                return "–"
            return f"{_pct(x['accuracy'])}, {x['mean_answer']:.1f}, {_pct(x['coverage_90'])}"

        for r in sens:
            lines.append(
                f"| {r['sep']} | {r['k0']} | {r['reps']} "
                + "".join(
                    f"| {sc(r.get(f'{m}_default'))} | {sc(r.get(f'{m}_small_b0'))} " for m in sm
                )
                + "|"
            )
    errs = meta.get("errors") or []
    if errs:
        lines += ["", "## Failed fits", ""]
        lines += [f"- {e}" for e in errs[:20]]
        if len(errs) > 20:
            lines.append(f"- ... and {len(errs) - 20} more (recovery.json)")
    lines += ["", "## Settings", ""]
    lines += _settings_lines(st, meta, methods)
    lines += ["", "## Versions", ""]
    lines += [f"- {k}: {v}" for k, v in meta["versions"].items()]
    lines += [
        "",
        "Figure: `recovery.png` (accuracy by K0, equal weights; rows D, columns separation and N).",
        "",
    ]
    return "\n".join(lines)


def _answer_name(m: str) -> str:
    return {"em_bic": "argmin BIC", "em_bic_families": "argmin BIC", "vb_dp": "#w > 0.02"}.get(
        m, "K+"
    )


def _fmt2(v: float | None) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.2f}"


def _get(row: dict, key: str, field: str) -> float | None:
    m, _, q = key.partition(":")
    v = row.get(m)
    if not v or not v.get("n"):
        return None
    return (v["kplus"] if q else v).get(field)


def _cell_header(keys: list[str]) -> str:
    return (
        "| D | separation | N | weights | K0 | reps "
        + "".join(f"| {vlabel(k)} " for k in keys)
        + "|"
    )


def _cell_prefix(r: dict) -> str:
    return f"| {r['dim']} | {r['sep']} | {r['n']} | {r.get('weights', 'equal')} | {r['k0']} | {r['reps']} "


def _settings_lines(st: Settings, meta: dict, methods: list[str]) -> list[str]:
    grid = meta.get("grid", "default")
    blocks = GRIDS.get(grid, GRIDS["default"])
    out = [
        f"- Grid `{grid}`: "
        + "; ".join(
            f"{b.name}: D in {list(b.dims)}, N in {list(b.ns)}, K0 in {list(b.k0s)}, "
            f"{b.weights} weights, separations {', '.join(b.seps)} ({b.note})"
            for b in blocks
        )
        + (f"; restricted by {meta['restrict']}" if meta.get("restrict") else "")
        + ". Separation = minimum pairwise distance between means in component SDs "
        "(identity covariances): "
        + ", ".join(f"{k} = {v:g}" for k, v in SEPARATIONS.items())
        + ".",
        "- Means: 1-D equally spaced; 2-D nearest points of a triangular lattice (spacing = "
        "separation) to a random point, randomly rotated; D >= 3 with K0 <= D: separation / "
        "sqrt 2 times K0 random orthonormal directions (QR of a Gaussian matrix), so every "
        "pair is exactly the separation apart; D >= 3 with K0 > D: nearest points of the "
        "checkerboard lattice D_D (FCC in 3-D) scaled to nearest-neighbour distance = "
        "separation, randomly rotated.",
        "- Weights: equal = balanced counts; unequal (K0 = 4 only) = "
        + "/".join(f"{w:g}" for w in UNEQUAL)
        + ", counts by largest remainder.",
        f"- bayesmix: `fit(x, spec, engine=..., chains={st.chains}, draws=..., tune=..., "
        "classical=False, analyse_clusters=False, cores=1)`, data standardised by `fit`; "
        f"collapsed Gibbs: draws = {st.draws} (N <= 300) or {st.draws_large} (N = 1000) per "
        f"chain, tune = {st.tune}; blocked / telescoping Gibbs (engine 'gibbs', whose K+ "
        f"moves far less per sweep): draws = {st.draws_gibbs}, tune = {st.tune_gibbs}; specs: "
        + "; ".join(
            f"{SHORT[m]} = `models/{BAYES_SPECS[m][0]}.toml`, engine "
            f"'{BAYES_SPECS[m][1]}'" + (", kernel.covariance = 'auto'" if BAYES_SPECS[m][2] else "")
            for m in methods
            if m in BAYES
        )
        + (
            ". The telescope spec keeps every 2nd sweep (`gibbs_thin = 2`), so its chains run "
            "twice the sweeps"
            if "bayesmix_telescope" in methods
            else ""
        )
        + ". Answer: mode of K+ (DP, sparse finite) or of K (MFMs).",
        f"- EM + BIC: `GaussianMixture(K, covariance_type='full', n_init={st.n_init}, "
        f"random_state=seed)`, K = 1..{st.max_k}.",
        f"- EM + BIC over families: the same for covariance_type in {list(EM_FAMILIES)} (D >= "
        "2; 1-D: full), argmin of BIC over K and family, as mclust chooses among VII, VVI and "
        "VVV.",
        f"- VB: `BayesianGaussianMixture(n_components={st.max_k}, covariance_type='full', "
        "weight_concentration_prior_type='dirichlet_process', "
        f"max_iter={st.vb_max_iter}, random_state=seed)` (default weight concentration "
        f"1/{st.max_k}); answer = #weights > {st.vb_threshold}. "
        f"VB fits that hit max_iter: {meta.get('vb_not_converged', 0)}.",
        "- Times are wall seconds per fit, one process per fit, measured while the worker "
        "processes shared the machine's cores (with other users' load), so compare them with "
        "each other rather than as absolute numbers. bayesmix times include `fit`'s "
        "post-processing (DataTree, summary, diagnostics) and, for 'auto', the EM screen.",
        f"- Seeds: data set (D, separation index s, N, K0, rep) uses "
        f"`SeedSequence([{st.seed}, D, s, N, K0, rep])`, with a trailing 1 for unequal weights "
        "(so the first version's data sets are unchanged); one integer seed is drawn from it "
        "after the data. DP and sparse finite use that seed, EM and VB it mod 2^31 - 1 (as in "
        "the first version); the other methods `SeedSequence(entropy + [crc32(method)])`. "
        "All recorded in recovery.json.",
    ]
    return out


def reading(summary: dict[str, Any]) -> str:
    """The paragraph under 'Reading': every number is computed from the results."""
    h, rows, tg = summary["headline"], summary["settings"], summary.get("targets", {})
    methods = summary.get("methods") or [m for m in METHODS if m in h]

    def mean_of(m: str, key: str, pred: Callable[[dict], bool]) -> float:
        sel = [r[m][key] for r in rows if pred(r) and m in r and r[m]["n"]]
        return float(np.mean(sel)) if sel else math.nan

    def accs(pred: Callable[[dict], bool], ms: list[str] | None = None) -> str:
        return ", ".join(
            f"{SHORT[m]} {_pct(mean_of(m, 'accuracy', pred))}" for m in (ms or methods)
        )

    def has(pred: Callable[[dict], bool]) -> bool:
        return any(pred(r) for r in rows)

    parts: list[str] = []
    if tg:
        cand = candidate(tg, h)
        met_all = [k for k, t in tg.items() if t["all_met"] and ":" not in k]
        bic = next(iter(tg.values()))["overall"]["bic"]
        per = "; ".join(
            f"{vlabel(k)}: (1) {t['well_cells']['cells'] - len(t['well_cells']['failing'])}"
            f"/{t['well_cells']['cells']} cells, (2) {_pct(t['overall']['accuracy'])}, "
            f"(3) {_pct(t['coverage']['coverage_90'])}"
            for k, t in tg.items()
        )
        parts.append(
            "Targets: "
            + (
                "all three are met by " + ", ".join(vlabel(k) for k in met_all)
                if met_all
                else "no Bayesian method meets all three"
            )
            + f" (BIC's overall accuracy {_pct(bic)}; per answer {per})."
            + (
                f" Candidate default (most targets met, then overall accuracy, then coverage): "
                f"{METHOD_LABELS[cand]} ({tg[cand]['n_met']} of 3)."
                if cand
                else ""
            )
        )
    overall = ", ".join(f"{SHORT[m]} {_pct(h[m]['accuracy'])}" for m in methods)
    best = max(methods, key=lambda m: h[m]["accuracy"])
    under_overlap = {m: mean_of(m, "under", lambda r: r["sep"] == "overlap") for m in methods}
    text = (
        f"Overall accuracy: {overall} (best: {SHORT[best]}). Well separated: "
        + accs(lambda r: r["sep"] == "well")
        + "; overlapping (2.5 SD): "
        + accs(lambda r: r["sep"] == "overlap")
        + " (share of overlapping data sets answered below K0: "
        + ", ".join(f"{SHORT[m]} {_pct(v)}" for m, v in under_overlap.items())
        + ")"
    )
    if has(lambda r: r["sep"] == "overlap" and r["k0"] == 8):
        text += "; overlapping K0 = 8: " + accs(lambda r: r["sep"] == "overlap" and r["k0"] == 8)
    parts.append(text + ".")
    mfm = [m for m in methods if m in MFMS]
    if mfm:
        parts.append(
            "MFMs, K vs K+ as the answer: "
            + ", ".join(
                f"{SHORT[m]} {_pct(h[m]['accuracy'])} vs {_pct(h[m + ':K+']['accuracy'])} "
                f"(coverage {_pct(h[m].get('coverage_90'))} vs "
                f"{_pct(h[m + ':K+'].get('coverage_90'))})"
                for m in mfm
            )
            + "."
        )
    if has(lambda r: r["dim"] >= 3):
        parts.append("D = 3, 10, 20: " + accs(lambda r: r["dim"] >= 3) + ".")
    if has(lambda r: r.get("weights") == "unequal"):
        parts.append(
            "Unequal weights (K0 = 4, smallest 5%): "
            + accs(lambda r: r.get("weights") == "unequal")
            + "."
        )
    for m in AUTO:
        fam = summary.get("kernel_choice", {}).get(m)
        if fam:
            parts.append(
                f"{SHORT[m]} chose "
                + "; ".join(
                    f"D = {d}: " + ", ".join(f"{f} {c}" for f, c in sorted(v.items()))
                    for d, v in sorted(fam.items(), key=lambda t: int(t[0]))
                )
                + "."
            )
            break

    def dp_overlap_large(r: dict) -> bool:
        return r["sep"] == "overlap" and r["n"] == 1000 and r["k0"] in (2, 3)

    if "bayesmix_dp" in methods and "bayesmix_sparse" in methods and has(dp_overlap_large):
        parts.append(
            "DP vs sparse finite: with overlapping components at N = 1000 and K0 = 2 or 3 the "
            "DP over-counts in "
            f"{_pct(mean_of('bayesmix_dp', 'over', dp_overlap_large))} of the data sets against "
            f"{_pct(mean_of('bayesmix_sparse', 'over', dp_overlap_large))} for the sparse finite "
            "mixture (the DP's posterior on K+ puts mass on small extra clusters as N grows; "
            "Miller & Harrison 2013); 90% coverage "
            f"{_pct(h['bayesmix_dp']['coverage_90'])} vs "
            f"{_pct(h['bayesmix_sparse']['coverage_90'])}, mean P(K+ = K0) "
            f"{_pct(h['bayesmix_dp']['mean_p_true'])} vs "
            f"{_pct(h['bayesmix_sparse']['mean_p_true'])}; these are frequentist coverages "
            "under a fixed truth, not the prior-averaged calibration that SBC checks, so they "
            "need not be 90%."
        )

    def big_1d(r: dict) -> bool:
        return r["dim"] == 1 and r["sep"] == "well" and r["n"] == 100 and r["k0"] >= 5

    if has(big_1d):
        conj = [
            m for m in methods if m in BAYES and BAYES_SPECS[m][0] in ("dp", "sparse_finite", "mfm")
        ]
        semi = [m for m in methods if m in ("bayesmix_telescope", "bayesmix_sparse_semi")]
        text = (
            "Many narrow, well-separated 1-D components at N = 100 (K0 = 5 and 8): "
            + accs(big_1d)
            + ". After standardisation these components have SD about 0.12 (K0 = 5) and 0.07 "
            "(K0 = 8), far below what the conjugate kernel prior sigma^2 ~ IG(a0 = 2, "
            "b0 = 0.25) of "
            + (", ".join(SHORT[m] for m in conj) or "the conjugate specs")
            + " expects (prior mean 0.25), so with 12-20 points per component merging wins "
            "there; at N = 1000 the data override the prior"
        )
        if semi:
            text += (
                "; the semi-conjugate hierarchical kernel ("
                + ", ".join(SHORT[m] for m in semi)
                + ") learns the scale from the data (C0 | Sigma)"
            )
        parts.append(text + ".")
    sens_rows = [r for r in summary.get("sensitivity", []) if r["sep"] == "well"]
    sm = [m for m in SENS if sens_rows and all(f"{m}_default" in r for r in sens_rows)]
    if sm:
        acc = {
            (m, t): float(np.mean([r[f"{m}_{t}"]["accuracy"] for r in sens_rows]))
            for m in sm
            for t in ("default", "small_b0")
        }
        ans = {
            (m, t): float(np.mean([r[f"{m}_{t}"]["mean_answer"] for r in sens_rows]))
            for m in sm
            for t in ("default", "small_b0")
        }
        parts.append(
            "Refitting those data sets with a 10x smaller scale prior (b0 = psi0 = 0.025) "
            "moves the accuracy "
            + "; ".join(
                f"of {SHORT[m]} from {_pct(acc[m, 'default'])} to {_pct(acc[m, 'small_b0'])} "
                f"(mean answer {ans[m, 'default']:.1f} -> {ans[m, 'small_b0']:.1f})"
                for m in sm
            )
            + " (truth 5 and 8, mean 6.5): with the conjugate kernel the answer for such data "
            "is driven by the kernel prior; see 'Prior sensitivity'."
        )
    if "vb_dp" in methods and "em_bic" in methods and has(lambda r: r["k0"] == 1):
        parts.append(
            "VB (sklearn defaults, weight > 0.02) at K0 = 1: "
            f"{_pct(mean_of('vb_dp', 'accuracy', lambda r: r['k0'] == 1))} correct vs "
            f"{_pct(mean_of('em_bic', 'accuracy', lambda r: r['k0'] == 1))} for BIC."
        )
    ns = sorted({r["n"] for r in rows})
    cost = "; ".join(
        f"{SHORT[m]} " + " / ".join(_secs(h[m].get(f"seconds_N{n}")) for n in ns) for m in methods
    )
    parts.append(
        "Seconds per fit (N = " + " / ".join(str(n) for n in ns) + "): " + cost + "; the "
        "Bayesian methods are the only ones here that say how sure they are."
    )
    return " ".join(parts)


# --------------------------------------------------------------------------
# Grid, plan, main
# --------------------------------------------------------------------------


def cases(
    reps_small: int,
    reps_large: int,
    grid: str = "default",
    dims: tuple[int, ...] | None = None,
    ns: tuple[int, ...] | None = None,
    k0s: tuple[int, ...] | None = None,
) -> list[Case]:
    """The data sets of a named grid (reps_small replicates at N = 100, reps_large at larger
    N), optionally restricted to some D, N and K0."""
    out, seen = [], set()
    for b in GRIDS[grid]:
        for dim, sep, n, k0 in itertools.product(b.dims, b.seps, b.ns, b.k0s):
            if (dims and dim not in dims) or (ns and n not in ns) or (k0s and k0 not in k0s):
                continue
            for rep in range(reps_small if n == 100 else reps_large):
                c = Case(k0, dim, sep, n, rep, b.weights)
                if c not in seen:
                    seen.add(c)
                    out.append(c)
    return out


def fit_seconds(records: list[dict]) -> dict[str, dict[tuple[int, int], list[float]]]:
    """Seconds per successful fit (less numba compilation, paid once per worker process) by
    method and (D, N), from partial-file records (tagged "_file": only the last file's)."""
    out: dict[str, dict[tuple[int, int], list[float]]] = {}
    for rec in records:
        res = rec["result"]
        if not _ok(res):
            continue
        small = res.get("small_b0") or {}
        secs = res["seconds"] - res.get("compile_s", 0.0)
        secs += small.get("seconds", 0.0) - small.get("compile_s", 0.0)
        key = (rec["case"]["dim"], rec["case"]["n"])
        out.setdefault(rec["method"], {}).setdefault(key, []).append((rec.get("_file", 0), secs))
    return {
        m: {k: [s for f, s in v if f == max(f for f, _ in v)] for k, v in per.items()}
        for m, per in out.items()
    }


def estimate(
    todo: list[Case], methods: list[str], secs: dict[str, dict[tuple[int, int], list[float]]]
) -> dict[str, float | None]:
    """Expected fit seconds per method for the data sets ``todo``: the mean time measured at
    the same (D, N), else at the nearest D with the same N, else at the nearest N scaled
    linearly in N; None without any measurement."""
    out: dict[str, float | None] = {}
    for m in methods:
        have = secs.get(m) or {}
        if not have:
            out[m] = None
            continue
        total = 0.0
        for c in todo:
            if (c.dim, c.n) in have:
                total += float(np.mean(have[c.dim, c.n]))
                continue
            same_n = [k for k in have if k[1] == c.n]
            if same_n:
                k = min(same_n, key=lambda k: abs(k[0] - c.dim))
                total += float(np.mean(have[k]))
                continue
            k = min(have, key=lambda k: (abs(math.log(k[1] / c.n)), abs(k[0] - c.dim)))
            total += float(np.mean(have[k])) * c.n / k[1]
        out[m] = total
    return out


def print_plan(
    grids: list[str], reps: tuple[int, int], methods: list[str], records: list[dict], jobs: int,
    restrict: dict, source: str,
) -> None:  # fmt: skip
    """Data sets per grid and the expected fit time per method (from recorded fits)."""
    secs = fit_seconds(records)
    measured = sum(len(v) for per in secs.values() for v in per.values())
    print(f"time per fit from {measured} recorded fits in {source}" if measured else
          "no recorded fits to estimate times from (run a smoke run first)")  # fmt: skip
    for m in methods:
        per = secs.get(m) or {}
        if per:
            txt = ", ".join(f"{d}-D N={n}: {np.mean(v):.1f}s" for (d, n), v in sorted(per.items()))
            print(f"  {m}: {txt}")
    for g in grids:
        todo = cases(*reps, grid=g, **restrict)
        cells = len({(c.dim, c.sep, c.n, c.k0, c.weights) for c in todo})
        est = estimate(todo, methods, secs)
        print(f"grid {g}: {len(todo)} data sets in {cells} cells ({len(todo) * len(methods)} fits)")
        known = [v for v in est.values() if v is not None]
        for m in methods:
            v = est[m]
            print(f"  {m}: " + ("no timing" if v is None else f"~{v / 3600:.2f} CPU-hours"))
        if known:
            print(
                f"  total ~{sum(known) / 3600:.1f} CPU-hours, ~{sum(known) / 3600 / max(jobs, 1):.1f}"
                f" h wall with --jobs {jobs} (timings taken under the load of the smoke run)"
            )


def _ints(text: str | None) -> tuple[int, ...] | None:
    return tuple(int(t) for t in text.split(",")) if text else None


def _methods(text: str | None) -> list[str]:
    if not text:
        return list(METHODS)
    out = [t.strip() for t in text.split(",") if t.strip()]
    bad = [m for m in out if m not in METHODS]
    if bad:
        raise SystemExit(f"unknown method(s) {', '.join(bad)}; choose from {', '.join(METHODS)}")
    return [m for m in METHODS if m in out]


def _settings_from(d: dict) -> Settings:
    names = {f.name for f in dataclasses.fields(Settings)}
    return Settings(**{k: v for k, v in d.items() if k in names})


def render(out: Path, results: list[dict], st: Settings, meta: dict[str, Any]) -> dict:
    """recovery.json, recovery.png and recovery.md from per-data-set results."""
    summary = summarise(results)
    meta = dict(meta)
    meta["vb_not_converged"] = sum(
        not r["vb_dp"].get("converged", True) for r in results if _ok(r.get("vb_dp"))
    )
    meta["errors"] = [
        f"{Case(**r['case']).setting} rep {r['case']['rep']}, {m}: {r[m]['error']}"
        for r in results
        for m in METHODS
        if isinstance(r.get(m), dict) and "error" in r[m]
    ]
    meta["reading"] = reading(summary)
    write_json(
        out / "recovery.json",
        {"meta": meta, "settings": dataclasses.asdict(st), "summary": summary,
         "results": results},
    )  # fmt: skip
    plot(summary, out / "recovery.png")
    (out / "recovery.md").write_text(write_report(summary, st, meta, meta.get("reps", {})))
    return summary


def _render_partial(out: Path, meta_extra: dict) -> dict | None:
    part = out / PARTIAL
    header, records, sessions, bad = read_partial(part)
    if bad:
        print(f"{part}: skipped {bad} unreadable line(s)", file=sys.stderr)
    if not records:
        print(f"{part}: no finished fits to report", file=sys.stderr)
        return None
    st = _settings_from(header.get("settings", {}))
    meta = provenance(header.get("argv") or ["benchmarks.recovery"])
    meta["git"] = header.get("git", meta["git"])
    walls = [s.get("wall_s") for s in sessions if s.get("wall_s") is not None]
    meta.update(
        wall_s=sum(walls) if walls else None,
        sessions=max(len(sessions), 1),
        jobs=max([s.get("jobs", 1) for s in sessions] or [1]),
        commands=[s.get("command") for s in sessions],
    )
    if sessions:
        meta["date"] = sessions[-1].get("date", meta["date"])
        meta["command"] = sessions[-1].get("command", meta["command"])
        meta["grid"] = sessions[-1].get("grid", meta.get("grid", "default"))
        meta["quick"] = sessions[-1].get("quick", False)
        meta["restrict"] = sessions[-1].get("restrict")
    meta.update(meta_extra)
    return render(out, assemble(records), st, meta)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.recovery", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--grid", choices=tuple(GRIDS), default="default", help="named grid of cells")
    ap.add_argument("--quick", action="store_true", help="3 reps at N = 100, 1 at larger N")
    ap.add_argument("--reps", type=int, default=20, help="replicates per cell")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument(
        "--scheduler",
        default=None,
        help="'local' (a Dask LocalCluster of --jobs workers) or a Dask scheduler address "
        "(default: --jobs local worker processes)",
    )
    ap.add_argument("--seed", type=int, default=Settings.seed)
    ap.add_argument("--batch", type=int, default=1, help="(data set, method) pairs per task")
    ap.add_argument(
        "--methods", default=None, help=f"comma list (default all: {','.join(METHODS)})"
    )
    ap.add_argument("--dims", default=None, help="restrict the grid to these D (comma list)")
    ap.add_argument("--ns", default=None, help="restrict the grid to these N (comma list)")
    ap.add_argument("--k0s", default=None, help="restrict the grid to these K0 (comma list)")
    ap.add_argument("--out", default=None, help="output folder (default reports/validation)")
    ap.add_argument("--resume", action="store_true", help=f"skip the pairs in <out>/{PARTIAL}")
    ap.add_argument(
        "--retry-errors", action="store_true", help="with --resume: rerun the failed pairs"
    )
    ap.add_argument(
        "--plan", action="store_true",
        help="print the data sets per grid and the expected time per method (from the fits "
        f"recorded in <out>/{PARTIAL} or --timings) and exit",
    )  # fmt: skip
    ap.add_argument(
        "--timings", default=None, help=f"{PARTIAL} file(s), comma list, for --plan's times"
    )
    ap.add_argument(
        "--render-only",
        action="store_true",
        help=f"rebuild recovery.md / .png / .json from <out>/{PARTIAL} (or, without one, from "
        "the results in <out>/recovery.json)",
    )
    args = ap.parse_args(argv)
    argv_list = list(argv if argv is not None else sys.argv[1:])
    out = Path(args.out) if args.out else REPORT_DIR / "quick" if args.quick else REPORT_DIR
    part = out / PARTIAL
    methods = _methods(args.methods)
    restrict = {"dims": _ints(args.dims), "ns": _ints(args.ns), "k0s": _ints(args.k0s)}
    reps_small, reps_large = (3, 1) if args.quick else (args.reps, args.reps)

    if args.plan:
        srcs = [Path(t) for t in args.timings.split(",")] if args.timings else [part]
        records = [  # "_file": a later file's times of a (method, D, N) replace an earlier's
            r | {"_file": i}
            for i, src in enumerate(srcs)
            if src.exists()
            for r in read_partial(src)[1]
        ]
        print_plan(list(GRIDS), (reps_small, reps_large), methods, records, args.jobs,
                   restrict, ", ".join(map(str, srcs)))  # fmt: skip
        return 0

    if args.render_only:
        if part.exists():
            if _render_partial(out, {}) is None:
                return 1
        else:
            saved = json.loads((out / "recovery.json").read_text())
            st, meta, results = _settings_from(saved["settings"]), saved["meta"], saved["results"]
            render(out, results, st, meta)
        print(f"re-rendered {out / 'recovery.md'}")
        return 0

    st = Settings(seed=args.seed)
    todo = cases(reps_small, reps_large, args.grid, **restrict)
    session = {
        "command": "python -m benchmarks.recovery " + " ".join(argv_list),
        "grid": args.grid,
        "quick": args.quick,
        "restrict": {k: v for k, v in restrict.items() if v} or None,
    }
    summary, n_done, interrupted = run_study(
        out, st, todo, methods, jobs=args.jobs, batch=args.batch, resume=args.resume,
        scheduler=args.scheduler,
        retry_errors=args.retry_errors, session=session,
        argv=["benchmarks.recovery", *argv_list],
    )  # fmt: skip
    if summary is not None:
        for key, x in summary["headline"].items():
            acc, cov = _pct(x["accuracy"]), _pct(x.get("coverage_90"))
            print(f"{key}: accuracy {acc}, 90% coverage {cov}, errors {x['errors']}")
        for key, t in summary["targets"].items():
            print(f"targets {key}: {t['n_met']} of 3 met")
    print(f"wrote {out / 'recovery.md'}")
    if not interrupted:
        full = ap.get_default("reps")
        print_plan(list(GRIDS), (full, full), methods, read_partial(part)[1], args.jobs,
                   {k: None for k in restrict}, str(part))  # fmt: skip
    return 130 if interrupted else 0


def run_study(
    out: Path,
    st: Settings,
    todo: list[Case],
    methods: list[str],
    *,
    jobs: int = 1,
    batch: int = 1,
    resume: bool = False,
    scheduler: str | None = None,
    retry_errors: bool = False,
    session: dict | None = None,
    argv: list[str] | None = None,
) -> tuple[dict | None, int, bool]:
    """Run every (data set, method) pair of ``todo`` x ``methods`` not yet in
    <out>/recovery_partial.jsonl (with ``resume``; otherwise a previous partial file is kept
    under a time-stamped name and a new one started), appending each finished batch, then
    render the report from the partial file.  Returns (summary, fits run, interrupted)."""
    out.mkdir(parents=True, exist_ok=True)
    part = out / PARTIAL
    header = {
        "settings": dataclasses.asdict(st),
        "argv": argv or ["benchmarks.recovery"],
        "created": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git": git_revision(),
    }
    done: set[tuple] = set()
    if resume and not part.exists() and (out / "recovery.json").exists():
        append_lines(part, partial_from_report(out / "recovery.json"))
        print(f"--resume: {part} rebuilt from {out / 'recovery.json'}", file=sys.stderr)
    if part.exists() and resume:
        old, records, _, bad = read_partial(part)
        if old.get("settings") != header["settings"]:
            raise SystemExit(
                f"--resume: {part} was made with other settings ({old.get('settings')}); "
                "use another --out or the same --seed"
            )
        done = {pair_key(r) for r in records if not retry_errors or _ok(r["result"])}
        print(f"resuming: {len(done)} finished pair(s) in {part}"
              + (f" ({bad} unreadable line(s) skipped)" if bad else ""), file=sys.stderr)  # fmt: skip
    else:
        if part.exists():
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            keep = part.with_name(f"recovery_partial.{stamp}.jsonl")
            part.rename(keep)
            print(f"kept the previous partial file as {keep} (use --resume to continue one)",
                  file=sys.stderr)  # fmt: skip
        append_lines(part, [{"header": header}])
    pairs = []
    for c in todo:
        entropy = tuple(case_entropy(c, st))
        pairs += [(c, m) for m in methods if (entropy, m) not in done]
    # replicate by replicate (a stopped study holds whole replicates of every cell), big data
    # sets first within each so the pool drains evenly
    pairs.sort(key=lambda p: (p[0].rep, -p[0].n, -p[0].dim, -p[0].k0, p[0].sep, p[0].weights,
                              METHODS.index(p[1])))  # fmt: skip
    tasks = [pairs[i : i + batch] for i in range(0, len(pairs), batch)]
    print(
        f"{len(todo)} data sets x {len(methods)} method(s); {len(pairs)} fit(s) to run in "
        f"{len(tasks)} task(s) with --jobs {jobs}",
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    n_done, interrupted = 0, False
    try:
        for recs in run_pairs(tasks, st, jobs, scheduler):
            append_lines(part, recs)
            n_done += len(recs)
            el = time.perf_counter() - t0
            print(
                f"[recovery] {n_done}/{len(pairs)} fits, {el:.0f}s elapsed, "
                f"~{el / n_done * (len(pairs) - n_done):.0f}s left",
                file=sys.stderr,
            )
    except KeyboardInterrupt:
        interrupted = True
        print(f"\ninterrupted: {n_done} fit(s) of this session kept in {part}; continue with "
              "--resume", file=sys.stderr)  # fmt: skip
    except BrokenExecutor as exc:  # a worker died (a crash, out of memory): keep the rest
        interrupted = True
        print(f"\nstopped: a worker process died ({exc}); {n_done} fit(s) of this session "
              f"kept in {part}; continue with --resume", file=sys.stderr)  # fmt: skip
    wall = time.perf_counter() - t0
    sess = (session or {}) | {
        "wall_s": wall,
        "jobs": jobs,
        "fits": n_done,
        "interrupted": interrupted,
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    append_lines(part, [{"session": sess}])
    print(f"wall time {wall:.0f}s", file=sys.stderr)
    return _render_partial(out, {}), n_done, interrupted


if __name__ == "__main__":
    # main() of the module imported by name: the functions sent to the workers are then
    # pickled by reference (benchmarks.recovery.run_batch), as a Dask cluster needs, not by value
    from benchmarks.recovery import main as _main

    raise SystemExit(_main())
