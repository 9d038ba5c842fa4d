"""Gaussian kernels: component priors and the batched log-density (PyMC graphs only).

Each kernel returns the means ``mu`` (K, D) and a whitening factor ``A`` (K, D, D)
with (x - mu_k)' Sigma_k^{-1} (x - mu_k) = ||(x - mu_k)' A_k||^2 and
log|Sigma_k|^{-1/2} = sum_d log|A_k[d, d]| (A_k triangular).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.distributions.transforms import ordered as ordered_transform

from bayesmix.kernels import semiconj
from bayesmix.spec import KernelSpec

LOG_2PI = float(np.log(2 * np.pi))


def _diag_factor(tau):
    """A_k = diag(sqrt(tau_k)) for precisions tau (K, D)."""
    return pt.sqrt(tau)[:, :, None] * pt.eye(tau.shape[1])[None, :, :]


def _bartlett_precision_chol(kernel: KernelSpec, k: int, d: int, psi0=None):
    """Lower Cholesky P_k of Lambda_k ~ Wishart(nu0, I / psi0), i.e. Sigma_k ~ IW(nu0, psi0 I).

    Bartlett: P = B / sqrt(psi0), B lower, B_ii^2 ~ chi2(nu0 - i), B_ij ~ N(0, 1) (i > j).
    ``psi0``: a random scale (default: the spec's fixed ``kernel.psi0``).
    """
    nu0 = kernel.nu0_for(d)
    c = pm.ChiSquared("bartlett_c", nu=nu0 - np.arange(d), shape=(k, d))
    rows, cols = np.tril_indices(d, -1)
    off = pm.Normal("bartlett_z", 0.0, 1.0, shape=(k, len(rows)))
    b = pt.zeros((k, d, d))
    b = pt.set_subtensor(b[:, np.arange(d), np.arange(d)], pt.sqrt(c))
    b = pt.set_subtensor(b[:, rows, cols], off)
    return b / (np.sqrt(kernel.psi0) if psi0 is None else pt.sqrt(psi0))


def _means(mean, sd, k: int, d: int, ordered: bool = False):
    """mu (K, D) ~ N(mean, sd^2) elementwise (``mean``, ``sd`` broadcast to (K, D)).

    ``ordered`` (1-D only): the free variable is ``mu_sorted`` (K,) with PyMC's ordered
    transform, mu_sorted_1 < ... < mu_sorted_K, and ``mu`` is the Deterministic
    mu_sorted[:, None]. The density is that of the unordered means restricted to the ordered
    cone: for exchangeable components (a symmetric finite Dirichlet) that identifies the labels
    without changing the posterior of any label-invariant quantity (it is K! times the
    unordered density there)."""
    if not ordered:
        return pm.Normal("mu", mu=mean, sigma=sd, shape=(k, d))
    if d != 1:
        raise ValueError("ordered means are for 1-D data")
    mean = pt.broadcast_to(pt.as_tensor_variable(mean), (k, 1))[:, 0]
    sd = pt.broadcast_to(pt.as_tensor_variable(sd), (k, 1))[:, 0]
    flat = pm.Normal("mu_sorted", mu=mean, sigma=sd, shape=(k,), transform=ordered_transform)
    return pm.Deterministic("mu", flat[:, None])


def conjugate(kernel: KernelSpec, k: int, d: int, non_centred: bool = False, ordered: bool = False):
    """NIG (1-D, diag), NIG with one precision per component (spherical: Sigma_k = I / tau_k,
    tau_k ~ Gamma(a0, b0)) or NIW (full): Sigma ~ prior, mu_k | Sigma_k ~ N(m0, Sigma_k / kappa0).

    ``kernel.scale_prior``: the scale is a free variable shared by all components, as on the
    collapsed engine (``kernels.niw.draw_scale``): b0 ~ Gamma(shape, rate) (1-D, diag: one b0
    for all features, spherical), with tau = tau_std / b0, tau_std ~ Gamma(a0, 1) (non-centred:
    Gamma(a0, rate b0) = Gamma(a0, 1) / b0); psi0 ~ Gamma(shape, rate) (full), through the
    Bartlett factor P = B / sqrt(psi0).

    ``non_centred``: mu_k = m0 + Sigma_k^{1/2} z_k / sqrt(kappa0), z_k ~ N(0, I) (free variable
    ``mu_z``; ``mu`` is a Deterministic), with Sigma_k^{1/2} = 1 / sqrt(tau_k) (1-D, diag,
    spherical) or P_k^{-T} (full, Lambda_k = P_k P_k'): the same prior, without the funnel
    between mu_k and Sigma_k that a centred mu has where a component holds few points.
    ``ordered`` (1-D): ``_means``."""
    m0 = kernel.m0 * np.ones(d)
    sp = kernel.scale_prior
    full = d > 1 and kernel.covariance == "full"
    if sp is not None:
        scale = pm.Gamma("psi0" if full else "b0", alpha=sp.shape, beta=sp.rate)
    if not full:
        width = 1 if d > 1 and kernel.covariance == "spherical" else d
        if sp is None:
            tau = pm.Gamma("tau", alpha=kernel.a0, beta=kernel.b0, shape=(k, width))
        else:
            tau_std = pm.Gamma("tau_std", alpha=kernel.a0, beta=1.0, shape=(k, width))
            tau = pm.Deterministic("tau", tau_std / scale)
        if width != d:
            tau = pt.repeat(tau, d, axis=1)
        sd = 1.0 / pt.sqrt(kernel.kappa0 * tau)
        if non_centred:
            z = pm.Normal("mu_z", 0.0, 1.0, shape=(k, d))
            mu = pm.Deterministic("mu", m0[None, :] + sd * z)
        else:
            mu = _means(m0, sd, k, d, ordered)
        return mu, _diag_factor(tau)
    chol_prec = _bartlett_precision_chol(kernel, k, d, None if sp is None else scale)
    if non_centred:
        z = pm.Normal("mu_z", 0.0, 1.0, shape=(k, d))
        # mu_k - m0 = P_k^{-T} z_k / sqrt(kappa0): Cov = (kappa0 P_k P_k')^{-1}
        y = pt.linalg.solve_triangular(pt.swapaxes(chol_prec, -1, -2), z[..., None], lower=False)
        mu = pm.Deterministic("mu", m0[None, :] + y[..., 0] / np.sqrt(kernel.kappa0))
        return mu, chol_prec
    # mu_k | Lambda_k ~ N(m0, (kappa0 Lambda_k)^{-1}), written with the precision Cholesky
    # (a batched MvNormal(tau=...) does not broadcast over clusters).
    mu = pm.Flat("mu", shape=(k, d))
    scaled = chol_prec * np.sqrt(kernel.kappa0)
    pm.Potential("mu_prior", pt.sum(pt.diagonal(component_logpdf(mu, m0[None, :], scaled))))
    return mu, chol_prec


def _triangular(diag, off, d: int, lower: bool = True):
    """Triangular (..., D, D) with diagonal ``diag`` (..., D) and the strictly lower (upper)
    entries ``off`` (..., D (D - 1) / 2) in ``np.tril_indices(d, -1)`` (``triu_indices(d, 1)``)
    order."""
    rows, cols = np.tril_indices(d, -1) if lower else np.triu_indices(d, 1)
    m = pt.zeros((*diag.shape[:-1], d, d))
    m = pt.set_subtensor(m[..., np.arange(d), np.arange(d)], diag)
    return pt.set_subtensor(m[..., rows, cols], off)


def semi_conjugate(
    kernel: KernelSpec, k: int, d: int, hyper: semiconj.SemiHyper, ordered: bool = False
):
    """The semi-conjugate kernel of the Gibbs engines (``kernels.semiconj``), with the same
    data-scaled hyperparameters (``semiconj.data_hyper``): mu_k ~ N(b0, B0) independent of
    Sigma_k, and, with W(c, C) the standard Wishart with 2c degrees of freedom and scale
    (2C)^{-1}:

    1-D and diag (Richardson & Green 1997, per feature): sigma_kd^-2 = tau_kd ~ Gamma(c0, beta_d)
    written tau = tau_std / beta, tau_std ~ Gamma(c0, 1); beta_d = C0_dd ~ Gamma(g0, G0_d)
    (``scale = "hierarchical"``, exposed as the Deterministic ``C0`` = diag(beta)) or
    beta = g0 / G0 (fixed).
    full: Sigma_k^-1 = Q_k ~ W(c0, C0) and C0 ~ W(g0, G0) (or C0 = g0 G0^-1 fixed), both by
    Bartlett: C0 = M M', M = diag((2 G0)^-1/2) A, A lower with A_ii^2 ~ chi2(2 g0 - i),
    A_ij ~ N(0, 1); Q_k = (r U_k)(r U_k)' with r = M^-T / sqrt(2) ((2 C0)^-1 = r r') and U_k
    upper with U_ii^2 ~ chi2(2 c0 - (D - 1 - i)) (the reversed Bartlett factor), so that the
    whitening factor r U_k is triangular."""
    c0, g0 = hyper.c0, hyper.g0
    b0, bvar, grate = (np.asarray(v, dtype=np.float64) for v in (hyper.b0, hyper.B0, hyper.G0))
    mu = _means(b0, np.sqrt(bvar), k, d, ordered)
    if d == 1 or kernel.covariance == "diag":
        if hyper.hierarchical:
            beta = pm.Gamma("beta", alpha=g0, beta=grate, shape=(d,))
            pm.Deterministic("C0", beta[:, None] * pt.eye(d))
        else:
            beta = pt.as_tensor_variable(g0 / grate)
        tau_std = pm.Gamma("tau_std", alpha=c0, beta=1.0, shape=(k, d))
        tau = pm.Deterministic("tau", tau_std / beta[None, :])
        return mu, _diag_factor(tau)
    n_off = d * (d - 1) // 2
    if hyper.hierarchical:
        cc = pm.ChiSquared("C0_bartlett_c", nu=2.0 * g0 - np.arange(d), shape=(d,))
        cz = pm.Normal("C0_bartlett_z", 0.0, 1.0, shape=(n_off,))
        m = _triangular(pt.sqrt(cc), cz, d) / np.sqrt(2.0 * grate)[:, None]
        pm.Deterministic("C0", m @ m.T)
        m_inv = pt.linalg.solve_triangular(m, pt.eye(d), lower=True)
        r = m_inv.T / np.sqrt(2.0)
    else:
        r = pt.as_tensor_variable(np.diag(np.sqrt(grate / (2.0 * g0))))
    c = pm.ChiSquared("bartlett_c", nu=2.0 * c0 - (d - 1 - np.arange(d)), shape=(k, d))
    z = pm.Normal("bartlett_z", 0.0, 1.0, shape=(k, n_off))
    u = _triangular(pt.sqrt(c), z, d, lower=False)
    return mu, pt.sum(r[None, :, :, None] * u[:, None, :, :], axis=2)


def _sigma_prior(kernel: KernelSpec, shape: tuple[int, ...], name: str | None = "sigma_raw"):
    """The weakly informative scale prior (``KernelSpec.sigma_prior``): InverseGamma(shape,
    rate), zero-avoiding, or HalfNormal(sigma_sd). ``name=None``: an unnamed
    ``.dist`` (for LKJCholeskyCov's ``sd_dist``)."""
    family, par = kernel.sigma_prior()
    if family == "half_normal":
        dist, kw = pm.HalfNormal, {"sigma": par}
    else:
        dist, kw = pm.InverseGamma, {"alpha": par.shape, "beta": par.rate}
    return dist.dist(**kw, shape=shape) if name is None else dist(name, **kw, shape=shape)


def weakly_informative(kernel: KernelSpec, k: int, d: int, ordered: bool = False):
    """mu ~ N(m0, mu_sd^2); sigma ~ HalfNormal(sigma_sd) or InverseGamma (``_sigma_prior``;
    spherical: one sigma per component); full covariance adds LKJ(eta). mu and sigma are
    independent a priori: there is no funnel to non-centre. ``ordered`` (1-D): ``_means``."""
    mu = _means(kernel.m0, kernel.mu_sd, k, d, ordered)
    if d > 1 and kernel.covariance == "spherical":
        sigma = _sigma_prior(kernel, (k, 1))
        return mu, _diag_factor(pt.repeat(1.0 / sigma**2, d, axis=1))
    if d == 1 or kernel.covariance == "diag":
        sigma = _sigma_prior(kernel, (k, d))
        return mu, _diag_factor(1.0 / sigma**2)
    # LKJCholeskyCov cannot be batched over clusters: one per cluster, stacked.
    factors = []
    eye = pt.eye(d)
    for j in range(k):
        chol, _, _ = pm.LKJCholeskyCov(
            f"chol_{j}",
            n=d,
            eta=kernel.lkj_eta,
            sd_dist=_sigma_prior(kernel, (d,), name=None),
            compute_corr=True,
        )
        inv = pt.linalg.solve_triangular(chol, eye, lower=True)
        factors.append(inv.T)
    return mu, pt.stack(factors)


def build_kernel(
    kernel: KernelSpec,
    k: int,
    d: int,
    x: np.ndarray | None = None,
    non_centred: bool = False,
    ordered: bool = False,
):
    """Component priors for K components in D dimensions: returns (mu, A). ``x``: the
    standardised data (N, D), which the semi-conjugate prior is scaled by. ``non_centred``
    (conjugate kernel only) and ``ordered`` (1-D means): graph options, the same prior
    (``conjugate``, ``_means``); callers check where they apply (``model.check_graph_options``)."""
    if non_centred and kernel.prior != "conjugate":
        raise ValueError("non_centred applies to the conjugate kernel only")
    if kernel.prior == "conjugate":
        return conjugate(kernel, k, d, non_centred, ordered)
    if kernel.prior == "semi_conjugate":
        if d > 1 and kernel.covariance == "spherical":
            from bayesmix.errors import InputError

            raise InputError(
                "kernel.covariance = 'spherical' has a conjugate prior only (prior = "
                "'conjugate'); with prior = 'semi_conjugate' use covariance = 'diag' or 'full'"
            )
        if x is None:
            raise ValueError("the semi-conjugate kernel needs the data x (semiconj.data_hyper)")
        return semi_conjugate(kernel, k, d, semiconj.data_hyper(kernel, x), ordered)
    return weakly_informative(kernel, k, d, ordered)


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
