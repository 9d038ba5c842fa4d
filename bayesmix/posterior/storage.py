"""What a fit keeps of its draws: the storage policy for allocations and the pointwise
log-likelihood, and the memory estimate that ``fit`` checks before sampling.

Pure functions of the sizes (N observations, C chains, S draws per chain, K components, D
features). The rules (docs/architecture.md, "Storage policy"):

* allocations z: the smallest integer type that holds the labels (int8 for K < 128); kept
  for every draw while draws x N <= ``Z_LABEL_CAP`` (1e8 labels), else for
  floor(1e8 / N) draws in all, evenly thinned within each chain (the same draw indices in
  every chain); K+ is kept for every draw;
* pointwise log-likelihood (for PSIS-LOO): float32, for a fixed random subsample of
  m = min(N, ``LOO_MAX_OBS``) observations (drawn from N alone, so every model fitted to the
  same data gets the same subsample) and at most min(``MAX_LL_DRAWS``,
  ``LL_VALUE_CAP`` / m) draws; its per-draw sum over all N rows is kept for every draw.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

Z_LABEL_CAP = 100_000_000  # stored labels z (draws x N): 100 MB as int8
MAX_LL_DRAWS = 4000
LOO_MAX_OBS = 5000  # PSIS-LOO on a fixed random subsample of this many rows when N is larger
LL_VALUE_CAP = 10_000_000  # stored pointwise log-likelihood values (40 MB as float32)
LOO_SUBSAMPLE_SEED = 20150  # the subsample depends on N only
MEMORY_ENV = "BAYESMIX_MEMORY_LIMIT"  # bytes (suffixes K, M, G accepted), overrides the machine


def label_dtype(k: int) -> np.dtype:
    """The smallest signed integer type that holds labels 0..k-1."""
    for dt in (np.int8, np.int16, np.int32):
        if k - 1 <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.int64)


def even_rows(total: int, rows: int) -> np.ndarray:
    """The ``rows`` draws s of 0..total-1 with (s * rows) mod total < rows (s = 0 included):
    evenly spaced, exactly ``rows`` of them (rows <= total); draw s goes to row
    s * rows // total. The Gibbs kernels use the same rule when they store z."""
    rows = max(1, min(int(rows), int(total)))
    s = np.arange(total, dtype=np.int64)
    return np.flatnonzero((s * rows) % total < rows)


@dataclass(frozen=True)
class StoragePlan:
    """How many draws of z and of the pointwise log-likelihood a fit keeps (per chain), and
    the LOO subsample size."""

    n_obs: int
    chains: int
    draws: int  # per chain
    z_draws: int  # per chain
    ll_draws: int  # per chain
    loo_obs: int
    reason: str = ""  # why storage was thinned beyond the defaults (memory), or ""

    @property
    def z_thinned(self) -> bool:
        return self.z_draws < self.draws

    def z_index(self) -> np.ndarray:
        """Draw indices (within each chain) whose z is stored."""
        return even_rows(self.draws, self.z_draws)

    def ll_index(self) -> np.ndarray:
        """Draw indices (within each chain) whose pointwise log-likelihood is stored."""
        return even_rows(self.draws, self.ll_draws)

    def loo_rows(self) -> np.ndarray:
        """The rows (sorted) whose pointwise log-likelihood is stored."""
        return loo_subsample(self.n_obs, self.loo_obs)

    def to_dict(self) -> dict:
        c = self.chains
        return {
            "z_draws": self.z_draws * c,
            "z_draws_of": self.draws * c,
            "log_likelihood_draws": self.ll_draws * c,
            "loo_observations": self.loo_obs,
            "n_obs": self.n_obs,
            "rule": (
                f"z for at most {Z_LABEL_CAP:.0e} labels (draws x N), evenly thinned per "
                f"chain; pointwise log-likelihood (float32) for "
                f"min(N, {LOO_MAX_OBS}) random rows and at most {MAX_LL_DRAWS} draws"
            ),
            "reason": self.reason,
        }


def loo_subsample(n: int, m: int) -> np.ndarray:
    """m of the n rows (sorted), a fixed function of (n, m): all rows when m >= n."""
    if m >= n:
        return np.arange(n)
    rng = np.random.default_rng(np.random.SeedSequence([LOO_SUBSAMPLE_SEED, n]))
    return np.sort(rng.choice(n, m, replace=False))


def plan_storage(n: int, chains: int, draws: int, label_cap: float = Z_LABEL_CAP) -> StoragePlan:
    """The default storage plan (module docstring) for N = n rows, chains x draws."""
    total = chains * draws
    z_total = min(total, max(chains, int(label_cap // max(n, 1))))
    m = min(n, LOO_MAX_OBS)
    ll_total = min(total, MAX_LL_DRAWS, max(chains, LL_VALUE_CAP // m))
    return StoragePlan(
        n_obs=n,
        chains=chains,
        draws=draws,
        z_draws=max(1, z_total // chains),
        ll_draws=max(1, ll_total // chains),
        loo_obs=m,
    )


# --------------------------------------------------------------------------- memory


def parse_bytes(text: str) -> int:
    """'3G', '512M', '2e9', '1500000K' -> bytes (powers of 1024 for K, M, G, T)."""
    t = str(text).strip().upper().removesuffix("B")
    mult = 1
    for i, suf in enumerate("KMGT", start=1):
        if t.endswith(suf):
            mult, t = 1024**i, t[:-1]
            break
    return int(float(t) * mult)


def available_memory() -> tuple[int | None, str]:
    """Bytes this fit may use and where that number comes from: ``BAYESMIX_MEMORY_LIMIT``, else
    MemAvailable of /proc/meminfo, else the physical memory (os.sysconf); (None, ...) if none
    can be read."""
    env = os.environ.get(MEMORY_ENV)
    if env:
        try:
            return parse_bytes(env), f"{MEMORY_ENV}={env}"
        except ValueError:
            pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "MemAvailable (/proc/meminfo)"
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "physical memory"
    except (ValueError, OSError, AttributeError):
        return None, "unknown"


def memory_estimate(
    n: int, d: int, k: int, chains: int, draws: int, plan: StoragePlan, native_z: bool = True
) -> dict:
    """Bytes a fit needs at its peak, by the formula (all terms in bytes):

        data      = 8 N D x 12 + 8 N x 16 (values, standardised and engine copies, reading;
                                         the per-row outputs: memberships, assignments.csv)
        params    = 8 C S K (1 + 2D + 2D^2)   (w, mu, Sigma in the engine and in data units)
        z         = b C S_z N + 4 C S N [collapsed only: it needs every draw's z]
                    + 8 S_z' N            (b the label type's size; one int64 chunk copy bound)
        loglik    = 4 C S_ll m + 8 N x 2^22 / N  (stored float32 + the chunked temporaries)
        analysis  = 8 N K' x 3 + 8 x 3000^2  (count table and memberships; the PSM of SALSO)

    with S_z, S_ll the stored draws per chain, m the LOO subsample, K' = min(K, 64);
    ``native_z`` False: a sampler that keeps all draws' z while sampling (collapsed).
    Returns each term and the total, plus 700 MB for the interpreter and libraries (numba,
    xarray, matplotlib, scikit-learn: a galaxy fit peaks at ~630 MB). Calibrated on
    reports/benchmarks/large_n_storage.md: at N = 1e6, D = 2, 2 x 500 draws, K = 20 it gives
    1.9 GB against a measured peak RSS of 1.8 GB.
    """
    c, s = chains, draws
    b = label_dtype(k).itemsize
    terms = {
        "data": 8 * n * d * 12 + 8 * n * 16,
        "params": 8 * c * s * k * (1 + 2 * d + 2 * d * d),
        "z": b * c * plan.z_draws * n + (0 if native_z else 4 * c * s * n),
        "loglik": 4 * c * plan.ll_draws * plan.loo_obs + 8 * (1 << 22),
        "analysis": 8 * n * min(k, 64) * 3 + 8 * 3000 * 3000 + 8 * c * plan.z_draws * n // 8,
        "base": 700 * 1024**2,
    }
    terms["total"] = sum(terms.values())
    return terms


def fit_storage(
    n: int,
    d: int,
    k: int,
    chains: int,
    draws: int,
    native_z: bool,
    limit: int | None,
) -> tuple[StoragePlan, dict]:
    """The storage plan that fits in ``limit`` bytes: the default one, else z and the
    log-likelihood thinned (halving their caps, down to one draw per chain). Returns the plan
    and the estimate; ``estimate["fits"]`` is False when even the thinnest plan does not fit."""
    plan = plan_storage(n, chains, draws)
    est = memory_estimate(n, d, k, chains, draws, plan, native_z)
    if limit is None or est["total"] <= limit:
        return plan, est | {"fits": True, "limit": limit}
    cap = float(plan.z_draws * chains * n)
    first = est["total"]
    while cap >= n * chains:
        cap /= 2
        trial = plan_storage(n, chains, draws, label_cap=cap)
        ll = max(1, min(trial.ll_draws, trial.z_draws))
        trial = StoragePlan(n, chains, draws, trial.z_draws, ll, trial.loo_obs)
        est = memory_estimate(n, d, k, chains, draws, trial, native_z)
        if est["total"] <= limit:
            why = (
                f"estimated memory {_gb(first)} exceeds the {_gb(limit)} available: z kept "
                f"for {trial.z_draws * chains} of {chains * draws} draws and the pointwise "
                f"log-likelihood for {trial.ll_draws * chains}"
            )
            trial = StoragePlan(n, chains, draws, trial.z_draws, ll, trial.loo_obs, why)
            return trial, est | {"fits": True, "limit": limit}
    return plan, est | {"fits": False, "limit": limit, "first": first}


def _gb(b: float) -> str:
    return f"{b / 1024**3:.2f} GB" if b >= 1024**3 / 10 else f"{b / 1024**2:.0f} MB"


def describe_memory(est: dict) -> str:
    """'1.23 GB (data 0.1 GB, params ..., ...)'."""
    parts = ", ".join(f"{k} {_gb(v)}" for k, v in est.items() if k in TERM_NAMES)
    return f"{_gb(est['total'])} ({parts})"


TERM_NAMES = ("data", "params", "z", "loglik", "analysis", "base")
