"""Every mixing x algorithm against the exact posterior by enumeration of the 203 set partitions
of N = 6 points (``tests/exact_partitions.py``): K+, K (MFMs) and the random hyperparameters.

Tolerances from Monte Carlo error: 2 chains x 10,000 draws (blocked and telescoping, which mix
more slowly: 25,000) after 300 sweeps of burn-in; the asserted ESS(K+) >= 1,500 bounds the SE of a pmf cell by sqrt(0.25 / 1500) = 0.013, so the
expected TV over at most 6 cells is below 0.03 and 0.05 is about 4 SE of a cell (the DP and
finite cases in test_gibbs.py use 0.045 with ESS > 1,700). Hyperparameter means within 4.5 MCSE
(ArviZ, autocorrelation-aware) of the exact value.
"""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import pytest
from exact_partitions import (
    ENUM_X1,
    ENUM_X2,
    HYP_X1,
    HYP_X2_DIAG,
    HYP_X2_FULL,
    exact_posterior,
    poisson_k,
    tv,
    uniform_k,
)

from bayesmix.engines.gibbs import sample_gibbs
from bayesmix.spec import BetaPrior, FPrior, GammaPrior, KernelSpec, KPrior, MixingSpec, ModelSpec

DRAWS = dict(chains=2, draws=10000, tune=300, progress=False, cores=1, seed=20261201)
MIN_ESS_KPLUS = 1500
TV_MAX = 0.05


def spec_of(mix: MixingSpec, cov: str) -> ModelSpec:
    return ModelSpec(mixing=mix, kernel=KernelSpec(covariance=cov, kappa0=0.1, a0=2.0, b0=0.25))


POISSON_KMAX = 16  # K - 1 ~ Poisson(2): P(K > 16) < 1e-9
CASES = {
    # name: (data, cov, MixingSpec, exact mixing, exact params, exact hyper priors, algorithms)
    "py_fixed": (
        ENUM_X1, "full",
        MixingSpec("pitman_yor", 40, 0.8, None, 0.3, None),
        "pitman_yor", {"strength": 0.8, "discount": 0.3}, None, ("collapsed", "blocked"),
    ),
    "py_random_strength": (
        ENUM_X2, "full",
        MixingSpec("pitman_yor", 40, None, GammaPrior(2.0, 2.0), 0.25, None),
        "pitman_yor", {"discount": 0.25}, {"strength": ("gamma", 2.0, 2.0)},
        ("collapsed", "blocked"),
    ),
    "py_random_discount": (
        ENUM_X2, "diag",
        MixingSpec("pitman_yor", 40, 0.5, None, None, BetaPrior(2.0, 3.0)),
        "pitman_yor", {"strength": 0.5}, {"discount": ("beta", 2.0, 3.0)},
        ("collapsed",),  # blocked: a large discount makes T = 40 sticks a different model
    ),
    # the blocked sampler's own model, sticks truncated at T = 4 (exact: the blocks summed
    # over their maps to the 4 labelled slots), with the SBC's hyperpriors
    "py_truncated_random_discount": (
        ENUM_X2, "diag",
        MixingSpec("pitman_yor", 4, 0.5, None, None, BetaPrior(2.0, 3.0)),
        "pitman_yor_truncated", {"strength": 0.5, "truncation": 4},
        {"discount": ("beta", 2.0, 3.0)}, ("blocked",),
    ),
    "py_truncated_random_both": (
        ENUM_X2, "diag",
        MixingSpec("pitman_yor", 4, None, GammaPrior(2.0, 2.0), None, BetaPrior(1.0, 3.0)),
        "pitman_yor_truncated", {"truncation": 4},
        {"strength": ("gamma", 2.0, 2.0), "discount": ("beta", 1.0, 3.0)}, ("blocked",),
    ),
    "mfm_static_uniform": (
        ENUM_X1, "full",
        MixingSpec("mfm", 8, 1.0, None, k_prior=KPrior("uniform", (("max", 8.0),))),
        "mfm_static", {"concentration": 1.0, "k_prior": uniform_k(8)}, None,
        ("collapsed", "blocked", "subcluster"),
    ),
    "mfm_static_random_gamma": (
        ENUM_X2, "full",
        MixingSpec("mfm", POISSON_KMAX, None, GammaPrior(2.0, 2.0),
                   k_prior=KPrior("poisson", (("rate", 2.0),))),
        "mfm_static", {"k_prior": poisson_k(2.0, POISSON_KMAX, max_tail=1e-8)},
        {"concentration": ("gamma", 2.0, 2.0)}, ("collapsed", "blocked", "subcluster"),
    ),
    "mfm_dynamic_fixed": (
        ENUM_X2, "diag",
        MixingSpec("mfm", 8, 2.0, None, weights="dynamic",
                   k_prior=KPrior("uniform", (("max", 8.0),))),
        "mfm_dynamic", {"concentration": 2.0, "k_prior": uniform_k(8)}, None,
        ("collapsed", "blocked"),
    ),
    "mfm_dynamic_random_alpha": (
        ENUM_X1, "full",
        MixingSpec("mfm", POISSON_KMAX, None, GammaPrior(3.0, 1.0), weights="dynamic",
                   k_prior=KPrior("poisson", (("rate", 2.0),))),
        "mfm_dynamic", {"k_prior": poisson_k(2.0, POISSON_KMAX, max_tail=1e-8)},
        {"concentration": ("gamma", 3.0, 1.0)}, ("collapsed", "blocked"),
    ),
    "mfm_dynamic_f_alpha": (
        ENUM_X2, "full",
        MixingSpec("mfm", 8, None, FPrior(6.0, 3.0), weights="dynamic",
                   k_prior=KPrior("uniform", (("max", 8.0),))),
        "mfm_dynamic", {"k_prior": uniform_k(8)}, {"concentration": ("f", 6.0, 3.0)},
        ("collapsed", "blocked"),
    ),
}  # fmt: skip
PARAMS = [(name, alg) for name, case in CASES.items() for alg in case[-1]]


def _hyp(x: np.ndarray, cov: str) -> tuple[float, ...]:
    if x.shape[1] == 1:
        return HYP_X1
    return HYP_X2_DIAG if cov == "diag" else HYP_X2_FULL


@pytest.mark.parametrize("name,algorithm", PARAMS)
def test_mixing_matches_exact_posterior(name, algorithm):
    x, cov, mix, exact_mix, exact_params, hyper, _ = CASES[name]
    diag = x.shape[1] == 1 or cov == "diag"
    exact = exact_posterior(x, _hyp(x, cov), diag, exact_mix, exact_params, hyper)
    draws = DRAWS | ({"draws": 25000} if algorithm == "blocked" else {})
    dr = sample_gibbs(spec_of(mix, cov), x, algorithm=algorithm, **draws)
    kplus = dr.sample_stats["n_occupied"]
    assert float(az.ess(kplus.astype(float))) >= MIN_ESS_KPLUS
    got = np.bincount(kplus.ravel(), minlength=len(exact["kplus_pmf"])) / kplus.size
    assert tv(got, exact["kplus_pmf"]) < TV_MAX, (got.round(3), exact["kplus_pmf"].round(3))
    if mix.type == "mfm":  # the number of components K, not only the occupied clusters
        k = dr.params["K"]
        got_k = np.bincount(k.ravel(), minlength=len(exact["k_pmf"]) + 1)[1:] / k.size
        assert tv(got_k, exact["k_pmf"]) < TV_MAX, (got_k.round(3), exact["k_pmf"].round(3))
    for par in hyper or {}:
        draws_name = {"concentration": mix.concentration_name}.get(par, par)
        values = dr.params[draws_name]
        if isinstance(mix.concentration_prior, FPrior) and par == "concentration":
            values, want = np.log(values), exact["mean_log"][par]  # E[alpha] is infinite
        else:
            want = exact["mean"][par]
        mcse = float(az.mcse(values))
        assert math.isfinite(mcse) and abs(values.mean() - want) < 4.5 * mcse, (
            par,
            values.mean(),
            want,
            mcse,
        )
