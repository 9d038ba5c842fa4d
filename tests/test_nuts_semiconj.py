"""NUTS runs the same kernel priors as the Gibbs engines: the semi-conjugate kernel (1-D and
diagonal: Richardson & Green 1997; full: Fruehwirth-Schnatter, Malsiner-Walli & Gruen 2021)
and the conjugate kernel with a random scale (``kernel.scale_prior``).

* Joint prior density: the PyMC model's log-density of the kernel's free variables (in PyMC's
  unconstrained value space, transforms' Jacobians included) equals an independent scipy
  density of the quantities the spec names (beta = C0, sigma^-2, Sigma^-1, mu, b0, psi0) plus
  log |det d(quantities) / d(values)|, the Jacobian taken by central differences. The
  non-centred and Bartlett parametrisations are under test, not assumed. The hyperparameters
  of the reference are computed here from x and the spec's docstring, not by
  ``semiconj.data_hyper``.
* Forward sampling: prior means of beta, sigma^-2, C0, Sigma^-1, mu against the closed forms,
  within 5 Monte-Carlo standard errors.
* A NUTS fit through ``bayesmix.fit`` fills beta (or C0, b0) in the posterior and posterior.nc.
* Specs NUTS cannot run give an InputError naming an engine that can.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pymc as pm
import pytensor
import pytest
import xarray as xr
from scipy import stats

from bayesmix.engines.names import Engine
from bayesmix.errors import InputError
from bayesmix.fit import fit, resolve_engine
from bayesmix.model import build_model, initial_values
from bayesmix.spec import GammaPrior, KernelSpec, KPrior, MixingSpec, ModelSpec

K = 3
MIX = MixingSpec("finite", K, 0.8, None)
RNG = np.random.default_rng(20261126)
X = {d: RNG.normal(size=(25, d)) * np.array([1.0, 0.6, 1.4][:d]) for d in (1, 2)}

SEMI = {  # name: (kernel, D)
    "semi_1d_hier": (KernelSpec(prior="semi_conjugate"), 1),
    "semi_1d_fixed": (KernelSpec(prior="semi_conjugate", scale="fixed"), 1),
    "semi_1d_override": (
        KernelSpec(
            prior="semi_conjugate", c0=3.5, g0=1.3, G0=4.0, mean_var=0.7, mean_centre="median"
        ),
        1,
    ),
    "semi_diag_2d_hier": (KernelSpec(prior="semi_conjugate", covariance="diag", mean_var=1.3), 2),
    "semi_diag_2d_fixed": (KernelSpec(prior="semi_conjugate", covariance="diag", scale="fixed"), 2),
    "semi_full_2d_hier": (KernelSpec(prior="semi_conjugate", mean_var=0.8), 2),
    "semi_full_2d_fixed": (KernelSpec(prior="semi_conjugate", scale="fixed", c0=4.0), 2),
    "semi_full_2d_unscaled": (
        KernelSpec(prior="semi_conjugate", data_scaled=False, m0=0.3, g0=2.0, G0=3.0),
        2,
    ),
}
SCALE = {
    "conj_scale_1d": (KernelSpec(m0=0.2, kappa0=0.3, a0=2.5, scale_prior=GammaPrior(3.0, 2.0)), 1),
    "conj_scale_diag_2d": (
        KernelSpec(
            covariance="diag", m0=-0.1, kappa0=0.5, a0=3.0, scale_prior=GammaPrior(2.0, 5.0)
        ),
        2,
    ),
    "conj_scale_spherical_2d": (
        KernelSpec(covariance="spherical", kappa0=0.4, a0=2.0, scale_prior=GammaPrior(2.5, 4.0)),
        2,
    ),
    "conj_scale_full_2d": (
        KernelSpec(m0=0.1, kappa0=0.6, nu0=4.5, scale_prior=GammaPrior(2.0, 3.0)),
        2,
    ),
}


def spec_of(kernel: KernelSpec, mixing: MixingSpec = MIX) -> ModelSpec:
    return ModelSpec(mixing=mixing, kernel=kernel)


def reference_hyper(kern: KernelSpec, x: np.ndarray) -> dict:
    """The KernelSpec docstring's data-scaled hyperparameters, written out again."""
    d = x.shape[1]
    if d == 1:
        c0, g0, g, centre = 2.0, 0.2, 10.0, "midrange"
    else:
        c0, g0, centre = 2.5 + (d - 1) / 2, 0.5 + (d - 1) / 2, "median"
        g = None
    c0 = kern.c0 if kern.c0 is not None else c0
    g0 = kern.g0 if kern.g0 is not None else g0
    g = kern.G0 if kern.G0 is not None else (g if g is not None else 100 * g0 / c0)
    centre = kern.mean_centre or centre
    if kern.data_scaled:
        r = x.max(axis=0) - x.min(axis=0)
        b0 = (x.max(axis=0) + x.min(axis=0)) / 2 if centre == "midrange" else np.median(x, axis=0)
    else:
        r, b0 = np.ones(d), np.full(d, kern.m0)
    return dict(c0=c0, g0=g0, b0=b0, B0=kern.mean_var * r**2, G0=g / r**2)


def _unique(m: np.ndarray) -> np.ndarray:
    """The upper triangle (diagonal included) of (..., D, D), flattened."""
    rows, cols = np.triu_indices(m.shape[-1])
    return m[..., rows, cols].ravel()


def _targets(model, kern: KernelSpec, d: int) -> list:
    """The graph quantities whose density the spec names, as graphs of the value variables."""
    names = set(model.named_vars)
    full = d > 1 and kern.covariance == "full"
    outs = []
    for name in ("beta", "b0", "psi0"):
        if name in names:
            outs.append(model[name])
    if full and "C0" in names:
        outs.append(model["C0"])
    if full:
        f = model["factor"]
        outs.append(pytensor.tensor.matmul(f, f.swapaxes(-1, -2)))  # Sigma_k^-1
    else:
        outs.append(model["tau"])
    outs.append(model["mu"])
    return model.replace_rvs_by_values(outs)


def reference_logp(kern: KernelSpec, d: int, vals: list, x: np.ndarray) -> float:
    """log p of the named quantities (``_targets`` order) from scipy.stats."""
    full = d > 1 and kern.covariance == "full"
    vals = [np.asarray(v) for v in vals]
    lp = 0.0
    if kern.prior == "semi_conjugate":
        h = reference_hyper(kern, x)
        c0, g0 = h["c0"], h["g0"]
        hier = kern.scale == "hierarchical"
        i = 0
        if not full:
            if hier:
                beta = vals[0]
                lp += stats.gamma.logpdf(beta, g0, scale=1.0 / h["G0"]).sum()
                i = 1
            else:
                beta = g0 / h["G0"]
            tau = vals[i]
            lp += stats.gamma.logpdf(tau, c0, scale=1.0 / beta[None, :]).sum()
        else:
            if hier:
                c0m = vals[0]
                lp += stats.wishart.logpdf(c0m, df=2 * g0, scale=np.diag(1 / (2 * h["G0"])))
                i = 1
            else:
                c0m = np.diag(g0 / h["G0"])
            for q in vals[i]:
                lp += stats.wishart.logpdf(q, df=2 * c0, scale=np.linalg.inv(2 * c0m))
        lp += stats.norm.logpdf(vals[-1], h["b0"], np.sqrt(h["B0"])).sum()
        return float(lp)
    sp = kern.scale_prior
    scale = vals[0]
    lp += stats.gamma.logpdf(scale, sp.shape, scale=1.0 / sp.rate)
    mu = vals[2]
    if full:
        for q, m in zip(vals[1], mu, strict=True):
            lp += stats.wishart.logpdf(q, df=kern.nu0_for(d), scale=np.eye(d) / scale)
            lp += stats.multivariate_normal.logpdf(
                m, kern.m0 * np.ones(d), np.linalg.inv(kern.kappa0 * q)
            )
        return float(lp)
    tau = vals[1]  # (K, D) or (K, 1) for spherical
    lp += stats.gamma.logpdf(tau, kern.a0, scale=1.0 / scale).sum()
    tau_d = np.broadcast_to(tau, mu.shape)
    lp += stats.norm.logpdf(mu, kern.m0, 1.0 / np.sqrt(kern.kappa0 * tau_d)).sum()
    return float(lp)


def _flatten(vals: list, kern: KernelSpec, d: int) -> np.ndarray:
    full = d > 1 and kern.covariance == "full"
    out = []
    for v in vals:
        v = np.asarray(v)
        out.append(
            _unique(v) if full and v.ndim >= 2 and v.shape[-1] == v.shape[-2] == d else v.ravel()
        )
    return np.concatenate(out)


@pytest.mark.parametrize("name", sorted(SEMI) + sorted(SCALE))
def test_prior_logp_equals_scipy_with_the_jacobian(name):
    kern, d = (SEMI | SCALE)[name]
    x = X[d]
    model = build_model(spec_of(kern), x)
    kvars = [rv for rv in model.free_RVs if rv.name != "w"]
    terms = kvars + list(model.potentials)
    logp = model.compile_logp(vars=terms, jacobian=True, mode="FAST_COMPILE")
    values = [model.rvs_to_values[rv] for rv in kvars]
    fn = pytensor.function(
        values, _targets(model, kern, d), mode="FAST_COMPILE", on_unused_input="ignore"
    )
    start = model.initial_point()
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    shapes = [start[v.name].shape for v in values]
    sizes = [int(np.prod(s)) for s in shapes]

    def unpack(u):
        parts = np.split(u, np.cumsum(sizes)[:-1])
        return [p.reshape(s) for p, s in zip(parts, shapes, strict=True)]

    for _ in range(3):
        u = np.concatenate([start[v.name].ravel() for v in values]) + rng.normal(0, 0.4, sum(sizes))
        point = dict(start) | {v.name: a for v, a in zip(values, unpack(u), strict=True)}
        got = float(logp(point))
        vals = fn(*unpack(u))
        t0 = _flatten(vals, kern, d)
        assert t0.size == u.size  # the map values -> named quantities is square
        eps = 1e-6
        jac = np.empty((t0.size, u.size))
        for j in range(u.size):
            e = np.zeros(u.size)
            e[j] = eps
            hi = _flatten(fn(*unpack(u + e)), kern, d)
            lo = _flatten(fn(*unpack(u - e)), kern, d)
            jac[:, j] = (hi - lo) / (2 * eps)
        logdet = np.linalg.slogdet(jac)[1]
        want = reference_logp(kern, d, vals, x) + logdet
        assert got == pytest.approx(want, rel=1e-6, abs=1e-6), name


N_PRIOR = 20000


def _mean_ok(samples: np.ndarray, expected, label: str) -> None:
    """Mean within 5 Monte-Carlo standard errors (independent forward draws)."""
    s = np.asarray(samples, dtype=float)
    se = s.std(axis=0) / math.sqrt(s.shape[0])
    err = np.abs(s.mean(axis=0) - np.asarray(expected))
    assert np.all(err < 5 * se + 1e-12), (label, s.mean(axis=0), expected, se)


def _prior(model, names):
    with model:
        dt = pm.sample_prior_predictive(draws=N_PRIOR, var_names=names, random_seed=7)
    return {n: dt["prior"][n].values[0] for n in names}


@pytest.mark.parametrize("d,cov", [(1, "full"), (2, "diag")])
def test_prior_means_semi_diag(d, cov):
    """beta ~ Gamma(g0, G0): E = g0 / G0; sigma^-2 | beta ~ Gamma(c0, beta):
    E[sigma^-2] = c0 G0 / (g0 - 1) (g0 > 1); fixed beta = g0 / G0: c0 G0 / g0; mu ~ N(b0, B0)."""
    x = X[d]
    for scale in ("hierarchical", "fixed"):
        kern = KernelSpec(
            prior="semi_conjugate", covariance=cov, scale=scale, g0=3.0, G0=2.0, c0=2.5
        )
        h = reference_hyper(kern, x)
        model = build_model(spec_of(kern), x)
        names = ["tau", "mu"] + (["beta", "C0"] if scale == "hierarchical" else [])
        p = _prior(model, names)
        if scale == "hierarchical":
            _mean_ok(p["beta"], h["g0"] / h["G0"], "beta")
            np.testing.assert_allclose(p["C0"][:, np.arange(d), np.arange(d)], p["beta"])
            want_tau = h["c0"] * h["G0"] / (h["g0"] - 1)
        else:
            want_tau = h["c0"] * h["G0"] / h["g0"]
        _mean_ok(p["tau"].reshape(N_PRIOR, -1), np.tile(want_tau, K), f"tau {scale}")
        _mean_ok(p["mu"].reshape(N_PRIOR, -1), np.tile(h["b0"], K), "mu")
        _mean_ok(((p["mu"] - h["b0"]) ** 2).reshape(N_PRIOR, -1), np.tile(h["B0"], K), "mu var")


def test_prior_means_semi_full():
    """C0 ~ W(g0, G0) = Wishart(2 g0, (2 G0)^-1): E[C0] = g0 G0^-1; Q = Sigma^-1 | C0 ~
    Wishart(2 c0, (2 C0)^-1): E[Q] = c0 E[C0^-1] = c0 2 G0 / (2 g0 - D - 1); fixed C0 = g0 G0^-1:
    E[Q] = c0 G0 / g0."""
    d, x = 2, X[2]
    for scale in ("hierarchical", "fixed"):
        kern = KernelSpec(prior="semi_conjugate", scale=scale, g0=4.0, G0=3.0, c0=3.0)
        h = reference_hyper(kern, x)
        model = build_model(spec_of(kern), x)
        names = ["factor"] + (["C0"] if scale == "hierarchical" else [])
        p = _prior(model, names)
        f = p["factor"]
        q = f @ np.swapaxes(f, -1, -2)
        if scale == "hierarchical":
            _mean_ok(p["C0"].reshape(N_PRIOR, -1), np.diag(h["g0"] / h["G0"]).ravel(), "C0")
            want = h["c0"] * np.diag(2 * h["G0"]) / (2 * h["g0"] - d - 1)
        else:
            want = h["c0"] * np.diag(h["G0"]) / h["g0"]
        _mean_ok(q.reshape(N_PRIOR, -1), np.tile(want.ravel(), K), f"Q {scale}")
        tri = np.allclose(np.tril(f, -1), 0) or np.allclose(np.triu(f, 1), 0)
        assert tri  # the whitening factor is triangular (component_logpdf's log-determinant)


@pytest.mark.filterwarnings("ignore:The effect of Potentials")  # mu's; not sampled here
def test_prior_means_conjugate_scale():
    """b0 ~ Gamma(a, b): E = a / b and E[sigma^-2] = a0 E[1 / b0] = a0 b / (a - 1);
    full: psi0 ~ Gamma(a, b), E[Sigma^-1] = nu0 E[1 / psi0] I."""
    a, b = 4.0, 3.0
    for d, cov in ((1, "full"), (2, "diag"), (2, "spherical"), (2, "full")):
        kern = KernelSpec(covariance=cov, a0=2.5, nu0=4.5, scale_prior=GammaPrior(a, b))
        model = build_model(spec_of(kern), X[d])
        full = d > 1 and cov == "full"
        name = "psi0" if full else "b0"
        p = _prior(model, [name, "factor"])
        _mean_ok(p[name], a / b, name)
        f = p["factor"]
        q = (f @ np.swapaxes(f, -1, -2)).reshape(N_PRIOR, -1)
        coef = (4.5 if full else 2.5) * b / (a - 1)
        _mean_ok(q, np.tile((coef * np.eye(d)).ravel(), K), f"precision {cov}")


def test_initial_values_at_the_prior_means():
    x = X[2]
    h = reference_hyper(KernelSpec(prior="semi_conjugate"), x)
    init = initial_values(spec_of(KernelSpec(prior="semi_conjugate", covariance="diag")), x, 0)
    np.testing.assert_allclose(init["beta"], h["g0"] / h["G0"])
    model = build_model(spec_of(KernelSpec(prior="semi_conjugate")), x)
    init = initial_values(spec_of(KernelSpec(prior="semi_conjugate")), x, 0)
    c0 = pm.draw(model["C0"], givens={model["C0_bartlett_c"]: init["C0_bartlett_c"],
                                      model["C0_bartlett_z"]: init["C0_bartlett_z"]})  # fmt: skip
    np.testing.assert_allclose(c0, np.diag(h["g0"] / h["G0"]))
    init = initial_values(spec_of(SCALE["conj_scale_full_2d"][0]), x, 0)
    assert init["psi0"] == pytest.approx(2.0 / 3.0)


def test_nuts_fit_fills_the_kernel_hyperparameters(tmp_path):
    """A small NUTS fit through bayesmix.fit: beta (data units) in the posterior and in
    posterior.nc, the engine's kernel facts in the summary, no collapsed-engine advice."""
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(-3, 0.5, 15), rng.normal(3, 0.5, 15)])[:, None] * 10 + 100
    spec = spec_of(KernelSpec(prior="semi_conjugate"), MixingSpec("dp", 5, 1.0, None))
    res = fit(x, spec, engine="nuts", chains=2, draws=60, tune=60, progress=False, seed=2,
              analyse_clusters=False, classical=False)  # fmt: skip
    beta = res.idata["posterior"]["beta"].values
    assert beta.shape == (2, 60) and np.all(beta > 0)
    # beta scales like sigma^2 (data units): within a few orders of the within-cluster variance
    assert 1e-2 < np.median(beta) / 25.0 < 1e3
    assert res.summary["engine"] == "nuts"
    assert res.summary["engine_info"]["kernel"] == "semi_conjugate_diag"
    assert not any("--engine collapsed" in w for w in res.summary["diagnostics"]["warnings"])
    res.save(tmp_path / "out", report=False)
    saved = xr.open_datatree(tmp_path / "out" / "posterior.nc")
    np.testing.assert_allclose(saved["posterior"]["beta"].values, beta)


MFM = MixingSpec("mfm", 10, 1.0, None, k_prior=KPrior("uniform", (("max", 10.0),)))


@pytest.mark.parametrize(
    "kernel,wanted,absent",
    [
        (KernelSpec(prior="semi_conjugate"), "--engine gibbs (telescoping", "--engine collapsed"),
        (KernelSpec(), "--engine collapsed or --engine gibbs (telescoping)", None),
        (KernelSpec(scale_prior=GammaPrior(2.0, 8.0)), "--engine collapsed", "--engine gibbs"),
        (KernelSpec(prior="weakly_informative"), "'semi_conjugate' (--engine gibbs", None),
    ],
)
def test_mfm_on_nuts_names_an_engine_that_runs_the_kernel(kernel, wanted, absent):
    x = X[1]
    with pytest.raises(InputError, match="NUTS cannot sample") as err:
        fit(x, spec_of(kernel, MFM), engine="nuts", chains=1, draws=5, tune=5, progress=False)
    msg = str(err.value)
    assert wanted in msg
    if absent is not None:
        assert absent not in msg.replace(wanted, "")


def test_other_refusals_and_the_auto_choice():
    semi = spec_of(KernelSpec(prior="semi_conjugate"), MixingSpec("dp", 5, 1.0, None))
    assert resolve_engine(semi, "auto") is Engine.GIBBS  # unchanged: Gibbs for semi-conjugate
    with pytest.raises(InputError, match=r"--engine gibbs \(blocked\) or --engine nuts"):
        fit(X[1], semi, engine="collapsed", chains=1, draws=5, tune=5, progress=False)
    semi_mfm = spec_of(KernelSpec(prior="semi_conjugate"), MFM)
    with pytest.raises(InputError, match=r"use --engine gibbs \(telescoping\)$"):
        fit(X[1], semi_mfm, engine="collapsed", chains=1, draws=5, tune=5, progress=False)
    sph = spec_of(KernelSpec(prior="semi_conjugate", covariance="spherical"))
    with pytest.raises(InputError, match="'diag' or 'full'"):
        build_model(sph, X[2])
    with pytest.raises(InputError, match="kernel.g0 must be > "):
        build_model(spec_of(KernelSpec(prior="semi_conjugate", g0=0.4)), X[2])
