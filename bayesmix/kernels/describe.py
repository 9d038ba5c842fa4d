"""One-line descriptions of a kernel prior, for reports (pure: a KernelSpec or its dict in)."""

from __future__ import annotations

import dataclasses
from typing import Any

from bayesmix.spec import GammaPrior, KernelSpec


def _g(v: float) -> str:
    return f"{v:g}"


def describe_kernel(kernel: KernelSpec | dict[str, Any], d: int) -> str:
    """The kernel prior as a formula with its numbers and reference, e.g. "semi-conjugate,
    hierarchical scale (Richardson & Green 1997): mu ~ N(midrange, 1 R^2), ...".

    Conjugate priors live on the standardised scale (each feature centred and scaled to unit
    SD); semi-conjugate ones are scaled by each feature's range R (``KernelSpec``)."""
    if isinstance(kernel, dict):
        names = {f.name for f in dataclasses.fields(KernelSpec)}
        kw = {k: v for k, v in kernel.items() if k in names}
        for key in ("scale_prior", "sigma_inv_gamma"):
            if isinstance(kw.get(key), dict):
                kw[key] = GammaPrior(**kw[key])
        kernel = KernelSpec(**kw)
    k = kernel
    words = {"diag": "diagonal", "spherical": "spherical (one variance shared by the features)"}
    cov = "1-D" if d == 1 else words.get(k.covariance, "full covariance")
    if k.prior == "semi_conjugate":
        c0, g0, g, centre = k.semi_defaults(d)
        r = "R^2" if k.data_scaled else "1"
        centre = centre if k.data_scaled else _g(k.m0)
        ref = "Richardson & Green 1997" if d == 1 else "Fruehwirth-Schnatter et al. 2021"
        if d == 1 or k.covariance == "diag":
            scale = f"sigma^-2 ~ Gamma({_g(c0)}, beta)"
            hyper = (
                f"beta ~ Gamma({_g(g0)}, {_g(g)}/{r})"
                if k.scale == "hierarchical"
                else f"beta = {_g(g0)}/({_g(g)}/{r}) fixed"
            )
        else:
            scale = f"Sigma^-1 ~ W({_g(c0)}, C0)"
            hyper = (
                f"C0 ~ W({_g(g0)}, {_g(g)} diag(1/{r}))"
                if k.scale == "hierarchical"
                else f"C0 = {_g(g0)}/{_g(g)} diag({r}) fixed"
            )
        kind = "hierarchical" if k.scale == "hierarchical" else "fixed"
        return (
            f"semi-conjugate, {kind} scale, {cov} ({ref}): mu ~ N({centre}, "
            f"{_g(k.mean_var)} {r}), {scale}, {hyper}"
            + ("; R = each feature's range" if k.data_scaled else "")
        )
    if k.prior == "conjugate":
        sp = k.scale_prior
        if d > 1 and k.covariance == "spherical":
            b0 = "b0" if sp else _g(k.b0)
            hyper = f", b0 ~ Gamma({_g(sp.shape)}, {_g(sp.rate)})" if sp else ""
            return (
                f"conjugate Normal-Inverse-Gamma, {cov}: Sigma = sigma^2 I, sigma^2 ~ "
                f"IG({_g(k.a0)}, {b0}), mu | sigma^2 ~ N({_g(k.m0)}, sigma^2/{_g(k.kappa0)} I)"
                f"{hyper} (standardised scale)"
            )
        if d == 1 or k.covariance == "diag":
            b0 = "b0" if sp else _g(k.b0)
            hyper = f", b0 ~ Gamma({_g(sp.shape)}, {_g(sp.rate)})" if sp else ""
            return (
                f"conjugate Normal-Inverse-Gamma, {cov}: sigma^2 ~ IG({_g(k.a0)}, {b0}), "
                f"mu | sigma^2 ~ N({_g(k.m0)}, sigma^2/{_g(k.kappa0)}){hyper} "
                "(standardised scale)"
            )
        psi0 = "psi0" if sp else _g(k.psi0)
        hyper = f", psi0 ~ Gamma({_g(sp.shape)}, {_g(sp.rate)})" if sp else ""
        return (
            f"conjugate Normal-Inverse-Wishart, {cov}: Sigma ~ IW({_g(k.nu0_for(d))}, "
            f"{psi0} I), mu | Sigma ~ N({_g(k.m0)}, Sigma/{_g(k.kappa0)}){hyper} "
            "(standardised scale)"
        )
    lkj = f", LKJ({_g(k.lkj_eta)}) correlations" if d > 1 and k.covariance == "full" else ""
    family, par = k.sigma_prior()
    sigma = (
        f"HalfNormal({_g(par)})"
        if family == "half_normal"
        else f"InverseGamma({_g(par.shape)}, {_g(par.rate)})"
    )
    return (
        f"weakly informative, {cov}: mu ~ N({_g(k.m0)}, {_g(k.mu_sd)}^2), "
        f"sigma ~ {sigma}{lkj} (standardised scale)"
    )
