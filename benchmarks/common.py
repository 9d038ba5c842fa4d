"""Helpers shared by the SBC and recovery studies: ESS, ranks, uniformity tests, ECDF bands,
the mixture log-likelihood, the loop of tasks (through bayesmix.executor) and provenance records."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats
from scipy.special import logsumexp

ROOT = Path(__file__).resolve().parents[1]
REPORT_DIR = ROOT / "reports" / "validation"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


# --------------------------------------------------------------------------
# MCMC effective sample size
# --------------------------------------------------------------------------


def ess(x: np.ndarray) -> float:
    """Multi-chain ESS of draws x (C, S) (Vehtari et al. 2021, without rank normalisation).

    rho_t = 1 - (W - mean_c acov_ct) / var+, var+ = (S - 1)/S W + B/S; Geyer's initial
    monotone sequence on the pair sums P_t = rho_2t + rho_2t+1; ESS = C S / (-1 + 2 sum P_t).
    Returns nan when every draw is identical (nothing to estimate).
    """
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[None, :]
    c, s = x.shape
    if s < 4 or not np.all(np.isfinite(x)):
        return math.nan
    xc = x - x.mean(axis=1, keepdims=True)
    nfft = 1 << int(math.ceil(math.log2(2 * s)))
    f = np.fft.rfft(xc, n=nfft, axis=1)
    acov = np.fft.irfft(f * np.conj(f), n=nfft, axis=1)[:, :s] / s
    w = float(np.mean(acov[:, 0] * s / (s - 1.0)))
    b_over_s = float(np.var(x.mean(axis=1), ddof=1)) if c > 1 else 0.0
    var_plus = w * (s - 1.0) / s + b_over_s
    if not var_plus > 1e-300:
        return math.nan
    rho = 1.0 - (w - acov.mean(axis=0)) / var_plus
    rho[0] = 1.0
    tau, prev = -1.0, math.inf
    for t in range(0, s - 1, 2):
        p = rho[t] + rho[t + 1]
        if p <= 0.0:
            break
        p = min(p, prev)
        tau += 2.0 * p
        prev = p
    tau = max(tau, 1.0 / math.log10(c * s))  # Stan's cap: ESS <= C S log10(C S)
    return c * s / tau


# --------------------------------------------------------------------------
# Ranks and uniformity tests
# --------------------------------------------------------------------------


def rank_statistic(draws: np.ndarray, truth: float, rng: np.random.Generator) -> int:
    """#{draws < truth} + U{0, ..., #{draws == truth}}: ties broken uniformly at random (as the
    R package SBC does), so the rank is uniform on 0..L for any (even discrete) quantity."""
    draws = np.asarray(draws)
    below = int(np.sum(draws < truth))
    ties = int(np.sum(draws == truth))
    return below + int(rng.integers(0, ties + 1))


def chi2_uniform(ranks: np.ndarray, n_ranks: int, bins: int = 20) -> tuple[float, float]:
    """Pearson chi-square test that ranks are uniform on 0..n_ranks-1, in ``bins`` equal bins
    (n_ranks must be a multiple of bins): X^2 = sum_b (O_b - E)^2 / E ~ chi2(bins - 1)."""
    if n_ranks % bins:
        raise ValueError(f"{n_ranks} rank values do not split into {bins} equal bins")
    ranks = np.asarray(ranks, dtype=int)
    counts = np.bincount(ranks * bins // n_ranks, minlength=bins)
    expected = len(ranks) / bins
    stat = float(np.sum((counts - expected) ** 2) / expected)
    return stat, float(stats.chi2.sf(stat, bins - 1))


@cache
def ecdf_band(
    n: int, n_ranks: int, level: float = 0.95, n_sim: int = 4000, seed: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Simultaneous band for the ECDF of n ranks uniform on 0..n_ranks-1 (Saeilynoja, Buerkner
    & Vehtari 2022, their simulation method).

    At z_i = i / n_ranks (i = 1..n_ranks-1), n F(z_i) ~ Binomial(n, z_i) under uniformity.
    Simulate uniform rank sets, take each set's smallest two-sided pointwise binomial tail
    probability, and set gamma to its (1 - level) quantile; the band is the pointwise
    [gamma/2, 1 - gamma/2] binomial quantiles.  Returns (z, lower - z, upper - z, gamma) on the
    ECDF-difference scale.
    """
    rng = np.random.default_rng(seed)
    z = np.arange(1, n_ranks) / n_ranks
    counts = rng.multinomial(n, np.full(n_ranks, 1.0 / n_ranks), size=n_sim)
    cum = np.cumsum(counts, axis=1)[:, :-1]
    pmin = np.min(_two_sided(cum, n, z), axis=1)
    gamma = float(np.quantile(pmin, 1.0 - level))
    lo = stats.binom.ppf(gamma / 2.0, n, z) / n - z
    hi = stats.binom.ppf(1.0 - gamma / 2.0, n, z) / n - z
    return z, lo, hi, gamma


def _two_sided(cum: np.ndarray, n: int, z: np.ndarray) -> np.ndarray:
    """2 min(P(X <= c), P(X >= c)) for X ~ Binomial(n, z), capped at 1."""
    lower = stats.binom.cdf(cum, n, z)
    upper = stats.binom.sf(cum - 1, n, z)
    return np.minimum(1.0, 2.0 * np.minimum(lower, upper))


def ecdf_diff(ranks: np.ndarray, n_ranks: int) -> tuple[np.ndarray, np.ndarray]:
    """(z_i, F_hat(z_i) - z_i), F_hat(z_i) = #{r < i} / n at z_i = i / n_ranks."""
    ranks = np.asarray(ranks, dtype=int)
    z = np.arange(1, n_ranks) / n_ranks
    cum = np.cumsum(np.bincount(ranks, minlength=n_ranks))[:-1] / len(ranks)
    return z, cum - z


def inside_band(ranks: np.ndarray, n_ranks: int, level: float = 0.95) -> bool:
    """Whether the rank ECDF stays inside the simultaneous ``level`` band everywhere."""
    _, diff = ecdf_diff(ranks, n_ranks)
    _, lo, hi, _ = ecdf_band(len(ranks), n_ranks, level)
    return bool(np.all(diff >= lo - 1e-12) and np.all(diff <= hi + 1e-12))


# --------------------------------------------------------------------------
# Mixture log-likelihood (numpy, independent of the engines' numba code)
# --------------------------------------------------------------------------


def mixture_loglik(
    x: np.ndarray, w: np.ndarray, mu: np.ndarray, cov: np.ndarray, chunk: int = 256
) -> np.ndarray:
    """sum_i log sum_k w_k N(x_i | mu_k, Sigma_k) per draw; components with w_k = 0 skipped.

    x (N, D); w (S, K), mu (S, K, D), cov (S, K, D, D) -> (S,).
    """
    x = np.asarray(x, dtype=float)
    n, d = x.shape
    w, mu, cov = np.atleast_2d(w), np.asarray(mu), np.asarray(cov)
    s_tot = w.shape[0]
    out = np.empty(s_tot)
    for a in range(0, s_tot, chunk):
        b = min(a + chunk, s_tot)
        chol = np.linalg.cholesky(cov[a:b])  # (s, K, D, D)
        diff = x[None, None, :, :] - mu[a:b, :, None, :]  # (s, K, N, D)
        y = np.linalg.solve(chol, np.swapaxes(diff, -1, -2))  # (s, K, D, N)
        maha = np.sum(y**2, axis=-2)  # (s, K, N)
        logdet = np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)  # (s, K)
        with np.errstate(divide="ignore"):
            logw = np.where(w[a:b] > 0, np.log(np.where(w[a:b] > 0, w[a:b], 1.0)), -np.inf)
        lp = (logw - logdet - 0.5 * d * math.log(2 * math.pi))[:, :, None] - 0.5 * maha
        out[a:b] = logsumexp(lp, axis=1).sum(axis=1)
    return out


# --------------------------------------------------------------------------
# Process pool, provenance, output
# --------------------------------------------------------------------------


def single_thread_env() -> None:
    """One BLAS/OpenMP/numba thread per process (workers inherit it): no oversubscription."""
    for var in THREAD_VARS:
        os.environ.setdefault(var, "1")


def run_tasks(
    fn: Callable[..., Any],
    tasks: Iterable[tuple],
    jobs: int,
    label: str = "",
    scheduler: str | None = None,
) -> Iterator[Any]:
    """Yield fn(*task) for every task, in completion order, through ``bayesmix.executor``:
    in-process when jobs <= 1, else ``jobs`` spawned worker processes, or a Dask cluster
    (``scheduler``: "local" or an address). Progress goes to stderr. A task's exception is
    raised here; a worker that dies has its task retried once, then ``WorkerLost`` (a
    ``BrokenExecutor``) is raised. Closing the generator (Ctrl-C in the loop over it) cancels
    the queued tasks and stops the workers, so a stopped study stops."""
    from bayesmix.executor import Executor

    tasks = list(tasks)
    t0 = time.perf_counter()
    if jobs > 1 or scheduler:
        single_thread_env()
    # in-process runs keep the BLAS threads they have, as before the executor
    with Executor(max(1, jobs), scheduler, single_thread=False) as ex:
        for j, outcome in enumerate(ex.map(fn, list(enumerate(tasks))), 1):
            _progress(label, j, len(tasks), t0)
            yield outcome.result()


def _progress(label: str, j: int, n: int, t0: float) -> None:
    el = time.perf_counter() - t0
    eta = el / j * (n - j)
    print(f"[{label}] {j}/{n} tasks, {el:.0f}s elapsed, ~{eta:.0f}s left", file=sys.stderr)


def git_revision() -> str:
    """HEAD commit of the repository (read-only), '+dirty' when the tree has local changes."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance(argv: list[str] | None = None) -> dict[str, Any]:
    """Versions (bayesmix.versions), git revision, command, machine and date."""
    from bayesmix.versions import versions

    try:
        import sklearn

        skl = sklearn.__version__
    except ImportError:
        skl = "not installed"
    return {
        "versions": versions() | {"scikit-learn": skl},
        "git": git_revision(),
        "command": "python -m " + " ".join(argv if argv is not None else sys.argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(f"not JSON-serialisable: {type(o)}")


def write_json(path: Path, obj: Any) -> None:
    """Write obj as JSON (numpy scalars/arrays converted; non-finite floats -> null)."""
    from bayesmix.io import write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_finite(obj), default=_json_default, indent=1)
    write_text(path, text + "\n")  # atomic: a stopped run never leaves half a file


def _finite(o: Any) -> Any:
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def fmt_p(p: float) -> str:
    """p-value for a table: 3 significant digits, scientific below 1e-3."""
    if p is None or not math.isfinite(p):
        return "–"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"
