"""Simulation-based calibration (Talts et al. 2018) of the bayesmix engines.

For each replication: draw the parameters from the prior, simulate data, sample the posterior
with an engine, and compute the rank of the true value of each label-invariant quantity among
L roughly independent posterior draws.  If the engine samples the posterior of the model the
data were simulated from, every rank is uniform on 0..L.

The engines are called on the simulated data as they are (no standardisation), so the prior
the data come from is exactly the prior the engine uses:

* kernel (``spec.kernel``): 1-D sigma^2 ~ IG(a0, b0), mu | sigma^2 ~ N(m0, sigma^2 / kappa0);
  D-dim Sigma ~ IW(nu0, psi0 I), mu | Sigma ~ N(m0, Sigma / kappa0);
* finite: w ~ Dirichlet(gamma 1_K); DP: v_k ~ Beta(1, alpha), truncated at T for the blocked
  sampler and NUTS (w_T = prod_{k<T} (1 - v_k)), untruncated for the collapsed sampler
  (sticks until the leftover mass is below 1e-12);
* concentration: fixed, or Gamma(shape, rate).
* Pitman-Yor(theta, sigma): theta + sigma ~ Gamma, sigma ~ Beta. Truncated (blocked): sticks
  v_k ~ Beta(1 - sigma, theta + k sigma), k < T, w_T the leftover. Untruncated (collapsed): the
  partition from the Chinese-restaurant urn, then (w_occupied, w_rest) ~ Dirichlet(n_1 - sigma,
  ..., n_K+ - sigma, theta + K+ sigma), which is the joint prior of the partition and the lumped
  weights (Pitman 1996), exactly the representation the collapsed engine reports.
* mixture of finite mixtures: K from the engine's own (capped) prior pmf of K, then
  w | K ~ Dirichlet(gamma_K 1_K) with gamma_K = gamma (static) or alpha / K (dynamic), and K
  atoms; both the collapsed and the telescoping engine report K slots, empty ones included.

Semi-conjugate hierarchical kernel (``--kernel semi``, ``SEMI_KERNEL``; bayesmix.kernels.semiconj,
Fruehwirth-Schnatter's parametrisation, ``data_scaled = false`` so the prior does not look at
the data): first the scale C0 ~ W(g0, G0 I), i.e. the standard Wishart with 2 g0 degrees of
freedom and scale (2 G0)^{-1} I (1-D: beta = C0 ~ Gamma(shape g0, rate G0)), then per component,
independently, Sigma_k ~ IW(2 c0, 2 C0) (1-D: sigma_k^-2 ~ Gamma(shape c0, rate beta)) and
mu_k ~ N(m0, mean_var I).  C0 is shared by all the model's components (the truncation T, the K of
a finite mixture or of an MFM), as in the samplers' C0 | Sigma_1..K update.  Only the blocked
sampler (finite, sparse, DP, Pitman-Yor, truncated as above) and the telescoping sampler (MFM)
run this kernel here; the collapsed sampler needs conjugacy (NUTS has the semi-conjugate model,
``kernels.pymc.semi_conjugate``, but no study here uses it).
Studies: key ``<model>_<D>d_<engine>_semi``, seed index ``SEMI_OFFSET`` (1000) + the index of the
conjugate study of the same model, D and engine slot, so no semi study shares seeds with a
conjugate one (confirmation i + 100, re-check i + 200 stay above 1000 too).

Quantities (all label-invariant): the concentration (when random: alpha, gamma or the Pitman-Yor
strength), the Pitman-Yor discount (when random), K (MFM), K+ (occupied components),
the log-likelihood sum_i log sum_k w_k N(x_i | mu_k, Sigma_k) of the data under each draw's
parameters (and under the true ones), and the largest weight max_k w_k.  For the untruncated
DP the weights and atoms of the unoccupied components enter as one lumped component, weight
1 - sum_{occupied} w_k at a fresh atom from the base measure; the collapsed engine reports
(w_occupied, w_rest) ~ Dirichlet(n_1, ..., n_K+, alpha) with a prior atom for the rest, which is
exactly the posterior of that lumped representation, so truth and draws are the same function
of the parameters.  Semi-conjugate kernel, hierarchical scale: the scale C0 too, as ``beta``
(= C0) in 1-D and ``log_det_C0`` (log det C0) for D >= 2; C0 is shared by every component, so
any function of it is label-invariant; log det C0 (the sum of its log eigenvalues, the log volume
of the scale) weighs every direction alike, where the trace is dominated by the largest
eigenvalue, and in 1-D it is a monotone function of beta (the same ranks).

Spherical conjugate kernel (``--kernel spherical``, ``SPHERICAL_KERNEL``; the shipped
defaults with ``covariance = "spherical"``): per component sigma_k^2 ~ IG(a0, b0), Sigma_k =
sigma_k^2 I and mu_k | sigma_k^2 ~ N(m0 1, sigma_k^2 / kappa0 I).  In 1-D it is the conjugate
kernel above, so its studies are 2-D and 3-D (the 3-D ones exercise the feature loops that the
2-D code unrolls), for the Gibbs engines (blocked / telescoping and collapsed; no NUTS
studies). Study key ``<model>_<D>d_<engine>_spherical``, seed index ``SPHERICAL_OFFSET`` (2000)
+ the index the conjugate formula gives for (model, D, engine slot): unique within the
spherical studies (its D = 3 indices coincide only with D = 1 ones, which it does not run).

Conjugate kernel with a hierarchical scale (``--kernel scale``, ``SCALE_KERNEL``): the shipped
conjugate kernel with b0 (1-D NIG) or psi0 (2-D NIW, Psi0 = psi0 I) ~ Gamma(2, rate 8) instead
of the fixed 0.25 (its prior mean); the scale is drawn first, then every component from the
kernel with that scale.  Only the collapsed sampler runs it.  Extra quantity: the scale itself
(``b0`` / ``psi0``), shared by all the components.  Study key ``<model>_<D>d_collapsed_scale``,
seed index ``SCALE_OFFSET`` (4000) + the conjugate formula's index.

Usage: ``python -m benchmarks.sbc [--quick] [--reps N] [--nuts-reps N] [--jobs 2]``;
semi-conjugate kernel: ``python -m benchmarks.sbc --kernel semi`` (default output
reports/validation/sbc_semi/); spherical kernel: ``--kernel spherical``
(reports/validation/sbc_spherical/); the conjugate kernel with a hierarchical scale:
``--kernel scale`` (reports/validation/sbc_scale/).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from bayesmix.io import write_text
from bayesmix.spec import FPrior
from benchmarks.common import (
    REPORT_DIR,
    chi2_uniform,
    ecdf_band,
    ecdf_diff,
    ess,
    fmt_p,
    inside_band,
    mixture_loglik,
    provenance,
    rank_statistic,
    run_tasks,
    write_json,
)

# --------------------------------------------------------------------------
# Models and settings
# --------------------------------------------------------------------------

MODELS: dict[str, dict[str, Any]] = {
    # finite Dirichlet mixture, K = 5, gamma = 1 (fixed)
    "finite": {"type": "finite", "K": 5, "gamma": 1.0},
    # sparse finite (Malsiner-Walli, Fruehwirth-Schnatter & Gruen 2016): K = 10,
    # gamma ~ Gamma(a_e, a_e K) with a_e = 10, i.e. E[gamma] = 1/K
    "sparse": {"type": "finite", "K": 10, "gamma_prior": {"shape": 10.0, "rate": 100.0}},
    # sparse finite with gamma fixed at 0.01 (the shipped models/sparse_finite.toml)
    "sparse_fixed": {"type": "finite", "K": 10, "gamma": 0.01},
    # DP, alpha ~ Gamma(2, 2) (mean 1, so E[K+] ~ 4 for N = 100), T = 20 when truncated
    "dp": {"type": "dp", "truncation": 20, "alpha_prior": {"shape": 2.0, "rate": 2.0}},
    # Pitman-Yor, theta + sigma ~ Gamma(2, 2), sigma ~ Beta(1, 3), T = 20 when truncated
    "py": {
        "type": "pitman_yor",
        "truncation": 20,
        "strength_prior": {"shape": 2.0, "rate": 2.0},
        "discount_prior": {"a": 1.0, "b": 3.0},
    },
    # static MFM (models/mfm.toml): K - 1 ~ BNB(1, 4, 3), gamma ~ Gamma(1, 1)
    "mfm": {
        "type": "mfm",
        "weights": "static",
        "gamma_prior": {"shape": 1.0, "rate": 1.0},
        "k_prior": {"family": "bnb", "a_lambda": 1.0, "a_pi": 4.0, "b_pi": 3.0},
    },
    # dynamic MFM (Fruehwirth-Schnatter et al. 2021): gamma_K = alpha / K, alpha ~ F(6, 3)
    "mfm_dynamic": {
        "type": "mfm",
        "weights": "dynamic",
        "alpha_prior": {"family": "F", "df1": 6.0, "df2": 3.0},
        "k_prior": {"family": "bnb", "a_lambda": 1.0, "a_pi": 4.0, "b_pi": 3.0},
    },
}
# The Gibbs algorithms that serve each model (default: blocked and collapsed, and NUTS for
# NUTS_MODELS). Study seeds are numbered by (model, D, slot) with the slots blocked|telescoping,
# collapsed, nuts, so adding models leaves the seeds of the earlier studies unchanged.
MODEL_ENGINES: dict[str, tuple[str, ...]] = {
    "mfm": ("telescoping", "collapsed"),
    "mfm_dynamic": ("telescoping", "collapsed"),
}
ENGINE_SLOTS = {"blocked": 0, "telescoping": 0, "collapsed": 1, "nuts": 2, "subcluster": 0}
SUBCLUSTER_OFFSET = 3000  # sub-cluster study i + 3000 (conjugate kernel; not the dynamic MFM
# nor Pitman-Yor, which the engine no longer serves: its 500-replication 1-D study failed)
# The shipped kernel defaults (KernelSpec): m0 = 0, kappa0 = 0.01, a0 = 2, b0 = 0.25,
# psi0 = 0.25, nu0 = D + 2 (E[Sigma] = psi0 I); full covariance in 2-D.
KERNEL: dict[str, Any] = {"covariance": "full", "prior": "conjugate"}
# The semi-conjugate hierarchical kernel (--kernel semi), per dimension, data_scaled = false
# (R_d = 1, b0 = m0: the prior is on the scale of the simulated data).  The shipped defaults
# (c0 = 2, g0 = 0.2, G0 = 10 in 1-D) are tuned for data of range ~ R, i.e. components of
# sd ~ R / 7; with R = 1 and mean_var = 1 they would simulate needle-thin components.  Chosen
# instead: E[C0] = g0 / G0 = 1 and mu ~ N(0, 4 I), so components have sd ~ 1 (1-D:
# beta ~ Gamma(2, 2), sigma^-2 ~ Gamma(2, beta), E[sigma^2] = E[beta] / (c0 - 1) = 1;
# 2-D: E[Sigma | C0] = 2 C0 / (2 c0 - 3) = 2/3 C0) and means of sd 2: overlapping but
# distinguishable components, with a scale C0 that the data inform but do not pin down.
SEMI_KERNEL: dict[str, dict[str, Any]] = {
    f"{d}d": {
        "covariance": "full", "prior": "semi_conjugate", "scale": "hierarchical", "c0": c0,
        "g0": 2.0, "G0": 2.0, "mean_var": 4.0, "m0": 0.0, "data_scaled": False,
    }
    for d, c0 in ((1, 2.0), (2, 3.0))
}  # fmt: skip
# The spherical conjugate kernel (--kernel spherical): the shipped defaults (a0 = 2, b0 = 0.25,
# kappa0 = 0.01, m0 = 0), one variance per component shared by the features.
SPHERICAL_KERNEL: dict[str, Any] = {"covariance": "spherical", "prior": "conjugate"}
# The conjugate kernel with a hierarchical scale (--kernel scale): the shipped defaults with
# b0 (1-D) or psi0 (full, 2-D) ~ Gamma(2, rate 8) in place of the fixed 0.25 (its prior mean).
SCALE_KERNEL: dict[str, Any] = {
    "covariance": "full", "prior": "conjugate", "scale_prior": {"shape": 2.0, "rate": 8.0},
}  # fmt: skip
# The weakly informative kernel of the NUTS specs (--kernel wi; models/sparse_wi.toml and
# dp_wi.toml): mu_k ~ N(0, 2^2) independent of the zero-avoiding sigma_k ~ InverseGamma(2, 0.4)
# (1-D; NUTS only), sampled with the NUTS settings the shipped specs use (WI_SAMPLER).
WI_KERNEL: dict[str, Any] = {
    "covariance": "full", "prior": "weakly_informative", "m0": 0.0, "mu_sd": 2.0,
    "sigma_inv_gamma": {"shape": 2.0, "rate": 0.4},
}  # fmt: skip
WI_SAMPLER: dict[str, dict[str, Any]] = {
    "dp": {"target_accept": 0.9, "sticks": "non_centred"},
    "finite": {"target_accept": 0.9},
}
KERNELS: dict[str, dict[str, Any]] = {
    "conjugate": KERNEL,
    "semi": SEMI_KERNEL,
    "spherical": SPHERICAL_KERNEL,
    "scale": SCALE_KERNEL,
    "wi": WI_KERNEL,
}
SEMI_OFFSET = 1000  # semi-conjugate study i + 1000: no seed shared with a conjugate study
SPHERICAL_OFFSET = 2000  # spherical study i + 2000
SCALE_OFFSET = 4000  # conjugate kernel with a hierarchical scale: study i + 4000
WI_OFFSET = 5000  # weakly informative kernel (NUTS): study i + 5000
SPHERICAL_DIMS = (2, 3)  # in 1-D the spherical kernel is the conjugate one
SEMI_ENGINES = ("blocked", "telescoping")  # the algorithms that run a semi-conjugate kernel
QUANTITIES = (
    "concentration", "discount", "K", "K+", "loglik", "max_w", "beta", "log_det_C0", "b0", "psi0",
)  # fmt: skip
GIBBS_ENGINES = ("blocked", "telescoping", "collapsed", "subcluster")
# the engines each non-default kernel runs (for messages)
KERNEL_ENGINES = {
    "semi": (*SEMI_ENGINES, "nuts"),
    "spherical": (*GIBBS_ENGINES, "nuts"),
    "scale": ("collapsed", "nuts"),
    "wi": ("nuts",),
}
CONFIRM_OFFSET = 100  # confirmation study i + 100: fresh seeds
CONFIRM_FACTOR = 2  # and twice the replications
# Pre-registered re-check of the blocked Gibbs sampler (written before it was run): every
# blocked study again with fresh seeds (i + RECHECK_OFFSET), RECHECK_REPS replications and the
# stricter sampler settings RECHECK_SETTINGS.  Verdict per study, family-wise at 1%: the study
# fails if any of its q quantities has chi-square p < 0.01 / q (Bonferroni).
RECHECK_OFFSET = 200
RECHECK_REPS = 1000
RECHECK_SETTINGS = {"ess_margin": 2.0, "max_thin": 64, "gibbs_tune": 1000}
FAMILY_ALPHA = 0.01
# Follow-up of a re-check failure (planned in the commit that added --ess-margin): the failing
# studies again in <out>/sbc_followup/ with 2000 replications, ESS >= 4 L, thin up to 128;
# p < 0.01 for the failing quantity there confirms the failure.
FOLLOWUP_DIR = "sbc_followup"
NUTS_MODELS = ("dp", "finite")  # 1-D only


@dataclass(frozen=True)
class Config:
    """One SBC study: a model in D dimensions sampled by one engine."""

    model: str
    dim: int
    engine: str  # blocked | telescoping | collapsed | nuts
    reps: int
    index: int  # feeds the per-replication seeds
    stage: str = "main"  # main | confirm (re-run of a study that failed at 1%) | recheck
    kernel: str = "conjugate"  # conjugate (KERNEL) | semi (SEMI_KERNEL) | spherical | scale

    @property
    def key(self) -> str:
        base = f"{self.model}_{self.dim}d_{self.engine}"
        if self.kernel != "conjugate":
            base += f"_{self.kernel}"
        return base if self.stage == "main" else f"{base}_{self.stage}"


@dataclass(frozen=True)
class Settings:
    """Sampler and simulation settings shared by all replications."""

    seed: int = 20261126
    n_kept: int = 99  # L: kept draws per replication, ranks in 0..L (L + 1 = 100 = 5 x 20)
    bins: int = 20
    chains: int = 2
    gibbs_tune: int = 500
    gibbs_draws: int = 1000  # per chain, before thinning
    max_thin: int = 32
    nuts_tune: int = 500
    nuts_draws: int = 500  # per chain
    nuts_max_draws: int = 2000
    n_min: int = 50
    n_max: int = 200
    nuts_n: int = 100  # NUTS: fixed N, so one compiled model serves every replication
    ess_margin: float = 1.2  # rerun with more thinning until min ESS >= margin * L


def kernel_table(kernel: str, dim: int) -> dict[str, Any]:
    """The [kernel] table of an SBC kernel in D dimensions (KERNEL, SPHERICAL_KERNEL,
    SCALE_KERNEL, or SEMI_KERNEL["<D>d"])."""
    if kernel in ("conjugate", "spherical", "scale", "wi"):
        return KERNELS[kernel]
    return KERNELS[kernel][f"{dim}d"]


def make_spec(model: str, kernel: str = "conjugate", dim: int = 1):
    """ModelSpec of a named SBC model with an SBC kernel in D dimensions (parse_spec validates
    it like a TOML file; the conjugate kernel is the same in every dimension)."""
    from bayesmix.spec import parse_spec

    table = {"name": model, "mixing": MODELS[model], "kernel": kernel_table(kernel, dim)}
    if kernel == "wi":
        table["sampler"] = WI_SAMPLER[model]
    return parse_spec(table, where=f"sbc:{model}")


# --------------------------------------------------------------------------
# Prior simulation
# --------------------------------------------------------------------------


@dataclass
class Truth:
    """Simulated parameters (in the representation the engine reports) and data."""

    x: np.ndarray
    z: np.ndarray
    w: np.ndarray
    mu: np.ndarray
    cov: np.ndarray
    # the random parameters: concentration, discount, K; beta or log_det_C0 (semi-conjugate)
    params: dict[str, float]
    c0: np.ndarray | None = None  # the kernel scale C0 (D, D) of a semi-conjugate kernel


def _semi_diag(kernel, d: int) -> bool:
    return d == 1 or kernel.covariance == "diag"


def scale_quantities(c0: np.ndarray) -> dict[str, np.ndarray]:
    """The SBC quantity of the kernel scale C0 (..., D, D): beta = C0 in 1-D, log det C0 for
    D >= 2 (module docstring)."""
    c0 = np.asarray(c0, dtype=float)
    if c0.shape[-1] == 1:
        return {"beta": c0[..., 0, 0]}
    sign, logdet = np.linalg.slogdet(c0)
    return {"log_det_C0": np.where(sign > 0, logdet, np.nan)}


def draw_scale(kernel, d: int, rng: np.random.Generator) -> np.ndarray | None:
    """The scale C0 (D, D) of a semi-conjugate kernel: C0 ~ W(g0, G0 I) (the standard Wishart
    with 2 g0 df and scale (2 G0)^{-1} I; per feature beta_d ~ Gamma(g0, rate G0) when
    diagonal), or C0 = g0 / G0 I when fixed; None (and no random draw) for the conjugate
    kernel, so the conjugate studies keep their random streams."""
    if kernel.prior != "semi_conjugate":
        return None
    if kernel.data_scaled:
        raise ValueError("SBC of a semi-conjugate kernel needs kernel.data_scaled = false")
    _, g0, g_rate, _ = kernel.semi_defaults(d)
    if kernel.scale != "hierarchical":
        return g0 / g_rate * np.eye(d)
    if _semi_diag(kernel, d):
        return np.diag(rng.gamma(g0, 1.0 / g_rate, size=d))
    c0 = stats.wishart.rvs(df=2.0 * g0, scale=np.eye(d) / (2.0 * g_rate), random_state=rng)
    return np.asarray(c0).reshape(d, d)


def draw_kernel_semi(
    kernel, d: int, m: int, c0: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """m draws of (mu, Sigma) from the semi-conjugate prior given the scale C0: mu ~ N(m0,
    mean_var I) independent of Sigma ~ IW(2 c0, 2 C0) (per feature sigma_d^-2 ~ Gamma(c0,
    rate C0_dd) when diagonal)."""
    shape, _, _, _ = kernel.semi_defaults(d)
    if _semi_diag(kernel, d):
        var = np.diag(c0)[None, :] / rng.gamma(shape, 1.0, size=(m, d))
        cov = np.zeros((m, d, d))
        cov[:, np.arange(d), np.arange(d)] = var
    else:
        cov = stats.invwishart.rvs(df=2.0 * shape, scale=2.0 * c0, size=m, random_state=rng)
        cov = np.asarray(cov).reshape(m, d, d)
    mu = kernel.m0 + math.sqrt(kernel.mean_var) * rng.standard_normal((m, d))
    return mu, cov


def draw_kernel(
    kernel, d: int, m: int, rng: np.random.Generator, c0: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """m draws of (mu, Sigma): NIG(m0, kappa0, a0, b0) in 1-D, NIW(m0, kappa0, nu0, psi0 I);
    spherical: sigma^2 ~ IG(a0, b0), Sigma = sigma^2 I, mu ~ N(m0 1, sigma^2 / kappa0 I);
    semi-conjugate kernels: ``draw_kernel_semi`` given the scale c0 (``draw_scale``)."""
    if kernel.prior == "semi_conjugate":
        return draw_kernel_semi(kernel, d, m, c0, rng)
    if kernel.prior == "weakly_informative":  # 1-D: mu ~ N(m0, mu_sd^2), sigma ~ IG(a, b)
        if d != 1 or kernel.sigma_inv_gamma is None:
            raise ValueError("the weakly informative SBC kernel is 1-D with sigma_inv_gamma")
        ig = kernel.sigma_inv_gamma
        sigma = ig.rate / rng.gamma(ig.shape, 1.0, size=m)
        mu = kernel.m0 + kernel.mu_sd * rng.standard_normal(m)
        return mu[:, None], (sigma**2)[:, None, None]
    if d > 1 and kernel.covariance == "spherical":
        var = kernel.b0 / rng.gamma(kernel.a0, 1.0, size=m)  # IG(a0, b0), one per component
        mu = kernel.m0 + np.sqrt(var / kernel.kappa0)[:, None] * rng.standard_normal((m, d))
        return mu, var[:, None, None] * np.eye(d)[None]
    if d == 1:
        var = kernel.b0 / rng.gamma(kernel.a0, 1.0, size=m)  # IG(a0, b0)
        mu = kernel.m0 + np.sqrt(var / kernel.kappa0) * rng.standard_normal(m)
        return mu[:, None], var[:, None, None]
    nu0 = kernel.nu0_for(d)
    cov = stats.invwishart.rvs(df=nu0, scale=kernel.psi0 * np.eye(d), size=m, random_state=rng)
    cov = np.asarray(cov).reshape(m, d, d)
    chol = np.linalg.cholesky(cov / kernel.kappa0)
    mu = kernel.m0 + np.einsum("mij,mj->mi", chol, rng.standard_normal((m, d)))
    return mu, cov


def dirichlet(alpha: float, k: int, rng: np.random.Generator) -> np.ndarray:
    """w ~ Dirichlet(alpha 1_k) via log-Gammas (safe for tiny alpha: G = G' U^(1/alpha))."""
    logg = np.log(rng.gamma(alpha + 1.0, 1.0, size=k)) + np.log(rng.random(k)) / alpha
    logg -= logg.max()
    w = np.exp(logg)
    return w / w.sum()


def dirichlet_vec(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """w ~ Dirichlet(a) for a vector a > 0, by the same log-Gamma device as ``dirichlet``."""
    a = np.asarray(a, dtype=float)
    logg = np.log(rng.gamma(a + 1.0, 1.0)) + np.log(rng.random(len(a))) / a
    logg -= logg.max()
    w = np.exp(logg)
    return w / w.sum()


def stick_breaking(alpha: float, rng: np.random.Generator, t: int | None) -> np.ndarray:
    """DP weights: v_k ~ Beta(1, alpha); truncated at t (w_t = leftover), or untruncated
    (t None: sticks until the leftover mass is below 1e-12)."""
    if t is not None:
        v = rng.beta(1.0, alpha, size=t - 1)
        rest = np.concatenate([[1.0], np.cumprod(1.0 - v)])
        return np.concatenate([v, [1.0]]) * rest
    ws, left = [], 1.0
    while left >= 1e-12:
        v = rng.beta(1.0, alpha, size=64)
        rest = left * np.concatenate([[1.0], np.cumprod(1.0 - v)])
        ws.append(v * rest[:-1])
        left = rest[-1]
    return np.concatenate(ws)


def _draw_concentration(mix, rng: np.random.Generator) -> tuple[float, dict[str, float]]:
    """The concentration (fixed, or from its Gamma / F prior; for Pitman-Yor the Gamma is on
    theta + sigma, so the discount is drawn first) and the random parameters drawn."""
    params: dict[str, float] = {}
    disc = 0.0
    if mix.type == "pitman_yor":
        if mix.discount is None:
            disc = float(rng.beta(mix.discount_prior.a, mix.discount_prior.b))
            params["discount"] = disc
        else:
            disc = float(mix.discount)
    if mix.concentration is not None:
        return float(mix.concentration), params
    pr = mix.concentration_prior
    if isinstance(pr, FPrior):
        conc = float(rng.f(pr.df1, pr.df2))
    else:
        conc = float(rng.gamma(pr.shape, 1.0 / pr.rate))
        if mix.type == "pitman_yor":
            conc -= disc  # theta = (theta + sigma) - sigma
    params["concentration"] = conc
    return conc, params


def py_sticks(theta: float, sigma: float, t: int, rng: np.random.Generator) -> np.ndarray:
    """Truncated Pitman-Yor weights: v_k ~ Beta(1 - sigma, theta + k sigma), k = 1..t-1,
    w_t = prod (1 - v_k)."""
    k = np.arange(1, t)
    v = rng.beta(1.0 - sigma, theta + k * sigma)
    rest = np.concatenate([[1.0], np.cumprod(1.0 - v)])
    return np.concatenate([v, [1.0]]) * rest


def py_urn(theta: float, sigma: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Allocations of n draws from the Pitman-Yor urn: a new cluster with probability
    (theta + k sigma) / (theta + i), cluster j with (n_j - sigma) / (theta + i)."""
    z = np.empty(n, dtype=int)
    counts: list[float] = []
    for i in range(n):
        k = len(counts)
        p = np.array([c - sigma for c in counts] + [theta + k * sigma])
        j = int(rng.choice(k + 1, p=p / p.sum()))
        if j == k:
            counts.append(1.0)
        else:
            counts[j] += 1.0
        z[i] = j
    return z


def _data(z: np.ndarray, mu: np.ndarray, cov: np.ndarray, rng) -> np.ndarray:
    """x_i ~ N(mu_{z_i}, Sigma_{z_i})."""
    n, d = len(z), mu.shape[1]
    x = np.empty((n, d))
    for k in np.unique(z):
        idx = np.flatnonzero(z == k)
        chol = np.linalg.cholesky(cov[k])
        x[idx] = mu[k] + rng.standard_normal((len(idx), d)) @ chol.T
    return x


def conjugate_scale_name(kernel, d: int) -> str:
    """The conjugate kernel's scale that ``scale_prior`` puts a Gamma on: b0 of the NIG
    (1-D, diag, spherical) or psi0 of the NIW (full; Psi0 = psi0 I)."""
    return "psi0" if d > 1 and kernel.covariance == "full" else "b0"


def _scale(kernel, d: int, params: dict[str, float], rng) -> tuple[Any, np.ndarray | None]:
    """The kernel the components are drawn from and, for a semi-conjugate kernel, its scale
    C0 (shared by all the components; ``draw_scale``). A hierarchical scale's SBC quantity is
    added to params: C0's (``scale_quantities``), or for the conjugate kernel with a
    ``scale_prior`` the scale b0 / psi0 ~ Gamma(shape, rate) itself, which the returned kernel
    then holds. The conjugate kernel without one draws nothing (its random stream is kept)."""
    prior = getattr(kernel, "scale_prior", None)
    if kernel.prior == "conjugate" and prior is not None:
        name = conjugate_scale_name(kernel, d)
        value = float(rng.gamma(prior.shape, 1.0 / prior.rate))
        params[name] = value
        return dataclasses.replace(kernel, **{name: value}), None
    c0 = draw_scale(kernel, d, rng)
    if c0 is not None and kernel.scale == "hierarchical":
        params.update({k: float(v) for k, v in scale_quantities(c0).items()})
    return kernel, c0


def simulate(spec, engine: str, d: int, n: int, rng: np.random.Generator) -> Truth:
    """Draw the mixing's parameters, (w, mu, Sigma) from the prior of the engine's model, then
    z and x (the representation the engine reports: see the module docstring)."""
    mix, kern = spec.mixing, spec.kernel
    conc, params = _draw_concentration(mix, rng)
    truncated = engine in ("blocked", "nuts")
    if mix.type == "pitman_yor" and not truncated:
        sigma = float(params.get("discount", mix.discount or 0.0))
        z = py_urn(conc, sigma, n, rng)
        cnt = np.bincount(z).astype(float)
        # (w_1..w_K+, w_rest): the occupied atoms and one lumped atom, all from the base measure
        w = dirichlet_vec(np.concatenate([cnt - sigma, [conc + len(cnt) * sigma]]), rng)
        kern, c0 = _scale(kern, d, params, rng)
        mu, cov = draw_kernel(kern, d, len(w), rng, c0)
        return Truth(_data(z, mu, cov, rng), z, w, mu, cov, params, c0)
    if mix.type == "mfm":
        from bayesmix import mixings

        pk = np.exp(mixings.k_prior_log_pmf(mix))
        k = int(rng.choice(len(pk), p=pk / pk.sum()))
        params["K"] = float(k)
        w = dirichlet(conc / k if mix.weights == "dynamic" else conc, k, rng)
    elif mix.type == "finite":
        w = dirichlet(conc, mix.n_components, rng)
    elif mix.type == "pitman_yor":
        sigma = float(params.get("discount", mix.discount or 0.0))
        w = py_sticks(conc, sigma, mix.n_components, rng)
    else:
        w = stick_breaking(conc, rng, mix.n_components if truncated else None)
    kern, c0 = _scale(kern, d, params, rng)
    mu, cov = draw_kernel(kern, d, len(w), rng, c0)
    z = rng.choice(len(w), size=n, p=w / w.sum())
    x = _data(z, mu, cov, rng)
    if mix.type == "dp" and not truncated:  # lump the unoccupied components into one atom
        occ = np.unique(z)
        mu_r, cov_r = draw_kernel(kern, d, 1, rng, c0)
        w = np.concatenate([w[occ], [max(0.0, 1.0 - w[occ].sum())]])
        mu = np.concatenate([mu[occ], mu_r])
        cov = np.concatenate([cov[occ], cov_r])
        z = np.searchsorted(occ, z)
    return Truth(x, z, w, mu, cov, params, c0)


# --------------------------------------------------------------------------
# Posterior sampling
# --------------------------------------------------------------------------


@dataclass
class Fit:
    """Kept draws of the quantities (L each) and diagnostics of one posterior run."""

    kept: dict[str, np.ndarray]
    ess: dict[str, float]
    thin: int
    draws_per_chain: int
    attempts: int
    info: dict[str, Any] = field(default_factory=dict)


def _quantities(
    w: np.ndarray, z: np.ndarray, params: dict[str, np.ndarray], ll: np.ndarray
) -> dict[str, np.ndarray]:
    """(C, S) arrays of the label-invariant quantities of every draw; ``params`` holds the
    random mixing parameters under their quantity names (concentration, discount, K)."""
    from bayesmix.posterior.allocations import n_clusters

    q = {"K+": n_clusters(z).astype(float), "loglik": ll, "max_w": w.max(axis=-1)}
    q.update({k: np.asarray(v, dtype=float) for k, v in params.items()})
    return q


def _named_params(mixing, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The engine's parameters under the SBC quantity names (its concentration name becomes
    'concentration'; discount and K keep theirs)."""
    name = mixing.concentration_name
    return {("concentration" if k == name else k): v for k, v in params.items()}


def _even(total: int, kept: int) -> np.ndarray:
    """kept evenly spaced indices in 0..total-1."""
    return np.unique(np.linspace(0, total - 1, kept).round().astype(int))


def _min_ess(q: dict[str, np.ndarray]) -> tuple[dict[str, float], float]:
    e = {k: ess(v) for k, v in q.items()}
    finite = [v for v in e.values() if math.isfinite(v)]
    return e, (min(finite) if finite else math.inf)


def fit_gibbs(spec, x: np.ndarray, engine: str, st: Settings, rng: np.random.Generator) -> Fit:
    """Gibbs run with 2 chains; if min ESS < margin * L, rerun with thin multiplied by
    ceil(margin * L / ESS) (capped at max_thin); keep L evenly spaced draws."""
    from bayesmix.engines.gibbs import sample_gibbs

    thin, attempt = 1, 0
    while True:
        attempt += 1
        dr = sample_gibbs(
            spec, x, algorithm="blocked" if engine == "telescoping" else engine, chains=st.chains, draws=st.gibbs_draws,
            tune=st.gibbs_tune, thin=thin, seed=int(rng.integers(2**31)), progress=False,
            cores=1,
        )  # fmt: skip
        ll = dr.sample_stats["log_likelihood"]
        q = _quantities(dr.w, dr.z, _named_params(spec.mixing, dr.params), ll)
        if "C0" in dr.kernel_params:  # semi-conjugate kernel with a hierarchical scale
            q.update(scale_quantities(dr.kernel_params["C0"]))
        for name in ("b0", "psi0"):  # conjugate kernel with a hierarchical scale
            if name in dr.kernel_params:
                q[name] = np.asarray(dr.kernel_params[name], dtype=float)
        e, emin = _min_ess(q)
        need = st.ess_margin * st.n_kept
        if emin >= need or thin >= st.max_thin:
            break
        thin = min(st.max_thin, thin * math.ceil(need / max(emin, 1.0)))
    c, s = dr.w.shape[:2]
    idx = _even(c * s, st.n_kept)
    flat = lambda a: a.reshape(c * s, *a.shape[2:])[idx]  # noqa: E731
    wk = flat(dr.w)
    used = np.flatnonzero((wk > 0.0).any(axis=0))  # MFM: slots beyond every kept K are empty
    ll_mine = mixture_loglik(x, wk[:, used], flat(dr.mu)[:, used], flat(dr.cov)[:, used])
    ll_engine = flat(dr.sample_stats["log_likelihood"])
    kept = {k: flat(v) for k, v in q.items()}
    kept["loglik"] = ll_mine
    info = {"ll_engine_minus_numpy": float(np.max(np.abs(ll_engine - ll_mine)))}
    return Fit(kept, e, thin, st.gibbs_draws, attempt, info)


_NUTS_CACHE: dict[str, Any] = {}


def _nuts_compiled(model: str, spec, st: Settings, d: int = 1):
    """Compile the NUTS model once per worker process (fixed N), kernel and dimension D, on
    placeholder data (the SBC kernels are not data-scaled, so ``with_data`` keeps the same
    prior)."""
    key = f"{model}:{d}:{spec.kernel!r}:{spec.sampler!r}"
    if key not in _NUTS_CACHE:
        import nutpie

        from bayesmix.model import build_model

        x0 = np.linspace(-2.0, 2.0, st.nuts_n)[:, None] * np.linspace(1.0, 0.5, d)[None, :]
        pm_model = build_model(spec, x0)
        t0 = time.perf_counter()
        compiled = nutpie.compile_pymc_model(pm_model)
        _NUTS_CACHE[key] = (pm_model, compiled, time.perf_counter() - t0)
    return _NUTS_CACHE[key]


def fit_nuts(model: str, spec, x: np.ndarray, st: Settings, rng: np.random.Generator) -> Fit:
    """nutpie NUTS on the compiled model with this data (``with_data``), started like
    ``sample_nuts`` at the EM + BIC means (``initial_values``) with U(-1, 1) jitter on the
    unconstrained scale; 2 chains x (tune + draws); draws doubled (up to nuts_max_draws)
    while min ESS < margin * L; L evenly spaced draws kept."""
    import nutpie
    from pymc.initial_point import make_initial_point_fn

    from bayesmix.engines.nuts import covariance_from_factor
    from bayesmix.model import initial_values
    from bayesmix.posterior.allocations import allocations

    pm_model, compiled, compile_s = _nuts_compiled(model, spec, st, x.shape[1])
    seed = int(rng.integers(2**31))
    init = initial_values(spec, x, seed)
    point_fn = make_initial_point_fn(
        model=pm_model, overrides=init, jitter_rvs=set(pm_model.free_RVs), return_transformed=True
    )

    def initial_point(s: int) -> np.ndarray:
        p = point_fn(s)
        return np.concatenate([np.ravel(p[name]) for name in p])

    cm = dataclasses.replace(compiled.with_data(x_data=x), initial_point_func=initial_point)
    ta = spec.sampler.target_accept
    extra = {} if ta is None else {"target_accept": ta}
    draws, attempt = st.nuts_draws, 0
    while True:
        attempt += 1
        t0 = time.perf_counter()
        dt = nutpie.sample(
            cm, draws=draws, tune=st.nuts_tune, chains=st.chains, seed=seed + attempt,
            progress_bar=False, cores=1, **extra,
        )  # fmt: skip
        sample_s = time.perf_counter() - t0
        post = dt["posterior"]
        w = np.asarray(post["w"].values)
        mu = np.asarray(post["mu"].values)
        cov = covariance_from_factor(np.asarray(post["factor"].values))
        name = spec.mixing.concentration_name
        conc = {"concentration": np.asarray(post[name].values)} if name in post else {}
        c, s = w.shape[:2]
        wf, muf, covf = (a.reshape(c * s, *a.shape[2:]) for a in (w, mu, cov))
        z, _ = allocations(x, wf, muf, covf, rng)
        ll = mixture_loglik(x, wf, muf, covf).reshape(c, s)
        q = _quantities(w, z.reshape(c, s, -1), conc, ll)
        if "C0" in post:  # semi-conjugate kernel with a hierarchical scale
            q.update(scale_quantities(np.asarray(post["C0"].values)))
        for kname in ("b0", "psi0"):  # conjugate kernel with a hierarchical scale
            if spec.kernel.scale_prior is not None and kname in post:
                q[kname] = np.asarray(post[kname].values, dtype=float)
        e, emin = _min_ess(q)
        if emin >= st.ess_margin * st.n_kept or draws >= st.nuts_max_draws:
            break
        draws = min(st.nuts_max_draws, 2 * draws)
    idx = _even(c * s, st.n_kept)
    kept = {kk: v.reshape(c * s)[idx] for kk, v in q.items()}
    div = int(np.asarray(dt["sample_stats"]["diverging"].values).sum())
    info = {"divergences": div, "sample_s": sample_s, "compile_s": compile_s}
    return Fit(kept, e, 1, draws, attempt, info)


# --------------------------------------------------------------------------
# One replication
# --------------------------------------------------------------------------


def truth_quantities(t: Truth) -> dict[str, float]:
    """The quantities at the simulated parameters."""
    q = {
        "K+": float(len(np.unique(t.z))),
        "loglik": float(mixture_loglik(t.x, t.w[None], t.mu[None], t.cov[None])[0]),
        "max_w": float(t.w.max()),
    }
    q.update(t.params)
    return q


def stage_settings(cfg: Config, st: Settings) -> Settings:
    """The sampler settings of a study: the re-check stage uses RECHECK_SETTINGS."""
    return dataclasses.replace(st, **RECHECK_SETTINGS) if cfg.stage == "recheck" else st


def run_rep(cfg: Config, rep: int, st: Settings) -> dict[str, Any]:
    """Simulate, fit and rank one replication; seeds from SeedSequence([seed, config, rep])."""
    st = stage_settings(cfg, st)
    entropy = [st.seed, cfg.index, rep]
    rng = np.random.default_rng(np.random.SeedSequence(entropy))
    spec = make_spec(cfg.model, cfg.kernel, cfg.dim)
    t0 = time.perf_counter()
    is_nuts = cfg.engine == "nuts"
    n = st.nuts_n if is_nuts else int(rng.integers(st.n_min, st.n_max + 1))
    truth = simulate(spec, cfg.engine, cfg.dim, n, rng)
    if is_nuts:
        fit = fit_nuts(cfg.model, spec, truth.x, st, rng)
    else:
        fit = fit_gibbs(spec, truth.x, cfg.engine, st, rng)
    tq = truth_quantities(truth)
    ranks = {q: rank_statistic(fit.kept[q], tq[q], rng) for q in tq if q in fit.kept}
    return {
        "config": cfg.key,
        "rep": rep,
        "entropy": entropy,
        "n": n,
        "truth": tq,
        "ranks": ranks,
        "ess": fit.ess,
        "thin": fit.thin,
        "draws_per_chain": fit.draws_per_chain,
        "attempts": fit.attempts,
        "seconds": time.perf_counter() - t0,
        **fit.info,
        **({} if truth.c0 is None else {"truth_C0": truth.c0.tolist()}),
    }


def run_batch(cfg: Config, reps: list[int], st: Settings) -> list[dict[str, Any]]:
    """Several replications in one worker task (amortises process and JIT start-up)."""
    return [run_rep(cfg, r, st) for r in reps]


# --------------------------------------------------------------------------
# Analysis, plots and report
# --------------------------------------------------------------------------


def analyse(cfg: Config, results: list[dict[str, Any]], st: Settings) -> dict[str, Any]:
    """Chi-square p-value and simultaneous-band check per quantity, plus run diagnostics."""
    n_ranks = st.n_kept + 1
    out: dict[str, Any] = {"config": dataclasses.asdict(cfg), "quantities": {}}
    results = sorted(results, key=lambda r: r["rep"])
    for q in QUANTITIES:
        ranks = np.array([r["ranks"][q] for r in results if q in r["ranks"]], dtype=int)
        if len(ranks) == 0:
            continue
        chi2, p = chi2_uniform(ranks, n_ranks, st.bins)
        out["quantities"][q] = {
            "reps": int(len(ranks)),
            "chi2": chi2,
            "p_value": p,
            "pass_1pct": bool(p > 0.01),
            "ecdf_inside_95_band": inside_band(ranks, n_ranks),
            "ranks": ranks.tolist(),
        }
    ess_min = [min((v for v in r["ess"].values() if v is not None and math.isfinite(v)),
                   default=math.nan) for r in results]  # fmt: skip
    kplus = np.array([r["truth"]["K+"] for r in results])
    out["diagnostics"] = {
        "reps": len(results),
        "n_range": [min(r["n"] for r in results), max(r["n"] for r in results)],
        "true_kplus_mean": float(kplus.mean()),
        "true_kplus_quantiles_5_50_95": np.quantile(kplus, [0.05, 0.5, 0.95]).tolist(),
        "ess_min_median": float(np.nanmedian(ess_min)),
        "ess_min_below_L": int(np.sum(np.array(ess_min) < st.n_kept)),
        "thin_median": float(np.median([r["thin"] for r in results])),
        "thin_max": int(max(r["thin"] for r in results)),
        "draws_per_chain_median": float(np.median([r["draws_per_chain"] for r in results])),
        "seconds_per_rep": float(np.mean([r["seconds"] for r in results])),
    }
    if "ll_engine_minus_numpy" in results[0]:
        out["diagnostics"]["ll_engine_minus_numpy_max"] = max(
            r["ll_engine_minus_numpy"] for r in results
        )
    if "divergences" in results[0]:
        divs = np.array([r["divergences"] for r in results])
        out["diagnostics"]["reps_with_divergences"] = int(np.sum(divs > 0))
        out["diagnostics"]["divergences_mean"] = float(divs.mean())
        out["diagnostics"]["compile_s"] = float(results[0]["compile_s"])
    out["replications"] = [
        {k: v for k, v in r.items() if k != "config"} for r in results
    ]  # per-rep truth, ranks, ESS, seeds
    return out


def plot_config(res: dict[str, Any], st: Settings, path) -> None:
    """Rank histograms (20 bins, 99% binomial band) and ECDF differences with the simultaneous
    95% band, one column per quantity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_ranks = st.n_kept + 1
    qs = list(res["quantities"])
    fig, axes = plt.subplots(2, len(qs), figsize=(3.2 * len(qs), 5.2), squeeze=False)
    for j, q in enumerate(qs):
        r = np.array(res["quantities"][q]["ranks"])
        n = len(r)
        counts = np.bincount(r * st.bins // n_ranks, minlength=st.bins)
        lo, hi = stats.binom.ppf([0.005, 0.995], n, 1.0 / st.bins)
        ax = axes[0, j]
        ax.axhspan(lo, hi, color="0.85")
        ax.axhline(n / st.bins, color="0.5", lw=0.8)
        ax.bar(np.arange(st.bins), counts, width=1.0, color="C0", edgecolor="white")
        p = res["quantities"][q]["p_value"]
        ax.set_title(f"{q}\nchi2 p = {fmt_p(p)}", fontsize=9)
        ax.set_xticks([])
        z, d = ecdf_diff(r, n_ranks)
        zz, blo, bhi, _ = ecdf_band(n, n_ranks)
        ax = axes[1, j]
        ax.fill_between(zz, blo, bhi, step="mid", color="0.85")
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.step(z, d, where="mid", color="C0")
        ax.set_xlabel("fractional rank")
        if j == 0:
            axes[0, j].set_ylabel("count per bin")
            ax.set_ylabel("ECDF - uniform")
    cfg = res["config"]
    fig.suptitle(
        f"SBC: {cfg['model']} {cfg['dim']}-D, {cfg['engine']}"
        + {
            "semi": " (semi-conjugate kernel)",
            "spherical": " (spherical kernel)",
            "scale": " (conjugate kernel, hierarchical scale)",
        }.get(cfg.get("kernel", "conjugate"), "")
        + f" ({res['diagnostics']['reps']} reps, "
        f"L = {st.n_kept}); grey: 99% per-bin band / 95% simultaneous ECDF band",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _engine_label(engine: str) -> str:
    return {
        "blocked": "blocked Gibbs",
        "telescoping": "telescoping Gibbs",
        "collapsed": "collapsed Gibbs",
        "nuts": "NUTS (nutpie)",
        "subcluster": "sub-cluster Gibbs",
    }[engine]


def _table(all_res: dict[str, Any], keys: list[str]) -> list[str]:
    lines = [
        "| model | D | engine | quantity | reps | chi2 p | ECDF in 95% band | pass (1%) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in keys:
        c = all_res[key]["config"]
        for q, v in all_res[key]["quantities"].items():
            lines.append(
                f"| {c['model']} | {c['dim']} | {_engine_label(c['engine'])} | {q} | {v['reps']} "
                f"| {fmt_p(v['p_value'])} | {'yes' if v['ecdf_inside_95_band'] else 'no'} "
                f"| {'pass' if v['pass_1pct'] else '**FAIL**'} |"
            )
    return lines


def verdicts(all_res: dict[str, Any]) -> list[dict[str, Any]]:
    """Each Gibbs failure of the main stage with the outcome of its confirmation run."""
    out = []
    for key, r in all_res.items():
        if r["config"]["engine"] == "nuts" or r["config"].get("stage", "main") != "main":
            continue
        conf = all_res.get(f"{key}_confirm")
        for q, v in r["quantities"].items():
            if v["pass_1pct"]:
                continue
            cv = conf["quantities"].get(q) if conf else None
            out.append(
                {
                    "study": key,
                    "quantity": q,
                    "p_main": v["p_value"],
                    "p_confirm": None if cv is None else cv["p_value"],
                    "confirmed": None if cv is None else not cv["pass_1pct"],
                }
            )
    return out


def family_p(res: dict[str, Any]) -> float:
    """Bonferroni family-wise p-value of one study: min(1, q x smallest chi-square p)."""
    ps = [v["p_value"] for v in res["quantities"].values()]
    return min(1.0, len(ps) * min(ps))


def _recheck_lines(all_res: dict[str, Any], keys: list[str], st: Settings) -> list[str]:
    """The pre-registered blocked-Gibbs re-check: rule, per-study verdict and the rank table."""
    rs = stage_settings(Config(**all_res[keys[0]]["config"]), st)
    fam = {k: family_p(all_res[k]) for k in keys}
    fails = [k for k in keys if fam[k] < FAMILY_ALPHA]
    ntests = sum(len(all_res[k]["quantities"]) for k in keys)
    raw = [(k, q, v["p_value"]) for k in keys for q, v in all_res[k]["quantities"].items()
           if v["p_value"] < 0.01]  # fmt: skip
    lines = [
        "",
        "### Blocked Gibbs re-check (pre-registered)",
        "",
        f"Rule, fixed before the run: every blocked-Gibbs study again with fresh seeds "
        f"(study index + {RECHECK_OFFSET}), {all_res[keys[0]]['config']['reps']} replications "
        "per study, stricter mixing "
        f"settings ({rs.gibbs_tune} tune sweeps, thin until the smallest ESS of the quantities "
        f"is >= {rs.ess_margin} L, thin up to {rs.max_thin}); a study fails if any of its q "
        f"quantities has chi-square p < {FAMILY_ALPHA} / q (Bonferroni, family-wise "
        f"{FAMILY_ALPHA:.0%} per model).",
        "",
        f"Outcome: {len(keys) - len(fails)} of {len(keys)} blocked-Gibbs studies pass"
        + (
            ": no calibration failure at the 1% level."
            if not fails
            else "; FAIL: " + ", ".join(f"{k} (family p = {fmt_p(fam[k])})" for k in fails) + "."
        )  # fmt: skip
        + f" Unadjusted, {len(raw)} of {ntests} single-quantity tests have p < 0.01"
        + (" (" + ", ".join(f"{k} {q} p = {fmt_p(p)}" for k, q, p in raw) + ")" if raw else "")
        + f"; {0.01 * ntests:.1f} are expected by chance.",
        "",
        "| study | family-wise p | verdict (1%) |",
        "|---|---|---|",
        *(
            f"| {k} | {fmt_p(fam[k])} | {'pass' if fam[k] >= FAMILY_ALPHA else '**FAIL**'} |"
            for k in keys
        ),
        "",
        *_table(all_res, keys),
    ]
    return lines


def _followup_lines(fu: dict[str, Any]) -> list[str]:
    """The follow-up study (its own folder)."""
    res, fst = fu["results"], fu["settings"]
    return [
        "",
        "### Follow-up of the re-check failure (pre-registered)",
        "",
        f"`{fu['meta']['command']}` on {fu['meta']['date']} (git `{fu['meta']['git']}`), "
        f"{fu['meta']['wall_s'] / 60:.1f} min: fresh seeds (base seed {fst['seed']}), "
        f"thin until the smallest ESS is >= {fst['ess_margin']} L (thin up to "
        f"{fst['max_thin']}). Rule fixed before the run: a failing quantity with p < 0.01 here "
        f"confirms the failure. Full record: `{FOLLOWUP_DIR}/sbc.md`.",
        "",
        *_table(res, list(res)),
    ]


@dataclass(frozen=True)
class Pooled:
    """One Gibbs study x quantity with the ranks of all its runs pooled."""

    key: str
    quantity: str
    runs: int
    reps: int
    p_value: float  # chi-square
    inside: bool  # ECDF inside the simultaneous 95% band
    bottom: float  # share of ranks in the lowest 5% of rank values
    top: float  # share in the highest 5%
    z: float  # (mean rank - L/2) / SE
    exits: tuple[float, ...] = ()  # fractional ranks where the ECDF leaves the band


def _band_exits(rk: np.ndarray, n_ranks: int) -> tuple[float, ...]:
    """Fractional ranks at which the rank ECDF leaves the simultaneous 95% band."""
    z, diff = ecdf_diff(rk, n_ranks)
    _, lo, hi, _ = ecdf_band(len(rk), n_ranks)
    out = (diff < lo - 1e-12) | (diff > hi + 1e-12)
    return tuple(float(v) for v in z[out])


def pooled_studies(all_res: dict[str, Any], fu: dict[str, Any] | None, st: Settings):
    """Every Gibbs study run more than once, each quantity's ranks pooled over all its runs
    (main, confirmation, re-check, follow-up: they differ only in seeds and thinning, so
    under a correct sampler the pooled ranks are uniform too)."""
    extra = fu["results"] if fu else {}
    n_ranks = st.n_kept + 1
    tail = n_ranks // 20
    out = []
    for key, r in all_res.items():
        if r["config"].get("stage", "main") != "main" or r["config"]["engine"] == "nuts":
            continue
        keys = (key, f"{key}_confirm", f"{key}_recheck")
        runs = [all_res[k] for k in keys if k in all_res] + ([extra[key]] if key in extra else [])
        if len(runs) < 2:
            continue
        for q in r["quantities"]:
            rk = np.concatenate([x["quantities"][q]["ranks"] for x in runs])
            out.append(
                Pooled(
                    key, q, len(runs), len(rk), chi2_uniform(rk, n_ranks, st.bins)[1],
                    inside_band(rk, n_ranks), float(np.mean(rk < tail)),
                    float(np.mean(rk >= n_ranks - tail)), _mean_rank_z(rk.tolist(), st.n_kept),
                    _band_exits(rk, n_ranks),
                )
            )  # fmt: skip
    return out


def _pooled_lines(pooled: list[Pooled], st: Settings) -> list[str]:
    """Table of every multiply-run Gibbs study pooled, with the share of extreme ranks."""
    n_ranks = st.n_kept + 1
    lines = [
        "",
        "### Every run pooled",
        "",
        "Each Gibbs study that was run more than once, with all its replications pooled. "
        f"Bottom/top 5% = share of ranks in the lowest/highest {n_ranks // 20} of the {n_ranks} "
        "rank values (5% each for a correct sampler; an excess at both ends means the kept "
        "draws are too concentrated, e.g. chains that visit some partitions too rarely); "
        "z = (mean rank - L/2) / SE.",
        "",
        "| study | quantity | runs | pooled reps | chi2 p | ECDF in 95% band | bottom 5% "
        "| top 5% | mean rank z |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in pooled:
        lines.append(
            f"| {r.key} | {r.quantity} | {r.runs} | {r.reps} | {fmt_p(r.p_value)} "
            f"| {'yes' if r.inside else 'no'} | {r.bottom:.1%} | {r.top:.1%} | {r.z:+.1f} |"
        )
    return lines


def _failed_before(all_res: dict[str, Any], key: str, q: str) -> bool:
    """Whether quantity q of study key fell below p = 0.01 in any of its earlier runs."""
    runs = (all_res.get(k) for k in (key, f"{key}_confirm", f"{key}_recheck"))
    return any(r["quantities"][q]["p_value"] < 0.01 for r in runs if r and q in r["quantities"])


def _verdict(all_res: dict[str, Any], fu: dict[str, Any] | None, pooled: list[Pooled]) -> str:
    """One paragraph: every Gibbs rank test below 1% in any run, and whether it held up."""
    gibbs = {k: r for k, r in all_res.items() if r["config"]["engine"] != "nuts"}
    runs = dict(gibbs) | ({f"{k} (follow-up)": r for k, r in fu["results"].items()} if fu else {})
    low = [(k, q, v["p_value"]) for k, r in runs.items() for q, v in r["quantities"].items()
           if v["p_value"] < 0.01]  # fmt: skip
    ntests = sum(len(r["quantities"]) for r in runs.values())
    text = (
        f"**Verdict (Gibbs engines).** Over all {len(runs)} Gibbs studies run ({ntests} rank "
        f"tests), {len(low)} single tests fell below p = 0.01 "
        f"({0.01 * ntests:.1f} expected by chance): "
        + ", ".join(f"{k} {q} p = {fmt_p(p)}" for k, q, p in low)
        + "."
    )
    if fu:
        fu_pass = all(v["p_value"] >= 0.01 for r in fu["results"].values()
                      for v in r["quantities"].values())  # fmt: skip
        text += (
            " The failing finite-mixture studies were re-run in the pre-registered follow-up "
            "with no failure there ("
            if fu_pass
            else " The follow-up CONFIRMS a failure ("
        )
        text += (
            ", ".join(
                f"{k} {q} p = {fmt_p(v['p_value'])}"
                for k, r in fu["results"].items()
                for q, v in r["quantities"].items()
                if _failed_before(all_res, k, q)
            )  # fmt: skip
            + ")."
        )
    if pooled:
        worst = min(pooled, key=lambda r: r.p_value)
        out_band = [
            f"{r.key} {r.quantity} (at fractional ranks {', '.join(f'{v:.2f}' for v in r.exits)})"
            for r in pooled
            if not r.inside
        ]
        text += (
            f" Pooled over all runs of each study run more than once ({len(pooled)} tests, "
            f"'Every run pooled' below), the smallest chi-square p is {fmt_p(worst.p_value)} "
            f"({worst.key} {worst.quantity})"
            + ("; no pooled test fails at 1%." if worst.p_value >= 0.01 else ".")
        )
        max_tail = max(max(r.bottom, r.top) for r in pooled)
        coll = [r for r in gibbs.values() if r["config"]["engine"] == "collapsed"]
        coll_low = sum(v["p_value"] < 0.01 for r in coll for v in r["quantities"].values())
        coll_out = sum(not v["ecdf_inside_95_band"] for r in coll for v in r["quantities"].values())
        coll_n = sum(len(r["quantities"]) for r in coll)
        if out_band:
            text += (
                f" The pooled ECDF (a 5%-level test) leaves the simultaneous band for "
                f"{len(out_band)} of {len(pooled)} ({0.05 * len(pooled):.1f} expected): "
                + ", ".join(out_band)
                + f"; the top or bottom 5% of ranks hold up to {max_tail:.1%} of the "
                "replications instead of 5%. Exits near the ends of the rank range are the mark "
                "of kept draws slightly too concentrated, i.e. of chains that visit some "
                "partitions too rarely (the blocked sampler has no split-merge move), not of a wrong "
                "conditional distribution: the exact-posterior tests in tests/test_gibbs.py "
                "(K+, the concentration and the largest weight against enumeration of all "
                "partitions) pass for both samplers."
            )
        if coll:
            text += (
                f" The collapsed sampler (the default for conjugate specs; {len(coll)} studies, "
                f"one run each): {coll_low} of {coll_n} tests below p = 0.01 and {coll_out} "
                f"ECDF band exits ({0.05 * coll_n:.1f} expected)."
            )
    return text


def _mean_rank_z(ranks: list[int], n_kept: int) -> float:
    """(mean rank - L/2) / SE, SE^2 = ((L + 1)^2 - 1) / (12 n) for ranks uniform on 0..L."""
    r = np.asarray(ranks, dtype=float)
    return float((r.mean() - n_kept / 2) / math.sqrt(((n_kept + 1) ** 2 - 1) / (12 * len(r))))


def findings(all_res: dict[str, Any], st: Settings) -> list[str]:
    """Data-driven notes: mixing of blocked vs collapsed Gibbs, NUTS diagnostics and power."""
    main = {k: r for k, r in all_res.items() if r["config"].get("stage", "main") == "main"}
    lines = []
    for eng in GIBBS_ENGINES:
        th = [
            r["diagnostics"]["thin_median"] for r in main.values() if r["config"]["engine"] == eng
        ]
        low = sum(r["diagnostics"]["ess_min_below_L"] for r in main.values()
                  if r["config"]["engine"] == eng)  # fmt: skip
        tot = sum(r["diagnostics"]["reps"] for r in main.values() if r["config"]["engine"] == eng)
        if th:
            lines.append(
                f"- {_engine_label(eng)}: median thinning per study {min(th):.0f}–{max(th):.0f} "
                f"to reach ESS >= {st.ess_margin} L; {low} of {tot} replications stayed below "
                f"ESS = L even at thin = {st.max_thin}"
                + (" (chains that disagree: slow moves between partitions)." if low else ".")
            )
    for key, r in main.items():
        if r["config"]["engine"] != "nuts":
            continue
        dg = r["diagnostics"]
        bad = [q for q, v in r["quantities"].items() if not v["pass_1pct"]]
        out_band = [q for q, v in r["quantities"].items() if not v["ecdf_inside_95_band"]]
        lines.append(
            f"- NUTS `{key}`: {dg['reps']} replications (compile {dg['compile_s']:.0f} s once "
            f"per worker, then about {dg['seconds_per_rep']:.0f} s per replication); "
            f"{dg['reps_with_divergences']} had divergent transitions (mean "
            f"{dg['divergences_mean']:.1f} per run), {dg['ess_min_below_L']} kept ESS < L even "
            f"with {st.nuts_max_draws} draws per chain. Chi-square at 1%: "
            + (f"fails for {', '.join(bad)}" if bad else "no failure")
            + "; ECDF outside the 95% band: "
            + (", ".join(out_band) if out_band else "none")
            + ". Mean rank (L/2 = "
            + f"{st.n_kept / 2} expected; z = (mean - L/2) / SE, descriptive): "
            + ", ".join(
                f"{q} {np.mean(v['ranks']):.1f} (z = {_mean_rank_z(v['ranks'], st.n_kept):+.1f})"
                for q, v in r["quantities"].items()
            )
            + "; a high mean rank means the posterior draws sit below the truth."
            + f" With {dg['reps']} replications ({dg['reps'] / st.bins:.0f} expected per bin) "
            "the test detects only gross miscalibration, so passing is weak evidence; the "
            "divergent transitions ("
            + (
                "the weakly informative kernel has no mu | sigma funnel: probably the DP's "
                "alpha-stick hierarchy and the components with few or no points"
                if r["config"].get("kernel") == "wi"
                else "probably the funnel mu | sigma ~ N(m0, sigma^2 / kappa0) of components "
                "with few or no points"
            )
            + ") and the low ESS (slow moves between modes) are findings in their own right."
        )
    return lines


def _kernel_line(kernel: str) -> str:
    """The kernel entry of the report's Settings section."""
    if kernel == "conjugate":
        return (
            f"- Kernel: `{KERNEL}` with the shipped KernelSpec defaults (m0 = 0, kappa0 = 0.01, "
            "a0 = 2, b0 = 0.25, psi0 = 0.25, nu0 = D + 2). The engines are called on the "
            "simulated data directly (no standardisation), so the prior is data-independent."
        )
    if kernel == "spherical":
        return (
            f"- Kernel (`--kernel spherical`): `{SPHERICAL_KERNEL}` with the shipped KernelSpec "
            "defaults (m0 = 0, kappa0 = 0.01, a0 = 2, b0 = 0.25): sigma_k^2 ~ IG(a0, b0), "
            "Sigma_k = sigma_k^2 I, mu_k | sigma_k^2 ~ N(m0 1, sigma_k^2 / kappa0 I); 2-D and "
            "3-D studies for the Gibbs engines (blocked / telescoping and collapsed), 2-D for "
            "NUTS."
        )
    if kernel == "wi":
        return (
            f"- Kernel (`--kernel wi`): `{WI_KERNEL}`: the weakly informative kernel of the "
            "NUTS specs with the zero-avoiding scale prior, mu_k ~ N(0, 2^2) independent of "
            "sigma_k ~ InverseGamma(2, 0.4) (1 / sigma_k ~ Gamma(2, rate 0.4)); 1-D, NUTS only, "
            f"with the shipped NUTS settings {WI_SAMPLER} (DP: non-centred sticks)."
        )
    if kernel == "scale":
        return (
            f"- Kernel (`--kernel scale`): `{SCALE_KERNEL}` with the shipped KernelSpec "
            "defaults otherwise (m0 = 0, kappa0 = 0.01, a0 = 2, nu0 = D + 2): the conjugate "
            "NIG (1-D) / NIW (2-D) kernel whose scale is random, b0 ~ Gamma(2, rate 8) in 1-D "
            "and psi0 ~ Gamma(2, rate 8) in 2-D (prior mean 0.25, the fixed default), one "
            "scale shared by all the components; collapsed Gibbs only (it samples the scale "
            "given the partition, `kernels.niw.draw_scale`). Extra quantity: `b0` (1-D) / "
            "`psi0` (2-D)."
        )
    tabs = "; ".join(f"{d}: `{t}`" for d, t in SEMI_KERNEL.items())
    return (
        f"- Kernel (`--kernel semi`): semi-conjugate with a hierarchical scale, {tabs}. "
        "With data_scaled = false the prior is data-independent: mu_k ~ N(m0, mean_var I) "
        "independent of Sigma_k^{-1} ~ W(c0, C0) (Sigma_k ~ IW(2 c0, 2 C0); 1-D: sigma_k^-2 ~ "
        "Gamma(c0, rate beta)), C0 ~ W(g0, G0 I) (the standard Wishart with 2 g0 df and scale "
        "(2 G0)^{-1} I; 1-D: beta = C0 ~ Gamma(g0, rate G0)), one C0 shared by all the model's "
        "components. E[C0] = I and mean_var = 4: components of sd ~ 1 with means of sd 2 (the "
        "shipped defaults c0, g0, G0 are tuned for data of range ~ R and, with R = 1, would "
        "simulate needle-thin components). Engines: blocked Gibbs (finite, sparse, DP, "
        "Pitman-Yor) and telescoping (MFM); the collapsed sampler and NUTS do not run this "
        "kernel. Extra quantity: `beta` (1-D) / `log_det_C0` (2-D) of the scale C0."
    )


def write_report(
    all_res: dict[str, Any],
    st: Settings,
    meta: dict[str, Any],
    followup: dict[str, Any] | None = None,
) -> str:
    """sbc.md: settings, the p-value table, confirmation runs, diagnostics, versions, seeds."""
    stage = {k: r["config"].get("stage", "main") for k, r in all_res.items()}
    main_keys = [k for k in all_res if stage[k] == "main"]
    conf_keys = [k for k in all_res if stage[k] == "confirm"]
    recheck_keys = [k for k in all_res if stage[k] == "recheck"]
    conf = meta.get("confirmation")
    run = (
        f"Generated by `{meta['command']}` on {meta['date']} ({meta['machine']}); "
        f"git `{meta['git']}`; wall time {meta['wall_s'] / 60:.1f} min with {meta['jobs']} "
        f"worker process(es){' (--quick)' if meta['quick'] else ''}."
    )
    for rm in meta.get("resumed", []):
        run += (
            f" Extended by `{rm['command']}` on {rm['date']} ({', '.join(rm['studies'])}), "
            f"{rm['wall_s'] / 60:.1f} min."
        )
    if conf:
        run += (
            f" Confirmation runs: `{conf['command']}` on {conf['date']}, "
            f"{conf['wall_s'] / 60:.1f} min."
        )
    if meta.get("recheck"):
        rc = meta["recheck"]
        run += (
            f" Blocked-Gibbs re-check: `{rc['command']}` on {rc['date']} (git `{rc['git']}`), "
            f"{rc['wall_s'] / 60:.1f} min."
        )
    kernel = meta.get("kernel", "conjugate")
    title = "# Simulation-based calibration of the bayesmix engines"
    if kernel == "semi":
        title += " (semi-conjugate hierarchical kernel)"
    elif kernel == "spherical":
        title += " (spherical conjugate kernel)"
    elif kernel == "scale":
        title += " (conjugate kernel with a hierarchical scale)"
    elif kernel == "wi":
        title += " (weakly informative kernel, NUTS)"
    lines = [title, "", run, "", "## Result", ""]
    if recheck_keys:
        pooled = pooled_studies(all_res, followup, st)
        lines += [_verdict(all_res, followup, pooled), ""]
    gibbs_tests = [
        (k, q)
        for k in main_keys
        if all_res[k]["config"]["engine"] != "nuts"
        for q in all_res[k]["quantities"]
    ]
    vs = verdicts(all_res)
    confirmed = [v for v in vs if v["confirmed"]]
    pending = [v for v in vs if v["confirmed"] is None]
    summary = (
        f"Gibbs engines: {len(gibbs_tests) - len(vs)} of {len(gibbs_tests)} rank tests pass at "
        f"the 1% level in the main study"
    )
    if not vs:
        summary += ": no calibration failure."
    else:
        summary += (
            f"; {len(vs)} fail ("
            + ", ".join(f"{v['study']} {v['quantity']} p = {fmt_p(v['p_main'])}" for v in vs)
            + "). Each failing study was re-run with fresh seeds and "
            f"{CONFIRM_FACTOR}x the replications: "
            + ", ".join(
                f"{v['study']} {v['quantity']} p = {fmt_p(v['p_confirm'])}"
                + (" (CONFIRMED)" if v["confirmed"] else " (not reproduced)")
                for v in vs
                if v["confirmed"] is not None
            )
            + (f"; {len(pending)} not re-run" if pending else "")
            + ". "
            + (
                "Confirmed calibration failures: "
                + ", ".join(f"{v['study']} {v['quantity']}" for v in confirmed)
                + "."
                if confirmed
                else "No failure was confirmed."
                if not pending
                else ""
            )
        )
    gibbs_main = [k for k in main_keys if all_res[k]["config"]["engine"] != "nuts"]
    fam_fail = [k for k in gibbs_main if family_p(all_res[k]) < FAMILY_ALPHA]
    summary += (
        f" Per model (family-wise 1%, Bonferroni over its quantities): "
        f"{len(gibbs_main) - len(fam_fail)} of {len(gibbs_main)} Gibbs studies pass"
        + (
            "; " + ", ".join(f"{k} family p = {fmt_p(family_p(all_res[k]))}" for k in fam_fail)
            if fam_fail
            else ""
        )
        + "."
    )
    nuts_tests = [
        (k, q, v["p_value"])
        for k in main_keys
        if all_res[k]["config"]["engine"] == "nuts"
        for q, v in all_res[k]["quantities"].items()
    ]
    if nuts_tests:
        nuts_fail = [t for t in nuts_tests if t[2] < 0.01]
        summary += (
            f" NUTS: {len(nuts_tests) - len(nuts_fail)} of {len(nuts_tests)} rank tests pass at "
            "the 1% level"
            + (
                " (failing: " + ", ".join(f"{k} {q} p = {fmt_p(p)}" for k, q, p in nuts_fail) + ")"
                if nuts_fail
                else ""
            )
            + "; a NUTS failure is not re-run automatically (see Findings)."
        )
    lines += [
        summary,
        "",
        f"With {len(gibbs_tests)} tests at the 1% level, about {0.01 * len(gibbs_tests):.1f} "
        "false alarms are expected even for perfect samplers, hence the pre-specified "
        "confirmation rule (a failure counts only if the same quantity fails again in a fresh "
        "run with twice the replications). The `ECDF in band` column is the simultaneous 95% "
        "ECDF test (Saeilynoja et al. 2022) on the same ranks (about 5% of perfect studies "
        "leave the band somewhere, so 'no' alone is not a failure).",
        "",
        *_table(all_res, main_keys),
    ]
    if conf_keys:
        lines += ["", "### Confirmation runs (fresh seeds, twice the replications)", ""]
        lines += _table(all_res, conf_keys)
    if recheck_keys:
        lines += _recheck_lines(all_res, recheck_keys, st)
    if followup:
        lines += _followup_lines(followup)
    if recheck_keys:
        lines += _pooled_lines(pooled, st)
    lines += ["", "## Findings", "", *findings(all_res, st)]
    lines += [
        "",
        "## Run diagnostics",
        "",
        "ESS = minimum over the quantities of the multi-chain ESS of one run (before keeping L "
        "draws); thin = thinning the ESS rule chose; ll diff = largest |engine log-likelihood - "
        "independent numpy log-likelihood| over kept draws (a consistency check of the engine).",
        "",
        "| study | reps | N | true K+ mean (5%, 50%, 95%) | median min ESS | reps with ESS < L "
        "| thin median (max) | draws/chain | ll diff | s/rep | divergent reps |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in all_res.items():
        dg = r["diagnostics"]
        qk = dg["true_kplus_quantiles_5_50_95"]
        lld = dg.get("ll_engine_minus_numpy_max")
        lines.append(
            f"| {key} | {dg['reps']} | {dg['n_range'][0]}–{dg['n_range'][1]} "
            f"| {dg['true_kplus_mean']:.2f} ({qk[0]:.0f}, {qk[1]:.0f}, {qk[2]:.0f}) "
            f"| {dg['ess_min_median']:.0f} | {dg['ess_min_below_L']} "
            f"| {dg['thin_median']:.0f} ({dg['thin_max']}) | {dg['draws_per_chain_median']:.0f} "
            f"| {'–' if lld is None else f'{lld:.1e}'} | {dg['seconds_per_rep']:.2f} "
            f"| {dg.get('reps_with_divergences', '–')} |"
        )
    used = {r["config"]["model"] for r in all_res.values()}
    lines += ["", "## Settings", ""]
    lines += [
        "- Models (mixing): "
        + "; ".join(f"`{k}` = `{v}`" for k, v in MODELS.items() if k in used)
        + ". The blocked Gibbs sampler and NUTS use the DP and Pitman-Yor truncated at T = 20 "
        "(and the simulator draws from that truncated model); the collapsed sampler uses the "
        "untruncated process (DP: sticks until the leftover mass < 1e-12; Pitman-Yor: the urn "
        "and the lumped weights, see the module docstring). MFM: K from the samplers' own "
        "prior of K (capped where the tail mass falls below 1e-10, at most 500), the collapsed "
        "and telescoping samplers report all K slots.",
        _kernel_line(kernel),
        f"- N ~ U{{{st.n_min}, ..., {st.n_max}}} per replication for Gibbs; N = {st.nuts_n} "
        "for NUTS (one compiled model, data swapped with `with_data`).",
        f"- Gibbs: {st.chains} chains x ({st.gibbs_tune} tune + {st.gibbs_draws} kept sweeps x "
        f"thin); thin starts at 1 and, while the smallest ESS of the quantities is below "
        f"{st.ess_margin} L, the run is repeated (fresh seed) with thin multiplied by "
        f"ceil({st.ess_margin} L / ESS), up to {st.max_thin}. NUTS: {st.chains} chains x "
        f"({st.nuts_tune} tune + {st.nuts_draws} draws), draws doubled up to "
        f"{st.nuts_max_draws} by the same ESS rule; started like `sample_nuts` at the EM + "
        "BIC means (`initial_values`) with U(-1, 1) jitter on the unconstrained scale.",
        f"- L = {st.n_kept} evenly spaced draws kept per replication; ranks in 0..{st.n_kept}, "
        "ties broken uniformly at random; chi-square test on "
        f"{st.bins} equal bins (5 rank values each, 19 df).",
        "- Simultaneous ECDF band: the simulation method of Saeilynoja, Buerkner & Vehtari "
        "(2022): 4000 sets of uniform ranks give the pointwise level gamma whose binomial "
        "intervals hold simultaneously with probability 95%.",
        "- K+ for NUTS: allocations drawn per draw from p(z_i = k | w, mu, Sigma, x_i) "
        "(`bayesmix.posterior.allocations`). For the collapsed DP the unoccupied "
        "components are one lumped component (see the module docstring).",
        f"- Seeds: replication r of study i uses `SeedSequence([{st.seed}, i, r])` for the "
        "simulation, the engine seeds and the tie-breaking (confirmation runs: i + "
        f"{CONFIRM_OFFSET})"
        + (
            f"; semi-conjugate study i is the conjugate study's index + {SEMI_OFFSET}"
            if kernel == "semi"
            else f"; spherical study i is the conjugate formula's index + {SPHERICAL_OFFSET}"
            if kernel == "spherical"
            else f"; hierarchical-scale study i is the conjugate formula's index + {SCALE_OFFSET}"
            if kernel == "scale"
            else ""
        )
        + "; `sbc.json` holds every rank, truth and seed.",
        "",
        "## Versions",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in meta["versions"].items()]
    lines += ["", "Figures: " + ", ".join(f"`sbc_{k}.png`" for k in all_res), ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def configs(
    reps: int,
    nuts_reps: int,
    engines: tuple[str, ...],
    models: tuple[str, ...] = tuple(MODELS),
    kernel: str = "conjugate",
) -> list[Config]:
    """Gibbs: every model in 1-D and 2-D with each of its algorithms (MODEL_ENGINES); NUTS:
    1-D dp and finite. Study i = 3 (model position x 2 + D - 1) + engine slot + 1.
    kernel = "semi": the semi-conjugate kernel, only the algorithms that run it (SEMI_ENGINES:
    blocked, telescoping for MFMs; NUTS for the 1-D NUTS_MODELS), study i + SEMI_OFFSET.
    kernel = "spherical": the Gibbs algorithms in SPHERICAL_DIMS (2-D, 3-D), study
    i + SPHERICAL_OFFSET (sub-cluster: i + SPHERICAL_OFFSET + SUBCLUSTER_OFFSET), and NUTS
    for the 2-D NUTS_MODELS (the spherical kernel has no 1-D form).
    kernel = "scale": the conjugate kernel with a hierarchical scale, collapsed Gibbs and
    NUTS (1-D NUTS_MODELS), study i + SCALE_OFFSET."""
    out = []
    for m, model in enumerate(MODELS):
        if model not in models:
            continue
        for dim in SPHERICAL_DIMS if kernel == "spherical" else (1, 2):
            sub = model not in ("mfm_dynamic", "py") and kernel in ("conjugate", "spherical")
            extra = ("subcluster",) if sub else ()
            for engine in (*MODEL_ENGINES.get(model, ("blocked", "collapsed")), "nuts", *extra):
                i = 3 * (2 * m + dim - 1) + ENGINE_SLOTS[engine] + 1
                if engine not in engines:
                    continue
                one_d_nuts = engine == "nuts" and dim == 1 and model in NUTS_MODELS
                if kernel == "wi":
                    if one_d_nuts and nuts_reps > 0:
                        cfg = Config(model, dim, engine, nuts_reps, i + WI_OFFSET, kernel=kernel)
                        out.append(cfg)
                elif kernel == "scale":
                    if engine == "collapsed":
                        out.append(
                            Config(model, dim, engine, reps, i + SCALE_OFFSET, kernel=kernel)
                        )
                    elif one_d_nuts and nuts_reps > 0:
                        cfg = Config(model, dim, engine, nuts_reps, i + SCALE_OFFSET, kernel=kernel)
                        out.append(cfg)
                elif kernel == "spherical":
                    if engine == "subcluster":  # slot 0 as blocked: its own offset
                        j = i + SPHERICAL_OFFSET + SUBCLUSTER_OFFSET
                        out.append(Config(model, dim, engine, reps, j, kernel=kernel))
                    elif engine != "nuts":
                        out.append(
                            Config(model, dim, engine, reps, i + SPHERICAL_OFFSET, kernel=kernel)
                        )
                    elif dim == 2 and model in NUTS_MODELS and nuts_reps > 0:  # 2-D: slot 2
                        j = i + SPHERICAL_OFFSET
                        out.append(Config(model, dim, engine, nuts_reps, j, kernel=kernel))
                elif kernel != "conjugate":
                    if engine in SEMI_ENGINES:
                        out.append(Config(model, dim, engine, reps, i + SEMI_OFFSET, kernel=kernel))
                    elif one_d_nuts and nuts_reps > 0:
                        cfg = Config(model, dim, engine, nuts_reps, i + SEMI_OFFSET, kernel=kernel)
                        out.append(cfg)
                elif engine == "subcluster":
                    out.append(Config(model, dim, engine, reps, i + SUBCLUSTER_OFFSET))
                elif engine == "nuts":
                    if dim == 1 and model in NUTS_MODELS and nuts_reps > 0:
                        out.append(Config(model, dim, engine, nuts_reps, i))
                else:
                    out.append(Config(model, dim, engine, reps, i))
    return out


def run_studies(
    cfgs: list[Config],
    st: Settings,
    jobs: int,
    batch: int,
    done: dict[str, list[dict[str, Any]]] | None = None,
    scheduler: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """All replications of the studies, batched over ``jobs`` spawned worker processes, or a
    Dask cluster (``scheduler``: "local" or an address); replications already in ``done``
    are kept and not recomputed."""
    done = done or {}
    tasks = []
    for cfg in cfgs:
        size = max(1, batch // 5) if cfg.engine == "nuts" else batch
        have = {r["rep"] for r in done.get(cfg.key, [])}
        todo = [r for r in range(cfg.reps) if r not in have]
        for a in range(0, len(todo), size):
            tasks.append((cfg, todo[a : a + size], st))
    # NUTS tasks first: they are the longest, and compile once per worker
    tasks.sort(key=lambda t: t[0].engine != "nuts")
    by_cfg: dict[str, list[dict[str, Any]]] = {c.key: list(done.get(c.key, [])) for c in cfgs}
    for res in run_tasks(run_batch, tasks, jobs, label="sbc", scheduler=scheduler):
        for r in res:
            by_cfg[r["config"]].append(r)
    return by_cfg


def confirmation_configs(all_res: dict[str, Any]) -> list[Config]:
    """A Gibbs study with any quantity failing at 1% is re-run once with fresh seeds and
    CONFIRM_FACTOR x the replications; a failure counts as confirmed only if the same quantity
    fails again (false-alarm rate of a correct sampler: 1e-4 per quantity)."""
    out = []
    for key, res in all_res.items():
        c = Config(**res["config"])
        if c.engine == "nuts" or c.stage != "main" or f"{key}_confirm" in all_res:
            continue
        if any(not v["pass_1pct"] for v in res["quantities"].values()):
            out.append(
                dataclasses.replace(
                    c, reps=CONFIRM_FACTOR * c.reps, index=c.index + CONFIRM_OFFSET, stage="confirm"
                )
            )
    return out


def kept_replications(results: dict[str, Any], cfgs: list[Config]) -> dict[str, list]:
    """Replications of these studies already in sbc.json (same seed index, rep < reps): a
    resumed run keeps them and computes only the missing ones."""
    done = {}
    for c in cfgs:
        old = results.get(c.key)
        if old is not None and old["config"]["index"] == c.index:
            done[c.key] = [r | {"config": c.key} for r in old["replications"] if r["rep"] < c.reps]
    return done


def save_study(out: Path, meta: dict[str, Any], st: Settings, all_res: dict[str, Any]) -> None:
    """Write sbc.json (every rank, truth and seed) and the sbc.md report; the kernel is
    meta["kernel"] (conjugate when absent: the files written before --kernel existed)."""
    used = {r["config"]["model"] for r in all_res.values()}
    kernel = meta.get("kernel", "conjugate")
    write_json(
        out / "sbc.json",
        {"meta": meta, "settings": dataclasses.asdict(st),
         "models": {k: v for k, v in MODELS.items() if k in used}, "kernel": KERNELS[kernel],
         "results": all_res},
    )  # fmt: skip
    fu_path = out / FOLLOWUP_DIR / "sbc.json"
    fu = json.loads(fu_path.read_text()) if fu_path.exists() else None
    write_text(out / "sbc.md", write_report(all_res, st, meta, fu))


def recheck_configs(all_res: dict[str, Any], reps: int) -> list[Config]:
    """The pre-registered re-check: every blocked-Gibbs main study, fresh seeds, more reps."""
    out = []
    for res in all_res.values():
        c = Config(**res["config"])
        if c.engine == "blocked" and c.stage == "main":
            out.append(
                dataclasses.replace(c, reps=reps, index=c.index + RECHECK_OFFSET, stage="recheck")
            )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.sbc", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--quick", action="store_true", help="reduced study (< 5 min on 2 cores)")
    ap.add_argument("--reps", type=int, default=None, help="replications per Gibbs study")
    ap.add_argument("--nuts-reps", type=int, default=None, help="replications per NUTS study")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument(
        "--scheduler",
        default=None,
        help="'local' (a Dask LocalCluster of --jobs workers) or a Dask scheduler address "
        "(default: --jobs local worker processes)",
    )
    ap.add_argument(
        "--engines", default="blocked,telescoping,collapsed,nuts", help="comma-separated subset"
    )
    ap.add_argument(
        "--models", default=",".join(MODELS), help=f"comma-separated subset of {', '.join(MODELS)}"
    )
    ap.add_argument("--only", default="", help="comma-separated study keys, e.g. dp_2d_blocked")
    ap.add_argument("--seed", type=int, default=Settings.seed)
    ap.add_argument(
        "--ess-margin", type=float, default=Settings.ess_margin,
        help="thin until the smallest ESS of the quantities is >= this x L",
    )  # fmt: skip
    ap.add_argument("--max-thin", type=int, default=Settings.max_thin, help="largest thinning")
    ap.add_argument("--batch", type=int, default=25, help="replications per worker task")
    ap.add_argument("--no-confirm", action="store_true", help="skip the confirmation re-runs")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="keep the studies and replications in <out>/sbc.json; compute only what is missing",
    )
    ap.add_argument(
        "--confirm-only",
        action="store_true",
        help="only run the confirmation studies for the failures recorded in <out>/sbc.json",
    )
    ap.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite <out>/sbc.md from <out>/sbc.json (and the follow-up) without sampling",
    )
    ap.add_argument(
        "--recheck-blocked",
        action="store_true",
        help="add the pre-registered blocked-Gibbs re-check to <out>/sbc.json (resumable; "
        f"--reps overrides its {RECHECK_REPS} replications)",
    )
    ap.add_argument(
        "--kernel",
        choices=tuple(KERNELS),
        default="conjugate",
        help="conjugate (NIG / NIW, every engine), semi (semi-conjugate with a hierarchical "
        f"scale: blocked and telescoping Gibbs only, seeds i + {SEMI_OFFSET}) or spherical "
        f"(conjugate, Sigma = sigma^2 I; 2-D and 3-D Gibbs, 2-D NUTS, seeds i + {SPHERICAL_OFFSET}) "
        "or scale (conjugate with b0 / psi0 ~ Gamma(2, 8): collapsed Gibbs only, seeds i + "
        f"{SCALE_OFFSET}) or wi (weakly informative, sigma ~ InverseGamma(2, 0.4): 1-D NUTS "
        f"only, seeds i + {WI_OFFSET})",
    )
    ap.add_argument(
        "--out",
        default=None,
        help="output folder (default reports/validation, --kernel semi: "
        "reports/validation/sbc_semi, --kernel spherical: reports/validation/sbc_spherical, "
        "--kernel scale: reports/validation/sbc_scale; "
        "--quick: <that>/quick)",
    )
    args = ap.parse_args(argv)
    argv_list = argv if argv is not None else sys.argv[1:]
    base = REPORT_DIR if args.kernel == "conjugate" else REPORT_DIR / f"sbc_{args.kernel}"
    out = Path(args.out) if args.out else base / "quick" if args.quick else base
    out.mkdir(parents=True, exist_ok=True)
    saved = None
    if args.confirm_only or args.resume or args.recheck_blocked or args.render_only:
        saved = json.loads((out / "sbc.json").read_text())
        if any(MODELS.get(k) != v for k, v in saved["models"].items()):
            raise SystemExit("sbc.json was made with other models; rerun the whole study")
        saved_kernel = saved["meta"].get("kernel", "conjugate")
        if saved_kernel != args.kernel or saved["kernel"] != KERNELS[args.kernel]:
            raise SystemExit(
                f"sbc.json was made with kernel {saved_kernel!r} = {saved['kernel']}, not "
                f"--kernel {args.kernel} = {KERNELS[args.kernel]}; pass its --kernel or rerun "
                "the whole study"
            )
    if args.render_only:
        save_study(out, saved["meta"], Settings(**saved["settings"]), saved["results"])
        print(f"wrote {out / 'sbc.md'}")
        return 0
    if args.recheck_blocked:
        st = Settings(**saved["settings"])
        all_res, meta = saved["results"], saved["meta"]
        cfgs = recheck_configs(all_res, args.reps or RECHECK_REPS)
        done = kept_replications(all_res, cfgs)
        t0 = time.perf_counter()
        meta["recheck"] = provenance(["benchmarks.sbc", *argv_list])
        for c in cfgs:  # one study at a time, saved after each (a stopped run resumes)
            by_cfg = run_studies([c], st, args.jobs, args.batch, done, args.scheduler)
            all_res[c.key] = analyse(c, by_cfg[c.key], st)
            plot_config(all_res[c.key], st, out / f"sbc_{c.key}.png")
            meta["recheck"]["wall_s"] = time.perf_counter() - t0
            save_study(out, meta, st, all_res)
            print(f"{c.key}: family-wise p {fmt_p(family_p(all_res[c.key]))}", flush=True)
    elif args.confirm_only:
        st = Settings(**saved["settings"])
        all_res, meta = saved["results"], saved["meta"]
    else:
        reps = args.reps if args.reps is not None else (30 if args.quick else 500)
        nuts_reps = args.nuts_reps if args.nuts_reps is not None else (0 if args.quick else 100)
        st = Settings(seed=args.seed, ess_margin=args.ess_margin, max_thin=args.max_thin)
        if saved is not None and Settings(**saved["settings"]) != st:
            raise SystemExit("--resume: sbc.json was made with other settings")
        engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
        models = tuple(m.strip() for m in args.models.split(",") if m.strip())
        unknown = [m for m in models if m not in MODELS]
        if unknown:
            raise SystemExit(f"--models: unknown {', '.join(unknown)} (choose {', '.join(MODELS)})")
        cfgs = configs(reps, nuts_reps, engines, models, args.kernel)
        if args.only:
            keep = {k.strip() for k in args.only.split(",")}
            cfgs = [c for c in cfgs if c.key in keep]
        if not cfgs:
            raise SystemExit(
                f"no study selected (--kernel {args.kernel} runs the engines "
                f"{', '.join(KERNEL_ENGINES.get(args.kernel, tuple(ENGINE_SLOTS)))}; "
                "check --models, --engines and --only)"
            )
        done = kept_replications(saved["results"], cfgs) if saved is not None else {}
        run_meta = provenance(["benchmarks.sbc", *argv_list])
        run_meta.update(wall_s=0.0, jobs=args.jobs, quick=args.quick, kernel=args.kernel)
        if saved is not None:
            all_res, meta = dict(saved["results"]), saved["meta"]
            meta.setdefault("resumed", []).append(run_meta | {"studies": []})
            studies = meta["resumed"][-1]["studies"]
            run_meta = meta["resumed"][-1]
        else:
            all_res, meta, studies = {}, run_meta, []
        t0 = time.perf_counter()
        for c in cfgs:  # one study at a time, saved after each: a stopped run loses at most one
            by_cfg = run_studies([c], st, args.jobs, args.batch, done, args.scheduler)
            all_res[c.key] = analyse(c, by_cfg[c.key], st)
            plot_config(all_res[c.key], st, out / f"sbc_{c.key}.png")
            studies.append(c.key)
            run_meta["wall_s"] = time.perf_counter() - t0
            save_study(out, meta, st, all_res)
            print(f"{c.key}: family-wise p {fmt_p(family_p(all_res[c.key]))}", flush=True)
    if not args.no_confirm:
        ccfgs = confirmation_configs(all_res)
        if ccfgs:
            t0 = time.perf_counter()
            by_cfg = run_studies(ccfgs, st, args.jobs, args.batch, scheduler=args.scheduler)
            cmeta = provenance(["benchmarks.sbc", *argv_list])
            cmeta.update(wall_s=time.perf_counter() - t0, studies=[c.key for c in ccfgs])
            meta["confirmation"] = cmeta
            for c in ccfgs:
                all_res[c.key] = analyse(c, by_cfg[c.key], st)
                plot_config(all_res[c.key], st, out / f"sbc_{c.key}.png")
    save_study(out, meta, st, all_res)
    for key, res in all_res.items():
        ps = ", ".join(f"{q} {fmt_p(v['p_value'])}" for q, v in res["quantities"].items())
        print(f"{key}: {ps}")
    print(f"wrote {out / 'sbc.md'}")
    return 0


if __name__ == "__main__":
    # main() of the module imported by name: the functions sent to the workers are then
    # pickled by reference (benchmarks.sbc.run_batch), as a Dask cluster needs, not by value
    from benchmarks.sbc import main as _main

    raise SystemExit(_main())
