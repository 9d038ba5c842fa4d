"""Mixing priors (weights) as PyMC graph builders. They only build graphs."""

from __future__ import annotations

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


def weights(mixing: MixingSpec):
    """Mixture weights w (K,): DP sticks v_k ~ Beta(1, alpha), or w ~ Dirichlet(gamma 1_K)."""
    conc = concentration(mixing)
    k = mixing.n_components
    if mixing.type == "dp":
        v = pm.Beta("v", alpha=1.0, beta=conc, shape=k - 1)
        return pm.Deterministic("w", stick_breaking_weights(v), dims="cluster")
    return pm.Dirichlet("w", a=conc * pt.ones(k), dims="cluster")
