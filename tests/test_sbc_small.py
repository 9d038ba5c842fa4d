"""A small simulation-based calibration of the collapsed Gibbs sampler (1-D DP mixture).

100 replications of: alpha ~ Gamma(2, 2), untruncated stick-breaking weights, NIG kernel
parameters, N ~ U{50..200} observations; collapsed Gibbs on the raw data; ranks of alpha,
K+, the log-likelihood and the largest weight among L = 99 ESS-thinned draws
(benchmarks/sbc.py has the details; the full study is ``python -m benchmarks.sbc``).
Deselect with ``-m "not sbc"``.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.common import chi2_uniform
from benchmarks.sbc import Config, Settings, run_rep

REPS = 100
BINS = 10  # 100 ranks in 10 bins: 10 expected per bin, where the chi-square law is accurate


@pytest.mark.sbc
def test_sbc_collapsed_dp_1d() -> None:
    st = Settings(seed=7, bins=BINS)
    cfg = Config("dp", 1, "collapsed", REPS, index=0)
    results = [run_rep(cfg, r, st) for r in range(REPS)]
    assert all(set(r["ranks"]) == {"concentration", "K+", "loglik", "max_w"} for r in results)
    for q in ("concentration", "K+", "loglik", "max_w"):
        ranks = np.array([r["ranks"][q] for r in results])
        assert ranks.min() >= 0 and ranks.max() <= st.n_kept
        _, p = chi2_uniform(ranks, st.n_kept + 1, BINS)
        # Threshold 0.001 per quantity: with 4 quantities the family-wise false-alarm rate of
        # a correct sampler is below 1 - 0.999^4 < 0.4%.  Power at 100 replications, measured
        # by simulating from a wrong prior and fitting the right one: alpha ~ Gamma(2, 0.5)
        # instead of Gamma(2, 2) gives p = 1e-52 (alpha), 2e-24 (K+); b0 = 1 instead of 0.25
        # gives p = 2e-7 (K+); alpha ~ Gamma(2, 1.5) or b0 = 0.3 go unnoticed (p > 0.1).  So
        # this is a smoke test for gross errors; the full study (benchmarks/sbc.py, 500+
        # replications per model) is the calibration check.
        assert p > 0.001, f"SBC ranks of {q} are not uniform: chi-square p = {p:.2e}"


# --------------------------------------------------------------------------
# Semi-conjugate hierarchical kernel (benchmarks.sbc --kernel semi)
# --------------------------------------------------------------------------


def test_sbc_semi_prior_simulator() -> None:
    """The simulator's semi-conjugate prior: its hyperparameters are the engine's
    (semi_hyper, data_scaled = false), and by Monte Carlo E[C0] = g0 / G0 I and
    E[C0 Sigma^{-1}] = c0 I (Sigma^{-1} | C0 ~ W(c0, C0) has mean c0 C0^{-1}): a swap of the
    Wishart parametrisations (IW(2 c0, C0), a rate for a scale, ...) moves these by >= 2x."""
    from bayesmix.engines.gibbs.driver import semi_hyper
    from bayesmix.kernels import semiconj
    from benchmarks.sbc import SEMI_KERNEL, draw_kernel, draw_scale, make_spec

    rng = np.random.default_rng(11)
    for d in (1, 2):
        tab = SEMI_KERNEL[f"{d}d"]
        kern = make_spec("finite", "semi", d).kernel
        hs = semiconj.unpack(np.asarray(semi_hyper(make_spec("finite", "semi", d), rng.normal(size=(30, d)))), d)  # fmt: skip
        assert hs["c0"][0] == tab["c0"] and hs["g0"][0] == tab["g0"] and hs["hierarchical"][0]
        np.testing.assert_array_equal(hs["b0"], np.full(d, tab["m0"]))
        np.testing.assert_array_equal(hs["B0_diag"], np.full(d, tab["mean_var"]))
        np.testing.assert_array_equal(hs["G0_diag"], np.full(d, tab["G0"]))
        m = 4000
        c0s = np.array([draw_scale(kern, d, rng) for _ in range(m)])
        prec = np.empty_like(c0s)
        mus = np.empty((m, d))
        for i in range(m):
            mu, cov = draw_kernel(kern, d, 1, rng, c0s[i])
            prec[i], mus[i] = np.linalg.inv(cov[0]), mu[0]
        assert np.all(np.linalg.eigvalsh(c0s) > 0)
        e_c0 = c0s.mean(axis=0)
        np.testing.assert_allclose(e_c0, tab["g0"] / tab["G0"] * np.eye(d), atol=0.1)
        np.testing.assert_allclose((c0s @ prec).mean(axis=0), tab["c0"] * np.eye(d), atol=0.25)
        np.testing.assert_allclose(mus.mean(axis=0), tab["m0"], atol=0.15)
        np.testing.assert_allclose(mus.var(axis=0), tab["mean_var"], rtol=0.1)


def test_sbc_semi_configs() -> None:
    """Semi studies: blocked (finite, DP, PY), telescoping (MFM) and NUTS (1-D DP and finite
    only), key suffix _semi, seed index = the conjugate study's index + SEMI_OFFSET, no index
    shared with a conjugate study (main, confirmation + 100, re-check + 200)."""
    from benchmarks.sbc import NUTS_MODELS, SEMI_OFFSET, configs

    engines = ("blocked", "telescoping", "collapsed", "nuts")
    conj = {c.key: c for c in configs(500, 100, engines)}
    semi = configs(500, 100, engines, kernel="semi")
    assert {c.engine for c in semi} == {"blocked", "telescoping", "nuts"}
    nuts = [c for c in semi if c.engine == "nuts"]
    assert {(c.model, c.dim, c.reps) for c in nuts} == {(m, 1, 100) for m in NUTS_MODELS}
    assert len(semi) == 14 + len(NUTS_MODELS) and all(c.kernel == "semi" for c in semi)
    assert all(c.engine != "nuts" for c in configs(500, 0, engines, kernel="semi"))
    for c in semi:
        assert c.key == f"{c.model}_{c.dim}d_{c.engine}_semi"
        assert c.index == conj[c.key.removesuffix("_semi")].index + SEMI_OFFSET
    used = {c.index + o for c in conj.values() for o in (0, 100, 200)}
    assert not used & {c.index + o for c in semi for o in (0, 100, 200)}


@pytest.mark.sbc
def test_sbc_semi_study_end_to_end(tmp_path) -> None:
    """One semi-conjugate study through main(): simulate C0, fit with blocked Gibbs, rank,
    analyse, write sbc.json / sbc.md; a --resume with the other kernel is refused."""
    import json

    from benchmarks.sbc import SEMI_KERNEL, SEMI_OFFSET, main

    reps, key = 4, "finite_1d_blocked_semi"
    argv = ["--kernel", "semi", "--models", "finite", "--only", key, "--reps", str(reps),
            "--jobs", "1", "--no-confirm", "--seed", "7", "--max-thin", "4",
            "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    saved = json.loads((tmp_path / "sbc.json").read_text())
    assert saved["meta"]["kernel"] == "semi" and saved["kernel"] == SEMI_KERNEL
    assert list(saved["results"]) == [key]
    res = saved["results"][key]
    assert res["config"]["kernel"] == "semi" and res["config"]["index"] == 1 + SEMI_OFFSET
    assert set(res["quantities"]) == {"K+", "loglik", "max_w", "beta"}
    assert all(v["reps"] == reps for v in res["quantities"].values())
    for r in res["replications"]:
        assert r["entropy"] == [7, 1 + SEMI_OFFSET, r["rep"]]
        assert set(r["ranks"]) == {"K+", "loglik", "max_w", "beta"}
        assert all(0 <= v <= 99 for v in r["ranks"].values())
        assert r["truth"]["beta"] > 0 and r["truth_C0"] == [[r["truth"]["beta"]]]
        assert r["ll_engine_minus_numpy"] < 1e-8
    report = (tmp_path / "sbc.md").read_text()
    assert "semi-conjugate hierarchical kernel" in report and "`log_det_C0` (2-D)" in report
    with pytest.raises(SystemExit, match="kernel"):
        main([*argv[2:], "--resume"])  # the default --kernel conjugate


# --------------------------------------------------------------------------
# Spherical conjugate kernel (benchmarks.sbc --kernel spherical)
# --------------------------------------------------------------------------


def test_sbc_spherical_prior_simulator_and_configs() -> None:
    """The simulator's spherical prior: Sigma = sigma^2 I with one sigma^2 ~ IG(a0, b0) per
    component (E = b0 / (a0 - 1), E[1/sigma^2] = a0 / b0), mu | sigma^2 ~ N(m0, sigma^2 /
    kappa0 I) (E[kappa0 (mu - m0)^2 / sigma^2] = 1 per feature); studies in 2-D and 3-D for the
    Gibbs engines only, seed index i + SPHERICAL_OFFSET, none shared with another kernel."""
    from benchmarks.sbc import NUTS_MODELS, SPHERICAL_OFFSET, configs, draw_kernel, make_spec

    rng = np.random.default_rng(12)
    kern = make_spec("dp", "spherical", 3).kernel
    assert kern.covariance == "spherical" and kern.prior == "conjugate"
    mu, cov = draw_kernel(kern, 3, 20000, rng)
    s2 = cov[:, 0, 0]
    np.testing.assert_array_equal(cov, s2[:, None, None] * np.eye(3))
    np.testing.assert_allclose((1 / s2).mean(), kern.a0 / kern.b0, rtol=0.03)
    z2 = kern.kappa0 * (mu - kern.m0) ** 2 / s2[:, None]
    np.testing.assert_allclose(z2.mean(axis=0), 1.0, rtol=0.05)
    engines = ("blocked", "telescoping", "collapsed", "nuts", "subcluster")
    sph = configs(500, 100, engines, kernel="spherical")
    assert {c.dim for c in sph} == {2, 3}
    nuts = {(c.model, c.dim, c.reps) for c in sph if c.engine == "nuts"}
    assert nuts == {(m, 2, 100) for m in NUTS_MODELS}  # no 1-D spherical kernel
    assert all(c.key.endswith("_spherical") and c.index > SPHERICAL_OFFSET for c in sph)
    sub = {c.model for c in sph if c.engine == "subcluster"}
    assert sub and not sub & {"mfm_dynamic", "py"}  # the engine serves neither
    others = configs(500, 100, engines) + configs(500, 100, engines, kernel="semi")
    used = {c.index + o for c in others for o in (0, 100, 200)}
    idx = [c.index + o for c in sph for o in (0, 100, 200)]
    assert len(set(idx)) == len(idx) and not used & set(idx)


# --------------------------------------------------------------------------
# Conjugate kernel with a hierarchical scale (benchmarks.sbc --kernel scale)
# --------------------------------------------------------------------------


def test_sbc_scale_prior_simulator() -> None:
    """The simulator's hierarchical conjugate scale: b0 (1-D) / psi0 (2-D) ~ Gamma(2, rate 8)
    (mean 0.25, sd 0.177), and the components drawn under that scale: in 1-D E[sigma^-2 | b0]
    = a0 / b0, in 2-D E[Sigma^-1 | psi0] = nu0 / psi0 I. A rate read as a scale (mean 16) or a
    scale not passed on to the components (E[b0 sigma^-2] = a0 E[b0] / 0.25 stays a0 only by
    chance) fails these."""
    from benchmarks.sbc import SCALE_KERNEL, _scale, conjugate_scale_name, draw_kernel, make_spec

    rng = np.random.default_rng(12)
    prior = SCALE_KERNEL["scale_prior"]
    for d, name in ((1, "b0"), (2, "psi0")):
        kern = make_spec("dp", "scale", d).kernel
        assert conjugate_scale_name(kern, d) == name
        m = 4000
        scales = np.empty(m)
        prod = np.empty((m, d, d))
        for i in range(m):
            params: dict[str, float] = {}
            used, c0 = _scale(kern, d, params, rng)
            assert c0 is None and set(params) == {name}
            scales[i] = params[name]
            assert getattr(used, name) == scales[i]
            _, cov = draw_kernel(used, d, 1, rng)
            prod[i] = scales[i] * np.linalg.inv(cov[0])
        mean = prior["shape"] / prior["rate"]
        se = np.sqrt(prior["shape"]) / prior["rate"] / np.sqrt(m)
        assert abs(scales.mean() - mean) < 4 * se
        # E[scale * precision] = a0 (1-D: sigma^-2 | b0 ~ Gamma(a0, rate b0)) or nu0 I
        target = kern.a0 if d == 1 else kern.nu0_for(d)
        np.testing.assert_allclose(prod.mean(axis=0), target * np.eye(d), atol=0.15 * target)


def test_sbc_scale_configs() -> None:
    """Hierarchical-scale studies: collapsed (1-D and 2-D) and NUTS (1-D DP and finite), key
    suffix _scale, seed index = the conjugate study's index + SCALE_OFFSET, no index shared
    with another kernel's."""
    from benchmarks.sbc import NUTS_MODELS, SCALE_OFFSET, configs

    engines = ("blocked", "telescoping", "collapsed", "nuts")
    conj = {c.key: c for c in configs(500, 100, engines)}
    scale = configs(500, 100, engines, kernel="scale")
    assert {c.engine for c in scale} == {"collapsed", "nuts"} and {c.dim for c in scale} == {1, 2}
    nuts = {(c.model, c.dim) for c in scale if c.engine == "nuts"}
    assert nuts == {(m, 1) for m in NUTS_MODELS}
    for c in scale:
        assert c.key == f"{c.model}_{c.dim}d_{c.engine}_scale"
        assert c.index == conj[c.key.removesuffix("_scale")].index + SCALE_OFFSET
    others = {c.index + o for k in ("conjugate", "semi", "spherical")
              for c in configs(500, 100, (*engines, "subcluster"), kernel=k)
              for o in (0, 100, 200)}  # fmt: skip
    assert not others & {c.index + o for c in scale for o in (0, 100, 200)}


@pytest.mark.sbc
def test_sbc_scale_study_end_to_end(tmp_path) -> None:
    """One hierarchical-scale study through main(): the scale b0 is ranked with the others."""
    import json

    from benchmarks.sbc import SCALE_OFFSET, main

    reps, key = 4, "dp_1d_collapsed_scale"
    argv = ["--kernel", "scale", "--models", "dp", "--only", key, "--reps", str(reps),
            "--jobs", "1", "--no-confirm", "--seed", "7", "--max-thin", "4",
            "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    res = json.loads((tmp_path / "sbc.json").read_text())["results"][key]
    assert res["config"]["kernel"] == "scale" and res["config"]["index"] > SCALE_OFFSET
    assert set(res["quantities"]) == {"concentration", "K+", "loglik", "max_w", "b0"}
    assert all(set(r["ranks"]) == set(res["quantities"]) for r in res["replications"])


# --------------------------------------------------------------------------
# Weakly informative kernel (benchmarks.sbc --kernel wi), NUTS only
# --------------------------------------------------------------------------


def test_sbc_wi_prior_simulator_and_configs() -> None:
    """The simulator's weakly informative kernel: mu ~ N(0, 2^2) independent of sigma ~
    InverseGamma(2, 0.4), i.e. 1 / sigma ~ Gamma(2, rate 0.4) (E[1/sigma] = 5, E[sigma] =
    0.4); studies: 1-D NUTS of the DP and the finite model only, with the shipped NUTS
    settings (target_accept 0.9, DP non-centred sticks), seed index i + WI_OFFSET shared with
    no other kernel."""
    from benchmarks.sbc import NUTS_MODELS, WI_OFFSET, configs, draw_kernel, make_spec

    rng = np.random.default_rng(13)
    m = 40000
    kern = make_spec("dp", "wi", 1).kernel
    mu, cov = draw_kernel(kern, 1, m, rng)
    sigma = np.sqrt(cov[:, 0, 0])
    inv = 1.0 / sigma  # Gamma(2, rate 0.4): mean 5, sd sqrt(2) / 0.4
    assert abs(inv.mean() - 5.0) < 4 * (np.sqrt(2.0) / 0.4) / np.sqrt(m)
    assert abs(mu.mean()) < 4 * 2.0 / np.sqrt(m)
    assert abs(mu.std() - 2.0) < 0.05
    assert abs(np.corrcoef(mu[:, 0], sigma)[0, 1]) < 4 / np.sqrt(m)
    with pytest.raises(ValueError, match="1-D"):
        draw_kernel(kern, 2, 3, rng)
    assert make_spec("dp", "wi").sampler.sticks == "non_centred"
    assert make_spec("finite", "wi").sampler.target_accept == 0.9
    engines = ("blocked", "telescoping", "collapsed", "nuts", "subcluster")
    wi = configs(500, 200, engines, kernel="wi")
    assert {(c.model, c.dim, c.engine, c.reps) for c in wi} == {
        (m, 1, "nuts", 200) for m in NUTS_MODELS
    }
    assert all(c.key.endswith("_wi") and c.index > WI_OFFSET for c in wi)
    others = {c.index + o for k in ("conjugate", "semi", "spherical", "scale")
              for c in configs(500, 100, engines, kernel=k)
              for o in (0, 100, 200)}  # fmt: skip
    assert not others & {c.index + o for c in wi for o in (0, 100, 200)}
