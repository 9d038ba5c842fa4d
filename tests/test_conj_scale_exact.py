"""The conjugate kernel with a hierarchical scale (``kernel.scale_prior``) under the collapsed
Gibbs sampler, against the exact posterior over the 203 set partitions of N = 6 points.

Kernel side: L(partition) = int Gamma(psi0; a, b) prod_j m(x_{B_j} | psi0) d psi0, with the
closed-form NIW / NIG block marginals of ``exact_partitions`` (``block_log_marginal``) and the
rectangle rule on a grid uniform in log psi0 over [-20, 8] with step 0.02 (the integrand is
analytic in log psi0 and decays at both ends: like psi0^a on the left, like exp(-b psi0) on the
right; halving the step moves every log L by < 1e-12, widening the range to [-25, 10] by < 1e-14). NIG: psi0 = 2 b0, so b0 ~ Gamma(a, b)
is psi0 ~ Gamma(a, b / 2) (also for the spherical kernel). Tolerances as in test_mixings_exact; E[b0 | x] (or E[psi0 | x])
within 4.5 MCSE.
"""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import pytest
from exact_partitions import (
    ENUM_X1,
    ENUM_X2,
    exact_posterior,
    partition_log_likelihoods,
    tv,
    uniform_k,
)
from scipy.special import gammaln, logsumexp

from bayesmix.engines.gibbs import sample_gibbs
from bayesmix.errors import InputError
from bayesmix.spec import GammaPrior, KernelSpec, KPrior, MixingSpec, ModelSpec

DRAWS = dict(chains=2, draws=10000, tune=300, progress=False, cores=1, seed=20261203)
MIN_ESS_KPLUS = 1500
TV_MAX = 0.05
LOG_PSI = np.arange(-20.0, 8.0, 0.02)


def kernel_side(x, m0, k0, nu0, diag, a, b_psi):
    """log L(partition) (module docstring) and, per partition, the posterior of psi0 on the grid."""
    lw = a * math.log(b_psi) - gammaln(a) + a * LOG_PSI - b_psi * np.exp(LOG_PSI) + math.log(0.02)
    ll = np.stack(
        [partition_log_likelihoods(x, (m0, k0, nu0, math.exp(u)), diag) for u in LOG_PSI], axis=1
    )  # (partitions, grid)
    joint = ll + lw[None, :]
    total = logsumexp(joint, axis=1)
    return total, np.exp(joint - total[:, None])


CASES = {
    # name: (data, covariance, MixingSpec, exact mixing, params, hyper, scale prior (on b0 / psi0))
    "dp_1d": (
        ENUM_X1, "full", MixingSpec("dp", 20, None, GammaPrior(2.0, 2.0)),
        "dp", {}, {"concentration": ("gamma", 2.0, 2.0)}, (2.0, 8.0),
    ),
    "mfm_2d_full": (
        ENUM_X2, "full", MixingSpec("mfm", 8, 1.0, None, k_prior=KPrior("uniform", (("max", 8.0),))),
        "mfm_static", {"concentration": 1.0, "k_prior": uniform_k(8)}, None, (2.0, 4.0),
    ),
    "finite_2d_diag": (
        ENUM_X2, "diag", MixingSpec("finite", 3, 1.0, None),
        "finite", {"concentration": 1.0, "n_components": 3}, None, (2.0, 8.0),
    ),
    "dp_2d_spherical": (
        ENUM_X2, "spherical", MixingSpec("dp", 20, 0.7, None),
        "dp", {"concentration": 0.7}, None, (2.0, 8.0),
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_hierarchical_conjugate_scale_matches_exact_posterior(name):
    x, cov, mix, exact_mix, params, hyper, (a, b) = CASES[name]
    kern = KernelSpec(covariance=cov, kappa0=0.1, a0=2.0, b0=0.25, psi0=0.5,
                      scale_prior=GammaPrior(a, b))  # fmt: skip
    # the exact kernel: False (NIW), True (NIG per feature) or "spherical" (one NIG variance)
    diag = "spherical" if cov == "spherical" else (x.shape[1] == 1 or cov == "diag")
    nu0 = 2.0 * kern.a0 if diag else kern.nu0_for(x.shape[1])
    b_psi = b / 2.0 if diag else b
    ll, post = kernel_side(x, kern.m0, kern.kappa0, nu0, diag, a, b_psi)
    exact = exact_posterior(x, None, diag, exact_mix, params, hyper, partition_ll=ll)
    dr = sample_gibbs(ModelSpec(mixing=mix, kernel=kern), x, algorithm="collapsed", **DRAWS)
    kplus = dr.sample_stats["n_occupied"]
    assert float(az.ess(kplus.astype(float))) >= MIN_ESS_KPLUS
    got = np.bincount(kplus.ravel(), minlength=len(exact["kplus_pmf"])) / kplus.size
    assert tv(got, exact["kplus_pmf"]) < TV_MAX, (got.round(3), exact["kplus_pmf"].round(3))
    name_s = "b0" if diag else "psi0"
    values = dr.kernel_params[name_s]
    want = float(exact["partition_pmf"] @ (post @ np.exp(LOG_PSI)))  # E[psi0 | x]
    want = 0.5 * want if diag else want
    mcse = float(az.mcse(values))
    assert math.isfinite(mcse) and abs(values.mean() - want) < 4.5 * mcse, (
        values.mean(), want, mcse,
    )  # fmt: skip
    assert np.all(np.diff(values, axis=1) != 0)  # redrawn every sweep


def test_scale_prior_needs_the_collapsed_engine():
    kern = KernelSpec(scale_prior=GammaPrior(2.0, 8.0))
    with pytest.raises(InputError, match="--engine collapsed"):
        sample_gibbs(ModelSpec(kernel=kern), ENUM_X1, algorithm="blocked", draws=5, tune=1)
