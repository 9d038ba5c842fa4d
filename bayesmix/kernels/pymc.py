"""Gaussian kernels: component priors and the batched log-density (PyMC graphs only).

Each kernel returns the means ``mu`` (K, D) and a whitening factor ``A`` (K, D, D)
with (x - mu_k)' Sigma_k^{-1} (x - mu_k) = ||(x - mu_k)' A_k||^2 and
log|Sigma_k|^{-1/2} = sum_d log|A_k[d, d]| (A_k triangular).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayesmix.spec import KernelSpec

LOG_2PI = float(np.log(2 * np.pi))


def _diag_factor(tau):
    """A_k = diag(sqrt(tau_k)) for precisions tau (K, D)."""
    return pt.sqrt(tau)[:, :, None] * pt.eye(tau.shape[1])[None, :, :]


def _bartlett_precision_chol(kernel: KernelSpec, k: int, d: int):
    """Lower Cholesky P_k of Lambda_k ~ Wishart(nu0, I / psi0), i.e. Sigma_k ~ IW(nu0, psi0 I).

    Bartlett: P = B / sqrt(psi0), B lower, B_ii^2 ~ chi2(nu0 - i), B_ij ~ N(0, 1) (i > j).
    """
    nu0 = kernel.nu0_for(d)
    c = pm.ChiSquared("bartlett_c", nu=nu0 - np.arange(d), shape=(k, d))
    rows, cols = np.tril_indices(d, -1)
    off = pm.Normal("bartlett_z", 0.0, 1.0, shape=(k, len(rows)))
    b = pt.zeros((k, d, d))
    b = pt.set_subtensor(b[:, np.arange(d), np.arange(d)], pt.sqrt(c))
    b = pt.set_subtensor(b[:, rows, cols], off)
    return b / np.sqrt(kernel.psi0)


def conjugate(kernel: KernelSpec, k: int, d: int):
    """NIG (1-D, diag), NIG with one precision per component (spherical: Sigma_k = I / tau_k,
    tau_k ~ Gamma(a0, b0)) or NIW (full): Sigma ~ prior, mu_k | Sigma_k ~ N(m0, Sigma_k / kappa0)."""
    m0 = kernel.m0 * np.ones(d)
    if d > 1 and kernel.covariance == "spherical":
        tau1 = pm.Gamma("tau", alpha=kernel.a0, beta=kernel.b0, shape=(k, 1))
        tau = pt.repeat(tau1, d, axis=1)
        mu = pm.Normal("mu", mu=m0, sigma=1.0 / pt.sqrt(kernel.kappa0 * tau), shape=(k, d))
        return mu, _diag_factor(tau)
    if d == 1 or kernel.covariance == "diag":
        tau = pm.Gamma("tau", alpha=kernel.a0, beta=kernel.b0, shape=(k, d))
        mu = pm.Normal("mu", mu=m0, sigma=1.0 / pt.sqrt(kernel.kappa0 * tau), shape=(k, d))
        return mu, _diag_factor(tau)
    chol_prec = _bartlett_precision_chol(kernel, k, d)
    # mu_k | Lambda_k ~ N(m0, (kappa0 Lambda_k)^{-1}), written with the precision Cholesky
    # (a batched MvNormal(tau=...) does not broadcast over clusters).
    mu = pm.Flat("mu", shape=(k, d))
    scaled = chol_prec * np.sqrt(kernel.kappa0)
    pm.Potential("mu_prior", pt.sum(pt.diagonal(component_logpdf(mu, m0[None, :], scaled))))
    return mu, chol_prec


def weakly_informative(kernel: KernelSpec, k: int, d: int):
    """mu ~ N(m0, mu_sd^2); sigma ~ HalfNormal(sigma_sd) (spherical: one sigma per
    component); full covariance adds LKJ(eta)."""
    mu = pm.Normal("mu", mu=kernel.m0, sigma=kernel.mu_sd, shape=(k, d))
    if d > 1 and kernel.covariance == "spherical":
        sigma = pm.HalfNormal("sigma_raw", sigma=kernel.sigma_sd, shape=(k, 1))
        return mu, _diag_factor(pt.repeat(1.0 / sigma**2, d, axis=1))
    if d == 1 or kernel.covariance == "diag":
        sigma = pm.HalfNormal("sigma_raw", sigma=kernel.sigma_sd, shape=(k, d))
        return mu, _diag_factor(1.0 / sigma**2)
    # LKJCholeskyCov cannot be batched over clusters: one per cluster, stacked.
    factors = []
    eye = pt.eye(d)
    for j in range(k):
        chol, _, _ = pm.LKJCholeskyCov(
            f"chol_{j}",
            n=d,
            eta=kernel.lkj_eta,
            sd_dist=pm.HalfNormal.dist(kernel.sigma_sd, shape=d),
            compute_corr=True,
        )
        inv = pt.linalg.solve_triangular(chol, eye, lower=True)
        factors.append(inv.T)
    return mu, pt.stack(factors)


def build_kernel(kernel: KernelSpec, k: int, d: int):
    """Component priors for K components in D dimensions: returns (mu, A)."""
    if kernel.prior == "conjugate":
        return conjugate(kernel, k, d)
    if kernel.prior == "semi_conjugate":
        from bayesmix.errors import InputError

        raise InputError(
            "kernel.prior = 'semi_conjugate' runs on the Gibbs engines only (--engine gibbs: "
            "blocked, or telescoping for an MFM); NUTS takes 'conjugate' or 'weakly_informative'"
        )
    return weakly_informative(kernel, k, d)


def component_logpdf(x, mu, factor):
    """log N(x_n | mu_k, Sigma_k) for all n, k: (N, D), (K, D), (K, D, D) -> (N, K)."""
    d = x.shape[-1]
    diff = x[:, None, :] - mu[None, :, :]
    y = pt.sum(diff[:, :, :, None] * factor[None, :, :, :], axis=2)
    logdet = pt.sum(pt.log(pt.abs(pt.diagonal(factor, axis1=-2, axis2=-1))), axis=-1)
    return -0.5 * pt.sum(y**2, axis=-1) + logdet[None, :] - 0.5 * d * LOG_2PI


def mixture_logp(x, w, mu, factor):
    """Pointwise log sum_k w_k N(x_n | mu_k, Sigma_k), allocations summed out (N,)."""
    return pt.logsumexp(pt.log(w)[None, :] + component_logpdf(x, mu, factor), axis=-1)
