"""PyMC graph building: every mixing x kernel builds, and the batched log-density is right."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from bayesmix.fit import resolve_engine
from bayesmix.kernels import pymc as kernels
from bayesmix.model import build_model, initial_values
from bayesmix.spec import parse_spec


def spec(mixing: str, prior: str, covariance: str = "full"):
    mix = {"type": "dp", "truncation": 5, "alpha_prior": [1, 1]}
    if mixing == "finite":
        mix = {"type": "finite", "K": 4, "gamma": 0.5}
    return parse_spec({"mixing": mix, "kernel": {"prior": prior, "covariance": covariance}})


@pytest.mark.parametrize(
    ("mixing", "prior", "covariance", "d", "free"),
    [
        ("dp", "conjugate", "full", 1, {"alpha", "v", "tau", "mu"}),
        ("dp", "conjugate", "full", 2, {"alpha", "v", "bartlett_c", "bartlett_z", "mu"}),
        ("finite", "conjugate", "diag", 3, {"w", "tau", "mu"}),
        ("finite", "weakly_informative", "diag", 2, {"w", "mu", "sigma_raw"}),
        ("dp", "weakly_informative", "full", 2, {"alpha", "v", "mu", "chol_0"}),
    ],
)
def test_every_variant_builds_without_discrete_variables(mixing, prior, covariance, d, free):
    x = np.random.default_rng(0).normal(size=(30, d))
    s = spec(mixing, prior, covariance)
    model = build_model(s, x)
    names = {rv.name for rv in model.free_RVs}
    assert free <= names
    assert all(rv.type.dtype.startswith("float") for rv in model.free_RVs)  # z is summed out
    assert {"w", "factor"} <= {v.name for v in model.deterministics} | names
    init = initial_values(s, x, seed=1)
    assert init["mu"].shape == (s.mixing.n_components, d)


def test_mixture_logp_matches_scipy():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 2))
    w = np.array([0.2, 0.5, 0.3])
    mu = rng.normal(size=(3, 2))
    covs = [
        np.array([[1.0, 0.4], [0.4, 0.8]]),
        np.eye(2) * 0.5,
        np.array([[2.0, -0.3], [-0.3, 1.0]]),
    ]
    # whitening factor A with Sigma^-1 = A A' (lower Cholesky of the precision)
    factor = np.stack([np.linalg.cholesky(np.linalg.inv(c)) for c in covs])
    got = kernels.mixture_logp(x, w, mu, factor).eval()
    dens = np.column_stack([stats.multivariate_normal(mu[k], covs[k]).logpdf(x) for k in range(3)])
    np.testing.assert_allclose(got, logsumexp(np.log(w) + dens, axis=1), rtol=1e-10)


def test_auto_engine_choice():
    assert resolve_engine(spec("dp", "conjugate"), "auto") == "collapsed"
    assert resolve_engine(spec("dp", "weakly_informative"), "auto") == "nuts"
    assert resolve_engine(spec("dp", "conjugate"), "gibbs") == "gibbs"
