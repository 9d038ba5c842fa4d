"""Mixing priors (weights) as PyMC graph builders. They only build graphs."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayesmix.spec import MixingSpec


def concentration(mixing: MixingSpec):
    """alpha (DP) or gamma (finite): a constant, or a Gamma(shape, rate) random variable."""
    if mixing.concentration is not None:
        return pt.as_tensor_variable(mixing.concentration)
    prior = mixing.concentration_prior
    return pm.Gamma(mixing.concentration_name, alpha=prior.shape, beta=prior.rate)


def stick_breaking_weights(v):
    """w_k = v_k prod_{l<k} (1 - v_l), with the leftover mass prod_{l<T} (1 - v_l) as w_T."""
    log_rest = pt.concatenate([pt.zeros(1), pt.cumsum(pt.log1p(-v))])
    return pt.concatenate([v, pt.ones(1)]) * pt.exp(log_rest)


def pitman_yor_parameters(mixing: MixingSpec):
    """(theta, sigma) of a Pitman-Yor mixing: constants, or theta = u - sigma with
    u = theta + sigma ~ Gamma(shape, rate) and sigma ~ Beta(a, b)."""
    if mixing.discount is not None:
        sigma = pt.as_tensor_variable(float(mixing.discount))
    else:
        sigma = pm.Beta("discount", alpha=mixing.discount_prior.a, beta=mixing.discount_prior.b)
    if mixing.concentration is not None:
        return pt.as_tensor_variable(float(mixing.concentration)), sigma
    prior = mixing.concentration_prior
    u = pm.Gamma("strength_plus_discount", alpha=prior.shape, beta=prior.rate)
    return pm.Deterministic("strength", u - sigma), sigma


def stick_breaking_weights_from_log_rest(v, log1m_v):
    """``stick_breaking_weights`` given log(1 - v) directly (no log1p(-v) round trip)."""
    log_rest = pt.concatenate([pt.zeros(1), pt.cumsum(log1m_v)])
    return pt.concatenate([v, pt.ones(1)]) * pt.exp(log_rest)


def weights(mixing: MixingSpec, non_centred_sticks: bool = False):
    """Mixture weights w (K,): DP sticks v_k ~ Beta(1, alpha); Pitman-Yor sticks
    v_k ~ Beta(1 - sigma, theta + k sigma); or w ~ Dirichlet(gamma 1_K). A mixture of finite
    mixtures has a discrete K, which NUTS cannot sample.

    ``non_centred_sticks`` (DP): v_k = 1 - u_k^(1 / alpha), u_k ~ Uniform(0, 1) (free variable
    ``stick_u``; ``v`` is a Deterministic): the inverse CDF of Beta(1, alpha), so the same
    prior, with the sticks of empty components independent of alpha a priori."""
    k = mixing.n_components
    if mixing.type == "mfm":
        from bayesmix.errors import InputError

        raise InputError(
            "a mixture of finite mixtures has a discrete number of components K, which NUTS "
            "cannot sample: use --engine collapsed or --engine gibbs"
        )
    if mixing.type == "pitman_yor":
        theta, sigma = pitman_yor_parameters(mixing)
        v = pm.Beta("v", alpha=1.0 - sigma, beta=theta + np.arange(1, k) * sigma, shape=k - 1)
        return pm.Deterministic("w", stick_breaking_weights(v), dims="cluster")
    conc = concentration(mixing)
    if mixing.type == "dp":
        if non_centred_sticks:
            u = pm.Uniform("stick_u", 0.0, 1.0, shape=k - 1)
            log1m_v = pt.log(u) / conc  # log(1 - v) = log(u) / alpha
            v = pm.Deterministic("v", -pt.expm1(log1m_v))
            w = stick_breaking_weights_from_log_rest(v, log1m_v)
            return pm.Deterministic("w", w, dims="cluster")
        v = pm.Beta("v", alpha=1.0, beta=conc, shape=k - 1)
        return pm.Deterministic("w", stick_breaking_weights(v), dims="cluster")
    return pm.Dirichlet("w", a=conc * pt.ones(k), dims="cluster")
