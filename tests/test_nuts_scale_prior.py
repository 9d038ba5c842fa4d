"""The zero-avoiding scale prior of the weakly informative kernel (``kernel.sigma_inv_gamma``).

Both scale priors live on the same value space (log sigma; for full covariances the packed
Cholesky factor of LKJCholeskyCov, whose standard deviations are sigma), so at any point the
model's log-density with sigma ~ InverseGamma(a, b) minus the one with sigma ~
HalfNormal(s) equals sum over every sigma of [log IG(sigma; a, b) - log HN(sigma; s)],
computed here independently with scipy. The test fails if the option is ignored (difference
0) or applied to only some of the scales.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

from bayesmix.errors import InputError
from bayesmix.kernels.describe import describe_kernel
from bayesmix.model import build_model
from bayesmix.spec import GammaPrior, KernelSpec, MixingSpec, ModelSpec, load_spec

MODE = "FAST_COMPILE"
IG = GammaPrior(2.0, 0.4)


def _spec(covariance: str, ig: GammaPrior | None) -> ModelSpec:
    kernel = KernelSpec(
        covariance=covariance, prior="weakly_informative", sigma_sd=0.5, sigma_inv_gamma=ig
    )
    return ModelSpec(mixing=MixingSpec("finite", 3, 1.0, None), kernel=kernel)


def _logp_and_sigmas(model, point, names):
    """Model log-density (value space, Jacobians included) and the named sigma tensors."""
    outs = model.replace_rvs_by_values([model.logp(), *[model[n] for n in names]])
    fn = model.compile_fn(outs, inputs=model.value_vars, point_fn=True, mode=MODE)
    lp, *sig = fn(point)
    return float(lp), np.concatenate([np.ravel(s) for s in sig])


@pytest.mark.parametrize(
    ("covariance", "d"), [("full", 1), ("diag", 2), ("spherical", 2), ("full", 2)]
)
def test_inverse_gamma_replaces_every_half_normal_scale(covariance, d):
    x = np.random.default_rng(3).normal(size=(15, d))
    hn = build_model(_spec(covariance, None), x)
    ig = build_model(_spec(covariance, IG), x)
    names = [f"chol_{j}_stds" for j in range(3)] if d > 1 and covariance == "full" else []
    names = names or ["sigma_raw"]
    rng = np.random.default_rng(4)
    for _ in range(3):
        point = {
            k: v + rng.normal(scale=0.5, size=np.shape(v)) for k, v in hn.initial_point().items()
        }
        lp_hn, sig = _logp_and_sigmas(hn, point, names)
        lp_ig, sig_ig = _logp_and_sigmas(ig, point, names)
        np.testing.assert_allclose(sig_ig, sig, rtol=1e-12)
        expected = np.sum(
            stats.invgamma.logpdf(sig, IG.shape, scale=IG.rate)
            - stats.halfnorm.logpdf(sig, scale=0.5)
        )
        assert abs(expected) > 1e-3  # the two priors differ at this point
        # PyMC's HalfNormal log-density differs from scipy's by 1.9e-9 per value (a rounded
        # constant): 1e-8 per scale allows that, far below the difference being checked
        np.testing.assert_allclose(lp_ig - lp_hn, expected, rtol=0, atol=1e-8 * sig.size)


def test_spec_key_parses_validates_and_is_described(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(
        '[mixing]\nalpha = 1.0\n[kernel]\nprior = "weakly_informative"\n'
        "sigma_inv_gamma = { shape = 2.0, rate = 0.4 }\n"
    )
    s = load_spec(path)
    assert s.kernel.sigma_inv_gamma == IG
    assert "InverseGamma(2, 0.4)" in describe_kernel(s.kernel, 2)
    hn = dataclasses.replace(s.kernel, sigma_inv_gamma=None, sigma_sd=0.5)
    assert "HalfNormal(0.5)" in describe_kernel(hn, 2)
    path.write_text(
        "[mixing]\nalpha = 1.0\n[kernel]\nsigma_inv_gamma = { shape = 2.0, rate = 0.4 }\n"
    )
    with pytest.raises(InputError, match="kernel.sigma_inv_gamma"):
        load_spec(path)
    path.write_text(
        '[mixing]\nalpha = 1.0\n[kernel]\nprior = "weakly_informative"\n'
        "sigma_inv_gamma = { shape = 2.0 }\n"
    )
    with pytest.raises(InputError, match="kernel.sigma_inv_gamma"):
        load_spec(path)
    path.write_text(
        '[mixing]\nalpha = 1.0\n[kernel]\nprior = "weakly_informative"\nsigma_sd = 0.5\n'
        "sigma_inv_gamma = { shape = 2.0, rate = 0.4 }\n"
    )
    with pytest.raises(InputError, match="one scale prior"):
        load_spec(path)


def test_default_scale_prior_is_the_inverse_gamma_and_sigma_sd_selects_the_half_normal():
    assert KernelSpec(prior="weakly_informative").sigma_prior() == ("inverse_gamma", IG)
    assert KernelSpec(prior="weakly_informative", sigma_sd=0.7).sigma_prior() == (
        "half_normal",
        0.7,
    )
    for name in ("sparse_wi", "dp_wi"):
        assert load_spec(name).kernel.sigma_prior() == ("inverse_gamma", IG)
