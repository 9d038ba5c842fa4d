"""The semi-conjugate kernels with a hierarchical (or fixed) scale under the blocked and the
telescoping Gibbs samplers, against the exact posterior: every one of the 203 set partitions
of N = 6 points, the mixing's EPPF (``exact_partitions``) times the kernel side integrated over
(mu, tau, beta) by quadrature (``exact_semiconj``; halving its steps or widening its ranges moves
every log L(partition) by < 2e-5).

The hyperparameters are the data-scaled defaults of ``KernelSpec`` (Richardson & Green 1997 in
1-D; Fruehwirth-Schnatter, Malsiner-Walli & Gruen 2021 for D >= 2), recomputed here from their
formulas. Tolerances as in test_mixings_exact (2 chains x 25,000 sweeps; 50,000 for the slowest
case, the 2-D finite mixture): ESS(K+) >= 1,500 bounds the SE of a pmf cell by
0.013, TV < 0.05; the mean of beta within 4.5 MCSE (ArviZ) of its exact value.
"""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import pytest
from exact_partitions import ENUM_X1, ENUM_X2, exact_posterior, tv, uniform_k
from exact_semiconj import partition_log_likelihoods_semi, posterior_mean_beta

from bayesmix.engines.gibbs import sample_gibbs
from bayesmix.engines.gibbs.driver import semi_hyper
from bayesmix.errors import InputError
from bayesmix.kernels import semiconj
from bayesmix.spec import GammaPrior, KernelSpec, KPrior, MixingSpec, ModelSpec

DRAWS = dict(chains=2, draws=25000, tune=300, progress=False, cores=1, seed=20261202)
MIN_ESS_KPLUS = 1500
TV_MAX = 0.05


def defaults(x: np.ndarray) -> dict:
    """The KernelSpec docstring's data-scaled defaults, from their formulas."""
    d = x.shape[1]
    r = np.ptp(x, axis=0)
    if d == 1:
        c0, g0, g, b0 = 2.0, 0.2, 10.0, 0.5 * (x.min(axis=0) + x.max(axis=0))
    else:
        c0, g0 = 2.5 + (d - 1) / 2, 0.5 + (d - 1) / 2
        g, b0 = 100.0 * g0 / c0, np.median(x, axis=0)
    return {"c0": c0, "g0": g0, "b0": b0, "bvar": r**2, "g_rate": g / r**2}


U8 = KPrior("uniform", (("max", 8.0),))
CASES = {
    # name: (data, scale, MixingSpec, exact mixing, exact params, exact hyper priors, algorithm)
    "finite_1d_hierarchical": (
        ENUM_X1, "hierarchical", MixingSpec("finite", 3, 1.0, None),
        "finite", {"concentration": 1.0, "n_components": 3}, None, "blocked",
    ),
    "mfm_1d_hierarchical": (
        ENUM_X1, "hierarchical", MixingSpec("mfm", 8, 1.0, None, k_prior=U8),
        "mfm_static", {"concentration": 1.0, "k_prior": uniform_k(8)}, None, "blocked",
    ),
    "dp_1d_hierarchical": (
        ENUM_X1, "hierarchical", MixingSpec("dp", 40, None, GammaPrior(2.0, 2.0)),
        "dp", {}, {"concentration": ("gamma", 2.0, 2.0)}, "blocked",
    ),
    "mfm_2d_diag_fixed": (
        ENUM_X2, "fixed", MixingSpec("mfm", 8, 1.0, None, k_prior=U8),
        "mfm_static", {"concentration": 1.0, "k_prior": uniform_k(8)}, None, "blocked",
    ),
    "finite_2d_diag_hierarchical": (
        ENUM_X2, "hierarchical", MixingSpec("finite", 3, 1.0, None),
        "finite", {"concentration": 1.0, "n_components": 3}, None, "blocked",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_semiconjugate_matches_exact_posterior(name):
    x, scale, mix, exact_mix, exact_params, hyper, algorithm = CASES[name]
    h = defaults(x)
    hier = scale == "hierarchical"
    ll = partition_log_likelihoods_semi(
        x, h["c0"], h["b0"], h["bvar"], h["g0"] if hier else None, h["g_rate"],
        beta=None if hier else h["g0"] / h["g_rate"],
    )  # fmt: skip
    exact = exact_posterior(x, None, True, exact_mix, exact_params, hyper, partition_ll=ll)
    kern = KernelSpec(covariance="diag", prior="semi_conjugate", scale=scale)
    draws = DRAWS | ({"draws": 50000} if name == "finite_2d_diag_hierarchical" else {})
    dr = sample_gibbs(ModelSpec(mixing=mix, kernel=kern), x, algorithm=algorithm, **draws)
    kplus = dr.sample_stats["n_occupied"]
    assert float(az.ess(kplus.astype(float))) >= MIN_ESS_KPLUS
    got = np.bincount(kplus.ravel(), minlength=len(exact["kplus_pmf"])) / kplus.size
    assert tv(got, exact["kplus_pmf"]) < TV_MAX, (got.round(3), exact["kplus_pmf"].round(3))
    if mix.type == "mfm":
        k = dr.params["K"]
        got_k = np.bincount(k.ravel(), minlength=len(exact["k_pmf"]) + 1)[1:] / k.size
        assert tv(got_k, exact["k_pmf"]) < TV_MAX, (got_k.round(3), exact["k_pmf"].round(3))
    for par in hyper or {}:
        values = dr.params[mix.concentration_name]
        mcse = float(az.mcse(values))
        assert abs(values.mean() - exact["mean"][par]) < 4.5 * mcse
    if not hier:
        assert "C0" not in dr.kernel_params
        return
    for f in range(x.shape[1]):  # E[beta_f | x]
        want = posterior_mean_beta(
            x[:, f], exact["partition_pmf"], h["c0"], h["b0"][f], h["bvar"][f], h["g0"],
            h["g_rate"][f],
        )  # fmt: skip
        beta = dr.kernel_params["C0"][..., f, f]
        mcse = float(az.mcse(beta))
        assert math.isfinite(mcse) and abs(beta.mean() - want) < 4.5 * mcse, (
            f,
            beta.mean(),
            want,
            mcse,
        )


def test_data_scaled_hyperparameters_follow_the_formulas():
    """semi_hyper packs the KernelSpec defaults (and the overrides) computed from the data."""
    for x in (ENUM_X1, ENUM_X2):
        h = defaults(x)
        hs = np.asarray(semi_hyper(ModelSpec(kernel=KernelSpec(prior="semi_conjugate")), x))
        got = semiconj.unpack(hs, x.shape[1])
        assert got["c0"][0] == h["c0"] and got["g0"][0] == h["g0"] and got["hierarchical"][0] == 1
        np.testing.assert_allclose(got["b0"], h["b0"], rtol=1e-14)
        np.testing.assert_allclose(got["B0_diag"], h["bvar"], rtol=1e-14)
        np.testing.assert_allclose(got["G0_diag"], h["g_rate"], rtol=1e-14)
    kern = KernelSpec(prior="semi_conjugate", c0=4.0, g0=1.5, G0=2.0, mean_centre="median",
                      mean_var=0.5, scale="fixed")  # fmt: skip
    got = semiconj.unpack(np.asarray(semi_hyper(ModelSpec(kernel=kern), ENUM_X1)), 1)
    r = np.ptp(ENUM_X1)
    assert (got["c0"][0], got["g0"][0], got["hierarchical"][0]) == (4.0, 1.5, 0.0)
    np.testing.assert_allclose(got["b0"], np.median(ENUM_X1), rtol=1e-14)
    np.testing.assert_allclose(got["B0_diag"], 0.5 * r**2, rtol=1e-14)
    np.testing.assert_allclose(got["G0_diag"], 2.0 / r**2, rtol=1e-14)


def test_collapsed_refuses_the_semiconjugate_kernel():
    """The collapsed engine names the blocked sampler and NUTS (tests/test_nuts_semiconj.py
    has NUTS's model); the PyMC graph needs the data its hyperparameters are scaled by."""
    spec = ModelSpec(kernel=KernelSpec(prior="semi_conjugate"))
    with pytest.raises(InputError, match=r"--engine gibbs \(blocked\) or --engine nuts"):
        sample_gibbs(spec, ENUM_X1, algorithm="collapsed", draws=5, tune=1)
    from bayesmix.kernels.pymc import build_kernel

    with pytest.raises(ValueError, match="needs the data x"):
        build_kernel(spec.kernel, 3, 1)
