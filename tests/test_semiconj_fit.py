"""The semi-conjugate kernels through the whole pipeline: the shipped RG97 spec on the shipped
``galaxies_rg97`` data by name, the report naming the kernel prior, beta in the posterior, the
engine choice and clear errors, the telescoping sampler's empty slots, and describe_kernel."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import digamma

from bayesmix.data import load_data
from bayesmix.engines.gibbs import sample_gibbs
from bayesmix.engines.names import Engine
from bayesmix.errors import InputError
from bayesmix.fit import fit, resolve_engine
from bayesmix.kernels.describe import describe_kernel
from bayesmix.spec import KernelSpec, load_spec

FAST = dict(chains=2, draws=300, tune=200, progress=False, seed=3)


@pytest.fixture(scope="module")
def rg97_fit():
    return fit("galaxies_rg97", "rg97", **FAST)


def test_rg97_on_the_shipped_data_by_name(rg97_fit, tmp_path):
    res = rg97_fit
    s, dt = res.summary, res.idata
    assert s["engine"] == "gibbs" and s["engine_label"] == "telescoping Gibbs"
    assert s["data"]["n_obs"] == 82
    x = dt["observed_data"]["x"].values.ravel()
    assert 26960 in x and 26690 not in x  # RG97's value for row 78
    assert any("shipped data set" in n for n in s["data"]["notes"])
    assert "n_components" in s and "n_clusters" in s  # K beside K+
    beta = dt["posterior"]["beta"].values
    assert beta.shape == (2, 300) and np.all(beta > 0)
    # beta is reported in the data's units (km/s)^2: C0 scales like sigma^2
    sd = dt["posterior"]["sigma"].values
    assert 0.01 < np.median(beta) / np.median(sd**2) < 100
    assert not any("--engine collapsed" in w for w in s["diagnostics"]["warnings"])
    res.save(tmp_path / "out", report=True)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "kernel prior: semi-conjugate, hierarchical scale, 1-D (Richardson & Green 1997)" in md
    assert "- Kernel prior: semi-conjugate" in md


def test_engine_choice_and_errors():
    spec = load_spec("rg97")
    assert resolve_engine(spec, "auto") is Engine.GIBBS
    with pytest.raises(InputError, match="--engine gibbs"):
        fit("galaxies_rg97", spec, engine="collapsed", **FAST)
    with pytest.raises(InputError, match=r"NUTS cannot sample.*--engine gibbs \(telescoping"):
        fit("galaxies_rg97", spec, engine="nuts", **FAST)


def test_unknown_data_name_lists_the_shipped_sets():
    with pytest.raises(InputError, match="galaxies_rg97"):
        load_data("galaxies_rg9")


def test_telescoping_empty_slots_are_prior_draws_given_the_scale():
    """Slots K.. of each telescoping draw get (mu, sigma^2) from the semi-conjugate prior given
    that draw's beta: E[log sigma^2 - log beta] = -digamma(c0) and mu ~ N(b0, B0) exactly."""
    x = load_data("galaxies_rg97").standardized
    dr = sample_gibbs(load_spec("rg97"), x, algorithm="blocked", chains=2, draws=4000, tune=200,
                      seed=11, progress=False)  # fmt: skip
    assert np.all(dr.cov[..., 0, 0] > 0) and np.all(np.isfinite(dr.mu))
    k = dr.params["K"]
    slot = np.arange(dr.w.shape[2])
    empty = slot[None, None, :] >= k[..., None]
    beta = np.broadcast_to(dr.kernel_params["C0"][..., 0, 0][..., None], empty.shape)[empty]
    v = np.log(dr.cov[..., 0, 0][empty]) - np.log(beta)
    m = v.size  # independent prior draws: the CLT gives the tolerance
    assert m > 10000
    assert abs(v.mean() + digamma(2.0)) < 4.5 * v.std() / math.sqrt(m)
    r = np.ptp(x)
    mu = dr.mu[..., 0][empty]
    b0 = 0.5 * (x.min() + x.max())
    assert abs(mu.mean() - b0) < 4.5 * r / math.sqrt(m)
    assert abs(mu.std() / r - 1.0) < 4.5 * math.sqrt(0.5 / m)


def test_describe_kernel_names_every_prior():
    assert describe_kernel(KernelSpec(), 1).startswith("conjugate Normal-Inverse-Gamma, 1-D")
    assert "IW(4, 0.25 I)" in describe_kernel(KernelSpec(), 2)
    hier = describe_kernel({"scale_prior": {"shape": 2.0, "rate": 8.0}}, 1)
    assert "sigma^2 ~ IG(2, b0)" in hier and "b0 ~ Gamma(2, 8)" in hier
    semi = describe_kernel({"prior": "semi_conjugate", "covariance": "full"}, 3)
    assert semi.startswith("semi-conjugate, hierarchical scale, full covariance")
    assert "W(3.5, C0)" in semi and "C0 ~ W(1.5, 42.8571 diag(1/R^2))" in semi
    fixed = describe_kernel(KernelSpec(prior="semi_conjugate", scale="fixed"), 1)
    assert "beta = 0.2/(10/R^2) fixed" in fixed
    assert describe_kernel(KernelSpec(prior="weakly_informative"), 2).endswith(
        "LKJ(2) correlations (standardised scale)"
    )
