"""Mixings (priors on the weights, as Gibbs-type partition priors): one module each, with the
urn, the weights for blocked samplers and the hyperparameter updates (numba); the compiled
dispatch in ``registry``; PyMC graphs in ``pymc``.

This module is the Python side: which algorithms serve a mixing, how a ``MixingSpec`` becomes
the compiled samplers' arguments (kind, hyperprior ``hp``, log p(K)), the chains' starting
state, and the names of the parameters the draws carry. Adding a mixing: its module, one
entry in ``MIXINGS`` here, and one line in each dispatch function of ``registry``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesmix.mixings.registry import (
    DP,
    FINITE,
    K_SLOT,
    MFM,
    MFM_DYNAMIC,
    PITMAN_YOR,
    SCALE_SLOT,
    STATE_SIZE,
)

__all__ = ["DP", "FINITE", "K_SLOT", "MFM", "MFM_DYNAMIC", "PITMAN_YOR", "SCALE_SLOT", "STATE_SIZE"]
from bayesmix.spec import FPrior, GammaPrior, MixingSpec

K_MAX_DEFAULT_CAP = 500  # largest K the MFM samplers represent when the prior has a long tail
K_PRIOR_TAIL = 1e-10  # K_max is where the prior mass above it falls below this


@dataclass(frozen=True)
class MixingInfo:
    """What the engines need to know about a mixing."""

    kind: int  # the compiled code (bayesmix.mixings.registry)
    labelled: bool  # K labelled slots (finite): the collapsed sampler keeps them apart
    algorithms: tuple[str, ...]  # the Gibbs algorithms that sample it, the default first
    nuts: bool  # has a PyMC graph (NUTS)


MIXING_TYPES = ("dp", "finite", "pitman_yor", "mfm")

MIXINGS: dict[str, MixingInfo] = {
    "dp": MixingInfo(DP, False, ("collapsed", "blocked", "subcluster"), True),
    "finite": MixingInfo(FINITE, True, ("collapsed", "blocked", "subcluster"), True),
    # not "subcluster": its slices need ever more atoms under the Pitman-Yor tail (SBC failed
    # with 64: K+ p = 1e-19; docs/architecture.md)
    "pitman_yor": MixingInfo(PITMAN_YOR, False, ("collapsed", "blocked"), True),
    "mfm_static": MixingInfo(MFM, False, ("collapsed", "telescoping", "subcluster"), False),
    "mfm_dynamic": MixingInfo(MFM_DYNAMIC, False, ("collapsed", "telescoping"), False),
}


def key(mixing: MixingSpec) -> str:
    """The MIXINGS key of a spec: its type, with the MFM's weights appended."""
    return f"mfm_{mixing.weights}" if mixing.type == "mfm" else mixing.type


def info(mixing: MixingSpec) -> MixingInfo:
    return MIXINGS[key(mixing)]


def k_prior_log_pmf(mixing: MixingSpec) -> np.ndarray:
    """log p(K = k) for k = 0..K_max (-inf at 0) of an MFM; K_max from the spec, else where
    the prior's tail mass falls below K_PRIOR_TAIL (at most K_MAX_DEFAULT_CAP)."""
    from bayesmix.partition_priors import k_prior_log_pmf as pmf

    kp = mixing.k_prior
    params = {k: (int(v) if k == "max" else v) for k, v in kp.params}
    if mixing.n_components:
        ks, logp = pmf(kp.family, params, int(mixing.n_components))
    else:
        ks, logp = pmf(kp.family, params, K_MAX_DEFAULT_CAP)
        tail = np.cumsum(np.exp(logp)[::-1])[::-1]  # P(K >= k)
        keep = np.flatnonzero(tail >= K_PRIOR_TAIL)
        last = int(keep[-1]) + 1 if keep.size else len(ks)
        ks, logp = ks[:last], logp[:last]
    out = np.full(int(ks[-1]) + 1, -np.inf)
    out[ks.astype(int)] = logp
    return out


def numba_args(mixing: MixingSpec) -> tuple[int, np.ndarray, np.ndarray, int]:
    """(kind, hp, logpk, size) for the compiled samplers; size is K (finite), the truncation T
    (blocked DP and Pitman-Yor) or K_max (MFM)."""
    inf = info(mixing)
    prior = mixing.concentration_prior
    hp = np.zeros(7)
    hp[0] = 1.0 if mixing.concentration is not None else 0.0
    if mixing.concentration is None:
        if isinstance(prior, FPrior):
            hp[1], hp[2], hp[6] = prior.df1, prior.df2, 1.0
        else:
            hp[1], hp[2] = prior.shape, prior.rate
    hp[3] = 0.0 if (mixing.type == "pitman_yor" and mixing.discount is None) else 1.0
    if hp[3] == 0.0:
        hp[4], hp[5] = mixing.discount_prior.a, mixing.discount_prior.b
    logpk = np.full(1, -np.inf)
    size = int(mixing.n_components)
    if mixing.type == "mfm":
        logpk = k_prior_log_pmf(mixing)
        size = len(logpk) - 1
    return inf.kind, hp, logpk, size


def _prior_mean(prior: GammaPrior | FPrior) -> float:
    if isinstance(prior, FPrior):
        return prior.df2 / (prior.df2 - 2.0) if prior.df2 > 2.0 else 1.0
    return prior.shape / prior.rate


def initial_state(mixing: MixingSpec, rng: np.random.Generator) -> np.ndarray:
    """A chain's starting state: fixed values as given; a random concentration over-dispersed
    around its prior mean (x exp(U(-1, 1))); a random discount drawn from its prior (so that
    chains start apart and R-hat can see a slow discount); K (MFM) = 10 or
    K_max if smaller."""
    state = np.zeros(STATE_SIZE)
    if mixing.type == "pitman_yor":
        disc = mixing.discount
        if disc is None:  # a prior draw, kept inside [0.01, 0.95]
            pr = mixing.discount_prior
            disc = min(max(float(rng.beta(pr.a, pr.b)), 0.01), 0.95)
        state[5] = disc
    if mixing.concentration is not None:
        state[0] = float(mixing.concentration)
    else:
        start = _prior_mean(mixing.concentration_prior) * float(np.exp(rng.uniform(-1.0, 1.0)))
        if mixing.type == "pitman_yor":  # the prior is on theta + sigma
            start -= state[5]
        state[0] = start
    if mixing.type == "mfm":
        state[K_SLOT] = float(min(10, len(k_prior_log_pmf(mixing)) - 1))
    return state


def parameters(mixing: MixingSpec, states: np.ndarray) -> dict[str, np.ndarray]:
    """The mixing's random parameters by name, from the saved states (..., STATE_SIZE)."""
    out = {}
    if mixing.concentration is None:
        out[mixing.concentration_name] = states[..., 0].copy()
    if mixing.type == "pitman_yor" and mixing.discount is None:
        out["discount"] = states[..., 5].copy()
    if mixing.type == "mfm":
        out["K"] = states[..., K_SLOT].astype(np.int64)
    return out


def log_prior(mixing: MixingSpec, name: str, params: dict[str, np.ndarray]) -> np.ndarray | None:
    """log prior density of the random mixing parameter ``name`` at its draws in ``params``
    (None for K, whose prior is discrete and reported as p(K)). The Pitman-Yor strength's
    Gamma prior is on theta + sigma, so it is evaluated at the strength plus the discount."""
    from scipy import stats

    if name == "K":
        return None
    values = params[name]
    if name == "discount":
        b = mixing.discount_prior
        return stats.beta.logpdf(values, b.a, b.b)
    prior = mixing.concentration_prior
    if isinstance(prior, FPrior):
        return stats.f.logpdf(values, prior.df1, prior.df2)
    shift = 0.0
    if mixing.type == "pitman_yor":
        shift = mixing.discount if mixing.discount is not None else params["discount"]
    return stats.gamma.logpdf(values + shift, a=prior.shape, scale=1.0 / prior.rate)


def check_algorithm(mixing: MixingSpec, algorithm: str) -> str:
    """The algorithm to use ('blocked' means the mixing's blocked sampler: telescoping for the
    MFM); an InputError naming the options when it cannot sample this mixing."""
    from bayesmix.errors import InputError

    inf = info(mixing)
    wanted = "telescoping" if (algorithm == "blocked" and mixing.type == "mfm") else algorithm
    if wanted not in inf.algorithms:
        options = " or ".join(
            f"--engine {a if a in ('collapsed', 'subcluster') else 'gibbs'}" for a in inf.algorithms
        )
        raise InputError(
            f"mixing '{key(mixing)}' cannot be sampled by the {algorithm} algorithm; use {options}"
        )
    return wanted
